"""The demo camera: a live test source encoded in-process with PyAV (FFmpeg's libx264 and aac).

The picture is scrolling colour bars with the wall clock burned in (HH:MM:SS.mmm, local time,
drawn with a built-in 5x7 font straight into the YUV planes: no font file, no filter graph);
the sound is a 1 kHz beep for the first 100 ms of every media second. Video is H.264 (ITU-T
H.264 Annex B byte stream, 4-byte start codes, SPS/PPS in front of every IDR, one slice per
picture, no B-frames); audio is AAC-LC raw access units (ISO 14496-3), 1024 samples each.

The class never reads the clock for timing: the caller paces ``encode_until`` against its own
clock. The only clock read is ``wallclock`` for the burned-in text, and it is injectable.
"""

from __future__ import annotations

import math
import time
from array import array
from collections.abc import Callable
from fractions import Fraction

import av

from relay.codecs.h264 import split_annexb
from relay.errors import ConfigError
from relay.media import Codec, Frame, NalUnits, Track

__all__ = ["TestCamera"]

VIDEO_CLOCK_RATE = 90000
AAC_FRAME_SAMPLES = 1024
BEEP_HZ = 1000
BEEP_SECONDS = 0.1
BEEP_AMPLITUDE = 0.5
_RAMP_SECONDS = 0.002  # softens the beep's edges so they do not click

# 75% colour bars, BT.601 limited range: white, yellow, cyan, green, magenta, red, blue, black.
_BARS_Y = (180, 162, 131, 112, 84, 65, 35, 16)
_BARS_U = (128, 44, 156, 72, 184, 100, 212, 128)
_BARS_V = (128, 142, 44, 58, 198, 212, 114, 128)
_INK_Y = 235
_PAPER_Y = 16
_NEUTRAL_C = 128

# 5x7 glyphs, one string per row, '#' is ink.
_FONT: dict[str, tuple[str, ...]] = {
    "0": (" ### ", "#   #", "#  ##", "# # #", "##  #", "#   #", " ### "),
    "1": ("  #  ", " ##  ", "  #  ", "  #  ", "  #  ", "  #  ", " ### "),
    "2": (" ### ", "#   #", "    #", "   # ", "  #  ", " #   ", "#####"),
    "3": ("#####", "   # ", "  #  ", "   # ", "    #", "#   #", " ### "),
    "4": ("   # ", "  ## ", " # # ", "#  # ", "#####", "   # ", "   # "),
    "5": ("#####", "#    ", "#### ", "    #", "    #", "#   #", " ### "),
    "6": ("  ## ", " #   ", "#    ", "#### ", "#   #", "#   #", " ### "),
    "7": ("#####", "    #", "   # ", "  #  ", " #   ", " #   ", " #   "),
    "8": (" ### ", "#   #", "#   #", " ### ", "#   #", "#   #", " ### "),
    "9": (" ### ", "#   #", "#   #", " ####", "    #", "   # ", " ##  "),
    ":": ("     ", "  #  ", "  #  ", "     ", "  #  ", "  #  ", "     "),
    ".": ("     ", "     ", "     ", "     ", "     ", " ##  ", " ##  "),
}
_GLYPH_W, _GLYPH_H, _CELL_W = 5, 7, 6  # one blank column between characters
_CLOCK_CHARS = 12  # "HH:MM:SS.mmm"


def _wallclock_text(t: float) -> str:
    ms = int(t * 1000) % 1000
    return time.strftime("%H:%M:%S", time.localtime(t)) + f".{ms:03d}"


class TestCamera:
    """A live test source: H.264 colour bars with a burned-in clock, and AAC beeps.

    Args:
        width: picture width in pixels (even, at least 144).
        height: picture height in pixels (even).
        fps: frames per second (integer).
        sample_rate: audio sample rate in Hz.
        gop_seconds: keyframe interval in seconds.
        wallclock: returns the time (Unix seconds) written into each picture.

    Attributes:
        video_track: the H.264 track (index 0), with SPS/PPS.
        audio_track: the AAC track (index 1), with its AudioSpecificConfig.

    Raises:
        ConfigError: a size, rate or interval the camera cannot make.
    """

    __test__ = False  # not a pytest test class, despite the name

    def __init__(
        self,
        width: int = 640,
        height: int = 360,
        fps: int = 25,
        sample_rate: int = 48000,
        gop_seconds: float = 1.0,
        wallclock: Callable[[], float] = time.time,
    ) -> None:
        if width % 2 or height % 2 or width < 2 * _CELL_W * _CLOCK_CHARS or height < 32:
            raise ConfigError(f"TestCamera: bad picture size {width}x{height}")
        if fps <= 0 or sample_rate <= 0 or gop_seconds <= 0:
            raise ConfigError("TestCamera: fps, sample_rate and gop_seconds must be positive")
        self._width, self._height, self._fps = width, height, fps
        self._sample_rate = sample_rate
        self._wallclock = wallclock
        self._video_n = 0  # next picture to encode
        self._audio_in = 0  # next input sample position
        self._audio_out = 0  # pts of the next access unit the encoder will give
        self._audio_pending: list[Frame] = []
        self._video_pending: list[Frame] = []
        self._setup_picture()
        self._setup_sound()

        gop = max(1, round(gop_seconds * fps))
        self._venc = venc = av.CodecContext.create("libx264", "w")
        venc.width, venc.height, venc.pix_fmt = width, height, "yuv420p"
        venc.time_base = Fraction(1, fps)
        venc.framerate = Fraction(fps, 1)
        venc.gop_size = gop
        venc.max_b_frames = 0
        venc.thread_count = 1
        # zerolatency with one thread: one slice per picture (zerolatency alone would slice
        # per thread) and no encoder delay, so each picture's packet comes out of the encode
        # call that takes it in.
        venc.options = {
            "preset": "ultrafast",
            "tune": "zerolatency",
            "profile": "baseline",
            "x264-params": (
                f"keyint={gop}:min-keyint={gop}:scenecut=0:bframes=0:repeat-headers=1:"
                "threads=1:sliced-threads=0:rc-lookahead=0:sync-lookahead=0"
            ),
        }
        venc.open()

        self._aenc = aenc = av.CodecContext.create("aac", "w")
        aenc.sample_rate = sample_rate
        aenc.layout = "mono"
        aenc.format = "fltp"
        aenc.bit_rate = 64000
        aenc.time_base = Fraction(1, sample_rate)
        aenc.open()
        self.audio_track = Track(
            index=1,
            codec=Codec.AAC,
            clock_rate=sample_rate,
            audio_config=bytes(aenc.extradata or b""),
            sample_rate=sample_rate,
            channels=1,
        )

        # Encode the first picture now: its SPS/PPS become the video track's parameter sets.
        self.video_track = Track(
            index=0, codec=Codec.H264, clock_rate=VIDEO_CLOCK_RATE, width=width, height=height
        )
        first, _ = self._encode_picture()
        sps = pps = b""
        for nal in first:
            kind = nal[0] & 0x1F
            if kind == 7 and not sps:
                sps = nal
            elif kind == 8 and not pps:
                pps = nal
        if not sps or not pps:
            raise RuntimeError("TestCamera: libx264 emitted no SPS/PPS in its first picture")
        self.video_track = Track(
            index=0,
            codec=Codec.H264,
            clock_rate=VIDEO_CLOCK_RATE,
            parameter_sets=(sps, pps),
            width=width,
            height=height,
        )
        self._video_pending.append(Frame(self.video_track, 0, 0, True, first))

    # -- public -----------------------------------------------------------------------------

    def encode_until(self, media_time: float) -> list[Frame]:
        """Encode every frame whose presentation time is before ``media_time``.

        Args:
            media_time: seconds since the camera's start.

        Returns:
            The new frames of both tracks, in presentation-time order (video first on a tie).
        """
        while self._video_n / self._fps < media_time:
            pts = self._video_n * VIDEO_CLOCK_RATE // self._fps
            data, key = self._encode_picture()
            self._video_pending.append(Frame(self.video_track, pts, pts, key, data))
        # The AAC encoder holds frames back (priming and lookahead): feed it until its output
        # reaches media_time, so that every access unit before it is out.
        while self._audio_out < media_time * self._sample_rate:
            self._encode_sound()

        out: list[Frame] = []
        limit_v = media_time * VIDEO_CLOCK_RATE
        limit_a = media_time * self._sample_rate
        for pending, limit in ((self._video_pending, limit_v), (self._audio_pending, limit_a)):
            cut = 0
            while cut < len(pending) and pending[cut].pts < limit:
                cut += 1
            out.extend(pending[:cut])
            del pending[:cut]
        out.sort(key=lambda f: (Fraction(f.pts, f.track.clock_rate), f.track.index))
        return out

    # -- video ------------------------------------------------------------------------------

    def _setup_picture(self) -> None:
        w, h = self._width, self._height
        self._scale = s = max(1, min(w // (_CELL_W * _CLOCK_CHARS + 2), h // (4 * _GLYPH_H)))
        text_w = _CELL_W * s * _CLOCK_CHARS - s
        self._clock_x = (w - text_w) // 2
        band_h = _GLYPH_H * s + 2 * s
        band_h += band_h % 2
        self._band_h = band_h
        self._band_y = ((h - band_h) // 2) & ~1
        # Each glyph row, scaled horizontally, with the blank column after it.
        self._glyph_rows = {
            ch: tuple(
                b"".join(
                    (bytes((_INK_Y,)) if c == "#" else bytes((_PAPER_Y,))) * s for c in row
                )
                + bytes((_PAPER_Y,)) * s
                for row in rows
            )
            for ch, rows in _FONT.items()
        }
        # Bars twice over, so any scroll offset is one slice.
        def bars(values: tuple[int, ...], width: int) -> bytes:
            row = bytearray(width)
            for x in range(width):
                row[x] = values[x * len(values) // width]
            return bytes(row) * 2

        self._bars = (bars(_BARS_Y, w), bars(_BARS_U, w // 2), bars(_BARS_V, w // 2))
        self._scroll_step = max(2, (w // (4 * self._fps)) & ~1)  # across the picture in ~4 s

    def _draw(self, n: int, now: float) -> av.VideoFrame:
        w, h, s = self._width, self._height, self._scale
        frame = av.VideoFrame(w, h, "yuv420p")
        off = (n * self._scroll_step) % w
        y0, bh = self._band_y, self._band_h
        text = _wallclock_text(now)

        # Luma: bars above and below the clock band; the band is paper with ink glyphs.
        plane = frame.planes[0]
        pad = bytes(plane.line_size - w)
        bar = self._bars[0][off : off + w] + pad
        left = bytes((_PAPER_Y,)) * self._clock_x
        right = bytes((_PAPER_Y,)) * (w - self._clock_x - (_CELL_W * s * _CLOCK_CHARS)) + pad
        blank = bytes((_PAPER_Y,)) * w + pad
        glyphs = [self._glyph_rows[c] for c in text]
        parts = [bar * y0, blank * s]
        for r in range(_GLYPH_H):
            parts.append((left + b"".join(g[r] for g in glyphs) + right) * s)
        parts.append(blank * (bh - s - _GLYPH_H * s))
        parts.append(bar * (h - y0 - bh))
        plane.update(b"".join(parts))

        # Chroma: bars, neutral in the band.
        cw, coff = w // 2, off // 2
        for i in (1, 2):
            plane = frame.planes[i]
            pad = bytes(plane.line_size - cw)
            bar = self._bars[i][coff : coff + cw] + pad
            grey = bytes((_NEUTRAL_C,)) * cw + pad
            plane.update(bar * (y0 // 2) + grey * (bh // 2) + bar * ((h - y0 - bh) // 2))
        frame.pts = n
        return frame

    def _encode_picture(self) -> tuple[NalUnits, bool]:
        n = self._video_n
        self._video_n += 1
        packets = self._venc.encode(self._draw(n, self._wallclock()))
        if len(packets) != 1:
            raise RuntimeError(f"TestCamera: libx264 gave {len(packets)} packets for one picture")
        # x264 writes Annex B: split once here, where the picture enters the relay
        nals = tuple(map(bytes, split_annexb(bytes(packets[0]))))
        key = any(nal[0] & 0x1F == 5 for nal in nals)
        return nals, key

    # -- audio ------------------------------------------------------------------------------

    def _setup_sound(self) -> None:
        sr = self._sample_rate
        beep = int(BEEP_SECONDS * sr)
        ramp = max(1, int(_RAMP_SECONDS * sr))
        second = array("f", bytes(4 * sr))
        for i in range(beep):
            gain = min(1.0, i / ramp, (beep - i) / ramp)
            second[i] = BEEP_AMPLITUDE * gain * math.sin(2 * math.pi * BEEP_HZ * i / sr)
        # Two seconds, so a 1024-sample frame starting anywhere in the first is one slice.
        self._second = second.tobytes() * 2

    def _encode_sound(self) -> None:
        start = self._audio_in % self._sample_rate
        frame = av.AudioFrame(format="fltp", layout="mono", samples=AAC_FRAME_SAMPLES)
        frame.planes[0].update(self._second[4 * start : 4 * (start + AAC_FRAME_SAMPLES)])
        frame.sample_rate = self._sample_rate
        frame.pts = self._audio_in
        frame.time_base = Fraction(1, self._sample_rate)
        self._audio_in += AAC_FRAME_SAMPLES
        for packet in self._aenc.encode(frame):
            # The first packet carries the encoder's priming (pts < 0): a live joiner never
            # has it, so neither does the camera's stream. pts then match the input samples.
            if packet.pts is None or packet.pts < 0:
                continue
            pts = int(packet.pts)
            self._audio_pending.append(Frame(self.audio_track, pts, pts, True, bytes(packet)))
            self._audio_out = pts + AAC_FRAME_SAMPLES

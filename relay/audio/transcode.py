"""Audio to AAC-LC for outputs that cannot carry the source codec (G.711 in FLV/HLS), and silent
AAC for sources without audio, with PyAV (FFmpeg's decoders, libswresample and native ``aac``).

Output: AAC-LC, 48000 Hz stereo by default. 48 kHz is the rate YouTube, Twitch and Facebook
ingests list first and what browsers' audio hardware runs at (no resampling in the player);
stereo because some ingests and players mishandle mono AAC while a mono source upmixed to two
identical channels costs little (FFmpeg's encoder codes them as mid/side, side silent).

Timing: output pts count samples at the output rate. The first input frame anchors the
output timeline (input pts converted to output samples); every resampled sample then takes the
next position, so output time follows the samples actually carried. libswresample compensates
its filter delay (its output starts at the input's first instant), and FFmpeg's aac encoder
stamps each packet with its input frame's pts minus ``initial_padding`` (1024 samples of
priming): decoding the packets in order, decoded sample ``k`` plays at the instant of the input
sample it reproduces. A decoder that plays priming (TS/FLV carry no edit list) thus stays in sync
with video. Packets that would get a negative pts (priming before the timeline's origin) are
dropped. Input gaps up to ``MAX_FILL_SECONDS`` are filled with silence, small overlaps trimmed;
anything larger restarts the timeline with a new encoder. Output times only move forward, a whole
frame at a time: a restart that would put the new encoder's first (priming) frame less than a
frame after the last one sent (input that went back, or came straight after a ``flush``) starts
that much later instead.
"""

from __future__ import annotations

from fractions import Fraction
from functools import lru_cache

import av
import av.error

from relay.errors import UnsupportedError
from relay.media import Codec, Frame, Track

OUTPUT_SAMPLE_RATE = 48000
OUTPUT_CHANNELS = 2
DEFAULT_BITRATE = 96000
AAC_FRAME_SAMPLES = 1024
MAX_FILL_SECONDS = 1.0
"""Gaps up to this long are filled with silence; longer jumps (a reconnect) reset the timeline."""
_LAYOUTS = {1: "mono", 2: "stereo"}

__all__ = ["AacTranscoder", "SilentAac", "OUTPUT_SAMPLE_RATE", "OUTPUT_CHANNELS"]


def _aac_encoder(sample_rate: int, channels: int, bitrate: int) -> av.AudioCodecContext:
    enc = av.CodecContext.create("aac", "w")
    enc.sample_rate = sample_rate
    enc.layout = _LAYOUTS[channels]
    enc.format = "fltp"
    enc.bit_rate = bitrate
    enc.time_base = Fraction(1, sample_rate)
    enc.open()
    return enc


def _aac_track(index: int, enc: av.AudioCodecContext, channels: int) -> Track:
    rate = enc.sample_rate
    return Track(index, Codec.AAC, rate, audio_config=bytes(enc.extradata or b""),
                 sample_rate=rate, channels=channels)


def _silence(like: av.AudioFrame, samples: int) -> av.AudioFrame:
    """A frame of ``samples`` zero samples in ``like``'s format, layout and rate."""
    frame = av.AudioFrame(format=like.format.name, layout=like.layout.name, samples=samples)
    for plane in frame.planes:
        plane.update(bytes(plane.buffer_size))
    frame.sample_rate = like.sample_rate
    return frame


def _trim(frame: av.AudioFrame, skip: int) -> av.AudioFrame:
    """``frame`` without its first ``skip`` samples (``skip < frame.samples``)."""
    fmt = frame.format
    step = fmt.bytes if fmt.is_planar else fmt.bytes * len(frame.layout.channels)
    out = av.AudioFrame(format=fmt.name, layout=frame.layout.name, samples=frame.samples - skip)
    for src, dst in zip(frame.planes, out.planes):
        data = bytes(src)[skip * step : frame.samples * step]
        dst.update(data + bytes(dst.buffer_size - len(data)))
    out.sample_rate = frame.sample_rate
    return out


class AacTranscoder:
    """Decodes any audio FFmpeg decodes and re-encodes it as AAC-LC frames of 1024 samples.

    Input pts are on the stream's timeline (unwrapped ticks of ``source.clock_rate``, as the
    bus carries them), not raw 32-bit RTP timestamps.

    Args:
        source: the input Track; its codec value names the FFmpeg decoder (``pcm_alaw``,
            ``pcm_mulaw``, ``aac`` with ``audio_config`` as extradata, ...).
        bitrate: AAC bit rate in bit/s.
        sample_rate: output rate in Hz (one FFmpeg's aac encoder supports).
        channels: output channels, 1 or 2.

    Attributes:
        track: the output AAC Track (same index as ``source``; clock rate = sample rate;
            ``audio_config`` from the encoder's extradata).
        filled: input samples of silence inserted for gaps.
        trimmed: input samples dropped as overlapping what was already carried.
        resets: timeline restarts (jumps longer than ``MAX_FILL_SECONDS``, or backwards).
        errors: input frames the decoder rejected (the gap they leave is filled).
    """

    def __init__(self, source: Track, bitrate: int = DEFAULT_BITRATE,
                 sample_rate: int = OUTPUT_SAMPLE_RATE, channels: int = OUTPUT_CHANNELS) -> None:
        if channels not in _LAYOUTS:
            raise UnsupportedError(f"AAC transcoder: {channels} output channels")
        if sample_rate not in (av.codec.Codec("aac", "w").audio_rates or ()):
            raise UnsupportedError(f"AAC transcoder: {sample_rate} Hz output")
        self.source = source
        self.bitrate = bitrate
        self.sample_rate = sample_rate
        self.channels = channels
        self._decoder = self._open_decoder(source)
        self._in_time_base = Fraction(1, source.clock_rate)
        self._encoder = _aac_encoder(sample_rate, channels, bitrate)
        self.track = _aac_track(source.index, self._encoder, channels)
        self._resampler: av.AudioResampler | None = None
        self._resampler_key: tuple[str, str, int] | None = None
        self._fifo = av.AudioFifo()
        self._next_in: int | None = None  # expected pts of the next input sample (input ticks)
        self._origin = 0  # output sample position of the timeline's anchor
        self._fed = 0  # samples given to the encoder since the anchor
        self._last_pts: int | None = None
        self.filled = 0
        self.trimmed = 0
        self.resets = 0
        self.errors = 0

    @staticmethod
    def _open_decoder(source: Track) -> av.AudioCodecContext:
        try:
            dec = av.CodecContext.create(str(source.codec), "r")
        except (av.error.FFmpegError, ValueError) as exc:
            raise UnsupportedError(f"AAC transcoder: no decoder for {source.codec}") from exc
        if not isinstance(dec, av.AudioCodecContext):
            raise UnsupportedError(f"AAC transcoder: {source.codec} is not audio")
        if source.audio_config:
            dec.extradata = source.audio_config
        if source.codec is not Codec.AAC:
            dec.sample_rate = source.sample_rate or source.clock_rate
            dec.layout = _LAYOUTS.get(source.channels or 1, f"{source.channels}c")
        return dec

    def push(self, frame: Frame) -> list[Frame]:
        """Takes one input frame (pts in ``source.clock_rate`` units); returns the AAC frames
        completed so far (each 1024 samples, pts in output samples)."""
        samples = frame.data
        assert isinstance(samples, bytes), "an audio Frame carries bytes"
        packet = av.Packet(samples)
        packet.pts = packet.dts = frame.pts
        packet.time_base = self._in_time_base
        try:
            decoded = self._decoder.decode(packet)
        except av.error.FFmpegError:
            self.errors += 1
            return []
        out: list[Frame] = []
        for audio in decoded:
            pts = frame.pts if audio.pts is None else audio.pts
            self._take(audio, pts, out)
        return out

    def flush(self) -> list[Frame]:
        """Drains the resampler and encoder (the tail of the last input); the next ``push``
        starts a new timeline."""
        out: list[Frame] = []
        self._drain(out)
        self._next_in = None
        return out

    def _take(self, audio: av.AudioFrame, pts: int, out: list[Frame]) -> None:
        rate = audio.sample_rate
        clock = self.source.clock_rate
        if self._next_in is not None:
            gap = round((pts - self._next_in) * rate / clock)  # in input samples
            if gap > MAX_FILL_SECONDS * rate or -gap > MAX_FILL_SECONDS * rate:
                self.resets += 1
                self._drain(out)
                self._next_in = None
            elif gap > 0:
                self.filled += gap
                self._resample(_silence(audio, gap), out)
            elif gap < 0:
                skip = min(-gap, audio.samples)
                self.trimmed += skip
                if skip == audio.samples:
                    return
                audio = _trim(audio, skip)
                pts += round(skip * clock / rate)
        if self._next_in is None:
            self._origin = round(pts * self.sample_rate / clock)
            if self._last_pts is not None:  # priming frame (origin - 1024) a frame after the last
                self._origin = max(self._origin, self._last_pts + 2 * AAC_FRAME_SAMPLES)
            self._fed = 0
        self._next_in = pts + round(audio.samples * clock / rate)
        self._resample(audio, out)

    def _resample(self, audio: av.AudioFrame, out: list[Frame]) -> None:
        key = (audio.format.name, audio.layout.name, audio.sample_rate)
        if self._resampler is None or key != self._resampler_key:
            if self._resampler is not None:
                self._feed(self._resampler.resample(None), out)
            self._resampler = av.AudioResampler(
                format="fltp", layout=_LAYOUTS[self.channels], rate=self.sample_rate)
            self._resampler_key = key
        audio.pts = None
        self._feed(self._resampler.resample(audio), out)

    def _feed(self, frames: list[av.AudioFrame], out: list[Frame]) -> None:
        for resampled in frames:
            resampled.pts = None
            self._fifo.write(resampled)
        while self._fifo.samples >= AAC_FRAME_SAMPLES:
            self._encode(self._fifo.read(AAC_FRAME_SAMPLES), out)

    def _encode(self, audio: av.AudioFrame | None, out: list[Frame]) -> None:
        if audio is not None:
            audio.pts = self._origin + self._fed
            audio.time_base = self._encoder.time_base
            self._fed += audio.samples
        for packet in self._encoder.encode(audio):
            pts = packet.pts
            if pts is None or pts < 0 or (self._last_pts is not None and pts <= self._last_pts):
                continue
            self._last_pts = pts
            out.append(Frame(self.track, pts, pts, True, bytes(packet)))

    def _drain(self, out: list[Frame]) -> None:
        if self._resampler is not None:
            self._feed(self._resampler.resample(None), out)
            self._resampler = None
            self._resampler_key = None
        while self._fifo.samples >= AAC_FRAME_SAMPLES:
            self._encode(self._fifo.read(AAC_FRAME_SAMPLES), out)
        if self._fifo.samples:
            self._encode(self._fifo.read(), out)
        self._fifo = av.AudioFifo()
        self._encode(None, out)
        self._encoder = _aac_encoder(self.sample_rate, self.channels, self.bitrate)


@lru_cache(maxsize=8)
def _silent_packet(sample_rate: int, channels: int) -> tuple[bytes, bytes]:
    """(AudioSpecificConfig, one steady-state silent access unit) from FFmpeg's aac encoder.

    After its first (priming) packet the encoder codes digital silence as the same few bytes
    every frame (measured: 6 bytes at 48 kHz stereo), so one packet serves forever.
    """
    enc = _aac_encoder(sample_rate, channels, DEFAULT_BITRATE)
    packets: list[bytes] = []
    for i in range(4):
        frame = av.AudioFrame(format="fltp", layout=_LAYOUTS[channels], samples=AAC_FRAME_SAMPLES)
        for plane in frame.planes:
            plane.update(bytes(plane.buffer_size))
        frame.sample_rate = sample_rate
        frame.pts = i * AAC_FRAME_SAMPLES
        frame.time_base = enc.time_base
        packets.extend(bytes(p) for p in enc.encode(frame))
    steady = packets[-1]
    if packets[-2] != steady:  # not expected with FFmpeg's aac; guards a future change
        raise UnsupportedError("silent AAC: the encoder's silence is not constant")
    return bytes(enc.extradata or b""), steady


class SilentAac:
    """Silent AAC-LC frames on a given timeline, for a destination that needs an audio track
    when the source has none.

    Args:
        track_index: index of the made-up audio track.
        sample_rate: output rate in Hz.
        channels: 1 or 2.
        start: timeline seconds of the first frame; ``None`` anchors at the first
            ``frames_until`` call.

    Attributes:
        track: the AAC Track the frames belong to.
    """

    def __init__(self, track_index: int, sample_rate: int = OUTPUT_SAMPLE_RATE,
                 channels: int = OUTPUT_CHANNELS, start: float | None = None) -> None:
        if channels not in _LAYOUTS:
            raise UnsupportedError(f"silent AAC: {channels} channels")
        config, self._packet = _silent_packet(sample_rate, channels)
        self.track = Track(track_index, Codec.AAC, sample_rate, audio_config=config,
                           sample_rate=sample_rate, channels=channels)
        self._next: int | None = None if start is None else round(start * sample_rate)

    def frames_until(self, pts_seconds: float) -> list[Frame]:
        """Every frame not yet returned that starts at or before ``pts_seconds`` (so audio
        always covers the timeline up to that instant)."""
        limit = round(pts_seconds * self.track.clock_rate)
        if self._next is None:
            self._next = limit
        out: list[Frame] = []
        while self._next <= limit:
            out.append(Frame(self.track, self._next, self._next, True, self._packet))
            self._next += AAC_FRAME_SAMPLES
        return out

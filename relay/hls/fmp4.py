"""CMAF fragmented MP4 for LL-HLS (RFC 8216bis 3.1.2; ISO/IEC 23000-19, ISO/IEC 14496-12 8.8).

Pure: frames in, bytes out, muxed by FFmpeg's mp4 muxer through PyAV (no hand-written boxes).
PyAV calls only ``av_interleaved_write_frame``, never ``av_write_frame(NULL)``, so one long-lived
``frag_custom`` container cannot be told to close a fragment on demand; instead each part is its
own short container (``empty_moov``: ``ftyp`` + ``moov`` first, then one ``moof`` + ``mdat``
holding every track's samples of the part, ``mfra`` last). Its ``ftyp`` + ``moov`` is the init
section (``EXT-X-MAP``), the same for every part while the tracks keep their parameters; its
``moof`` + ``mdat`` is the part. Decode times stay absolute (``avoid_negative_ts`` off, no edit
list, ``tfdt`` from each track's first DTS) and ``fragment_index`` numbers the ``mfhd``, so the
parts of a stream concatenate behind one init section into one valid fragmented MP4.

H.264 is written as ``avc1`` and H.265 as ``hvc1`` (parameter sets in the sample entry, as Apple
requires for HEVC in HLS), AAC as ``mp4a``; other codecs cannot be carried and are left out.
"""

from __future__ import annotations

import io
import struct
from collections.abc import Sequence
from dataclasses import dataclass

import av

from relay.codecs.h264 import to_annexb
from relay.hls.segmenter import TS_OFFSET_SECONDS, StreamTemplates, add_track_streams
from relay.media import Codec, Frame, Kind, Track

CARRIED = (Codec.H264, Codec.H265, Codec.AAC)

_MOVFLAGS = "frag_custom+empty_moov+default_base_moof+frag_discont"
_BOX_HEADER = struct.Struct(">I4s")
_INIT_BOXES = (b"ftyp", b"moov")
_FRAGMENT_BOXES = (b"moof", b"mdat")


@dataclass(frozen=True, slots=True)
class Fragment:
    """One part as fMP4.

    Attributes:
        init: ``ftyp`` + ``moov``, the init section these media bytes need.
        media: ``moof`` + ``mdat``.
    """

    init: bytes
    media: bytes


def mux_fragment(frames: Sequence[Frame], tracks: dict[int, Track], sequence: int,
                 durations: dict[int, int], templates: StreamTemplates) -> Fragment:
    """Mux one part's frames into a CMAF fragment and its init section.

    Args:
        frames: the part's frames in arrival order, DTS increasing per track.
        tracks: the Track of each index (all tracks of the stream, so every part's init
            section is the same), H.264, H.265 or AAC only.
        sequence: the ``mfhd`` sequence number, 1 for the stream's first fragment, increasing.
        durations: per track index, the duration of that track's last frame in the part
            (its clock units), which the muxer cannot know (it sees no later frame).
        templates: stream templates, reused from part to part (no encoder is opened).

    Returns:
        The init section and the fragment.

    Raises:
        av.FFmpegError: FFmpeg refused the frames.
    """
    buffer = io.BytesIO()
    container = av.open(buffer, "w", format="mp4", options={
        "movflags": _MOVFLAGS, "fragment_index": str(sequence),
        "avoid_negative_ts": "disabled", "use_editlist": "0"})
    try:
        streams, time_bases = add_track_streams(container, tracks, templates)
        for index, track in tracks.items():
            if track.kind is Kind.VIDEO:
                ctx = streams[index].codec_context
                ctx.extradata = to_annexb(track.parameter_sets)  # FFmpeg writes avcC/hvcC
                if track.codec is Codec.H265:
                    ctx.codec_tag = "hvc1"
        last = {frame.track.index: n for n, frame in enumerate(frames)}
        for n, frame in enumerate(frames):
            index = frame.track.index
            data = frame.data
            packet = av.Packet(data if isinstance(data, bytes) else to_annexb(data))
            offset = TS_OFFSET_SECONDS * frame.track.clock_rate
            packet.pts = frame.pts + offset
            packet.dts = frame.dts + offset
            if last[index] == n:
                packet.duration = durations[index]
            packet.time_base = time_bases[index]
            packet.stream = streams[index]
            packet.is_keyframe = frame.key
            container.mux_one(packet)
    finally:
        container.close()
    return _split(buffer.getbuffer())


def _split(data: memoryview) -> Fragment:
    """Take the top-level boxes apart: init boxes, fragment boxes; ``mfra`` is dropped."""
    init: list[bytes] = []
    media: list[bytes] = []
    offset = 0
    while offset + 8 <= len(data):
        size, kind = _BOX_HEADER.unpack_from(data, offset)
        if size < 8:
            raise ValueError(f"fMP4 from FFmpeg: box {kind!r} at {offset} has size {size}")
        box = bytes(data[offset:offset + size])
        if kind in _INIT_BOXES:
            init.append(box)
        elif kind in _FRAGMENT_BOXES:
            media.append(box)
        offset += size
    return Fragment(b"".join(init), b"".join(media))

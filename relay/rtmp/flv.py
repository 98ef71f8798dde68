"""FLV tag bodies for RTMP audio and video messages (Adobe FLV v10.1, annex E; Enhanced RTMP v1).

An RTMP audio/video message payload is an FLV tag body: AUDIODATA (E.4.2.1) with AACAUDIODATA,
VIDEODATA (E.4.3.1) with AVCVIDEOPACKET (composition time, AVCC NAL units), or for H.265 the
Enhanced RTMP ExVideoTagHeader with FourCC ``hvc1``. ``FlvFileWriter`` wraps tags in an FLV
file (E.2, E.3) for checking with ffprobe.

NAL units in coded-frame tags: access unit delimiters, filler data and parameter sets are
dropped. In FLV the parameter sets travel in the sequence header (avcC / hvcC), which servers
replay to every joining viewer; in-band copies would duplicate them, and a change of parameters
becomes a new Track on the bus, hence a new sequence header. AUDs mean nothing in FLV.
"""

from __future__ import annotations

import struct
from typing import IO, Any

from relay.codecs.h264 import avc_decoder_configuration
from relay.errors import LocalProtocolError
from relay.media import NalUnits

# FLV SoundFormat / CodecID values (E.4.2.1, E.4.3.1).
SOUND_FORMAT_AAC = 10
VIDEO_CODEC_AVC = 7
FOURCC_HEVC = b"hvc1"

FRAME_KEY = 1
FRAME_INTER = 2

AVC_SEQUENCE_HEADER = 0
AVC_NALU = 1
AVC_END_OF_SEQUENCE = 2

# Enhanced RTMP PacketType values.
PACKET_SEQUENCE_START = 0
PACKET_CODED_FRAMES = 1
PACKET_SEQUENCE_END = 2
PACKET_CODED_FRAMES_X = 3

AAC_SEQUENCE_HEADER = 0
AAC_RAW = 1
# SoundFormat 10 (AAC), SoundRate 3 (44 kHz), SoundSize 1 (16 bit), SoundType 1 (stereo): the
# spec fixes these for AAC; the real rate and channels come from the AudioSpecificConfig.
AAC_FLAGS = (SOUND_FORMAT_AAC << 4) | (3 << 2) | (1 << 1) | 1

TAG_AUDIO = 8
TAG_VIDEO = 9
TAG_SCRIPT = 18

_H264_DROP = frozenset({7, 8, 9, 12})  # SPS, PPS, access unit delimiter, filler data
_H265_DROP = frozenset({32, 33, 34, 35, 38})  # VPS, SPS, PPS, AUD, filler data
_U32 = struct.Struct(">I")
_MAX_CTS = (1 << 23) - 1
_AVC_KEY = bytes([(FRAME_KEY << 4) | VIDEO_CODEC_AVC, AVC_NALU])
_AVC_INTER = bytes([(FRAME_INTER << 4) | VIDEO_CODEC_AVC, AVC_NALU])
_AAC_RAW_HEAD = bytes([AAC_FLAGS, AAC_RAW])


def _avcc(parts: list[bytes], nals: NalUnits, drop: frozenset[int], hevc: bool) -> list[bytes]:
    """``parts`` (the tag's head) and then AVCC NAL units (4-byte length, unit), for the
    caller's one join."""
    for nal in nals:
        nal_type = (nal[0] >> 1) & 0x3F if hevc else nal[0] & 0x1F
        if nal_type in drop:
            continue
        parts.append(_U32.pack(len(nal)))
        parts.append(nal)
    return parts


def _cts(composition_ms: int) -> bytes:
    if not -_MAX_CTS - 1 <= composition_ms <= _MAX_CTS:
        raise LocalProtocolError(f"FLV: composition time {composition_ms} ms out of SI24 range")
    return (composition_ms & 0xFFFFFF).to_bytes(3, "big")


def avc_sequence_header(sps: bytes, pps: bytes) -> bytes:
    """The AVC sequence header tag body: keyframe, AVC, AVCPacketType 0, avcC.

    Raises:
        RemoteProtocolError: the SPS does not parse (it came from the source).
    """
    return bytes([(FRAME_KEY << 4) | VIDEO_CODEC_AVC, AVC_SEQUENCE_HEADER, 0, 0, 0]) + (
        avc_decoder_configuration(sps, pps)
    )


def avc_nalus(nals: NalUnits, key: bool, composition_ms: int = 0) -> bytes:
    """An AVC coded-frame tag body: AVCPacketType 1, composition time, AVCC NAL units.

    Args:
        nals: one access unit's NAL units (``Frame.data``).
        key: the frame is an IDR frame.
        composition_ms: pts - dts in milliseconds.
    """
    head = _AVC_KEY if key else _AVC_INTER
    return b"".join(_avcc([head, _cts(composition_ms)], nals, _H264_DROP, False))


def avc_end_of_sequence() -> bytes:
    """The AVC end-of-sequence tag body (AVCPacketType 2)."""
    return bytes([(FRAME_KEY << 4) | VIDEO_CODEC_AVC, AVC_END_OF_SEQUENCE, 0, 0, 0])


def hevc_sequence_start(hvcc: bytes) -> bytes:
    """Enhanced RTMP SequenceStart for H.265: ExVideoTagHeader, ``hvc1``, the hvcC record.

    ``hvcc`` comes from ``relay.codecs.h265.hevc_decoder_configuration(vps, sps, pps)``.
    """
    return bytes([0x80 | (FRAME_KEY << 4) | PACKET_SEQUENCE_START]) + FOURCC_HEVC + hvcc


def hevc_coded_frames(nals: NalUnits, key: bool, composition_ms: int = 0) -> bytes:
    """Enhanced RTMP coded frames for H.265 (CodedFramesX when the composition time is 0)."""
    frame_type = FRAME_KEY if key else FRAME_INTER
    if composition_ms == 0:
        head = bytes([0x80 | (frame_type << 4) | PACKET_CODED_FRAMES_X]) + FOURCC_HEVC
        return b"".join(_avcc([head], nals, _H265_DROP, True))
    head = bytes([0x80 | (frame_type << 4) | PACKET_CODED_FRAMES]) + FOURCC_HEVC
    return b"".join(_avcc([head, _cts(composition_ms)], nals, _H265_DROP, True))


def hevc_sequence_end() -> bytes:
    """Enhanced RTMP SequenceEnd for H.265."""
    return bytes([0x80 | (FRAME_KEY << 4) | PACKET_SEQUENCE_END]) + FOURCC_HEVC


def aac_sequence_header(audio_specific_config: bytes) -> bytes:
    """The AAC sequence header tag body: AACPacketType 0 and the AudioSpecificConfig."""
    if not audio_specific_config:
        raise LocalProtocolError("FLV: AAC sequence header needs an AudioSpecificConfig")
    return bytes([AAC_FLAGS, AAC_SEQUENCE_HEADER]) + audio_specific_config


def aac_raw(frame: bytes) -> bytes:
    """An AAC raw frame tag body: AACPacketType 1 and one access unit (no ADTS header)."""
    return _AAC_RAW_HEAD + frame


def metadata(
    width: int = 0,
    height: int = 0,
    framerate: float = 0,
    videocodecid: int | str | None = None,
    audiocodecid: int | None = None,
    audiosamplerate: int = 0,
    audiochannels: int = 0,
    videodatarate: float = 0,
    audiodatarate: float = 0,
) -> dict[str, Any]:
    """The ``onMetaData`` properties (E.5); unknown (zero/None) values are left out.

    ``videocodecid`` is 7 for AVC or a FourCC such as ``"hvc1"`` (Enhanced RTMP sends its
    32-bit value); ``stereo`` is derived from ``audiochannels``; data rates are in kbit/s.
    """
    props: dict[str, Any] = {}
    if width:
        props["width"] = float(width)
    if height:
        props["height"] = float(height)
    if framerate:
        props["framerate"] = float(framerate)
    if isinstance(videocodecid, str):
        props["videocodecid"] = float(int.from_bytes(videocodecid.encode("ascii"), "big"))
    elif videocodecid is not None:
        props["videocodecid"] = float(videocodecid)
    if videodatarate:
        props["videodatarate"] = float(videodatarate)
    if audiocodecid is not None:
        props["audiocodecid"] = float(audiocodecid)
    if audiosamplerate:
        props["audiosamplerate"] = float(audiosamplerate)
    if audiochannels:
        props["audiochannels"] = float(audiochannels)
        props["stereo"] = audiochannels >= 2
    if audiodatarate:
        props["audiodatarate"] = float(audiodatarate)
    return props


class FlvFileWriter:
    """Writes an FLV file (E.2 header, E.3 body): tags with their PreviousTagSize fields.

    Args:
        out: a binary file opened for writing.
        audio: the file has audio tags.
        video: the file has video tags.
    """

    def __init__(self, out: IO[bytes], audio: bool = True, video: bool = True) -> None:
        self._out = out
        flags = (4 if audio else 0) | (1 if video else 0)
        out.write(b"FLV\x01" + bytes([flags]) + _U32.pack(9) + _U32.pack(0))

    def write_tag(self, tag_type: int, timestamp_ms: int, body: bytes) -> None:
        """Append one tag (8 audio, 9 video, 18 script data)."""
        if len(body) > 0xFFFFFF:
            raise LocalProtocolError("FLV: tag body over 16 MiB")
        ts = timestamp_ms & 0xFFFFFFFF
        header = (
            bytes([tag_type]) + len(body).to_bytes(3, "big") + (ts & 0xFFFFFF).to_bytes(3, "big")
            + bytes([ts >> 24]) + b"\x00\x00\x00"
        )
        self._out.write(header)
        self._out.write(body)
        self._out.write(_U32.pack(len(header) + len(body)))

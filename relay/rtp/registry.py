"""Maps SDP rtpmap encoding names (RFC 4566 6, RFC 3551 6) to depacketizers.

Adding a codec is one payload-format module and one entry in ``_FACTORIES``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol

from relay.errors import UnsupportedError
from relay.media import Frame, Track
from relay.rtp import g711, h265, latm
from relay.rtp.aac import AacDepacketizer, aac_track
from relay.rtp.h264 import H264Depacketizer, h264_track
from relay.rtp.packet import RtpPacket

__all__ = ["Depacketizer", "make_depacketizer", "supported_encodings"]


class Depacketizer(Protocol):
    """What the ingest needs from a payload format's depacketizer.

    ``push`` takes packets in sequence order with the count of packets lost just before each
    (``relay.rtp.sequence.SequenceCheck``: loss is detected once, by the ingest), and never
    raises on what the network sent: a payload that breaks its format counts in ``bad``, an
    access unit that yields nothing in ``dropped``. The frames it returns are new and the
    caller's alone (it keeps no reference): their times are the RTP timestamp, and the ingest
    sets their stream times in place (``media.restamp``) instead of building each twice.
    """

    track: Track
    dropped: int
    bad: int

    def push(self, packet: RtpPacket, lost: int = 0) -> list[Frame]: ...


Factory = Callable[[int, int, int, dict[str, str]], Depacketizer]


def _h264(index: int, clock_rate: int, channels: int, fmtp: dict[str, str]) -> Depacketizer:
    return H264Depacketizer(h264_track(index, clock_rate, fmtp))


def _mpeg4_generic(
    index: int, clock_rate: int, channels: int, fmtp: dict[str, str]
) -> Depacketizer:
    return AacDepacketizer(aac_track(index, clock_rate, channels, fmtp), fmtp)


_FACTORIES: dict[str, Factory] = {
    "H264": _h264,
    "MPEG4-GENERIC": _mpeg4_generic,
    "H265": h265.make,
    "MP4A-LATM": latm.make,
    "PCMA": g711.make_pcma,
    "PCMU": g711.make_pcmu,
}


def supported_encodings() -> tuple[str, ...]:
    """The rtpmap encoding names a depacketizer exists for, upper case."""
    return tuple(_FACTORIES)


def make_depacketizer(
    index: int, encoding: str, clock_rate: int, channels: int, fmtp: dict[str, str]
) -> Depacketizer:
    """A depacketizer for one SDP media description.

    Args:
        index: the track index in its stream.
        encoding: the rtpmap encoding name, any case ("H264", "mpeg4-generic").
        clock_rate: the rtpmap clock rate.
        channels: the rtpmap channel count (1 when absent), for audio.
        fmtp: the fmtp parameters.

    Raises:
        UnsupportedError: no depacketizer for this encoding, or a mode it cannot carry.
        RemoteProtocolError: fmtp parameters the codec needs are missing or malformed.
    """
    factory = _FACTORIES.get(encoding.upper())
    if factory is None:
        raise UnsupportedError(f"codec {encoding} is not supported")
    return factory(index, clock_rate, channels, fmtp)

"""G.711 over RTP (RFC 3551 4.5.14 PCMA/PCMU): depacketizer and fixed-ptime packetizer.

One octet per sample per channel, channels interleaved (RFC 3551 4.1); the RTP timestamp counts
sample instants, so a packet is one frame whose pts is the packet's timestamp. Static payload
types 0 (PCMU) and 8 (PCMA) are 8000 Hz mono; a dynamic rtpmap may give another rate.
"""

from __future__ import annotations

from relay.errors import UnsupportedError
from relay.media import Codec, Frame, Track
from relay.rtp.packet import RtpPacket

PCMU_PAYLOAD_TYPE = 0
PCMA_PAYLOAD_TYPE = 8
MAX_CHANNELS = 8
MAX_CLOCK_RATE = 192000
DEFAULT_PTIME = 0.020

__all__ = ["G711Depacketizer", "G711Packetizer", "g711_track", "make", "make_pcma", "make_pcmu"]


def g711_track(index: int, codec: Codec, clock_rate: int = 8000, channels: int = 1) -> Track:
    """A PCMA or PCMU Track; the clock rate is the sample rate.

    Raises:
        UnsupportedError: not a G.711 codec, or a rate/channel count outside sane bounds.
    """
    if codec not in (Codec.PCMA, Codec.PCMU):
        raise UnsupportedError(f"G.711: not a G.711 codec: {codec}")
    if not 0 < clock_rate <= MAX_CLOCK_RATE or not 0 < channels <= MAX_CHANNELS:
        raise UnsupportedError(f"G.711: unsupported {clock_rate} Hz / {channels} channels")
    return Track(index, codec, clock_rate, sample_rate=clock_rate, channels=channels)


class G711Depacketizer:
    """Turns each RTP packet into one Frame of samples.

    Attributes:
        track: the PCMA/PCMU Track.
        dropped: packets with no samples (empty payload); they carry nothing to lose.
        bad: payloads that are not a whole number of sample frames (dropped).
    """

    def __init__(self, track: Track) -> None:
        self.track = track
        self.dropped = 0
        self.bad = 0

    def push(self, packet: RtpPacket, lost: int = 0) -> list[Frame]:
        """Returns the packet's samples as one key Frame, or nothing for an empty or bad
        payload; each packet stands alone, so ``lost`` changes nothing."""
        payload = packet.payload
        if not payload:
            self.dropped += 1
            return []
        if len(payload) % self.track.channels:
            self.bad += 1
            return []
        ts = packet.timestamp
        return [Frame(self.track, ts, ts, True, bytes(payload))]


class G711Packetizer:
    """Cuts a continuous run of G.711 samples into fixed-duration RTP packets.

    Samples are buffered until a whole packet (``ptime`` seconds) is available; ``flush``
    sends the remainder. The first packet (of the stream, after ``restart``) has the marker
    set, as RFC 3551 4.1 asks for the first packet of a talkspurt.

    Args:
        track: the PCMA/PCMU Track (its clock rate and channel count are used).
        payload_type: 0 for PCMU, 8 for PCMA, or a dynamic type.
        ssrc: the synchronization source.
        sequence: the first sequence number.
        timestamp: RTP timestamp of the first sample.
        ptime: packet duration in seconds.
    """

    def __init__(
        self,
        track: Track,
        payload_type: int,
        ssrc: int,
        sequence: int = 0,
        timestamp: int = 0,
        ptime: float = DEFAULT_PTIME,
    ) -> None:
        self.track = track
        self.payload_type = payload_type
        self.ssrc = ssrc
        self.sequence = sequence & 0xFFFF
        self.timestamp = timestamp & 0xFFFFFFFF
        self.samples_per_packet = max(1, round(ptime * track.clock_rate))
        self._bytes_per_packet = self.samples_per_packet * track.channels
        self._pending = bytearray()
        self._marker = True

    def push(self, samples: bytes | bytearray | memoryview) -> list[RtpPacket]:
        """Adds samples; returns every whole packet now available."""
        self._pending += samples
        size = self._bytes_per_packet
        whole = len(self._pending) // size * size
        out = [self._packet(self._pending[at : at + size]) for at in range(0, whole, size)]
        del self._pending[:whole]
        return out

    def flush(self) -> list[RtpPacket]:
        """Sends the buffered samples as one short packet (whole sample frames only)."""
        usable = len(self._pending) // self.track.channels * self.track.channels
        out = [self._packet(self._pending[:usable])] if usable else []
        self._pending.clear()
        return out

    def restart(self, timestamp: int) -> None:
        """Starts a new talkspurt at ``timestamp`` (after silence suppression or a jump)."""
        self._pending.clear()
        self.timestamp = timestamp & 0xFFFFFFFF
        self._marker = True

    def _packet(self, payload: bytes | bytearray) -> RtpPacket:
        packet = RtpPacket(
            marker=self._marker,
            payload_type=self.payload_type,
            sequence=self.sequence,
            timestamp=self.timestamp,
            ssrc=self.ssrc,
            payload=bytes(payload),
        )
        self._marker = False
        self.sequence = (self.sequence + 1) & 0xFFFF
        self.timestamp = (self.timestamp + len(payload) // self.track.channels) & 0xFFFFFFFF
        return packet


def make(index: int, clock_rate: int, channels: int, fmtp: dict[str, str],
         codec: Codec = Codec.PCMA) -> G711Depacketizer:
    """A depacketizer for an SDP ``PCMA``/``PCMU`` media line (``fmtp`` is unused).

    Raises:
        UnsupportedError: a rate or channel count outside sane bounds.
    """
    return G711Depacketizer(g711_track(index, codec, clock_rate or 8000, channels or 1))


def make_pcma(index: int, clock_rate: int, channels: int, fmtp: dict[str, str]) -> G711Depacketizer:
    """``make`` for the SDP encoding name PCMA (A-law)."""
    return make(index, clock_rate, channels, fmtp, Codec.PCMA)


def make_pcmu(index: int, clock_rate: int, channels: int, fmtp: dict[str, str]) -> G711Depacketizer:
    """``make`` for the SDP encoding name PCMU (µ-law)."""
    return make(index, clock_rate, channels, fmtp, Codec.PCMU)

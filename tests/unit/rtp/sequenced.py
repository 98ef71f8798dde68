"""Feeding a depacketizer as the ingest does: each packet with the loss before it, counted once
by a ``SequenceCheck`` kept per depacketizer across calls, stale packets refused."""

from __future__ import annotations

from collections.abc import Iterable
from weakref import WeakKeyDictionary

from relay.media import Frame
from relay.rtp.packet import RtpPacket
from relay.rtp.registry import Depacketizer
from relay.rtp.sequence import SequenceCheck

_checks: WeakKeyDictionary[Depacketizer, SequenceCheck] = WeakKeyDictionary()


def check_of(depacketizer: Depacketizer) -> SequenceCheck:
    """The sequence check that feeds ``depacketizer`` (its ``late`` counts stale packets)."""
    return _checks.setdefault(depacketizer, SequenceCheck())


def push_sequenced(depacketizer: Depacketizer, packets: Iterable[RtpPacket]) -> list[Frame]:
    """The frames ``packets`` complete, each pushed with the count lost just before it."""
    check = check_of(depacketizer)
    out: list[Frame] = []
    for packet in packets:
        lost = check.lost_before(packet.sequence)
        if lost >= 0:
            out += depacketizer.push(packet, lost)
    return out

"""The shared vocabulary: a Frame cannot change once made (the bus shares one between sinks)."""

from __future__ import annotations

import dataclasses

import pytest
from hypothesis import given
from hypothesis import strategies as st

from relay.media import Codec, Frame, Track

VIDEO = Track(0, Codec.H264, 90000)
AUDIO = Track(1, Codec.AAC, 48000)


@pytest.mark.parametrize("field", ["track", "pts", "dts", "key", "data", "discontinuity"])
def test_frame_is_immutable(field: str) -> None:
    frame = Frame(VIDEO, 3600, 0, True, (b"\x67sps", b"\x65idr"))
    with pytest.raises(dataclasses.FrozenInstanceError):
        setattr(frame, field, getattr(frame, field))
    with pytest.raises((AttributeError, TypeError)):  # slots: no attribute can be added either
        frame.extra = 1  # type: ignore[attr-defined]


def test_a_flagged_copy_leaves_the_shared_frame_as_it_was() -> None:
    shared = Frame(VIDEO, 0, 0, True, (b"\x65idr",))
    flagged = dataclasses.replace(shared, discontinuity=True)
    assert flagged.discontinuity and not shared.discontinuity
    assert flagged.data is shared.data  # the NAL units are shared, not copied


@given(st.lists(st.binary(min_size=1, max_size=64), max_size=8), st.binary(max_size=64))
def test_size_counts_payload_bytes(nals: list[bytes], samples: bytes) -> None:
    assert Frame(VIDEO, 0, 0, False, tuple(nals)).size == sum(len(n) for n in nals)
    assert Frame(AUDIO, 0, 0, True, samples).size == len(samples)

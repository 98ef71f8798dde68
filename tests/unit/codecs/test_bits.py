"""BitReader and BitWriter: round trips at every bit alignment, truncation, and work that
depends on the fields read, not on the size of what they are read from."""

import pytest
from hypothesis import given
from hypothesis import strategies as st

from relay.codecs.bits import BitReader, BitWriter
from relay.errors import RemoteProtocolError

from ..memory import allocates_at_most

fields = st.lists(
    st.one_of(
        st.integers(0, 64).flatmap(lambda n: st.tuples(st.just(n), st.integers(0, (1 << n) - 1))),
        st.binary(max_size=40),
    ),
    max_size=40,
)


@given(fields)
def test_round_trip(items: list[tuple[int, int] | bytes]) -> None:
    w = BitWriter()
    for item in items:
        if isinstance(item, bytes):
            w.octets(item)
        else:
            w.u(*item)
    data = bytes(w)
    r = BitReader(data, "test")
    for item in items:
        if isinstance(item, bytes):
            assert r.octets(len(item)) == item
        else:
            n, value = item
            assert r.peek(n) == value
            assert r.u(n) == value
    assert 0 <= r.bits_left < 8 and r.position == 8 * len(data) - r.bits_left
    assert r.u(r.bits_left) == 0  # the padding


def test_truncated_fields_name_the_structure() -> None:
    r = BitReader(b"\xab", "H.264 SPS")
    assert r.u(4) == 0xA
    for read in (lambda: r.u(5), lambda: r.peek(5), lambda: r.octets(1), lambda: r.skip(5)):
        with pytest.raises(RemoteProtocolError, match="H.264 SPS: truncated"):
            read()
    with pytest.raises(RemoteProtocolError, match="truncated"):
        r.skip(-1)  # a length computed from the input never moves the reader back
    assert r.u(4) == 0xB


def test_reading_a_field_costs_its_own_size() -> None:
    # Fields at the end of a large structure: the reader never makes an integer of all of it
    # (before, each field shifted one the size of the whole element).
    data = bytes(range(256)) * 4096  # 1 MiB
    with allocates_at_most(4096):
        r = BitReader(data, "big")
        r.skip(8 * len(data) - 20)
        assert r.peek(4) == 0xD and r.u(12) == 0xDFE and r.u(3) == 7  # ...FD FE FF
    # Unaligned octets: a copy of those octets and a few integers their size, no more.
    want = (int.from_bytes(data[-8193:], "big") >> 4 & (1 << 65536) - 1).to_bytes(8192, "big")
    with allocates_at_most(8 * 8192):
        r = BitReader(data, "big")
        r.skip(8 * len(data) - 8 * 8192 - 4)
        assert r.octets(8192) == want

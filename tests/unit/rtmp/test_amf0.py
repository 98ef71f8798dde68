import math
import struct
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from relay.errors import LocalProtocolError, RemoteProtocolError
from relay.rtmp import amf0

keys = st.text(max_size=20)
scalars = (
    st.none() | st.just(amf0.UNDEFINED) | st.booleans()
    | st.floats(allow_nan=False) | st.text(max_size=50)
    | st.builds(amf0.Date, st.floats(allow_nan=False), st.integers(-32768, 32767))
)
values = st.recursive(
    scalars,
    lambda inner: st.lists(inner, max_size=5)
    | st.dictionaries(keys, inner, max_size=5)
    | st.dictionaries(keys, inner, max_size=5).map(amf0.EcmaArray),
    max_leaves=30,
)


@given(st.lists(values, max_size=5))
def test_round_trip(items: list[Any]) -> None:
    decoded = amf0.decode_all(amf0.encode(*items))
    assert decoded == items
    # Types survive too: ECMA arrays stay ECMA arrays, objects stay plain dicts.
    assert [type(v) for v in decoded] == [type(v) for v in items]


def test_known_bytes() -> None:
    data = amf0.encode("connect", 1, {"app": "live", "fpad": False}, None)
    assert data == (
        b"\x02\x00\x07connect" + b"\x00" + struct.pack(">d", 1.0)
        + b"\x03\x00\x03app\x02\x00\x04live\x00\x04fpad\x01\x00\x00\x00\x09" + b"\x05"
    )
    assert amf0.encode(amf0.EcmaArray(a=1)) == (
        b"\x08\x00\x00\x00\x01\x00\x01a\x00" + struct.pack(">d", 1.0) + b"\x00\x00\x09"
    )
    assert amf0.encode([True]) == b"\x0a\x00\x00\x00\x01\x01\x01"


def test_long_string_and_typed_object() -> None:
    text = "x" * 70000
    data = amf0.encode(text)
    assert data[0] == amf0.LONG_STRING
    assert amf0.decode_all(data) == [text]
    typed = b"\x10\x00\x03Foo\x00\x01a\x05\x00\x00\x09"
    assert amf0.decode_all(typed) == [{"a": None}]


def test_ecma_array_count_is_advisory() -> None:
    data = b"\x08\x00\x00\x00\x07\x00\x01a\x01\x01\x00\x00\x09"
    assert amf0.decode_all(data) == [{"a": True}]


def test_nan_and_int() -> None:
    (value,) = amf0.decode_all(amf0.encode(float("nan")))
    assert math.isnan(value)
    assert amf0.decode_all(amf0.encode(3)) == [3.0]


@pytest.mark.parametrize("data,why", [
    (b"\x02\x00\x05ab", "truncated"),
    (b"\x0a\xff\xff\xff\xff\x05", "exceeds"),
    (b"\x0c\xff\xff\xff\xff", "truncated"),
    (b"\x02\x00\x02\xff\xfe", "UTF-8"),
    (b"\x07\x00\x01", "unsupported"),
    (b"\x09", "object end"),
    (b"\x03\x00\x01a" * 40, "deeper"),
    (b"\x0a\x00\x00\x00\x01" * 40, "deeper"),
    (b"\x03\x00\x01a", "truncated"),
])
def test_garbage(data: bytes, why: str) -> None:
    with pytest.raises(RemoteProtocolError, match=why):
        amf0.decode_all(data)


@given(st.lists(values, max_size=5), st.sampled_from([b"\x04", b"\x07\x00\x01", b"\x0e",
                                                 b"\x11\x04\x01", b"\x12"]),
       st.binary(max_size=20))
def test_decode_prefix_stops_at_an_unknown_type(
    items: list[Any], unknown: bytes, tail: bytes
) -> None:
    data = amf0.encode(*items) + unknown + tail
    assert amf0.decode_prefix(data) == (items, len(unknown) + len(tail))
    assert amf0.decode_prefix(amf0.encode(*items)) == (items, 0)
    with pytest.raises(amf0.UnknownTypeError, match="unsupported type marker"):
        amf0.decode_all(data)


def test_decode_prefix_refuses_garbage() -> None:
    """Only an unknown type ends a prefix; a truncated or malformed value is still garbage."""
    for data in (b"\x05\x02\x00\x05ab", b"\x05\x09", b"\x05\x02\x00\x02\xff\xfe"):
        with pytest.raises(RemoteProtocolError):
            amf0.decode_prefix(data)


def test_element_limit() -> None:
    data = b"\x0a" + struct.pack(">I", 1000) + b"\x05" * 1000
    assert len(amf0.decode_all(data)[0]) == 1000
    with pytest.raises(RemoteProtocolError, match="elements"):
        amf0.decode_all(data, max_elements=500)


def test_encode_errors() -> None:
    with pytest.raises(LocalProtocolError):
        amf0.encode(object())
    with pytest.raises(LocalProtocolError):
        amf0.encode({1: 2})
    with pytest.raises(LocalProtocolError):
        amf0.encode("\ud800")
    deep: Any = None
    for _ in range(40):
        deep = [deep]
    with pytest.raises(LocalProtocolError):
        amf0.encode(deep)

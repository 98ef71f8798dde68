import pytest
from hypothesis import given
from hypothesis import strategies as st

from relay.errors import RemoteProtocolError
from relay.rtmp import amf0
from relay.rtmp.chunk import RtmpMessage
from relay.rtmp.message import (
    Abort,
    Acknowledgement,
    Command,
    MessageType,
    SetChunkSize,
    SetPeerBandwidth,
    UserControl,
    UserControlEvent,
    WindowAckSize,
    parse_message,
)

u32 = st.integers(0, 0xFFFFFFFF)


@given(st.one_of(
    st.builds(SetChunkSize, st.integers(1, 0x7FFFFFFF)),
    st.builds(Abort, u32),
    st.builds(Acknowledgement, u32),
    st.builds(WindowAckSize, u32),
    st.builds(SetPeerBandwidth, u32, st.integers(0, 2)),
    st.builds(UserControl, st.sampled_from([0, 1, 2, 4, 6, 7]), u32),
    st.builds(UserControl, st.just(3), u32, u32),
))
def test_control_round_trip(control: object) -> None:
    message = control.to_message()  # type: ignore[attr-defined]
    assert message.csid == 2 and message.stream_id == 0
    assert parse_message(message) == control


def test_known_control_bytes() -> None:
    assert bytes(SetChunkSize(4096)) == b"\x00\x00\x10\x00"
    assert bytes(SetPeerBandwidth(2_500_000, 2)) == b"\x00\x26\x25\xa0\x02"
    ping = UserControl(UserControlEvent.PING_REQUEST, 0x01020304)
    assert bytes(ping) == b"\x00\x06\x01\x02\x03\x04"
    assert SetChunkSize.parse(b"\xff\xff\xff\xff").size == 0x7FFFFFFF  # reserved bit masked


def test_command_round_trip_and_amf3_form() -> None:
    command = Command("_result", 1.0, {"fmsVer": "FMS/3,0,1,123"},
                      ({"code": "NetConnection.Connect.Success"},))
    message = command.to_message()
    assert message.type_id == MessageType.COMMAND_AMF0 and message.csid == 3
    assert parse_message(message) == command
    amf3 = RtmpMessage(3, 0, MessageType.COMMAND_AMF3, 0, b"\x00" + bytes(command))
    assert parse_message(amf3) == command
    assert Command.parse(amf0.encode("onBWDone", 0)) == Command("onBWDone", 0.0, None, ())


@pytest.mark.parametrize("message", [
    RtmpMessage(2, 0, MessageType.SET_CHUNK_SIZE, 0, b"\x00\x01"),
    RtmpMessage(2, 0, MessageType.USER_CONTROL, 0, b"\x00\x06\x00"),
    RtmpMessage(2, 0, MessageType.SET_PEER_BANDWIDTH, 0, b"\x00\x00\x00\x01"),
    RtmpMessage(3, 0, MessageType.COMMAND_AMF0, 0, amf0.encode(1.0, "x")),
    RtmpMessage(3, 0, MessageType.COMMAND_AMF0, 0, b"\x02\x00"),
    RtmpMessage(3, 0, MessageType.COMMAND_AMF0, 0, b"\x11\x04\x01"),  # no name before AMF3
    RtmpMessage(3, 0, MessageType.COMMAND_AMF0, 0, amf0.encode("x", 1.0) + b"\x02\x00\x09a"),
])
def test_garbage(message: RtmpMessage) -> None:
    with pytest.raises(RemoteProtocolError):
        parse_message(message)


def test_command_without_transaction_id() -> None:
    """FFmpeg's listener sends ``onFCPublish`` as a bare name."""
    bare = amf0.encode("onFCPublish")
    assert Command.parse(bare) == Command("onFCPublish", None)
    assert bytes(Command.parse(bare)) == bare
    with_info = amf0.encode("onFCPublish", None, {"code": "NetStream.Publish.Start"})
    assert Command.parse(with_info) == Command(
        "onFCPublish", None, None, ({"code": "NetStream.Publish.Start"},))
    assert bytes(Command.parse(with_info)) == with_info
    assert Command.parse(amf0.encode("x", True)) == Command("x", None, True)  # a bool is no id


def test_command_with_values_of_unknown_type() -> None:
    """Values up to one of a type AMF0 readers differ on are kept; the rest is counted."""
    head = amf0.encode("_result", 1.0, {"fmsVer": "FMS/3,0,1,123"}, {"code": "x"})
    assert Command.parse(head + b"\x11\x04\x01" + b"\x05") == Command(
        "_result", 1.0, {"fmsVer": "FMS/3,0,1,123"}, ({"code": "x"},), undecoded=4)
    # inside an object, the whole object goes
    nested = amf0.encode("onStatus", 0.0, None) + b"\x03\x00\x01a\x07\x00\x01\x00\x00\x09"
    assert Command.parse(nested) == Command("onStatus", 0.0, None, (), undecoded=10)


names = st.text(min_size=1, max_size=30)
objects = st.none() | st.dictionaries(st.text(max_size=10), st.text(max_size=10), max_size=3)


@given(names, st.none() | st.floats(allow_nan=False), objects,
       st.lists(st.text(max_size=10) | st.floats(allow_nan=False), max_size=3))
def test_command_round_trip(name: str, txn: float | None, obj: object, args: list[object]) -> None:
    command = Command(name, txn, obj, tuple(args))
    if txn is None and obj is None and args and isinstance(args[0], float):
        return  # a number right after the name reads as a transaction id
    assert Command.parse(bytes(command)) == command


def test_media_passes_through() -> None:
    video = RtmpMessage(6, 40, MessageType.VIDEO, 1, b"\x17\x01")
    assert parse_message(video) is video

"""The control socket: requests parsed as hostile input, delivered to their kind's handler."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest
import trio
import trio.testing
from hypothesis import given
from hypothesis import strategies as st

from relay.drivers.control import MAX_DATAGRAM_BYTES, Wants, parse_request, serve_control

KINDS = {"thumb": None, "ll-want": None}


@pytest.mark.parametrize("data,refused", [
    (b"thumb cam1", None),
    (b"ll-want cam_2-b", None),
    (b"thumb", "not a stream name"),
    (b"thumb ../etc", "not a stream name"),
    (b"thumb cam\nthumb other", "not a stream name"),
    (b"snapshot cam", "unknown request kind"),
    (b"\xffthumb cam", "not UTF-8"),
    (b"thumb " + b"a" * MAX_DATAGRAM_BYTES, f"over {MAX_DATAGRAM_BYTES} bytes"),
])
def test_parse_request(data: bytes, refused: str | None) -> None:
    if refused is None:
        kind, _, name = data.decode().partition(" ")
        assert parse_request(data, KINDS) == (kind, name)
    else:
        with pytest.raises(ValueError, match=refused):
            parse_request(data, KINDS)


@given(st.binary(max_size=MAX_DATAGRAM_BYTES + 8))
def test_parse_request_refuses_only_with_value_error(data: bytes) -> None:
    try:
        kind, name = parse_request(data, KINDS)
    except ValueError:
        return
    assert data == f"{kind} {name}".encode()


async def test_serve_control_delivers_requests_and_survives_garbage(tmp_path: Path) -> None:
    path = tmp_path / "relay.sock"
    path.write_bytes(b"")  # a socket file left by a relay that was killed
    wants = Wants()
    got: list[str] = []
    with trio.fail_after(10):
        async with trio.open_nursery() as nursery:
            await nursery.start(serve_control, path, {"thumb": wants.want, "ll-want": got.append})
            with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sender:
                sender.connect(str(path))

                async def want_cam() -> None:
                    assert await wants.wait("cam")

                async with trio.open_nursery() as waiting:
                    waiting.start_soon(want_cam)
                    await trio.testing.wait_all_tasks_blocked()
                    for garbage in (b"\xff\xfe", b"thumb ../x", b"x" * 4096, b"other cam"):
                        sender.send(garbage)
                    sender.send(b"ll-want cam")
                    sender.send(b"thumb cam")
            while not got:
                await trio.sleep(0.01)
            assert got == ["cam"]
            assert not await wants.wait("cam", timeout=0.05)  # a want is used up once answered
            nursery.cancel_scope.cancel()

"""The RTSP source against scripted cameras on 127.0.0.1: where credentials go on a redirect,
and a redirect the relay refuses is one clear line and a retry, never a traceback."""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from functools import partial

import pytest
import trio

from relay.bus import Stream
from relay.config import SourceUrl, StreamConfig
from relay.drivers.rtsp_source import run_rtsp_source
from relay.rtsp.auth import DigestServer
from relay.rtsp.headers import Headers
from relay.rtsp.message import ConnectionClosed, MessageReader, Request, Response
from relay.sansio import NEED_DATA
from relay.status import StreamStatus
from tests.unit.drivers.deadlines import assert_no_deadline_within
from tests.unit.rtsp._fixtures import LIVE555_DESCRIBE, LIVE555_OPTIONS, LIVE555_PLAY, LIVE555_SETUP

USER, PASSWORD = "admin", "Secret-Pa55"


@dataclass
class Camera:
    """A scripted RTSP server: ``answer`` turns each request into (status, extra headers)."""

    answer: Callable[[Request], tuple[int, list[tuple[str, str]]]]
    requests: list[Request] = field(default_factory=list)
    received: bytearray = field(default_factory=bytearray)
    port: int = 0

    async def serve(self, stream: trio.SocketStream) -> None:
        reader = MessageReader()
        async with stream:
            while True:
                data = await stream.receive_some(65536)
                self.received += data
                reader.receive_data(data)
                while (event := reader.next_event()) is not NEED_DATA:
                    if isinstance(event, ConnectionClosed):
                        return
                    assert isinstance(event, Request)
                    self.requests.append(event)
                    status, extra = self.answer(event)
                    headers = Headers([("CSeq", event.headers.get("CSeq") or "0"), *extra])
                    await stream.send_all(bytes(Response(status, "Scripted", headers)))


async def start(nursery: trio.Nursery, camera: Camera) -> Camera:
    listeners = await nursery.start(partial(trio.serve_tcp, camera.serve, 0, host="127.0.0.1"))
    camera.port = listeners[0].socket.getsockname()[1]
    return camera


def digest_camera(auth: DigestServer, then: Callable[[], tuple[int, list[tuple[str, str]]]]
                  ) -> Camera:
    """Asks for Digest credentials on every request; with them, answers ``then()``."""

    def answer(req: Request) -> tuple[int, list[tuple[str, str]]]:
        if auth.verify(req.method, req.uri, req.headers.get("Authorization")) is None:
            return 401, [("WWW-Authenticate", c) for c in auth.challenges()]
        return then()

    return Camera(answer)


def basic_camera() -> Camera:
    """Asks for Basic credentials (which would carry the password in clear) and takes none."""
    return Camera(lambda req: (401, [("WWW-Authenticate", 'Basic realm="other"')]))


async def run_until_retried(config: StreamConfig, retries: int = 1) -> StreamStatus:
    """Run the source until it has failed ``retries`` times; its status then."""
    status = StreamStatus(config.name, str(config.source), Stream(config.name))
    async with trio.open_nursery() as nursery:
        await nursery.start(run_rtsp_source, config, status.stream, status)
        while status.reconnects < retries:
            await trio.sleep(0.01)
        nursery.cancel_scope.cancel()
    return status


def stream_config(url: str) -> StreamConfig:
    return StreamConfig(name="cam", source=SourceUrl.parse(url, "test"), transport="tcp")


async def test_credentials_never_follow_a_redirect_to_another_origin(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, "relay.rtsp")
    with trio.fail_after(20):
        async with trio.open_nursery() as nursery:
            other = await start(nursery, basic_camera())
            location = f"rtsp://127.0.0.1:{other.port}/elsewhere"
            first = await start(nursery, digest_camera(
                DigestServer("cam", {USER: PASSWORD}), lambda: (302, [("Location", location)])))
            config = stream_config(f"rtsp://{USER}:{PASSWORD}@127.0.0.1:{first.port}/s")
            status = await run_until_retried(config)
            nursery.cancel_scope.cancel()
    assert any("Authorization" in r.headers for r in first.requests)  # the camera got them
    assert other.requests, "the redirect was not followed"
    assert all("Authorization" not in r.headers for r in other.requests)
    assert PASSWORD.encode() not in other.received and USER.encode() not in other.received
    expected = (f"the redirect target rtsp://127.0.0.1:{other.port} asks for credentials, "
                f"which go only to rtsp://127.0.0.1:{first.port} (to allow this host: "
                f'redirect_credentials = ["127.0.0.1:{other.port}"]) '
                f"(redirected to {location})")
    assert status.last_error == expected and status.state == "retrying"
    errors = [r for r in caplog.records if r.levelno >= logging.WARNING]
    assert [expected in r.getMessage() for r in errors] == [True]
    assert all(r.exc_info is None and PASSWORD not in r.getMessage() for r in caplog.records)


async def test_redirect_credentials_allows_a_host() -> None:
    other_auth = DigestServer("other", {USER: PASSWORD})
    with trio.fail_after(20):
        async with trio.open_nursery() as nursery:
            other = await start(nursery, digest_camera(other_auth, lambda: (404, [])))
            location = f"rtsp://127.0.0.1:{other.port}/elsewhere"
            first = await start(nursery, digest_camera(
                DigestServer("cam", {USER: PASSWORD}), lambda: (302, [("Location", location)])))
            config = replace(stream_config(f"rtsp://{USER}:{PASSWORD}@127.0.0.1:{first.port}/s"),
                             redirect_credentials=frozenset({f"127.0.0.1:{other.port}"}))
            status = await run_until_retried(config)
            nursery.cancel_scope.cancel()
    verified = [other_auth.verify(r.method, r.uri, r.headers.get("Authorization"))
                for r in other.requests]
    assert USER in verified
    assert status.last_error == f"RTSP DESCRIBE: 404 Scripted (redirected to {location})"


async def test_same_origin_redirect_keeps_credentials() -> None:
    auth = DigestServer("cam", {USER: PASSWORD})
    with trio.fail_after(20):
        async with trio.open_nursery() as nursery:
            hops = iter([(302, [("Location", "/moved")])])
            camera = await start(nursery, digest_camera(auth, lambda: next(hops, (404, []))))
            config = stream_config(f"rtsp://{USER}:{PASSWORD}@127.0.0.1:{camera.port}/s")
            status = await run_until_retried(config)
            nursery.cancel_scope.cancel()
    moved = [r for r in camera.requests if r.uri.endswith("/moved")]
    assert [auth.verify(r.method, r.uri, r.headers.get("Authorization")) for r in moved][-1] == USER
    assert status.last_error is not None and status.last_error.startswith("RTSP DESCRIBE: 404")


@pytest.mark.parametrize("location, error", [
    ("rtsp://127.0.0.1:99999/x",
     "RTSP redirect: bad Location 'rtsp://127.0.0.1:99999/x' (Port out of range 0-65535)"),
    ("rtsp://[::1/x", "RTSP redirect: bad Location 'rtsp://[::1/x' (Invalid IPv6 URL)"),
    ("rtsps://127.0.0.1:1/x", "RTSP redirect from rtsp:// to 'rtsps://127.0.0.1:1/x' refused "
                              "(configure the source as rtsps:// instead)"),
])
async def test_refused_redirect_is_one_line_and_retried(
    location: str, error: str, caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, "relay.rtsp")
    with trio.fail_after(20):
        async with trio.open_nursery() as nursery:
            camera = await start(nursery, Camera(lambda req: (302, [("Location", location)])))
            config = stream_config(f"rtsp://127.0.0.1:{camera.port}/s")
            status = await run_until_retried(config, retries=2)
            nursery.cancel_scope.cancel()
    assert status.last_error == error and len(camera.requests) == 2  # each try: OPTIONS, 302
    errors = [r for r in caplog.records if r.levelno >= logging.WARNING]
    assert len(errors) == 2 and all(error in r.getMessage() for r in errors)
    assert all(r.exc_info is None for r in caplog.records)


def test_stream_config_default_keys() -> None:
    """A stream without the new keys trusts only its own origin and pins nothing."""
    config = stream_config("rtsps://cam.local/s")
    assert (config.redirect_credentials, config.tls_fingerprint) == (frozenset(), None)
    assert config.source.port == 322
    assert replace(config, tls_fingerprint=b"\0" * 32) != config  # a new pin restarts the stream


async def test_rtsps_over_udp_is_one_line_and_tcp(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, "relay.rtsp")
    with trio.fail_after(20):
        listener = trio.socket.socket()
        await listener.bind(("127.0.0.1", 0))  # bound, never listening: connections refused
        port = listener.getsockname()[1]
        config = replace(stream_config(f"rtsps://127.0.0.1:{port}/s"), transport="udp")
        status = await run_until_retried(config)
        listener.close()
    assert status.last_error is not None and status.last_error.startswith("connection failed")
    lines = [r.getMessage() for r in caplog.records]
    assert lines[0] == ("stream=cam rtsps:// carries RTP inside its TLS connection: using TCP, "
                        "not UDP")
    assert lines[1] == f"stream=cam connecting to rtsps://127.0.0.1:{port}/s over TCP in TLS"


async def test_a_playing_session_has_no_timer_due_within_a_second() -> None:
    """The watchdog runs on the read ticker (issue 12): a playing session's nearest timer is its
    receiver report (5 s), not a per-stream watchdog second."""
    async def serve(stream: trio.SocketStream) -> None:
        reader = MessageReader()
        channels = iter(("0-1", "2-3"))
        async with stream:
            while True:
                reader.receive_data(await stream.receive_some(65536))
                while (event := reader.next_event()) is not NEED_DATA:
                    if isinstance(event, ConnectionClosed):
                        return
                    assert isinstance(event, Request)
                    reply = {"OPTIONS": LIVE555_OPTIONS, "DESCRIBE": LIVE555_DESCRIBE,
                             "SETUP": LIVE555_SETUP, "PLAY": LIVE555_PLAY}[event.method]
                    ch = next(channels) if event.method == "SETUP" else ""
                    await stream.send_all(reply.format(cseq=event.headers.get("CSeq"),
                                                       ch=ch).encode())

    with trio.fail_after(10):
        async with trio.open_nursery() as nursery:
            listeners = await nursery.start(partial(trio.serve_tcp, serve, 0, host="127.0.0.1"))
            port = listeners[0].socket.getsockname()[1]
            config = stream_config(f"rtsp://127.0.0.1:{port}/stream")
            status = StreamStatus("cam", str(config.source), Stream("cam"))
            await nursery.start(run_rtsp_source, config, status.stream, status)
            while status.transport is None:
                await trio.sleep(0.01)
            # the watchdog's own sleep was under a second away
            await assert_no_deadline_within(2)
            nursery.cancel_scope.cancel()
    assert status.state == "playing"

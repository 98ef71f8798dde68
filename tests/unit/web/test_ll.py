"""LL-HLS serving (web/ll.py) over real HTTP, with a fake relay writing the folder per the
contract and receiving ``ll-want`` datagrams. Blocked requests are checked by the order of
events: the server holds the request (its waiting count says so), the part is written, the
answer has it. No sleeps decide an outcome."""

from __future__ import annotations

import asyncio
import gzip
import logging
import shutil
import tempfile
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path

import pytest
from aiohttp import ClientResponse
from aiohttp.test_utils import TestClient, TestServer
from aiohttp.web import HTTPBadRequest
from hypothesis import given
from hypothesis import strategies as st
from multidict import MultiDict

import web.ll
from tests.unit.web.ll_relay import FakeLlRelay, WantReceiver, replace
from tests.unit.web.test_app import CAM1, NOW, write_status
from web.app import LL_KEY, REQUESTS_KEY, make_app
from web.ll import Directives, LlServer, decode_state
from web.watch import Watcher

Body = Callable[[TestClient, FakeLlRelay, WantReceiver], Awaitable[None]]


@pytest.fixture
def run_dir() -> Iterator[Path]:
    """The runtime folder: short, since a unix socket path is limited to 107 bytes."""
    path = Path(tempfile.mkdtemp(prefix="ll", dir="/tmp"))
    yield path
    shutil.rmtree(path)


@pytest.fixture
def serve_ll(tmp_path: Path, run_dir: Path) -> Callable[[Body], None]:
    hls = tmp_path / "hls"
    hls.mkdir()
    status = run_dir / "status.json"
    write_status(status, NOW)

    def run(body: Body) -> None:
        async def main() -> None:
            relay = FakeLlRelay(hls / "cam1")
            wants = WantReceiver(run_dir)
            app = make_app(hls, status, push=False, clock=lambda: NOW)
            try:
                async with TestClient(TestServer(app)) as client:
                    await asyncio.wait_for(body(client, relay, wants), 20)
            finally:
                wants.close()

        asyncio.run(main())

    return run


def ll_server(client: TestClient) -> LlServer:
    assert client.app is not None
    return client.app[LL_KEY]


async def blocked(client: TestClient, path: str, waiting: int = 1,
                  **kwargs: object) -> asyncio.Task[ClientResponse]:
    """Send a request and return once the server holds it (``waiting`` requests held)."""
    task = asyncio.create_task(client.get(path, **kwargs))  # type: ignore[arg-type]
    while ll_server(client).waiting < waiting:
        assert not task.done(), (await task).status
        await asyncio.sleep(0.001)
    return task


def test_blocking_reload_answers_when_the_part_is_written(serve_ll: Callable[[Body], None]
                                                           ) -> None:
    async def body(client: TestClient, relay: FakeLlRelay, wants: WantReceiver) -> None:
        relay.start()
        relay.part()
        relay.part()  # p0.0, p0.1 written
        now = await client.get("/hls/cam1/ll.m3u8?_HLS_msn=0&_HLS_part=1")
        assert now.status == 200  # already there: at once
        assert now.headers["Cache-Control"] == "public, max-age=2"
        task = await blocked(client, "/hls/cam1/ll.m3u8?_HLS_msn=0&_HLS_part=2")
        assert not task.done()
        relay.part()
        response = await task
        assert response.status == 200
        text = await response.text()
        assert 'URI="p0.2.m4s"' in text and text == relay.playlist(skip=0)
        plain = await client.get("/hls/cam1/ll.m3u8")
        assert plain.headers["Cache-Control"] == "no-cache"
        assert plain.headers["Content-Type"] == "application/vnd.apple.mpegurl"
        assert plain.headers["Access-Control-Allow-Origin"] == "*"

    serve_ll(body)


def test_whole_segment_request_waits_for_its_last_part(serve_ll: Callable[[Body], None]
                                                        ) -> None:
    async def body(client: TestClient, relay: FakeLlRelay, wants: WantReceiver) -> None:
        relay.start()
        for _ in range(5):
            relay.part()  # p0.0 .. p0.4 of 6
        task = await blocked(client, "/hls/cam1/ll.m3u8?_HLS_msn=0")
        segment = await blocked(client, "/hls/cam1/s0.m4s", waiting=2)
        relay.part()  # p0.5 closes segment 0 (ll.json still names segment 0)
        assert "#EXTINF" in await (await task).text()
        response = await segment
        assert response.status == 200
        assert await response.read() == b"".join(relay.segments[0])

    serve_ll(body)


@pytest.mark.parametrize(("query", "status"), [
    ("_HLS_msn=2", 400),  # past the segment after the open one (RFC 8216bis 6.2.5.2)
    ("_HLS_msn=2&_HLS_part=0", 400),
    ("_HLS_msn=0&_HLS_part=11", 400),  # 10 parts ahead; the Advance Part Limit is 3/0.333 = 9
    ("_HLS_msn=1&_HLS_part=9", 400),  # 9 parts past p0.0's segment + 1
    ("_HLS_part=1", 400),  # a part without its segment
    ("_HLS_msn=-1", 400),
    ("_HLS_msn=1e3", 400),
    ("_HLS_msn=12345678901", 400),
    ("_HLS_msn=0&_HLS_part=0", 200),  # written
])
def test_requests_too_far_ahead_or_malformed_get_400(
        serve_ll: Callable[[Body], None], query: str, status: int) -> None:
    async def body(client: TestClient, relay: FakeLlRelay, wants: WantReceiver) -> None:
        relay.start()
        relay.part()
        response = await client.get(f"/hls/cam1/ll.m3u8?{query}")
        assert response.status == status, await response.text()

    serve_ll(body)


def test_requests_at_the_limit_are_held(serve_ll: Callable[[Body], None]) -> None:
    async def body(client: TestClient, relay: FakeLlRelay, wants: WantReceiver) -> None:
        relay.start()
        relay.part()
        first = await blocked(client, "/hls/cam1/ll.m3u8?_HLS_msn=0&_HLS_part=9")
        second = await blocked(client, "/hls/cam1/ll.m3u8?_HLS_msn=1&_HLS_part=8", waiting=2)
        third = await blocked(client, "/hls/cam1/ll.m3u8?_HLS_msn=1", waiting=3)
        relay.parts_per_segment = 10
        for _ in range(9 + 9 + 1):
            relay.part()
        assert [(await t).status for t in (first, second, third)] == [200, 200, 200]

    serve_ll(body)


def test_a_part_never_written_times_out_with_503(serve_ll: Callable[[Body], None],
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(web.ll, "BLOCK_TARGET_DURATIONS", 0.01)

    async def body(client: TestClient, relay: FakeLlRelay, wants: WantReceiver) -> None:
        relay.start()
        relay.part()
        response = await client.get("/hls/cam1/ll.m3u8?_HLS_msn=0&_HLS_part=1")
        assert response.status == 503
        assert response.headers["Cache-Control"] == "no-store"
        assert ll_server(client).waiting == 0

    serve_ll(body)


def test_delta_update_and_gzip(serve_ll: Callable[[Body], None]) -> None:
    async def body(client: TestClient, relay: FakeLlRelay, wants: WantReceiver) -> None:
        relay.start()
        relay.part()
        early = await client.get("/hls/cam1/ll.m3u8?_HLS_skip=YES")
        assert await early.text() == relay.playlist(skip=0)  # no delta yet: the full one
        for _ in range(13):
            relay.part()  # into segment 2: ll_skip.m3u8 written
        task = await blocked(client, "/hls/cam1/ll.m3u8?_HLS_msn=2&_HLS_part=2&_HLS_skip=YES",
                             headers={"Accept-Encoding": "gzip"}, auto_decompress=False)
        relay.part()
        response = await task
        assert response.headers["Content-Encoding"] == "gzip"
        assert response.headers["Vary"] == "Accept-Encoding"
        delta = gzip.decompress(await response.read()).decode()
        assert delta == relay.playlist(skip=1) and "#EXT-X-SKIP:SKIPPED-SEGMENTS=1" in delta
        plain = await client.get("/hls/cam1/ll.m3u8?_HLS_msn=2&_HLS_part=2",
                                 headers={"Accept-Encoding": "identity"})
        assert "Content-Encoding" not in plain.headers
        assert await plain.text() == relay.playlist(skip=0)
        v2 = await client.get("/hls/cam1/ll.m3u8?_HLS_msn=2&_HLS_part=2&_HLS_skip=v2")
        assert await v2.text() == relay.playlist(skip=0)  # the full playlist answers v2

    serve_ll(body)


def test_media_types_and_blocking_preload(serve_ll: Callable[[Body], None]) -> None:
    async def body(client: TestClient, relay: FakeLlRelay, wants: WantReceiver) -> None:
        relay.start()
        relay.part()
        init = await client.get("/hls/cam1/init.mp4")
        assert init.headers["Content-Type"] == "video/mp4"
        assert init.headers["Cache-Control"] == "no-cache"
        assert await init.read() == b"ftyp-moov"
        hinted = await blocked(client, "/hls/cam1/p0.1.m4s")  # the PRELOAD-HINT
        relay.part()
        part = await hinted
        assert part.status == 200 and part.headers["Content-Type"] == "video/mp4"
        assert part.headers["Access-Control-Allow-Origin"] == "*"
        assert await part.read() == b"part 0.1"
        assert (await client.get("/hls/cam1/p5.0.m4s")).status == 404  # far ahead: at once
        relay.parts_per_segment = 3
        never = await blocked(client, "/hls/cam1/p0.3.m4s")  # hinted, but the segment ends
        relay.part()  # p0.2 closes segment 0
        assert (await never).status == 404
        assert (await client.get("/hls/cam1/p0.1.m4s")).status == 200
        preflight = await client.options("/hls/cam1/p0.0.m4s",
                                         headers={"Origin": "http://x",
                                                  "Access-Control-Request-Method": "GET"})
        assert preflight.status == 204

    serve_ll(body)


def test_parts_from_memory_follow_their_file(serve_ll: Callable[[Body], None]) -> None:
    async def body(client: TestClient, relay: FakeLlRelay, wants: WantReceiver) -> None:
        relay.start()
        relay.part()
        assert await (await client.get("/hls/cam1/p0.0.m4s")).read() == b"part 0.0"  # kept
        replace(relay.folder / "p0.0.m4s", b"a restarted muxer's p0.0")
        task = await blocked(client, "/hls/cam1/ll.m3u8?_HLS_msn=0&_HLS_part=1")
        relay.part()  # its ll.json notice comes after the p0.0 one
        await task
        assert await (await client.get("/hls/cam1/p0.0.m4s")).read() == b"a restarted muxer's p0.0"
        ranged = await client.get("/hls/cam1/p0.1.m4s", headers={"Range": "bytes=0-3"})
        assert ranged.status == 206 and await ranged.read() == b"part"
        (relay.folder / "p0.1.m4s").unlink()
        (relay.folder / "p0.1.m4s").symlink_to(relay.folder / "p0.0.m4s")
        assert (await client.get("/hls/cam1/p0.1.m4s")).status == 404  # not a regular file

    serve_ll(body)


def test_want_datagrams_start_the_muxer_and_are_rate_limited(
        serve_ll: Callable[[Body], None]) -> None:
    async def body(client: TestClient, relay: FakeLlRelay, wants: WantReceiver) -> None:
        now = [100.0]
        assert client.app is not None
        client.app[REQUESTS_KEY].clock = lambda: now[0]
        task = await blocked(client, "/hls/cam1/ll.m3u8")  # no ll.json: the muxer is off
        assert wants.received() == [b"ll-want cam1"]
        relay.start()
        relay.part()  # the relay started its muxer on the want
        assert (await task).status == 200
        for _ in range(3):
            assert (await client.get("/hls/cam1/p0.0.m4s")).status == 200
        assert wants.received() == []  # within the second
        now[0] += 1.0
        await client.get("/hls/cam1/ll.m3u8")
        assert wants.received() == [b"ll-want cam1"]
        unknown = await client.get("/hls/cam2/ll.m3u8")  # no snapshot lists it
        assert unknown.status == 404 and wants.received() == []
        assert "cam2" not in ll_server(client).streams

    serve_ll(body)


def test_a_muxer_that_does_not_start_gets_404(serve_ll: Callable[[Body], None],
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(web.ll, "START_SECONDS", 0.01)

    async def body(client: TestClient, relay: FakeLlRelay, wants: WantReceiver) -> None:
        response = await client.get("/hls/cam1/ll.m3u8")
        assert response.status == 404
        assert "no LL-HLS for this stream" in await response.text()

    serve_ll(body)


def test_removed_state_stops_answering_and_a_bad_one_is_logged(
        serve_ll: Callable[[Body], None], monkeypatch: pytest.MonkeyPatch,
        caplog: pytest.LogCaptureFixture) -> None:
    monkeypatch.setattr(web.ll, "START_SECONDS", 0.01)

    async def body(client: TestClient, relay: FakeLlRelay, wants: WantReceiver) -> None:
        relay.start()
        relay.part()
        assert (await client.get("/hls/cam1/ll.m3u8")).status == 200
        task = await blocked(client, "/hls/cam1/ll.m3u8?_HLS_msn=0&_HLS_part=1")
        (relay.folder / "ll.json").write_bytes(b'{"msn": "x"}')  # closed after writing
        while ll_server(client).streams["cam1"].state is not None:
            await asyncio.sleep(0.001)
        assert not task.done()
        relay.part()  # a good ll.json again: the held request is answered
        assert (await task).status == 200
        (relay.folder / "ll.json").unlink()
        while ll_server(client).streams["cam1"].state is not None:
            await asyncio.sleep(0.001)
        assert (await client.get("/hls/cam1/ll.m3u8")).status == 404

    with caplog.at_level(logging.ERROR, "web.ll"):
        serve_ll(body)
    assert [r.getMessage().split(": ", 1)[1] for r in caplog.records] == [
        "Expected `int`, got `str` - at `$.msn`"]


@pytest.mark.parametrize(("data", "problem"), [
    (b"{", "not JSON"),
    (b'{"msn": 0, "part": 0, "part_target": 0.3, "target_duration": 2, "version": 2}',
     "version 2"),
    (b'{"msn": 0, "part": -2, "part_target": 0.3, "target_duration": 2, "version": 1}',
     "out of range"),
    (b'{"msn": 0, "part": 0, "part_target": 0.3, "target_duration": 0, "version": 1}',
     "out of range"),
    (b" " * 5000, "larger than"),
])
def test_decode_state_refuses(data: bytes, problem: str) -> None:
    with pytest.raises(ValueError, match=problem):
        decode_state(data)


@pytest.mark.parametrize(("query", "directives"), [
    ("", Directives(None, None, False)),
    ("_HLS_msn=7&_HLS_part=0&_HLS_skip=YES", Directives(7, 0, True)),
    ("_HLS_skip=YES&_HLS_part=0&_HLS_msn=7", Directives(7, 0, True)),
    ("_HLS_msn=7&_HLS_msn=9&x=1&&_HLS_skip=v2", Directives(7, None, False)),  # first wins
    ("_HLS_msn=7&_HLS_skip=YES&_HLS_skip=NO", Directives(7, None, True)),
    ("t=123", Directives(None, None, False)),  # a cache buster
    ("_HLS_msn", None), ("_HLS_msn=", None), ("_HLS_msn=7&_HLS_part=", None),
    ("_HLS_msn=+7", None), ("_HLS_msn=7 ", None), ("_HLS_part=1&_HLS_msn=x", None),
])
def test_directives_from_the_query_string(query: str, directives: Directives | None) -> None:
    if directives is None:
        with pytest.raises(HTTPBadRequest):
            Directives.parse(query)
    else:
        assert Directives.parse(query) == directives


@given(st.lists(st.tuples(st.sampled_from(["_HLS_msn", "_HLS_part", "_HLS_skip", "x", ""]),
                          st.text("0123456789YESx=&+% ", max_size=12)), max_size=6))
def test_directives_agree_with_a_multidict_reading_of_the_query(
        items: list[tuple[str, str]]) -> None:
    """The hand split reads what aiohttp's request.query (a MultiDict) did, or refuses it."""
    query = "&".join(f"{key}={value}" for key, value in items)
    pairs = [item.partition("=")[::2] for item in query.split("&")]
    first = MultiDict(pairs)
    try:
        directives = Directives.parse(query)
    except HTTPBadRequest:
        msn, part = first.get("_HLS_msn"), first.get("_HLS_part")
        assert (part is not None and msn is None) or not all(
            v is None or v.isdigit() and v.isascii() and len(v) <= 10 for v in (msn, part))
        return
    assert directives.msn == (int(first["_HLS_msn"]) if "_HLS_msn" in first else None)
    assert directives.part == (int(first["_HLS_part"]) if "_HLS_part" in first else None)
    assert directives.skip == (first.get("_HLS_skip") == "YES")


def test_status_without_the_stream_has_no_socket(tmp_path: Path, run_dir: Path) -> None:
    status = run_dir / "status.json"
    write_status(status, NOW, [CAM1])
    app = make_app(tmp_path, status, push=False)
    assert app[REQUESTS_KEY].relay_socket("cam1") == run_dir / "relay.sock"
    assert app[REQUESTS_KEY].relay_socket("cam9") is None


def test_accept_encoding_is_parsed_once_per_value_and_the_memory_is_bounded(
        tmp_path: Path) -> None:
    parsed: list[str] = []

    def accepts(header: str) -> bool:
        parsed.append(header)
        return "gzip" in header

    watcher = Watcher()
    server = LlServer(tmp_path, watcher, lambda name: True, accepts)
    watcher.close()  # not needed: no stream is asked for
    assert [server.accepts_gzip(h) for h in ("gzip", "br", "gzip", "br")] == [
        True, False, True, False]
    assert parsed == ["gzip", "br"]
    for i in range(3 * web.ll.MAX_ACCEPT_VALUES):  # hostile: a new value each request
        assert not server.accepts_gzip(f"x{i}")
        assert len(server._gzip_by_header) <= web.ll.MAX_ACCEPT_VALUES
    assert server.accepts_gzip("gzip") and parsed[-1] == "gzip"

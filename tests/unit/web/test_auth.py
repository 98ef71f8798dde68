"""The optional bearer token: which paths it guards, how it is compared, where it comes from."""

from __future__ import annotations

from pathlib import Path

import pytest
from aiohttp.test_utils import TestClient, TestServer
from hypothesis import given
from hypothesis import strategies as st

from tests.unit.web.test_app import NOW, write_status
from web.app import make_app
from web.auth import TOKEN_ENV, BearerCheck, TokenError, check_token, load_token

TOKEN = "s3cret-T0ken_with.enough~chars"


def run(folders: tuple[Path, Path], body, protect_hls: bool = False) -> None:  # noqa: F811
    import asyncio

    async def main() -> None:
        app = make_app(folders[0], folders[1], token=TOKEN, protect_hls=protect_hls,
                       push=False, clock=lambda: NOW)
        async with TestClient(TestServer(app)) as client:
            await asyncio.wait_for(body(client), 20)

    asyncio.run(main())


GOOD = {"Authorization": f"Bearer {TOKEN}"}
BAD_HEADERS = [
    {},
    {"Authorization": f"Basic {TOKEN}"},
    {"Authorization": f"Bearer {TOKEN}x"},
    {"Authorization": f"Bearer {TOKEN[:-1]}"},
    {"Authorization": "Bearer"},
    {"Authorization": f"Bearer{TOKEN}"},
    {"Authorization": f"bearer {TOKEN.upper()}"},
]


def test_api_and_metrics_need_the_token(folders: tuple[Path, Path]) -> None:
    write_status(folders[1], NOW)

    async def body(client: TestClient) -> None:
        for path in ("/api/streams", "/metrics", "/api/streams/cam1/thumbnail.jpg",
                     "/api/anything"):
            for headers in BAD_HEADERS:
                r = await client.get(path, headers=headers)
                assert r.status == 401, (path, headers)
                assert r.headers["WWW-Authenticate"].startswith("Bearer")
                assert TOKEN not in await r.text()
        assert (await client.get("/api/streams", headers=GOOD)).status == 200
        assert (await client.get("/metrics", headers=GOOD)).status == 200
        r = await client.get("/api/streams", headers={"Authorization": f"bearer   {TOKEN} "})
        assert r.status == 200  # the scheme is case-insensitive (RFC 9110 11.1)
        # public: the page, its files, health and HLS
        for path in ("/", "/static/app.js", "/healthz", "/hls/cam1/index.m3u8",
                     "/hls/cam1/seg00000.ts"):
            assert (await client.get(path)).status == 200, path

    run(folders, body)


def test_protect_hls(folders: tuple[Path, Path]) -> None:
    async def body(client: TestClient) -> None:
        assert (await client.get("/hls/cam1/index.m3u8")).status == 401
        assert (await client.get("/hls/cam1/seg00000.ts")).status == 401
        assert (await client.get("/hls/cam1/index.m3u8", headers=GOOD)).status == 200
        r = await client.options("/hls/cam1/index.m3u8",
                                 headers={"Access-Control-Request-Method": "GET"})
        assert r.status == 204  # CORS preflights carry no credentials
        assert (await client.get("/")).status == 200

    run(folders, body, protect_hls=True)


def test_load_token(tmp_path: Path) -> None:
    path = tmp_path / "token"
    path.write_text(f"  {TOKEN}\n")
    assert load_token(path, {}) == TOKEN
    assert load_token(path, {TOKEN_ENV: "another-token-of-enough-length"}) == TOKEN
    assert load_token(None, {TOKEN_ENV: TOKEN}) == TOKEN
    assert load_token(None, {}) is None
    assert load_token(None, {TOKEN_ENV: "  "}) is None
    with pytest.raises(TokenError, match="cannot read"):
        load_token(tmp_path / "missing", {})
    path.write_text("short")
    with pytest.raises(TokenError, match="16 to 512 characters, got 5") as info:
        load_token(path, {})
    assert "short" not in str(info.value)
    path.write_text("spaces are not allowed in a token")
    with pytest.raises(TokenError, match="letters, digits"):
        load_token(path, {})
    with pytest.raises(TokenError, match=TOKEN_ENV):
        load_token(None, {TOKEN_ENV: "x" * 600})
    assert check_token("A" * 16 + "==", "t")


@given(st.text(max_size=600))
def test_bearer_check_only_accepts_the_token(presented: str) -> None:
    check = BearerCheck(TOKEN)
    assert check.allows(f"Bearer {TOKEN}")
    assert check.allows(f"Bearer {presented}") == (presented.strip() == TOKEN)
    assert not check.allows(presented) or presented.strip().lower().startswith("bearer ")


def test_python_m_web_refuses_a_bad_token(folders: tuple[Path, Path], tmp_path: Path) -> None:
    import os
    import subprocess
    import sys

    bad = tmp_path / "token"
    bad.write_text("short")
    root = Path(__file__).resolve().parents[3]
    args = [sys.executable, "-m", "web", "--http", "127.0.0.1:1", "--hls-dir", str(folders[0]),
            "--status", str(folders[1])]
    result = subprocess.run([*args, "--token-file", str(bad)], cwd=root, capture_output=True,
                            text=True, timeout=20)
    assert result.returncode == 2 and "--token-file" in result.stderr
    env = dict(os.environ)
    env.pop(TOKEN_ENV, None)
    result = subprocess.run([*args, "--protect-hls"], cwd=root, capture_output=True, text=True,
                            timeout=20, env=env)
    assert result.returncode == 2 and "--protect-hls needs" in result.stderr


def test_header_limits_hold_on_protected_paths(folders: tuple[Path, Path]) -> None:
    from tests.unit.web.test_app import raw

    async def body(client: TestClient) -> None:
        big = b"GET /metrics HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer " + b"a" * 5000 + \
            b"\r\nConnection: close\r\n\r\n"
        status, _ = await raw(client, big)
        assert status in (400, 431)
        many = b"".join(b"X-H%d: v\r\n" % i for i in range(100))
        status, _ = await raw(client, b"GET /api/streams HTTP/1.1\r\nHost: x\r\n" + many +
                              b"Connection: close\r\n\r\n")
        assert status in (400, 431)
        r = await client.put("/api/streams", data=b"x" * 100_000, headers=GOOD)
        assert r.status in (405, 413)

    run(folders, body)

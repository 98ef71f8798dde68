"""Optional bearer token for the API, /metrics and (with ``--protect-hls``) HLS (RFC 6750 2.1).

The token comes from ``--token-file PATH`` or, failing that, the ``RELAY_API_TOKEN``
environment variable. When one is set, protected paths need ``Authorization: Bearer TOKEN``;
anything else gets 401 with ``WWW-Authenticate: Bearer``. Tokens are compared as SHA-256
digests with ``hmac.compare_digest``: constant time, and the length is not revealed either.
The page and its static files stay public (they hold no data); the page reads the token from
its URL fragment (``/#token=...``, never sent to the server or logged) and sends the header.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import re
from collections.abc import Awaitable, Callable, Mapping
from pathlib import Path

from aiohttp import web
from aiohttp.typedefs import Middleware

TOKEN_ENV = "RELAY_API_TOKEN"
MIN_TOKEN_LENGTH = 16
MAX_TOKEN_LENGTH = 512
TOKEN_RE = re.compile(r"[A-Za-z0-9._~+/-]+=*")
"""RFC 6750 2.1 b64token: what may follow ``Bearer `` in a header."""


class TokenError(Exception):
    """The configured token is unusable (empty, too short, characters a header cannot carry)."""


def check_token(token: str, where: str) -> str:
    """Validate a configured token; returns it.

    Raises:
        TokenError: naming ``where`` and what is expected (never the token itself).
    """
    if not MIN_TOKEN_LENGTH <= len(token) <= MAX_TOKEN_LENGTH:
        raise TokenError(f"{where}: expected a token of {MIN_TOKEN_LENGTH} to "
                         f"{MAX_TOKEN_LENGTH} characters, got {len(token)}")
    if not TOKEN_RE.fullmatch(token):
        raise TokenError(f"{where}: the token may hold only letters, digits and -._~+/ "
                         "(then = padding)")
    return token


def load_token(path: Path | None, environ: Mapping[str, str] = os.environ) -> str | None:
    """The API token from ``path`` (surrounding whitespace ignored) or the environment.

    Returns:
        The token, or None when neither is set (the API is then open).

    Raises:
        TokenError: the file cannot be read or the token is unusable.
    """
    if path is not None:
        try:
            text = path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise TokenError(f"--token-file {path}: cannot read: "
                             f"{getattr(exc, 'strerror', None) or type(exc).__name__}") from None
        return check_token(text.strip(), f"--token-file {path}")
    value = environ.get(TOKEN_ENV, "").strip()
    return check_token(value, TOKEN_ENV) if value else None


class BearerCheck:
    """Compares a request's bearer token with the configured one in constant time."""

    def __init__(self, token: str) -> None:
        self._digest = hashlib.sha256(token.encode()).digest()

    def allows(self, authorization: str) -> bool:
        scheme, _, presented = authorization.strip().partition(" ")
        if scheme.lower() != "bearer":
            return False
        presented = presented.strip()[:MAX_TOKEN_LENGTH + 1]
        digest = hashlib.sha256(presented.encode("utf-8", errors="replace")).digest()
        return hmac.compare_digest(digest, self._digest)


Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def bearer_middleware(token: str, protect_hls: bool) -> Middleware:
    """A middleware requiring the token on /api/, /metrics (and /hls/ with ``protect_hls``)."""
    check = BearerCheck(token)

    def protected(request: web.Request) -> bool:
        path = request.path
        if path.startswith("/api/") or path == "/metrics":
            return True
        # CORS preflights carry no credentials (Fetch standard), so they stay open.
        return protect_hls and path.startswith("/hls/") and request.method != "OPTIONS"

    @web.middleware
    async def middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
        if protected(request) and not check.allows(request.headers.get("Authorization", "")):
            raise web.HTTPUnauthorized(
                text="a bearer token is required (Authorization: Bearer TOKEN)\n",
                headers={"WWW-Authenticate": 'Bearer realm="relay"',
                         "Cache-Control": "no-store"})
        return await handler(request)

    return middleware

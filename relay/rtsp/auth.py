"""RTSP authentication: Basic (RFC 7617) and Digest (RFC 2617, RFC 7616, and RFC 2069's form
without qop that older cameras still use), for the client and for the demo server.

Pure functions: the client passes the cnonce in and the server its nonce factory, so every output
is reproducible. SHA-512-256 is offered only where hashlib provides it.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
import secrets
from collections.abc import Callable
from dataclasses import dataclass, field

from relay.errors import RemoteProtocolError

_TOKEN = re.compile(r"[!#$%&'*+.^_`|~0-9A-Za-z-]+")
_TOKEN68 = re.compile(r"([A-Za-z0-9._~+/-]+=*)(?=[ \t]*(?:,|$))")
_MAX_CHALLENGES = 16
_MAX_PARAMS = 32


def _hash_factory(name: str) -> Callable[[bytes], hashlib._Hash] | None:
    try:
        hashlib.new(name, b"")
    except ValueError:
        return None
    return lambda data: hashlib.new(name, data)


_ALGORITHMS: dict[str, Callable[[bytes], hashlib._Hash]] = {
    name: fn
    for name, fn in (
        ("MD5", _hash_factory("md5")),
        ("SHA-256", _hash_factory("sha256")),
        ("SHA-512-256", _hash_factory("sha512_256")),
    )
    if fn is not None
}
_STRENGTH = {"MD5": 1, "SHA-256": 2, "SHA-512-256": 3}


@dataclass(frozen=True, slots=True)
class Challenge:
    """One WWW-Authenticate challenge (or the params of an Authorization header).

    ``scheme`` is lower case ('digest', 'basic'); param names are lower case, values unquoted.
    """

    scheme: str
    params: dict[str, str] = field(default_factory=dict)

    @property
    def algorithm(self) -> str:
        """Digest algorithm in upper case, 'MD5' when absent; '-SESS' variants keep the suffix."""
        return self.params.get("algorithm", "MD5").strip().upper()

    @property
    def qop_options(self) -> list[str]:
        """The offered qop values, lower case."""
        return [q.strip().lower() for q in self.params.get("qop", "").split(",") if q.strip()]


class _Scanner:
    """A cursor over an auth header value (RFC 7235 2.1 challenge / credentials grammar)."""

    def __init__(self, text: str) -> None:
        self.text = text
        self.pos = 0

    def skip(self, chars: str = " \t") -> None:
        while self.pos < len(self.text) and self.text[self.pos] in chars:
            self.pos += 1

    def peek(self) -> str:
        return self.text[self.pos] if self.pos < len(self.text) else ""

    def token(self) -> str | None:
        m = _TOKEN.match(self.text, self.pos)
        if m is None:
            return None
        self.pos = m.end()
        return m.group(0)

    def value(self) -> str:
        if self.peek() == '"':
            self.pos += 1
            out = []
            while self.pos < len(self.text):
                c = self.text[self.pos]
                self.pos += 1
                if c == "\\" and self.pos < len(self.text):
                    out.append(self.text[self.pos])
                    self.pos += 1
                elif c == '"':
                    return "".join(out)
                else:
                    out.append(c)
            raise RemoteProtocolError("RTSP auth: unterminated quoted string")
        start = self.pos
        while self.pos < len(self.text) and self.text[self.pos] not in ", \t":
            self.pos += 1
        return self.text[start : self.pos]


def parse_challenges(values: list[str]) -> list[Challenge]:
    """Every challenge in WWW-Authenticate values (several headers, or several per header).

    Raises:
        RemoteProtocolError: "RTSP auth: ..." for an unreadable value.
    """
    out: list[Challenge] = []
    for value in values:
        s = _Scanner(value)
        while True:
            s.skip(" \t,")
            if not s.peek():
                break
            scheme = s.token()
            if scheme is None:
                raise RemoteProtocolError(f"RTSP auth: bad challenge {value[:60]!r}")
            params: dict[str, str] = {}
            s.skip()
            m = _TOKEN68.match(s.text, s.pos)
            if m:  # credentials/challenge in token68 form (RFC 7235 2.1), e.g. Basic's
                params["token68"] = m.group(1)
                s.pos = m.end()
            while True:
                s.skip(" \t,")
                mark = s.pos
                name = s.token()
                if name is None:
                    if s.peek():  # token68 or junk: take the rest of this item as opaque data
                        params.setdefault("token68", s.value())
                        continue
                    break
                s.skip()
                if s.peek() != "=":
                    s.pos = mark  # a bare token starts the next challenge
                    break
                s.pos += 1
                s.skip()
                if len(params) >= _MAX_PARAMS:
                    raise RemoteProtocolError("RTSP auth: too many parameters")
                params[name.lower()] = s.value()
            out.append(Challenge(scheme.lower(), params))
            if len(out) > _MAX_CHALLENGES:
                raise RemoteProtocolError("RTSP auth: too many challenges")
    return out


def _rank(ch: Challenge) -> int:
    if ch.scheme == "basic":
        return 0
    if ch.scheme == "digest" and "nonce" in ch.params:
        algo = ch.algorithm.removesuffix("-SESS")
        if algo in _ALGORITHMS:
            return 10 * _STRENGTH[algo] + (1 if ch.algorithm.endswith("-SESS") else 0)
    return -1


def choose(challenges: list[Challenge]) -> Challenge | None:
    """The strongest usable challenge: Digest SHA-512-256 > SHA-256 > MD5 > Basic, or None."""
    usable = [c for c in challenges if _rank(c) >= 0]
    return max(usable, key=_rank) if usable else None


def _quote(value: str) -> str:
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def digest_response(
    challenge: Challenge,
    method: str,
    uri: str,
    username: str,
    password: str,
    cnonce: str,
    nc: int,
    qop: str | None,
    body: bytes = b"",
) -> str:
    """The hex request-digest (RFC 7616 3.4.1; RFC 2069 when ``qop`` is None)."""
    algo = challenge.algorithm
    base = algo.removesuffix("-SESS")
    hasher = _ALGORITHMS.get(base)
    if hasher is None:
        raise RemoteProtocolError(f"RTSP auth: unsupported digest algorithm {algo[:20]!r}")

    def h(text: str) -> str:
        return hasher(text.encode("utf-8", "surrogateescape")).hexdigest()

    realm = challenge.params.get("realm", "")
    nonce = challenge.params.get("nonce", "")
    ha1 = h(f"{username}:{realm}:{password}")
    if algo.endswith("-SESS"):
        ha1 = h(f"{ha1}:{nonce}:{cnonce}")
    ha2 = h(f"{method}:{uri}")
    if qop == "auth-int":
        ha2 = h(f"{method}:{uri}:{hasher(body).hexdigest()}")
    if qop is None:
        return h(f"{ha1}:{nonce}:{ha2}")
    return h(f"{ha1}:{nonce}:{nc:08x}:{cnonce}:{qop}:{ha2}")


def authorization(
    challenge: Challenge,
    method: str,
    uri: str,
    username: str,
    password: str,
    cnonce: str,
    nc: int,
) -> str:
    """The Authorization header value answering ``challenge``.

    Digest uses qop=auth when offered (auth-int, with an empty body, when it is the only one),
    otherwise the RFC 2069 form without qop/nc/cnonce.

    Raises:
        RemoteProtocolError: the challenge's scheme or algorithm is not supported.
    """
    if challenge.scheme == "basic":
        raw = f"{username}:{password}".encode()
        return "Basic " + base64.b64encode(raw).decode("ascii")
    if challenge.scheme != "digest":
        raise RemoteProtocolError(f"RTSP auth: unsupported scheme {challenge.scheme[:20]!r}")
    offered = challenge.qop_options
    qop = "auth" if "auth" in offered else ("auth-int" if "auth-int" in offered else None)
    response = digest_response(challenge, method, uri, username, password, cnonce, nc, qop)
    p = challenge.params
    parts = [
        f"username={_quote(username)}",
        f"realm={_quote(p.get('realm', ''))}",
        f"nonce={_quote(p.get('nonce', ''))}",
        f"uri={_quote(uri)}",
    ]
    if "algorithm" in p:
        parts.append(f"algorithm={p['algorithm']}")
    if qop is not None:
        parts += [f"nc={nc:08x}", f"cnonce={_quote(cnonce)}", f"qop={qop}"]
    parts.append(f"response={_quote(response)}")
    if "opaque" in p:
        parts.append(f"opaque={_quote(p['opaque'])}")
    return "Digest " + ", ".join(parts)


class DigestServer:
    """Server side of Digest (and optionally Basic): issues challenges, checks Authorization.

    Args:
        realm: the protection space shown to users.
        users: username -> password.
        algorithm: 'MD5' or 'SHA-256'.
        qop: offer qop=auth (False gives the RFC 2069 form).
        allow_basic: also accept (and offer) Basic.
        nonce_factory: new nonce per challenge; random by default.
        max_nonces: issued nonces remembered (oldest forgotten first).
    """

    def __init__(
        self,
        realm: str,
        users: dict[str, str],
        algorithm: str = "MD5",
        qop: bool = True,
        allow_basic: bool = False,
        nonce_factory: Callable[[], str] = lambda: secrets.token_hex(16),
        max_nonces: int = 64,
    ) -> None:
        if algorithm.upper() not in _ALGORITHMS:
            raise ValueError(f"unsupported digest algorithm {algorithm}")
        self.realm = realm
        self.users = dict(users)
        self.algorithm = algorithm.upper()
        self.qop = qop
        self.allow_basic = allow_basic
        self._nonce_factory = nonce_factory
        self._nonces: dict[str, None] = {}
        self._max_nonces = max_nonces

    def challenges(self) -> list[str]:
        """WWW-Authenticate values for a 401 (Digest first, then Basic when allowed)."""
        nonce = self._nonce_factory()
        self._nonces[nonce] = None
        while len(self._nonces) > self._max_nonces:
            del self._nonces[next(iter(self._nonces))]
        digest = f"Digest realm={_quote(self.realm)}, nonce={_quote(nonce)}"
        if self.algorithm != "MD5":
            digest += f", algorithm={self.algorithm}"
        if self.qop:
            digest += ', qop="auth"'
        out = [digest]
        if self.allow_basic:
            out.append(f"Basic realm={_quote(self.realm)}")
        return out

    def verify(self, method: str, uri: str, header: str | None) -> str | None:
        """The authenticated username, or None when ``header`` is missing or wrong."""
        if not header:
            return None
        try:
            creds = parse_challenges([header])
        except RemoteProtocolError:
            return None
        if len(creds) != 1:
            return None
        cred = creds[0]
        if cred.scheme == "basic" and self.allow_basic:
            return self._verify_basic(cred.params.get("token68", ""))
        if cred.scheme != "digest":
            return None
        p = cred.params
        user = p.get("username")
        nonce = p.get("nonce", "")
        if user is None or user not in self.users or nonce not in self._nonces:
            return None
        if p.get("realm") != self.realm or p.get("uri") != uri:
            return None
        if cred.algorithm != self.algorithm:
            return None
        qop = p.get("qop")
        if (qop is None) == self.qop or qop not in (None, "auth"):
            return None
        nc_text = p.get("nc", "0")
        try:
            nc = int(nc_text, 16) if len(nc_text) <= 8 else -1
        except ValueError:
            return None
        challenge = Challenge(
            "digest", {"realm": self.realm, "nonce": nonce, "algorithm": self.algorithm}
        )
        expected = digest_response(
            challenge, method, uri, user, self.users[user], p.get("cnonce", ""), nc, qop
        )
        given = p.get("response", "").encode("utf-8", "replace")
        return user if hmac.compare_digest(expected.encode(), given) else None

    def _verify_basic(self, token: str) -> str | None:
        try:
            user, sep, password = base64.b64decode(token, validate=True).decode().partition(":")
        except (ValueError, UnicodeDecodeError):
            return None
        if sep and user in self.users and hmac.compare_digest(
            self.users[user].encode(), password.encode()
        ):
            return user
        return None

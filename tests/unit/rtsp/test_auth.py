"""Basic and Digest (RFC 2617, 7616, 2069) against the RFC test vectors; the server verifier."""

import base64

import pytest
from hypothesis import given
from hypothesis import strategies as st

from relay.errors import RemoteProtocolError
from relay.rtsp.auth import Challenge, DigestServer, authorization, choose, parse_challenges
from tests.unit.rtsp import _fixtures as fx

RFC7616_CHALLENGE = (
    'Digest realm="http-auth@example.org", qop="auth, auth-int", algorithm={algo}, '
    'nonce="7ypf/xlj9XXwfDPEoM4URrv/xwf94BcCAzFZH4GiTo0v", '
    'opaque="FQhe/qaU925kfnzjCev0ciny7QMkPqMAFRtzCUYo5tdS"'
)
RFC7616_CNONCE = "f2/wE4q74E6zIJEtWaHKaf5wv/H5QzzpXusqGemxURZJ"


@pytest.mark.parametrize(
    "algo, response",
    [
        ("MD5", "8ca523f5e9506fed4657c9700eebdbec"),
        ("SHA-256", "753927fa0e85d155564e2e272a28d1802ca10daf4496794697cf8db5856cb6c1"),
    ],
)
def test_rfc7616_3_9_1(algo: str, response: str) -> None:
    [ch] = parse_challenges([RFC7616_CHALLENGE.format(algo=algo)])
    value = authorization(
        ch, "GET", "/dir/index.html", "Mufasa", "Circle of Life", RFC7616_CNONCE, 1
    )
    assert value == (
        'Digest username="Mufasa", realm="http-auth@example.org", '
        'nonce="7ypf/xlj9XXwfDPEoM4URrv/xwf94BcCAzFZH4GiTo0v", uri="/dir/index.html", '
        f'algorithm={algo}, nc=00000001, cnonce="{RFC7616_CNONCE}", qop=auth, '
        f'response="{response}", opaque="FQhe/qaU925kfnzjCev0ciny7QMkPqMAFRtzCUYo5tdS"'
    )


def test_rfc2617_3_5() -> None:
    [ch] = parse_challenges([
        'Digest realm="testrealm@host.com", qop="auth,auth-int", '
        'nonce="dcd98b7102dd2f0e8b11d0f600bfb0c093", opaque="5ccc069c403ebaf9f0171e9517f40e41"'
    ])
    value = authorization(ch, "GET", "/dir/index.html", "Mufasa", "Circle Of Life", "0a4f113b", 1)
    assert 'response="6629fae49393a05397450978507c4ef1"' in value
    assert "nc=00000001" in value and 'cnonce="0a4f113b"' in value and "qop=auth," in value


def test_rfc2069_form_without_qop() -> None:
    [digest, basic] = parse_challenges(
        fx.DAHUA_401.format(cseq=1).split("WWW-Authenticate: ")[1:]
    )
    assert choose([basic, digest]) is digest
    value = authorization(digest, "DESCRIBE", "rtsp://h/cam", "admin", "pw", "unused", 1)
    # RFC 2069: response = MD5(HA1:nonce:HA2), and no nc/cnonce/qop.
    import hashlib

    def md5(s: str) -> str:
        return hashlib.md5(s.encode()).hexdigest()

    ha1 = md5("admin:Login to 4K05DAAPAZ8D5A6:pw")
    expected = md5(f"{ha1}:1548364735:{md5('DESCRIBE:rtsp://h/cam')}")
    assert value == (
        'Digest username="admin", realm="Login to 4K05DAAPAZ8D5A6", nonce="1548364735", '
        f'uri="rtsp://h/cam", response="{expected}"'
    )


def test_basic() -> None:
    [ch] = parse_challenges(['Basic realm="AXIS"'])
    value = authorization(ch, "DESCRIBE", "rtsp://h/", "root", "pass:word", "c", 1)
    assert value == "Basic " + base64.b64encode(b"root:pass:word").decode()


def test_parse_several_in_one_header_and_choose() -> None:
    challenges = parse_challenges([
        'Basic realm="x", Digest realm="r", nonce="n1", algorithm=MD5, qop="auth"',
        'Digest realm="r", nonce="n2", algorithm=SHA-256, stale=FALSE, Negotiate',
        "Digest realm=r, nonce=n3, algorithm=SHA-999",
    ])
    assert [c.scheme for c in challenges] == ["basic", "digest", "digest", "negotiate", "digest"]
    assert challenges[2].params == {
        "realm": "r", "nonce": "n2", "algorithm": "SHA-256", "stale": "FALSE"
    }
    assert choose(challenges) is challenges[2]
    assert choose(challenges[:2]) is challenges[1]
    assert choose([challenges[0]]) is challenges[0]
    assert choose([challenges[3], challenges[4]]) is None


def test_quoted_escapes() -> None:
    [ch] = parse_challenges([r'Digest realm="a \"quoted\" \\ realm", nonce="x"'])
    assert ch.params["realm"] == 'a "quoted" \\ realm'
    value = authorization(ch, "OPTIONS", "*", 'us"er', "p", "c", 2)
    assert r'username="us\"er"' in value and r'realm="a \"quoted\" \\ realm"' in value
    assert parse_challenges([value])[0].params["username"] == 'us"er'


def test_garbage() -> None:
    with pytest.raises(RemoteProtocolError, match="RTSP auth"):
        parse_challenges(['Digest realm="unterminated'])
    with pytest.raises(RemoteProtocolError, match="RTSP auth"):
        parse_challenges(["=oops"])


def make_server(**kw) -> DigestServer:
    nonces = iter(f"nonce{i}" for i in range(1000))
    return DigestServer("Relay", {"alice": "secret"}, nonce_factory=lambda: next(nonces), **kw)


@pytest.mark.parametrize("algorithm", ["MD5", "SHA-256"])
@pytest.mark.parametrize("qop", [True, False])
def test_digest_server_accepts_our_client(algorithm: str, qop: bool) -> None:
    server = make_server(algorithm=algorithm, qop=qop)
    [ch] = parse_challenges(server.challenges())
    uri = "rtsp://h/demo"
    good = authorization(ch, "DESCRIBE", uri, "alice", "secret", "abc", 1)
    assert server.verify("DESCRIBE", uri, good) == "alice"
    assert server.verify("SETUP", uri, good) is None  # method is in the hash
    assert server.verify("DESCRIBE", uri + "x", good) is None
    bad = authorization(ch, "DESCRIBE", uri, "alice", "wrong", "abc", 1)
    assert server.verify("DESCRIBE", uri, bad) is None
    unknown_nonce = Challenge("digest", {**ch.params, "nonce": "forged"})
    forged = authorization(unknown_nonce, "DESCRIBE", uri, "alice", "secret", "abc", 1)
    assert server.verify("DESCRIBE", uri, forged) is None
    assert server.verify("DESCRIBE", uri, None) is None
    assert server.verify("DESCRIBE", uri, 'Digest username="alice') is None


def test_digest_server_basic_and_nonce_expiry() -> None:
    server = make_server(allow_basic=True, max_nonces=2)
    challenges = parse_challenges(server.challenges())
    assert [c.scheme for c in challenges] == ["digest", "basic"]
    basic = authorization(challenges[1], "PLAY", "rtsp://h/", "alice", "secret", "c", 1)
    assert server.verify("PLAY", "rtsp://h/", basic) == "alice"
    assert server.verify("PLAY", "rtsp://h/", "Basic !!!") is None
    first = authorization(challenges[0], "PLAY", "rtsp://h/", "alice", "secret", "c", 1)
    server.challenges()
    server.challenges()  # the first nonce is forgotten now
    assert server.verify("PLAY", "rtsp://h/", first) is None


@given(st.text(min_size=0, max_size=20), st.text(max_size=20), st.text(max_size=20),
       st.sampled_from(["MD5", "SHA-256"]), st.booleans())
def test_digest_round_trip(user: str, password: str, cnonce: str, algo: str, qop: bool) -> None:
    server = DigestServer("r", {user: password}, algorithm=algo, qop=qop)
    ch = choose(parse_challenges(server.challenges()))
    assert ch is not None
    value = authorization(ch, "PLAY", "rtsp://h/p", user, password, cnonce, 7)
    assert server.verify("PLAY", "rtsp://h/p", value) == user

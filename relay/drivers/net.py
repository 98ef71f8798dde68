"""Opens the TCP and TLS connections of the drivers: one place where certificates are checked.

TLS verifies the chain and the host name against the system's CAs (OpenSSL also reads
``SSL_CERT_FILE``, so a private CA can be added without code). A pinned SHA-256 fingerprint
replaces that for devices with self-signed certificates (UniFi Protect's rtsps on port 7441):
chain and name are not checked, but the leaf certificate must be the pinned one before a byte of
the application protocol is sent.
"""

from __future__ import annotations

import hashlib
import os
import socket
import ssl

import trio

from relay.errors import RelayError


class CertificateMismatch(RelayError):
    """The peer's certificate is not the pinned one."""


def plain_socket(stream: trio.abc.Stream) -> socket.socket | None:
    """A non-blocking stdlib socket on the same connection as ``stream`` (None over TLS), for
    the synchronous reads and writes of the merged-read tick and of a sink's batch: trio's
    socket calls add a reschedule to each (``Stream`` methods await a checkpoint after the
    syscall). The caller closes it; the connection lasts until both are closed."""
    if not isinstance(stream, trio.SocketStream):
        return None
    raw = socket.socket(fileno=os.dup(stream.socket.fileno()))
    raw.setblocking(False)
    return raw


def format_fingerprint(digest: bytes) -> str:
    """``sha256:AB:CD:...``, as the config takes it and ``openssl x509 -fingerprint`` prints."""
    return "sha256:" + digest.hex(":").upper()


async def open_stream(
    host: str, port: int, *, tls: bool = False, fingerprint: bytes | None = None
) -> trio.abc.Stream:
    """A connected stream to ``host:port``, over TLS when asked (handshake done, peer checked).

    Args:
        host: name or address; with TLS, also the name the certificate must carry.
        port: TCP port.
        tls: wrap the connection in TLS.
        fingerprint: the SHA-256 of the peer's DER certificate, pinned instead of verified.

    Raises:
        OSError: the connection failed.
        trio.BrokenResourceError: the TLS handshake failed (the ``ssl`` error is its cause).
        CertificateMismatch: the certificate is not the pinned one.
    """
    sock = await trio.open_tcp_stream(host, port)
    if not tls:
        return sock
    context = ssl.create_default_context()
    if fingerprint is not None:
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    stream = trio.SSLStream(sock, context, server_hostname=host)
    try:
        await stream.do_handshake()
        if fingerprint is not None:
            der = stream.getpeercert(binary_form=True) or b""
            got = hashlib.sha256(der).digest()
            if got != fingerprint:
                raise CertificateMismatch(
                    f"TLS certificate of {host}:{port} is {format_fingerprint(got)}, "
                    f"not the pinned tls_fingerprint {format_fingerprint(fingerprint)}"
                )
    except BaseException:
        await trio.aclose_forcefully(stream)
        raise
    return stream

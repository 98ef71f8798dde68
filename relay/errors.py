"""One error hierarchy for the whole relay.

Protocol cores raise ``RemoteProtocolError`` for garbage from the peer and ``LocalProtocolError``
for a call that is illegal in the current state. Drivers catch ``RelayError`` at their boundary,
log one line and retry; anything else is a bug.
"""


class RelayError(Exception):
    """Base of every error the relay raises on purpose."""


class ConfigError(RelayError):
    """A bad command line or config value; the message names the key and what was expected."""


class ProtocolError(RelayError):
    """A protocol exchange broke its rules."""


class RemoteProtocolError(ProtocolError):
    """The peer sent bytes that break the protocol (malformed, oversized, out of order)."""


class LocalProtocolError(ProtocolError):
    """We asked a protocol core for something its state does not allow."""


class AuthError(RelayError):
    """The peer refused our credentials."""


class UnsupportedError(RelayError):
    """A codec or feature the relay cannot carry."""

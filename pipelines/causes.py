"""Why a request to an engine got no answer, in the words an operator acts on: connection
refused, the host name does not resolve (DNS), TLS refused the certificate, timed out — read
from the exception and what it wraps (urllib3 keeps the cause in `reason`, requests in its
arguments, Python in `__cause__`), not the wrapper's name (`MaxRetryError`)."""

from __future__ import annotations

import socket
import ssl

# (what to look for, what to say), the first that matches anywhere in the chain wins
CAUSES: tuple[tuple[tuple[type[BaseException], ...] | str, str], ...] = (
    ((ConnectionRefusedError,), "connection refused (nothing listens at that host and port)"),
    ("Connection refused", "connection refused (nothing listens at that host and port)"),
    ((socket.gaierror,), "DNS: the host name does not resolve"),
    ("NameResolutionError", "DNS: the host name does not resolve"),
    ("Failed to resolve", "DNS: the host name does not resolve"),
    ((ssl.SSLCertVerificationError,), "TLS: the server's certificate is not trusted"),
    ((ssl.SSLError,), "TLS: the handshake failed"),
    ("SSLError", "TLS: the handshake failed"),
    ((TimeoutError, socket.timeout), "timed out"),
    ("Timeout", "timed out"),
    ("timed out", "timed out"),
)


def cause(exc: BaseException) -> str:
    """The operator's words for why `exc` got no answer, or its type's name if none applies."""
    for found in _chain(exc):
        for sign, said in CAUSES:
            if isinstance(sign, tuple) and isinstance(found, sign):
                return said
            if isinstance(sign, str) and (sign in type(found).__name__ or sign in str(found)):
                return said
    return type(exc).__name__


def _chain(exc: BaseException) -> list[BaseException]:
    """`exc` and what it wraps, nearest first (each once)."""
    seen: list[BaseException] = []
    todo: list[object] = [exc]
    while todo and len(seen) < 20:
        found = todo.pop(0)
        if not isinstance(found, BaseException) or any(found is other for other in seen):
            continue
        seen.append(found)
        todo += [getattr(found, "reason", None), found.__cause__, found.__context__, *found.args]
    return seen

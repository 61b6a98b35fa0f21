"""batchml._compat.tornado_tls: tornado's TLS reads and writes start with an empty OpenSSL
error queue, through the two names it reaches (tornado's stream hooks, OpenSSL's
ERR_clear_error), on the releases it was checked on.

That it keeps a real connection alive is shown on the pool's Python, which has
the bug (tests/integration/test_tls_error_queue.py); here, the mechanism.
"""

from __future__ import annotations

import _ssl
import ctypes
import errno
import ssl
from importlib.metadata import version
from types import SimpleNamespace

import pytest
from tornado.iostream import SSLIOStream

from batchml._compat import tornado_tls
from batchml._compat.tornado_tls import CHECKED_ON

_ERR_LIB_SYS = 2
_crypto = ctypes.CDLL(_ssl.__file__)


def _leave_stale_epipe() -> None:
    """What a TLS write to a peer that hung up leaves behind (OpenSSL 3 API)."""
    _crypto.ERR_new()
    _crypto.ERR_set_debug(None, 0, None)
    _crypto.ERR_set_error(_ERR_LIB_SYS, errno.EPIPE, None)


def _queued() -> int:
    _crypto.ERR_peek_error.restype = ctypes.c_ulong
    return int(_crypto.ERR_peek_error())


@pytest.mark.parametrize("package", ["tornado", "cryptography"])
def test_checked_on_this_release(package: str) -> None:
    """When this fails, a release changed: check the reaches named in tornado_tls's
    docstring (run this file and tests/integration/test_tls_error_queue.py), then
    add the release to CHECKED_ON."""
    assert version(package) in CHECKED_ON[package], (
        f"{package} {version(package)} is not among those batchml._compat.tornado_tls "
        f"was checked on ({', '.join(CHECKED_ON[package])})"
    )


def test_checked_on_this_openssl() -> None:
    major, minor = ssl.OPENSSL_VERSION_INFO[:2]
    assert f"{major}.{minor}" in CHECKED_ON["OpenSSL"], (
        f"{ssl.OPENSSL_VERSION}: ERR_clear_error in _ssl's libcrypto was checked on "
        f"OpenSSL {', '.join(CHECKED_ON['OpenSSL'])} only"
    )


def test_the_reached_names_are_where_they_were() -> None:
    for name in tornado_tls.HOOKS:
        assert callable(getattr(SSLIOStream, name, None)), (
            f"tornado {version('tornado')} has no SSLIOStream.{name}: the TLS fix cannot wrap it"
        )
    assert hasattr(_crypto, "ERR_clear_error"), (
        f"{ssl.OPENSSL_VERSION} linked by {_ssl.__file__} has no ERR_clear_error"
    )


def test_a_stale_error_is_cleared_before_the_read_and_write() -> None:
    assert tornado_tls.install() is True
    assert tornado_tls.install() is True  # twice is once: not wrapped twice
    for name in tornado_tls.HOOKS:
        method = getattr(SSLIOStream, name)
        assert method.__wrapped__.__name__ == name
        assert not hasattr(method.__wrapped__, "__wrapped__")
    # The TLS socket reports the queue as it finds it when asked to read or send.
    stream = SimpleNamespace(
        _ssl_accepting=False,
        socket=SimpleNamespace(recv_into=lambda buf, n: _queued(), send=lambda data: _queued()),
    )
    for call in (SSLIOStream.read_from_fd, SSLIOStream.write_to_fd):
        _leave_stale_epipe()
        assert _queued() != 0
        assert call(stream, bytearray(8)) == 0  # type: ignore[arg-type]

"""The TLS fix: tornado's TLS reads and writes start with an empty OpenSSL error queue.

That it keeps a real connection alive is shown on the pool's Python, which has
the bug (tests/integration/test_tls_error_queue.py); here, the mechanism.
"""

from __future__ import annotations

import _ssl
import ctypes
import errno
from types import SimpleNamespace

from tornado.iostream import SSLIOStream

from batchml.backends import tls_error_queue

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


def test_a_stale_error_is_cleared_before_the_read_and_write() -> None:
    assert tls_error_queue.install() is True
    assert tls_error_queue.install() is True  # twice is once: not wrapped twice
    for name in ("read_from_fd", "write_to_fd"):
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

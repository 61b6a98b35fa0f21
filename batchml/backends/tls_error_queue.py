"""Clear OpenSSL's error queue before each TLS read and write of dask's connections.

Why: CPython's ssl module does not empty the thread's OpenSSL error queue
before SSL_read and SSL_write (python/cpython#148594), although OpenSSL
requires it. Since OpenSSL 3.4 a peer that hangs up leaves an ERR_LIB_SYS
entry (EPIPE) in that queue, and CPython (since gh-127257) reports it as
BrokenPipeError on the next read that merely has to wait, on *any* TLS
connection the same thread serves. dask then drops a healthy connection: a
worker just after it registered ("two workers did not connect"), or the HPO
driver's client ("scheduler-connection-lost"), which cancels every running
trial. Seen on Python 3.13.5 with OpenSSL 3.5 (Debian 13) in about one run in
three of the HTCondor HPO test; Python 3.11 with OpenSSL 3.0 is not affected.

batchml's clusters use TLS by default, so the driver installs this for its
scheduler and client, and every worker and nanny loads it as a dask preload
(``--preload`` / ``--preload-nanny``).
"""

from __future__ import annotations

import ctypes
import functools
from collections.abc import Callable
from typing import Any

PRELOAD = __name__  # the dask preload module name, for worker and nanny options
_INSTALLED = "_batchml_clears_openssl_errors"


def install() -> bool:
    """Make tornado's TLS streams clear the queue before each read and write.

    False where this Python's OpenSSL cannot be reached (then nothing changes).
    Idempotent.
    """
    from tornado.iostream import SSLIOStream

    if getattr(SSLIOStream, _INSTALLED, False):
        return True
    clear = _err_clear_error()
    if clear is None:
        return False
    for name in ("read_from_fd", "write_to_fd"):
        setattr(SSLIOStream, name, _clearing_first(getattr(SSLIOStream, name), clear))
    setattr(SSLIOStream, _INSTALLED, True)
    return True


def dask_setup(server: Any) -> None:
    """The hook distributed calls on a worker or nanny that preloads this module."""
    install()


def _err_clear_error() -> Callable[[], None] | None:
    import _ssl

    try:
        function = ctypes.CDLL(_ssl.__file__).ERR_clear_error  # found in _ssl's libcrypto
    except (OSError, AttributeError):
        return None
    function.argtypes = []
    function.restype = None
    return function


def _clearing_first(method: Callable[..., Any], clear: Callable[[], None]) -> Callable[..., Any]:
    @functools.wraps(method)
    def wrapper(self: Any, *args: Any) -> Any:
        clear()
        return method(self, *args)

    return wrapper

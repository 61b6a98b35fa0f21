"""Clear OpenSSL's error queue before each TLS read and write of dask's connections.

Why: CPython's ssl module does not empty the thread's OpenSSL error queue
before SSL_read and SSL_write (python/cpython#148594), although OpenSSL
requires it. Since OpenSSL 3.4 a peer that hangs up leaves an ERR_LIB_SYS
entry (EPIPE) in that queue, and CPython (since gh-127257) reports it as
BrokenPipeError on the next read that merely has to wait, on *any* TLS
connection the same thread serves. dask then drops a healthy connection: a
worker just after it registered ("two workers did not connect"), or the HPO
driver's client ("scheduler-connection-lost"), which cancels every running
trial. Python 3.13 with OpenSSL 3.5 (Debian 13, the HTCondor test pool) has
it; Python 3.11 with OpenSSL 3.0 does not (how often, in BENCHMARKS.md).

batchml's clusters use TLS by default, so the driver installs this for its
scheduler and client, and every worker and nanny loads it as a dask preload
(``--preload`` / ``--preload-nanny``).

Two reaches into other libraries' insides, both declared here: tornado's
``SSLIOStream.read_from_fd`` and ``write_to_fd`` (its hooks for subclasses,
wrapped in place here), and OpenSSL's C function ``ERR_clear_error``, called
through ctypes in the libcrypto that Python's ``_ssl`` module links. Checked on
the versions in CHECKED_ON (cryptography makes the temporary credentials those
connections use): tests/unit/test_compat_tornado_tls.py fails on other
versions, naming what moved, until they are checked again.
"""

from __future__ import annotations

import ctypes
import functools
from collections.abc import Callable
from typing import Any

# Releases (OpenSSL: major.minor, here and in the HTCondor pool) the reaches were checked on.
CHECKED_ON: dict[str, tuple[str, ...]] = {
    "tornado": ("6.6.1",),
    "cryptography": ("50.0.2",),
    "OpenSSL": ("3.0", "3.5"),
}
PRELOAD = __name__  # the dask preload module name, for worker and nanny options
HOOKS = ("read_from_fd", "write_to_fd")  # the SSLIOStream methods wrapped
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
    for name in HOOKS:
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

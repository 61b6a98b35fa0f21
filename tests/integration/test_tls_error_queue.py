"""dask's TLS connections survive a dropped peer on the pool's Python (3.13, OpenSSL 3.5).

There CPython leaves OpenSSL's error queue dirty (python/cpython#148594), and
one peer's broken pipe broke the next connection to read on the same thread:
the cause of the HTCondor pool tests' "workers did not connect" and
"scheduler-connection-lost" failures. The driver (tls_pool_driver.py) runs the
same exchange as distributed ships and with batchml._compat.tornado_tls.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from batchml._compat.tornado_tls import CHECKED_ON

pytestmark = pytest.mark.htcondor
HERE = Path(__file__).parent


def test_a_dropped_peer_no_longer_breaks_a_healthy_connection(
    htcondor_env: dict[str, str],
) -> None:
    from tests.integration.pool import run_in_pool

    report = run_in_pool(htcondor_env, HERE / "tls_pool_driver.py", timeout_s=120)
    # The pool's Python has the bug: without it this test could not tell the fix works.
    assert report["as_shipped"] is not None, (
        f"{report['python']} with {report['openssl']} no longer breaks the healthy peer: "
        "batchml._compat.tornado_tls and this test may go"
    )
    assert "Broken pipe" in report["as_shipped"] or "Stream is closed" in report["as_shipped"]
    assert report["installed"] is True
    assert report["with_clearing"] is None
    # the releases batchml._compat.tornado_tls declares it was checked on
    openssl = ".".join(report["openssl"].split()[1].split(".")[:2])  # "OpenSSL 3.5.1 1 Jul 2025"
    assert openssl in CHECKED_ON["OpenSSL"], report["openssl"]
    assert report["tornado"] in CHECKED_ON["tornado"], report["tornado"]

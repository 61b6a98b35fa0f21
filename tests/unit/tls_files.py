"""dask TLS credentials written to files, for tests that build worker descriptions.

In-memory temporary credentials make dask-jobqueue write temporary files that
outlive the cluster's folder (unraisable warnings under pytest), and a pool's
condor_submit must be able to read the files a worker transfers.
"""

from __future__ import annotations

from pathlib import Path

from distributed.security import Security


def security_in_files(folder: Path) -> Security:
    """Fresh credentials for every role, as files in ``folder``."""
    made = Security.temporary()
    files = {}
    for role in ("scheduler", "worker", "client"):
        for kind in ("cert", "key"):
            key = f"tls_{role}_{kind}"
            (folder / key).write_text(getattr(made, key))
            files[key] = str(folder / key)
    (folder / "ca").write_text(made.tls_ca_file)
    return Security(require_encryption=True, tls_ca_file=str(folder / "ca"), **files)

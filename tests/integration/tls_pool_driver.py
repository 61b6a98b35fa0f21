"""Runs in the HTCondor pool's Python (3.13 with OpenSSL 3.5): a dropped TLS peer and a healthy one.

dask's TLS comms, as the scheduler serves them: peer A hangs up, and the
server's write to it fails with EPIPE; peer B then exchanges a few messages on
the same thread. Run first as distributed ships, then with
batchml._compat.tornado_tls installed; the report says what broke B.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import ssl
import sys
from pathlib import Path
from typing import Any

import tornado
from distributed.comm import connect, listen
from distributed.comm.core import CommClosedError
from distributed.security import Security

from batchml._compat import tornado_tls


async def healthy_peer_survives(security: Security) -> str | None:
    """None when peer B's exchanges all work after peer A's broken pipe; else B's error."""
    accepted: asyncio.Queue[Any] = asyncio.Queue()
    listener = listen("tls://127.0.0.1:0", accepted.put, **security.get_listen_args("scheduler"))
    await listener.start()
    client_args = security.get_connection_args("client")
    try:
        peer_a = await connect(listener.contact_address, **client_args)
        served_a = await accepted.get()
        peer_b = await connect(listener.contact_address, **client_args)
        served_b = await accepted.get()
        await peer_a.write({"op": "identity"})  # a short call, as a nanny makes, then gone
        peer_a.abort()  # without a TLS goodbye
        await served_a.read()
        await served_a.write({"status": "OK"})  # answered after A left: A's kernel resets
        await asyncio.sleep(0.1)
        with contextlib.suppress(CommClosedError):
            await served_a.read()  # EOF; OpenSSL's alert to A fails with EPIPE
        reading = asyncio.ensure_future(served_b.read())  # waits: the read that misfires
        await asyncio.sleep(0.1)
        for n in range(5):
            await peer_b.write({"n": n})
            assert (await reading) == {"n": n}
            reading = asyncio.ensure_future(served_b.read())
            await asyncio.sleep(0.05)
        reading.cancel()
        return None
    except (CommClosedError, OSError) as exc:
        return f"{type(exc).__name__}: {exc}"
    finally:
        listener.stop()


def main(run_dir: Path) -> None:
    security = Security.temporary()
    report = {
        "python": sys.version.split()[0],
        "openssl": ssl.OPENSSL_VERSION,
        "tornado": tornado.version,
        "as_shipped": asyncio.run(healthy_peer_survives(security)),
        "installed": tornado_tls.install(),
    }
    report["with_clearing"] = asyncio.run(healthy_peer_survives(security))
    (run_dir / "report.json").write_text(json.dumps(report))


if __name__ == "__main__":
    main(Path(sys.argv[1]))

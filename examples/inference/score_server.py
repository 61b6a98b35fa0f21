"""Score single events for many network clients with one BatchedSession, from an asyncio server.

A trigger-like or analysis-facility service gets one event at a time from many
connections; calling ONNX Runtime once per event leaves most of the model's
throughput unused. Here each connection's handler awaits
``BatchedSession.apredict``, which gathers what all connections sent during
one turn of the event loop into one ONNX Runtime call, and each handler gets
its own row back.

Protocol: one event per line, a JSON list of the model's input variables in
``preprocess.json`` order; one line back, the output row as a JSON list, or
``{"error": "..."}`` for that event alone (wrong length; NaN and infinities are
replaced as CMSSW does).

    python score_server.py PACKAGE_DIR --port 8765           # serve until Ctrl-C
    python score_server.py PACKAGE_DIR --check-clients 64    # serve on a free port, run 64
                                                             # clients against it, compare
                                                             # with predict_many, print JSON

Needs only numpy, onnxruntime and ``batchml.inference`` (which needs nothing
else: no torch, none of batchml's other dependencies); copy it next to a
package built by ``batchml package build``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import time

import numpy as np

from batchml.inference import BatchedSession


async def handle(
    session: BatchedSession, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
) -> None:
    """Answer one connection's events in order, each as soon as its batch has run."""
    while line := await reader.readline():
        try:
            row = await session.apredict(np.asarray(json.loads(line), dtype=np.float32))
            reply = json.dumps(np.asarray(row).tolist())
        except (ValueError, TypeError) as exc:  # InputError is a ValueError; bad JSON too
            reply = json.dumps({"error": str(exc)})
        writer.write(reply.encode() + b"\n")
        await writer.drain()
    writer.close()


async def client(port: int, events: np.ndarray) -> list[list[float]]:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    rows = []
    for event in events:
        writer.write(json.dumps(event.tolist()).encode() + b"\n")
        rows.append(json.loads(await reader.readline()))
    writer.close()
    return rows


async def check(session: BatchedSession, clients: int, events: int) -> dict[str, float]:
    """Serve on a free port, let ``clients`` connections send ``events`` each, compare."""
    server = await asyncio.start_server(lambda r, w: handle(session, r, w), "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    width = session.inputs[0].shape[0]
    sent = np.random.default_rng(1).normal(size=(clients, events, width)).astype(np.float32)
    start = time.perf_counter()
    got = await asyncio.gather(*(client(port, sent[i]) for i in range(clients)))
    took = time.perf_counter() - start
    server.close()
    await server.wait_closed()
    expected = session.predict_many(sent.reshape(-1, width)).reshape(clients, events, -1)
    diff = np.abs(np.asarray(got, dtype=np.float32).reshape(expected.shape) - expected)
    return {
        "events": clients * events,
        "events_per_s": clients * events / took,
        "max_abs_diff": float(diff.max()),
    }


async def serve(session: BatchedSession, port: int) -> None:
    server = await asyncio.start_server(lambda r, w: handle(session, r, w), "127.0.0.1", port)
    print(f"scoring on 127.0.0.1:{port}", flush=True)
    async with server:
        await server.serve_forever()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("package_dir")
    parser.add_argument("--port", type=int, default=8765)
    parser.add_argument("--check-clients", type=int, default=0, metavar="N")
    parser.add_argument("--events", type=int, default=200, help="per client, with --check-clients")
    parser.add_argument("--max-batch", type=int, default=256)
    args = parser.parse_args()
    try:
        session = BatchedSession(args.package_dir, max_batch=args.max_batch)
    except FileNotFoundError as exc:
        raise SystemExit(f"score_server: {exc}") from None
    with session:
        if args.check_clients:
            print(json.dumps(asyncio.run(check(session, args.check_clients, args.events))))
        else:
            with contextlib.suppress(KeyboardInterrupt):  # Ctrl-C ends serving
                asyncio.run(serve(session, args.port))


if __name__ == "__main__":
    main()

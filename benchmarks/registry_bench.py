"""Registry benchmark: does alias resolution stay flat as a model grows to 10,000 versions?

Prints ratios against a baseline measured in the same run, never absolute
times alone (they depend on the disk):

- resolving ``name@production`` and ``get`` of it (with every byte hashed) at
  1,000 and 10,000 versions, against 10 versions: must stay near 1;
- listing the version numbers and the versions with records, same sizes
  (these read every version, so they grow with the count);
- publish throughput of 16 concurrent writer processes against 1 writer.

Beyond the first ten versions, version folders are cloned from published ones
with their own commit markers (publishing 10,000 takes minutes and measures
nothing more). Run: ``.venv/bin/python benchmarks/registry_bench.py``.
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
import textwrap
import time
from collections.abc import Callable
from pathlib import Path

from batchml.registry import Registry
from batchml.registry.manifest import MARKER, marker_bytes
from batchml.registry.on_disk import read_json

SIZES = (10, 1_000, 10_000)
WRITER = textwrap.dedent(
    """
    import os, sys, time
    from batchml.registry import Registry
    registry = Registry(sys.argv[1])
    while not os.path.exists(sys.argv[2]):
        time.sleep(0.001)
    for i in range(int(sys.argv[3])):
        registry.publish("bench", os.urandom(4096), metrics={"i": i})
    """
)


def grow(registry: Registry, count: int) -> None:
    """Give model 'm' ``count`` committed versions: ten published, the rest cloned."""
    for i in range(10):
        registry.publish("m", f"weights {i}".encode() * 1000, metrics={"loss": 1.0 / (i + 1)})
    registry.alias("m", "production", 5)
    source = registry.layout.version("m", 10)
    digest = read_json(source / MARKER)["manifest_sha256"]
    for number in range(11, count + 1):
        target = registry.layout.version("m", number)
        shutil.copytree(source, target, copy_function=_link, ignore=shutil.ignore_patterns(MARKER))
        (target / MARKER).write_bytes(marker_bytes(number, digest))


def _link(src: str, dst: str) -> None:
    Path(dst).hardlink_to(src)


def per_call(action: Callable[[], object], repeat: int) -> float:
    """Best-of-5 mean seconds per call (the minimum filters scheduler noise)."""
    best = float("inf")
    for _ in range(5):
        start = time.perf_counter()
        for _ in range(repeat):
            action()
        best = min(best, (time.perf_counter() - start) / repeat)
    return best


def publish_rate(workdir: Path, writers: int, total: int) -> float:
    """Versions committed per second by ``writers`` processes publishing ``total`` in all."""
    root = workdir / f"publish-{writers}"
    Registry(root)
    barrier = workdir / f"go-{writers}"
    children = [
        subprocess.Popen(
            [sys.executable, "-c", WRITER, str(root), str(barrier), str(total // writers)]
        )
        for _ in range(writers)
    ]
    time.sleep(2.0)  # let every child import and wait at the barrier
    start = time.perf_counter()
    barrier.write_text("go")
    if any(child.wait() for child in children):
        raise SystemExit("a writer failed")
    elapsed = time.perf_counter() - start
    assert len(Registry(root).versions("bench")) == total
    return total / elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--dir", type=Path, default=None, help="where to build (default: a temp dir)"
    )
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(dir=args.dir) as tmp:
        workdir = Path(tmp)
        rows: dict[int, dict[str, float]] = {}
        for size in SIZES:
            registry = Registry(workdir / f"r{size}")
            grow(registry, size)
            rows[size] = {
                "resolve": per_call(lambda r=registry: r.resolve("m@production"), 2000),
                "get": per_call(lambda r=registry: r.get("batchml:m@production"), 500),
                "versions": per_call(lambda r=registry: r.versions("m"), max(1, 20_000 // size)),
                "list": per_call(lambda r=registry: r.list("m"), max(1, 2_000 // size)),
            }
        base = rows[SIZES[0]]
        print(
            f"{'operation':<30}"
            + "".join(f"{n:>12,}" for n in SIZES[1:])
            + "   (ratio vs 10 versions)"
        )
        for key, label in (
            ("resolve", "resolve name@production"),
            ("get", "get name@production (hashed)"),
            ("versions", "list version numbers"),
            ("list", "list versions with records"),
        ):
            print(f"{label:<30}" + "".join(f"{rows[n][key] / base[key]:>12.2f}" for n in SIZES[1:]))
        one = publish_rate(workdir, 1, 160)
        sixteen = publish_rate(workdir, 16, 160)
        print(f"publish throughput, 16 writers vs 1 writer (160 versions): {sixteen / one:.2f}")


if __name__ == "__main__":
    main()

"""Registry benchmark: does the registry stay usable as a model grows to 10,000 versions?

Prints ratios against a baseline measured in the same run, and the absolute
times behind them (they depend on the disk; the ratios compare across hosts):

- resolving ``name@production`` and ``get`` of it (with every byte hashed) at
  1,000 and 10,000 versions, against 10 versions: must stay near 1;
- listing the version numbers and the versions with records, same sizes
  (these read every version, so they grow with the count), and what ``registry
  show`` does (``get`` plus the aliases and attachments);
- the one index that could replace listing: all records in one JSON file,
  read at once (measured here, not kept by the registry), against ``list``;
- ``batchml registry list NAME`` end to end, as a user waits for it;
- writing the browsable pages (``registry html``): all of them into a new
  folder, again with nothing changed, and after one more version;
- publish throughput of 16 concurrent writer processes against 1 writer.

Beyond the first ten versions, version folders are cloned from published ones
with their own commit markers (publishing 10,000 takes minutes and measures
nothing more). Run: ``.venv/bin/python benchmarks/registry_bench.py``.
"""

from __future__ import annotations

import argparse
import json
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
from batchml.registry.pages import write_site

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


def once(action: Callable[[], object]) -> float:
    start = time.perf_counter()
    action()
    return time.perf_counter() - start


def index_read(registry: Registry, path: Path) -> Callable[[], object]:
    """Reading every record from one index file: the best an index could make listing."""
    path.write_text(json.dumps([v.manifest for v in registry.list("m")]))
    return lambda: json.loads(path.read_text())


def cli_list(root: Path) -> float:
    """``batchml registry list m`` end to end (interpreter start and table included), best of 3."""
    command = [sys.executable, "-m", "batchml.cli", "registry", "--root", str(root), "list", "m"]
    return min(
        once(lambda: subprocess.run(command, check=True, capture_output=True)) for _ in range(3)
    )


def show(registry: Registry) -> None:
    """What ``batchml registry show name@production`` reads."""
    version = registry.get("m@production")
    registry.aliases("m")
    version.attachments()


def pages(registry: Registry, out: Path) -> dict[str, float]:
    """Seconds to write every page, to rewrite with nothing changed, and after one publish."""
    full = once(lambda: write_site(registry, out))
    unchanged = once(lambda: write_site(registry, out))
    registry.publish("m", b"one more", metrics={"loss": 0.01})
    one_more = once(lambda: write_site(registry, out))
    return {"pages": full, "pages_unchanged": unchanged, "pages_one_more": one_more}


OPERATIONS = (
    ("resolve", "resolve name@production"),
    ("get", "get name@production (hashed)"),
    ("show", "registry show (get, aliases, attachments)"),
    ("versions", "list version numbers"),
    ("list", "list versions with records"),
    ("index", "read one index of all records"),
    ("cli_list", "batchml registry list NAME (process)"),
    ("pages", "registry html: every page"),
    ("pages_unchanged", "registry html: nothing changed"),
    ("pages_one_more", "registry html: one more version"),
)


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
                "show": per_call(lambda r=registry: show(r), 500),
                "versions": per_call(lambda r=registry: r.versions("m"), max(1, 20_000 // size)),
                "list": per_call(lambda r=registry: r.list("m"), max(1, 2_000 // size)),
                "index": per_call(
                    index_read(registry, workdir / "index.json"), max(1, 2_000 // size)
                ),
                "cli_list": cli_list(registry.root),
                **pages(registry, workdir / f"pages{size}"),
            }
            print(f"measured {size:,} versions", file=sys.stderr)
        base = rows[SIZES[0]]
        print(f"{'operation':<44}" + "".join(f"{n:>12,}" for n in SIZES[1:])
              + "   (ratio vs 10 versions)")  # fmt: skip
        for key, label in OPERATIONS:
            print(f"{label:<44}" + "".join(f"{rows[n][key] / base[key]:>12.2f}" for n in SIZES[1:]))
        print(f"\n{'operation':<44}" + "".join(f"{n:>12,}" for n in SIZES) + "   (milliseconds)")
        for key, label in OPERATIONS:
            print(f"{label:<44}" + "".join(f"{rows[n][key] * 1e3:>12.3f}" for n in SIZES))
        for size in SIZES:
            ratio = rows[size]["list"] / rows[size]["index"]
            print(f"list / index read at {size:,} versions: {ratio:.1f}")
        one = publish_rate(workdir, 1, 160)
        sixteen = publish_rate(workdir, 16, 160)
        print(f"publish throughput, 16 writers vs 1 writer (160 versions): {sixteen / one:.2f}")


if __name__ == "__main__":
    main()

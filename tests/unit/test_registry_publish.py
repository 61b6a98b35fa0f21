"""Publishing under stress: many concurrent writers, writers killed at random points, and
publishes that fail half-way (a full disk, an interrupt): all or nothing, notes and aliases
included."""

from __future__ import annotations

import os
import random
import signal
import time
from pathlib import Path

from batchml.registry import Registry
from batchml.registry.layout import TOMBSTONE
from batchml.registry.manifest import MARKER
from batchml.registry.states import PUBLISHING
from tests.unit.registry_children import WAIT_FOR_START, finish, spawn, start

PUBLISH_TEN = (
    WAIT_FOR_START
    + """
from batchml.registry import Registry
registry = Registry(sys.argv[2])
for i in range(10):
    registry.publish("jets", f"{os.getpid()}-{i}".encode(), metrics={"i": i})
"""
)

PUBLISH_FOREVER = """
import os, sys
from batchml.registry import Registry
registry = Registry(sys.argv[1])
payload = os.urandom(1 << 16)
while True:
    version = registry.publish(
        "jets",
        payload,
        files={f"part{i}.bin": payload for i in range(4)},
        description="nightly",
        tags=["auto"],
        aliases=["latest", "nightly"],
    )
    print(version.version, flush=True)
"""
NOTES = {"description": "nightly", "tags": ["auto"]}


def test_sixteen_concurrent_publishers_get_160_distinct_versions(tmp_path: Path) -> None:
    root = tmp_path / "registry"
    Registry(root)
    barrier = tmp_path / "go"
    children = [spawn(PUBLISH_TEN, str(barrier), str(root)) for _ in range(16)]
    start(barrier)
    for status, err in finish(children, timeout=120):
        assert status == 0, err
    registry = Registry(root, create=False)
    assert registry.versions("jets") == list(range(1, 161))
    assert registry.verify() == []
    payloads = {
        registry.get(f"jets/{n}").file("model/model.bin").read_bytes() for n in range(1, 161)
    }
    assert len(payloads) == 160  # no version overwrote another


def test_sigkilled_publishers_never_leave_a_visible_partial_version(tmp_path: Path) -> None:
    root = tmp_path / "registry"
    registry = Registry(root)
    rng = random.Random(4)
    kills = 40
    for _ in range(kills):
        child = spawn(PUBLISH_FOREVER, str(root))
        assert child.stdout is not None
        assert child.stdout.readline().strip().isdigit()  # publishing is under way
        time.sleep(rng.uniform(0.0, 0.08))
        os.kill(child.pid, signal.SIGKILL)
        child.communicate()
        assert registry.verify() == [] and registry.damaged("jets") == []
        committed = registry.versions("jets")
        for number in committed:
            version = registry.get(f"jets/{number}")
            assert len(version.files) == 5 and version.annotations == NOTES
        # A publish moves its aliases before its commit: they count only with the commit.
        assert registry.aliases("jets") == {"latest": committed[-1], "nightly": committed[-1]}

    claimed = registry.layout.numbers("jets")
    committed = registry.versions("jets")
    assert len(committed) >= kills
    leftovers = list((root / "staging").iterdir())
    uncommitted = sorted(set(claimed) - set(committed))

    report = registry.gc()
    assert sorted(report.staging) == sorted(leftovers)
    assert sorted(int(p.name) for p in report.abandoned) == uncommitted
    assert report.damaged == [] and report.damaged_kept == []
    assert list((root / "staging").iterdir()) == []
    for number in uncommitted:
        folder = registry.layout.version("jets", number)
        assert sorted(p.name for p in folder.iterdir()) == [PUBLISHING, TOMBSTONE]
    assert registry.versions("jets") == committed
    assert registry.aliases("jets") == {"latest": committed[-1], "nightly": committed[-1]}
    assert registry.verify() == []
    after = registry.publish("jets", b"after the storm", aliases=["latest"])
    assert after.version == max(claimed) + 1  # no number is ever handed out twice
    assert registry.aliases("jets") == {"latest": after.version, "nightly": committed[-1]}
    assert all((registry.layout.version("jets", n) / MARKER).exists() for n in committed)

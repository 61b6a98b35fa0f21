"""Slots on a worker: GPU slots are disjoint device groups, CPU slots are numbered too."""

from __future__ import annotations

from contextlib import ExitStack

import pytest

from batchml.hpo.slots import NoFreeSlotError, Slot, SlotPool


def test_cpu_trials_take_the_lowest_free_slot_number() -> None:
    pool = SlotPool([], per_trial=0)
    with ExitStack() as outer:
        assert outer.enter_context(pool.take()) == Slot(0, ())
        with pool.take() as second:
            assert second == Slot(1, ())
            with pool.take() as third:
                assert third == Slot(2, ())
        with pool.take() as reused:  # 1 and 2 are free again, 0 is still held
            assert reused == Slot(1, ())
    with pool.take() as alone:
        assert alone == Slot(0, ())


def test_gpu_trials_take_disjoint_device_groups_numbered_in_order() -> None:
    pool = SlotPool(["0", "1", "2", "3"], per_trial=2)
    with pool.take() as first, pool.take() as second:
        assert (first, second) == (Slot(0, ("0", "1")), Slot(1, ("2", "3")))
        with pytest.raises(NoFreeSlotError, match="no free GPU slot"), pool.take():
            pass
    with pool.take() as again:
        assert again.devices in {("0", "1"), ("2", "3")}
        assert again == Slot(again.number, (("0", "1"), ("2", "3"))[again.number])

"""Placement: free slots first, then one trial queued per worker, except in the last round."""

from __future__ import annotations

from batchml.hpo.placement import least_busy, next_worker


def test_trials_fill_free_slots_then_queue_one_per_worker_except_in_the_last_round() -> None:
    slots = {"a": 4, "b": 4}
    assert next_worker(slots, {"a": 4, "b": 3}, left=1) == "b"  # a free slot: always
    assert next_worker(slots, {"a": 4, "b": 4}, left=9) in ("a", "b")
    assert next_worker(slots, {"a": 5, "b": 4}, left=9) == "b"  # one queued per worker
    assert next_worker(slots, {"a": 5, "b": 5}, left=30) is None  # no more
    assert next_worker(slots, {"a": 4, "b": 4}, left=8) is None  # last round: free slots only
    assert next_worker(slots, {"a": 1}, left=0) is None  # the budget is spent
    assert next_worker({}, {}, left=5) is None  # no worker connected yet
    assert next_worker({"drained": 0, "a": 4}, {"a": 4}, left=9) == "a"  # not a draining one
    assert next_worker({"drained": 0}, {}, left=9) is None


def test_a_trial_sent_again_goes_to_the_worker_with_the_most_room() -> None:
    assert least_busy({"a": 2, "b": 2}, {"a": 3, "b": 2}) == "b"
    assert least_busy({"a": 2, "b": 0}, {"a": 5}) == "a"  # b takes no trials
    assert least_busy({"b": 0}, {}) is None

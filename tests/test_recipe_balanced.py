"""``TaskBalancedDataset``: equal (or weighted) task shares in index space, deterministic, clear errors."""

from __future__ import annotations

from collections import Counter

import pytest

from babyvlm.core.errors import BabyVLMError, ConfigError, DataError
from babyvlm.plugins.recipe.balanced import TaskBalancedDataset

SAMPLES = {"big": [f"big{i}" for i in range(90)], "small": [f"small{i}" for i in range(7)],
           "mid": [f"mid{i}" for i in range(30)]}


def test_one_pass_gives_every_task_the_same_share_and_covers_the_largest_task():
    dataset = TaskBalancedDataset(SAMPLES, seed=1)
    assert len(dataset) == 3 * 90
    tasks = Counter(dataset[i].rstrip("0123456789") for i in range(len(dataset)))
    assert tasks == {"big": 90, "small": 90, "mid": 90}
    assert {dataset[i] for i in range(len(dataset))} >= set(SAMPLES["big"])
    small = Counter(dataset[i] for i in range(len(dataset)) if dataset[i].startswith("small"))
    assert set(small) == set(SAMPLES["small"]) and max(small.values()) - min(small.values()) <= 1


def test_any_window_of_consecutive_indices_is_balanced_so_shuffled_batches_are_too():
    dataset = TaskBalancedDataset(SAMPLES, per_task=40)
    window = [dataset.locate(i)[0] for i in range(30, 60)]
    assert Counter(window) == {"big": 10, "small": 10, "mid": 10}


def test_weights_repeat_a_task_in_the_interleaving():
    dataset = TaskBalancedDataset(SAMPLES, per_task=10, weights={"small": 3})
    assert len(dataset) == 5 * 10
    assert dataset.shares() == {"big": 0.2, "mid": 0.2, "small": 0.6}


def test_same_seed_same_order_other_seed_other_order():
    first = [TaskBalancedDataset(SAMPLES, seed=3)[i] for i in range(60)]
    assert first == [TaskBalancedDataset(SAMPLES, seed=3)[i] for i in range(60)]
    assert first != [TaskBalancedDataset(SAMPLES, seed=4)[i] for i in range(60)]


@pytest.mark.parametrize("samples, options, error, message", [
    ({}, {}, ConfigError, "non-empty mapping"),
    ({"a": [1], "b": []}, {}, DataError, "task\\(s\\) b have no samples"),
    ({"a": [1]}, {"per_task": 0}, ConfigError, "per_task must be an integer >= 1"),
    ({"a": [1]}, {"weights": {"z": 2}}, ConfigError, "weights name unknown task\\(s\\) z"),
    ({"a": [1]}, {"weights": {"a": 0.5}}, ConfigError, "weight of 'a' must be an integer >= 1"),
])
def test_bad_input_is_refused_by_name(samples, options, error, message):
    with pytest.raises(error, match=message) as caught:
        TaskBalancedDataset(samples, **options)
    assert isinstance(caught.value, BabyVLMError)


def test_out_of_range_index_raises_index_error():
    dataset = TaskBalancedDataset({"a": [1, 2]})
    with pytest.raises(IndexError, match="out of range 0..1"):
        dataset[2]


def test_balanced_records_repeat_small_tasks_with_unique_ids():
    from babyvlm.plugins.recipe.balanced import balanced_records

    records = [{"id": f"c{i}", "task": "baby_count"} for i in range(6)] + [{"id": "l0", "task": "baby_localize"}]
    out = balanced_records(records, seed=2)
    assert Counter(r["task"] for r in out) == {"baby_count": 6, "baby_localize": 6}
    assert len({r["id"] for r in out}) == len(out)
    assert {r["id"] for r in out if r["task"] == "baby_localize"} == {"l0"} | {f"l0#r{k}" for k in range(2, 7)}
    with pytest.raises(DataError, match="record 0 has no 'task' string"):
        balanced_records([{"id": "x"}])

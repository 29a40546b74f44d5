"""The torch dataset over a store, its collate, and the resumable DDP-aware sampler."""

from __future__ import annotations

import numpy as np
import pytest
import test_builder_support as support

from babyvlm import registry
from babyvlm.core.errors import ConfigError, DataError
from babyvlm.plugins.pretraining_set import (
    PretrainingDataset,
    ResumableLoader,
    ResumableSampler,
    collate_samples,
)
from babyvlm.plugins.pretraining_set.builder import BuildPlan, build_pretraining_set


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    support.register_fake_source()
    try:
        root = support.write_corpus(tmp_path_factory.mktemp("corpus"))
        out = tmp_path_factory.mktemp("store") / "s"
        build_pretraining_set(BuildPlan(source="fake", root=root, out=out), log=lambda _: None)
    finally:
        registry.reset()
    return out


def test_items_are_decoded_samples_of_every_format(store):
    dataset = PretrainingDataset(store)
    assert len(dataset) == 39
    formats = set()
    for index in range(len(dataset)):
        item = dataset[index]
        assert set(item) == {"sample_id", "format", "images", "conversations", "meta"}
        assert all(isinstance(im, np.ndarray) and im.dtype == np.uint8 and im.shape == (64, 64, 3)
                   for im in item["images"])
        assert sum(t["value"].count("<image>") for t in item["conversations"]) == len(item["images"])
        formats.add(item["format"])
    assert formats == {"video", "image", "interleaved"}
    images_only = PretrainingDataset(store, formats=["image"])
    assert len(images_only) == 24 and {images_only[i]["format"] for i in range(24)} == {"image"}
    with pytest.raises(IndexError):
        dataset[39]
    with pytest.raises(ConfigError, match="unknown sample format"):
        PretrainingDataset(store, formats=["audio"])


def test_collate_keeps_lists(store):
    dataset = PretrainingDataset(store)
    batch = collate_samples([dataset[0], dataset[20]])
    assert isinstance(batch, list) and batch[0]["sample_id"] == dataset[0]["sample_id"]


def test_dataset_refuses_an_unfinished_store(tmp_path):
    from babyvlm.plugins.lmdb_store import LMDBStore

    LMDBStore(tmp_path / "s").writer(settings={}).close()
    with pytest.raises(DataError, match="build has not finished"):
        PretrainingDataset(str(tmp_path / "s"))


def test_sampler_shuffles_per_epoch_deterministically_and_splits_ranks():
    sampler = ResumableSampler(23, seed=7)
    first, second = list(sampler), list(sampler)  # iterating to the end moves to the next epoch
    assert sorted(first) == sorted(second) == list(range(23)) and first != second
    assert list(ResumableSampler(23, seed=7)) == first
    assert list(ResumableSampler(23, seed=8)) != first
    trimmed = [list(ResumableSampler(23, seed=7, rank=r, world_size=4, drop_last=True)) for r in range(4)]
    flat = [i for part in trimmed for i in part]
    assert [len(p) for p in trimmed] == [5] * 4 and len(set(flat)) == 20  # disjoint, 3 left out
    with pytest.raises(ConfigError, match="rank 4"):
        ResumableSampler(10, rank=4, world_size=4)


@pytest.mark.parametrize("samples, world_size", [(23, 4), (10, 4), (3, 4), (1, 3), (8, 4)])
def test_sampler_gives_every_rank_equally_many_samples_covering_the_epoch(samples, world_size):
    """Unequal shares would leave the rank with one more step waiting in its all-reduce forever."""
    ranks = [ResumableSampler(samples, seed=7, rank=r, world_size=world_size) for r in range(world_size)]
    drawn = [list(sampler) for sampler in ranks]
    share = -(-samples // world_size)
    assert [len(p) for p in drawn] == [len(s) for s in ranks] == [share] * world_size
    flat = [i for part in drawn for i in part]
    assert set(flat) == set(range(samples))  # covering; the padding repeats a few samples
    assert len(flat) - len(set(flat)) == share * world_size - samples
    assert [len(list(s)) for s in ranks] == [share] * world_size  # the next epoch too


def test_sampler_state_restores_the_remaining_order():
    sampler = ResumableSampler(17, seed=3)
    sampler.set_epoch(2)
    full = sampler.order(2)
    iterator = iter(sampler)
    taken = [next(iterator) for _ in range(5)]
    state = sampler.state_dict()
    assert (state["epoch"], state["seed"], state["position"]) == (2, 3, 5)
    restored = ResumableSampler(17, seed=3)
    restored.load_state_dict(state)
    assert taken + list(restored) == full
    with pytest.raises(ConfigError, match="seed"):
        ResumableSampler(17, seed=4).load_state_dict(state)


def test_dataloader_stopped_mid_epoch_resumes_with_exactly_the_remaining_samples(store):
    dataset = PretrainingDataset(store)
    dataset[0]  # the parent process holds a handle: workers must open their own after fork

    def ids(batches):
        return [item["sample_id"] for batch in batches for item in batch]

    reference = ResumableLoader(dataset, ResumableSampler(dataset, seed=11), batch_size=4, num_workers=2)
    full_epoch = ids(reference)
    assert sorted(full_epoch) == sorted(dataset[i]["sample_id"] for i in range(len(dataset)))

    loader = ResumableLoader(dataset, ResumableSampler(dataset, seed=11), batch_size=4, num_workers=2)
    consumed = []
    for batch in loader:
        consumed.append(batch)
        if len(consumed) == 3:
            break  # workers have prefetched further; the state must count only what was delivered
    state = loader.state_dict()
    assert (state["epoch"], state["position"]) == (0, 12)

    resumed = ResumableLoader(dataset, ResumableSampler(dataset, seed=11), batch_size=4, num_workers=2)
    resumed.load_state_dict(state)
    assert ids(consumed) + ids(resumed) == full_epoch
    assert resumed.state_dict()["epoch"] == 1 and resumed.state_dict()["position"] == 0

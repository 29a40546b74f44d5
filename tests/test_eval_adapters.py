"""Eval adapters on tiny models: shared-prefix scoring equals one full forward per option; batch size
changes neither scores nor answers; multi-round conversations accumulate images and the model's own
answers; blind, random and oracle behave as documented; the hf adapter reads a local LLaVA folder."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from test_eval_fixtures import LETTERS, hf_processor_for, jpeg, register_fakes, tiny_checkpoint, write_domain

from babyvlm import registry
from babyvlm.core.errors import ConfigError, ModelInputError
from babyvlm.core.records import Request


@pytest.fixture(scope="module")
def workspace(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("eval_adapters")
    tiny_checkpoint(root / "ckpt", layers=2)
    write_domain(root / "data" / "saycam", n_letters=20, n_pairs=4, n_rounds=3)
    return root


@pytest.fixture
def fakes(fresh_registry):
    register_fakes()


def requests_of(task_name: str, folder: Path, mode: str) -> list[Request]:
    task = registry.build("task", task_name)
    return [request for item in task.load(folder) for request in task.requests(item, mode)]


def adapter(workspace: Path, **options):
    return registry.build("eval_adapter", dict(type="babyvlm", path=str(workspace / "ckpt"), **options))


def losses(results) -> list[np.ndarray]:
    return [np.array([loss for loss, _ in row]) for row in results]


def test_shared_prefix_scores_equal_one_full_forward_per_option(workspace, fakes):
    folder = workspace / "data" / "saycam"
    requests = requests_of("fake_letters", folder, "loglikelihood") + requests_of("fake_pairs", folder, "loglikelihood")
    shared = adapter(workspace, batch_size=16).loglikelihood(requests)
    full = adapter(workspace, batch_size=16, scoring="full").loglikelihood(requests)
    for got, want in zip(shared, full, strict=True):
        assert len(got) == len(want)
        np.testing.assert_allclose([loss for loss, _ in got], [loss for loss, _ in want], atol=1e-5, rtol=0)
        assert [greedy for _, greedy in got] == [greedy for _, greedy in want]
    assert all(loss > 0 for row in shared for loss, _ in row)  # mean token losses, not log-probabilities


def test_batch_size_changes_neither_scores_nor_answers(workspace, fakes):
    folder = workspace / "data" / "saycam"
    one, sixteen = adapter(workspace, batch_size=1), adapter(workspace, batch_size=16)
    choice = requests_of("fake_letters", folder, "loglikelihood") + requests_of("fake_pairs", folder, "loglikelihood")
    for a, b in zip(losses(one.loglikelihood(choice)), losses(sixteen.loglikelihood(choice)), strict=True):
        np.testing.assert_allclose(a, b, atol=1e-6, rtol=0)
        assert a.argmin() == b.argmin()
    generate = requests_of("fake_letters", folder, "generate")[:10]
    assert one.generate_until(generate) == sixteen.generate_until(generate)
    rounds = requests_of("fake_rounds", folder, "generate")
    assert one.generate_until_multi_round(rounds) == sixteen.generate_until_multi_round(rounds)


def test_multi_round_accumulates_images_and_the_models_own_answers(workspace, fakes):
    built = adapter(workspace, batch_size=4)
    seen = []
    original = built.model.generate

    def spy(samples, max_new_tokens):
        outputs = original(samples, max_new_tokens=max_new_tokens)
        seen.append([(list(s["input_ids"]), len(s["images"])) for s in samples])
        return outputs

    built.model.generate = spy
    request = requests_of("fake_rounds", workspace / "data" / "saycam", "generate")[0]
    answers = built.generate_until_multi_round([request])[0]
    assert len(answers) == 3 and len(seen) == 3
    eos = built.model.tokenizer.eos_id
    for number in range(1, 3):
        (before, _), = seen[number - 1]
        (now, images), = seen[number]
        assert images == 2 * (number + 1)  # every earlier round's images stay in the conversation
        assert now[:len(before)] == before  # the earlier prompt is a prefix ...
        answer_ids = built.model.tokenizer.encode(answers[number - 1]) if answers[number - 1] else []
        tail = now[len(before):]
        assert eos in tail  # ... followed by the model's own answer and its end
        if answer_ids:
            assert tail[:tail.index(eos)] == answer_ids or built.model.tokenizer.decode(tail[:tail.index(eos)]) \
                == answers[number - 1]


class Recorder:
    """An adapter that remembers every image it was handed."""

    name = "recorder"

    def __init__(self):
        self.images = []

    def fingerprint(self):
        return "recorder"

    def generate_until(self, requests):
        self.images += [list(r.images) for r in requests]
        return ["A"] * len(requests)

    loglikelihood = generate_until_multi_round = generate_until


def test_blind_passes_one_constant_grey_picture_in_every_slot(fakes):
    from babyvlm.media import BLANK_GREY, BLANK_SIZE

    inner = Recorder()
    blind = registry.build("eval_adapter", dict(type="blind", adapter=inner))
    assert blind.fingerprint() == "blind(recorder)"
    red, blue = jpeg((200, 40, 40), size=24), jpeg((10, 10, 250), size=16)
    blind.generate_until([Request("generate", "x", "t", [red, blue], [{"from": "human", "value": "<image><image> q"}]),
                          Request("generate", "y", "t", [red], [{"from": "human", "value": "<image> q"}])])
    seen = [image for images in inner.images for image in images]
    assert len(seen) == 3 and len(set(seen)) == 1  # equal pictures and different ones: all the same bytes
    grey = np.asarray(Image.open(io.BytesIO(seen[0])))
    assert grey.shape == (BLANK_SIZE, BLANK_SIZE, 3) and np.abs(grey.astype(int) - BLANK_GREY).max() <= 1


def test_the_mean_colour_blank_is_a_named_option_that_keeps_each_pictures_colour(fakes):
    from babyvlm.plugins.evaluation.blind_adapter import blank_like

    image = jpeg((200, 40, 40), size=24)
    blank = np.asarray(Image.open(io.BytesIO(blank_like(image, kind="mean_colour"))))
    original = np.asarray(Image.open(io.BytesIO(image)))
    assert blank.shape == original.shape
    assert np.abs(blank.reshape(-1, 3).mean(0) - original.reshape(-1, 3).mean(0)).max() < 2
    inner = Recorder()
    blind = registry.build("eval_adapter", dict(type="blind", adapter=inner, blank="mean_colour"))
    assert blind.fingerprint() == "blind(recorder,blank=mean_colour)"
    blind.generate_until([Request("generate", "x", "t", [image, jpeg((10, 10, 250), size=16)],
                                  [{"from": "human", "value": "<image><image> q"}])])
    assert len(set(inner.images[0])) == 2
    with pytest.raises(ConfigError, match="blank must be one of"):
        registry.build("eval_adapter", dict(type="blind", adapter=inner, blank="white"))


def test_shuffled_gives_each_item_another_items_images_and_keeps_them_across_rounds(fakes):
    from babyvlm.core.records import TaskItem

    items = [TaskItem(f"i{k}", "t", [jpeg((20 * k, 0, 0), size=8), jpeg((0, 20 * k, 0), size=8)], [], "A")
             for k in range(6)]
    inner = Recorder()
    shuffled = registry.build("eval_adapter", dict(type="shuffled", adapter=inner, seed=1))
    shuffled.see_items("t", items)
    shuffled.generate_until([Request("generate", item.item_id, "t", list(item.images)) for item in items])
    own = {item.item_id: item.images for item in items}
    donors = {tuple(images) for images in inner.images}
    assert all(tuple(images) != tuple(own[item.item_id]) for images, item in zip(inner.images, items, strict=True))
    assert donors == {tuple(item.images) for item in items}  # a derangement: every item lends its images once
    shuffled.generate_until([Request("generate", "i2#round1", "t", items[2].images[:1]),
                             Request("generate", "i2#round2", "t", list(items[2].images))])
    assert inner.images[-1][:1] == inner.images[-2] == inner.images[2][:1]  # the same donor in every round
    with pytest.raises(ConfigError, match="was not shown to it"):
        shuffled.generate_until([Request("generate", "unknown", "t", items[0].images)])


class Named(Recorder):
    """A recorder that answers with its own name, to see which adapter answered."""

    def __init__(self, label):
        super().__init__()
        self.label = label

    def fingerprint(self):
        return self.label

    def generate_until(self, requests):
        self.images += [list(r.images) for r in requests]
        return [f"{self.label}:{r.item_id}" for r in requests]

    loglikelihood = generate_until_multi_round = generate_until


def test_per_task_routes_each_request_to_its_tasks_adapter_in_order(fakes):
    """How a task-specific tuned study is scored: one model per task, the default for the rest."""
    pv, count, shared = Named("pv"), Named("count"), Named("shared")
    routed = registry.build("eval_adapter", dict(type="per_task", adapters={"baby_pv": pv, "baby_count": count},
                                                 default=shared))
    requests = [Request("generate", f"i{k}", task, [jpeg((k, 0, 0), size=8)])
                for k, task in enumerate(["baby_pv", "baby_count", "baby_memory", "baby_pv"])]
    assert routed.generate_until(requests) == ["pv:i0", "count:i1", "shared:i2", "pv:i3"]
    assert routed.loglikelihood(requests[:2]) == ["pv:i0", "count:i1"]
    assert len(pv.images) == 2 + 1 and len(shared.images) == 1
    assert routed.fingerprint() == "per_task(baby_count=count;baby_pv=pv;*=shared)"
    strict = registry.build("eval_adapter", dict(type="per_task", adapters={"baby_pv": pv}))
    with pytest.raises(ConfigError, match=r"no adapter for task 'baby_memory' and no default \(adapters for: baby_pv\)"):
        strict.generate_until(requests[2:3])
    with pytest.raises(ConfigError, match="adapters must map task names"):
        registry.build("eval_adapter", dict(type="per_task", adapters={}))
    blind = registry.build("eval_adapter", dict(type="blind", adapter=routed))  # a task-specific blind twin
    assert blind.generate_until(requests[:1]) == ["pv:i0"] and len(set(pv.images[-1])) == 1


def test_random_is_seeded_independent_of_batching_and_uses_the_answer_space(workspace, fakes):
    requests = requests_of("fake_letters", workspace / "data" / "saycam", "generate")
    first = registry.build("eval_adapter", dict(type="random", seed=3))
    answers = first.generate_until(requests)
    assert set(answers) <= set(LETTERS) and len(set(answers)) > 1
    assert first.generate_until(list(reversed(requests))) == list(reversed(answers))
    assert registry.build("eval_adapter", dict(type="random", seed=4)).generate_until(requests) != answers
    scored = first.loglikelihood(requests_of("fake_letters", workspace / "data" / "saycam", "loglikelihood"))
    assert all(len(row) == 4 for row in scored)


def test_bad_inputs_are_one_line_errors_naming_the_item_or_folder(workspace, tmp_path, fakes):
    built = adapter(workspace)
    wrong = Request("choice", "item-7", "fake_letters", [jpeg((1, 2, 3))],
                    [{"from": "human", "value": "<image><image> which?"}], continuations=["A", "B"])
    with pytest.raises(ModelInputError, match="item-7.*2 <image> token"):
        built.loglikelihood([wrong])
    with pytest.raises(ConfigError, match="not a babyvlm checkpoint"):
        registry.build("eval_adapter", dict(type="babyvlm", path=str(tmp_path)))
    with pytest.raises(ConfigError, match="scoring"):
        adapter(workspace, scoring="fast")


def test_fingerprint_changes_with_the_weights(workspace, tmp_path, fakes):
    other = tiny_checkpoint(tmp_path / "other", seed=1, layers=2)
    assert adapter(workspace).fingerprint() == adapter(workspace, batch_size=3).fingerprint()  # batching is not the model
    assert adapter(workspace).fingerprint() != registry.build(
        "eval_adapter", dict(type="babyvlm", path=str(other))).fingerprint()


def test_an_in_memory_model_with_batch_norm_is_fingerprinted_by_its_weights():
    from babyvlm.plugins.babyllava.model import BabyLLaVA
    from babyvlm.plugins.evaluation.babyvlm_adapter import _state_hash

    model = BabyLLaVA(encoder=dict(type="cnn", preset="tiny"),  # batch norm counts its batches in 0-dim tensors
                      language_model=dict(type="llama", preset="tiny", vocab_size=64), template=None)
    before = _state_hash(model)
    assert _state_hash(model) == before
    with torch.no_grad():
        model.encoder.stem[0].weight[0, 0, 0, 0] += 1
    assert _state_hash(model) != before


def test_hf_adapter_on_a_tiny_local_llava(workspace, fakes):
    folder = workspace / "ckpt"
    hf_processor_for(folder)
    one = registry.build("eval_adapter", dict(type="hf", path=str(folder), batch_size=1))
    many = registry.build("eval_adapter", dict(type="hf", path=str(folder), batch_size=8))
    assert one.fingerprint().startswith("hf:")
    data = workspace / "data" / "saycam"
    choice = requests_of("fake_letters", data, "loglikelihood")[:8]
    a, b = np.array(losses(one.loglikelihood(choice))), np.array(losses(many.loglikelihood(choice)))
    assert a.shape == (8, 4) and np.isfinite(a).all()
    np.testing.assert_allclose(a, b, atol=1e-5, rtol=0)
    generate = requests_of("fake_letters", data, "generate")[:4]
    answers = one.generate_until(generate)
    assert len(answers) == 4 and all(isinstance(text, str) for text in answers)
    rounds = one.generate_until_multi_round(requests_of("fake_rounds", data, "generate")[:1])
    assert len(rounds[0]) == 3

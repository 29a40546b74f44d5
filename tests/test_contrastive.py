"""Trainer ``contrastive`` (a CVCL-style image-utterance phase): its InfoNCE treats equal utterances as
never each other's negatives, the loss falls on learnable pairs (colour <-> word) with a tiny BabyLLaVA,
the weights stay loadable, and a bad option is refused by name."""

import importlib
from importlib import metadata

import numpy as np
import pytest
import torch

from babyvlm import registry
from babyvlm.core.compose import build_model, check_spec_options
from babyvlm.core.errors import ConfigError
from babyvlm.plugins.contrastive.objective import PairCollate, info_nce, utterance_key, utterance_of
from babyvlm.plugins.contrastive.trainer import ContrastiveTrainer
from tests.model_support import saved_tiny_tokenizer

COLOURS = {"red": (230, 20, 20), "green": (20, 200, 20), "blue": (20, 20, 230), "yellow": (230, 230, 20)}


def register_in_process():
    loaded = {p.name for p in registry.plugins()} | {ep.name for ep in metadata.entry_points(group="babyvlm")}
    for name, module in {"contrastive": "babyvlm.plugins.contrastive",
                         "mmengine_trainer": "babyvlm.plugins.mmengine_trainer"}.items():
        if name not in loaded:
            registry.register_plugin(importlib.import_module(module), name)


def pairs(count=32, seed=0):
    rng = np.random.default_rng(seed)
    names = list(COLOURS)
    out = []
    for i in range(count):
        name = names[i % len(names)]
        image = np.clip(np.array(COLOURS[name]) + rng.integers(-15, 15, (64, 64, 3)), 0, 255).astype(np.uint8)
        out.append({"images": [image], "conversations": [{"from": "human", "value": "<image>"},
                                                          {"from": "gpt", "value": f"look at the {name} ball"}]})
    return out


def tiny_model(tmp_path):
    texts = [f"look at the {name} ball" for name in COLOURS] * 5
    path = saved_tiny_tokenizer(tmp_path / "tok", texts, vocab_size=300)
    torch.manual_seed(0)
    return build_model({"model": dict(type="babyllava", encoder=dict(type="cnn", preset="tiny"),
                                      connector="mlp2x_gelu", language_model=dict(type="llama", preset="tiny"),
                                      tokenizer=dict(type="bpe", path=str(path)), template="baby_plain")})


def test_utterance_and_key():
    sample = pairs(1)[0]
    assert utterance_of(sample) == "look at the red ball"
    assert utterance_key("  Look at  the RED ball ") == utterance_key("look at the red ball")


def test_duplicate_utterances_are_not_negatives():
    torch.manual_seed(0)
    text = torch.nn.functional.normalize(torch.randn(4, 8), dim=-1)
    image = text.clone()
    image[1] = text[0]  # image 1 looks exactly like image 0 ...
    scale = torch.tensor(np.log(20.0))
    distinct, _ = info_nce(image, text, torch.tensor([0, 1, 2, 3]), scale)
    same, accuracy = info_nce(image, text, torch.tensor([0, 0, 2, 3]), scale)  # ... and says the same words
    assert same < distinct  # with equal utterances, pair 0 is no longer a negative of pair 1
    assert accuracy == 1.0
    # masking by hand gives the same number: row/column duplicates removed from both directions
    logits = 20.0 * image @ text.t()
    mask = torch.zeros(4, 4, dtype=torch.bool)
    mask[0, 1] = mask[1, 0] = True
    masked = logits.masked_fill(mask, float("-inf"))
    targets = torch.arange(4)
    expected = (torch.nn.functional.cross_entropy(masked, targets)
                + torch.nn.functional.cross_entropy(masked.t(), targets)) / 2
    assert torch.allclose(same, expected)


def test_collate_gives_equal_keys_to_equal_utterances(tmp_path):
    model = tiny_model(tmp_path)
    collate = PairCollate(model.encoder.preprocess, model.tokenizer, [model.special_id("image_id")],
                          model.special_id("pad_id"))
    batch = collate([(s["images"][0], utterance_of(s)) for s in pairs(8)])
    assert batch["text_keys"].tolist() == [0, 1, 2, 3, 0, 1, 2, 3]
    assert batch["pixel_values"].shape[0] == 8 and batch["input_ids"].shape[0] == 8


def test_loss_falls_on_learnable_pairs_and_weights_are_safetensors(tmp_path):
    model = tiny_model(tmp_path)
    lines = []
    trainer = ContrastiveTrainer(max_steps=30, lr=3e-3, batch_size=8, log_every=0, export=False, tensorboard=False,
                                 train=["encoder", "connector", "language_model.model.embed_tokens"])
    result = trainer.fit(model, pairs(), log=lines.append, stage="2b-contrastive", work_dir=tmp_path / "phase")
    assert result.last_loss < 0.5 * result.first_loss
    assert result.parts["language_model"]["trainable"] > 0 and "temperature" in result.extra
    assert any("trainer 'contrastive'" in line for line in lines)
    assert not list((tmp_path / "phase").rglob("*.pt")) and not list((tmp_path / "phase").rglob("*.pkl"))


def test_default_trains_encoder_and_connector_only(tmp_path):
    model = tiny_model(tmp_path)
    trainer = ContrastiveTrainer(max_steps=1, batch_size=4, log_every=0, export=False, tensorboard=False)
    result = trainer.fit(model, pairs(8), log=lambda line: None, stage="2b-contrastive", work_dir=tmp_path / "p")
    assert result.parts["language_model"]["trainable"] == 0 and result.parts["connector"]["trainable"] > 0


def test_bad_options_are_refused_by_name():
    register_in_process()
    with pytest.raises(ConfigError, match="unknown option 'temprature'.*temperature"):
        check_spec_options("trainer", dict(type="contrastive", temprature=0.1), "phases[4].trainer")
    with pytest.raises(ConfigError, match="unknown option 'batchsize'"):
        ContrastiveTrainer(batchsize=8)
    with pytest.raises(ConfigError, match="temperature"):
        ContrastiveTrainer(temperature=0)
    with pytest.raises(ConfigError, match="objective"):
        ContrastiveTrainer(objective="vlm")


@pytest.fixture(scope="module")
def corpus(small_saycam_corpus):
    return small_saycam_corpus


def test_the_phase_runs_inside_an_experiment(corpus, tmp_path):
    from safetensors.torch import load_file

    from babyvlm import Experiment

    register_in_process()
    config = {
        "data": {"source": dict(type="saycam", transcripts="human"), "root": str(corpus),
                 "builder": dict(type="pretraining_set", image_size=64), "heldout_recordings": 1},
        "tokenizer": dict(type="bpe", vocab_size=300, min_frequency=1),
        "model": dict(type="babyllava", encoder=dict(type="cnn", preset="tiny"), connector="mlp2x_gelu",
                      language_model=dict(type="llama", preset="tiny"), template="baby_plain"),
        "phases": [dict(name="2b-contrastive", formats=["image"],
                        trainer=dict(type="contrastive", max_steps=4, batch_size=8, log_every=0, export=False,
                                     tensorboard=False))],
    }
    experiment = Experiment(config, tmp_path / "run", log=lambda line: None)
    report = experiment.run()
    phase = report.phases[0]
    assert phase.trainer == "contrastive" and phase["steps"] == 4 and phase["first_loss"] is not None
    assert phase["retrieval"]["pairs"] >= 2 and 0 <= phase["retrieval"]["accuracy"] <= 1
    weights = load_file(str(tmp_path / "run" / "phases" / "2b-contrastive" / "weights.safetensors"))
    assert not any("logit_scale" in key for key in weights)  # the objective's own parameters are not the model's

"""Trainer ``dino`` (phase 0-vision): multi-crops keyed by the sampler's draw, the collapse check, and
the k-NN probe above chance on the synthetic world's held-out object crops after a short run."""

import importlib
from importlib import metadata

import numpy as np
import pytest
import torch

from babyvlm import registry
from babyvlm.core.errors import ConfigError
from babyvlm.plugins.cnn_encoder.encoder import CNNEncoder
from babyvlm.plugins.dino.crops import MultiCropDataset
from babyvlm.plugins.dino.trainer import DinoTrainer, collapse_verdict

PLUGINS = {"mmengine_trainer": "babyvlm.plugins.mmengine_trainer", "dino": "babyvlm.plugins.dino",
           "cnn_encoder": "babyvlm.plugins.cnn_encoder"}


def register_in_process():
    # until pyproject lists the training plugins' entry points
    loaded = {p.name for p in registry.plugins()} | {ep.name for ep in metadata.entry_points(group="babyvlm")}
    for name, module in PLUGINS.items():
        if name not in loaded:
            registry.register_plugin(importlib.import_module(module), name)


class VisionOnly(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.encoder = CNNEncoder("tiny")

    def freeze_backbones(self, stage, train=None):
        self.encoder.requires_grad_(True)
        return {"encoder": {"params": sum(p.numel() for p in self.encoder.parameters()),
                            "trainable": sum(p.numel() for p in self.encoder.parameters())}}


def frames(count=16, seed=0):
    rng = np.random.default_rng(seed)
    return [{"images": [rng.integers(0, 255, (64, 64, 3), dtype=np.uint8)]} for _ in range(count)]


def quick(**options):
    settings = dict(max_steps=3, batch_size=4, out_dim=64, hidden_dim=32, bottleneck_dim=16, local_crops=1,
                    probe=False, log_every=0, tensorboard=False)
    return DinoTrainer(**{**settings, **options})


def test_crops_are_a_function_of_the_draw_and_sized_to_the_encoder():
    crops = MultiCropDataset(frames(2), global_size=64, local_size=28, local_crops=3, seed=1)
    first, again, other = crops[(0, 5)], crops[(0, 5)], crops[(0, 6)]
    assert first["global_crops"].shape == (2, 3, 64, 64) and first["local_crops"].shape == (3, 3, 28, 28)
    assert torch.equal(first["global_crops"], again["global_crops"])
    assert not torch.equal(first["global_crops"], other["global_crops"])


def test_collapse_verdicts():
    assert collapse_verdict(0.99, 0.99) == "uniform"
    assert collapse_verdict(0.01, 0.01) == "one-prototype"
    assert collapse_verdict(0.4, 0.8) == "none"


def test_a_collapsed_teacher_is_reported(tmp_path):
    torch.manual_seed(0)
    lines = []
    # a teacher temperature this high makes every teacher output uniform: the collapse DINO can fall into
    result = quick(teacher_temp=(500.0, 500.0)).fit(VisionOnly(), frames(), log=lines.append, stage="0-vision",
                                                    work_dir=tmp_path)
    assert result.extra["collapse"] == "uniform" and result.extra["teacher_entropy"] > 0.95
    assert any("collapse check: uniform" in line for line in lines)


def test_normal_settings_train_the_encoder_without_collapse(tmp_path):
    torch.manual_seed(0)
    model = VisionOnly()
    before = {k: v.clone() for k, v in model.encoder.state_dict().items()}
    result = quick(max_steps=4, teacher_momentum=0.5).fit(model, frames(), log=lambda line: None, stage="0-vision",
                                                           work_dir=tmp_path)
    assert result.extra["collapse"] == "none"
    assert any(not torch.equal(v, model.encoder.state_dict()[k]) for k, v in before.items())
    assert len(result.losses) == 4 and all(np.isfinite(result.losses))


def test_settings_and_missing_probe_data_are_named(tmp_path):
    with pytest.raises(ConfigError, match="teacher_temp must be \\(start, end\\) temperatures > 0"):
        quick(teacher_temp=(0.04,))
    with pytest.raises(ConfigError, match="its objective is DINO"):
        quick(objective="vlm")
    with pytest.raises(ConfigError, match="the k-NN probe needs held-out recordings"):
        quick(probe=True).fit(VisionOnly(), frames(), log=lambda line: None, stage="0-vision", work_dir=tmp_path)


def test_knn_probe_beats_chance_on_the_synthetic_worlds_heldout_objects(tmp_path):
    from babyvlm.core.experiment import Experiment

    register_in_process()
    corpus = tmp_path / "corpus"
    registry.get("command", "synth").main(
        ["saycam", str(corpus), "--minutes", "1.2", "--seed", "3", "--size", "64", "--video-minutes", "0.3", "--quiet"],
        standalone_mode=False)
    config = {
        "data": {"source": dict(type="saycam", transcripts="human"), "root": str(corpus),
                 "builder": dict(type="pretraining_set", image_size=64, formats=["image"]), "heldout_recordings": 2},
        "model": dict(type="babyllava", encoder=dict(type="cnn", preset="tiny"), connector="mlp2x_gelu",
                      language_model=dict(type="llama", preset="tiny"), template="baby_plain"),
        "phases": [dict(name="0-vision", formats=["image"],
                        trainer=dict(type="dino", max_steps=4, batch_size=8, out_dim=128, hidden_dim=64,
                                     bottleneck_dim=32, local_crops=2, probe_every=2, probe_crops=60, log_every=0,
                                     tensorboard=False, export=False))],
    }
    experiment = Experiment(config, tmp_path / "run", log=lambda line: None)
    experiment.ensure_data()
    experiment.build_model()
    probe = experiment.train_phase("0-vision").metrics["knn_probe"]
    assert probe["categories"] >= 3 and probe["queries"] >= 10
    assert probe["accuracy"] >= probe["chance"] + 0.15, probe
    assert [h["step"] for h in probe["history"]] == [0, 2, 4] and probe["untrained"] is not None
    assert (experiment.phase_dir("0-vision") / "probe.jsonl").read_text().count("\n") == 3

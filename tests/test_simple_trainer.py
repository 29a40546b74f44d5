"""Trainer ``simple``: the phase schedule, which parts train, and clear errors for bad settings."""

import math

import pytest
import torch

import babyvlm
from babyvlm.core.errors import ConfigError
from babyvlm.plugins.simple_trainer.trainer import cosine_with_warmup


class ToyModel(torch.nn.Module):
    """Two parts, like a VLM's connector and LM, fitting y = 3x."""

    def __init__(self):
        super().__init__()
        self.connector = torch.nn.Linear(1, 4)
        self.language_model = torch.nn.Linear(4, 1)

    def freeze_backbones(self, stage, train=None):
        """The model owns what trains (contracts.Model); the trainer only asks."""
        parts = train or {"1-alignment": ["connector"], "2-joint": ["connector", "language_model"]}[stage]
        self.requires_grad_(False)
        for part in parts:
            getattr(self, part).requires_grad_(True)
        return {name: {"params": sum(p.numel() for p in m.parameters()),
                       "trainable": sum(p.numel() for p in m.parameters() if p.requires_grad)}
                for name, m in self.named_children()}

    def forward(self, input_ids, target):
        return {"loss": torch.nn.functional.mse_loss(self.language_model(self.connector(input_ids)), target)}

    def prepare_batch(self, samples):
        x = torch.tensor([[s] for s in samples], dtype=torch.float32)
        return {"input_ids": x, "target": 3 * x}


DATA = [i / 10 for i in range(-10, 11)]


def test_schedule_warms_up_then_decays_to_zero():
    assert cosine_with_warmup(0, 100, 10) == pytest.approx(0.1)
    assert cosine_with_warmup(9, 100, 10) == pytest.approx(1.0)
    assert cosine_with_warmup(55, 100, 10) == pytest.approx(0.5)
    assert cosine_with_warmup(100, 100, 10) == pytest.approx(0.0)
    assert all(cosine_with_warmup(s, 100, 10) >= cosine_with_warmup(s + 1, 100, 10) for s in range(10, 100))


def test_fit_lowers_the_loss_and_counts_steps():
    torch.manual_seed(0)
    trainer = babyvlm.build("trainer", dict(type="simple", max_steps=60, lr=0.05, batch_size=7, log_every=0))
    result = trainer.fit(ToyModel(), DATA, log=lambda line: None)
    assert result.steps == 60 and len(result.losses) == 60 and result.samples == 60 * 7  # 21 samples = 3 full batches per pass
    assert result.last_loss < 0.05 * result.first_loss and all(math.isfinite(x) for x in result.losses)


def test_only_the_named_parts_train():
    torch.manual_seed(0)
    model = ToyModel()
    frozen = model.language_model.weight.detach().clone()
    babyvlm.build("trainer", dict(type="simple", max_steps=5, train=["connector"], log_every=0)).fit(
        model, DATA, log=lambda line: None)
    assert torch.equal(model.language_model.weight, frozen)
    assert model.connector.weight.requires_grad and not model.language_model.weight.requires_grad


@pytest.mark.parametrize(("options", "message"), [
    (dict(lr="fast"), "lr must be a number > 0.0, got 'fast'"),
    (dict(lr=0), "lr must be a number > 0.0"),
    (dict(max_steps=0), "max_steps must be a whole number >= 1"),
    (dict(batch_size=2.5), "batch_size must be a whole number >= 1"),
    (dict(warmup_ratio=2), "warmup_ratio must be a number >= 0.0 and <= 1.0"),
    (dict(weight_decay=-1), "weight_decay must be a number >= 0.0"),
])
def test_bad_settings_are_named(options, message):
    with pytest.raises(ConfigError, match=message):
        babyvlm.build("trainer", dict(type="simple", **options))


def test_models_without_stages_and_empty_data_are_clear():
    class NoStages(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.connector = torch.nn.Linear(1, 1)

    trainer = babyvlm.build("trainer", dict(type="simple", max_steps=2, train=["connector"]))
    with pytest.raises(ConfigError, match="needs a model that declares its stages"):
        trainer.fit(NoStages(), DATA, log=lambda line: None)
    with pytest.raises(ConfigError, match="the dataset is empty"):
        babyvlm.build("trainer", dict(type="simple", max_steps=2)).fit(ToyModel(), [], log=lambda line: None)


def test_stage_is_asked_of_the_model_and_counts_are_logged():
    lines = []
    model = ToyModel()
    result = babyvlm.build("trainer", dict(type="simple", max_steps=2, log_every=0)).fit(
        model, DATA, log=lines.append, stage="1-alignment")
    assert result.parts["language_model"] == {"params": 5, "trainable": 0}
    assert any("connector 8/8, language_model 0/5" in line for line in lines)

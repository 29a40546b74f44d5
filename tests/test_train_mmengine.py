"""Trainer ``mmengine`` on a toy two-part model: stage freezing asked of the model and logged, exact
resume from a checkpoint (weights, optimizer, schedule, data order), accumulation, per-part learning
rates, bf16 autocast, and named errors."""

import json

import pytest
import torch
from safetensors.torch import load_file

from babyvlm.core.errors import ConfigError
from babyvlm.plugins.mmengine_trainer.sampler import ResumableSampler
from babyvlm.plugins.mmengine_trainer.trainer import MMEngineTrainer

DATA = [i / 10 for i in range(-12, 12)]


class ToyModel(torch.nn.Module):
    """Two parts, like a VLM's connector and LM, fitting y = 3x; declares its stages like BabyLLaVA."""

    def __init__(self):
        super().__init__()
        self.connector = torch.nn.Linear(1, 8)
        self.language_model = torch.nn.Linear(8, 1)
        self.asked = []

    def stages(self):
        return {"1-alignment": ("connector",), "2-joint": ("connector", "language_model")}

    def freeze_backbones(self, stage, train=None):
        self.asked.append(stage)
        parts = train or self.stages()[stage]
        self.requires_grad_(False)
        for part in parts:
            getattr(self, part).requires_grad_(True)
        return {name: {"params": sum(p.numel() for p in m.parameters()),
                       "trainable": sum(p.numel() for p in m.parameters() if p.requires_grad)}
                for name, m in self.named_children()}

    def forward(self, input_ids, target, attention_mask):
        hidden = torch.nn.functional.gelu(self.connector(input_ids))
        return {"loss": torch.nn.functional.mse_loss(self.language_model(hidden), target)}

    def prepare_batch(self, samples):
        x = torch.tensor([[s] for s in samples], dtype=torch.float32)
        return {"input_ids": x, "target": 3 * x, "attention_mask": torch.ones_like(x)}


def quiet(line):
    pass


def trainer(**options):
    settings = dict(max_steps=12, lr=0.05, batch_size=4, checkpoint_every=4, log_every=0, export=False,
                    tensorboard=False)
    return MMEngineTrainer(**{**settings, **options})


def weights(folder, step):
    return load_file(str(folder / f"iter_{step}.safetensors"))


def test_stage_trains_only_its_parts_and_logs_the_models_counts(tmp_path):
    torch.manual_seed(0)
    model, lines = ToyModel(), []
    frozen = model.language_model.weight.detach().clone()
    before = model.connector.weight.detach().clone()
    result = trainer().fit(model, DATA, log=lines.append, stage="1-alignment", work_dir=tmp_path)
    assert model.asked == ["1-alignment"]
    assert torch.equal(model.language_model.weight, frozen) and not torch.equal(model.connector.weight, before)
    assert result.parts == {"connector": {"params": 16, "trainable": 16}, "language_model": {"params": 9, "trainable": 0}}
    assert any("connector 16/16, language_model 0/9" in line for line in lines)
    assert result.steps == 12 and len(result.losses) == 12 and result.samples == 48
    recorded = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    assert [r["iter"] for r in recorded] == list(range(1, 13)) and recorded[0]["samples_per_s"] > 0
    assert json.loads((tmp_path / "trainer.json").read_text())["parts"] == result.parts
    assert sorted(p.name for p in tmp_path.glob("iter_*.safetensors")) == ["iter_12.safetensors", "iter_8.safetensors"]


def test_resume_from_a_checkpoint_equals_the_uninterrupted_run(tmp_path):
    torch.manual_seed(0)
    full = tmp_path / "full"
    trainer(keep_checkpoints=5).fit(ToyModel(), DATA, log=quiet, stage="2-joint", work_dir=full)
    # a run that stopped after its checkpoint at step 4: the later files never existed
    cut = tmp_path / "cut"
    cut.mkdir()
    for name in ("iter_4.json", "iter_4.safetensors", "state_4.safetensors"):
        (cut / name).write_bytes((full / name).read_bytes())
    index = (full / "checkpoints.sha256").read_text().splitlines()
    (cut / "checkpoints.sha256").write_text("".join(f"{line}\n" for line in index if line.endswith("_4.json")
                                                    or "_4.safetensors" in line))
    (cut / "last_checkpoint").write_text("iter_4.json")
    torch.manual_seed(123)  # a fresh process would start from other weights: the checkpoint must win
    result = trainer(keep_checkpoints=5).fit(ToyModel(), DATA, log=quiet, stage="2-joint", work_dir=cut, resume=True)
    assert result.steps == 12 and len(result.losses) == 8
    a, b = weights(full, 12), weights(cut, 12)
    assert max(float((a[k] - b[k]).abs().max()) for k in a) <= 1e-6


def test_accumulation_matches_the_larger_batch(tmp_path):
    torch.manual_seed(0)
    big = ToyModel()
    small = ToyModel()
    small.load_state_dict(big.state_dict())
    trainer(batch_size=8, max_steps=6, grad_clip=0).fit(big, DATA, log=quiet, stage="2-joint", work_dir=tmp_path / "a")
    trainer(batch_size=4, accumulation=2, max_steps=6, grad_clip=0).fit(
        small, DATA, log=quiet, stage="2-joint", work_dir=tmp_path / "b")
    for name, value in big.state_dict().items():
        assert torch.allclose(value, small.state_dict()[name], atol=1e-6), name


def test_lr_per_part_and_bf16_autocast(tmp_path):
    torch.manual_seed(0)
    model = ToyModel()
    lm_before = model.language_model.weight.detach().clone()
    result = trainer(max_steps=3, lr_per_part={"language_model": 1e-12}, precision="bf16").fit(
        model, DATA, log=quiet, stage="2-joint", work_dir=tmp_path)
    assert all(torch.isfinite(torch.tensor(result.losses)))
    assert torch.allclose(model.language_model.weight, lm_before, atol=1e-9)  # its own, tiny lr
    assert (model.connector.weight - 0).abs().sum() > 0


def test_sampler_shards_like_one_process_at_the_global_batch():
    one = ResumableSampler(10, batch_size=4, seed=3)
    stream = [i for i, _ in zip(one, range(24), strict=False)]
    assert sorted(stream[:10]) == list(range(10))  # each pass is a permutation
    resumed = ResumableSampler(10, batch_size=4, seed=3)
    resumed.set_position(8)
    assert [i for i, _ in zip(resumed, range(16), strict=False)] == stream[8:]


@pytest.mark.parametrize(("options", "message"), [
    (dict(lr="fast"), "lr must be a number > 0.0, got 'fast'"),
    (dict(accumulation=0), "accumulation must be a whole number >= 1"),
    (dict(precision="fp8"), "precision must be one of fp32, bf16"),
    (dict(objective="contrastive"), "objective must be one of auto, vlm, causal_lm"),
    (dict(lr_per_part={"encoder": -1}), "lr_per_part.encoder must be a number > 0.0"),
])
def test_bad_settings_are_named(options, message):
    with pytest.raises(ConfigError, match=message):
        trainer(**options)


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the message on a machine without a GPU")
def test_gpu_options_without_a_gpu_are_refused():
    with pytest.raises(ConfigError, match="device='cuda' but no CUDA GPU is visible"):
        trainer(device="cuda")
    with pytest.raises(ConfigError, match="strategy='fsdp' needs CUDA GPUs"):
        trainer(strategy="fsdp")


def test_resume_without_a_checkpoint_and_empty_data_are_clear(tmp_path):
    with pytest.raises(ConfigError, match="--resume: no checkpoint to resume in"):
        trainer().fit(ToyModel(), DATA, log=quiet, stage="2-joint", work_dir=tmp_path, resume=True)
    with pytest.raises(ConfigError, match="the dataset is empty"):
        trainer().fit(ToyModel(), [], log=quiet, stage="2-joint", work_dir=tmp_path)

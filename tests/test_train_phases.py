"""Each training phase through ``Experiment`` on a tiny config for a few steps: the parts the stage
trains change, every other weight (and batch-norm statistic) is bit-identical, the per-part counts the
trainer logged match the model, and each phase starts from the previous phase's weights."""

import importlib
import json
from importlib import metadata
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from babyvlm import registry
from babyvlm.core.errors import ConfigError
from babyvlm.core.experiment import ExperimentResults, PhaseResult, _load_weights, _weights_bytes

PLUGINS = {"mmengine_trainer": "babyvlm.plugins.mmengine_trainer", "dino": "babyvlm.plugins.dino",
           "cnn_encoder": "babyvlm.plugins.cnn_encoder"}
TRAINS = {"0-language": {"language_model"}, "0-vision": {"encoder"}, "1-alignment": {"connector"},
          "2-joint": {"connector", "language_model"}, "3-instruction": {"encoder", "connector", "language_model"}}


def register_in_process():
    # until pyproject lists the training plugins' entry points
    loaded = {p.name for p in registry.plugins()} | {ep.name for ep in metadata.entry_points(group="babyvlm")}
    for name, module in PLUGINS.items():
        if name not in loaded:
            registry.register_plugin(importlib.import_module(module), name)


def tiny_config(corpus, instructions=None):
    common = dict(type="mmengine", max_steps=2, lr=1e-2, batch_size=4, log_every=0, export=False, tensorboard=False)
    phases = [
        dict(name="0-language", trainer=dict(common, block_size=16)),
        dict(name="0-vision", formats=["image"],
             trainer=dict(common, type="dino", out_dim=64, hidden_dim=32, bottleneck_dim=16, local_crops=1, probe=False)),
        dict(name="1-alignment", formats=["image"], trainer=common),
        dict(name="2-joint", formats=["image", "video", "interleaved"], trainer=common),
    ]
    if instructions:
        phases.append(dict(name="3-instruction", data=dict(llava_json=str(instructions)),
                           trainer=dict(common, lr_per_part={"encoder": 1e-3})))
    return {
        "data": {"source": dict(type="saycam", transcripts="human"), "root": str(corpus),
                 "builder": dict(type="pretraining_set", image_size=64), "heldout_recordings": 1},
        "tokenizer": dict(type="bpe", vocab_size=300, min_frequency=1),
        "model": dict(type="babyllava", encoder=dict(type="cnn", preset="tiny"), connector="mlp2x_gelu",
                      language_model=dict(type="llama", preset="tiny"), template="baby_plain"),
        "phases": phases,
    }


@pytest.fixture(scope="module")
def experiment(tmp_path_factory):
    from babyvlm.core.experiment import Experiment
    from babyvlm.plugins.pretraining_set.llava_io import EXPORT_JSON, export_llava

    register_in_process()
    base = tmp_path_factory.mktemp("phases")
    corpus = base / "corpus"
    registry.get("command", "synth").main(
        ["saycam", str(corpus), "--minutes", "1.2", "--seed", "3", "--size", "64", "--video-minutes", "0.3", "--quiet"],
        standalone_mode=False)
    first = Experiment(tiny_config(corpus), base / "work", log=lambda line: None)
    first.ensure_data()
    export_llava(first.store_dir, base / "instructions", log=lambda line: None)  # any LLaVA-JSON file will do
    exp = Experiment(tiny_config(corpus, base / "instructions" / EXPORT_JSON), base / "work", log=lambda line: None)
    exp.ensure_data()
    exp.ensure_tokenizer()
    return exp


def snapshot(model):
    return {name: value.detach().clone() for name, value in model.state_dict().items()}


def part_of(name):
    return name.split(".", 1)[0]


@pytest.mark.parametrize("phase", ["0-language", "0-vision", "1-alignment", "2-joint", "3-instruction"])
def test_a_phase_trains_its_parts_and_leaves_the_rest_bit_identical(experiment, phase):
    experiment.build_model()
    for entry in experiment.phases:
        entry["init"] = "none"
    before = snapshot(experiment.model)
    result = experiment.train_phase(phase)
    after = experiment.model.state_dict()
    changed = {part_of(n) for n, v in before.items() if not torch.equal(v, after[n])}
    assert changed == TRAINS[phase]
    logged = result.metrics["parts"]
    for part in ("encoder", "connector", "language_model"):
        module = getattr(experiment.model, part)
        assert logged[part]["params"] == sum(p.numel() for p in module.parameters())
        expected = logged[part]["params"] if part in TRAINS[phase] else 0
        assert logged[part]["trainable"] == expected
    assert result.metrics["steps"] == 2 and all(map(torch.isfinite, torch.tensor(result.metrics["losses"])))
    folder = experiment.phase_dir(phase)
    assert (folder / "config.py").is_file() and (folder / "weights.safetensors").is_file()
    assert (folder / "last_checkpoint").is_file() and (folder / "metrics.jsonl").is_file()


def test_a_phase_starts_from_the_previous_phases_weights_and_results_round_trip(experiment):
    experiment.build_model()
    for entry in experiment.phases:
        entry["init"] = "previous"
    experiment.train_phase("1-alignment")
    trained = snapshot(experiment.model)
    experiment.build_model()  # a fresh process: new initial weights
    experiment.phases[3]["trainer"]["max_steps"] = 1
    experiment.train_phase("2-joint")
    encoder = {n: v for n, v in experiment.model.state_dict().items() if n.startswith("encoder.")}
    assert all(torch.equal(v, trained[n]) for n, v in encoder.items())  # came from phase 1, frozen since
    fresh = experiment.model
    _load_weights(fresh, experiment.phase_dir("2-joint") / "weights.safetensors")
    results = ExperimentResults.from_dict(experiment.results.to_dict())
    assert results == experiment.results and isinstance(results.phases[-1], PhaseResult)
    joint = [p for p in results.phases if p.name == "2-joint"]  # phases are kept in config order
    assert results["version"] == 2 and joint[0]["steps"] == 1


def test_gradient_checkpointing_and_bf16_train_the_same_parts(experiment):
    experiment.build_model()
    start = snapshot(experiment.model)
    for entry in experiment.phases:
        entry["init"] = "none"
    experiment.phases[3]["trainer"].update(max_steps=1, gradient_checkpointing=True)
    experiment.train_phase("2-joint")
    checkpointed = snapshot(experiment.model)
    experiment.model.load_state_dict(start)
    experiment.phases[3]["trainer"].update(gradient_checkpointing=False)
    experiment.train_phase("2-joint")
    plain = experiment.model.state_dict()
    assert all(torch.allclose(checkpointed[n], plain[n], atol=1e-5) for n in plain)  # recomputation, same maths
    experiment.model.load_state_dict(start)
    experiment.phases[3]["trainer"].update(precision="bf16")
    result = experiment.train_phase("2-joint")
    assert all(map(torch.isfinite, torch.tensor(result.metrics["losses"])))


def test_task_specific_tuning_trains_one_model_per_task_from_the_same_weights(experiment, tmp_path):
    """tuning='task_specific': items grouped by their 'task' field, one branch per task, each from the same
    starting weights, each exported; the run's model stays the shared starting one."""
    from babyvlm.core.experiment import check_config

    items = json.loads(Path(experiment.phases[4]["data"]["llava_json"]).read_text())[:16]
    for number, item in enumerate(items):
        item["task"] = "baby_a" if number % 2 else "baby_b"
    mixed = Path(experiment.phases[4]["data"]["llava_json"]).with_name("mixed.json")  # beside its images
    mixed.write_text(json.dumps(items))
    experiment.build_model()
    phase = experiment.phases[4]
    saved = dict(phase)
    start = tmp_path / "start.safetensors"
    start.write_bytes(_weights_bytes(experiment.model))
    phase.update(tuning="task_specific", data=dict(llava_json=str(mixed)), init=str(start))
    try:
        with pytest.raises(ConfigError, match=r"task-specific .*Experiment.train\(\['3-instruction'\]\)"):
            experiment.train_phase("3-instruction")  # never one mixed model by mistake
        results = experiment.train(["3-instruction"])
        models = experiment.task_models()
    finally:
        phase.clear()
        phase.update(saved)
    assert experiment.task_models() == {}  # a mixed phase of the same name has no per-task models
    assert [r.name for r in results] == ["3-instruction/baby_a", "3-instruction/baby_b"]
    assert [r.dataset_size for r in results] == [8, 8]
    assert sorted(models) == ["baby_a", "baby_b"] and all((p / "babyvlm.json").is_file() for p in models.values())
    branch_a = load_file(str(experiment.phase_dir("3-instruction/baby_a") / "weights.safetensors"))
    branch_b = load_file(str(experiment.phase_dir("3-instruction/baby_b") / "weights.safetensors"))
    shared = load_file(str(start))
    assert any(not torch.equal(branch_a[n], branch_b[n]) for n in branch_a)  # two different models
    # afterwards the run's model is the shared starting one again (what WORK/checkpoint then holds)
    assert all(torch.equal(v, shared[n]) for n, v in experiment.model.state_dict().items())
    written = json.loads((experiment.phase_dir("3-instruction") / "task_models.json").read_text())
    assert written == {"baby_a": "baby_a/checkpoint", "baby_b": "baby_b/checkpoint"}
    bad = tiny_config(experiment.root, mixed)
    bad["phases"][4]["tuning"] = "per_item"
    with pytest.raises(ConfigError, match=r"phases\[4\].tuning must be one of mixed, task_specific"):
        check_config(bad)


def test_task_specific_tuning_refuses_items_without_a_task(experiment, tmp_path):
    items = json.loads(Path(experiment.phases[4]["data"]["llava_json"]).read_text())[:4]
    plain = Path(experiment.phases[4]["data"]["llava_json"]).with_name("plain.json")
    plain.write_text(json.dumps(items))
    experiment.build_model()
    phase = experiment.phases[4]
    saved = dict(phase)
    phase.update(tuning="task_specific", data=dict(llava_json=str(plain)), init="none")
    try:
        with pytest.raises(ConfigError, match=r"plain.json: item 0 has no usable 'task' field"):
            experiment.train(["3-instruction"])
    finally:
        phase.clear()
        phase.update(saved)

"""`babyvlm run paper_real` — the paper's recipe on real data in one command — end to end in a real CLI
process on format-faithful SAYCam and Ego4D folders (written by `babyvlm synth`: mp4, human CSV and ASR
transcripts, COCO object boxes; ego4d.json + narrations), with `--set` overrides that only shrink sizes and
steps; then the finished checkpoint scored on released-shape DevCV items. Also: the config as published
(steps from epochs and batch sizes, templates, instruction file) and the refusal of a missing data root."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from babyvlm.core.compose import load_config
from babyvlm.media import encode_jpeg

TRAINER = {"max_steps": 2, "batch_size": 2, "precision": "fp32", "num_workers": 0, "checkpoint_every": 0, "log_every": 1}
DINO = {"batch_size": 4, "out_dim": 512, "hidden_dim": 256, "bottleneck_dim": 64, "local_crops": 2,
        "freeze_last_layer": 0, "probe_every": 0}
# shrinks the model, the data and the steps; the stages, phases, templates and evaluation stay the paper's
TINY = ["data.builder.image_size=64", "tokenizer.vocab_size=400", "tokenizer.min_frequency=2",
        "model.encoder.type=cnn", "model.encoder.preset=tiny", "model.language_model.preset=tiny",
        "model.language_model.vocab_size=400", "tasks.max_items=6", 'tasks.split_fractions={"test": 0.3}',
        'evaluation.limit={"*": 3, "baby_memory": 1}']
TINY += [f"phases.{n}.trainer.{key}={json.dumps(value)}" for n in range(5)
         for key, value in {**TRAINER, **({"block_size": 64} if n == 0 else DINO if n == 1 else {})}.items()]


def babyvlm(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "babyvlm", *args], capture_output=True, text=True, timeout=1800,
                          cwd=cwd, env=dict(os.environ, OMP_NUM_THREADS="1"))


def released_items(folder: Path) -> Path:
    """A flat folder of released-shape items (Picture Vocabulary and Counting as published, `images/`)."""
    (folder / "images").mkdir(parents=True)
    for shade in range(0, 80, 10):
        (folder / "images" / f"{shade}.jpg").write_bytes(encode_jpeg(np.full((32, 32, 3), shade, dtype=np.uint8)))
    pv = [{"id": f"pv{n}", "image": [f"images/{s}.jpg" for s in (0, 10, 20, 30)],
           "conversations": [{"from": "human", "value": "<image><image><image><image>\nTouch the image of 'ball' (A) "
                              "the first image (B) the second image (C) the third image (D) the fourth image."},
                             {"from": "gpt", "value": "ABCD"[n]}]} for n in range(4)]
    count = [{"id": f"count{n}", "image": [f"images/{10 * n}.jpg"],
              "conversations": [{"from": "human", "value": "<image>\nHow many balls do you see?"},
                                {"from": "gpt", "value": str(n + 4)}]} for n in range(3)]
    (folder / "pv_test.json").write_text(json.dumps(pv))
    (folder / "count_test.json").write_text(json.dumps(count))
    return folder


def test_paper_real_is_the_published_recipe():
    cfg = load_config("paper_real")
    steps = {phase["name"]: phase["trainer"]["max_steps"] for phase in cfg.phases}
    assert steps["1-alignment"] == 768_000 * 5 // (32 * 8)  # 5 epochs of the image pairs at 32 per GPU x 8
    assert steps["2-joint"] == -(-(768_000 + 181_000 + 63_000) * 5 // 64)
    assert steps["3-instruction"] == -(-113_000 * 5 // 128)
    templates = {phase["name"]: phase.get("template") for phase in cfg.phases}
    assert templates["2-joint"] == templates["3-instruction"] == "baby_v1" and cfg.model.template == "baby_plain"
    assert cfg.phases[4].data.llava_json == "{tasks}/saycam/devcv_instructions_train.json"
    assert all(phase["trainer"]["num_workers"] == 8 for phase in cfg.phases)
    assert cfg.phases[3].trainer.gradient_checkpointing and cfg.phases[4].trainer.gradient_checkpointing
    assert cfg.evaluation.blind_twin is True and cfg.data.root is None and cfg.ood_data.root is None


def test_a_missing_data_root_is_refused_naming_the_setting(tmp_path):
    done = babyvlm("run", "paper_real", "--work-dir", str(tmp_path / "run"), cwd=tmp_path)
    assert done.returncode != 0 and "Traceback" not in done.stderr
    assert "data.root" in done.stderr and "--set data.root=/data/saycam" in done.stderr
    nowhere = babyvlm("run", "paper_real", "--work-dir", str(tmp_path / "run"), "--set", f"data.root={tmp_path}",
                      "--set", f"ood_data.root={tmp_path / 'nope'}", cwd=tmp_path)
    assert nowhere.returncode != 0 and f"ood_data.root: {tmp_path / 'nope'} is not a folder" in nowhere.stderr
    assert not (tmp_path / "run").exists()


@pytest.mark.slow
def test_paper_real_runs_end_to_end_on_saycam_and_ego4d_folders(tmp_path):
    for kind, minutes in (("saycam", "2"), ("ego4d", "1")):
        made = babyvlm("synth", kind, str(tmp_path / kind), "--minutes", minutes, "--quiet", cwd=tmp_path)
        assert made.returncode == 0, made.stderr
    work = tmp_path / "run"
    args = ["run", "paper_real", "--work-dir", str(work), "--set", f"data.root={tmp_path / 'saycam'}",
            "--set", f"ood_data.root={tmp_path / 'ego4d'}"]
    done = babyvlm(*args, *[f"--set={pair}" for pair in TINY], cwd=tmp_path)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    outcome = json.loads([line for line in done.stdout.splitlines() if line.startswith('{"seconds"')][-1])
    assert outcome["ran"] == ["corpora", "tasks", "model", "blind_twin", "evaluation", "report"]
    results = json.loads((work / "results.json").read_text())
    assert [phase["name"] for phase in results["phases"]] == ["0-language", "0-vision", "1-alignment", "2-joint",
                                                              "3-instruction"]
    assert (work / "tasks" / "saycam" / "devcv_instructions_train.json").is_file()  # what phase 3 trained on
    assert (work / "blind_twin" / "checkpoint" / "babyvlm.json").is_file()  # the blind twin was trained
    report = (work / "report.md").read_text()
    assert "in-domain" in report and "out-of-domain" in report and "blind twin" in report
    summary = json.loads(next((work / "eval" / "model").glob("*_summary.json")).read_text())
    assert summary["mode"] == "generate" and summary["adapter_settings"]["template"] == "baby_v1"
    assert summary["adapter_settings"]["template_source"] == "checkpoint"  # phase 3's own template

    released = released_items(tmp_path / "released")
    scored = babyvlm("eval", "--model", str(work / "checkpoint"), "--data", str(released), "--out",
                     str(work / "eval" / "released"), "--with-blind", cwd=tmp_path)
    assert scored.returncode == 0, scored.stdout[-2000:] + scored.stderr[-2000:]
    assert "baby_pv" in scored.stdout and "baby_count" in scored.stdout and "blind@test" in scored.stdout

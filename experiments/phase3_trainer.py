"""Phase-3 candidates through the platform itself, on the VAL split: the demo config's 3-instruction phase
(mmengine trainer, the demo's data path) from a finished run's phase-2 weights, for the model and for its
blind twin (the same phase on constant-grey images), on some tasks' instruction records only; both scored
on val items by log-likelihood (never test). One task per call is the task-specific mode (the phase is run
as ``tuning=mixed`` over that task's records alone).

usage:
  python experiments/phase3_trainer.py RUN OUT_JSONL NAME SEED TASK[,TASK] [KEY=VALUE ...]

RUN: a demo work dir (``babyvlm run demo`` or a ``babyvlm sweep`` point); KEY=VALUE: overrides of the phase
(``phases.4.*``), e.g. ``tuning=mixed trainer.max_steps=200``, except ``model.*`` (the model section: it must be
the one RUN was trained with, e.g. ``model.image_slots=32``) and ``instructions=FILE`` (the records to take the
tasks' items from, a file in RUN's in-domain task folder such as ``babyvlm tasks instructions --easy-match``
writes; default ``devcv_instructions_train.json``). Work goes to ``/tmp/phase3_trainer/NAME-sSEED``;
the tasks' records are written beside RUN's instruction file (``phase3_trainer_NAME_sSEED.json``).
The README's "The recipe, and what was tried" quotes its rows.
"""

from __future__ import annotations

import json
import shutil
import sys
import time
from pathlib import Path

from val_scores import val_scores  # this folder's script (run as ``python experiments/...``)

from babyvlm.core.compose import apply_overrides, load_config
from babyvlm.plugins.run_command.pipeline import RunPipeline, trained_adapter


def main() -> None:
    base, out, name, seed, tasks = (Path(sys.argv[1]), Path(sys.argv[2]), sys.argv[3], int(sys.argv[4]),
                                    sys.argv[5].split(","))
    overrides = [o for o in sys.argv[6:] if not o.startswith(("model.", "instructions="))]
    top_level = [o for o in sys.argv[6:] if o.startswith("model.")]
    source = next((o.split("=", 1)[1] for o in sys.argv[6:] if o.startswith("instructions=")),
                  "devcv_instructions_train.json")
    work = Path("/tmp/phase3_trainer") / f"{name}-s{seed}"
    if work.exists():
        shutil.rmtree(work)
    (work / "phases").mkdir(parents=True)
    for folder in ("corpus", "ood_corpus", "tasks", "store", "tokenizer"):
        if (base / folder).exists():
            (work / folder).symlink_to(base / folder)
    (work / "phases" / "2-joint").symlink_to(base / "phases" / "2-joint")
    (work / "blind_twin" / "phases").mkdir(parents=True)
    (work / "blind_twin" / "phases" / "2-joint").symlink_to(base / "blind_twin" / "phases" / "2-joint")
    records = json.loads((base / "tasks" / "saycam" / source).read_text())
    # image paths in an instruction file are relative to its folder: the subset sits beside the full file
    subset = base / "tasks" / "saycam" / f"phase3_trainer_{name}_s{seed}.json"
    subset.write_text(json.dumps([r for r in records if r.get("task") in tasks]))
    cfg = load_config("demo")
    apply_overrides(cfg, [f"seed={seed}", f"phases.4.trainer.seed={seed}", f"phases.4.data.llava_json={subset}",
                          *top_level, *[f"phases.4.{o}" for o in overrides]], "--set")
    run = RunPipeline(cfg, work, log=lambda line: None)
    options = dict(template="baby_v1_qfirst")

    row = {"name": name, "seed": seed, "overrides": sys.argv[6:], "tasks": tasks, "instructions": source}
    started = time.perf_counter()
    model = run.experiment
    model.ensure_data()
    model.ensure_tokenizer()
    model.build_model()
    model.train_phase("3-instruction")
    model.model.save_pretrained(work / "checkpoint")
    row["train_s"] = round(time.perf_counter() - started, 1)
    row["model"] = val_scores(trained_adapter(model, work / "checkpoint", options), tasks, base / "tasks",
                              work / "eval" / "model", 150)
    twin = run.blind_twin()
    twin.tokenizer_source = model.tokenizer_dir
    twin.ensure_data()
    twin.ensure_tokenizer()
    twin.build_model()
    twin.train_phase("3-instruction")
    twin.model.save_pretrained(work / "blind_twin" / "checkpoint")
    blind = dict(type="blind", adapter=trained_adapter(twin, work / "blind_twin" / "checkpoint", options))
    row["blind"] = val_scores(blind, tasks, base / "tasks", work / "eval" / "blind", 150)
    row["total_s"] = round(time.perf_counter() - started, 1)
    with open(out, "a") as handle:
        handle.write(json.dumps(row, default=str) + "\n")
    print(json.dumps({k: v for k, v in row.items() if k not in ("model", "blind")}))


if __name__ == "__main__":
    main()

"""A finished demo run's model and blind twin scored on the VAL split (never test): the way to compare whole-run
recipes (a model option, a phase setting) without looking at the test items the report scores.

usage:
  python experiments/val_scores.py RUN OUT_JSONL NAME [--limit N] [--memory-limit N]

RUN: a work dir of ``babyvlm run demo`` (or a ``babyvlm sweep`` point). Each task's own phase-3 model answers
its items (task-specific tuning; the shared phase-2 model answers a task without one, e.g. Winoground), the
blind twin's likewise, on constant grey pictures as it was trained; in-domain val items (the first ``--limit``
per task, Memory ``--memory-limit``), log-likelihood scoring, the demo's template. One JSON line per run:
per task, model and twin score and their bootstrap standard errors.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from babyvlm import registry
from babyvlm.core.io import load_json

PHASE = "3-instruction"


def adapter(run: Path, options: dict) -> dict:
    """The run's adapter spec: one model per task where the task-specific phase made one."""
    exported = dict(type="babyvlm", path=str(run / "checkpoint"), **options)
    listing = run / "phases" / PHASE / "task_models.json"
    if not listing.is_file():
        return exported
    models = load_json(listing)
    return dict(type="per_task", default=exported,
                adapters={task: dict(type="babyvlm", path=str(listing.parent / path), **options)
                          for task, path in models.items()})


def val_scores(spec: dict, tasks, tasks_dir: Path, out: Path, limit) -> dict:
    """Task -> [val score, its bootstrap standard error] of the adapter ``spec`` on the in-domain val items
    (``limit``: the first N per task, or ``{task: N, "*": N}``), log-likelihood scoring."""
    summary = registry.build("evaluator", "devcv").evaluate(spec, tasks, tasks_dir, out, mode="loglikelihood",
                                                           split="val", domains=["saycam"], limit=limit, seed=0,
                                                           log=lambda line: None)
    scores = {}
    for task, result in summary["domains"]["saycam"]["tasks"].items():
        metric = result["primary_metric"]
        scores[task] = [round(result["metrics"][metric], 4), result.get("spread", {}).get(metric, {}).get("stderr")]
    return scores


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("run", type=Path)
    parser.add_argument("out", type=Path)
    parser.add_argument("name")
    parser.add_argument("--limit", type=int, default=150)
    parser.add_argument("--memory-limit", type=int, default=20)
    args = parser.parse_args()
    options = dict(template="baby_v1_qfirst")
    row: dict = {"name": args.name, "run": str(args.run)}
    started = time.perf_counter()
    for role, spec in (("model", adapter(args.run, options)),
                       ("blind", dict(type="blind", adapter=adapter(args.run / "blind_twin", options)))):
        row[role] = val_scores(spec, "all", args.run / "tasks", Path("/tmp/val_scores") / args.name / role,
                               {"*": args.limit, "baby_memory": args.memory_limit})
    row["seconds"] = round(time.perf_counter() - started, 1)
    for task in sorted(row["model"]):
        model, blind = row["model"][task][0], row["blind"].get(task, [None])[0]
        if model is None or blind is None:  # a task one side could not score
            print(f"{task:28s} model {model}  twin {blind}")
            continue
        print(f"{task:28s} model {model:.3f}  twin {blind:.3f}  margin {100 * (model - blind):+.1f}")
    with open(args.out, "a") as handle:
        handle.write(json.dumps(row, default=str) + "\n")


if __name__ == "__main__":
    main()

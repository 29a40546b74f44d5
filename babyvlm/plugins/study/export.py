"""``babyvlm study export DB --out DIR``: a study's answers as a ``human`` result beside the models.

Writes (the folder is replaced as a whole):

- ``<domain>/<date>_results.json`` + ``<domain>/<date>_samples_<task>.jsonl`` + ``<date>_summary.json``:
  the evaluation engine's own results writer, adapter ``human``; each task's metrics come from the
  task's own ``score``/``aggregate`` over every (participant, item) a participant finished, pooled, with
  bootstrap intervals and the chance level, exactly as for a model;
- ``human_items.json``: per task and item, the response counts over the options, the gold answer and the
  human accuracy (what ``alignment.compare_with_humans`` reads); multi-screen items (Memory, Looking While
  Listening) also per screen;
- ``participants.json``: per participant, the recruiting ids, trials answered, per-task metrics and
  accuracy over screens;
- ``agreement.json``: per task, Fleiss' kappa and the mean pairwise agreement between participants over
  the screens at least two of them answered;
- ``trials.jsonl``: every trial (jsPsych-style fields: ``trial_index``, ``stimulus``, ``response``, ``rt``,
  ``time_elapsed``, ``correct``, participant and task).
"""

from __future__ import annotations

import json
import os
from collections import Counter, defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import replace
from itertools import combinations
from pathlib import Path
from typing import Any

from babyvlm.core.errors import DataError
from babyvlm.core.io import atomic_write_json, atomic_write_text, replaced_folder
from babyvlm.core.records import SkipReport
from babyvlm.plugins.study.alignment import HUMAN_ITEMS_FILE
from babyvlm.plugins.study.content import StudyContent
from babyvlm.plugins.study.stimuli import score_answers
from babyvlm.plugins.study.storage import StudyDB

ADAPTER_NAME = "human"


def export_study(db_path: str | os.PathLike, out: str | os.PathLike, tasks_dir: str | os.PathLike | None = None,
                 bootstrap_resamples: int = 200, seed: int = 0) -> dict[str, Any]:
    """Write the export (see the module docstring); returns the summary the results files were made from."""
    db_path = Path(db_path)
    if not db_path.is_file():
        raise DataError(f"{db_path}: no such study database")
    db = StudyDB(db_path)
    settings = db.study()
    folder = Path(tasks_dir or settings["tasks_dir"])
    if not folder.is_dir():
        raise DataError(f"{folder}: the study's task folder is gone; pass --tasks-dir to where its items are now")
    content = StudyContent(folder, settings["tasks"], settings["items_per_task"], settings["split"], settings["seed"])
    if content.settings()["fingerprint"] != settings["fingerprint"]:
        raise DataError(f"{folder}: its items differ from the ones the study in {db_path} showed")
    trials, participants = db.trials(), db.participants()
    answers = _answers_by_item(trials)
    skipped = SkipReport()
    summary = _summary(content, answers, participants, settings, skipped, bootstrap_resamples, seed)
    with replaced_folder(out, marker=HUMAN_ITEMS_FILE, what="study export") as stage:
        from babyvlm.plugins.evaluation import results as results_files

        results_files.write_all(summary, stage)
        atomic_write_json(stage / HUMAN_ITEMS_FILE, {"tasks": item_distributions(content, answers)})
        atomic_write_json(stage / "participants.json", participant_table(content, answers, participants))
        atomic_write_json(stage / "agreement.json", agreement(trials))
        atomic_write_text(stage / "trials.jsonl", "".join(json.dumps(_trial_line(t), sort_keys=True) + "\n"
                                                          for t in trials))
    summary["files"] = [str(Path(out) / Path(path).relative_to(stage)) for path in summary.get("files", [])]
    return summary


def _answers_by_item(trials: Sequence[Mapping[str, Any]]) -> dict[tuple[str, str], dict[str, dict[int, str]]]:
    """``{(task, item_id): {participant: {screen: response}}}``."""
    found: dict[tuple[str, str], dict[str, dict[int, str]]] = defaultdict(lambda: defaultdict(dict))
    for trial in trials:
        found[(trial["task"], trial["item_id"])][trial["participant_id"]][trial["screen"]] = trial["response"]
    return found


def _finished(entry, by_participant: Mapping[str, Mapping[int, str]]) -> dict[str, list[str]]:
    screens = range(len(entry.screens))
    return {pid: [answers[s] for s in screens] for pid, answers in by_participant.items()
            if all(s in answers for s in screens)}


def _summary(content: StudyContent, answers, participants, settings, skipped: SkipReport, resamples: int,
             seed: int) -> dict[str, Any]:
    from babyvlm.plugins.evaluation.engine import chance_of
    from babyvlm.plugins.evaluation.metrics import bootstrap, overall

    tasks: dict[str, Any] = {}
    for name, entries in content.items.items():
        task = content.tasks[name]
        items, predictions, samples = [], [], []
        for entry in entries:
            by_participant = answers.get((name, entry.item.item_id), {})
            finished = _finished(entry, by_participant)
            for pid in sorted(set(by_participant) - set(finished)):
                skipped.skip("item_not_finished", f"{pid}: {name}/{entry.item.item_id}")
            for pid, item_answers in sorted(finished.items()):
                pooled = replace(entry.item, item_id=f"{pid}:{entry.item.item_id}")
                prediction = replace(score_answers(task, entry.item, item_answers), item_id=pooled.item_id)
                items.append(pooled)
                predictions.append(prediction)
                samples.append({"doc_id": len(samples), "item_id": entry.item.item_id, "participant_id": pid,
                                "target": entry.item.answer, "response": json.dumps(item_answers),
                                "filtered_resps": [prediction.parsed], "parsed": prediction.parsed,
                                "correct": prediction.correct, "tied": []})
        if not items:
            skipped.skip("task_without_finished_items", name)
            continue
        metrics = {metric: _plain(value) for metric, value in task.aggregate(items, predictions).items()}
        tasks[name] = {"task_fingerprint": content.settings()["fingerprint"], "primary_metric": task.primary_metric,
                       "metrics": metrics, "spread": bootstrap(task.aggregate, items, predictions, resamples, seed),
                       "chance": chance_of(task, [entry.item for entry in entries]),
                       "higher_is_better": dict.fromkeys(metrics, True), "n": len(items), "ties": 0,
                       "unparsed": sum(1 for p in predictions if p.parsed is None), "samples": samples,
                       "participants": len({s["participant_id"] for s in samples})}
    domain = Path(settings["tasks_dir"]).name
    primaries = {name: task["metrics"].get(task["primary_metric"]) for name, task in tasks.items()}
    return {"adapter": ADAPTER_NAME, "adapter_fingerprint": f"human:{settings['fingerprint']}",
            "data_dir": str(Path(settings["tasks_dir"]).parent), "mode": "human", "split": settings["split"],
            "limit": settings["items_per_task"], "seed": seed, "world_size": 1,
            "config": {"study": settings, "participants": len(participants)},
            "domains": {domain: {"folder": settings["tasks_dir"], "tasks": tasks, "overall": overall(primaries)}},
            "skipped": skipped.to_dict(), "seconds": 0.0}


def _plain(value: Any) -> Any:
    if hasattr(value, "item") and not isinstance(value, (str, bytes)):
        value = value.item()
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else value


def item_distributions(content: StudyContent, answers) -> dict[str, dict[str, Any]]:
    """Per task and item: response counts, gold, human accuracy (single screens: over the options)."""
    tasks: dict[str, dict[str, Any]] = {}
    for name, entries in content.items.items():
        task = content.tasks[name]
        table = tasks.setdefault(name, {})
        for entry in entries:
            by_participant = answers.get((name, entry.item.item_id), {})
            screens = [_screen_distribution(screen, [a[number] for a in by_participant.values() if number in a])
                       for number, screen in enumerate(entry.screens)]
            if len(screens) == 1:
                table[entry.item.item_id] = screens[0]
                continue
            finished = _finished(entry, by_participant)
            verdicts = [score_answers(task, entry.item, item_answers) for item_answers in finished.values()]
            table[entry.item.item_id] = {
                "counts": dict(Counter(str(p.parsed) for p in verdicts)), "n": len(verdicts),
                "gold": entry.item.answer, "options": [],
                "accuracy": sum(bool(p.correct) for p in verdicts) / len(verdicts) if verdicts else None,
                "screens": screens}
    return tasks


def _screen_distribution(screen, responses: Sequence[str]) -> dict[str, Any]:
    counts = Counter(responses)
    options = [option.key for option in screen.options]
    full = {key: counts.get(key, 0) for key in options}
    full.update({key: n for key, n in counts.items() if key not in full})  # free-text answers
    correct = sum(n for key, n in counts.items() if screen.is_correct(key))
    return {"counts": full, "n": len(responses), "gold": screen.gold, "options": options,
            "accuracy": correct / len(responses) if responses else None}


def participant_table(content: StudyContent, answers, participants) -> list[dict[str, Any]]:
    rows = []
    for participant in participants:
        pid = participant["participant_id"]
        per_task: dict[str, Any] = {}
        screens_right = screens_total = 0
        for name, entries in content.items.items():
            task = content.tasks[name]
            items, predictions = [], []
            for entry in entries:
                mine = answers.get((name, entry.item.item_id), {}).get(pid, {})
                for number, screen in enumerate(entry.screens):
                    if number in mine:
                        screens_total += 1
                        screens_right += screen.is_correct(mine[number])
                if len(mine) == len(entry.screens):
                    items.append(entry.item)
                    predictions.append(score_answers(task, entry.item, [mine[s] for s in range(len(entry.screens))]))
            if items:
                per_task[name] = {"n_items": len(items), **{m: _plain(v) for m, v in task.aggregate(items, predictions).items()}}
        rows.append({"participant_id": pid, "prolific_pid": participant["prolific_pid"],
                     "study_id": participant["study_id"], "session_id": participant["session_id"],
                     "trials_answered": participant["next_trial"], "finished": participant["finished_at"] is not None,
                     "screen_accuracy": screens_right / screens_total if screens_total else None, "tasks": per_task})
    return rows


def agreement(trials: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """Per task: Fleiss' kappa and mean pairwise agreement over screens answered by >= 2 participants."""
    by_screen: dict[str, dict[tuple[str, int], list[str]]] = defaultdict(lambda: defaultdict(list))
    for trial in trials:
        by_screen[trial["task"]][(trial["item_id"], trial["screen"])].append(trial["response"])
    result = {}
    for task, screens in by_screen.items():
        shared = [responses for responses in screens.values() if len(responses) >= 2]
        result[task] = {"screens": len(shared), "fleiss_kappa": fleiss_kappa(shared),
                        "pairwise_agreement": pairwise_agreement(shared),
                        "participants_per_screen": (sum(map(len, shared)) / len(shared)) if shared else None}
    return result


def pairwise_agreement(screens: Sequence[Sequence[str]]) -> float | None:
    pairs = [a == b for responses in screens for a, b in combinations(responses, 2)]
    return sum(pairs) / len(pairs) if pairs else None


def fleiss_kappa(screens: Sequence[Sequence[str]]) -> float | None:
    """Fleiss' kappa allowing a different number of raters per screen (each screen's agreement is the
    share of agreeing rater pairs); None without two raters anywhere or when chance agreement is 1."""
    if not screens:
        return None
    categories = Counter(response for responses in screens for response in responses)
    total = sum(categories.values())
    expected = sum((count / total) ** 2 for count in categories.values())
    observed = sum(sum(n * (n - 1) for n in Counter(responses).values()) / (len(responses) * (len(responses) - 1))
                   for responses in screens) / len(screens)
    return None if expected >= 1 else (observed - expected) / (1 - expected)


def _trial_line(trial: Mapping[str, Any]) -> dict[str, Any]:
    return {"participant_id": trial["participant_id"], "trial_index": trial["trial_index"], "task": trial["task"],
            "item_id": trial["item_id"], "screen": trial["screen"], "stimulus": trial["stimulus"],
            "response": trial["response"], "gold": trial["gold"], "correct": trial["correct"], "rt": trial["rt_ms"],
            "time_elapsed": trial["time_elapsed_ms"], "shown_at": trial["shown_at"],
            "answered_at": trial["answered_at"]}

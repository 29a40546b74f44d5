"""Results files in lmms-eval's shapes, and the table ``babyvlm eval`` prints.

Per domain: ``OUT/<domain>/<date>_results.json`` (``results[task]["<metric>,none"]``,
``"<metric>_stderr,none"``, ``"<metric>_ci95,none"``, ``"chance,none"``, ``"blind_at_test_<primary>,none"`` (``--with-blind``);
``n-samples``, ``higher_is_better``, ``versions``, ``config``, and babyvlm's ``overall``) and
``OUT/<domain>/<date>_samples_<task>.jsonl`` (one line per item: ``doc_id``, ``item_id``, ``target``,
``response``, ``filtered_resps``, ``parsed``, ``correct``, ``tied``, ``option_losses`` when scored by
likelihood). ``OUT/<date>_summary.json`` holds every domain's results and overall score. The date is
lmms-eval's ``YYYYMMDD_HHMMSS``. Every file is written atomically.
"""

from __future__ import annotations

import json
import platform
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from babyvlm.core.io import atomic_write_json, atomic_write_text

TIMESTAMP = "%Y%m%d_%H%M%S"
HUMAN_COLUMNS = ("kl", "temperature", "spearman", "n_items")
# `--with-blind`: the same model shown blank images at test (not the blind twin `babyvlm run` trains on them)
BLIND_AT_TEST, BLIND_AT_TEST_COLUMN = "blind_at_test", "blind@test"


def versions() -> dict[str, str]:
    import babyvlm

    found = {"babyvlm": babyvlm.__version__, "python": platform.python_version()}
    for package in ("torch", "transformers"):
        try:
            found[package] = __import__(package).__version__
        except ImportError:
            continue
    return found


def lmms_results(domain: str, data: Mapping[str, Any], summary: Mapping[str, Any]) -> dict[str, Any]:
    """One domain's results in lmms-eval's ``<date>_results.json`` layout."""
    results, n_samples, higher, task_versions = {}, {}, {}, {}
    for name, task in data["tasks"].items():
        entry: dict[str, Any] = {"alias": name}
        for metric, value in task["metrics"].items():
            entry[f"{metric},none"] = value
            spread = task["spread"].get(metric)
            if spread:
                entry[f"{metric}_stderr,none"] = spread["stderr"]
                entry[f"{metric}_ci95,none"] = [spread["ci_low"], spread["ci_high"]]
        entry["chance,none"] = task["chance"]
        if BLIND_AT_TEST in task:
            entry[f"{BLIND_AT_TEST}_{task['primary_metric']},none"] = task[BLIND_AT_TEST]
        entry.update(ties=task["ties"], unparsed=task["unparsed"], primary_metric=task["primary_metric"])
        if "ci_clusters" in task:  # what the bootstrap resampled (recordings, shared-image groups or items)
            entry["ci_clusters"] = task["ci_clusters"]
        for column, value in task.get("human", {}).items():
            entry[f"human_{column},none"] = value
        results[name] = entry
        n_samples[name] = {"original": task["n"], "effective": task["n"]}
        higher[name] = task["higher_is_better"]
        task_versions[name] = task["task_fingerprint"]
    return {"results": results, "overall": data["overall"], "n-samples": n_samples, "higher_is_better": higher,
            "versions": {**task_versions, **versions()}, "config": run_config(summary, domain),
            "skipped": summary["skipped"]}


def run_config(summary: Mapping[str, Any], domain: str | None = None) -> dict[str, Any]:
    config = {"model": summary["adapter"], "model_fingerprint": summary["adapter_fingerprint"],
              "model_settings": summary.get("adapter_settings", {}),
              "data_dir": summary["data_dir"], "mode": summary["mode"], "split": summary["split"],
              "limit": summary["limit"], "bootstrap_seed": summary["seed"], "world_size": summary["world_size"],
              **summary["config"]}
    if domain is not None:
        config["domain"] = domain
    return config


def write_all(summary: dict[str, Any], out: Path) -> list[Path]:
    """Every results file of the run (one date for all); their paths are recorded in ``summary["files"]``."""
    date = time.strftime(TIMESTAMP)
    files: list[Path] = []
    for domain, data in summary["domains"].items():
        folder = out / domain
        document = lmms_results(domain, data, summary)
        document.update(date=date, total_evaluation_time_seconds=f"{summary['seconds']:.2f}")
        files.append(atomic_write_json(folder / f"{date}_results.json", document))
        for name, task in data["tasks"].items():
            lines = "".join(json.dumps(sample, ensure_ascii=False, sort_keys=True) + "\n" for sample in task["samples"])
            files.append(atomic_write_text(folder / f"{date}_samples_{name}.jsonl", lines))
    summary["files"] = [str(path) for path in files]
    summary["date"] = date
    overview = {key: value for key, value in summary.items() if key != "domains"}
    overview["domains"] = {domain: {"overall": data["overall"],
                                    "tasks": {name: {k: v for k, v in task.items() if k != "samples"}
                                              for name, task in data["tasks"].items()}}
                           for domain, data in summary["domains"].items()}
    files.append(atomic_write_json(out / f"{date}_summary.json", overview))
    summary["files"].append(str(files[-1]))
    return files


def attach_blind(summary: dict[str, Any], blind: Mapping[str, Any]) -> None:
    """Each task's primary score under ``blind(adapter)`` — the same model shown blank images at test, not
    a blind twin trained on them — beside the seeing one, under ``blind_at_test``; its overall too."""
    summary[f"{BLIND_AT_TEST}_adapter_fingerprint"] = blind.get("adapter_fingerprint")
    summary[f"{BLIND_AT_TEST}_adapter_settings"] = blind.get("adapter_settings", {})
    for domain, data in summary["domains"].items():
        blind_domain = blind.get("domains", {}).get(domain, {})
        for name, task in data["tasks"].items():
            blind_task = blind_domain.get("tasks", {}).get(name)
            if blind_task is not None:
                task[BLIND_AT_TEST] = blind_task["metrics"].get(task["primary_metric"])
        if blind_domain:
            data["overall"][f"{BLIND_AT_TEST}_score"] = blind_domain["overall"]["score"]


def attach_human(summary: dict[str, Any], comparison: Mapping[str, Mapping[str, Any]]) -> None:
    for domain, tasks in comparison.items():
        for name, figures in tasks.items():
            task = summary["domains"].get(domain, {}).get("tasks", {}).get(name)
            if task is not None:
                task["human"] = {column: figures.get(column) for column in HUMAN_COLUMNS}


# ---- the printed table ---------------------------------------------------------------------------------
def table(summary: Mapping[str, Any]) -> str:
    """entry, metric, score, 95% CI, chance (+ blind, + human columns when present), n, ties."""
    lines = []
    for domain, data in summary["domains"].items():
        tasks = data["tasks"]
        show_blind = any(BLIND_AT_TEST in task for task in tasks.values())
        show_human = any("human" in task for task in tasks.values())
        header = ["entry", "metric", "score", "95% CI", "chance"] + ([BLIND_AT_TEST_COLUMN] if show_blind else []) + \
            (["KL", "temp", "spearman"] if show_human else []) + ["n", "ties"]
        rows = [header]
        for name, task in tasks.items():
            metric = task["primary_metric"]
            spread = task["spread"].get(metric, {})
            ci = f"[{spread['ci_low']:.3f}, {spread['ci_high']:.3f}]" if spread else "-"
            row = [name, metric, _number(task["metrics"].get(metric)), ci, _number(task["chance"])]
            if show_blind:
                row.append(_number(task.get(BLIND_AT_TEST)))
            if show_human:
                human = task.get("human", {})
                row += [_number(human.get("kl")), _number(human.get("temperature")), _number(human.get("spearman"))]
            rows.append(row + [str(task["n"]), str(task["ties"])])
        widths = [max(len(row[i]) for row in rows) for i in range(len(header))]
        score = data["overall"]
        blind = f", blind at test {score[f'{BLIND_AT_TEST}_score']:.3f}" if f"{BLIND_AT_TEST}_score" in score else ""
        lines.append(f"{domain}: overall {score['score']:.3f}{blind} (mean of the 11 primary metrics, "
                     f"{len(score['missing'])} missing count 0)")
        lines += ["  " + "  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip()
                  for row in rows]
    return "\n".join(lines)


def _number(value: Any) -> str:
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return f"{float(value):.3f}"
    return "-" if value is None else str(value)[:24]

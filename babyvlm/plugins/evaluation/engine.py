"""The ``devcv`` evaluator: tasks x domains through an eval adapter, resumable, merged across processes.

Per domain folder under ``data_dir`` (``DIR/<domain>/<short>_<split>.json``; a flat released folder is
one domain named after it) and per task with items there:

1. the items are loaded (``--limit`` keeps the first N) and shown to item-aware adapters
   (``see_items(task_name, items, task=, mode=)``: the oracle's gold labels, the random guesser's
   answer spaces);
2. items not yet in the resume log (``progress``) are split across processes, answered in chunks
   (requests grouped by kind, each kind one adapter call that batches internally), scored by the task
   and appended to the log as each chunk finishes;
3. rank 0 reads the log back (so a resumed run and an uninterrupted one aggregate the very same JSON),
   computes the task's metrics, bootstrap standard errors and 95% intervals, the chance level and the
   tie count, and writes the lmms-eval-style files (``results``).

``with_blind=True`` runs the same evaluation through ``blind(adapter)`` into ``OUT/blind_at_test`` and shows
each primary score beside it ("blind at test": the same model shown blank images, not a blind twin trained
on them, which ``babyvlm run`` adds); ``compare_human=DIR`` adds item-level human alignment.
"""

from __future__ import annotations

import hashlib
import json
import os
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from babyvlm import registry
from babyvlm.core.clusters import cluster_items
from babyvlm.core.constants import EVALUATION_MODES, TASK_SPLITS_FILE
from babyvlm.core.contracts import ItemChance, show_items
from babyvlm.core.errors import BabyVLMError, ConfigError, DataError
from babyvlm.core.io import WriterLock
from babyvlm.core.progress import progress as progress_bar
from babyvlm.core.records import Prediction, Request, SkipReport, TaskItem
from babyvlm.core.specs import is_spec
from babyvlm.plugins.evaluation import results as results_files
from babyvlm.plugins.evaluation.distributed import Processes
from babyvlm.plugins.evaluation.metrics import bootstrap, overall
from babyvlm.plugins.evaluation.progress import ProgressLog

MODES = EVALUATION_MODES
ADAPTER_CALLS = {"generate": "generate_until", "choice": "loglikelihood", "multi_round": "generate_until_multi_round"}
Log = Callable[[str], None]


@dataclass
class PlanUnit:
    """One task in one domain, as the evaluator plans it: the task, its items (after the limit, the
    undecodable ones left out and listed), and each item's resume key (task fingerprint, domain, item id,
    item hash)."""

    domain: str
    folder: Path
    name: str
    task: Any
    items: list[TaskItem]
    keys: dict[str, tuple[str, str, str, str]]
    task_fp: str
    undecodable: list[dict[str, str]] = field(default_factory=list)


class DevCVEvaluator:
    """``evaluate(adapter, tasks, data_dir, out_dir, **options)``; options are described there."""

    name = "devcv"

    def __init__(self, flush_every: int = 32, bootstrap_resamples: int = 200):
        if flush_every < 1 or bootstrap_resamples < 0:
            raise ConfigError("evaluator 'devcv': flush_every >= 1 and bootstrap_resamples >= 0 are required")
        self.flush_every, self.bootstrap_resamples = flush_every, bootstrap_resamples

    def evaluate(self, adapter: Any, tasks: Sequence[str] | str, data_dir: str | os.PathLike,
                 out_dir: str | os.PathLike, *, mode: str = "generate", split: str = "test",
                 domains: Sequence[str] | None = None, limit: int | Mapping[str, int] | None = None, seed: int = 0,
                 with_blind: bool = False, compare_human: str | os.PathLike | None = None,
                 config: Mapping[str, Any] | None = None, log: Log = print) -> dict[str, Any]:
        """Evaluate and write ``OUT/<domain>/<date>_results.json`` + ``<date>_samples_<task>.jsonl`` and
        ``OUT/<date>_summary.json``; returns the summary (every domain's results, overall scores, files).

        ``adapter``: a built eval adapter or a spec (``"random"``, ``dict(type="babyvlm", path=...)``);
        ``tasks``: registered task names or ``"all"``; ``mode``: ``generate`` or ``loglikelihood`` (what
        each task asks for; Looking While Listening is always scored by likelihood); ``limit``: the first
        N items per task (or ``{task: N}`` for some tasks only, ``"*"`` for the rest: e.g. fewer of the
        slow multi-round Memory); ``seed``: the bootstrap's; ``config``: extra run settings recorded in the files.
        """
        if mode not in MODES:
            raise ConfigError(f"mode must be one of {', '.join(MODES)}, got {mode!r}")
        _check_limit(limit)
        _task_names(tasks)  # a bad --tasks fails before the out folder is made
        adapter = registry.build("eval_adapter", adapter) if is_spec(adapter) else adapter
        processes = Processes()
        out = Path(out_dir)
        lock = self._lock(out, processes)
        try:
            summary = self._run(adapter, _task_names(tasks), Path(data_dir), out, processes, mode=mode, split=split,
                                domains=domains, limit=limit, seed=seed, config=dict(config or {}), log=log)
            if with_blind:
                blind = registry.build("eval_adapter", dict(type="blind", adapter=adapter))
                at_test = self._run(blind, _task_names(tasks), Path(data_dir), out / results_files.BLIND_AT_TEST,
                                    processes, mode=mode, split=split, domains=domains, limit=limit, seed=seed,
                                    config=dict(config or {}), log=log)
                if processes.is_main:
                    results_files.write_all(at_test, out / results_files.BLIND_AT_TEST)
                    results_files.attach_blind(summary, at_test)
            if compare_human is not None and processes.is_main:
                results_files.attach_human(summary, compare_with_humans(summary, compare_human))
            if processes.is_main:
                results_files.write_all(summary, out)
            return processes.share(summary if processes.is_main else None)
        finally:
            if lock is not None:
                lock.release()
            processes.close()

    @staticmethod
    def _lock(out: Path, processes: Processes) -> WriterLock | None:
        """One evaluation per out folder: rank 0 holds the lock; every rank stops if it cannot."""
        lock, error = None, None
        if processes.is_main:
            try:
                lock = WriterLock(out, "evaluating").acquire()
            except BabyVLMError as exc:
                error = str(exc)
        errors = processes.gather_errors(error)
        if errors:
            raise BabyVLMError(errors[0])
        return lock

    # ---- one pass (an adapter over every task and domain) ---------------------------------------------
    def _run(self, adapter: Any, task_names: list[str] | None, data_dir: Path, out: Path, processes: Processes,
             **settings: Any) -> dict[str, Any]:
        started = time.time()
        progress = ProgressLog(out, processes.rank)
        skipped = SkipReport()
        progress.repair()  # before reading: a torn line of our own file is cut, never glued onto
        skipped.merge(progress.report)
        done = progress.read_all()
        skipped.merge(progress.report)
        adapter_fp = adapter.fingerprint()
        described = adapter_settings(adapter)
        if described:
            settings["log"](f"{getattr(adapter, 'name', type(adapter).__name__)}: "
                            + ", ".join(f"{k} {v}" for k, v in described.items() if not isinstance(v, dict)))
        plan = self._plan(task_names, data_dir, settings["split"], settings["domains"], settings["limit"],
                          settings["mode"], skipped, settings["log"])
        if not plan:
            raise DataError(f"{data_dir}: no items for the requested tasks (split {settings['split']!r}) in any "
                            f"domain folder; build some with `babyvlm tasks build` or check --tasks/--domain")
        error = None
        name = getattr(adapter, "name", type(adapter).__name__)
        try:
            with progress_bar(sum(len(unit.items) for unit in plan), f"evaluate {name}", unit="item") as bar:
                for unit in plan:
                    self._answer(adapter, adapter_fp, unit, done, progress, processes, settings["mode"],
                                 settings["log"], bar)
        except BabyVLMError as exc:  # every rank must reach the barrier, or the others wait forever
            error = f"rank {processes.rank}: {exc}" if processes.world > 1 else str(exc)
        errors = processes.gather_errors(error)
        if errors:
            raise BabyVLMError(errors[0])
        processes.barrier()
        if not processes.is_main:
            return {}
        done = progress.read_all()
        skipped.merge(progress.report)
        return self._summarise(plan, done, adapter, adapter_fp, data_dir, processes, started, skipped, settings)

    def _plan(self, task_names: list[str] | None, data_dir: Path, split: str, domains: Sequence[str] | None,
              limit: int | None, mode: str, skipped: SkipReport, log: Log) -> list[PlanUnit]:
        names = task_names if task_names is not None else registry.names("task")
        tasks = {name: registry.build("task", name) for name in names}
        plan = []
        for domain, folder in domain_folders(data_dir, domains):
            for name, task in tasks.items():
                cut = limit.get(name, limit.get("*")) if isinstance(limit, Mapping) else limit
                checked = self._checked_items(task, folder, split, cut, f"{domain}/{name}", skipped, log)
                if checked is None:
                    skipped.skip("task_without_items_in_domain", f"{domain}/{name}")
                    continue
                items, undecodable = checked
                if not items:
                    continue
                task_fp = task_fingerprint(task, mode, split)
                keys = {item.item_id: (task_fp, domain, item.item_id, item_hash(item)) for item in items}
                if len(keys) != len(items):
                    raise DataError(f"{folder}: task {name} has duplicate item ids; every item needs its own id")
                plan.append(PlanUnit(domain=domain, folder=folder, name=name, task=task, items=items, keys=keys,
                                     task_fp=task_fp, undecodable=undecodable))
                log(f"{domain}/{name}: {len(items)} items")
        return plan

    def _checked_items(self, task: Any, folder: Path, split: str, cut: int | None, where: str, skipped: SkipReport,
                       log: Log) -> tuple[list[TaskItem], list[dict[str, str]]] | None:
        """The first ``cut`` items whose images decode (``decodable_items``), None without items. Read and
        decoded once per evaluator while the item file stays as it is: a study's model, blind twin and
        baselines are evaluated on the same items; the skips are reported again on every call."""
        item_path = getattr(task, "item_path", None)
        key = None
        if callable(item_path):
            try:
                stat = Path(item_path(folder, split)).stat()
                key = (str(folder), where, split, cut, stat.st_mtime_ns, stat.st_size)
            except OSError:  # no file: load_items says so below
                key = None
        cache = self.__dict__.setdefault("_checked_cache", {})
        if key is None or key not in cache:
            items = load_items(task, folder, split)
            if items is None:
                return None
            report, lines = SkipReport(), []
            checked = decodable_items(items[:cut] if cut else items, where, report, lines.append)
            if key is not None:
                cache[key] = (checked, report, lines)
        else:
            checked, report, lines = cache[key]
        skipped.merge(report)
        for line in lines:
            log(line)
        return checked

    def _answer(self, adapter: Any, adapter_fp: str, unit: PlanUnit, done: Mapping[Any, Any],
                progress: ProgressLog, processes: Processes, mode: str, log: Log, bar: progress_bar) -> None:
        items: list[TaskItem] = unit.items
        show_items(adapter, unit.name, items, task=unit.task, mode=mode)
        todo = [item for item in items if (*unit.keys[item.item_id], adapter_fp) not in done]
        mine = processes.shard(todo)
        if len(todo) < len(items) and processes.is_main:
            log(f"{unit.domain}/{unit.name}: resuming, {len(items) - len(todo)} of {len(items)} items done")
        bar.update(len(items) - len(mine))  # answered before, or by another process
        for start in range(0, len(mine), self.flush_every):
            chunk = mine[start:start + self.flush_every]
            predictions = answer_items(adapter, unit.task, chunk, mode)
            bar.update(len(chunk))
            progress.append(progress_record(unit, item, prediction, adapter_fp)
                            for item, prediction in zip(chunk, predictions, strict=True))

    # ---- merging and metrics ---------------------------------------------------------------------------
    def _summarise(self, plan: list[PlanUnit], done: Mapping[Any, Any], adapter: Any, adapter_fp: str,
                   data_dir: Path, processes: Processes, started: float, skipped: SkipReport,
                   settings: Mapping[str, Any]) -> dict[str, Any]:
        domains: dict[str, dict[str, Any]] = {}
        for unit in plan:
            records = [done.get((*unit.keys[item.item_id], adapter_fp)) for item in unit.items]
            missing = [item.item_id for item, record in zip(unit.items, records, strict=True) if record is None]
            if missing:  # a rank's file was lost between answering and merging
                raise DataError(f"{unit.domain}/{unit.name}: {len(missing)} item(s) have no result after every "
                                f"process finished (e.g. {missing[0]}); run the same command again to resume")
            domain = domains.setdefault(unit.domain, {"folder": str(unit.folder), "tasks": {}})
            domain["tasks"][unit.name] = self._task_result(unit, records, settings["seed"])
        for domain in domains.values():
            primaries = {name: task["metrics"].get(task["primary_metric"]) for name, task in domain["tasks"].items()}
            domain["overall"] = overall(primaries)
        return {"adapter": getattr(adapter, "name", type(adapter).__name__), "adapter_fingerprint": adapter_fp,
                "adapter_settings": adapter_settings(adapter), "data_dir": str(data_dir), "mode": settings["mode"], "split": settings["split"],
                "limit": settings["limit"], "seed": settings["seed"], "world_size": processes.world,
                "config": dict(settings["config"]), "domains": domains, "skipped": skipped.to_dict(),
                "seconds": time.time() - started}

    def _task_result(self, unit: PlanUnit, records: list[dict[str, Any]], seed: int) -> dict[str, Any]:
        task, items = unit.task, unit.items
        predictions = [prediction_from(record["prediction"]) for record in records]
        metrics = {metric: plain_number(value) for metric, value in task.aggregate(items, predictions).items()}
        clusters, unit_kind = cluster_items(items)
        spread = bootstrap(task.aggregate, items, predictions, self.bootstrap_resamples, seed, clusters)
        samples = [dict(record["sample"], doc_id=number) for number, record in enumerate(records)]
        return {"task_fingerprint": unit.task_fp, "primary_metric": task.primary_metric,
                "metrics": metrics, "spread": spread, "chance": chance_of(task, items),
                "ci_clusters": {"by": unit_kind, "count": len(set(clusters))},
                "higher_is_better": dict.fromkeys(metrics, True), "n": len(items),
                "ties": sum(1 for p in predictions if p.extras.get("tied")),
                "unparsed": sum(1 for p in predictions if p.parsed is None), "samples": samples,
                "skipped_items": unit.undecodable}


# ---- items, requests, predictions --------------------------------------------------------------------
def adapter_settings(adapter: Any) -> dict[str, Any]:
    """What an adapter says about its settings (``describe()``, an optional extension: e.g. the babyvlm
    adapter's template and where it came from), with a wrapper's inner adapter under ``inner``."""
    describe = getattr(adapter, "describe", None)
    settings = dict(describe()) if callable(describe) else {}
    inner = getattr(adapter, "inner", None)
    if inner is not None:
        settings["inner"] = {"adapter": getattr(inner, "name", type(inner).__name__), **adapter_settings(inner)}
    return settings


def answer_items(adapter: Any, task: Any, items: Sequence[TaskItem], mode: str) -> list[Prediction]:
    """Each item's requests answered by the adapter (one call per request kind) and scored by the task."""
    per_item: list[list[Request]] = [list(task.requests(item, mode)) for item in items]
    by_kind: dict[str, list[tuple[int, int]]] = {}
    for row, requests in enumerate(per_item):
        for position, request in enumerate(requests):
            if request.kind not in ADAPTER_CALLS:
                raise ConfigError(f"task {task.name}: item {request.item_id} asks for a {request.kind!r} request; "
                                  f"known kinds: {', '.join(ADAPTER_CALLS)}")
            by_kind.setdefault(request.kind, []).append((row, position))
    responses: list[list[Any]] = [[None] * len(requests) for requests in per_item]
    for kind, places in by_kind.items():
        answers = getattr(adapter, ADAPTER_CALLS[kind])([per_item[row][position] for row, position in places])
        if len(answers) != len(places):
            raise ConfigError(f"eval adapter {getattr(adapter, 'name', '?')}: {ADAPTER_CALLS[kind]} returned "
                              f"{len(answers)} answers for {len(places)} requests")
        for (row, position), answer in zip(places, answers, strict=True):
            responses[row][position] = answer
    return [task.score(item, answer, mode) for item, answer in zip(items, responses, strict=True)]


def decodable_items(items: list[TaskItem], where: str, skipped: SkipReport,
                    log: Log) -> tuple[list[TaskItem], list[dict[str, str]]]:
    """The items whose every image decodes (``media.decode_image``: corrupt files and decompression bombs
    refused); each other one is skipped, counted and named (task, item, file) so the run goes on."""
    from babyvlm.media import decode_image

    kept, undecodable = [], []
    for item in items:
        paths = item.extras.get("image_paths") or []
        for number, data in enumerate(item.images):
            file = paths[number] if number < len(paths) else f"image {number + 1}"
            try:
                decode_image(data, f"{where} item {item.item_id!r}: {file}")
            except DataError as exc:
                undecodable.append({"item_id": item.item_id, "file": file, "error": str(exc)})
                skipped.skip("undecodable_image", str(exc))
                log(f"skipped: {exc}")
                break
        else:
            kept.append(item)
    return kept, undecodable


def progress_record(unit: PlanUnit, item: TaskItem, prediction: Prediction, adapter_fp: str) -> dict[str, Any]:
    return {"key": [*unit.keys[item.item_id], adapter_fp], "task": unit.name, "domain": unit.domain,
            "item_id": item.item_id, "prediction": asdict(prediction), "sample": sample_of(item, prediction)}


def sample_of(item: TaskItem, prediction: Prediction) -> dict[str, Any]:
    """The per-item line of ``<date>_samples_<task>.jsonl`` (lmms-eval's fields plus babyvlm's)."""
    sample = {"item_id": item.item_id, "target": item.answer, "response": prediction.text,
              "filtered_resps": [prediction.parsed], "parsed": prediction.parsed, "correct": prediction.correct,
              "tied": prediction.extras.get("tied") or []}
    if prediction.scores:
        sample["option_losses"] = dict(prediction.scores)
    extras = {k: v for k, v in prediction.extras.items() if k != "tied"}
    if extras:
        sample["extras"] = extras
    return sample


def prediction_from(data: Mapping[str, Any]) -> Prediction:
    return Prediction(**{key: data[key] for key in ("item_id", "task", "text", "parsed", "correct", "scores", "extras")
                         if key in data})


def _check_limit(limit: Any) -> None:
    """``limit``: None, a positive whole number (items per task), or ``{task: number}`` (those tasks only)."""
    values = list(limit.values()) if isinstance(limit, Mapping) else [limit]
    for value in values:
        if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 1):
            raise ConfigError(f"limit must be a positive integer or {{task: positive integer}}, got {limit!r}")


def plain_number(value: Any) -> Any:
    """numpy scalars -> floats; a metric a task reports as unavailable (None, or a reason) stays as it is."""
    if hasattr(value, "item") and not isinstance(value, (str, bytes)):
        value = value.item()
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return value
    return float(value)


def chance_of(task: Any, items: Sequence[TaskItem]) -> float | None:
    """The task's chance level for these items when it has one per items (``ItemChance``), else its fixed one."""
    value = task.chance_for_items(items) if isinstance(task, ItemChance) else task.chance()
    return None if value is None else float(value)


def item_hash(item: TaskItem) -> str:
    digest = hashlib.sha256()
    digest.update(json.dumps([item.conversations, item.answer, item.choices, item.extras], sort_keys=True,
                             default=str).encode())
    for image in item.images:
        digest.update(hashlib.sha256(image).digest())
    return digest.hexdigest()[:24]


def task_fingerprint(task: Any, mode: str, split: str) -> str:
    """The task's own ``fingerprint()`` when it has one, else its name, options and the source of every
    class it is made of (so a change in its parsing or scoring code is a new task), plus mode and split."""
    own = getattr(task, "fingerprint", None)  # optional: the Task contract does not require one
    digest = hashlib.sha256(f"{task.name}|{mode}|{split}".encode())
    if callable(own):
        digest.update(str(own()).encode())
    else:
        options = getattr(task, "options", None)
        digest.update(json.dumps(options() if callable(options) else {}, sort_keys=True, default=str).encode())
        for klass in type(task).__mro__:
            module = sys.modules.get(klass.__module__)
            path = getattr(module, "__file__", None)
            if path and klass is not object and Path(path).is_file():
                digest.update(Path(path).read_bytes())
    return digest.hexdigest()[:16]


def load_items(task: Any, folder: Path, split: str) -> list[TaskItem] | None:
    """The task's items in ``folder``, or None when the folder has no file for it (its ``item_path`` when
    the task tells, else an empty load)."""
    item_path = getattr(task, "item_path", None)  # optional: DevCV tasks say where their file is
    if callable(item_path):
        path = Path(item_path(folder, split))
        if not path.is_file():
            return None
    items = list(task.load(folder, split))
    return items or None


def domain_folders(data_dir: Path, wanted: Sequence[str] | None) -> list[tuple[str, Path]]:
    """``(domain, folder)`` pairs: each sub-folder holding item files, or ``data_dir`` itself when it holds
    them directly (a released flat folder). ``wanted`` keeps only the named domains."""
    if not data_dir.is_dir():
        raise DataError(f"{data_dir}: not a folder of task items")
    found = [(sub.name, sub) for sub in sorted(data_dir.iterdir()) if sub.is_dir() and _holds_items(sub)]
    if _holds_items(data_dir):
        found.insert(0, (data_dir.resolve().name, data_dir))
    if wanted:
        names = {name for name, _ in found}
        unknown = [name for name in wanted if name not in names]
        if unknown:
            raise ConfigError(f"--domain {', '.join(unknown)}: not found in {data_dir} "
                              f"(domains there: {', '.join(sorted(names)) or 'none'})")
        found = [(name, folder) for name, folder in found if name in wanted]
    return found


# files beside the item files that hold none: a task build's manifest, a run's session split of the recordings
NOT_ITEM_FILES = ("manifest.json", TASK_SPLITS_FILE)


def _holds_items(folder: Path) -> bool:
    return any(path.suffix in (".json", ".csv") and path.name not in NOT_ITEM_FILES for path in folder.iterdir()
               if path.is_file())


def _task_names(tasks: Sequence[str] | str) -> list[str] | None:
    if isinstance(tasks, str):
        tasks = [name.strip() for name in tasks.split(",") if name.strip()]
    names = list(tasks)
    if not names:  # an empty --tasks is a mistake, not a request for every task
        raise ConfigError("--tasks: no task named; give task names (comma-separated) or 'all'")
    if names == ["all"]:
        return None
    known = set(registry.names("task"))
    for name in names:
        if name not in known:
            registry.get("task", name)  # raises the registry's unknown-name error, with a did-you-mean
    return names


def compare_with_humans(summary: Mapping[str, Any], human_dir: str | os.PathLike) -> dict[str, Any]:
    """Per domain, ``babyvlm.plugins.study.alignment.compare_with_humans`` over the samples."""
    try:
        from babyvlm.plugins.study.alignment import compare_with_humans as compare
    except ImportError as exc:
        raise ConfigError(f"--compare-human needs babyvlm.plugins.study.alignment, which cannot be imported "
                          f"({exc}); install or enable the study plugin") from exc
    return {domain: compare({name: task["samples"] for name, task in data["tasks"].items()}, human_dir)
            for domain, data in summary["domains"].items()}

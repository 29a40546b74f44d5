"""lmms-eval interop: task export (``babyvlm tasks export --format lmms-eval``) and the model bridge.

``export_tasks(data_dir, out_dir, mode=...)`` writes, per domain, ``OUT/<domain>/<task>.yaml`` +
``<task>.jsonl``, ``images/`` and a ``utils.py`` of hooks. Run ``lmms-eval eval --model babyvlm
--model_args pretrained=CKPT --tasks baby_count --include_path OUT/<domain> --log_samples --output_path
RESULTS --verbosity DEBUG`` (with ``HF_HUB_OFFLINE=1 HF_DATASETS_OFFLINE=1``). ``data_files`` are
absolute (lmms-eval 0.7.3 resolves relative ones against the current folder).

**One doc is one whole item**, so lmms-eval's ``--limit N`` takes the first N items and never cuts an
item's requests apart (a Memory item's 15 rounds, a Looking-While-Listening item's two images). A doc
holds a few flat fields and ``babyvlm``: the item as JSON text (its requests with their prompts,
continuations, rounds and image paths, and the item itself), so lmms-eval's dataset loader never has to
reconcile nested shapes across items. Output types: ``generate_until`` / ``generate_until_multi_round``
(one request per item) or ``multiple_choice``, whose choices are every option of every request of the
item (``choice_map[i]`` = request, option; options of single-request items keep their own text).
``process_results`` regroups one doc's answers into the item's responses, and each metric's aggregation
lets the babyvlm task ``score`` and ``aggregate`` them: the metrics are exactly ``babyvlm eval``'s.

``LmmsBridge`` is the model side without lmms-eval imported (testable here): it turns lmms-eval
``Instance``s into babyvlm ``Request``s (from the doc the export wrote, so the prompts, continuations
and image bytes are exactly the ones ``babyvlm eval`` uses) and answers them with any babyvlm adapter;
one request's options are scored together (shared prefix).
``lmms_model.BabyVLMLmms`` mixes it into lmms-eval's ``lmms``; ``lmms_manifest`` is the
``lmms_eval.models`` entry point (a ``ModelManifest``).
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from babyvlm import registry
from babyvlm.core.constants import EVALUATION_MODES
from babyvlm.core.errors import ConfigError
from babyvlm.core.io import atomic_write_bytes, atomic_write_text
from babyvlm.core.records import Request, TaskItem

OUTPUT_TYPES = {"generate": "generate_until", "choice": "multiple_choice", "multi_round": "generate_until_multi_round"}
EXPORT_MODES = EVALUATION_MODES
EXPORT_SCHEMA = 2  # 1: one doc per request (before whole-item docs); refused by this bridge
UTILS_TEMPLATE = Path(__file__).with_name("lmms_utils.py")


# ---- task export ---------------------------------------------------------------------------------------
def export_tasks(data_dir: str | os.PathLike, out_dir: str | os.PathLike, tasks: Sequence[str] | str = "all",
                 split: str = "test", domains: Sequence[str] | None = None, mode: str = "generate") -> list[Path]:
    """Write lmms-eval task folders for every domain and task with items; returns the YAML files."""
    from babyvlm.plugins.evaluation.engine import _task_names, domain_folders, load_items

    if mode not in EXPORT_MODES:
        raise ConfigError(f"lmms-eval export: mode must be one of {', '.join(EXPORT_MODES)}, got {mode!r}")
    names = _task_names(tasks) or registry.names("task")
    written = []
    for domain, folder in domain_folders(Path(data_dir), domains):
        target = Path(out_dir) / domain
        for name in names:
            task = registry.build("task", name)
            items = load_items(task, folder, split)
            if items:
                written.append(export_task(task, items, target, mode))
        if written:
            atomic_write_text(target / "utils.py", UTILS_TEMPLATE.read_text(encoding="utf-8"))
    if not written:
        raise ConfigError(f"{data_dir}: no task items to export (split {split!r})")
    return written


def export_task(task: Any, items: Sequence[TaskItem], target: Path, mode: str) -> Path:
    docs = [item_doc(task, item, target, mode) for item in items]
    kinds = {doc["kind"] for doc in docs}
    if len(kinds) != 1:
        raise ConfigError(f"task {task.name}: its items ask for several request kinds ({', '.join(sorted(kinds))}) "
                          f"in mode {mode!r}; one lmms-eval task has one output type")
    data_file = target / f"{task.name}.jsonl"
    atomic_write_text(data_file, "".join(json.dumps(doc, sort_keys=True) + "\n" for doc in docs))
    yaml_path = target / f"{task.name}.yaml"
    atomic_write_text(yaml_path, task_yaml(task, data_file.resolve(), OUTPUT_TYPES[kinds.pop()]))
    return yaml_path


def item_doc(task: Any, item: TaskItem, target: Path, mode: str) -> dict[str, Any]:
    """One item as one lmms-eval doc (see the module docstring)."""
    requests = task.requests(item, mode)
    kinds = {request.kind for request in requests}
    if len(kinds) != 1:
        raise ConfigError(f"task {task.name} item {item.item_id}: its requests are of several kinds "
                          f"({', '.join(sorted(kinds))}); one lmms-eval doc has one output type")
    kind = kinds.pop()
    if kind != "choice" and len(requests) != 1:
        raise ConfigError(f"task {task.name} item {item.item_id}: {len(requests)} {kind} requests; an lmms-eval "
                          f"doc answers one {OUTPUT_TYPES[kind]} request (only choice requests can share a doc)")
    choice_map = [[r, o] for r, request in enumerate(requests) for o in range(len(request.continuations))]
    whole = {"mode": mode, "kind": kind, "item_id": item.item_id, "choice_map": choice_map,
             "requests": [dict(item_id=request.item_id, conversations=request.conversations,
                               continuations=request.continuations, rounds=request.rounds,
                               max_new_tokens=request.max_new_tokens,
                               images=[_save_image(target, b) for b in request.images]) for request in requests],
             "item": dict(id=item.item_id, answer=item.answer, choices=list(item.choices), extras=item.extras,
                          conversations=item.conversations, images=[_save_image(target, b) for b in item.images])}
    return {"doc_key": item.item_id, "task": task.name, "kind": kind, "target": str(item.answer),
            "babyvlm_export": EXPORT_SCHEMA, "babyvlm": json.dumps(whole, sort_keys=True)}


def task_yaml(task: Any, data_file: Path, output_type: str) -> str:
    lines = [f"task: {task.name}", "dataset_path: json", "dataset_kwargs:",
             f"  data_files: {json.dumps(str(data_file))}", "test_split: train", f"output_type: {output_type}",
             "doc_to_visual: !function utils.doc_to_visual", "doc_to_text: !function utils.doc_to_text",
             "doc_to_target: !function utils.doc_to_target", "process_results: !function utils.process_results"]
    if output_type == "multiple_choice":
        lines += ["doc_to_choice: !function utils.doc_to_choice", 'target_delimiter: ""']
    if output_type.startswith("generate_until"):
        lines += ["generation_kwargs:", "  do_sample: false", "  temperature: 0", "  max_new_tokens: 1024"]
    lines.append("metric_list:")
    for metric in task.metrics:
        lines += [f"  - metric: {metric}", f"    aggregation: !function utils.aggregate_{metric}",
                  "    higher_is_better: true"]
    lines += ["metadata:", "  version: 0.0", f"  babyvlm_primary_metric: {task.primary_metric}"]
    return "\n".join(lines) + "\n"


def _save_image(target: Path, data: bytes) -> str:
    name = f"images/{hashlib.sha256(data).hexdigest()[:32]}.jpg"
    path = target / name
    if not path.is_file():
        atomic_write_bytes(path, data)
    return name


def whole_item(doc: Mapping[str, Any], where: str = "lmms-eval doc") -> dict[str, Any] | None:
    """The item a babyvlm-exported doc carries (None for other docs); an older export is refused."""
    if "doc_key" not in doc:
        return None
    if doc.get("babyvlm_export") != EXPORT_SCHEMA:
        raise ConfigError(f"{where} {doc.get('doc_key')!r}: exported by an older babyvlm (one doc per request); "
                          f"export the tasks again with `babyvlm tasks export`")
    return json.loads(doc["babyvlm"])


# ---- the model side ------------------------------------------------------------------------------------
class LmmsBridge:
    """lmms-eval's three calls answered by a babyvlm adapter (see the module docstring)."""

    def setup_bridge(self, pretrained: str, batch_size: int = 16, device: str = "cpu", **options: Any) -> None:
        from babyvlm.plugins.evaluation.commands import resolve_adapter

        self.adapter = resolve_adapter(str(pretrained), {"batch_size": int(batch_size), "device": device, **options})

    def _doc(self, task: str, split: str, doc_id: int) -> Mapping[str, Any]:
        return self.task_dict[task][split][doc_id]

    def _requests(self, instances: Sequence[Any], id_at: int) -> list[tuple[tuple, Request, int | None]]:
        """Per instance: a key naming its babyvlm request (task, split, doc, request number), the request
        (for choices: request ``choice_map[idx][0]`` of the item) and the instance's option index within
        it (None for generation)."""
        out = []
        for instance in instances:
            args = instance.args
            task, split, doc_id = args[-2], args[-1], args[id_at]
            doc = self._doc(task, split, doc_id)
            whole = whole_item(doc, f"{task} doc")
            visuals = args[2](doc) if callable(args[2]) else []
            if whole is None:  # a task not exported by babyvlm: the prompt lmms-eval built, as one request
                request = Request("generate", str(doc.get("id", doc_id)), "lmms", _visual_bytes(visuals or []),
                                  [{"from": "human", "value": args[0]}])
                out.append(((task, split, doc_id, 0), request, None))
                continue
            number, option = whole["choice_map"][instance.idx] if whole["kind"] == "choice" else (0, None)
            out.append(((task, split, doc_id, number), _exported_request(task, whole, number, _root_of(visuals)),
                        option))
        return out

    def generate_until(self, requests: Sequence[Any]) -> list[str]:
        return self.adapter.generate_until([request for _, request, _ in self._requests(requests, id_at=3)])

    def generate_until_multi_round(self, requests: Sequence[Any]) -> list[str]:
        built = [request for _, request, _ in self._requests(requests, id_at=4)]
        return [json.dumps(answers) for answers in self.adapter.generate_until_multi_round(built)]

    def loglikelihood(self, requests: Sequence[Any]) -> list[Any]:
        """One (loss, is_greedy) per instance; a request's options are scored together from one prefix."""
        found = self._requests(requests, id_at=3)
        groups: dict[tuple, Request] = {}
        for key, request, _ in found:
            groups.setdefault(key, request)
        order = list(groups)
        scored = dict(zip(order, self.adapter.loglikelihood([groups[key] for key in order]), strict=True))
        results = []
        for (key, request, option), instance in zip(found, requests, strict=True):
            if option is None:
                raise ConfigError(f"lmms-eval asked for the likelihood of {instance.args[1]!r} in {request.task} "
                                  f"item {request.item_id}, which was not exported as a choice task")
            loss, greedy = scored[key][option]
            results.append(wrap_loglikelihood(float(loss), bool(greedy)))
        return results


def _exported_request(task: str, whole: Mapping[str, Any], number: int, root: Path | None) -> Request:
    """Request ``number`` of an exported item, its images read from the export folder."""
    spec = whole["requests"][number]
    if root is None and spec["images"]:
        raise ConfigError(f"{task} item {whole['item_id']}: doc_to_visual gave no image files to find the "
                          f"export folder by")
    return Request(whole["kind"], spec["item_id"], task, [_image_bytes(root, path) for path in spec["images"]],
                   list(spec["conversations"]), list(spec["continuations"]), list(spec["rounds"]),
                   int(spec["max_new_tokens"]))


def wrap_loglikelihood(loss: float, greedy: bool) -> Any:
    """lmms-eval 0.7.3 needs ``GenerationResult(text=(loss, is_greedy))`` (a bare tuple is stringified)."""
    try:
        from lmms_eval.api.instance import GenerationResult  # type: ignore[import-not-found]
    except ImportError:
        return (loss, greedy)
    return GenerationResult(text=(loss, greedy))


def lmms_manifest() -> Any:
    """The ``lmms_eval.models`` entry point: ``babyvlm = "babyvlm.plugins.evaluation.lmms:lmms_manifest"``."""
    from lmms_eval.models.registry_v2 import ModelManifest  # type: ignore[import-not-found]

    return ModelManifest(model_id="babyvlm", simple_class_path="babyvlm.plugins.evaluation.lmms_model.BabyVLMLmms")


def _root_of(visuals: Sequence[Any] | None) -> Path | None:
    """The export folder, from the first visual's file name (utils.doc_to_visual opens files lazily)."""
    for visual in visuals or []:
        name = getattr(visual, "filename", "")
        if name:
            return Path(name).resolve().parent.parent
    return None


def _image_bytes(root: Path, relative: str) -> bytes:
    from babyvlm.core.io import path_inside

    return path_inside(root, relative, f"{root} doc image").read_bytes()


def _visual_bytes(visuals: Sequence[Any]) -> list[bytes]:
    import io

    out = []
    for visual in visuals:
        name = getattr(visual, "filename", "")
        if name and Path(name).is_file():
            out.append(Path(name).read_bytes())
            continue
        buffer = io.BytesIO()
        visual.convert("RGB").save(buffer, format="JPEG", quality=95)
        out.append(buffer.getvalue())
    return out

"""lmms-eval interop: task export (``babyvlm tasks export --format lmms-eval``) and the model bridge.

``export_tasks(data_dir, out_dir)`` writes, per domain, ``OUT/<domain>/<task>.yaml`` + ``<task>.jsonl``
(one doc per request of each item, with the item itself), ``images/`` and a ``utils.py`` of hooks. Run
``lmms-eval eval --model babyvlm --model_args pretrained=CKPT --tasks baby_count --include_path
OUT/<domain> --log_samples --output_path RESULTS --verbosity DEBUG`` (with ``HF_HUB_OFFLINE=1
HF_DATASETS_OFFLINE=1``). ``data_files`` are absolute (lmms-eval 0.7.3 resolves relative ones against the
current folder). ``process_results`` hands each doc's raw response on, and each metric's aggregation
regroups them per item and calls the babyvlm task's own ``score`` and ``aggregate``: the metrics are
exactly ``babyvlm eval``'s.

``LmmsBridge`` is the model side without lmms-eval imported (testable here): it turns lmms-eval
``Instance.args`` into babyvlm ``Request``s (from the doc the export wrote, so the prompts, continuations
and image bytes are exactly the ones ``babyvlm eval`` uses) and answers them with any babyvlm adapter;
one item's options arrive as separate instances and are scored together (shared prefix).
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
from babyvlm.core.errors import ConfigError
from babyvlm.core.io import atomic_write_bytes, atomic_write_text
from babyvlm.core.records import Request, TaskItem

OUTPUT_TYPES = {"generate": "generate_until", "choice": "multiple_choice", "multi_round": "generate_until_multi_round"}
UTILS_TEMPLATE = Path(__file__).with_name("lmms_utils.py")


# ---- task export ---------------------------------------------------------------------------------------
def export_tasks(data_dir: str | os.PathLike, out_dir: str | os.PathLike, tasks: Sequence[str] | str = "all",
                 split: str = "test", domains: Sequence[str] | None = None, mode: str = "generate") -> list[Path]:
    """Write lmms-eval task folders for every domain and task with items; returns the YAML files."""
    from babyvlm.plugins.evaluation.engine import _task_names, domain_folders, load_items

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
    docs = []
    for item in items:
        requests = task.requests(item, mode)
        item_record = dict(id=item.item_id, answer=item.answer, choices=list(item.choices), extras=item.extras,
                           conversations=item.conversations, images=[_save_image(target, b) for b in item.images])
        for index, request in enumerate(requests):
            docs.append(dict(doc_key=f"{item.item_id}#{index}", task=task.name, mode=mode, item_id=item.item_id,
                             request_index=index, requests_per_item=len(requests), kind=request.kind,
                             conversations=request.conversations, continuations=request.continuations,
                             rounds=request.rounds, max_new_tokens=request.max_new_tokens,
                             images=[_save_image(target, b) for b in request.images], item=item_record,
                             target=item.answer))
    kinds = {doc["kind"] for doc in docs}
    if len(kinds) != 1:
        raise ConfigError(f"task {task.name}: its items ask for several request kinds ({', '.join(sorted(kinds))}) "
                          f"in mode {mode!r}; one lmms-eval task has one output type")
    data_file = target / f"{task.name}.jsonl"
    atomic_write_text(data_file, "".join(json.dumps(doc, sort_keys=True) + "\n" for doc in docs))
    yaml_path = target / f"{task.name}.yaml"
    atomic_write_text(yaml_path, task_yaml(task, data_file.resolve(), OUTPUT_TYPES[kinds.pop()]))
    return yaml_path


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


# ---- the model side ------------------------------------------------------------------------------------
class LmmsBridge:
    """lmms-eval's three calls answered by a babyvlm adapter (see the module docstring)."""

    def setup_bridge(self, pretrained: str, batch_size: int = 16, device: str = "cpu", **options: Any) -> None:
        from babyvlm.plugins.evaluation.commands import resolve_adapter

        self.adapter = resolve_adapter(str(pretrained), {"batch_size": int(batch_size), "device": device, **options})

    def _doc(self, task: str, split: str, doc_id: int) -> Mapping[str, Any]:
        return self.task_dict[task][split][doc_id]

    def _request(self, doc: Mapping[str, Any], root: Path | None, context: str, visuals: Sequence[Any]) -> Request:
        if "doc_key" in doc:  # exported by babyvlm: the very request babyvlm eval makes
            images = [_image_bytes(root, path) for path in doc["images"]] if root else _visual_bytes(visuals)
            return Request(doc["kind"], doc["item_id"], doc["task"], images, list(doc["conversations"]),
                           list(doc["continuations"]), list(doc["rounds"]), int(doc["max_new_tokens"]))
        images = _visual_bytes(visuals)
        return Request("generate", str(doc.get("id", "")), "lmms", images, [{"from": "human", "value": context}])

    def _instances(self, requests: Sequence[Any], visual_at: int, id_at: int) -> list[tuple[Request, tuple]]:
        out = []
        for instance in requests:
            args = instance.args
            task, split, doc_id = args[-2], args[-1], args[id_at]
            doc = self._doc(task, split, doc_id)
            visuals = args[visual_at](doc) if callable(args[visual_at]) else []
            out.append((self._request(doc, _root_of(visuals), args[0], visuals or []), args))
        return out

    def generate_until(self, requests: Sequence[Any]) -> list[str]:
        built = [request for request, _ in self._instances(requests, visual_at=2, id_at=3)]
        return self.adapter.generate_until(built)

    def generate_until_multi_round(self, requests: Sequence[Any]) -> list[str]:
        built = [request for request, _ in self._instances(requests, visual_at=2, id_at=4)]
        return [json.dumps(answers) for answers in self.adapter.generate_until_multi_round(built)]

    def loglikelihood(self, requests: Sequence[Any]) -> list[Any]:
        """One (loss, is_greedy) per instance; an item's options are scored together from one prefix."""
        pairs = self._instances(requests, visual_at=2, id_at=3)
        groups: dict[tuple[str, str], Request] = {}
        for request, args in pairs:
            groups.setdefault((request.task, f"{request.item_id}#{args[3]}"), request)
        order = list(groups)
        scored = dict(zip(order, self.adapter.loglikelihood([groups[key] for key in order]), strict=True))
        results = []
        for request, args in pairs:
            continuation = args[1] if isinstance(args[1], str) else args[1](self._doc(args[-2], args[-1], args[3]))
            options = groups[(request.task, f"{request.item_id}#{args[3]}")].continuations
            if continuation not in options:
                raise ConfigError(f"lmms-eval asked for continuation {continuation!r} of {request.task} item "
                                  f"{request.item_id}, which is not one of its options {options}")
            loss, greedy = scored[(request.task, f"{request.item_id}#{args[3]}")][options.index(continuation)]
            results.append(wrap_loglikelihood(float(loss), bool(greedy)))
        return results


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

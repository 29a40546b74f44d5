"""lmms-eval interop without lmms-eval: the exported YAML + utils.py, driven the way lmms-eval drives
them (docs -> hooks -> model calls with ``Instance.args`` -> process_results -> aggregation), give the
same metrics as ``babyvlm eval``; image paths in docs stay inside the export. With lmms-eval installed
(``make lmms-venv``), the real CLI runs one exported task."""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import subprocess
from pathlib import Path
from types import SimpleNamespace

import pytest
import yaml
from test_eval_fixtures import register_fakes, tiny_checkpoint, write_domain

from babyvlm import registry
from babyvlm.plugins.evaluation.lmms import LmmsBridge, export_tasks

FAKES = ["fake_letters", "fake_pairs", "fake_rounds"]


class FunctionTag(yaml.SafeLoader):
    """Reads lmms-eval's ``!function utils.name`` tags as plain strings."""


FunctionTag.add_constructor("!function", lambda loader, node: f"!function {loader.construct_scalar(node)}")


def load_utils(folder: Path):
    spec = importlib.util.spec_from_file_location(f"lmms_utils_{abs(hash(folder))}", folder / "utils.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


class FakeHarness(LmmsBridge):
    """What lmms-eval does around a model: docs per task, Instances with its argument tuples."""

    def __init__(self, adapter, docs_by_task):
        self.adapter = adapter
        self.task_dict = {task: {"test": docs} for task, docs in docs_by_task.items()}


def run_like_lmms_eval(folder: Path, task: str, harness: FakeHarness, utils) -> dict[str, float]:
    config = yaml.load((folder / f"{task}.yaml").read_text(), Loader=FunctionTag)
    docs = harness.task_dict[task]["test"]
    output_type = config["output_type"]
    per_doc = []
    if output_type == "multiple_choice":
        instances = [SimpleNamespace(args=(utils.doc_to_text(doc), config["target_delimiter"] + choice,
                                           utils.doc_to_visual, doc_id, task, "test"))
                     for doc_id, doc in enumerate(docs) for choice in utils.doc_to_choice(doc)]
        answers = harness.loglikelihood(instances)
        for doc_id in range(len(docs)):
            per_doc.append([a for a, i in zip(answers, instances, strict=True) if i.args[3] == doc_id])
    elif output_type == "generate_until":
        instances = [SimpleNamespace(args=(utils.doc_to_text(doc), {"max_new_tokens": 1024}, utils.doc_to_visual,
                                           doc_id, task, "test")) for doc_id, doc in enumerate(docs)]
        per_doc = [[answer] for answer in harness.generate_until(instances)]
    else:
        assert output_type == "generate_until_multi_round"
        instances = [SimpleNamespace(args=(utils.doc_to_text(doc), {}, utils.doc_to_visual, utils.doc_to_text,
                                           doc_id, task, "test")) for doc_id, doc in enumerate(docs)]
        per_doc = [[answer] for answer in harness.generate_until_multi_round(instances)]
    processed = [utils.process_results(doc, results) for doc, results in zip(docs, per_doc, strict=True)]
    metrics = {}
    for entry in config["metric_list"]:
        name = entry["aggregation"].split(".")[-1]
        metrics[entry["metric"]] = getattr(utils, name)([p[entry["metric"]] for p in processed])
    return metrics


@pytest.fixture
def exported(tmp_path, fresh_registry):
    register_fakes()
    write_domain(tmp_path / "data" / "saycam", n_letters=8, n_pairs=3, n_rounds=2)
    return tmp_path


@pytest.mark.parametrize("mode", ["loglikelihood", "generate"])
def test_exported_tasks_score_exactly_as_babyvlm_eval(exported, mode):
    checkpoint = tiny_checkpoint(exported / "ckpt")
    adapter = registry.build("eval_adapter", dict(type="babyvlm", path=str(checkpoint)))
    yamls = export_tasks(exported / "data", exported / "lmms", FAKES, mode=mode)
    folder = exported / "lmms" / "saycam"
    assert sorted(p.name for p in yamls) == sorted(f"{t}.yaml" for t in FAKES) and (folder / "utils.py").is_file()
    config = yaml.load((folder / "fake_letters.yaml").read_text(), Loader=FunctionTag)
    assert Path(config["dataset_kwargs"]["data_files"]).is_absolute()  # 0.7.3 resolves relative ones against cwd
    assert config["output_type"] == ("multiple_choice" if mode == "loglikelihood" else "generate_until")
    docs = {task: [json.loads(line) for line in (folder / f"{task}.jsonl").read_text().splitlines()] for task in FAKES}
    harness = FakeHarness(adapter, docs)
    utils = load_utils(folder)
    summary = registry.build("evaluator", "devcv").evaluate(adapter, FAKES, exported / "data", exported / "out",
                                                            mode=mode, log=lambda message: None)
    for task in FAKES:
        want = summary["domains"]["saycam"]["tasks"][task]["metrics"]
        assert run_like_lmms_eval(folder, task, harness, utils) == pytest.approx(want, abs=1e-12), task


def test_doc_image_paths_stay_inside_the_export(exported):
    export_tasks(exported / "data", exported / "lmms", ["fake_letters"])
    utils = load_utils(exported / "lmms" / "saycam")
    doc = json.loads((exported / "lmms" / "saycam" / "fake_letters.jsonl").read_text().splitlines()[0])
    assert len(utils.doc_to_visual(doc)) == 4
    doc["images"][0] = "../../data/saycam/images/l0_0.jpg"
    with pytest.raises(ValueError, match="leaves the task folder"):
        utils.doc_to_visual(doc)


LMMS = shutil.which("lmms-eval")


@pytest.mark.slow
@pytest.mark.skipif(LMMS is None or importlib.util.find_spec("lmms_eval") is None,
                    reason="lmms-eval is not installed in this environment; `make lmms-venv` sets up one with it")
def test_real_lmms_eval_scores_an_exported_devcv_task_as_babyvlm_eval(tmp_path, fresh_registry):
    from test_eval_devcv import released_localize
    from test_eval_fixtures import ensure_evaluation_plugin

    ensure_evaluation_plugin()
    release = released_localize(tmp_path / "release", n=8)
    export_tasks(release, tmp_path / "lmms", ["baby_localize"], mode="loglikelihood")
    env = dict(os.environ, HF_HUB_OFFLINE="1", HF_DATASETS_OFFLINE="1")
    done = subprocess.run([LMMS, "eval", "--model", "babyvlm", "--model_args", "pretrained=random", "--tasks",
                           "baby_localize", "--include_path", str(tmp_path / "lmms" / "release"), "--log_samples",
                           "--output_path", str(tmp_path / "results"), "--verbosity", "DEBUG"],
                          env=env, capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    results = json.loads(next((tmp_path / "results").rglob("*_results.json")).read_text())
    summary = registry.build("evaluator", "devcv").evaluate("random", ["baby_localize"], release, tmp_path / "out",
                                                            mode="loglikelihood", log=lambda message: None)
    want = summary["domains"]["release"]["tasks"]["baby_localize"]["metrics"]["acc"]
    assert results["results"]["baby_localize"]["acc,none"] == pytest.approx(want)

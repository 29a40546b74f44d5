"""lmms-eval interop without lmms-eval: the exported YAML + utils.py, driven the way lmms-eval drives
them (docs -> hooks -> model calls with ``Instance.args``/``idx`` -> process_results -> aggregation), give
the same metrics as ``babyvlm eval``; a doc is a whole item, so the first N docs (lmms-eval's ``--limit
N``) score exactly as babyvlm eval on the first N items; image paths in docs stay inside the export.
Inside ``.venv-lmms`` (``make lmms-venv``; CI runs it there), the real lmms-eval CLI scores exported
Localization, Memory and Looking-While-Listening items with ``--limit`` exactly as ``babyvlm eval``."""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest
import yaml
from test_eval_fixtures import register_fakes, tiny_checkpoint, write_domain

from babyvlm import registry
from babyvlm.core.errors import ConfigError
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


def run_like_lmms_eval(folder: Path, task: str, harness: FakeHarness, utils, limit: int | None = None) -> dict:
    config = yaml.load((folder / f"{task}.yaml").read_text(), Loader=FunctionTag)
    docs = harness.task_dict[task]["test"][:limit]
    output_type = config["output_type"]
    per_doc = []
    if output_type == "multiple_choice":  # one Instance per choice, ``idx`` = the choice's index (as 0.7.3)
        instances = [SimpleNamespace(args=(utils.doc_to_text(doc), config["target_delimiter"] + choice,
                                           utils.doc_to_visual, doc_id, task, "test"), idx=index)
                     for doc_id, doc in enumerate(docs) for index, choice in enumerate(utils.doc_to_choice(doc))]
        answers = harness.loglikelihood(instances)
        for doc_id in range(len(docs)):
            per_doc.append([a for a, i in zip(answers, instances, strict=True) if i.args[3] == doc_id])
    elif output_type == "generate_until":
        instances = [SimpleNamespace(args=(utils.doc_to_text(doc), {"max_new_tokens": 1024}, utils.doc_to_visual,
                                           doc_id, task, "test"), idx=0) for doc_id, doc in enumerate(docs)]
        per_doc = [[answer] for answer in harness.generate_until(instances)]
    else:
        assert output_type == "generate_until_multi_round"
        instances = [SimpleNamespace(args=(utils.doc_to_text(doc), {}, utils.doc_to_visual, utils.doc_to_text,
                                           doc_id, task, "test"), idx=0) for doc_id, doc in enumerate(docs)]
        per_doc = [[answer] for answer in harness.generate_until_multi_round(instances)]
    processed = [utils.process_results(doc, results) for doc, results in zip(docs, per_doc, strict=True)]
    metrics = {}
    for entry in config["metric_list"]:
        name = entry["aggregation"].split(".")[-1]
        metrics[entry["metric"]] = getattr(utils, name)([p[entry["metric"]] for p in processed])
    return metrics


def first_items(data: Path, out: Path, count: int) -> Path:
    """A copy of a released folder holding only the first ``count`` items of each file."""
    out.mkdir(parents=True)
    shutil.copytree(data / "images", out / "images")
    for path in data.glob("*_test.json"):
        (out / path.name).write_text(json.dumps(json.loads(path.read_text())[:count]))
    for path in data.glob("*.csv"):  # Looking While Listening: two rows per instance
        lines = path.read_text().splitlines()
        (out / path.name).write_text("\n".join(lines[:1 + 2 * count]) + "\n")
    return out


def docs_of(folder: Path, task: str) -> list[dict]:
    return [json.loads(line) for line in (folder / f"{task}.jsonl").read_text().splitlines()]


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
    docs = {task: docs_of(folder, task) for task in FAKES}
    assert [len(docs[task]) for task in FAKES] == [8, 3, 2]  # one doc per item
    harness = FakeHarness(adapter, docs)
    utils = load_utils(folder)
    summary = registry.build("evaluator", "devcv").evaluate(adapter, FAKES, exported / "data", exported / "out",
                                                            mode=mode, log=lambda message: None)
    for task in FAKES:
        want = summary["domains"]["saycam"]["tasks"][task]["metrics"]
        assert run_like_lmms_eval(folder, task, harness, utils) == pytest.approx(want, abs=1e-12), task


def test_limit_takes_whole_items_and_scores_them_as_babyvlm_eval(exported):
    """``--limit N`` is the first N docs: N whole items (a pair item's two images, a rounds item's rounds)."""
    checkpoint = tiny_checkpoint(exported / "ckpt")
    adapter = registry.build("eval_adapter", dict(type="babyvlm", path=str(checkpoint)))
    export_tasks(exported / "data", exported / "lmms", ["fake_pairs", "fake_rounds"], mode="loglikelihood")
    folder = exported / "lmms" / "saycam"
    harness = FakeHarness(adapter, {task: docs_of(folder, task) for task in ("fake_pairs", "fake_rounds")})
    assert len(load_utils(folder).doc_to_choice(harness.task_dict["fake_pairs"]["test"][0])) == 4  # 2 images x 2
    utils = load_utils(folder)
    first = first_items(exported / "data" / "saycam", exported / "first" / "saycam", 1)
    summary = registry.build("evaluator", "devcv").evaluate(adapter, ["fake_pairs", "fake_rounds"], first.parent,
                                                            exported / "out", mode="loglikelihood",
                                                            log=lambda message: None)
    for task in ("fake_pairs", "fake_rounds"):
        want = summary["domains"]["saycam"]["tasks"][task]["metrics"]
        assert run_like_lmms_eval(folder, task, harness, utils, limit=1) == pytest.approx(want, abs=1e-12), task


def test_an_export_from_an_older_babyvlm_is_refused(exported):
    export_tasks(exported / "data", exported / "lmms", ["fake_letters"], mode="loglikelihood")
    folder = exported / "lmms" / "saycam"
    doc = docs_of(folder, "fake_letters")[0]
    doc.pop("babyvlm_export")
    harness = FakeHarness(None, {"fake_letters": [doc]})
    instance = SimpleNamespace(args=("q", "A", load_utils(folder).doc_to_visual, 0, "fake_letters", "test"), idx=0)
    with pytest.raises(ConfigError, match="exported by an older babyvlm.*export the tasks again"):
        harness.loglikelihood([instance])
    with pytest.raises(ConfigError, match="mode must be one of generate, loglikelihood"):
        export_tasks(exported / "data", exported / "other", ["fake_letters"], mode="choice")


def test_tasks_export_command_takes_the_mode(exported):
    from click.testing import CliRunner

    from babyvlm.cli import cli

    def export(out: Path, *mode: str):
        result = CliRunner().invoke(cli, ["tasks", "export", "--format", "lmms-eval", "--data", str(exported / "data"),
                                          "--tasks", "fake_letters,fake_rounds", *mode, str(out)])
        assert result.exit_code == 0, result.output
        return result.output

    def output_type(out: Path, task: str) -> str:
        return yaml.load((out / "saycam" / f"{task}.yaml").read_text(), Loader=FunctionTag)["output_type"]

    printed = export(exported / "g")
    assert "2 task files (mode generate)" in printed and "--tasks fake_letters,fake_rounds" in printed
    assert output_type(exported / "g", "fake_letters") == "generate_until"
    assert output_type(exported / "g", "fake_rounds") == "generate_until_multi_round"
    export(exported / "l", "--mode", "loglikelihood")
    assert output_type(exported / "l", "fake_letters") == "multiple_choice"
    assert not (exported / "l" / "saycam" / "fake_pairs.yaml").exists()  # only the tasks asked for


def test_doc_image_paths_stay_inside_the_export(exported):
    export_tasks(exported / "data", exported / "lmms", ["fake_letters"])
    utils = load_utils(exported / "lmms" / "saycam")
    doc = docs_of(exported / "lmms" / "saycam", "fake_letters")[0]
    assert len(utils.doc_to_visual(doc)) == 4
    whole = json.loads(doc["babyvlm"])
    whole["item"]["images"][0] = "../../data/saycam/images/l0_0.jpg"
    doc["babyvlm"] = json.dumps(whole)
    with pytest.raises(ValueError, match="leaves the task folder"):
        utils.doc_to_visual(doc)


def lmms_eval_cli() -> str | None:
    """The lmms-eval CLI of the running interpreter's environment (``.venv-lmms/bin/lmms-eval``), found
    beside ``sys.executable`` so the test runs in that venv without it being on PATH."""
    if importlib.util.find_spec("lmms_eval") is None:
        return None
    beside = Path(sys.executable).with_name("lmms-eval")
    return str(beside) if beside.is_file() else shutil.which("lmms-eval")


LMMS = lmms_eval_cli()
REAL_TASKS = ["baby_localize", "baby_memory", "baby_winoground"]


def released_for_lmms(folder: Path) -> Path:
    """Released-shape items: 8 Localization, 3 Memory (15 rounds, with labels), 3 Looking-While-Listening."""
    from test_devcv_loading import GOLDS, _jpeg, _memory_item
    from test_eval_devcv import released_localize

    released_localize(folder, n=8)
    for shade in range(0, 250, 10):
        (folder / "images" / f"{shade}.jpg").write_bytes(_jpeg(shade))
    memory = []
    for number in range(3):
        learned = [f"images/{s}.jpg" for s in range(10 * number, 10 * number + 50, 10)]
        novel = [f"images/{s}.jpg" for s in range(100, 200, 10)]
        record = _memory_item(f"m{number}", learned, novel, GOLDS)
        record["labels"], position = [], 0
        for turn in record["conversations"][::2]:
            count = turn["value"].count("<image>")
            record["labels"].append([path.split("/")[-1] for path in record["image"][position:position + count]])
            position += count
        memory.append(record)
    (folder / "memory_test.json").write_text(json.dumps(memory))
    rows = ["instance_id,positive_phrase,negative_phrase,image,image_tag"]
    for number in range(3):
        rows += [f"{number},see ball,touch cup,images/{20 * number}.jpg,positive",
                 f"{number},see ball,touch cup,images/{20 * number + 200}.jpg,negative"]
    (folder / "baby_winoground.csv").write_text("\n".join(rows) + "\n")
    return folder


@pytest.mark.slow
@pytest.mark.skipif(LMMS is None, reason="lmms-eval is not installed in this environment; `make lmms-venv` sets up "
                                         "one with it (`.venv-lmms/bin/python -m pytest -m slow tests/test_eval_lmms.py`)")
def test_real_lmms_eval_with_limit_scores_whole_devcv_items_as_babyvlm_eval(tmp_path, fresh_registry):
    from test_eval_fixtures import ensure_evaluation_plugin

    ensure_evaluation_plugin()
    release = released_for_lmms(tmp_path / "release")
    export_tasks(release, tmp_path / "lmms", REAL_TASKS, mode="loglikelihood")
    assert len(docs_of(tmp_path / "lmms" / "release", "baby_memory")) == 3  # one doc per 15-round item
    env = dict(os.environ, HF_HUB_OFFLINE="1", HF_DATASETS_OFFLINE="1")
    done = subprocess.run([LMMS, "eval", "--model", "babyvlm", "--model_args", "pretrained=random", "--tasks",
                           ",".join(REAL_TASKS), "--include_path", str(tmp_path / "lmms" / "release"), "--limit", "2",
                           "--log_samples", "--output_path", str(tmp_path / "results"), "--verbosity", "DEBUG"],
                          env=env, capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    results = json.loads(next((tmp_path / "results").rglob("*_results.json")).read_text())
    first = first_items(release, tmp_path / "first" / "release", 2)
    summary = registry.build("evaluator", "devcv").evaluate("random", REAL_TASKS, first.parent, tmp_path / "out",
                                                            mode="loglikelihood", log=lambda message: None)
    for task in REAL_TASKS:
        scored = summary["domains"]["release"]["tasks"][task]
        assert scored["n"] == 2 and results["n-samples"][task]["effective"] == 2, task
        for metric, value in scored["metrics"].items():
            assert results["results"][task][f"{metric},none"] == pytest.approx(value), (task, metric)

"""``WORK/results.json`` is merged, never clobbered: a phase trained alone keeps the others' records, a
process that trained nothing keeps everything, and the file is strict JSON (a NaN loss is null)."""

from __future__ import annotations

import json

from babyvlm import Experiment
from babyvlm.core.experiment import PhaseResult

CONFIG = {
    "data": dict(source="saycam", builder="pretraining_set"),
    "model": "babyllava",
    "phases": [dict(name="0-language", trainer=dict(type="simple")),
               dict(name="2-joint", formats=["image"], trainer=dict(type="simple"))],
}


def phase(name: str, **metrics) -> PhaseResult:
    return PhaseResult(name=name, stage=name, trainer="simple", dataset_size=4, seconds=1.0, work_dir="w",
                       metrics=metrics)


def strict_load(path):
    def refuse(constant):
        raise AssertionError(f"{path} holds {constant}, which strict JSON does not allow")
    return json.loads(path.read_text(), parse_constant=refuse)


def test_a_phase_trained_alone_keeps_the_others_and_nan_is_null(tmp_path):
    first = Experiment(CONFIG, tmp_path, log=lambda line: None)
    first.results.data = {"samples": 12}
    first.results.phases = [phase("2-joint", last_loss=float("nan")), phase("0-language", last_loss=2.5)]
    first.write_results()

    later = Experiment(CONFIG, tmp_path, log=lambda line: None)  # e.g. `babyvlm train --phase 2-joint`
    later.results.phases = [phase("2-joint", last_loss=1.5)]
    later.write_results()

    saved = strict_load(tmp_path / "results.json")
    assert [p["name"] for p in saved["phases"]] == ["0-language", "2-joint"]  # config order
    assert [p["metrics"]["last_loss"] for p in saved["phases"]] == [2.5, 1.5]
    assert saved["data"] == {"samples": 12}


def test_a_process_that_trained_nothing_keeps_the_record(tmp_path):
    first = Experiment(CONFIG, tmp_path, log=lambda line: None)
    first.results.phases = [phase("0-language", last_loss=float("inf"))]
    first.results.seconds = 42.0
    first.write_results()

    rerun = Experiment(CONFIG, tmp_path, log=lambda line: None)  # e.g. a fully cached `babyvlm run`
    assert [p.name for p in rerun.load_results().phases] == ["0-language"]
    rerun.write_results()
    saved = strict_load(tmp_path / "results.json")
    assert saved["seconds"] == 42.0 and saved["phases"][0]["metrics"]["last_loss"] is None


def test_results_of_another_version_are_replaced_with_a_note(tmp_path):
    (tmp_path / "results.json").write_text(json.dumps({"version": 1, "phases": [{"name": "old"}]}))
    notes = []
    experiment = Experiment(CONFIG, tmp_path, log=notes.append)
    experiment.write_results()
    assert strict_load(tmp_path / "results.json")["phases"] == []
    assert any("version 1" in note for note in notes)

"""Stage caching: unchanged stages are skipped, a changed stage reruns with everything downstream."""

from __future__ import annotations

import json

from babyvlm.core.pipeline import Stage, StageCache, fingerprint, with_dependents


def stages(calls: list[str], tmp_path, tokenizer_vocab: int = 100, model_width: int = 8) -> list[Stage]:
    def make(name: str):
        def run():
            calls.append(name)
            out = tmp_path / name
            out.write_text(name)
            return {"paths": [str(out)], "name": name}
        return run

    return [Stage("data", {"minutes": 1}, make("data")),
            Stage("tokenizer", {"vocab": tokenizer_vocab}, make("tokenizer"), depends_on=["data"]),
            Stage("model", {"width": model_width}, make("model"), depends_on=["tokenizer"]),
            Stage("tasks", {"seed": 0}, make("tasks"), depends_on=["data"])]


def run_all(tmp_path, calls, **changes) -> StageCache:
    cache = StageCache(tmp_path, log=lambda line: None)
    for stage in stages(calls, tmp_path, **changes):
        cache.run(stage)
    return cache


def test_second_run_skips_everything(tmp_path):
    calls: list[str] = []
    run_all(tmp_path, calls)
    assert calls == ["data", "tokenizer", "model", "tasks"]
    calls.clear()
    cache = run_all(tmp_path, calls)
    assert calls == [] and cache.skipped == ["data", "tokenizer", "model", "tasks"]
    assert cache.outputs["model"]["name"] == "model"


def test_changing_one_stage_reruns_it_and_its_dependents_only(tmp_path):
    calls: list[str] = []
    run_all(tmp_path, calls)
    calls.clear()
    run_all(tmp_path, calls, tokenizer_vocab=200)
    assert calls == ["tokenizer", "model"]  # tasks depend on data only


def test_a_stage_whose_outputs_vanished_reruns(tmp_path):
    calls: list[str] = []
    run_all(tmp_path, calls)
    (tmp_path / "tasks").unlink()
    calls.clear()
    run_all(tmp_path, calls)
    assert calls == ["tasks"]


def test_an_interrupted_stage_has_no_record_and_reruns(tmp_path):
    calls: list[str] = []
    cache = StageCache(tmp_path, log=lambda line: None)
    first, second, *_ = stages(calls, tmp_path)
    cache.run(first)

    def crash():
        raise KeyboardInterrupt

    try:
        cache.run(Stage(second.name, second.config, crash, second.depends_on))
    except KeyboardInterrupt:
        pass
    assert not (tmp_path / "stages" / "tokenizer.json").exists()
    calls.clear()
    run_all(tmp_path, calls)
    assert calls == ["tokenizer", "model", "tasks"]


def test_fingerprint_is_order_independent():
    assert fingerprint({"a": 1, "b": [1, 2]}) == fingerprint({"b": [1, 2], "a": 1})
    assert fingerprint({"a": 1}) != fingerprint({"a": 2})


def test_a_forced_stage_takes_its_dependents_along_even_after_an_interruption(tmp_path):
    calls: list[str] = []
    run_all(tmp_path, calls)
    plan = stages(calls, tmp_path)
    assert with_dependents(plan, ["data"]) == {"data", "tokenizer", "model", "tasks"}
    assert with_dependents(plan, ["tokenizer"]) == {"tokenizer", "model"}  # tasks depend on data only
    cache = StageCache(tmp_path, log=lambda line: None)
    cache.forget(with_dependents(plan, ["tokenizer"]))
    assert "seconds" in json.loads((cache.folder / "model.json").read_text())  # "took N s last time" stays
    calls.clear()
    cache.run(plan[0])
    cache.run(plan[1], force=True)  # ... and the run stops here, before the model
    calls.clear()
    run_all(tmp_path, calls)
    assert calls == ["model"]  # the forced tokenizer finished; the model's old record does not pass for current

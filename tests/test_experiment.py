"""``babyvlm.Experiment``: one config -> store -> tokenizer -> model -> phases -> held-out evaluation."""

import json

import pytest

from babyvlm import Experiment
from babyvlm.core.errors import ConfigError


def experiment_config(corpus, **data):
    data = {"source": dict(type="saycam", transcripts="human"), "root": str(corpus),
            "builder": dict(type="pretraining_set", image_size=64), "heldout_recordings": 1, **data}
    return {
        "data": data,
        "tokenizer": dict(type="bpe", vocab_size=300, min_frequency=1),
        "model": dict(type="babyllava", encoder=dict(type="vit", preset="tiny"), connector="mlp2x_gelu",
                      language_model=dict(type="llama", preset="tiny"), template="baby_plain"),
        "phases": [dict(name="2-joint", formats=["image", "video", "interleaved"],
                        trainer=dict(type="simple", max_steps=25, lr=3e-3, batch_size=8, log_every=0))],
    }


@pytest.fixture(scope="module")
def corpus(small_saycam_corpus):
    return small_saycam_corpus


def test_experiment_runs_all_stages_and_holds_out_whole_recordings(corpus, tmp_path):
    from babyvlm.plugins.demo.heldout import evaluate_heldout

    experiment = Experiment(experiment_config(corpus), tmp_path / "run", log=lambda line: None)
    experiment.ensure_data()
    experiment.ensure_tokenizer()
    experiment.build_model()
    untrained = evaluate_heldout(experiment)
    report = experiment.run()
    train_ids = {s["meta"]["recording_id"] for s in experiment.dataset()}
    heldout_ids = {s["meta"]["recording_id"] for s in experiment.dataset(split="heldout")}
    assert heldout_ids == set(report["heldout_recordings"]) and len(heldout_ids) == 1
    assert train_ids and not train_ids & heldout_ids
    assert train_ids | heldout_ids == experiment.builder.recording_ids(experiment.store_dir)
    assert evaluate_heldout(experiment)["heldout_loss"] < untrained["heldout_loss"]
    phase = report.phases[0]
    assert phase.name == "2-joint" and phase["steps"] == 25 and phase.trainer == "simple"
    saved = json.loads((tmp_path / "run" / "results.json").read_text())
    assert saved["version"] == 2 and saved["phases"][0]["metrics"]["steps"] == 25
    assert (tmp_path / "run" / "config.py").exists()
    assert (tmp_path / "run" / "phases" / "2-joint" / "weights.safetensors").exists()
    assert (tmp_path / "run" / "phases" / "2-joint" / "config.py").exists()
    assert experiment.model.tokenizer.vocab_size <= 300


def test_unknown_phases_and_duplicate_names_are_refused(corpus, tmp_path):
    experiment = Experiment(experiment_config(corpus), tmp_path / "run", log=lambda line: None)
    with pytest.raises(ConfigError, match="unknown phase '9-sleep'; this config's phases: 2-joint"):
        experiment.select_phases("9-sleep")
    config = experiment_config(corpus)
    config["phases"].append(dict(config["phases"][0]))
    with pytest.raises(ConfigError, match="name '2-joint' is used twice"):
        Experiment(config, tmp_path / "run2")
    config = experiment_config(corpus)
    config["phases"][0]["data"] = "audio"
    with pytest.raises(ConfigError, match=r"phases\[0\].data must be 'store', 'transcripts' or dict"):
        Experiment(config, tmp_path / "run3")


def test_dataset_filters_formats(corpus, tmp_path):
    experiment = Experiment(experiment_config(corpus, heldout_recordings=0), tmp_path / "run", log=lambda line: None)
    experiment.build_data()
    images = experiment.dataset(formats=["image"])
    assert len(images) and {s["format"] for s in images} == {"image"}
    assert len(experiment.dataset(split="heldout")) == 0


def test_holding_out_every_recording_is_refused(corpus, tmp_path):
    experiment = Experiment(experiment_config(corpus, heldout_recordings=99), tmp_path / "run", log=lambda line: None)
    with pytest.raises(ConfigError, match="heldout_recordings=99 leaves nothing to train on"):
        experiment.build_data()


def test_missing_sections_and_unknown_builder_options_are_clear(tmp_path):
    with pytest.raises(ConfigError, match="no 'model' section"):
        Experiment({"data": {}}, tmp_path)
    config = experiment_config(tmp_path, builder=dict(type="pretraining_set", max_clip_seconds=3))
    with pytest.raises(ConfigError, match="max_clip_seconds"):
        Experiment(config, tmp_path)


def test_heldout_split_survives_a_new_process_and_stages_need_their_inputs(corpus, tmp_path):
    first = Experiment(experiment_config(corpus), tmp_path / "run", log=lambda line: None)
    with pytest.raises(ConfigError, match="call build_data\\(\\) first"):
        first.dataset()
    first.build_data()
    later = Experiment(experiment_config(corpus), tmp_path / "run", log=lambda line: None)
    assert later.heldout == first.heldout and len(later.heldout) == 1
    assert len(later.dataset()) == len(first.dataset())
    with pytest.raises(ConfigError, match="call build_model\\(\\) first"):
        later.train()


def test_tokenizer_corpus_counts_each_utterance_once(corpus, tmp_path):
    experiment = Experiment(experiment_config(corpus, heldout_recordings=0), tmp_path / "run", log=lambda line: None)
    experiment.build_data()
    answers = [turn["value"] for sample in experiment.dataset() for turn in sample["conversations"]
               if turn["from"] == "gpt"]
    video_clips = experiment.dataset(formats=["video"])
    texts = experiment.builder.texts(experiment.store_dir)
    assert set(texts) == set(answers)
    assert len(texts) == len(video_clips) < len(answers)  # one per utterance, not one per sample


@pytest.mark.parametrize(("change", "message"), [
    (lambda c: c["data"].pop("source"), "data.source is required"),
    (lambda c: c["phases"][0].pop("formats"), r"phases\[0\] needs formats"),
    (lambda c: c["data"].update(builder=dict(name="x")), "data.builder: expected a registered name"),
    (lambda c: c["data"].update(heldout_recordings=-1), "heldout_recordings must be a whole number >= 0"),
    (lambda c: c["data"].update(builder=dict(type="pretraining_set", strict="no")), "strict must be true or false"),
])
def test_bad_experiment_configs_fail_before_any_work(tmp_path, change, message):
    config = experiment_config(tmp_path / "corpus")
    change(config)
    with pytest.raises(ConfigError, match=message):
        Experiment(config, tmp_path / "run")
    assert not (tmp_path / "run").exists()


def test_tokenizer_may_be_named_by_string(corpus, tmp_path):
    config = experiment_config(corpus, heldout_recordings=0)
    config["tokenizer"] = "bpe"
    experiment = Experiment(config, tmp_path / "run", log=lambda line: None)
    experiment.build_data()
    with pytest.warns(UserWarning, match="corpus too small"):  # default vocab 6000 from a tiny corpus
        tokenizer = experiment.build_tokenizer()
    assert tokenizer.vocab_size > 261


def test_every_recording_outside_the_evaluation_train_split_is_held_out_of_training(corpus, tmp_path):
    """The DevCV split of each recording (``data.heldout_splits``): val and test recordings never train,
    and heldout.json says why each recording is held out."""
    probe = Experiment(experiment_config(corpus, heldout_recordings=0), tmp_path / "probe", log=lambda line: None)
    probe.ensure_data()
    recordings = sorted(probe.builder.recording_ids(probe.store_dir))
    assert len(recordings) >= 3
    splits = {rid: "train" for rid in recordings}
    splits[recordings[0]], splits[recordings[1]] = "test", "val"
    (tmp_path / "splits.json").write_text(json.dumps(splits))
    config = experiment_config(corpus, heldout_splits=str(tmp_path / "splits.json"), heldout_recordings=1,
                               store=str(probe.store_dir))
    experiment = Experiment(config, tmp_path / "run", log=lambda line: None)
    experiment.ensure_data()
    saved = json.loads((tmp_path / "run" / "heldout.json").read_text())
    assert saved["why"][recordings[0]] == "test" and saved["why"][recordings[1]] == "val"
    assert sorted(saved["why"].values()).count("random") == 1 and len(saved["recordings"]) == 3
    trained = {s["meta"]["recording_id"] for s in experiment.dataset()}
    assert trained and not trained & set(saved["recordings"])
    assert experiment.transcripts() and experiment.heldout == set(saved["recordings"])


def test_a_held_out_recording_reaching_training_data_is_refused(corpus, tmp_path, monkeypatch):
    experiment = Experiment(experiment_config(corpus), tmp_path / "run", log=lambda line: None)
    experiment.ensure_data()
    leaked = next(iter(experiment.heldout))
    from babyvlm.plugins.pretraining_set.dataset import PretrainingDataset

    monkeypatch.setattr(PretrainingDataset, "recording_ids", lambda self: {leaked, "other"})
    with pytest.raises(ConfigError, match="held-out recordings .* reached the training data"):
        experiment.dataset()
    missing = tmp_path / "none.json"
    with pytest.raises(ConfigError, match="data.heldout_splits: .*none.json is not a file"):
        Experiment(experiment_config(corpus, heldout_splits=str(missing)), tmp_path / "run2",
                   log=lambda line: None).ensure_data()

"""DevCV released-file loaders on hand-written items of each task's shape, and scoring through them:
prompts without <image>, single-string images, path escapes, Memory with and without labels, the
Looking While Listening CSV, and both scoring modes."""

import json

import numpy as np
import pytest

from babyvlm.core.errors import DataError
from babyvlm.media import encode_jpeg
from babyvlm.plugins.devcv.compare_real import WhoHasMoreReal
from babyvlm.plugins.devcv.count import ObjectCounting
from babyvlm.plugins.devcv.localization import Localization
from babyvlm.plugins.devcv.memory import DelayedMemory
from babyvlm.plugins.devcv.picture_vocabulary import PictureVocabulary
from babyvlm.plugins.devcv.vdr_open import VDROpen
from babyvlm.plugins.devcv.winoground import LookingWhileListening


def _jpeg(shade: int) -> bytes:
    return encode_jpeg(np.full((16, 16, 3), shade, dtype=np.uint8))


@pytest.fixture
def released(tmp_path):
    """A flat released folder: <short>_test.json files + images/."""
    (tmp_path / "images").mkdir()
    for shade in range(0, 250, 10):
        (tmp_path / "images" / f"{shade}.jpg").write_bytes(_jpeg(shade))

    def write(name, items):
        (tmp_path / name).write_text(json.dumps(items))
    return tmp_path, write


def _conv(human, gpt):
    return [{"from": "human", "value": human}, {"from": "gpt", "value": gpt}]


def test_picture_vocabulary_released_shapes_and_generate_scoring(released):
    folder, write = released
    write("pv_test.json", [
        {"id": "pv1", "image": [f"images/{s}.jpg" for s in (0, 10, 20, 30)],
         "conversations": _conv("<image><image><image><image>\nTouch the image of 'ball' (A) ... (D) ...", "B")},
        {"id": "pv2", "image": ["10.jpg", "20.jpg", "30.jpg", "40.jpg"],  # relative to images/
         "conversations": _conv("Touch the image of 'cup' (A) the first image ...", "D")},
        {"id": "pv3", "image": "images/50.jpg", "conversations": _conv("Touch the image of 'dog'", "A")},
    ])
    task = PictureVocabulary()
    items = task.load(folder, "test")
    assert [len(i.images) for i in items] == [4, 4, 1]
    assert items[1].conversations[0]["value"].startswith("<image> <image> <image> <image>\nTouch")
    assert items[2].conversations[0]["value"] == "<image>\nTouch the image of 'dog'"
    assert [i.answer for i in items] == ["B", "D", "A"]
    generate = task.requests(items[0], "generate")
    assert [r.kind for r in generate] == ["generate"] and generate[0].conversations[-1]["from"] == "human"
    texts = ["(B)", "I think it is A", "a."]
    predictions = [task.score(item, [text], "generate") for item, text in zip(items, texts, strict=True)]
    assert [p.parsed for p in predictions] == ["B", "A", "A"]
    assert task.aggregate(items, predictions) == {"acc": pytest.approx(2 / 3)}
    choice = task.requests(items[0], "loglikelihood")[0]
    assert choice.kind == "choice" and choice.continuations == ["A", "B", "C", "D"]
    scored = task.score(items[0], [[(2.0, False), (0.1, True), (3.0, False), (2.5, False)]], "loglikelihood")
    assert scored.correct and scored.scores["B"] == 0.1 and scored.extras["tied"] == []


@pytest.mark.parametrize("bad", ["../outside.jpg", "/etc/passwd", "images/../../x.jpg"])
def test_image_paths_leaving_the_folder_are_refused_naming_the_item(released, bad):
    folder, write = released
    write("localize_test.json", [{"id": "loc7", "image": [bad], "bb": [1, 2, 3, 4],
                                  "conversations": _conv("<image>\nPoint at the ball.", "A")}])
    with pytest.raises(DataError, match=r"localize_test.json: item 'loc7'.*(leaves|absolute)"):
        Localization().load(folder)


def test_missing_file_and_missing_answer_are_named(released):
    folder, write = released
    with pytest.raises(DataError, match="count_test.json"):
        ObjectCounting().load(folder)
    write("count_test.json", [{"id": "c1", "image": ["images/0.jpg"],
                               "conversations": [{"from": "human", "value": "How many?"}]}])
    with pytest.raises(DataError, match="item 'c1': no gpt turn"):
        ObjectCounting().load(folder)


def test_counting_without_choices_uses_the_default_space_and_parses_numbers(released):
    folder, write = released
    write("count_test.json", [{"id": f"c{n}", "image": "images/0.jpg",
                               "conversations": _conv("How many balls do you see?", str(n))} for n in (3, 10)])
    task = ObjectCounting()
    items = task.load(folder)
    assert task.chance(items) == pytest.approx(1 / 12)
    predictions = [task.score(items[0], ["three"], "generate"), task.score(items[1], ["10 apples"], "generate")]
    assert all(p.correct for p in predictions)


def test_vdr_open_exact_and_adjacent(released):
    folder, write = released
    write("vdr_open_test.json", [{"id": f"v{n}", "image": [f"images/{s}.jpg" for s in range(0, 60, 10)], "gif": "x.gif",
                                  "conversations": _conv("which part of the frame does the ball leave from?", "left")}
                                 for n in range(3)])
    task = VDROpen()
    items = task.load(folder)
    assert items[0].conversations[0]["value"].count("<image>") == 6
    predictions = [task.score(item, [text], "generate") for item, text in zip(items, ["left.", "top left", "right"], strict=True)]
    assert task.aggregate(items, predictions) == {"acc_exact": pytest.approx(1 / 3), "acc_adjacent": pytest.approx(2 / 3)}


def test_compare_real_keeps_notes(released):
    folder, write = released
    write("compare_real_test.json", [{"id": "w1", "image": ["images/0.jpg", "images/10.jpg"], "notes": "3 vs 1",
                                      "conversations": _conv("Which image has more balls? (A) <image> (B) <image>", "A")}])
    item = WhoHasMoreReal().load(folder)[0]
    assert item.extras["notes"] == "3 vs 1" and item.conversations[0]["value"].count("<image>") == 2


def _memory_item(item_id, learned, novel, golds, labels=None, test_images=None):
    """15 rounds: learning rounds show learned[k] (and learned[k-1]); tests show learned[j] beside novel[k]."""
    rounds, images = [], []
    images.append(learned[0])
    rounds.append(("Touch the new image. (A) <image>", "A"))
    for k in range(1, 5):
        pair = [learned[k], learned[k - 1]] if golds[k] == "A" else [learned[k - 1], learned[k]]
        images += pair
        rounds.append(("Let's try more. Touch the new image. (A) <image> (B) <image>", golds[k]))
    test_images = test_images or learned
    order = [0, 1, 2, 3, 4, 4, 3, 2, 1, 0]
    for k, j in enumerate(order):
        gold = golds[5 + k]
        pair = [novel[k], test_images[j]] if gold == "A" else [test_images[j], novel[k]]
        images += pair
        rounds.append(("Let's try more. Touch the new image. (A) <image> (B) <image>", gold))
    conversations = [turn for human, gpt in rounds for turn in _conv(human, gpt)]
    record = {"id": item_id, "image": images, "conversations": conversations}
    if labels:
        record["labels"] = labels
    return record


GOLDS = ["A", "A", "B", "A", "B"] + ["A", "B"] * 5


def test_memory_without_labels_derives_them_from_byte_identical_images(released):
    folder, write = released
    learned = [f"images/{s}.jpg" for s in (0, 10, 20, 30, 40)]
    novel = [f"images/{s}.jpg" for s in range(100, 200, 10)]
    write("memory_test.json", [_memory_item("m1", learned, novel, GOLDS)])
    task = DelayedMemory()
    item = task.load(folder)[0]
    assert len(item.images) == 29 and item.extras["labels_source"] == "image_content"
    answers = list(GOLDS)
    answers[6] = "A" if GOLDS[6] == "B" else "B"  # test round 2 (learned object 1) wrong
    prediction = task.score(item, [json.dumps(answers)], "generate")
    metrics = task.aggregate([item], [prediction])
    # learned objects 0..4; object 1 is tested in rounds 7 and 14 -> one of its rounds wrong -> 4/5
    assert metrics == {"acc_testing_adjusted": pytest.approx(4 / 5), "acc_learning": 1.0,
                       "acc_testing_raw": pytest.approx(9 / 10)}
    assert list(metrics)[0] == task.primary_metric


def test_memory_without_labels_and_new_test_photos_reports_unavailable_not_zero(released):
    folder, write = released
    learned = [f"images/{s}.jpg" for s in (0, 10, 20, 30, 40)]
    other_photos = [f"images/{s}.jpg" for s in (50, 60, 70, 80, 90)]
    novel = [f"images/{s}.jpg" for s in range(100, 200, 10)]
    write("memory_test.json", [_memory_item("m2", learned, novel, GOLDS, test_images=other_photos)])
    task = DelayedMemory()
    item = task.load(folder)[0]
    assert "byte-identical" in item.extras["labels_unavailable"]
    metrics = task.aggregate([item], [task.score(item, [GOLDS], "generate")])
    assert metrics["acc_testing_adjusted"] is None
    assert "m2" in metrics["acc_testing_adjusted_unavailable"]
    assert metrics["acc_learning"] == 1.0 and metrics["acc_testing_raw"] == 1.0


def test_memory_with_labels_and_teacher_forced_loglikelihood(released):
    folder, write = released
    learned = [f"images/{s}.jpg" for s in (0, 10, 20, 30, 40)]
    novel = [f"images/{s}.jpg" for s in range(100, 200, 10)]
    names = ["ball", "cup", "dog", "cat", "car"]
    record = _memory_item("m3", learned, novel, GOLDS)
    labels, position = [], 0
    lookup = dict(zip(learned, names, strict=True)) | {p: f"novel{n}" for n, p in enumerate(novel)}
    for turn in record["conversations"][::2]:
        count = turn["value"].count("<image>")
        labels.append([lookup[p] for p in record["image"][position:position + count]])
        position += count
    record["labels"] = labels
    write("memory_test.json", [record])
    task = DelayedMemory()
    item = task.load(folder)[0]
    assert "labels_source" not in item.extras
    requests = task.requests(item, "loglikelihood")
    assert len(requests) == 15 and requests[0].continuations == ["A"] and requests[1].continuations == ["A", "B"]
    assert len(requests[1].images) == 3 and requests[1].conversations[1] == {"from": "gpt", "value": "A"}
    oracle = task.score(item, task.respond_with(item, "loglikelihood", GOLDS), "loglikelihood")
    assert task.aggregate([item], [oracle])["acc_testing_adjusted"] == 1.0
    multi = task.requests(item, "generate")
    assert [r.kind for r in multi] == ["multi_round"] and len(multi[0].rounds) == 15


def test_winoground_csv_group_image_and_text_scores(tmp_path):
    (tmp_path / "images").mkdir()
    for name, shade in (("p.jpg", 10), ("n.jpg", 200)):
        (tmp_path / "images" / name).write_bytes(_jpeg(shade))
    (tmp_path / "baby_winoground.csv").write_text(
        "instance_id,positive_phrase,negative_phrase,image,image_tag\n"
        "1,see ball,touch cup,images/p.jpg,positive\n1,see ball,touch cup,images/n.jpg,negative\n")
    task = LookingWhileListening()
    [item] = task.load(tmp_path)
    requests = task.requests(item, "generate")  # always log-likelihood
    assert [r.kind for r in requests] == ["choice", "choice"] and requests[0].continuations == ["see ball", "touch cup"]
    both = task.score(item, [[(0.5, False), (2.0, False)], [(2.0, False), (0.5, False)]], "loglikelihood")
    text_only = task.score(item, [[(0.5, False), (2.0, False)], [(3.0, False), (2.5, False)]], "loglikelihood")
    assert both.correct and both.extras["group_score"]
    assert text_only.extras == {**text_only.extras, "image_score": False, "text_score": True, "group_score": False}
    assert task.aggregate([item], [both]) == {"group_score": 1.0, "image_score": 1.0, "text_score": 1.0}
    assert task.chance() == pytest.approx(1 / 6)


def test_winoground_instance_missing_its_negative_row_is_named(tmp_path):
    (tmp_path / "images").mkdir()
    (tmp_path / "images" / "p.jpg").write_bytes(_jpeg(1))
    (tmp_path / "baby_winoground.csv").write_text(
        "instance_id,positive_phrase,negative_phrase,image,image_tag\n7,see ball,touch cup,images/p.jpg,positive\n")
    with pytest.raises(DataError, match="instance '7'"):
        LookingWhileListening().load(tmp_path)

"""Easy match-to-sample items (``devcv/easy_match.py``): which tasks get them, what an easy item is, and the
errors for bad counts."""

from __future__ import annotations

import random
from collections import Counter

import pytest

from babyvlm.core.errors import ConfigError, DataError
from babyvlm.plugins.devcv.easy_match import add_easy_items, easy_records, is_match_to_sample, option_letters
from babyvlm.plugins.run_command.sections import instruction_steps


def match_item(number: int, answer: str = "B") -> dict:
    return {"id": f"sd_{number}", "task": "baby_spatialdetails",
            "image": [f"q{number}.jpg", f"a{number}.jpg", f"b{number}.jpg", f"c{number}.jpg"],
            "conversations": [{"from": "human", "value": "<image>\nWhich is the same? (A) <image> (B) <image> (C) <image>."},
                              {"from": "gpt", "value": answer}]}


def vocabulary_item(number: int) -> dict:
    return {"id": f"pv_{number}", "task": "baby_pv", "image": [f"p{number}_{i}.jpg" for i in range(4)],
            "conversations": [{"from": "human", "value": "Which is the ball? (A) <image> (B) <image> (C) <image> (D) <image>"},
                              {"from": "gpt", "value": "A"}]}


def test_only_a_query_picture_then_one_picture_per_letter_is_match_to_sample():
    assert option_letters(match_item(0)) == ["A", "B", "C"]
    assert option_letters(vocabulary_item(0)) is None  # no query picture
    two_turns = dict(match_item(0), conversations=match_item(0)["conversations"] * 2)
    assert option_letters(two_turns) is None
    assert option_letters(dict(match_item(0), image=match_item(0)["image"][:3])) is None  # a marker without its picture
    assert option_letters(match_item(0, answer="D")) is None  # an answer outside the options
    assert is_match_to_sample([match_item(i) for i in range(3)])
    assert not is_match_to_sample([match_item(0), vocabulary_item(1)])
    assert not is_match_to_sample([])


def test_an_easy_item_is_a_query_and_its_gold_beside_other_items_options():
    items = [match_item(i, answer="ABC"[i % 3]) for i in range(20)]
    easy = easy_records(items, 300, random.Random(0))
    answers = Counter()
    for record in easy:
        source = next(item for item in items if item["image"][0] == record["image"][0])
        gold = "ABC".index(record["conversations"][1]["value"])
        answers[record["conversations"][1]["value"]] += 1
        assert record["image"][1 + gold] == source["image"][1 + "ABC".index(source["conversations"][1]["value"])]
        owners = [path[1:].split(".")[0] for i, path in enumerate(record["image"][1:]) if i != gold]
        assert source["id"].split("_")[1] not in owners and len(set(owners)) == 2  # two other items
        assert record["conversations"][0] == source["conversations"][0] and record["task"] == "baby_spatialdetails"
    assert min(answers.values()) > 70  # the gold's letter is drawn, not fixed
    assert easy_records(items, 300, random.Random(0)) == easy


def test_other_tasks_are_left_as_they_are_and_counts_are_checked():
    chosen = {"spatialdetails": [match_item(i) for i in range(5)], "pv": [vocabulary_item(i) for i in range(5)]}
    lines = []
    out = add_easy_items(chosen, 7, seed=0, log=lines.append)
    assert len(out["spatialdetails"]) == 12 and out["pv"] == chosen["pv"]
    assert any("no easy items for pv" in line for line in lines)
    assert add_easy_items(chosen, 0, seed=0, log=lines.append) is chosen
    with pytest.raises(DataError, match="easy_match must be an integer >= 0"):
        add_easy_items(chosen, -1, seed=0, log=lines.append)
    with pytest.raises(DataError, match="baby_spatialdetails: 2 items, but an easy item needs 3"):
        easy_records([match_item(0), match_item(1)], 1, random.Random(0))


def test_a_run_config_can_ask_for_easy_items():
    assert instruction_steps({"instructions": [dict(easy_match=1500, per_task=True)]}) == \
        [dict(easy_match=1500, per_task=True)]
    with pytest.raises(ConfigError, match="easy"):
        instruction_steps({"instructions": [dict(easy=1500)]})
    for bad in (-1, 1.5, True, "3000"):
        with pytest.raises(ConfigError, match=r"tasks.instructions\[0\]: easy_match must be a whole number >= 0"):
            instruction_steps({"instructions": [dict(easy_match=bad)]})


def test_a_picture_two_items_share_never_becomes_a_second_gold():
    """Where items share pictures, a distractor is never a picture the easy item already shows."""
    items = [match_item(i) for i in range(6)]
    for item in items[1:]:  # every other item offers item 0's gold picture (its option B) among its options
        item["image"][2] = "a0.jpg" if item is items[1] else items[0]["image"][2]
    easy = easy_records(items, 200, random.Random(1))
    for record in easy:
        assert len(set(record["image"][1:])) == 3, record
        assert record["image"][0] not in record["image"][1:]
    lonely = [match_item(0), dict(match_item(1), image=["q1.jpg", "b0.jpg", "b0.jpg", "b0.jpg"]),
              dict(match_item(2), image=["q2.jpg", "b0.jpg", "b0.jpg", "b0.jpg"])]
    with pytest.raises(DataError, match=r"item 'sd_\d': fewer than 2 other items have an option picture"):
        easy_records(lonely, 1, random.Random(0))

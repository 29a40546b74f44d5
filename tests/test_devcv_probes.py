"""The shortcut probes of ``babyvlm tasks check``: a hand-made item set carrying each shortcut the validity
issue found fails with that probe named; clean sets pass; the real ``blind`` adapter passes one grey
picture on (and the mean-colour blank, a named option, is caught leaking)."""

import random

import numpy as np
import pytest

import babyvlm
from babyvlm.plugins.devcv.base import Draft
from babyvlm.plugins.devcv.checks import run_checks
from babyvlm.plugins.devcv.probes import run_probes
from babyvlm.plugins.evaluation.baselines import blind_leak_checks

N = 160  # items per split: enough power for a real shortcut, few enough to stay fast


def picture(rng: np.random.Generator, brightness: float = 128, noise: float = 30, size: int = 32) -> np.ndarray:
    return np.clip(rng.normal(brightness, noise, (size, size, 3)), 0, 255).astype(np.uint8)


def build(task_name: str, make, seed: int) -> list:
    task = babyvlm.build("task", task_name)
    rng, pyrng = np.random.default_rng(seed), random.Random(seed)
    return [task.finish(make(rng, pyrng, k), f"{task.short}_{seed}_{k:04d}") for k in range(N)]


def outcomes(task_name: str, make) -> dict:
    task = babyvlm.build("task", task_name)
    found = run_probes(task, build(task_name, make, 1), build(task_name, make, 0), "train")
    return {o.probe: o for o in found}


def letter_draft(prompt: str, images: list, gold: int, query: list | None = None) -> Draft:
    return Draft(images=(query or []) + images, turns=[(prompt, "ABCD"[gold])])


# ---- one fixture per shortcut -------------------------------------------------------------------------
def test_who_has_more_answered_by_file_size_fails_image_stats():
    from babyvlm.plugins.devcv.compare_synthetic import PROMPT

    def make(rng, pyrng, k):
        gold = pyrng.randrange(2)  # the gold picture is the busier (larger) file
        images = [picture(rng, noise=60 if slot == gold else 10) for slot in range(2)]
        return letter_draft(PROMPT.format(objs="balls"), images, gold)

    found = outcomes("baby_compare_synthetic", make)
    assert found["image_stats"].failed and found["image_stats"].score > 0.9
    assert not found["majority"].failed and not found["text_only"].failed


def test_match_task_whose_gold_is_the_query_file_fails_image_stats():
    from babyvlm.plugins.devcv.spatial_details import PROMPT

    def make(rng, pyrng, k):
        gold = pyrng.randrange(3)
        options = [picture(rng, brightness=pyrng.uniform(60, 200)) for _ in range(3)]
        return letter_draft(PROMPT, options, gold, query=[options[gold]])

    found = outcomes("baby_spatialdetails", make)
    assert found["image_stats"].failed and found["image_stats"].score > 0.9
    assert not found["options_only"].failed  # the options alone say nothing here


def test_options_that_give_the_answer_without_the_query_fail_options_only():
    from babyvlm.plugins.devcv.left_right import PROMPT

    def make(rng, pyrng, k):
        gold = pyrng.randrange(3)  # distractors are colour-shifted copies, the gold one is not
        options = [picture(rng, brightness=128 if slot == gold else 190) for slot in range(3)]
        return letter_draft(PROMPT, options, gold, query=[picture(rng)])

    found = outcomes("baby_leftright", make)
    assert found["options_only"].failed and found["options_only"].score > 0.9


def test_memory_golds_in_a_sequential_pattern_fail_answer_history():
    from babyvlm.plugins.devcv.memory import FIRST, LATER

    def make(rng, pyrng, k):
        letters = ["A"] + ["A" if (r + k) % 2 else "B" for r in range(1, 15)]  # every round flips the last
        shown = [1] + [2] * 14
        labels = [[f"o{r}"] for r in range(1)] + [[f"o{r}", f"o{r - 1}"] for r in range(1, 5)] + \
            [[f"n{r}", f"o{(r - 5) % 5}"] for r in range(5, 15)]
        turns = [(FIRST if r == 0 else LATER, letter) for r, letter in enumerate(letters)]
        return Draft(images=[picture(rng) for _ in range(sum(shown))], turns=turns, extras={"labels": labels})

    found = outcomes("baby_memory", make)
    assert found["answer_history"].failed
    assert not found["image_stats"].failed


def test_skewed_count_golds_fail_majority_against_the_fixed_answer_space():
    from babyvlm.plugins.devcv.count import COUNT_SPACE, PROMPT

    def make(rng, pyrng, k):
        count = 2 if pyrng.random() < 0.5 else pyrng.choice(COUNT_SPACE)
        return Draft(images=[picture(rng)], turns=[(PROMPT.format(objs="balls"), str(count))],
                     choices=[str(n) for n in COUNT_SPACE])

    found = outcomes("baby_count", make)
    assert found["majority"].failed and abs(found["majority"].chance - 1 / 12) < 1e-9


def test_a_word_that_names_the_answer_fails_text_only():
    from babyvlm.plugins.devcv.localization import PROMPT

    words = ["ball", "cup", "dog", "hat"]

    def make(rng, pyrng, k):
        quadrant = pyrng.randrange(4)  # each word always sits in its own quadrant
        return Draft(images=[picture(rng)], turns=[(PROMPT.format(obj=words[quadrant]), "ABCD"[quadrant])])

    found = outcomes("baby_localize", make)
    assert found["text_only"].failed and found["text_only"].score > 0.9
    assert not found["majority"].failed


def test_subitizing_with_luminance_tracking_the_count_fails_image_stats():
    from babyvlm.plugins.devcv.subitize import PROMPT

    def make(rng, pyrng, k):
        count = pyrng.randint(1, 4)
        return Draft(images=[picture(rng, brightness=50 * count, noise=5)], turns=[(PROMPT.format(objs="cups"),
                                                                                   str(count))],
                     choices=["1", "2", "3", "4"])

    assert outcomes("baby_subitize", make)["image_stats"].failed


def test_who_has_more_real_as_a_presence_test_fails_image_stats():
    """1,190 of 1,200 released-style items compared an empty frame with a frame holding objects: the frame
    with any objects is the busier, wider-spread picture."""
    from babyvlm.plugins.devcv.compare_real import PROMPT

    def make(rng, pyrng, k):
        gold = pyrng.randrange(2)
        images = []
        for slot in range(2):
            image = picture(rng, brightness=pyrng.uniform(90, 170), noise=4)
            if slot == gold:  # n objects on one frame, none on the other
                for _ in range(pyrng.randint(1, 5)):
                    x, y = pyrng.randrange(24), pyrng.randrange(24)
                    image[y:y + 8, x:x + 8] = pyrng.choice([(200, 40, 40), (30, 60, 200), (20, 20, 20)])
            images.append(image)
        return letter_draft(PROMPT.format(objs="cups"), images, gold)

    found = outcomes("baby_compare_real", make)
    assert found["image_stats"].failed and found["image_stats"].score > 0.8


def test_vdr_with_one_side_dominant_fails_majority():
    from babyvlm.plugins.devcv.vdr_binary import VDRBinary

    def make(rng, pyrng, k):
        side = "left" if pyrng.random() < 0.75 else "right"
        text = "<image>" * 5 + "\n" + VDRBinary.question.format(obj="ball")
        return Draft(images=[picture(rng) for _ in range(5)], turns=[(text, side)])

    found = outcomes("baby_vdr_binary", make)
    assert found["majority"].failed and found["majority"].score > 0.65


def test_vdr_whose_object_word_tells_the_side_fails_text_only_within_an_unsplit_domain():
    """Out of domain there is no train split: the probes are cross-validated within the test split, folds
    grouped by recording, and a word that tells the side across recordings is still found."""
    from babyvlm.plugins.devcv.vdr_binary import VDRBinary

    words = {"car": "right", "shoe": "left", "cup": "left", "ball": "right"}

    def make(rng, pyrng, k):
        word = pyrng.choice(sorted(words))
        side = words[word] if pyrng.random() < 0.9 else {"left": "right", "right": "left"}[words[word]]
        text = "<image>" * 5 + "\n" + VDRBinary.question.format(obj=word)
        return Draft(images=[picture(rng) for _ in range(5)], turns=[(text, side)],
                     extras={"recording": f"rec{k % 10}"})

    task = babyvlm.build("task", "baby_vdr_binary")
    found = {o.probe: o for o in run_probes(task, build("baby_vdr_binary", make, 1), None, "")}
    assert found["text_only"].failed and "folds by recording" in found["text_only"].fitted_on
    assert not found["majority"].failed


def test_a_clean_item_set_passes_every_probe():
    from babyvlm.plugins.devcv.spatial_details import PROMPT

    def make(rng, pyrng, k):
        gold = pyrng.randrange(3)
        return letter_draft(PROMPT, [picture(rng) for _ in range(3)], gold, query=[picture(rng)])

    found = outcomes("baby_spatialdetails", make)
    assert not any(o.failed for o in found.values()), [o.describe() for o in found.values()]


def test_tasks_check_names_the_probe_on_a_written_folder(tmp_path):
    from babyvlm.plugins.devcv.compare_synthetic import PROMPT

    def make(rng, pyrng, k):
        gold = pyrng.randrange(2)
        images = [picture(rng, noise=60 if slot == gold else 10) for slot in range(2)]
        return letter_draft(PROMPT.format(objs="cars"), images, gold)

    task = babyvlm.build("task", "baby_compare_synthetic")
    folder = tmp_path / "saycam"
    for split, seed in (("train", 0), ("test", 1)):
        task.save(folder, split, build("baby_compare_synthetic", make, seed))
    failed = [r for r in run_checks(tmp_path, tasks=["baby_compare_synthetic"], rebuild=False) if not r.ok]
    assert any(r.check == "probe:image_stats" and r.where == "saycam/baby_compare_synthetic/test" for r in failed)
    assert all("SHORTCUT" in r.detail for r in failed if r.check.startswith("probe:"))


# ---- the blind baseline --------------------------------------------------------------------------------
@pytest.fixture
def matching_items():
    """Spatial-details-shaped items whose gold option is the query's own file: a blank that keeps
    anything of the picture lets the gold be found."""
    from babyvlm.plugins.devcv.spatial_details import PROMPT

    def make(rng, pyrng, k):
        gold = pyrng.randrange(3)
        options = [picture(rng, brightness=pyrng.uniform(40, 220), noise=5) for _ in range(3)]
        return letter_draft(PROMPT, options, gold, query=[options[gold]])

    task = babyvlm.build("task", "baby_spatialdetails")
    return task, {("saycam", task.name, "train"): build(task.name, make, 0),
                  ("saycam", task.name, "test"): build(task.name, make, 1)}


def test_the_grey_blind_adapter_passes_one_picture_and_nothing_to_find(matching_items):
    task, loaded = matching_items
    [check] = blind_leak_checks(loaded, {task.name: task})
    assert check["passed"], check["detail"]
    assert check["detail"].startswith("1 distinct picture(s)")


def test_the_mean_colour_blank_is_caught_leaking(matching_items):
    task, loaded = matching_items
    [check] = blind_leak_checks(loaded, {task.name: task}, blank="mean_colour")
    assert not check["passed"]
    assert "SHORTCUT" in check["detail"]

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


# ---- Memory: what a picture preference that knows nothing scores -------------------------------------------
def memory_with_fresh_pictures(rng, pyrng, k, novel_brightness: tuple = (60, 200)):
    """Memory items whose pictures are all different noise pictures, each object one picture throughout:
    nothing but having seen a picture before tells the new one (unless the novel pictures' brightness
    range differs)."""
    from babyvlm.plugins.devcv.memory import FIRST, LATER

    rounds = [("o0", None)] + [(f"o{r}", f"o{r - 1}") for r in range(1, 5)] + \
        [(f"n{r}", f"o{(r - 5) % 5}") for r in range(5, 15)]  # (new, seen)
    letters = ["A"] + [pyrng.choice("AB") for _ in range(14)]
    pictures = {name: picture(rng, brightness=pyrng.uniform(*(novel_brightness if name[0] == "n" else (60, 200))))
                for pair in rounds for name in pair if name}
    shown = [[new] if seen is None else [new, seen] if letter == "A" else [seen, new]
             for (new, seen), letter in zip(rounds, letters, strict=True)]
    turns = [(FIRST if r == 0 else LATER, letter) for r, letter in enumerate(letters)]
    return Draft(images=[pictures[name] for row in shown for name in row], turns=turns, extras={"labels": shown})


def test_a_fixed_picture_order_gets_a_third_of_memorys_adjusted_score_so_probes_score_it_per_round(monkeypatch):
    """Memory's adjusted score counts a learned picture when both its test rounds are right: any fixed
    preference order over pictures wins both when the learned picture ranks below both foils — 1/3 of the
    time, not 1/4. A "probe" ordering pictures by a hash of their bytes knows nothing: on the adjusted
    score it would look like a shortcut; on per-round accuracy, which the probes use for Memory, it is at
    chance."""
    import hashlib

    from babyvlm.plugins.devcv import probes

    def hash_order(train, test, seed, stats):
        def pick(decision):
            ranks = [hashlib.sha1(image).hexdigest() for image in decision.options]
            return decision.labels[ranks.index(max(ranks))]
        return [pick(d) if d.options and len(d.options) > 1 else d.labels[0] for d in test.decisions]

    monkeypatch.setitem(probes.PROBE_FITS, "image_stats", hash_order)
    task = babyvlm.build("task", "baby_memory")
    items = [task.finish(memory_with_fresh_pictures(np.random.default_rng(k), random.Random(k), k), f"memory_{k:04d}")
             for k in range(3 * N)]
    split = probes._flatten(task, items)
    answers = probes._answers(task, split, hash_order(None, split, 0, None))
    predictions = [task.score(item, task.respond_with(item, "loglikelihood", answer), "loglikelihood")
                   for item, answer in zip(items, answers, strict=True)]
    assert 0.29 < task.aggregate(items, predictions)["acc_testing_adjusted"] < 0.38  # far above its 0.25
    ordered = run_probes(task, items, None, "", only=("image_stats",))[0]
    assert ordered.metric == "acc_testing_raw" and ordered.chance == 0.5
    assert abs(ordered.score - 0.5) < 0.05 and not ordered.failed, ordered.describe()


def test_on_items_that_tell_nothing_the_real_image_stats_probe_does_not_fail_memory():
    found = outcomes("baby_memory", memory_with_fresh_pictures)["image_stats"]
    assert not found.failed, found.describe()


def test_novel_pictures_brighter_than_learned_ones_fail_memorys_image_stats():
    def brighter_novel(rng, pyrng, k):
        return memory_with_fresh_pictures(rng, pyrng, k, novel_brightness=(170, 230))

    found = outcomes("baby_memory", brighter_novel)["image_stats"]
    assert found.failed and found.score > 0.7, found.describe()


def test_memorys_foils_straddle_the_learned_picture_on_atypicality_first():
    """Straddling the statistics alone left the learned picture the middle one, nearer typical than both
    foils ("the odder picture is new": 0.34 adjusted); the two foils now lie on either side of it in
    distance from the typical picture whenever the pool allows (not for the oddest learned pictures)."""
    task = babyvlm.build("task", "baby_memory")
    chosen, at_random = [], []
    for trial in range(20):
        rng = np.random.default_rng(trial)
        objects, novel = ([picture(rng, brightness=b, noise=5) for b in rng.uniform(40, 220, n)] for n in (5, 10))
        stack = np.stack([task._statistics(c) for c in objects + novel])
        typical = (np.median(stack, axis=0), np.maximum(stack.std(axis=0), 1e-6))
        foils = task._straddling_foils(objects, novel, {id(c): c for c in objects + novel}, typical,
                                       random.Random(trial))
        assert sorted(id(f) for pair in foils.values() for f in pair) == sorted(id(c) for c in novel)

        def odd(crop, typical=typical):
            return task._profile(crop, *typical)[0]

        chosen += [(odd(a) - odd(seen)) * (odd(b) - odd(seen)) < 0 for seen in objects for a, b in [foils[id(seen)]]]
        at_random += [(odd(novel[2 * k]) - odd(seen)) * (odd(novel[2 * k + 1]) - odd(seen)) < 0
                      for k, seen in enumerate(objects)]
    assert np.mean(chosen) >= 0.55 and np.mean(chosen) >= np.mean(at_random) + 0.2, (np.mean(chosen), np.mean(at_random))


def flipped_rooms(rng, pyrng, k):
    """A room lit from above (bright top, dark floor); half the frames upside down, whose floor toys then
    sit at the top: the flip alone tells top from bottom — the Localization shortcut the issue measured."""
    from babyvlm.plugins.devcv.localization import PROMPT

    flipped = pyrng.random() < 0.5
    room = np.linspace(190, 70, 48)[:, None, None] + rng.normal(0, 20, (48, 48, 3))
    image = np.clip(room[::-1] if flipped else room, 0, 255).astype(np.uint8)
    quadrant = pyrng.randrange(2) + (0 if flipped else 2)  # A/B (top) when flipped, C/D (bottom) when not
    return letter_draft(PROMPT.format(obj="ball"), [image], quadrant)


def test_flipped_localization_frames_fail_image_stats_through_its_orientation_statistics(monkeypatch):
    from babyvlm.plugins.devcv.localization import Localization

    found = outcomes("baby_localize", flipped_rooms)["image_stats"]
    assert found.failed and found.score > 0.4, found.describe()
    monkeypatch.setattr(Localization, "probe_orientation", False)  # global statistics cannot see a flip
    assert not outcomes("baby_localize", flipped_rooms)["image_stats"].failed

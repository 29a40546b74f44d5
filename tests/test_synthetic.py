"""Unit tests of the synthetic world: vocabulary, sprites, scene simulation, speech, transcript styles, planning."""

from __future__ import annotations

import datetime as dt
import re

import numpy as np
import pytest

from babyvlm.core.errors import ConfigError
from babyvlm.plugins.synthetic.saycam_writer import (
    BIRTH_DATES,
    SaycamOptions,
    add_months,
    calendar_age,
    plan_videos,
)
from babyvlm.plugins.synthetic.speech import CaregiverSpeech, asr_line, mentioned, normalise, transcriber_line
from babyvlm.plugins.synthetic.sprites import DESIGNS, SpriteVariant, render_sprite
from babyvlm.plugins.synthetic.transcript_style import FileStyle, render_csv, time_cell, video_rows
from babyvlm.plugins.synthetic.vocabulary import VOCABULARY, vocabulary_for_age
from babyvlm.plugins.synthetic.world import ADULT_WORKPLACE, INFANT_HOME, Behaviour, VideoWorld

REQUIRED_WORDS = {"ball", "dog", "cup", "shoe", "duck", "car", "book", "spoon", "apple", "banana", "cat", "bottle",
                  "hat", "bear", "truck", "block", "sock", "bird", "fish", "key", "chair", "bowl", "phone", "baby"}
SPRITE_BOX = 40


# ---- vocabulary -------------------------------------------------------------------------------
def test_vocabulary_holds_the_early_words_with_unique_ids():
    names = [c.name for c in VOCABULARY]
    assert len(names) >= 24 and len(set(names)) == len(names)
    assert REQUIRED_WORDS <= set(names)
    assert [c.id for c in VOCABULARY] == list(range(1, len(VOCABULARY) + 1))
    assert set(DESIGNS) == set(names)  # every word can be drawn


def test_vocabulary_grows_with_age():
    sizes = [len(vocabulary_for_age(age)) for age in (6, 12, 18, 24, 32)]
    assert sizes == sorted(sizes) and sizes[0] < sizes[-1] == len(VOCABULARY)


# ---- sprites ----------------------------------------------------------------------------------
def _boxed(name: str, variant: SpriteVariant) -> np.ndarray:
    """The sprite fitted into a square box, as RGB + mask channels (so shape counts as much as colour)."""
    aspect = DESIGNS[name].aspect * variant.aspect_scale
    width, height = (SPRITE_BOX, round(SPRITE_BOX / aspect)) if aspect >= 1 else (round(SPRITE_BOX * aspect), SPRITE_BOX)
    rgb, mask = render_sprite(name, width, height, variant)
    box = np.zeros((SPRITE_BOX, SPRITE_BOX, 4), np.float32)
    y0, x0 = (SPRITE_BOX - height) // 2, (SPRITE_BOX - width) // 2
    box[y0:y0 + height, x0:x0 + width, :3][mask] = rgb[mask]
    box[y0:y0 + height, x0:x0 + width, 3] = mask * 255.0
    return box


def test_every_category_sprite_is_distinct_from_every_other():
    canonical = {name: _boxed(name, SpriteVariant()) for name in DESIGNS}
    names = list(canonical)
    for i, a in enumerate(names):
        for b in names[i + 1:]:
            shape_iou = ((canonical[a][..., 3] > 0) & (canonical[b][..., 3] > 0)).sum() / \
                ((canonical[a][..., 3] > 0) | (canonical[b][..., 3] > 0)).sum()
            colour_gap = np.abs(canonical[a][..., :3].reshape(-1, 3).sum(0) / max(1, (canonical[a][..., 3] > 0).sum())
                                - canonical[b][..., :3].reshape(-1, 3).sum(0) / max(1, (canonical[b][..., 3] > 0).sum())).sum()
            assert shape_iou < 0.9 or colour_gap > 40, (a, b, shape_iou, colour_gap)
            assert np.abs(canonical[a] - canonical[b]).mean() > 15, (a, b)


def test_varied_instances_stay_recognisable():
    """Nearest-prototype classification of random instances (colour, pattern, aspect, flip varied) is exact."""
    prototypes = {n: [_boxed(n, SpriteVariant()), _boxed(n, SpriteVariant(flip=True))] for n in DESIGNS}
    rng = np.random.default_rng(0)
    variants = [SpriteVariant.random(rng) for _ in range(4)]
    assert len({v.flip for v in variants} | {v.gains for v in variants}) > 2  # they really vary
    for name in DESIGNS:
        for variant in variants:
            instance = _boxed(name, variant)
            guess = min(prototypes, key=lambda n: min(np.abs(instance - p).mean() for p in prototypes[n]))
            assert guess == name


def test_render_sprite_sizes_flip_and_tiny_sizes():
    rgb, mask = render_sprite("car", 51, 30)
    assert rgb.shape == (30, 51, 3) and mask.shape == (30, 51) and rgb.dtype == np.uint8
    assert 0.3 < mask.mean() < 0.95
    flipped_rgb, flipped_mask = render_sprite("car", 51, 30, SpriteVariant(flip=True))
    assert np.array_equal(flipped_mask, mask[:, ::-1])
    for name in DESIGNS:
        assert render_sprite(name, 4, 4)[1].any(), name


# ---- world ------------------------------------------------------------------------------------
def _world(age: float | None, seed: int, frames: int = 150, size: int = 64) -> VideoWorld:
    behaviour = Behaviour.adult() if age is None else Behaviour.infant(age)
    domain = ADULT_WORKPLACE if age is None else INFANT_HOME
    return VideoWorld(seed, num_frames=frames, fps=5, size=size, domain=domain, behaviour=behaviour)


def test_visible_boxes_lie_in_the_frame_and_cover_drawn_object_pixels():
    world = _world(24, seed=3)
    checked = 0
    for index in range(0, world.num_frames, 5):
        frame, visible = world.render(index)
        bare, none = world.render(index, objects=False)
        assert none == []
        drawn = np.abs(frame.astype(int) - bare.astype(int)).sum(axis=2) > 0
        for v in visible:
            x, y, w, h = v.bbox
            assert 0 <= x and 0 <= y and w > 0 and h > 0 and x + w <= world.size and y + h <= world.size
            inside = drawn[y:y + h, x:x + w]
            assert inside.sum() >= min(v.area, inside.size) * 0.8  # the object's pixels really are there
            assert inside[:, 0].any() and inside[:, -1].any() and inside[0].any() and inside[-1].any()  # tight box
            checked += 1
    assert checked > 10


def test_render_is_deterministic_and_seed_dependent():
    a, b, c = _world(18, seed=5), _world(18, seed=5), _world(18, seed=6)
    for index in (0, 37, 149):
        assert np.array_equal(a.render(index)[0], b.render(index)[0])
    assert not all(np.array_equal(a.render(i)[0], c.render(i)[0]) for i in (0, 37, 149))


def _complexity(age: float) -> tuple[float, float, float]:
    objects, motion, vocab = [], [], set()
    for seed in range(6):
        world = _world(age, seed=seed, frames=600, size=48)
        for scene in world.scenes:
            objects.append(len(scene.tracks))
            motion.append(float(np.abs(np.diff(scene.cx)).mean() + np.abs(np.diff(scene.cy)).mean()))
            vocab |= {t.category.name for t in scene.tracks}
    return float(np.mean(objects)), float(np.mean(motion)), len(vocab)


def test_scene_complexity_grows_with_age():
    young, old = _complexity(7), _complexity(31)
    assert old[0] > young[0] * 1.5  # objects per scene
    assert old[1] > young[1]  # camera motion
    assert old[2] > young[2]  # distinct object kinds
    scenes = [s for seed in range(6) for s in _world(31, seed, 600, 48).scenes]
    assert max(sum(t.role == "resident" for t in s.tracks) for s in scenes) <= 12  # the scene's own objects
    assert max(sum(t.role == "pile" for t in s.tracks) for s in scenes) <= 12  # a pile holds up to 12
    assert any(t.role == "passer" for s in scenes for t in s.tracks)


def test_clear_floor_crossings_leave_every_other_track_as_it_was():
    """The extra crossings of scenes without a pile come from their own stream: the piles, the other tracks
    and their ids are exactly those of a world without them (so Counting's piles do not move)."""
    import dataclasses

    behaviour = Behaviour.infant(14)
    without = dataclasses.replace(behaviour, clear_floor_passer_rate=0.0)
    with_them = VideoWorld(5, num_frames=900, fps=5, size=48, domain=INFANT_HOME, behaviour=behaviour)
    plain = VideoWorld(5, num_frames=900, fps=5, size=48, domain=INFANT_HOME, behaviour=without)
    added = 0
    for scene, base in zip(with_them.scenes, plain.scenes, strict=True):
        assert _same_tracks(scene.tracks[: len(base.tracks)], base.tracks)
        extra = scene.tracks[len(base.tracks):]
        assert all(t.role == "passer" for t in extra)
        if scene.pile_centre is not None:
            assert not extra  # a scene with a pile keeps its crossings as they were
        added += len(extra)
    assert added >= 10 and any(s.pile_centre is not None for s in plain.scenes)
    ids = [t.track_id for s in with_them.scenes for t in s.tracks]
    assert len(ids) == len(set(ids))


def _same_tracks(a: list, b: list) -> bool:
    return all(x.track_id == y.track_id and x.category == y.category and np.array_equal(x.xs, y.xs)
               and np.array_equal(x.ys, y.ys) for x, y in zip(a, b, strict=True))


def test_objects_enter_and_leave_the_frame():
    world = _world(28, seed=2, frames=600)
    tracks_per_frame = [{v.track_id for v in world.render(i)[1]} for i in range(world.num_frames)]
    entered = sum(len(b - a) for a, b in zip(tracks_per_frame, tracks_per_frame[1:], strict=False))
    left = sum(len(a - b) for a, b in zip(tracks_per_frame, tracks_per_frame[1:], strict=False))
    assert entered >= 3 and left >= 3


def test_domains_look_different():
    """Infant homes are warm (red above blue); adult workplaces are cool and darker."""
    def colour(age):
        frames = [_world(age, seed=s, frames=60).render(i)[0].reshape(-1, 3).mean(0) for s in range(4) for i in (0, 59)]
        return np.mean(frames, axis=0)

    home, work = colour(20), colour(None)
    assert home[0] - home[2] > work[0] - work[2] + 15
    assert home.mean() > work.mean()


# ---- speech -----------------------------------------------------------------------------------
def _speech(rng: np.random.Generator, age: float, seed: int, frames: int,
            caregivers: tuple[str, str] = ("mother", "father")) -> tuple[list, list]:
    """An infant world's per-frame visibility (48 px, 5 fps) and what the caregivers say over it."""
    world = _world(age, seed=seed, frames=frames, size=48)
    visibility = [world.render(i)[1] for i in range(world.num_frames)]
    utterances = CaregiverSpeech(rng, visibility=visibility, events=world.events, fps=5, age_months=age,
                                 vocabulary=world.behaviour.vocabulary, caregivers=caregivers).utterances()
    return visibility, utterances


def test_caregiver_talks_about_visible_objects_more_than_absent_ones():
    visibility, utterances = _speech(np.random.default_rng(1), 22, seed=4, frames=1500)
    assert len(utterances) > 40
    starts = [u.start for u in utterances]
    assert all(b - a >= 1.0 for a, b in zip(starts, starts[1:], strict=False))
    assert len({int(s) for s in starts}) == len(starts)  # one CSV second per utterance
    seen = visible_mentions = absent_mentions = 0
    for u in utterances:
        frames = range(int(u.start * 5), min(len(visibility), int(np.ceil(u.end * 5))))
        seen = {v.category for i in frames for v in visibility[i]}
        for word in mentioned(u.text):
            visible_mentions += word in seen
            absent_mentions += word not in seen
    assert visible_mentions > 2 * absent_mentions > 0
    kinds = {u.kind for u in utterances}
    assert {"visible", "absent", "chatter"} <= kinds


def test_transcriber_and_asr_renderings():
    rng = np.random.default_rng(0)
    _, utterances = _speech(rng, 30, seed=1, frames=900, caregivers=("father", "mother"))
    lines = [transcriber_line(rng, u) for u in utterances]
    assert any(re.search(r"\*\w+\*|\[\w+\]|\(to sibling\)|--", line) for line in lines)
    assert all(line[0].isupper() or line[0] in "*([" for line in lines if line)
    asr = [asr_line(rng, u) for u in utterances]
    assert all(text == normalise(text) for text in asr)
    assert sum(a != u.text for a, u in zip(asr, utterances, strict=True)) > 0


# ---- transcript styles ------------------------------------------------------------------------
def test_time_cells_use_messy_forms_but_one_digit_seconds_only_for_tens():
    rng = np.random.default_rng(0)
    forms = set()
    for seconds in range(0, 400):
        for style in ("clock", "padded"):
            cell = time_cell(rng, seconds, style)
            if re.fullmatch(r"\d+:\d", cell):
                forms.add("tens")
                minutes, tens = cell.split(":")
                assert int(minutes) * 60 + int(tens) * 10 == seconds
            elif cell.startswith(":"):
                forms.add("short")
                assert seconds < 60 and int(cell[1:]) == seconds
            elif re.fullmatch(r"\d+\.0", cell):
                forms.add("float")
                assert float(cell) == seconds
            elif re.fullmatch(r"0\.\d{10}", cell):
                forms.add("excel")
                assert round(float(cell) * 86400) == seconds
            else:
                minutes, secs = cell.split(":")
                forms.add("padded" if len(minutes) == 2 else "clock")
                assert len(secs) == 2 and int(minutes) * 60 + int(secs) == seconds
    assert forms == {"tens", "short", "float", "excel", "padded", "clock"}
    assert time_cell(rng, 65, "range", end=69) == "01:05-01:09"


def test_csv_has_the_required_columns_and_rows_per_utterance():
    rng = np.random.default_rng(3)
    _, utterances = _speech(rng, 20, seed=2, frames=300)
    style = FileStyle.random(rng)
    rows = video_rows(rng, "S_20141029_2412_02", utterances, style)
    data = render_csv(style, [rows])
    text = data.decode("utf-8-sig")
    header = text.split("\r\n")[0].split(",")
    assert {"Time", "Video Name", "Utterance", "Speaker"} <= set(header) and len(header) == 5
    assert len(rows.written) == len(utterances)
    assert text.count("\r\n") == 1 + len(rows.rows)


# ---- planning ---------------------------------------------------------------------------------
def test_calendar_age_matches_the_format_example():
    assert calendar_age(BIRTH_DATES["S"], dt.date(2014, 10, 29)) == (24, 12)  # S_20141029_2412
    assert add_months(dt.date(2013, 1, 31), 1) == dt.date(2013, 2, 28)
    for days in range(0, 1000, 7):
        when = BIRTH_DATES["A"] + dt.timedelta(days=days)
        months, rest = calendar_age(BIRTH_DATES["A"], when)
        assert add_months(BIRTH_DATES["A"], months) + dt.timedelta(days=rest) == when and 0 <= rest <= 30


def test_plan_spreads_sessions_over_ages_6_to_32_months_with_consistent_names():
    options = SaycamOptions(minutes=90, seed=11)
    plans = plan_videos(options)
    assert sum(p.num_frames for p in plans) == 90 * 60 * 5
    assert len({p.stem for p in plans}) == len(plans)
    for child in "SAY":
        mine = [p for p in plans if p.child == child]
        ages = [p.age_months for p in mine]
        assert min(ages) < 10 and max(ages) > 28
        for p in mine:
            assert 6 <= p.age_months < 32
            assert calendar_age(BIRTH_DATES[child], p.date) == (p.months, p.days)
            assert re.fullmatch(r"[SAY]_\d{8}_\d{4}_\d{2}", p.stem)
        sessions = {}
        for p in mine:
            sessions.setdefault(p.session, []).append(p.segment)
        assert all(sorted(s) == list(range(1, len(s) + 1)) for s in sessions.values())


@pytest.mark.parametrize("bad", [dict(minutes=0), dict(children=("S", "X")), dict(size=33), dict(fps=0), dict(children=())])
def test_bad_options_are_config_errors(bad):
    with pytest.raises(ConfigError):
        SaycamOptions(**{"minutes": 1.0, "seed": 0, **bad})

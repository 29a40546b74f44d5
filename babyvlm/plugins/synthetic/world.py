"""Scene and camera simulation: the egocentric view of a room full of objects, rendered frame by frame.

A video is a sequence of scenes. Each scene has a large background canvas (a home for the infant
domain, a kitchen / workshop / garden for the adult domain), objects that rest, get moved, roll,
are brought in or taken away, and a head-mounted camera that pans towards what the wearer looks at,
jitters with head motion and zooms (leans in). ``VideoWorld.render(i)`` returns frame ``i`` and the
objects visible in it (tight boxes of the pixels each object really shows after occlusion and
clipping), so annotations always agree with the pixels.

Everything is precomputed from one seeded ``numpy.random.Generator``; rendering is random-access and
vectorised (gathers for the camera view, masked copies for sprites).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

import numpy as np
from PIL import Image

from babyvlm.plugins.synthetic.sprites import DESIGNS, SpriteCache, SpriteVariant
from babyvlm.plugins.synthetic.vocabulary import (
    VOCABULARY,
    Category,
    category,
    development,
    vocabulary_for_age,
)

MIN_VISIBLE_FRACTION = 0.2  # of the object's full sprite area
MIN_VISIBLE_PIXELS = 12
CANVAS_SCALE = 1.8  # scene canvas side / frame side
ROLLING = frozenset({"ball", "car", "truck", "train", "apple", "block"})
# Things a pile is made of (small, many alike), and the sides passers leave the view through: every one
# of the eight, the left and right most (both Visual Delayed Response entries use those).
PILEABLE = ("ball", "block", "car", "apple", "duck", "cup", "spoon", "sock", "key", "cookie", "banana", "fish",
            "shoe", "book", "bowl", "flower", "truck", "train", "boat", "bottle")
PASS_DIRECTIONS = ((-1, 0), (1, 0), (0, -1), (0, 1), (-1, -1), (1, -1), (-1, 1), (1, 1))  # left, right, top, ...
PASS_WEIGHTS = (0.19, 0.19, 0.08, 0.08, 0.115, 0.115, 0.115, 0.115)
CROSSING_STREAM = 0xC7055  # spawn-key tail of the clear-floor crossings' random stream
PILE_MAX = 12  # the most objects one pile holds (Object Counting's answers run to 12)
OFF_VIEW = -1e4  # where an object waits while it is not in the scene


# ---- behaviour: how complex the world is, by who wears the camera ----------------------------
@dataclass(frozen=True)
class Behaviour:
    vocabulary: tuple[Category, ...]
    max_objects: int
    move_prob: float  # chance an object gets moved during a scene
    enter_leave_prob: float  # chance an object is brought in / taken away
    cluster_prob: float  # chance a scene holds several objects of one category
    gaze_seconds: float  # mean time between gaze shifts
    follow_rate: float  # how fast the head turns to a new target (1/s)
    jitter: float  # head-motion amplitude, fraction of the frame
    zoom_range: tuple[float, float]
    scene_seconds: tuple[float, float]
    hands_prob: float  # chance the wearer's hands are in view during a scene
    passer_rate: float = 0.0  # objects per second rolled, carried or walking across the view and out of it
    pile_prob: float = 0.0  # chance a scene holds a pile of one kind that grows and shrinks one object at a time
    # more crossings, per second, in scenes without a pile (a clear floor to roll things across): they come from
    # their own random stream and take track ids after every other track, so the rest of the world is unchanged
    clear_floor_passer_rate: float = 0.0

    @classmethod
    def infant(cls, age_months: float) -> Behaviour:
        """Young infants sit or lie: few objects, slow gaze, little motion. It all grows with age."""
        p = development(age_months)
        return cls(vocabulary=vocabulary_for_age(age_months), max_objects=round(3 + 9 * p),
                   move_prob=0.15 + 0.4 * p, enter_leave_prob=0.15 + 0.25 * p, cluster_prob=0.2 + 0.2 * p,
                   gaze_seconds=3.5 - 2.0 * p, follow_rate=0.8 + 1.6 * p, jitter=0.006 + 0.016 * p,
                   zoom_range=(0.92 - 0.1 * p, 1.12 + 0.18 * p), scene_seconds=(20.0, 60.0),
                   hands_prob=0.6 - 0.3 * p, passer_rate=0.7 + 1.4 * p, pile_prob=0.3 + 0.6 * p,
                   clear_floor_passer_rate=0.7 + 1.4 * p)

    @classmethod
    def adult(cls) -> Behaviour:
        return cls(vocabulary=VOCABULARY, max_objects=10, move_prob=0.55, enter_leave_prob=0.35, cluster_prob=0.3,
                   gaze_seconds=2.2, follow_rate=2.5, jitter=0.01, zoom_range=(0.85, 1.3), scene_seconds=(25.0, 70.0),
                   hands_prob=0.7, passer_rate=1.8, pile_prob=0.7)


# ---- domains: how the world looks -------------------------------------------------------------
def _smooth_noise(rng: np.random.Generator, height: int, width: int, cell: int) -> np.ndarray:
    """Value noise in [-1, 1]: a coarse random grid, bilinearly upsampled."""
    grid = rng.uniform(-1, 1, (height // cell + 2, width // cell + 2)).astype(np.float32)
    return np.asarray(Image.fromarray(grid, mode="F").resize((width, height), Image.BILINEAR), np.float32)


def _muted(rng: np.random.Generator, colours: list[tuple[int, int, int]]) -> np.ndarray:
    base = np.asarray(colours[rng.integers(len(colours))], np.float32)
    return np.clip(base * rng.uniform(0.92, 1.08, 3), 0, 255)


HOME_WALLS = [(236, 224, 200), (240, 232, 190), (205, 222, 232), (214, 230, 206), (226, 214, 232), (240, 214, 196)]
HOME_FLOORS = [(176, 128, 84), (196, 156, 110), (150, 106, 70), (204, 190, 170), (180, 170, 160)]
HOME_FURNITURE = [(150, 120, 110), (120, 130, 150), (170, 150, 120), (130, 140, 120), (180, 160, 150)]


def paint_home(rng: np.random.Generator, height: int, width: int) -> tuple[np.ndarray, str]:
    """A warm, softly lit room seen from the floor: pastel wall, wood / carpet / play-mat floor, a couch."""
    canvas = np.empty((height, width, 3), np.float32)
    horizon = int(height * rng.uniform(0.25, 0.42))
    canvas[:horizon] = _muted(rng, HOME_WALLS)
    xs = np.arange(width)[None, :]
    wallpaper = rng.integers(3)
    if wallpaper == 0:  # faint vertical stripes
        canvas[:horizon] *= (1 - 0.05 * (np.sin(xs * 2 * math.pi / rng.uniform(18, 40)) > 0))[..., None]
    elif wallpaper == 1:
        canvas[:horizon] *= (1 + 0.04 * _smooth_noise(rng, horizon, width, 24))[..., None]
    floor_kind = ("wood", "carpet", "playmat")[rng.integers(3)]
    floor = canvas[horizon:]
    floor[:] = _muted(rng, HOME_FLOORS)
    rows = floor.shape[0]
    if floor_kind == "wood":
        plank = max(4, int(height * rng.uniform(0.04, 0.07)))
        shades = rng.uniform(0.85, 1.1, rows // plank + 2)
        ys = np.arange(rows)
        floor *= shades[ys // plank][:, None, None]
        floor *= (1 + 0.05 * np.sin(xs * 0.08 + 3 * _smooth_noise(rng, rows, width, 16)))[..., None]
        floor[ys % plank == 0] *= 0.7
    elif floor_kind == "carpet":
        floor *= (1 + 0.08 * _smooth_noise(rng, rows, width, 6) + 0.05 * _smooth_noise(rng, rows, width, 40))[..., None]
    else:  # foam play mat: large muted tiles
        tile = max(8, int(height * rng.uniform(0.12, 0.2)))
        colours = np.stack([_muted(rng, HOME_FURNITURE + HOME_WALLS) for _ in range(4)])
        ys = np.arange(rows)[:, None]
        floor[:] = colours[((ys // tile) * 3 + xs // tile) % 4]
    canvas[max(0, horizon - 3):horizon + 2] = (235, 232, 225)  # skirting board
    _furnish_home(rng, canvas, horizon)
    return np.clip(canvas, 0, 255).astype(np.uint8), f"home/{floor_kind}"


def _furnish_home(rng: np.random.Generator, canvas: np.ndarray, horizon: int) -> None:
    height, width = canvas.shape[:2]
    if rng.random() < 0.7:  # a window on the wall
        w, h = int(width * rng.uniform(0.15, 0.25)), int(horizon * rng.uniform(0.5, 0.75))
        x, y = int(rng.uniform(0.05, 0.75) * width), int(horizon * 0.1)
        canvas[y:y + h, x:x + w] = (225, 238, 248)
        canvas[y + h // 2 - 1:y + h // 2 + 2, x:x + w] = (245, 245, 240)
        canvas[y:y + h, x + w // 2 - 1:x + w // 2 + 2] = (245, 245, 240)
    if rng.random() < 0.6:  # a couch standing on the skirting line
        w, h = int(width * rng.uniform(0.3, 0.45)), int(height * rng.uniform(0.12, 0.2))
        x = int(rng.uniform(0.0, 1.0) * (width - w))
        colour = _muted(rng, HOME_FURNITURE)
        top = max(0, horizon - h // 2)
        canvas[top:top + h, x:x + w] = colour
        canvas[top:top + h // 3, x:x + w] = colour * 0.85
        canvas[top:top + h, x:x + w // 10] = colour * 0.8
        canvas[top:top + h, x + w - w // 10:x + w] = colour * 0.8


KITCHEN_TILES = [(232, 234, 236), (210, 216, 220), (190, 205, 210), (236, 236, 228)]
COUNTERS = [(70, 72, 78), (52, 54, 60), (150, 150, 155), (120, 100, 80)]
WORKBENCH = [(196, 170, 130), (170, 140, 100)]
GRASS = [(70, 120, 60), (90, 135, 60), (60, 105, 70)]


def paint_workplace(rng: np.random.Generator, height: int, width: int) -> tuple[np.ndarray, str]:
    """An adult's view down onto a work surface: kitchen counter, workbench or garden bed."""
    setting = ("kitchen", "workshop", "garden")[rng.integers(3)]
    canvas = np.empty((height, width, 3), np.float32)
    top = int(height * rng.uniform(0.12, 0.25))  # adults look down: the surface fills most of the view
    xs, ys = np.arange(width)[None, :], np.arange(height)[:, None]
    if setting == "kitchen":
        tile = max(6, int(height * 0.05))
        canvas[:top] = _muted(rng, KITCHEN_TILES)
        offset = (ys[:top] // (tile // 2) % 2) * (tile // 2)
        grout = ((ys[:top] % (tile // 2)) == 0) | (((xs + offset) % tile) == 0)
        canvas[:top][grout] *= 0.75
        canvas[top:] = _muted(rng, COUNTERS)
        speckle = np.repeat(np.repeat(rng.random(((height - top + 1) // 2, (width + 1) // 2)) < 0.05, 2, 0), 2, 1)
        canvas[top:][speckle[: height - top, :width]] *= rng.uniform(1.3, 1.7)  # granite
    elif setting == "workshop":
        canvas[:top] = (150, 120, 85)
        holes = ((ys[:top] % 10) == 5) & ((xs % 10) == 5)  # pegboard
        canvas[:top][holes] = (40, 30, 25)
        canvas[top:] = _muted(rng, WORKBENCH)
        grain = np.sin(ys[top:] * 0.5 + 4 * _smooth_noise(rng, height - top, width, 30))
        canvas[top:] *= (1 + 0.07 * grain)[..., None]
    else:
        canvas[:top] = np.linspace((150, 190, 235), (205, 220, 235), top)[:, None, :]
        canvas[top:] = _muted(rng, GRASS)
        canvas[top:] *= (1 + 0.15 * _smooth_noise(rng, height - top, width, 6))[..., None]
        dirt = _smooth_noise(rng, height - top, width, 40) > 0.35
        canvas[top:][dirt] = (110, 85, 60)
    canvas[top:top + 2] *= 0.6
    return np.clip(canvas, 0, 255).astype(np.uint8), setting


@dataclass(frozen=True)
class Domain:
    name: str
    paint: Callable[[np.random.Generator, int, int], tuple[np.ndarray, str]]
    object_size: tuple[float, float]  # longest side, fraction of the frame
    gains_low: tuple[float, float, float]
    gains_high: tuple[float, float, float]
    exposure: tuple[float, float]
    vignette: float
    hand_colour: tuple[int, int, int]


INFANT_HOME = Domain("saycam", paint_home, (0.18, 0.4), (1.0, 0.97, 0.8), (1.1, 1.03, 0.93), (0.88, 1.08), 0.18,
                     (240, 196, 170))
ADULT_WORKPLACE = Domain("ego4d", paint_workplace, (0.12, 0.28), (0.86, 0.96, 1.0), (0.96, 1.04, 1.14), (0.72, 1.25),
                         0.38, (200, 150, 120))


# ---- the moving parts -------------------------------------------------------------------------
@dataclass(frozen=True)
class Event:
    """Something a narrator could describe: an object entering, leaving, being moved or rolling."""

    kind: str  # enter | leave | move | roll
    start: float
    end: float
    track_id: int
    category: str


@dataclass
class Track:
    track_id: int
    category: Category
    variant: SpriteVariant
    width: float  # scene px
    height: float
    xs: np.ndarray  # per frame of the scene
    ys: np.ndarray
    role: str = "resident"  # resident (the scene's own objects) | pile | passer (crosses the view once)


@dataclass
class Scene:
    index: int
    start_frame: int
    end_frame: int
    setting: str
    background: np.ndarray
    tracks: list[Track]
    gains: np.ndarray  # colour of the light
    cx: np.ndarray = field(default_factory=lambda: np.zeros(0))
    cy: np.ndarray = field(default_factory=lambda: np.zeros(0))
    zoom: np.ndarray = field(default_factory=lambda: np.zeros(0))
    exposure: np.ndarray = field(default_factory=lambda: np.zeros(0))
    hands: np.ndarray = field(default_factory=lambda: np.zeros((0, 3)))  # per frame: visible, x, size (frame units)
    pile_centre: tuple[float, float] | None = None  # where a pile is being built (the child watches it)


@dataclass(frozen=True)
class Visible:
    track_id: int
    category: str
    category_id: int
    bbox: tuple[int, int, int, int]  # x, y, w, h in frame pixels
    area: int  # visible pixels
    fraction: float  # visible share of the whole object


def _eased_path(times: list[float], points: list[tuple[float, float]], frame_times: np.ndarray, eased: list[bool]):
    """Positions at ``frame_times``; segments marked eased use smoothstep (carried), others are linear (rolled)."""
    dense_t, dense_x, dense_y = [times[0]], [points[0][0]], [points[0][1]]
    for k in range(1, len(times)):
        steps = np.linspace(0, 1, 9)[1:]
        weights = steps * steps * (3 - 2 * steps) if eased[k - 1] else steps
        for s, w in zip(steps, weights, strict=True):
            dense_t.append(times[k - 1] + s * (times[k] - times[k - 1]))
            dense_x.append(points[k - 1][0] + w * (points[k][0] - points[k - 1][0]))
            dense_y.append(points[k - 1][1] + w * (points[k][1] - points[k - 1][1]))
    return np.interp(frame_times, dense_t, dense_x), np.interp(frame_times, dense_t, dense_y)


class VideoWorld:
    """One video's worth of simulated world: scenes, object tracks, camera path, lighting."""

    def __init__(self, seed: int | list[int], *, num_frames: int, fps: float, size: int, domain: Domain,
                 behaviour: Behaviour):
        if num_frames < 1 or size < 16 or fps <= 0:
            raise ValueError(f"need num_frames >= 1, size >= 16 and fps > 0; got {num_frames}, {size}, {fps}")
        sequence = seed if isinstance(seed, np.random.SeedSequence) else np.random.SeedSequence(seed)
        self.rng = np.random.default_rng(sequence)
        # the clear-floor crossings' own stream (a child of the world's seed that nothing else draws from)
        self._crossing_rng = np.random.default_rng(
            np.random.SeedSequence(sequence.entropy, spawn_key=(*sequence.spawn_key, CROSSING_STREAM)))
        self.num_frames, self.fps, self.size = num_frames, fps, size
        self.domain, self.behaviour = domain, behaviour
        self.events: list[Event] = []
        self.gazes: list[tuple[float, int | None]] = []  # (time, track looked at)
        self._next_track = 0
        self.scenes = self._plan_scenes()
        self._plan_clear_floor_crossings()
        self._scene_of_frame = np.concatenate([np.full(s.end_frame - s.start_frame, k) for k, s in enumerate(self.scenes)])
        self._sprites = SpriteCache()
        self._vignette = self._make_vignette()
        self._lights: dict[int, np.ndarray] = {}

    # ---- planning ------------------------------------------------------------------------
    def _plan_scenes(self) -> list[Scene]:
        scenes, start = [], 0
        low, high = self.behaviour.scene_seconds
        while start < self.num_frames:
            length = int(self.rng.uniform(low, high) * self.fps)
            end = self.num_frames if self.num_frames - (start + length) < low * self.fps / 2 else start + length
            scenes.append(self._plan_scene(len(scenes), start, end))
            start = end
        return scenes

    def _plan_scene(self, index: int, start: int, end: int) -> Scene:
        canvas_side = round(self.size * CANVAS_SCALE)
        background, setting = self.domain.paint(self.rng, canvas_side, canvas_side)
        gains = self.rng.uniform(self.domain.gains_low, self.domain.gains_high).astype(np.float32)
        scene = Scene(index, start, end, setting, background, [], gains)
        times = np.arange(start, end) / self.fps
        names = self._choose_categories()
        cluster = self._cluster_centre(names, canvas_side)
        for name in names:
            near = cluster if cluster is not None and names.count(name) > 1 else None
            scene.tracks.append(self._plan_track(name, times, canvas_side, scene.tracks, near))
        if self.rng.random() < self.behaviour.pile_prob:
            pile = self._plan_pile(names, times, canvas_side, scene.tracks)
            if pile:
                scene.tracks += pile
                scene.pile_centre = (float(np.mean([t.xs[-1] for t in pile])), float(np.mean([t.ys[-1] for t in pile])))
        self._plan_camera(scene, times, canvas_side)
        scene.tracks += self._plan_passers(scene, times, canvas_side, {t.category.name for t in scene.tracks})
        self._plan_light_and_hands(scene, times, first=index == 0)
        return scene

    def _choose_categories(self) -> list[str]:
        behaviour, rng = self.behaviour, self.rng
        words = [c.name for c in behaviour.vocabulary]
        count = int(rng.integers(1, behaviour.max_objects + 1))
        # earlier-acquired words are the more common objects in a child's world
        weights = 1.0 / (1.0 + 0.08 * np.arange(len(words)))
        picks = rng.choice(len(words), size=min(count, len(words)), replace=False, p=weights / weights.sum())
        chosen = [words[int(k)] for k in picks]
        if count >= 3 and rng.random() < behaviour.cluster_prob:
            repeats = int(rng.integers(2, min(8, count) + 1))
            chosen = chosen[: count - repeats] + [chosen[-1]] * repeats
        return chosen

    def _cluster_centre(self, names: list[str], side: int) -> tuple[float, float] | None:
        """Repeated objects lie together (a pile of blocks), so they can be seen - and counted - at once."""
        if len(set(names)) == len(names):
            return None
        return float(self.rng.uniform(0.35, 0.65) * side), float(self.rng.uniform(0.5, 0.75) * side)

    def _plan_track(self, name: str, times: np.ndarray, side: int, placed: list[Track],
                    near: tuple[float, float] | None = None) -> Track:
        rng, behaviour = self.rng, self.behaviour
        variant = SpriteVariant.random(rng)
        aspect = DESIGNS[name].aspect * variant.aspect_scale
        longest = self.size * rng.uniform(*self.domain.object_size)
        width, height = (longest, longest / aspect) if aspect >= 1 else (longest * aspect, longest)
        rest = self._free_spot(width, height, side, placed, near)
        t0, t1 = float(times[0]), float(times[-1]) + 1 / self.fps
        path_t, path_p, eased = [t0], [rest], []
        track_id = self._next_track
        self._next_track += 1
        if rng.random() < behaviour.enter_leave_prob and t1 - t0 > 6:  # brought in from outside the room
            arrive = float(rng.uniform(t0 + 2.5, t0 + max(2.6, 0.5 * (t1 - t0))))
            depart = arrive - float(rng.uniform(1.0, 2.2))
            path_p[0] = self._off_canvas(width, height, side)
            path_t += [depart, arrive]
            path_p += [path_p[0], rest]
            eased += [False, True]
            self.events.append(Event("enter", depart, arrive, track_id, name))
        moves = int(rng.random() < behaviour.move_prob) + int(rng.random() < behaviour.move_prob / 3)
        for _ in range(moves):
            begin = float(rng.uniform(path_t[-1] + 0.5, path_t[-1] + 0.5 + (t1 - path_t[-1]) * 0.6))
            rolls = name in ROLLING and rng.random() < 0.6
            finish = begin + float(rng.uniform(1.2, 3.5) if rolls else rng.uniform(0.8, 2.5))
            if finish >= t1 - 0.5:
                break
            target = self._free_spot(width, height, side, placed)
            path_t += [begin, finish]
            path_p += [path_p[-1], target]
            eased += [True, not rolls]
            self.events.append(Event("roll" if rolls else "move", begin, finish, track_id, name))
        if rng.random() < behaviour.enter_leave_prob / 2 and t1 - path_t[-1] > 4:  # taken away
            begin = float(rng.uniform(path_t[-1] + 1, t1 - 2))
            finish = begin + float(rng.uniform(1.0, 2.5))
            path_t += [begin, finish]
            path_p += [path_p[-1], self._off_canvas(width, height, side)]
            eased += [True, True]
            self.events.append(Event("leave", begin, min(finish, t1), track_id, name))
        xs, ys = _eased_path(path_t, path_p, times, eased)
        return Track(track_id, category(name), variant, width, height, xs.astype(np.float32), ys.astype(np.float32))

    def _plan_pile(self, names: list[str], times: np.ndarray, side: int, placed: list[Track]) -> list[Track]:
        """Up to ``PILE_MAX`` small objects of one kind gathered in one place, brought in one at a time and
        some taken away again: over a scene the pile shows many different counts (what Object Counting and
        Who Has More need). Item sizes vary within and between piles, independent of the count."""
        rng = self.rng
        kinds = [name for name in PILEABLE if name not in names and any(c.name == name for c in self.behaviour.vocabulary)]
        if not kinds:
            return []
        name = str(kinds[int(rng.integers(len(kinds)))])
        total = int(rng.integers(6, PILE_MAX + 1))
        centre = (float(rng.uniform(0.4, 0.6) * side), float(rng.uniform(0.55, 0.72) * side))
        typical = self.size * float(rng.uniform(0.08, 0.12))
        radius = typical * math.sqrt(total * 2.4 / math.pi)  # room for every object without overlapping
        t0, t1 = float(times[0]), float(times[-1]) + 1 / self.fps
        present = int(rng.integers(1, total + 1))  # there from the start; the rest arrive one by one
        arrivals = sorted(rng.uniform(t0 + 1.0, t0 + 0.5 * (t1 - t0), total - present))
        tracks = []
        for k in range(total):
            variant = SpriteVariant.random(rng)
            aspect = DESIGNS[name].aspect * variant.aspect_scale
            longest = typical * float(rng.uniform(0.8, 1.25))
            width, height = (longest, longest / aspect) if aspect >= 1 else (longest * aspect, longest)
            rest = self._pile_spot(centre, radius, width, height, side, tracks)
            path_t, path_p, eased = [t0], [rest], []
            track_id = self._next_track
            self._next_track += 1
            if k >= present:
                arrive = float(arrivals[k - present])
                start = self._off_canvas(width, height, side)
                path_p[0] = start
                path_t += [max(t0, arrive - float(rng.uniform(0.8, 1.6))), arrive]
                path_p += [start, rest]
                eased += [False, True]
                self.events.append(Event("enter", path_t[-2], arrive, track_id, name))
            if rng.random() < 0.25 and t1 - path_t[-1] > 4:  # taken away again
                begin = float(rng.uniform(path_t[-1] + 1, t1 - 2))
                path_t += [begin, begin + float(rng.uniform(0.8, 1.6))]
                path_p += [rest, self._off_canvas(width, height, side)]
                eased += [True, True]
                self.events.append(Event("leave", begin, min(path_t[-1], t1), track_id, name))
            xs, ys = _eased_path(path_t, path_p, times, eased)
            tracks.append(Track(track_id, category(name), variant, width, height, xs.astype(np.float32),
                                ys.astype(np.float32), role="pile"))
        return tracks

    def _pile_spot(self, centre: tuple[float, float], radius: float, width: float, height: float, side: int,
                   placed: list[Track]) -> tuple[float, float]:
        """A resting place within ``radius`` of the pile's centre, touching no earlier pile object if it can."""
        best, best_gap = centre, -math.inf
        for _ in range(20):
            angle, distance = self.rng.uniform(0, 2 * math.pi), radius * math.sqrt(self.rng.uniform(0, 1))
            x = float(np.clip(centre[0] + distance * math.cos(angle), width / 2, side - width / 2))
            y = float(np.clip(centre[1] + distance * math.sin(angle), height / 2, side - height / 2))
            gap = min((max(abs(x - float(t.xs[-1])) - (width + t.width) / 2,
                           abs(y - float(t.ys[-1])) - (height + t.height) / 2) for t in placed), default=side)
            if gap > best_gap:
                best, best_gap = (x, y), gap
            if gap > 2:
                break
        return best

    def _plan_clear_floor_crossings(self) -> None:
        """``clear_floor_passer_rate`` more crossings in every scene without a pile, after all scenes are
        planned and from their own stream: the piles, the other tracks and their ids stay as they were."""
        rate = self.behaviour.clear_floor_passer_rate
        if rate <= 0:
            return
        canvas_side = round(self.size * CANVAS_SCALE)
        for scene in self.scenes:
            if scene.pile_centre is None:
                times = np.arange(scene.start_frame, scene.end_frame) / self.fps
                scene.tracks += self._plan_passers(scene, times, canvas_side, set(), rate=rate, rng=self._crossing_rng)

    def _plan_passers(self, scene: Scene, times: np.ndarray, side: int, taken: set[str], rate: float | None = None,
                      rng: np.random.Generator | None = None) -> list[Track]:
        """Objects that cross the view and leave it through one of its eight sides and corners (a ball
        rolling past, a toy carried off, the dog walking by), planned in view coordinates after the camera
        path so each really leaves the picture the way it was sent."""
        rng = self.rng if rng is None else rng
        rate = self.behaviour.passer_rate if rate is None else rate
        n = len(times)
        duration = n / self.fps
        words = [c.name for c in self.behaviour.vocabulary]
        tracks = []
        for _ in range(int(rng.poisson(rate * duration))):
            crossing = float(rng.uniform(1.6, 3.0))
            if duration < crossing + 0.5:
                break
            start = float(rng.uniform(times[0], times[0] + duration - crossing))
            dx, dy = PASS_DIRECTIONS[int(rng.choice(len(PASS_DIRECTIONS), p=PASS_WEIGHTS))]
            name = str(words[int(rng.integers(len(words)))])
            tracks.append(self._passer(scene, times, side, name, start, crossing, (dx, dy), rng))
        return tracks

    def _passer(self, scene: Scene, times: np.ndarray, side: int, name: str, start: float, crossing: float,
                direction: tuple[int, int], rng: np.random.Generator) -> Track:
        variant = SpriteVariant.random(rng)
        aspect = DESIGNS[name].aspect * variant.aspect_scale
        longest = self.size * rng.uniform(*self.domain.object_size)
        width, height = (longest, longest / aspect) if aspect >= 1 else (longest * aspect, longest)
        beyond = max(width, height)  # far enough outside the view to be gone
        exit_point = np.asarray([self._beyond(direction[0], beyond, rng), self._beyond(direction[1], beyond, rng)])
        entry_point = np.asarray([self._beyond(-direction[0], beyond, rng), self._beyond(-direction[1], beyond, rng)])
        frame_t = times - start
        fraction = np.clip(frame_t / crossing, 0, 1)[:, None]
        view = entry_point[None, :] + fraction * (exit_point - entry_point)[None, :]  # frame pixels
        zoom = scene.zoom
        xs = scene.cx + (view[:, 0] - self.size / 2) / zoom
        ys = scene.cy + (view[:, 1] - self.size / 2) / zoom
        gone = (frame_t < 0) | (frame_t > crossing)
        xs[gone], ys[gone] = OFF_VIEW, OFF_VIEW
        track_id = self._next_track
        self._next_track += 1
        self.events.append(Event("roll" if name in ROLLING else "move", start, start + crossing, track_id, name))
        return Track(track_id, category(name), variant, width, height, xs.astype(np.float32), ys.astype(np.float32),
                     role="passer")

    def _beyond(self, step: int, margin: float, rng: np.random.Generator) -> float:
        """A view coordinate past the edge ``step`` points at (-1 before 0, +1 after the side), or along
        the middle of the view for 0."""
        if step < 0:
            return -margin * float(rng.uniform(0.8, 1.2))
        if step > 0:
            return self.size + margin * float(rng.uniform(0.8, 1.2))
        return self.size * float(rng.uniform(0.25, 0.75))

    def _free_spot(self, width: float, height: float, side: int, placed: list[Track],
                   near: tuple[float, float] | None = None) -> tuple[float, float]:
        """A resting place on the lower part of the canvas (or near ``near``), away from objects already there."""
        best, best_gap = (side / 2, side * 0.7), -math.inf
        spread = self.size * 0.3
        for _ in range(12):
            if near is None:
                x = float(self.rng.uniform(width / 2 + 4, side - width / 2 - 4))
                y = float(self.rng.uniform(max(height / 2 + 4, side * 0.3), side - height / 2 - 4))
            else:
                x = float(np.clip(near[0] + self.rng.uniform(-spread, spread), width / 2, side - width / 2))
                y = float(np.clip(near[1] + self.rng.uniform(-spread, spread), height / 2, side - height / 2))
            gap = min((math.hypot(x - t.xs[-1], y - t.ys[-1]) - (max(width, height) + max(t.width, t.height)) / 2
                       for t in placed), default=side)
            if gap > best_gap:
                best, best_gap = (x, y), gap
            if gap > 0:
                break
        return best

    def _off_canvas(self, width: float, height: float, side: int) -> tuple[float, float]:
        """A point off the canvas beyond any of its four sides or corners: where objects are carried
        in from and taken away to (lifted up, carried off sideways, pushed down), so the way an object
        leaves says nothing of what it is."""
        margin = max(width, height)
        dx, dy = PASS_DIRECTIONS[int(self.rng.integers(len(PASS_DIRECTIONS)))]
        return (self._edge_point(dx, margin, side), self._edge_point(dy, margin, side))

    def _edge_point(self, step: int, margin: float, side: int) -> float:
        if step < 0:
            return -margin
        if step > 0:
            return side + margin
        return float(self.rng.uniform(0.3, 0.9) * side)

    def _plan_camera(self, scene: Scene, times: np.ndarray, side: int) -> None:
        rng, behaviour, n = self.rng, self.behaviour, len(times)
        dt = 1 / self.fps
        cx, cy = np.empty(n, np.float32), np.empty(n, np.float32)
        x, y = side / 2, side * 0.6
        target: int | None = None
        point = (x, y)
        next_shift = 0.0
        for i, t in enumerate(times):
            if t >= next_shift:
                target, point = self._pick_gaze(scene, i, side)
                self.gazes.append((float(t), target))
                next_shift = t + rng.exponential(behaviour.gaze_seconds) + 0.5
            if target is not None:
                track = scene.tracks[target]
                point = (float(track.xs[i]), float(track.ys[i]))
            follow = 1 - math.exp(-behaviour.follow_rate * dt)
            x += (point[0] - x) * follow
            y += (point[1] - y) * follow
            cx[i], cy[i] = x, y
        amplitude = behaviour.jitter * self.size
        for axis in (cx, cy):
            for _ in range(2):  # head bob: a couple of slow oscillations
                axis += amplitude * 2 * np.sin(2 * math.pi * rng.uniform(0.2, 1.2) * times + rng.uniform(0, 2 * math.pi))
            axis += amplitude * _smooth_series(rng, n, max(1, round(self.fps / 2))).astype(np.float32)
        low, high = behaviour.zoom_range
        wobble = _smooth_series(rng, n, max(2, int(self.fps * 3)))
        zoom = (low + (high - low) * (wobble + 1) / 2).astype(np.float32)
        half = self.size / (2 * zoom)
        scene.cx = np.clip(cx, half, side - half)
        scene.cy = np.clip(cy, half, side - half)
        scene.zoom = zoom

    def _pick_gaze(self, scene: Scene, i: int, side: int) -> tuple[int | None, tuple[float, float]]:
        if scene.pile_centre is not None and self.rng.random() < 0.7:  # a pile being built holds attention
            return None, scene.pile_centre
        on_canvas = [k for k, t in enumerate(scene.tracks) if 0 <= t.xs[i] <= side and 0 <= t.ys[i] <= side]
        if on_canvas and self.rng.random() < 0.75:  # people mostly look at things
            return int(self.rng.choice(on_canvas)), (0.0, 0.0)
        return None, (float(self.rng.uniform(0.25, 0.75) * side), float(self.rng.uniform(0.35, 0.8) * side))

    def _plan_light_and_hands(self, scene: Scene, times: np.ndarray, first: bool) -> None:
        rng, n = self.rng, len(times)
        base = rng.uniform(*self.domain.exposure)
        exposure = base * (1 + 0.05 * _smooth_series(rng, n, max(2, int(self.fps * 4))))
        if not first:  # auto-exposure catching up after moving to a new place
            ramp = min(n, max(1, int(0.6 * self.fps)))
            exposure[:ramp] *= np.linspace(0.45, 1.0, ramp)
        scene.exposure = exposure.astype(np.float32)
        hands = np.zeros((n, 3), np.float32)
        if rng.random() < self.behaviour.hands_prob:
            for _ in range(int(rng.integers(1, 4))):
                begin = int(rng.integers(0, n))
                length = int(rng.uniform(1.5, 5.0) * self.fps)
                stop = min(n, begin + length)
                drift = np.linspace(rng.uniform(0.2, 0.8), rng.uniform(0.2, 0.8), stop - begin)
                hands[begin:stop] = np.stack([np.ones_like(drift), drift, np.full_like(drift, rng.uniform(0.22, 0.34))], 1)
        scene.hands = hands

    def _make_vignette(self) -> np.ndarray:
        axis = (np.arange(self.size, dtype=np.float32) + 0.5) / self.size * 2 - 1
        radius2 = axis[None, :] ** 2 + axis[:, None] ** 2
        return (1 - self.domain.vignette * radius2 / 2).astype(np.float32)

    # ---- rendering -----------------------------------------------------------------------
    def scene_at(self, frame_index: int) -> Scene:
        return self.scenes[int(self._scene_of_frame[frame_index])]

    def render(self, frame_index: int, *, objects: bool = True, hands: bool = True) -> tuple[np.ndarray, list[Visible]]:
        """Frame ``frame_index`` (HxWx3 uint8) and what is visible in it; ``objects=False`` leaves the objects out."""
        scene = self.scene_at(frame_index)
        i = frame_index - scene.start_frame
        size, zoom = self.size, float(scene.zoom[i])
        left, top = float(scene.cx[i]) - size / (2 * zoom), float(scene.cy[i]) - size / (2 * zoom)
        offsets = (np.arange(size, dtype=np.float32) + 0.5) / zoom
        side = scene.background.shape[0]
        cols = np.clip((left + offsets).astype(np.int32), 0, side - 1)
        rows = np.clip((top + offsets).astype(np.int32), 0, side - 1)
        frame = scene.background[rows[:, None], cols[None, :]]
        visible: list[Visible] = []
        owner = np.full((size, size), -1, np.int16)
        pasted = self._paste_objects(frame, owner, scene, i, left, top, zoom) if objects else {}
        if hands:
            self._paste_hands(frame, owner, scene.hands[i])
        if objects:
            visible = self._visibility(owner, pasted, scene)
        lit = frame.astype(np.float32)
        lit *= self._light(scene)
        lit *= scene.exposure[i]
        np.clip(lit, 0, 255, out=lit)
        return lit.astype(np.uint8), visible

    def _light(self, scene: Scene) -> np.ndarray:
        """The scene's light colour times the lens vignette (computed once per scene)."""
        if scene.index not in self._lights:
            self._lights = {scene.index: self._vignette[..., None] * scene.gains[None, None, :]}
        return self._lights[scene.index]

    def frames(self) -> Iterator[tuple[np.ndarray, list[Visible]]]:
        for index in range(self.num_frames):
            yield self.render(index)

    def _paste_objects(self, frame, owner, scene: Scene, i: int, left: float, top: float, zoom: float):
        size = self.size
        pasted = {}
        order = sorted(range(len(scene.tracks)), key=lambda k: (scene.tracks[k].ys[i] + scene.tracks[k].height / 2, k))
        for k in order:
            track = scene.tracks[k]
            width = max(2, 2 * round(track.width * zoom / 2))  # even sizes: the sprite cache stays warm
            height = max(2, 2 * round(track.height * zoom / 2))
            x0 = round((float(track.xs[i]) - left) * zoom - width / 2)
            y0 = round((float(track.ys[i]) - top) * zoom - height / 2)
            fx0, fy0, fx1, fy1 = max(0, x0), max(0, y0), min(size, x0 + width), min(size, y0 + height)
            if fx0 >= fx1 or fy0 >= fy1:
                continue
            rgb, mask, full_area = self._sprites.get(track.track_id, track.category.name, width, height, track.variant)
            sub = mask[fy0 - y0:fy1 - y0, fx0 - x0:fx1 - x0]
            frame[fy0:fy1, fx0:fx1][sub] = rgb[fy0 - y0:fy1 - y0, fx0 - x0:fx1 - x0][sub]
            owner[fy0:fy1, fx0:fx1][sub] = k
            pasted[k] = (fx0, fy0, fx1, fy1, full_area)
        return pasted

    def _paste_hands(self, frame, owner, hand: np.ndarray) -> None:
        """The wearer's own hand reaching in from the bottom edge (not an annotated object)."""
        if hand[0] <= 0:
            return
        size = self.size
        radius = hand[2] * size
        cx, cy = hand[1] * size, size + radius * 0.35
        ys = np.arange(size, dtype=np.float32)[:, None]
        xs = np.arange(size, dtype=np.float32)[None, :]
        inside = ((xs - cx) / (radius * 0.8)) ** 2 + ((ys - cy) / radius) ** 2 <= 1
        shade = (1.0 - 0.25 * np.clip((ys - (cy - radius)) / radius, 0, 1))
        colour = np.asarray(self.domain.hand_colour, np.float32)
        frame[inside] = (colour[None, :] * np.broadcast_to(shade, inside.shape)[inside][:, None]).astype(np.uint8)
        owner[inside] = -2

    def _visibility(self, owner: np.ndarray, pasted: dict, scene: Scene) -> list[Visible]:
        visible = []
        for k, (x0, y0, x1, y1, full_area) in sorted(pasted.items()):
            mine = owner[y0:y1, x0:x1] == k
            area = int(mine.sum())
            if area < MIN_VISIBLE_PIXELS or area < MIN_VISIBLE_FRACTION * full_area:
                continue
            rows = np.flatnonzero(mine.any(axis=1))
            cols = np.flatnonzero(mine.any(axis=0))
            track = scene.tracks[k]
            bbox = (x0 + int(cols[0]), y0 + int(rows[0]), int(cols[-1] - cols[0] + 1), int(rows[-1] - rows[0] + 1))
            visible.append(Visible(track.track_id, track.category.name, track.category.id, bbox, area,
                                   round(area / full_area, 3)))
        return visible

    def track_table(self) -> list[dict[str, object]]:
        """Per-instance facts for annotation files: category, sprite variant, scene."""
        return [{"track_id": t.track_id, "category_id": t.category.id, "scene": s.index, "role": t.role,
                 "variant": t.variant.to_dict()} for s in self.scenes for t in s.tracks]


def _smooth_series(rng: np.random.Generator, n: int, period: int) -> np.ndarray:
    """A slowly varying series in [-1, 1] (random knots every ``period`` samples, linearly joined)."""
    knots = rng.uniform(-1, 1, n // period + 2)
    return np.interp(np.arange(n) / period, np.arange(len(knots)), knots)

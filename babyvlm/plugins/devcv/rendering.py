"""Rendered stimuli for the DevCV builders, designed the way numerical-cognition and match-to-sample studies
design theirs, so that only the asked property separates the options (docs/devcv.md, "How the items are
designed"):

- ``magnitude_scene``: ``count`` object crops on a textured background whose *total area* is set by the
  caller, independent of the count (Gebuis & Reynvoet 2011; DeWind et al. 2015): item sizes vary within an
  image, the occupied field varies in size, and the background's colour and texture vary so that file
  size and luminance carry no count;
- ``rerendered``: a copy of a picture moved by a few pixels, rescaled slightly and given faint grain of
  random strength (``with_grain``), so a match is never the sample's file and its file size varies.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

from babyvlm.plugins.devcv.frames import paste, pastel, resize

CANVAS = 224


TEXTURES = 24  # smooth and grainy fields kept per canvas size, mixed with random strengths per picture


def textured_background(rng, size: int = CANVAS) -> np.ndarray:
    """A pastel ground with smooth blotches and fine grain of random strength (file size and luminance then
    vary from picture to picture for reasons unrelated to what is drawn on it). The blotch and grain fields
    come from a fixed bank (``_texture_bank``), so a picture costs one pass over its pixels."""
    blotches, grains = _texture_bank(size)
    field = (blotches[rng.randrange(TEXTURES)] * rng.uniform(0, 28)
             + grains[rng.randrange(TEXTURES)] * rng.uniform(0, 10))
    colour = np.asarray(pastel(rng), np.float32) + np.asarray([rng.uniform(-18, 18) for _ in range(3)], np.float32)
    return np.clip(field[..., None] + colour, 0, 255).astype(np.uint8)


_BANKS: dict[int, tuple[np.ndarray, np.ndarray]] = {}


def _texture_bank(size: int) -> tuple[np.ndarray, np.ndarray]:
    """``TEXTURES`` smooth (6 x 6 value noise, upsampled) and ``TEXTURES`` grain (unit normal) fields, seeded."""
    if size not in _BANKS:
        generator = np.random.default_rng(size)
        blotches = np.stack([_upsample(generator.uniform(-1, 1, (6, 6)).astype(np.float32), size)
                             for _ in range(TEXTURES)])
        grains = generator.normal(0, 1, (TEXTURES, size, size)).astype(np.float32)
        _BANKS[size] = (blotches, grains)
    return _BANKS[size]


def _upsample(grid: np.ndarray, size: int) -> np.ndarray:
    from PIL import Image

    return np.asarray(Image.fromarray(grid, mode="F").resize((size, size), Image.Resampling.BILINEAR))


def item_sides(count: int, total_area: float, rng, spread: float = 0.25) -> list[int]:
    """``count`` square side lengths (pixels) whose areas add up to ``total_area`` (pixels²), each item's area
    varied by up to ``spread`` either way (heterogeneous sizes, as in non-symbolic number tasks)."""
    weights = np.asarray([rng.uniform(1 - spread, 1 + spread) for _ in range(count)])
    areas = total_area * weights / weights.sum()
    return [max(6, round(math.sqrt(a))) for a in areas]


def place_squares(sides: Sequence[int], field: int, rng, canvas: int = CANVAS, gap: int = 3,
                  tries: int = 600) -> list[tuple[int, int]] | None:
    """Top-left corners for squares of ``sides`` inside a random ``field``-pixel square of the canvas, none
    overlapping (None: no room)."""
    field = min(canvas, max(field, max(sides) + 2))
    fx, fy = rng.randrange(0, canvas - field + 1), rng.randrange(0, canvas - field + 1)
    placed: list[tuple[int, int, int]] = []
    for side in sorted(sides, reverse=True):  # the big ones first: they are the hard ones to fit
        for _ in range(tries):
            x, y = fx + rng.randrange(0, field - side + 1), fy + rng.randrange(0, field - side + 1)
            if all(x + side + gap <= px or px + ps + gap <= x or y + side + gap <= py or py + ps + gap <= y
                   for px, py, ps in placed):
                placed.append((x, y, side))
                break
        else:
            return None
    by_side: dict[int, list[tuple[int, int]]] = {}
    for x, y, side in placed:
        by_side.setdefault(side, []).append((x, y))
    return [by_side[side].pop(0) for side in sides]


def magnitude_scene(crops: Sequence[np.ndarray], count: int, total_area_fraction: float, rng,
                    canvas: int = CANVAS) -> np.ndarray | None:
    """``count`` objects (crops drawn from ``crops``) covering ``total_area_fraction`` of a textured canvas
    together, in a field of random size; None when they do not fit."""
    sides = item_sides(count, total_area_fraction * canvas * canvas, rng)
    needed = math.sqrt(sum(s * s for s in sides) * 2.2)  # room to spare between the items
    field = round(min(canvas, needed * rng.uniform(1.0, 1.6)))
    corners = place_squares(sides, field, rng, canvas)
    if corners is None:
        return None
    image = textured_background(rng, canvas)
    for side, (left, top) in zip(sides, corners, strict=True):
        paste(image, resize(crops[rng.randrange(len(crops))], side), left, top)
    return image


def rerendered(image: np.ndarray, rng, max_shift: float = 0.06) -> np.ndarray:
    """The picture seen again: a window shifted by up to ``max_shift`` of its size and scaled back (the
    caller encodes it anew), so a match is never byte-identical to its sample."""
    height, width = image.shape[:2]
    pad = max(1, round(max_shift * max(height, width)))
    padded = np.pad(image, ((pad, pad), (pad, pad), (0, 0)), mode="edge")
    dx, dy = rng.randint(0, 2 * pad), rng.randint(0, 2 * pad)
    scale = rng.uniform(1.0, 1.0 + max_shift)
    win_w, win_h = round(width / scale), round(height / scale)
    x0 = min(max(0, dx + (width - win_w) // 2), padded.shape[1] - win_w)
    y0 = min(max(0, dy + (height - win_h) // 2), padded.shape[0] - win_h)
    return with_grain(resize(np.ascontiguousarray(padded[y0:y0 + win_h, x0:x0 + win_w]), (width, height)), rng)


def with_grain(image: np.ndarray, rng, strength: float = 3.0) -> np.ndarray:
    """Faint sensor-like noise of random strength (up to ``strength`` grey levels): two drawings of one
    picture then differ in file size for reasons unrelated to what they show."""
    sigma = rng.uniform(0, strength)
    noise = np.random.default_rng(rng.getrandbits(32)).normal(0, sigma, image.shape)
    return np.clip(image.astype(np.float32) + noise, 0, 255).astype(np.uint8)


def difference(a: np.ndarray, b: np.ndarray) -> float:
    """Mean absolute pixel difference (0-255) of two same-sized pictures."""
    return float(np.abs(a.astype(np.int16) - b.astype(np.int16)).mean())

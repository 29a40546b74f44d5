"""Procedural object sprites: one visually distinct design (shape + colour + pattern) per vocabulary word.

A design is a list of parts (circles, ellipses, rounded rectangles, convex polygons, rings, thick lines),
each painted in a colour role; the ``main`` role carries the category's pattern (stripes, dots, checks,
spots). ``render_sprite`` rasterises a design at any size with numpy only, so drawing stays vectorised.
Instances vary within a category (``SpriteVariant``: colour gains, pattern phase and scale, aspect,
left-right flip) while staying recognisable.

Coordinates: ``u`` runs -1..1 left to right, ``v`` -1..1 top to bottom. Positions and polygon corners
are in these stretched units; circle, ring and line radii are in height units so they stay round on
wide sprites.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

RGB = tuple[int, int, int]
Part = tuple[str, tuple, str]  # (primitive, parameters, colour role)

ROLES = ("main", "pattern", "accent", "accent2", "dark", "light", "shade")
ROLE_INDEX = {role: i + 1 for i, role in enumerate(ROLES)}  # 0 = transparent
DEFAULT_DARK: RGB = (35, 30, 32)
DEFAULT_LIGHT: RGB = (242, 240, 232)
OUTLINE_MIN_SIZE = 12  # px; smaller sprites would be all outline


@dataclass(frozen=True)
class Design:
    aspect: float  # natural width / height
    main: RGB
    parts: tuple[Part, ...]
    pattern: str = "solid"  # solid | stripes | dots | checker | spots | gradient
    pattern_colour: RGB = (255, 255, 255)
    pattern_freq: float = 3.0
    pattern_angle: float = 0.0  # radians; 0 = vertical stripes
    pattern_width: float = 0.35  # stripe threshold / dot radius
    accent: RGB = (250, 200, 60)
    accent2: RGB = (70, 160, 60)


@dataclass(frozen=True)
class SpriteVariant:
    """Within-category variation of one object instance."""

    gains: tuple[float, float, float] = (1.0, 1.0, 1.0)
    flip: bool = False
    pattern_phase: float = 0.0
    pattern_scale: float = 1.0
    aspect_scale: float = 1.0

    @classmethod
    def random(cls, rng: np.random.Generator) -> SpriteVariant:
        brightness = rng.uniform(0.9, 1.08)
        gains = tuple(float(round(brightness * rng.uniform(0.92, 1.08), 4)) for _ in range(3))
        return cls(gains=gains, flip=bool(rng.random() < 0.5), pattern_phase=float(round(rng.uniform(0, 2 * math.pi), 4)),
                   pattern_scale=float(round(rng.uniform(0.85, 1.15), 4)), aspect_scale=float(round(rng.uniform(0.9, 1.1), 4)))

    def to_dict(self) -> dict[str, object]:
        return {"gains": list(self.gains), "flip": self.flip, "pattern_phase": self.pattern_phase,
                "pattern_scale": self.pattern_scale, "aspect_scale": self.aspect_scale}


def _petals(count: int, cy: float, distance: float, radius: float) -> tuple[Part, ...]:
    return tuple(("circle", (distance * math.cos(2 * math.pi * k / count), cy + distance * math.sin(2 * math.pi * k / count), radius),
                  "main") for k in range(count))


DESIGNS: dict[str, Design] = {
    "ball": Design(1.0, (225, 35, 35), (("circle", (0, 0, 0.97), "main"),),
                   pattern="stripes", pattern_colour=(250, 245, 235), pattern_freq=2.2),
    "dog": Design(1.45, (165, 110, 60), (
        ("ellipse", (-0.12, 0.12, 0.62, 0.38), "main"), ("rect", (-0.62, 0.3, -0.47, 0.98), "main"),
        ("rect", (-0.34, 0.3, -0.19, 0.98), "main"), ("rect", (0.14, 0.3, 0.29, 0.98), "main"),
        ("rect", (0.38, 0.3, 0.5, 0.98), "main"), ("line", (-0.7, 0.0, -0.95, -0.45, 0.1), "main"),
        ("circle", (0.6, -0.38, 0.42), "main"), ("ellipse", (0.86, -0.25, 0.13, 0.18), "accent"),
        ("ellipse", (0.47, -0.3, 0.1, 0.32), "dark"), ("circle", (0.97, -0.3, 0.07), "dark"),
        ("circle", (0.7, -0.5, 0.06), "dark")),
        pattern="spots", pattern_colour=(95, 60, 30), pattern_freq=2.5, accent=(222, 182, 132)),
    "baby": Design(0.75, (130, 190, 240), (
        ("rrect", (-0.75, -0.12, 0.75, 0.98, 0.3), "main"), ("ellipse", (-0.85, 0.25, 0.18, 0.3), "accent"),
        ("ellipse", (0.85, 0.25, 0.18, 0.3), "accent"), ("circle", (0, -0.52, 0.45), "accent"),
        ("ellipse", (0, -0.9, 0.5, 0.1), "dark"), ("circle", (-0.2, -0.55, 0.06), "dark"),
        ("circle", (0.2, -0.55, 0.06), "dark"), ("ellipse", (0, -0.32, 0.14, 0.04), "accent2")),
        pattern="dots", pattern_colour=(250, 250, 250), pattern_freq=3.0, pattern_width=0.25,
        accent=(245, 200, 170), accent2=(200, 90, 100)),
    "duck": Design(1.2, (250, 215, 40), (
        ("ellipse", (-0.05, 0.35, 0.9, 0.55), "main"), ("poly", ((-0.75, 0.2), (-0.98, -0.1), (-0.55, 0.05)), "main"),
        ("circle", (0.45, -0.42, 0.4), "main"), ("poly", ((0.72, -0.5), (0.99, -0.38), (0.72, -0.28)), "accent"),
        ("circle", (0.52, -0.52, 0.06), "dark"), ("ellipse", (-0.1, 0.3, 0.45, 0.25), "shade")),
        accent=(245, 130, 20)),
    "cat": Design(1.0, (150, 150, 160), (
        ("poly", ((-0.72, -0.15), (-0.62, -0.98), (-0.18, -0.55)), "main"),
        ("poly", ((0.72, -0.15), (0.62, -0.98), (0.18, -0.55)), "main"), ("circle", (0, 0.18, 0.78), "main"),
        ("circle", (-0.3, 0.05, 0.12), "accent"), ("circle", (0.3, 0.05, 0.12), "accent"),
        ("ellipse", (-0.3, 0.05, 0.03, 0.1), "dark"), ("ellipse", (0.3, 0.05, 0.03, 0.1), "dark"),
        ("poly", ((-0.09, 0.3), (0.09, 0.3), (0, 0.42)), "accent2")),
        pattern="stripes", pattern_colour=(85, 85, 95), pattern_freq=3.5, pattern_angle=math.pi / 2,
        pattern_width=0.5, accent=(110, 200, 80), accent2=(230, 140, 150)),
    "book": Design(0.8, (40, 80, 200), (
        ("rect", (-0.95, -0.95, 0.95, 0.95), "main"), ("rect", (-0.95, -0.95, -0.7, 0.95), "shade"),
        ("rect", (0.78, -0.88, 0.95, 0.88), "light"), ("rect", (-0.45, -0.65, 0.6, -0.2), "light"),
        ("rect", (-0.35, -0.5, 0.5, -0.42), "dark"))),
    "shoe": Design(1.5, (140, 60, 170), (
        ("rect", (-0.92, -0.9, -0.25, 0.55), "main"), ("ellipse", (0.2, 0.25, 0.75, 0.42), "main"),
        ("rect", (-0.92, -0.9, -0.25, -0.72), "shade"), ("rrect", (-0.97, 0.55, 0.97, 0.92, 0.15), "light"),
        ("line", (-0.3, -0.2, 0.1, -0.05, 0.07), "light"), ("line", (-0.3, 0.08, 0.18, 0.16, 0.07), "light"))),
    "bottle": Design(0.5, (150, 215, 235), (
        ("rrect", (-0.9, -0.35, 0.9, 0.97, 0.25), "main"), ("rect", (-0.55, -0.7, 0.55, -0.33), "accent"),
        ("ellipse", (0, -0.82, 0.35, 0.16), "accent")),
        pattern="stripes", pattern_colour=(80, 150, 200), pattern_freq=5.0, pattern_angle=math.pi / 2,
        pattern_width=0.8, accent=(250, 180, 60)),
    "car": Design(1.7, (40, 170, 70), (
        ("rrect", (-0.97, -0.2, 0.97, 0.55, 0.2), "main"),
        ("poly", ((-0.55, -0.2), (-0.3, -0.85), (0.35, -0.85), (0.6, -0.2)), "main"),
        ("poly", ((-0.42, -0.25), (-0.24, -0.72), (-0.02, -0.72), (-0.02, -0.25)), "light"),
        ("poly", ((0.06, -0.25), (0.06, -0.72), (0.3, -0.72), (0.48, -0.25)), "light"),
        ("circle", (-0.55, 0.6, 0.32), "dark"), ("circle", (0.55, 0.6, 0.32), "dark"),
        ("circle", (-0.55, 0.6, 0.12), "light"), ("circle", (0.55, 0.6, 0.12), "light"),
        ("circle", (0.9, 0.05, 0.08), "accent"))),
    "banana": Design(1.7, (250, 225, 60), (
        ("ellipse", (0, -0.45, 0.95, 1.35), "main"), ("ellipse", (0, -0.9, 0.88, 1.3), "cut"),
        ("ellipse", (0, 0.72, 0.5, 0.08), "shade"), ("rect", (0.84, -0.8, 0.97, -0.35), "dark")),
        pattern="gradient"),
    "apple": Design(1.0, (205, 25, 40), (
        ("circle", (-0.27, 0.12, 0.62), "main"), ("circle", (0.27, 0.12, 0.62), "main"),
        ("rect", (-0.05, -0.9, 0.06, -0.42), "dark"), ("ellipse", (0.3, -0.68, 0.25, 0.11), "accent2"),
        ("ellipse", (-0.45, -0.05, 0.1, 0.18), "light")),
        accent2=(60, 170, 50)),
    "cup": Design(1.15, (245, 140, 30), (
        ("poly", ((-0.8, -0.75), (0.42, -0.75), (0.32, 0.92), (-0.7, 0.92)), "main"),
        ("ring", (0.55, 0.05, 0.2, 0.42), "main"), ("rect", (-0.85, -0.9, 0.47, -0.72), "shade")),
        pattern="dots", pattern_colour=(255, 245, 220), pattern_freq=3.5, pattern_width=0.25),
    "bird": Design(1.35, (70, 160, 230), (
        ("ellipse", (-0.05, 0.15, 0.58, 0.48), "main"), ("circle", (0.5, -0.35, 0.38), "main"),
        ("poly", ((0.74, -0.42), (0.98, -0.32), (0.74, -0.22)), "accent"),
        ("poly", ((-0.55, 0.1), (-0.98, -0.35), (-0.98, 0.3)), "shade"), ("ellipse", (-0.12, 0.1, 0.35, 0.26), "shade"),
        ("circle", (0.56, -0.45, 0.07), "dark"), ("line", (-0.05, 0.6, -0.1, 0.98, 0.06), "accent"),
        ("line", (0.15, 0.6, 0.15, 0.98, 0.06), "accent")),
        accent=(250, 160, 30)),
    "bear": Design(0.95, (110, 70, 40), (
        ("circle", (-0.58, -0.58, 0.3), "main"), ("circle", (0.58, -0.58, 0.3), "main"),
        ("circle", (-0.58, -0.58, 0.15), "accent"), ("circle", (0.58, -0.58, 0.15), "accent"),
        ("circle", (0, 0.12, 0.8), "main"), ("ellipse", (0, 0.42, 0.34, 0.26), "accent"),
        ("ellipse", (0, 0.3, 0.12, 0.08), "dark"), ("circle", (-0.3, -0.05, 0.08), "dark"),
        ("circle", (0.3, -0.05, 0.08), "dark")),
        accent=(215, 175, 130)),
    "hat": Design(1.4, (220, 50, 160), (
        ("ellipse", (0, 0.3, 0.62, 1.05), "main"), ("rect", (-1.1, 0.32, 1.1, 1.1), "cut"),
        ("rrect", (-0.97, 0.3, 0.97, 0.6, 0.12), "main"), ("rect", (-0.62, 0.1, 0.62, 0.3), "accent"),
        ("circle", (0, -0.72, 0.2), "light")),
        pattern="stripes", pattern_colour=(245, 130, 205), pattern_freq=3.5, pattern_angle=math.pi / 4,
        accent=(250, 240, 120)),
    "sock": Design(0.85, (240, 240, 235), (
        ("rrect", (-0.45, -0.97, 0.3, 0.55, 0.12), "main"), ("rrect", (-0.45, 0.2, 0.95, 0.8, 0.3), "main"),
        ("rect", (-0.45, -0.97, 0.3, -0.75), "accent"), ("ellipse", (0.8, 0.5, 0.17, 0.3), "accent")),
        pattern="stripes", pattern_colour=(225, 45, 55), pattern_freq=6.0, pattern_angle=math.pi / 2,
        pattern_width=0.2, accent=(225, 45, 55)),
    "key": Design(1.9, (225, 180, 40), (
        ("ring", (-0.62, 0, 0.2, 0.5), "main"), ("rect", (-0.38, -0.1, 0.97, 0.12), "main"),
        ("rect", (0.5, 0.1, 0.6, 0.5), "main"), ("rect", (0.75, 0.1, 0.85, 0.38), "main"),
        ("rect", (0.88, 0.1, 0.97, 0.55), "main")),
        pattern="gradient"),
    "spoon": Design(0.45, (185, 190, 205), (
        ("ellipse", (0, -0.55, 0.92, 0.43), "main"), ("rrect", (-0.22, -0.25, 0.22, 0.98, 0.12), "main"),
        ("ellipse", (-0.3, -0.65, 0.25, 0.15), "light")),
        pattern="gradient"),
    "fish": Design(1.6, (245, 100, 40), (
        ("ellipse", (0.12, 0, 0.62, 0.6), "main"), ("poly", ((-0.45, 0), (-0.98, -0.7), (-0.98, 0.7)), "shade"),
        ("poly", ((-0.1, -0.5), (0.25, -0.95), (0.35, -0.5)), "shade"), ("circle", (0.5, -0.15, 0.13), "light"),
        ("circle", (0.53, -0.15, 0.06), "dark")),
        pattern="checker", pattern_colour=(250, 190, 60), pattern_freq=4.0),
    "truck": Design(1.75, (30, 110, 200), (
        ("rect", (-0.97, -0.8, 0.25, 0.5), "main"), ("rrect", (0.3, -0.35, 0.97, 0.5, 0.12), "accent"),
        ("rect", (0.55, -0.25, 0.88, 0.05), "light"), ("rect", (-0.97, 0.45, 0.97, 0.6), "dark"),
        ("circle", (-0.65, 0.62, 0.3), "dark"), ("circle", (-0.15, 0.62, 0.3), "dark"),
        ("circle", (0.65, 0.62, 0.3), "dark"), ("circle", (-0.65, 0.62, 0.1), "light"),
        ("circle", (-0.15, 0.62, 0.1), "light"), ("circle", (0.65, 0.62, 0.1), "light")),
        pattern="stripes", pattern_colour=(20, 70, 140), pattern_freq=6.0, pattern_width=0.6, accent=(220, 50, 40)),
    "block": Design(1.0, (30, 170, 160), (
        ("rect", (-0.92, -0.92, 0.92, 0.92), "main"), ("rect", (-0.6, -0.6, 0.6, 0.6), "light"),
        ("poly", ((0, -0.45), (0.42, 0.45), (-0.42, 0.45)), "accent"), ("poly", ((0, -0.05), (0.15, 0.3), (-0.15, 0.3)), "light")),
        pattern="checker", pattern_colour=(20, 125, 115), pattern_freq=4.0, accent=(230, 40, 60)),
    "phone": Design(0.55, (80, 200, 245), (
        ("rrect", (-0.95, -0.97, 0.95, 0.97, 0.25), "accent"), ("rect", (-0.75, -0.78, 0.75, 0.62), "main"),
        ("circle", (0, 0.8, 0.1), "light")),
        pattern="dots", pattern_colour=(255, 230, 80), pattern_freq=3.0, pattern_width=0.3, accent=(45, 45, 55)),
    "bowl": Design(1.6, (40, 150, 110), (
        ("ellipse", (0, -0.2, 0.97, 1.05), "main"), ("rect", (-1.1, -1.1, 1.1, -0.2), "cut"),
        ("rect", (-0.3, 0.78, 0.3, 0.97), "main"), ("ellipse", (0, -0.2, 0.97, 0.16), "shade"),
        ("ellipse", (0, -0.22, 0.85, 0.1), "light")),
        pattern="stripes", pattern_colour=(245, 245, 245), pattern_freq=4.0, pattern_angle=math.pi / 2,
        pattern_width=0.75),
    "chair": Design(0.8, (170, 70, 40), (
        ("rect", (-0.75, -0.97, -0.55, 0.25), "main"), ("rect", (0.55, -0.97, 0.75, 0.25), "main"),
        ("rect", (-0.75, -0.97, 0.75, -0.72), "main"), ("rect", (-0.75, -0.5, 0.75, -0.35), "main"),
        ("rect", (-0.85, 0.05, 0.85, 0.28), "shade"), ("rect", (-0.8, 0.28, -0.6, 0.98), "main"),
        ("rect", (0.6, 0.28, 0.8, 0.98), "main")),
        pattern="stripes", pattern_colour=(135, 50, 25), pattern_freq=9.0, pattern_angle=math.pi / 2, pattern_width=0.6),
    "cookie": Design(1.0, (205, 150, 80), (("circle", (0, 0, 0.95), "main"), ("circle", (0.85, -0.7, 0.35), "cut")),
                     pattern="dots", pattern_colour=(85, 45, 20), pattern_freq=2.6, pattern_width=0.22),
    "balloon": Design(0.7, (240, 80, 150), (
        ("ellipse", (0, -0.25, 0.95, 0.7), "main"), ("poly", ((0, 0.42), (0.13, 0.55), (-0.13, 0.55)), "main"),
        ("line", (0, 0.55, 0.15, 0.98, 0.05), "dark"), ("ellipse", (-0.38, -0.5, 0.15, 0.14), "light"))),
    "flower": Design(1.0, (160, 90, 220), (
        ("line", (0, 0.1, 0, 0.98, 0.1), "accent2"), ("ellipse", (0.3, 0.65, 0.25, 0.1), "accent2"),
        *_petals(5, -0.25, 0.42, 0.3), ("circle", (0, -0.25, 0.25), "accent")),
        accent=(250, 210, 40), accent2=(60, 160, 60)),
    "boat": Design(1.4, (245, 245, 240), (
        ("poly", ((-0.97, 0.35), (0.97, 0.35), (0.65, 0.95), (-0.65, 0.95)), "accent"),
        ("rect", (-0.04, -0.95, 0.04, 0.35), "dark"), ("poly", ((0.06, -0.92), (0.06, 0.28), (0.75, 0.28)), "main"),
        ("poly", ((-0.06, -0.7), (-0.06, 0.28), (-0.6, 0.28)), "main")),
        pattern="stripes", pattern_colour=(230, 60, 50), pattern_freq=3.0, pattern_angle=math.pi / 2,
        pattern_width=0.5, accent=(30, 40, 110)),
    "train": Design(1.6, (140, 25, 45), (
        ("rect", (-0.95, -0.8, -0.3, 0.5), "main"), ("rect", (-1.0, -0.92, -0.22, -0.78), "dark"),
        ("rrect", (-0.3, -0.35, 0.95, 0.5, 0.2), "main"), ("rect", (0.5, -0.85, 0.72, -0.35), "dark"),
        ("rect", (-0.8, -0.6, -0.45, -0.2), "light"), ("circle", (-0.65, 0.65, 0.28), "dark"),
        ("circle", (0.05, 0.65, 0.28), "dark"), ("circle", (0.6, 0.65, 0.28), "dark"),
        ("poly", ((0.95, 0.2), (0.99, 0.6), (0.8, 0.6)), "accent")),
        pattern="stripes", pattern_colour=(240, 190, 50), pattern_freq=2.0, pattern_angle=math.pi / 2,
        pattern_width=0.85, accent=(240, 190, 50)),
    "horse": Design(1.35, (70, 55, 50), (
        ("ellipse", (-0.1, 0.0, 0.58, 0.32), "main"), ("poly", ((0.25, -0.2), (0.55, -0.8), (0.75, -0.65), (0.5, 0.05)), "main"),
        ("ellipse", (0.75, -0.62, 0.2, 0.18), "main"), ("line", (0.3, -0.25, 0.55, -0.85, 0.09), "accent"),
        ("rect", (-0.55, 0.15, -0.45, 0.98), "main"), ("rect", (-0.35, 0.15, -0.25, 0.98), "main"),
        ("rect", (0.18, 0.15, 0.28, 0.98), "main"), ("rect", (0.35, 0.15, 0.45, 0.98), "main"),
        ("line", (-0.65, -0.1, -0.95, 0.5, 0.1), "accent"), ("circle", (0.8, -0.68, 0.04), "light")),
        pattern="spots", pattern_colour=(130, 110, 100), pattern_freq=2.0, accent=(235, 225, 200)),
    "clock": Design(1.0, (150, 200, 40), (
        ("circle", (-0.55, -0.72, 0.22), "accent"), ("circle", (0.55, -0.72, 0.22), "accent"),
        ("circle", (0, 0.12, 0.85), "main"), ("circle", (0, 0.12, 0.65), "light"),
        ("line", (0, 0.12, 0, -0.4, 0.08), "dark"), ("line", (0, 0.12, 0.4, 0.22, 0.08), "dark"),
        ("circle", (0, 0.12, 0.09), "dark")),
        accent=(200, 200, 210)),
    "pig": Design(1.25, (245, 160, 175), (
        ("ellipse", (-0.05, 0.1, 0.85, 0.68), "main"), ("poly", ((0.15, -0.45), (0.3, -0.95), (0.5, -0.5)), "shade"),
        ("poly", ((-0.35, -0.5), (-0.2, -0.95), (0.0, -0.52)), "shade"), ("ellipse", (0.82, 0.1, 0.15, 0.25), "accent"),
        ("ellipse", (0.8, 0.02, 0.03, 0.06), "dark"), ("ellipse", (0.8, 0.18, 0.03, 0.06), "dark"),
        ("circle", (0.5, -0.15, 0.07), "dark"), ("rect", (-0.55, 0.6, -0.35, 0.98), "main"),
        ("rect", (0.25, 0.6, 0.45, 0.98), "main"), ("ring", (-0.92, -0.1, 0.06, 0.13), "main")),
        accent=(225, 105, 130)),
}


# ---- primitives: boolean masks over the (h, w) grid -------------------------------------------
def _circle(u, v, aspect, cx, cy, r):
    return ((u - cx) * aspect) ** 2 + (v - cy) ** 2 <= r * r


def _ring(u, v, aspect, cx, cy, r_in, r_out):
    d2 = ((u - cx) * aspect) ** 2 + (v - cy) ** 2
    return (d2 <= r_out * r_out) & (d2 >= r_in * r_in)


def _ellipse(u, v, aspect, cx, cy, rx, ry):
    return ((u - cx) / rx) ** 2 + ((v - cy) / ry) ** 2 <= 1.0


def _rect(u, v, aspect, x0, y0, x1, y1):
    return (u >= x0) & (u <= x1) & (v >= y0) & (v <= y1)


def _rrect(u, v, aspect, x0, y0, x1, y1, r):
    rx, ry = r / aspect, r
    qx = np.clip(u, x0 + rx, x1 - rx)
    qy = np.clip(v, y0 + ry, y1 - ry)
    return _rect(u, v, aspect, x0, y0, x1, y1) & (((u - qx) / rx) ** 2 + ((v - qy) / ry) ** 2 <= 1.0)


def _poly(u, v, aspect, *points):
    """A convex polygon, either winding: the point is on one side of every edge."""
    pos = neg = None
    for (x0, y0), (x1, y1) in zip(points, points[1:] + points[:1], strict=True):
        cross = (x1 - x0) * (v - y0) - (y1 - y0) * (u - x0)
        pos = cross >= 0 if pos is None else pos & (cross >= 0)
        neg = cross <= 0 if neg is None else neg & (cross <= 0)
    return pos | neg


def _line(u, v, aspect, x0, y0, x1, y1, width):
    """A thick segment, measured in height units so it keeps its width on wide sprites."""
    px, py = (u - x0) * aspect, v - y0
    dx, dy = (x1 - x0) * aspect, y1 - y0
    t = np.clip((px * dx + py * dy) / (dx * dx + dy * dy), 0.0, 1.0)
    return (px - t * dx) ** 2 + (py - t * dy) ** 2 <= (width / 2) ** 2


PRIMITIVES = {"circle": _circle, "ring": _ring, "ellipse": _ellipse, "rect": _rect, "rrect": _rrect,
              "poly": _poly, "line": _line}


def _pattern_mask(design: Design, u, v, aspect: float, variant: SpriteVariant) -> np.ndarray | None:
    """Where the pattern colour replaces the main colour (None for solid / gradient designs)."""
    iu = u * aspect  # isotropic, so dots stay round
    freq = design.pattern_freq * variant.pattern_scale
    phase = variant.pattern_phase
    if design.pattern == "stripes":
        s = iu * math.cos(design.pattern_angle) + v * math.sin(design.pattern_angle)
        return np.sin(math.pi * freq * s + phase) > design.pattern_width
    if design.pattern == "dots":
        fu = np.mod(iu * freq / 2 + phase / (2 * math.pi), 1.0) - 0.5
        fv = np.mod(v * freq / 2 + 0.5 * phase / (2 * math.pi), 1.0) - 0.5
        return fu * fu + fv * fv < design.pattern_width ** 2
    if design.pattern == "checker":
        cells = np.floor(iu * freq / 2 + phase / (2 * math.pi)) + np.floor(v * freq / 2)
        return np.mod(cells, 2) == 1
    if design.pattern == "spots":
        wave = np.sin(freq * 3.1 * iu + phase) * np.sin(freq * 2.3 * v + 1.7 * phase) + 0.5 * np.sin(freq * 1.7 * (iu + v))
        return wave > 0.7
    return None


def _outline(mask: np.ndarray) -> np.ndarray:
    inner = mask.copy()
    inner[1:, :] &= mask[:-1, :]
    inner[:-1, :] &= mask[1:, :]
    inner[:, 1:] &= mask[:, :-1]
    inner[:, :-1] &= mask[:, 1:]
    inner[0, :] = inner[-1, :] = False
    inner[:, 0] = inner[:, -1] = False
    return mask & ~inner


def _palette(design: Design, variant: SpriteVariant) -> np.ndarray:
    colours = {"main": design.main, "pattern": design.pattern_colour, "accent": design.accent,
               "accent2": design.accent2, "dark": DEFAULT_DARK, "light": DEFAULT_LIGHT,
               "shade": tuple(int(c * 0.72) for c in design.main)}
    lut = np.zeros((len(ROLES) + 1, 3), np.float32)
    for role, index in ROLE_INDEX.items():
        lut[index] = colours[role]
    lut[1:] *= np.asarray(variant.gains, np.float32)
    return lut


def render_sprite(name: str, width: int, height: int, variant: SpriteVariant = SpriteVariant()) -> tuple[np.ndarray, np.ndarray]:
    """Rasterise category ``name`` into ``(rgb uint8 (h, w, 3), mask bool (h, w))``."""
    design = DESIGNS[name]
    width, height = max(1, int(width)), max(1, int(height))
    aspect = width / height
    u = ((np.arange(width, dtype=np.float32) + 0.5) / width * 2 - 1)[None, :]
    v = ((np.arange(height, dtype=np.float32) + 0.5) / height * 2 - 1)[:, None]
    if variant.flip:
        u = -u
    labels = np.zeros((height, width), np.uint8)
    for primitive, params, role in design.parts:
        hit = PRIMITIVES[primitive](u, v, aspect, *params)
        labels[np.broadcast_to(hit, labels.shape)] = 0 if role == "cut" else ROLE_INDEX[role]
    pattern = _pattern_mask(design, u, v, aspect, variant)
    if pattern is not None:
        labels[(labels == ROLE_INDEX["main"]) & np.broadcast_to(pattern, labels.shape)] = ROLE_INDEX["pattern"]
    rgb = _palette(design, variant)[labels]
    shading = 1.08 - 0.16 * (v + 1) / 2  # light from above
    if design.pattern == "gradient":  # metallic / fruit sheen across the whole object
        shading = shading + 0.22 - 0.22 * (u * (-1 if variant.flip else 1) + v + 2) / 2
    rgb *= np.broadcast_to(shading, labels.shape)[..., None]
    mask = labels > 0
    if min(width, height) >= OUTLINE_MIN_SIZE:
        rgb[_outline(mask)] *= 0.55
    return np.clip(rgb, 0, 255).astype(np.uint8), mask


@dataclass
class SpriteCache:
    """Memoises rendered sprites by (instance key, size); sizes are quantised by the caller."""

    capacity: int = 512
    _store: dict = field(default_factory=dict)

    def get(self, key: object, name: str, width: int, height: int, variant: SpriteVariant):
        full_key = (key, width, height)
        hit = self._store.get(full_key)
        if hit is None:
            if len(self._store) >= self.capacity:
                self._store.pop(next(iter(self._store)))  # oldest first: sizes drift slowly
            rgb, mask = render_sprite(name, width, height, variant)
            hit = (rgb, mask, int(mask.sum()))
            self._store[full_key] = hit
        return hit

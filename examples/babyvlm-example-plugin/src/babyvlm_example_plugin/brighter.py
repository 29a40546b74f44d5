"""The ``example_brighter`` task: two object crops from one split's annotated keyframes; "Which image is
brighter? (A) <image> (B) <image>" answered A or B. The gold answer is measured from the pixels (mean
luminance), so a model can only beat chance by looking.

It subclasses the bundled DevCV ``LetterTask`` (``babyvlm.plugins.devcv.base``), which supplies the whole
``Task`` contract — splits, item ids, JPEG encoding, the released-file loader, requests for the
``generate`` and ``loglikelihood`` modes, letter parsing, seeded tie-breaks, ``acc`` and ``chance()`` — so
this file only says how an item is made.
"""

from __future__ import annotations

import numpy as np

from babyvlm.core.errors import ConfigError
from babyvlm.plugins.devcv.base import Draft, LetterTask

PROMPT = "Which image is brighter? (A) <image> (B) <image>"
LUMA = np.array([0.299, 0.587, 0.114])  # ITU-R BT.601 weights: perceived brightness of RGB


def luminance(image: np.ndarray) -> float:
    """Mean perceived brightness of an HxWx3 uint8 image, 0..255."""
    return float((image.reshape(-1, 3).astype(np.float64) @ LUMA).mean())


class WhichIsBrighter(LetterTask):
    name, short = "example_brighter", "brighter"
    inputs, answer_text = "2 object crops", "A/B"
    n_options = 2

    def __init__(self, min_difference: float = 12.0, **options):
        super().__init__(**options)
        if not 0 < min_difference < 255:
            raise ConfigError(f"example_brighter: min_difference must be between 0 and 255, got {min_difference!r}")
        self.min_difference = float(min_difference)

    def options(self) -> dict:
        return {**super().options(), "min_difference": self.min_difference}

    def make_drafts(self, material, rng, split: str) -> list[Draft]:
        instances = material.instances()
        if len(instances) < 2:
            material.report.skip("brighter_too_few_objects", f"{split}: {len(instances)} object crop(s)")
            return []
        positions, drafts = self.positions(rng), []
        for _ in range(self.max_items):
            first, second = rng.sample(instances, 2)
            crops = [material.crop(first), material.crop(second)]
            levels = [luminance(crop) for crop in crops]
            if abs(levels[0] - levels[1]) < self.min_difference:  # too close to call: counted, not used
                material.report.skip("brighter_too_close", f"{split}: luminance {levels[0]:.0f} vs {levels[1]:.0f}")
                continue
            brighter = 0 if levels[0] > levels[1] else 1
            order, letter = self.arrange(brighter, [1 - brighter], positions, rng)
            drafts.append(Draft(images=[crops[i] for i in order], turns=[(PROMPT, letter)],
                                extras={"luminance": [round(levels[i], 1) for i in order]}))
        return drafts

"""``baby_subitize`` — Subitizing: 1-4 copies of an annotated object's crop on a plain background; "How
many {objs} do you see?" answered with a number. Counts cycle through 1-4 (balanced). Held out of
instruction tuning, as in the paper."""

from __future__ import annotations

from babyvlm.plugins.devcv.base import Draft, NumberTask
from babyvlm.plugins.devcv.frames import sprite_scene
from babyvlm.plugins.devcv.options import BalancedPositions
from babyvlm.plugins.devcv.words import plural

PROMPT = "<image>\nHow many {objs} do you see?"


class Subitizing(NumberTask):
    name, short = "baby_subitize", "subitize"
    inputs, answer_text = "1 rendered image, an object word", "1-4"
    default_space = (1, 2, 3, 4)
    held_out = True

    def make_drafts(self, material, rng, split: str) -> list[Draft]:
        instances = material.instances()
        if not instances:
            return []
        counts, drafts = BalancedPositions(len(self.default_space), rng), []
        space = [str(n) for n in self.default_space]
        for _ in range(self.max_items):
            instance, count = rng.choice(instances), self.default_space[counts.next()]
            image = sprite_scene(material.crop(instance), count, rng, sprite=56)
            if image is None:
                material.report.skip("subitize_no_room", f"{split}: count {count}")
                continue
            drafts.append(Draft(images=[image], turns=[(PROMPT.format(objs=plural(instance.box.category)), str(count))],
                                choices=space, extras={"object": instance.box.category}))
        return drafts

    def gold_positions(self, items):
        from collections import Counter

        return Counter(item.answer for item in items), [str(n) for n in self.default_space]

"""``baby_compare_synthetic`` — Who Has More, synthetic: an annotated object's crop pasted N and M times
(N != M, 1..``max_count``) on plain backgrounds; "Which image has more {objs}?" answered A/B. Works on
any annotated source, real or generated."""

from __future__ import annotations

from babyvlm.plugins.devcv.base import Draft, LetterTask
from babyvlm.plugins.devcv.frames import sprite_scene
from babyvlm.plugins.devcv.words import plural

PROMPT = "Which image has more {objs}? (A) <image> (B) <image>"


class WhoHasMoreSynthetic(LetterTask):
    name, short = "baby_compare_synthetic", "compare_synthetic"
    inputs, answer_text = "2 rendered images, an object word", "A/B"
    n_options = 2
    max_count = 8

    def make_drafts(self, material, rng, split: str) -> list[Draft]:
        instances = material.instances()
        if not instances:
            return []
        positions, drafts = self.positions(rng), []
        for _ in range(self.max_items):
            instance = rng.choice(instances)
            more, fewer = sorted(rng.sample(range(1, self.max_count + 1), 2), reverse=True)
            crop = material.crop(instance)
            counts, letter = self.arrange(more, [fewer], positions, rng)
            images = [sprite_scene(crop, count, rng) for count in counts]
            if any(image is None for image in images):
                material.report.skip("compare_synthetic_no_room", f"{split}: counts {counts}")
                continue
            drafts.append(Draft(images=images, turns=[(PROMPT.format(objs=plural(instance.box.category)), letter)],
                                extras={"object": instance.box.category, "notes": {"counts": counts}}))
        return drafts

"""``baby_compare_real`` — Who Has More, naturalistic: two annotated frames with different counts of one
category; "Which image has more {objs}?" answered A/B. ``notes`` records both counts."""

from __future__ import annotations

from babyvlm.plugins.devcv.base import Draft, LetterTask
from babyvlm.plugins.devcv.words import plural

PROMPT = "Which image has more {objs}? (A) <image> (B) <image>"


class WhoHasMoreReal(LetterTask):
    name, short = "baby_compare_real", "compare_real"
    inputs, answer_text = "2 frames, an object word", "A/B"
    n_options = 2

    def make_drafts(self, material, rng, split: str) -> list[Draft]:
        frames = list(material.keyframes())
        categories = sorted({c for _, frame in frames for c in frame.categories()})
        if len(frames) < 2 or not categories:
            return []
        positions, drafts, attempts = self.positions(rng), [], 0
        while len(drafts) < self.max_items and attempts < self.max_items * 20:
            attempts += 1
            category = rng.choice(categories)
            (rec_a, frame_a), (rec_b, frame_b) = rng.sample(frames, 2)
            more, fewer = sorted(((frame_a.count(category), rec_a, frame_a), (frame_b.count(category), rec_b, frame_b)),
                                 key=lambda entry: -entry[0])
            if more[0] == fewer[0] or more[0] < 1:
                continue
            options, letter = self.arrange(more, [fewer], positions, rng)
            drafts.append(Draft(images=[recording.image(frame) for _, recording, frame in options],
                                turns=[(PROMPT.format(objs=plural(category)), letter)],
                                extras={"object": category, "notes": {"counts": [n for n, _, _ in options]}}))
        return drafts

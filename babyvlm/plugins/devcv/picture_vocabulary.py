"""``baby_pv`` — Picture Vocabulary: four object crops, one of them the named word; answer A-D.

Built from the split's whole, unoccluded object boxes: the target's crop beside three crops of three
other categories, the target's position balanced over A-D.
"""

from __future__ import annotations

from babyvlm.plugins.devcv.base import Draft, LetterTask

PROMPT = ("<image><image><image><image>\nTouch the image of '{word}' (A) the first image (B) the second image "
          "(C) the third image (D) the fourth image.")


class PictureVocabulary(LetterTask):
    name, short = "baby_pv", "pv"
    inputs, answer_text = "4 images, a word", "A-D"
    n_options = 4

    def make_drafts(self, material, rng, split: str) -> list[Draft]:
        pools = material.by_category()
        if len(pools) < self.n_options:
            material.report.skip("pv_too_few_categories", f"{split}: {len(pools)} categories")
            return []
        positions, drafts = self.positions(rng), []
        targets = [instance for pool in pools.values() for instance in pool]
        rng.shuffle(targets)
        for target in targets[: self.max_items]:
            others = rng.sample([c for c in pools if c != target.box.category], self.n_options - 1)
            distractors = [rng.choice(pools[category]) for category in others]
            options, letter = self.arrange(target, distractors, positions, rng)
            drafts.append(Draft(images=[material.crop(option) for option in options],
                                turns=[(PROMPT.format(word=target.box.category), letter)],
                                extras={"word": target.box.category,
                                        "option_words": [option.box.category for option in options]}))
        return drafts

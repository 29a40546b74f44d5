"""``baby_pv`` — Picture Vocabulary: four object crops, one of them the named word; answer A-D.

Built from the split's whole, unoccluded object boxes. The target category cycles through every category
of the split in shuffled rounds, and the three distractors are drawn from the other categories at random,
so every category is the answer as often as any other and, when shown, is the answer one time in four:
neither a picture's look nor a word's frequency tells the answer without matching word to picture. The
target's position is balanced over A-D.
"""

from __future__ import annotations

from babyvlm.plugins.devcv.base import Draft, LetterTask
from babyvlm.plugins.devcv.frames import provenance
from babyvlm.plugins.devcv.options import BalancedPositions

PROMPT = ("<image><image><image><image>\nTouch the image of '{word}' (A) the first image (B) the second image "
          "(C) the third image (D) the fourth image.")


class PictureVocabulary(LetterTask):
    name, short = "baby_pv", "pv"
    leaderboard_position, published_chance = 1, 0.25  # DevCV leaderboard (babyvlm-v2-facts.md §6)
    inputs, answer_text = "4 images, a word", "A-D"
    n_options = 4
    option_slots = (0, 1, 2, 3)

    def make_drafts(self, material, rng, split: str) -> list[Draft]:
        pools = material.by_category()
        if len(pools) < self.n_options:
            material.report.skip("pv_too_few_categories", f"{split}: {len(pools)} categories")
            return []
        categories = sorted(pools)
        targets = BalancedPositions(len(categories), rng)
        positions, drafts = self.positions(rng), []
        for _ in range(self.max_items):
            word = categories[targets.next()]
            others = rng.sample([c for c in categories if c != word], self.n_options - 1)
            target = rng.choice(pools[word])
            options, letter = self.arrange(target, [rng.choice(pools[c]) for c in others], positions, rng)
            drafts.append(Draft(images=[material.crop(option) for option in options],
                                turns=[(PROMPT.format(word=word), letter)],
                                extras={"word": word, "option_words": [option.box.category for option in options],
                                        **provenance([target, *[o for o in options if o is not target]])}))
        return drafts

"""Template ``baby_v1_qfirst``: ``baby_v1`` with the question before the images it is about.

DevCV prompts (and the leaderboard, which prepends one ``<image>`` per visual) put the images first:
``<image>\\nHow many balls do you see?``. In a causal LM the image tokens then cannot see the question, so
the model must encode every detail of every image before knowing what will be asked. Moving the
question first (`` USER: How many balls do you see? <image> ASSISTANT:``) lets the image positions
condition on it. A scratch measurement with a tiny model (64 px, 17 tokens per image, single task) saw
localization rise from 34% to 53% (blind 24%) (shared/reference/devcv-eval-facts.md §7); at the demo's
32 px / 5 tokens / 200 steps the gain was small (28% vs 26%, chance 25%).

Rule, per human turn: the *leading* run of ``<image>`` tokens (with the whitespace around them) moves
after the rest of the turn's text, joined by single spaces — when that text holds no ``<image>`` of its
own. Every consumer (the model's merge, an HF processor, the evaluation) gives the k-th ``<image>`` the
sample's k-th picture, so moving a leading image past an image written inside the text (an option,
``(A) <image> (B) <image>``) would hand the query picture to option A's slot and every option's picture to
the next letter's. Such a turn (Left/Right, Spatial Details: a query picture, then one per letter) is
unchanged, as is a turn of images only. Answers and loss masking are exactly ``baby_v1``'s, and ``jinja``
renders the same text, so a checkpoint's ``chat_template.jinja`` builds the same ids. Training and evaluation must use the
same template (it is part of the model config, so both do).
"""

from __future__ import annotations

import re

from babyvlm.core.constants import IMAGE_TOKEN
from babyvlm.plugins.chat_templates import BabyV1Template, Turn, jinja_template

_LEAD = len(IMAGE_TOKEN)
_USER_RENDER = re.compile(r"\{%-?\s*if message\['role'\] == 'user'\s*-?%\}\s*\{\{")


def split_leading_images(text: str) -> tuple[int, str]:
    """``(number of leading <image> tokens, the text after them, stripped)``."""
    rest, count = text.lstrip(), 0
    while rest.startswith(IMAGE_TOKEN):
        rest, count = rest[_LEAD:].lstrip(), count + 1
    return count, rest.strip()


def question_first_text(text: str) -> str:
    """The human turn's text with its leading images moved after the question (see the module rule)."""
    count, rest = split_leading_images(text)
    if count == 0 or not rest or IMAGE_TOKEN in rest:  # pictures are consumed in the order of the <image>s
        return text
    return " ".join([rest] + [IMAGE_TOKEN] * count)


def _jinja() -> str:
    """``baby_v1``'s chat template with the reorder done by Jinja statements before the user render."""
    reorder = (
        "{%- set q = namespace(rest=text, lead=0) -%}"
        "{%- for _ in range(text.count('IMAGE')) -%}"
        "{%- if q.rest.lstrip().startswith('IMAGE') -%}"
        "{%- set q.rest = q.rest.lstrip()[" + str(_LEAD) + ":] -%}{%- set q.lead = q.lead + 1 -%}"
        "{%- endif -%}{%- endfor -%}"
        "{%- if q.lead > 0 and q.rest | trim != '' and 'IMAGE' not in q.rest -%}"
        "{%- set text = ([q.rest | trim] + ['IMAGE'] * q.lead) | join(' ') -%}{%- endif -%}"
    )
    base = jinja_template("baby_v1_qfirst", "' USER: ' ~ text ~ ' ASSISTANT:'", "' ' ~ text ~ eos_token")
    # insert the reorder right before the user turn is rendered (after the shared checks set ``text``)
    renders = list(_USER_RENDER.finditer(base))
    if not renders:  # the shared template changed shape: fail at import, where a test sees it
        raise RuntimeError("baby_v1_qfirst: cannot find the user-turn render in the shared baby_v1 Jinja template")
    at = renders[-1].start()
    return base[:at] + reorder.replace("IMAGE", IMAGE_TOKEN) + base[at:]


class QuestionFirstTemplate(BabyV1Template):
    """`` USER: {question} <image>... ASSISTANT: {answer}<eos>``: baby_v1 with leading images moved last."""

    name = "baby_v1_qfirst"
    jinja = _jinja()

    def human_ids(self, turn: Turn, tokenizer) -> list[int]:
        return tokenizer.encode(f" {self.user} {question_first_text(turn.value)} {self.assistant}")

"""A character-level tokenizer for template tests: ids render back to the exact template text."""

from __future__ import annotations

SPECIALS = {0: "<pad>", 1: "<unk>", 2: "<sos>", 3: "<eos>", 4: "<image>"}


class CharTokenizer:
    """One id per character, so a rendered conversation can be compared with the template text exactly."""

    sos_id, eos_id, image_id = 2, 3, 4

    def encode(self, text: str) -> list[int]:
        pieces = text.split("<image>")
        ids: list[int] = []
        for i, piece in enumerate(pieces):
            ids += [ord(c) + 10 for c in piece] + ([self.image_id] if i < len(pieces) - 1 else [])
        return ids

    def render(self, ids: list[int]) -> str:
        return "".join(SPECIALS.get(i) or chr(i - 10) for i in ids)

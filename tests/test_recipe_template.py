"""The ``baby_v1_qfirst`` template: the question moves before leading images, in ids and in its Jinja twin."""

from __future__ import annotations

import jinja2
import pytest
from jinja2.sandbox import ImmutableSandboxedEnvironment
from template_support import SPECIALS, CharTokenizer  # noqa: E402,F401

from babyvlm.core.constants import IGNORE_INDEX
from babyvlm.core.errors import ModelInputError
from babyvlm.plugins.chat_templates import BabyV1Template
from babyvlm.plugins.recipe.question_first import QuestionFirstTemplate, question_first_text

TOKENIZER = CharTokenizer()
QFIRST = QuestionFirstTemplate()


def turns(*values: str) -> list[dict[str, str]]:
    return [{"from": "human" if i % 2 == 0 else "gpt", "value": v} for i, v in enumerate(values)]


def render_jinja(template, conversation) -> str:
    env = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True)

    def raise_exception(message):
        raise jinja2.exceptions.TemplateError(message)

    env.globals["raise_exception"] = raise_exception
    messages = [{"role": "user" if t["from"] == "human" else "assistant", "content": t["value"]}
                for t in conversation]
    return env.from_string(template.jinja).render(messages=messages, bos_token="<sos>", eos_token="<eos>")


@pytest.mark.parametrize("value, expected", [
    ("<image>\nHow many balls do you see?", "How many balls do you see? <image>"),
    ("<image><image> <image>\n Which is the ball?", "Which is the ball? <image> <image> <image>"),
    ("Which is the same as this? (A) <image> (B) <image>", "Which is the same as this? (A) <image> (B) <image>"),
    # a query picture before option pictures stays first: the k-th <image> takes the sample's k-th picture
    ("<image>\nWhich one? (A) <image> (B) <image>", "<image>\nWhich one? (A) <image> (B) <image>"),
    ("<image><image>", "<image><image>"),
    ("no images at all", "no images at all"),
])
def test_leading_images_move_after_the_question(value, expected):
    assert question_first_text(value) == expected


def test_ids_labels_and_answer_masking_match_baby_v1_except_the_order():
    conversation = turns("<image>\nHow many balls do you see?", "3")
    encoded = QFIRST.encode(conversation, TOKENIZER)
    assert TOKENIZER.render(encoded.input_ids) == "<sos> USER: How many balls do you see? <image> ASSISTANT: 3<eos>"
    baseline = BabyV1Template().encode(conversation, TOKENIZER)
    supervised = [label for label in encoded.labels if label != IGNORE_INDEX]
    assert supervised == [label for label in baseline.labels if label != IGNORE_INDEX]
    assert encoded.input_ids.count(TOKENIZER.image_id) == 1


def test_prompt_is_a_prefix_of_the_encoding_for_every_turn_of_a_multi_round_item():
    conversation = turns("<image>\nTouch the new image. (A) <image>", "A",
                         "Let's try more. Touch the new image. (A) <image> (B) <image>", "B")
    encoded = QFIRST.encode(conversation, TOKENIZER).input_ids
    assert encoded[:len(QFIRST.prompt(conversation, TOKENIZER))] == QFIRST.prompt(conversation, TOKENIZER)
    assert encoded.count(TOKENIZER.image_id) == 4
    assert TOKENIZER.render(encoded).startswith("<sos> USER: <image>\nTouch the new image. (A) <image> ASSISTANT: A")


@pytest.mark.parametrize("conversation", [
    turns("<image>\nHow many balls do you see?", "3"),
    turns("<image><image><image><image>\nTouch the image of 'ball' (A) the first image (B) the second image", "B"),
    turns("Which of the following is the same as this? (A) <image> (B) <image>", "A"),
    turns("<image>\nTouch the new image. (A) <image>", "A", "Let's try more. (A) <image> (B) <image>", "B"),
    turns("<image><image>", "a ball"),
    turns("<image>\nWhere is the ball?"),
])
def test_jinja_twin_renders_exactly_the_ids_text(conversation):
    ids = (QFIRST.prompt(conversation, TOKENIZER) if conversation[-1]["from"] == "human"
           else QFIRST.encode(conversation, TOKENIZER).input_ids)
    assert render_jinja(QFIRST, conversation) == TOKENIZER.render(ids)


def test_jinja_twin_keeps_the_shared_checks():
    with pytest.raises(jinja2.exceptions.TemplateError, match="baby_v1_qfirst: assistant message 1 is empty"):
        render_jinja(QFIRST, turns("<image>\nWhat is it?", " "))


def test_bad_conversations_are_refused_with_the_template_named():
    with pytest.raises(ModelInputError, match="baby_v1_qfirst: turn 0 has no 'value' key"):
        QFIRST.encode([{"from": "human"}], TOKENIZER)
    with pytest.raises(ModelInputError, match="baby_v1_qfirst: conversation has no gpt turn"):
        QFIRST.encode(turns("<image>\nWhat is it?"), TOKENIZER)


def test_registered_by_the_recipe_plugin_as_an_import_string(fresh_registry):
    assert fresh_registry.owner("template", "baby_v1_qfirst") == "recipe"
    template = fresh_registry.build("template", "baby_v1_qfirst")
    assert isinstance(template, QuestionFirstTemplate) and template.name == "baby_v1_qfirst"


@pytest.mark.slow  # builds a ViT + LLaMA: ~50 s on the shared 2-core machine (most of it importing transformers)
def test_trains_a_real_tiny_babyllava_with_the_bpe_tokenizer(fresh_registry):
    import warnings

    import numpy as np
    import torch

    corpus = ["how many balls do you see?", "which image has more cups?", "1", "2", "a", "b"] * 4
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # a tiny corpus cannot reach the vocabulary size
        tokenizer = fresh_registry.build("tokenizer", dict(type="bpe", corpus=corpus, vocab_size=300, min_frequency=1))
    model = fresh_registry.build("model", dict(
        type="babyllava", encoder=dict(type="vit", preset="tiny", num_hidden_layers=1),
        connector="mlp2x_gelu", language_model=dict(type="llama", preset="tiny", num_hidden_layers=1),
        tokenizer=tokenizer, template="baby_v1_qfirst"))
    image = np.full((64, 64, 3), 120, dtype=np.uint8)
    samples = [{"conversations": turns("<image>\nHow many balls do you see?", "2"), "images": [image]},
               {"conversations": turns("Which image has more cups? (A) <image> (B) <image>", "A"),
                "images": [image, image]}]
    batch = model.prepare_batch(samples)
    ids = batch["input_ids"][0].tolist()
    assert ids.index(tokenizer.image_id) > ids.index(tokenizer.encode("?")[-1])  # the question comes first
    loss = model(**batch)["loss"]
    assert torch.isfinite(loss) and loss.requires_grad

"""The ``baby_plain`` / ``baby_v1`` chat templates: exact layout, loss masks, prompts, and input errors."""

from __future__ import annotations

import warnings

import pytest
from template_support import SPECIALS, CharTokenizer  # noqa: E402,F401

import babyvlm
from babyvlm import registry
from babyvlm.core.errors import ModelInputError
from babyvlm.plugins.chat_templates import IGNORE_INDEX, EncodedConversation


def human(value: str) -> dict[str, str]:
    return {"from": "human", "value": value}


def gpt(value: str) -> dict[str, str]:
    return {"from": "gpt", "value": value}


def supervised(encoded: EncodedConversation) -> list[int]:
    return [label for label in encoded.labels if label != IGNORE_INDEX]


@pytest.fixture(scope="module")
def chars() -> CharTokenizer:
    return CharTokenizer()


@pytest.fixture(scope="module")
def bpe():
    corpus = [f"{a} {b} the {c}" for a in ("look at", "where is", "what is") for b in ("big", "red", "small")
              for c in ("ball", "doggy", "truck", "kitty")] * 3
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # a tiny corpus cannot reach 6000 ids
        return babyvlm.build("tokenizer", dict(type="bpe", corpus=corpus))


@pytest.fixture(scope="module")
def plain():
    return babyvlm.build("template", "baby_plain")


@pytest.fixture(scope="module")
def v1():
    return babyvlm.build("template", dict(type="baby_v1"))


def test_templates_come_from_the_chat_templates_plugin():
    assert registry.REGISTRY.owner("template", "baby_plain") == "chat_templates"
    assert registry.REGISTRY.owner("template", "baby_v1") == "chat_templates"


# ---- baby_plain ----------------------------------------------------------------------------
def test_plain_layout_and_labels(plain, chars):
    encoded = plain.encode([human("<image>"), gpt("look at the ball")], chars)
    assert chars.render(encoded.input_ids) == "<sos><image>look at the ball<eos>"
    assert chars.render(supervised(encoded)) == "look at the ball<eos>"
    assert encoded.labels[:2] == [IGNORE_INDEX, IGNORE_INDEX]
    assert len(encoded.labels) == len(encoded.input_ids)


def test_plain_with_real_tokenizer(plain, bpe):
    encoded = plain.encode([human("<image>"), gpt("Look at the ball")], bpe)
    utterance = bpe.encode("Look at the ball")
    assert encoded.input_ids == [bpe.sos_id, bpe.image_id] + utterance + [bpe.eos_id]
    assert encoded.labels == [IGNORE_INDEX, IGNORE_INDEX] + utterance + [bpe.eos_id]
    assert bpe.decode(supervised(encoded)) == "look at the ball"


def test_plain_interleaved_supervises_every_gpt_turn(plain, chars):
    conversation = [human("<image>"), gpt("a ball"), human("<image>"), gpt("a dog"), human("<image>"), gpt("mama")]
    encoded = plain.encode(conversation, chars)
    assert chars.render(encoded.input_ids) == "<sos><image>a ball<eos><image>a dog<eos><image>mama<eos>"
    assert chars.render(supervised(encoded)) == "a ball<eos>a dog<eos>mama<eos>"
    image_positions = [i for i, t in enumerate(encoded.input_ids) if t == chars.image_id]
    assert all(encoded.labels[i] == IGNORE_INDEX for i in image_positions)


def test_plain_video_frames_and_whitespace(plain, chars):
    encoded = plain.encode([human("<image>\n<image> <image>"), gpt("bye")], chars)
    assert chars.render(encoded.input_ids) == "<sos><image><image><image>bye<eos>"


def test_plain_refuses_text_in_human_turns(plain, chars):
    with pytest.raises(ModelInputError, match=r"baby_plain: human turn 0 may hold only <image> tokens.*baby_v1"):
        plain.encode([human("<image>\nWhat is this?"), gpt("a ball")], chars)


def test_plain_prompt(plain, chars):
    conversation = [human("<image>"), gpt("a ball"), human("<image>"), gpt("a dog")]
    prompt = plain.prompt(conversation, chars)
    assert chars.render(prompt) == "<sos><image>a ball<eos><image>"
    assert plain.prompt(conversation[:3], chars) == prompt


# ---- baby_v1 -------------------------------------------------------------------------------
def test_v1_layout_and_labels(v1, chars):
    encoded = v1.encode([human("<image>\nWhat is this?"), gpt("a ball")], chars)
    assert chars.render(encoded.input_ids) == "<sos> USER: <image>\nWhat is this? ASSISTANT: a ball<eos>"
    assert chars.render(supervised(encoded)) == " a ball<eos>"
    first_supervised = next(i for i, label in enumerate(encoded.labels) if label != IGNORE_INDEX)
    assert chars.render(encoded.input_ids[:first_supervised]).endswith("ASSISTANT:")
    assert all(label == IGNORE_INDEX for label in encoded.labels[:first_supervised])
    assert encoded.labels[first_supervised:] == encoded.input_ids[first_supervised:]


def test_v1_multi_turn_masks_every_human_turn(v1, chars):
    conversation = [human("<image>\nWhat is it?"), gpt("a ball"), human("What colour?"), gpt("red")]
    encoded = v1.encode(conversation, chars)
    assert chars.render(encoded.input_ids) == (
        "<sos> USER: <image>\nWhat is it? ASSISTANT: a ball<eos> USER: What colour? ASSISTANT: red<eos>")
    assert chars.render(supervised(encoded)) == " a ball<eos> red<eos>"
    assert encoded.num_supervised == len(" a ball") + len(" red") + 2


def test_v1_with_real_tokenizer(v1, bpe):
    encoded = v1.encode([human("<image>\nwhat is the big ball?"), gpt("the red ball")], bpe)
    masked = bpe.encode(" USER: <image>\nwhat is the big ball? ASSISTANT:")
    answer = bpe.encode(" the red ball")
    assert encoded.input_ids == [bpe.sos_id] + masked + answer + [bpe.eos_id]
    assert encoded.labels == [IGNORE_INDEX] * (1 + len(masked)) + answer + [bpe.eos_id]
    assert encoded.input_ids.count(bpe.image_id) == 1
    assert bpe.decode(supervised(encoded)) == " the red ball"


@pytest.mark.parametrize("template", ["baby_v1", "baby_plain"])
def test_prompt_is_exact_prefix_of_encoding(template, bpe):
    tmpl = babyvlm.build("template", template)
    first = "<image>" if template == "baby_plain" else "<image>\nwhere is the doggy?"
    conversation = [human(first), gpt("look at the doggy"), human("<image>"), gpt("the small truck")]
    encoded = tmpl.encode(conversation, bpe)
    prompt = tmpl.prompt(conversation, bpe)
    answer = bpe.encode(" the small truck" if template == "baby_v1" else "the small truck") + [bpe.eos_id]
    assert encoded.input_ids == prompt + answer
    assert encoded.labels[len(prompt):] == answer
    assert tmpl.prompt(conversation[:3], bpe) == prompt  # ending with the human turn: same prompt


def test_prompt_drops_an_empty_reference_answer(v1, chars):
    prompt = v1.prompt([human("Hi"), gpt("")], chars)
    assert chars.render(prompt) == "<sos> USER: Hi ASSISTANT:"


# ---- errors --------------------------------------------------------------------------------
@pytest.mark.parametrize("template", ["baby_plain", "baby_v1"])
@pytest.mark.parametrize("conversation, message", [
    ([], "empty conversation"),
    ("<image> hello", "must be a list of turns"),
    ([human("<image>")], "no gpt turn, so it would leave no supervised token"),
    ([human("<image>"), gpt("a"), human("<image>")], "ends with human turn 2"),
    ([gpt("a ball")], "turn 0 is 'gpt', expected 'human'"),
    ([human("<image>"), human("<image>"), gpt("a")], "turn 1 is 'human', expected 'gpt'"),
    ([human("<image>"), {"from": "assistant", "value": "a"}], "turn 1 has unknown role 'assistant'"),
    ([human("<image>"), {"from": "gpt"}], "turn 1 has no 'value' key"),
    ([human("<image>"), {"from": "gpt", "value": 3}], "turn 1 'value' must be a string"),
    ([human("<image>"), "a ball"], "turn 1 must be a dict"),
    ([human("<image>"), gpt("  ")], "gpt turn 1 is empty"),
    ([human("<image>"), gpt("look <image>")], "gpt turn 1 contains <image>"),
])
def test_encode_errors_name_the_problem(template, conversation, message, chars):
    with pytest.raises(ModelInputError, match=f"^{template}: .*{message}"):
        babyvlm.build("template", template).encode(conversation, chars)


@pytest.mark.parametrize("conversation, message", [
    ([], "empty conversation"),
    ([gpt("a")], "turn 0 is 'gpt'"),
    ([human("a"), gpt("b"), gpt("c")], "turn 2 is 'gpt'"),
    ([human("a"), gpt(""), human("b")], "gpt turn 1 is empty"),
])
def test_prompt_errors(conversation, message, v1, chars):
    with pytest.raises(ModelInputError, match=message):
        v1.prompt(conversation, chars)


# ---- the same formats as Hugging Face chat templates (shipped in checkpoints) ------------------------
def render(template, messages: list[dict]) -> str:
    from transformers.utils.chat_template_utils import render_jinja_template

    rendered, _ = render_jinja_template(conversations=[messages], chat_template=template.jinja,
                                        bos_token="<sos>", eos_token="<eos>")
    return rendered[0]


def hf_ids(bpe, text: str) -> list[int]:
    """What a HF tokenizer over the same tokenizer.json makes of rendered text (specials split out)."""
    return bpe.backend.encode(text, add_special_tokens=False).ids


def as_messages(conversations: list[dict]) -> list[dict]:
    return [{"role": "user" if turn["from"] == "human" else "assistant", "content": turn["value"]}
            for turn in conversations]


JINJA_CASES = {
    "baby_v1": [[human("<image>\nwhat is the big ball"), gpt("the red ball")],
                [human("<image> <image>\nwhere is the doggy"), gpt("look at the doggy"), human("and the <image>?"),
                 gpt("a small kitty")],
                [human("what is this")]],
    "baby_plain": [[human("<image>"), gpt("look at the big ball")],
                   [human("<image>"), gpt("where is the doggy"), human("<image> <image>"), gpt("the red truck")],
                   [human("<image><image>")]],
}


@pytest.mark.parametrize("name", list(JINJA_CASES))
def test_jinja_template_tokenises_to_the_templates_own_ids(name, bpe):
    template = babyvlm.build("template", name)
    for conversations in JINJA_CASES[name]:
        ids = hf_ids(bpe, render(template, as_messages(conversations)))
        if conversations[-1]["from"] == "gpt":
            assert ids == template.encode(conversations, bpe).input_ids, conversations
        else:
            assert ids == template.prompt(conversations, bpe), conversations


def test_jinja_content_lists_follow_the_leaderboard_layout(v1):
    content = [{"type": "image"}, {"type": "image"}, {"type": "text", "text": "which one is the ball?"}]
    assert render(v1, [{"role": "user", "content": content}]) == \
        "<sos> USER: <image> <image>\nwhich one is the ball? ASSISTANT:"
    mixed = [{"type": "text", "text": "look"}, {"type": "image"}, {"type": "text", "text": "there"}]
    assert render(v1, [{"role": "user", "content": mixed}, {"role": "assistant", "content": "ball"}]) == \
        "<sos> USER: look <image>\nthere ASSISTANT: ball<eos>"


@pytest.mark.parametrize("messages, message", [
    ([{"role": "system", "content": "be nice"}], r"message 0 has role system; only user and assistant"),
    ([{"role": "assistant", "content": "hi"}], r"turns must alternate user, assistant, user, \.\.\. starting "
                                               r"with user; message 0 is assistant"),
    ([{"role": "user", "content": "<image>"}, {"role": "assistant", "content": "a <image>"}],
     r"assistant message 1 contains <image>"),
    ([{"role": "user", "content": "<image>"}, {"role": "assistant", "content": "  "}], r"assistant message 1 is empty"),
    ([{"role": "user", "content": [{"type": "video"}]}], r"unsupported content type video"),
])
def test_jinja_refuses_what_encode_refuses(v1, messages, message):
    from jinja2.exceptions import TemplateError

    with pytest.raises(TemplateError, match="baby_v1: " + message):
        render(v1, messages)


def test_jinja_baby_plain_refuses_text_in_a_user_turn(plain):
    from jinja2.exceptions import TemplateError

    with pytest.raises(TemplateError, match="baby_plain: user message 0 may hold only <image> tokens"):
        render(plain, [{"role": "user", "content": "<image> what is it"}])

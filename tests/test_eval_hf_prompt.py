"""The ``hf`` adapter on a babyvlm checkpoint builds exactly the prompt babyvlm's own template builds
(no extra newline after an image, one BOS), so both adapters give the same option losses on the
same items; image/text chat-template items round-trip the DevCV layout."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from test_eval_fixtures import hf_processor_for, jpeg, register_fakes, tiny_checkpoint, write_domain

from babyvlm import registry
from babyvlm.core.records import Request
from babyvlm.plugins.evaluation.hf_adapter import _content

DEVCV_PROMPTS = [  # the shapes DevCV prompts take: images first, then a newline and the question
    ("<image>\nHow many balls are there? Answer with a number.", ["1", "2", "3", "4"]),
    ("<image> <image>\nWhich picture shows the cup? Answer A or B.", ["A", "B"]),
    ("<image>\n<image>\nIs the ball on the left or the right?", ["left", "right"]),
]


@pytest.fixture(scope="module")
def workspace(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("hf_prompt")
    tiny_checkpoint(root / "ckpt", layers=2)
    hf_processor_for(root / "ckpt")
    write_domain(root / "data" / "saycam", n_letters=6, n_pairs=3, n_rounds=1)
    return root


@pytest.fixture
def adapters(workspace, fresh_registry):
    register_fakes()
    hf = registry.build("eval_adapter", dict(type="hf", path=str(workspace / "ckpt"), batch_size=4))
    babyvlm = registry.build("eval_adapter", dict(type="babyvlm", path=str(workspace / "ckpt"), batch_size=4,
                                                  scoring="full"))
    return hf, babyvlm


def items(workspace: Path) -> list[Request]:
    task = registry.build("task", "fake_letters")
    requests = [r for item in task.load(workspace / "data" / "saycam") for r in task.requests(item, "loglikelihood")]
    for number, (prompt, options) in enumerate(DEVCV_PROMPTS):
        images = [jpeg((40 * number, 120, 200 - 30 * k), seed=number * 3 + k) for k in range(prompt.count("<image>"))]
        requests.append(Request("choice", f"devcv-{number}", "devcv_shaped", images,
                                [{"from": "human", "value": prompt}], continuations=options))
    return requests


def test_hf_prompt_ids_are_the_babyvlm_templates(workspace, adapters):
    hf, babyvlm = adapters
    assert hf.use_chat_template and hf.string_content  # babyvlm's template renders the LLaVA text verbatim
    template, tokenizer = babyvlm.model.template, babyvlm.model.tokenizer
    for request in items(workspace):
        text = hf.prompt_text(request.conversations)
        assert "<image>\n\n" not in text and text.count("<sos>") == 1
        assert hf._token_ids(text) == template.prompt(request.conversations, tokenizer), request.item_id


def test_hf_and_babyvlm_adapters_give_equal_option_losses(workspace, adapters):
    hf, babyvlm = adapters
    requests = items(workspace)
    got = hf.loglikelihood(requests)
    want = babyvlm.loglikelihood(requests)
    for request, row, expected in zip(requests, got, want, strict=True):
        np.testing.assert_allclose([loss for loss, _ in row], [loss for loss, _ in expected], atol=1e-5, rtol=0,
                                   err_msg=request.item_id)
        assert [greedy for _, greedy in row] == [greedy for _, greedy in expected], request.item_id


def test_item_content_round_trips_the_devcv_layout(workspace, adapters):
    """A template that only takes image/text items still gets the DevCV text back, not an extra newline."""
    hf, _ = adapters
    for prompt, _ in DEVCV_PROMPTS[:2]:
        messages = [{"role": "user", "content": _content(prompt)}]
        rendered = hf.processor.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)
        assert rendered == f"<sos> USER: {prompt} ASSISTANT:"
    assert _content("<image>\nHow many?") == [{"type": "image"}, {"type": "text", "text": "How many?"}]
    assert _content("(A) <image> (B) <image>") == [{"type": "text", "text": "(A)"}, {"type": "image"},
                                                   {"type": "text", "text": " (B)"}, {"type": "image"}]

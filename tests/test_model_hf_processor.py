"""Hugging Face interop without hand work: a saved checkpoint ships a processor that
``AutoProcessor.from_pretrained`` loads, whose chat template and image preprocessing reproduce babyvlm's,
so plain ``transformers`` (in a process where importing babyvlm is impossible) generates the same tokens
from the same messages and image files, with no hand-built inputs."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
import torch
from model_support import saved_tiny_tokenizer
from PIL import Image
from safetensors.torch import load_file

import babyvlm
from babyvlm.plugins.babyllava import BabyLLaVA

CORPUS = ["look at the ball", "the doggy is running", "where is your cup", "a big red truck",
          "what is this", "and this one"] * 3
ANSWERS = ["look at the ball", "where is your cup", "the doggy is running", "a big red truck"]
MAX_NEW_TOKENS = 6

HF_SCRIPT = textwrap.dedent("""
    import sys


    class NoBabyvlm:
        \"\"\"Importing babyvlm (or anything under it) fails here: only transformers may run.\"\"\"

        def find_spec(self, name, path=None, target=None):
            if name == "babyvlm" or name.startswith("babyvlm."):
                raise ImportError(f"{name} must not be imported in this process")
            return None


    sys.meta_path.insert(0, NoBabyvlm())
    import json

    import torch
    from safetensors.torch import save_file
    from transformers import AutoProcessor, LlavaForConditionalGeneration

    checkpoint, request, out = sys.argv[1:4]
    spec = json.load(open(request))
    processor = AutoProcessor.from_pretrained(checkpoint)
    model = LlavaForConditionalGeneration.from_pretrained(checkpoint).eval()
    results, tensors = [], {}
    for index, case in enumerate(spec["cases"]):
        options = {"chat_template": case["template"]} if case["template"] else {}
        inputs = processor.apply_chat_template(case["messages"], add_generation_prompt=True, tokenize=True,
                                               return_dict=True, return_tensors="pt", **options)
        generated = model.generate(**inputs, max_new_tokens=spec["max_new_tokens"], do_sample=False)
        with torch.no_grad():
            tensors[f"logits{index}"] = model(**inputs).logits[0, -1].contiguous()
        tensors[f"pixels{index}"] = inputs["pixel_values"].contiguous()
        new = generated[0, inputs["input_ids"].shape[1]:].tolist()
        results.append({"input_ids": inputs["input_ids"][0].tolist(), "new_ids": new,
                        "text": processor.decode(new, skip_special_tokens=True)})
    save_file(tensors, out)
    assert not any(name == "babyvlm" or name.startswith("babyvlm.") for name in sys.modules)
    print(json.dumps(results))
""")


def square_image(seed: int, tint: tuple[int, int, int], side: int = 80) -> np.ndarray:
    """A square image, larger than the 64 px model input, so the processor really resizes it."""
    rng = np.random.default_rng(seed)
    return np.clip(rng.integers(0, 70, size=(side, side, 3)) + np.array(tint), 0, 255).astype(np.uint8)


IMAGES = [square_image(1, (190, 20, 20)), square_image(2, (20, 20, 190)), square_image(3, (20, 170, 20)),
          square_image(4, (150, 150, 20))]


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory) -> tuple[BabyLLaVA, Path, list[Path]]:
    """A tiny baby_plain model (as after alignment) fitted for a few steps, saved, plus its images as PNGs."""
    root = tmp_path_factory.mktemp("hf_processor")
    saved_tiny_tokenizer(root / "tokenizer", CORPUS, vocab_size=400)
    torch.manual_seed(0)
    model = babyvlm.build_model({"model": dict(
        type="babyllava", encoder=dict(type="vit", preset="tiny", num_hidden_layers=1), connector="mlp2x_gelu",
        language_model=dict(type="llama", preset="tiny", num_hidden_layers=1), tokenizer=dict(type="bpe", path=str(root / "tokenizer")),
        template="baby_plain")})
    samples = [{"conversations": [{"from": "human", "value": "<image>"}, {"from": "gpt", "value": answer}],
                "images": [image]} for image, answer in zip(IMAGES, ANSWERS, strict=True)]
    batch = model.prepare_batch(samples)
    optimizer = torch.optim.AdamW(model.parameters(), lr=3e-3)
    for _ in range(25):
        loss = model(**batch)["loss"]
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    model.eval()
    paths = []
    for index, image in enumerate(IMAGES):
        paths.append(root / f"image{index}.png")
        Image.fromarray(image).save(paths[-1])  # lossless: both sides read the same pixels
    info = model.save_pretrained(root / "ckpt")
    assert info.hf_loadable and info.processor
    return model, root / "ckpt", paths


def image_item(path: Path) -> dict:
    return {"type": "image", "path": str(path)}


def cases(paths: list[Path]) -> list[dict]:
    """HF messages, the chat template they use (None: the default baby_v1), and the LLaVA conversation and
    images babyvlm's templates turn into the same prompt."""
    return [
        {"template": None, "images": [0],
         "messages": [{"role": "user", "content": [image_item(paths[0]), {"type": "text", "text": "what is this"}]}],
         "conversations": [{"from": "human", "value": "<image>\nwhat is this"}]},
        {"template": None, "images": [2, 3, 1],
         "messages": [{"role": "user", "content": [image_item(paths[2]), image_item(paths[3]), image_item(paths[1])]}],
         "conversations": [{"from": "human", "value": "<image> <image> <image>"}]},
        {"template": None, "images": [1, 0],
         "messages": [{"role": "user", "content": [image_item(paths[1]), {"type": "text", "text": "look"}]},
                      {"role": "assistant", "content": "where is your cup"},
                      {"role": "user", "content": [image_item(paths[0]), {"type": "text", "text": "and this one"}]}],
         "conversations": [{"from": "human", "value": "<image>\nlook"}, {"from": "gpt", "value": "where is your cup"},
                           {"from": "human", "value": "<image>\nand this one"}]},
        {"template": "baby_plain", "images": [1],
         "messages": [{"role": "user", "content": [image_item(paths[1])]}],
         "conversations": [{"from": "human", "value": "<image>"}]},
        {"template": "baby_plain", "images": [2],
         "messages": [{"role": "user", "content": [image_item(paths[2])]}],
         "conversations": [{"from": "human", "value": "<image>"}]},
    ]


def test_checkpoint_ships_a_llava_processor_and_chat_templates(checkpoint):
    model, folder, _ = checkpoint
    processor = json.loads((folder / "processor_config.json").read_text())
    assert processor["processor_class"] == "LlavaProcessor" and processor["image_token"] == "<image>"
    assert (64 // processor["patch_size"]) ** 2 + processor["num_additional_image_tokens"] == model.tokens_per_image
    assert json.loads((folder / "config.json").read_text())["image_seq_length"] == model.tokens_per_image == 17
    image = processor["image_processor"]
    assert image["do_pad"] and not image["do_center_crop"] and image["size"] == {"height": 64, "width": 64}
    assert image["image_mean"] == [0.485, 0.456, 0.406] and image["resample"] == Image.Resampling.BICUBIC
    assert (folder / "chat_template.jinja").read_text() == babyvlm.build("template", "baby_v1").jinja
    assert (folder / "additional_chat_templates" / "baby_plain.jinja").read_text() == model.template.jinja


def test_plain_transformers_generates_the_same_tokens_from_messages(checkpoint, tmp_path):
    model, folder, paths = checkpoint
    spec = cases(paths)
    request = tmp_path / "request.json"
    request.write_text(json.dumps({"max_new_tokens": MAX_NEW_TOKENS,
                                   "cases": [{"template": c["template"], "messages": c["messages"]} for c in spec]}))
    script = tmp_path / "hf_generate.py"
    script.write_text(HF_SCRIPT)
    out = tmp_path / "tensors.safetensors"
    run = subprocess.run([sys.executable, str(script), str(folder), str(request), str(out)], capture_output=True,
                         text=True, timeout=300, cwd=tmp_path)
    assert run.returncode == 0, run.stderr[-3000:]
    assert "LOAD REPORT" not in run.stderr, run.stderr  # no missing / unexpected / mismatched weights
    theirs, tensors = json.loads(run.stdout.strip().splitlines()[-1]), load_file(str(out))
    eos, image_id, per_image = model.tokenizer.eos_id, model.image_id, model.tokens_per_image
    ours_all = []
    for index, (case, hf) in enumerate(zip(spec, theirs, strict=True)):
        template = babyvlm.build("template", case["template"] or "baby_v1")
        prompt = template.prompt(case["conversations"], model.tokenizer)
        images = [IMAGES[k] for k in case["images"]]
        # the processor expanded each <image> into tokens_per_image ids, and preprocessed like babyvlm
        assert hf["input_ids"] == [t for token in prompt for t in ([token] * per_image if token == image_id else [token])]
        pixels = torch.stack([model.encoder.preprocess(image) for image in images])
        torch.testing.assert_close(tensors[f"pixels{index}"], pixels, atol=1e-5, rtol=0)
        ours = model.generate({"input_ids": prompt, "images": images}, max_new_tokens=MAX_NEW_TOKENS)
        generated = hf["new_ids"][:hf["new_ids"].index(eos)] if eos in hf["new_ids"] else hf["new_ids"]
        assert generated == ours, case["messages"]
        assert hf["text"] == model.tokenizer.decode(ours)
        batch = model._pad([prompt])
        with torch.no_grad():
            logits = model(batch["input_ids"], pixels, attention_mask=batch["attention_mask"])["logits"][0, -1]
        torch.testing.assert_close(tensors[f"logits{index}"], logits, atol=2e-4, rtol=1e-4)
        ours_all.append(tuple(ours))
    assert len(set(ours_all)) >= 2  # the model is not a constant generator, so equal tokens mean something


def test_image_processor_equals_babyvlm_on_square_images_and_differs_only_in_the_padding(checkpoint):
    from transformers import AutoImageProcessor

    model, folder, _ = checkpoint
    processor = AutoImageProcessor.from_pretrained(folder, backend="pil")
    for image in (IMAGES[0], square_image(9, (0, 0, 0), side=64), square_image(10, (90, 90, 90), side=37)):
        ours = model.encoder.preprocess(image)
        theirs = torch.as_tensor(processor(images=image, return_tensors="pt")["pixel_values"][0])
        torch.testing.assert_close(theirs, ours, atol=1e-5, rtol=0)
    # non-square, already 64 wide (so no resampling): the image rows agree, the padded band does not, since
    # babyvlm pads with this image's mean colour and the stock processor with ImageNet's mean (123, 116, 103)
    wide = square_image(11, (0, 200, 0), side=64)[:48]
    ours = model.encoder.preprocess(wide)
    theirs = torch.as_tensor(processor(images=wide, return_tensors="pt")["pixel_values"][0])
    torch.testing.assert_close(theirs[:, 8:56], ours[:, 8:56], atol=1e-5, rtol=0)
    assert (theirs[:, :8] - ours[:, :8]).abs().min() > 0.1


def test_a_model_without_tokenizer_gets_no_processor(tmp_path):
    model = babyvlm.build_model("tiny")
    info = model.save_pretrained(tmp_path / "ckpt")
    assert info.hf_loadable and not info.processor
    assert not (tmp_path / "ckpt" / "processor_config.json").exists()

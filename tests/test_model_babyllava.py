"""The composed ``babyllava`` model: image splicing, batching, errors, training, generation, checkpoints
(including loading the saved folder in plain Hugging Face transformers)."""

import json
import shutil
import subprocess
import sys
import textwrap
import warnings

import numpy as np
import pytest
import torch
from safetensors.torch import save_file

import babyvlm
from babyvlm.core.errors import ConfigError, DataError, ModelInputError
from babyvlm.plugins.babyllava import BabyLLaVA

CORPUS = ["look at the ball", "the doggy is running", "where is your cup", "a big red truck",
          "mommy has the cup", "the ball is red", "running doggy", "look at the truck"] * 3
BALL, DOGGY, CUP, TRUCK = "look at the ball", "the doggy is running", "where is your cup", "a big red truck"


def make_image(seed: int, tint: tuple[int, int, int], shape=(48, 64)) -> np.ndarray:
    rng = np.random.default_rng(seed)
    noise = rng.integers(0, 60, size=(*shape, 3))
    return np.clip(noise + np.array(tint), 0, 255).astype(np.uint8)


def conversation(*turns: str) -> list[dict[str, str]]:
    return [{"from": "human" if i % 2 == 0 else "gpt", "value": value} for i, value in enumerate(turns)]


def training_samples() -> list[dict]:
    red, blue = make_image(1, (190, 20, 20)), make_image(2, (20, 20, 190))
    frames = [make_image(3 + k, (20, 150 + 20 * k, 20)) for k in range(3)]
    return [
        {"sample_id": "img-red", "conversations": conversation("<image>", BALL), "images": [red]},
        {"sample_id": "img-blue", "conversations": conversation("<image>", CUP), "images": [blue]},
        {"sample_id": "video", "conversations": conversation("<image><image><image>", DOGGY), "images": frames},
        {"sample_id": "interleaved", "conversations": conversation("<image>", "look", "<image>", TRUCK),
         "images": [make_image(7, (120, 120, 20)), make_image(8, (20, 120, 120))]},
    ]


@pytest.fixture(scope="module")
def tokenizer_dir(tmp_path_factory):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # the corpus is far too small for the requested vocab
        tokenizer = babyvlm.build("tokenizer", dict(type="bpe", corpus=CORPUS, vocab_size=400, min_frequency=1))
    return tokenizer.save(tmp_path_factory.mktemp("tokenizer"))


def tiny_model(tokenizer_dir, seed: int = 0, **options) -> BabyLLaVA:
    torch.manual_seed(seed)
    config = dict(type="babyllava", encoder=dict(type="vit", preset="tiny"), connector=dict(type="mlp2x_gelu"),
                  language_model=dict(type="llama", preset="tiny"), tokenizer=dict(type="bpe", path=str(tokenizer_dir)),
                  template="baby_plain")
    config.update(options)
    return babyvlm.build_model({"model": config})


@pytest.fixture(scope="module")
def trained(tokenizer_dir):
    """A tiny model overfitted on one fixed batch (also the overfitting test's evidence)."""
    model = tiny_model(tokenizer_dir)
    batch = model.prepare_batch(training_samples())
    optimizer = torch.optim.AdamW(model.parameters(), lr=3e-3)
    losses = []
    for _ in range(200):
        loss = model(**batch)["loss"]
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(float(loss.detach()))
        if losses[-1] <= 0.02 * losses[0]:
            break
    model.eval()
    return model, losses


# ---- batching and splicing -------------------------------------------------------------------
def test_prepare_batch_shapes_and_right_padding(tokenizer_dir):
    model = tiny_model(tokenizer_dir)
    samples = training_samples()
    batch = model.prepare_batch(samples)
    lengths = batch["attention_mask"].sum(dim=1).tolist()
    assert batch["input_ids"].shape == (4, max(lengths))
    assert batch["pixel_values"].shape == (1 + 1 + 3 + 2, 3, 64, 64)
    assert batch["image_counts"].tolist() == [1, 1, 3, 2]
    tokenizer = model.tokenizer
    first = [tokenizer.sos_id, tokenizer.image_id] + tokenizer.encode(BALL) + [tokenizer.eos_id]
    assert batch["input_ids"][0, :len(first)].tolist() == first
    assert (batch["input_ids"][0, len(first):] == tokenizer.pad_id).all()
    assert (batch["labels"][0, len(first):] == -100).all()

    out = model(**batch)
    assert torch.isfinite(out["loss"])
    # each <image> id becomes 17 positions (16 patches + CLS)
    expanded = [n - count + count * model.tokens_per_image for n, count in zip(lengths, [1, 1, 3, 2], strict=True)]
    assert out["attention_mask"].sum(dim=1).tolist() == expanded
    assert out["hidden_states"].shape == (4, max(expanded), 128)


def test_images_are_spliced_in_place_in_reading_order(tokenizer_dir):
    model = tiny_model(tokenizer_dir)
    batch = model.prepare_batch(training_samples())
    merged = model.embed(batch["input_ids"], batch["pixel_values"], batch["attention_mask"], batch["labels"])
    features = model.encode_images(batch["pixel_values"])
    embedding = model.language_model.get_input_embeddings()
    next_image = 0
    for row in range(batch["input_ids"].shape[0]):
        ids = batch["input_ids"][row, :int(batch["attention_mask"][row].sum())].tolist()
        labels = batch["labels"][row, :len(ids)].tolist()
        pieces, expected_labels = [], []
        for token, label in zip(ids, labels, strict=True):
            if token == model.image_id:
                pieces.append(features[next_image])
                expected_labels += [-100] * model.tokens_per_image
                next_image += 1
            else:
                pieces.append(embedding(torch.tensor([token])))
                expected_labels.append(label)
        expected = torch.cat(pieces)
        length = expected.shape[0]
        torch.testing.assert_close(merged.inputs_embeds[row, :length], expected)
        assert (merged.inputs_embeds[row, length:] == 0).all()
        assert merged.labels[row, :length].tolist() == expected_labels
        assert (merged.labels[row, length:] == -100).all()
        assert merged.attention_mask[row].tolist() == [1] * length + [0] * (merged.attention_mask.shape[1] - length)
    assert next_image == features.shape[0]


def test_frame_order_of_a_video_matters(tokenizer_dir):
    model = tiny_model(tokenizer_dir)
    video = training_samples()[2]
    reordered = dict(video, images=video["images"][::-1])
    loss = model(**model.prepare_batch([video]))["loss"]
    loss_reordered = model(**model.prepare_batch([reordered]))["loss"]
    assert not torch.isclose(loss, loss_reordered)


def test_text_only_sample(tokenizer_dir):
    model = tiny_model(tokenizer_dir)
    batch = model.prepare_batch([{"conversations": conversation("", BALL), "images": []}])
    assert batch["pixel_values"].shape[0] == 0
    assert torch.isfinite(model(**batch)["loss"])


# ---- errors ----------------------------------------------------------------------------------
def test_image_count_mismatch_names_sample_and_counts(tokenizer_dir):
    model = tiny_model(tokenizer_dir)
    samples = training_samples()[:2]
    samples[1] = dict(samples[1], conversations=conversation("<image><image>", CUP))
    with pytest.raises(ModelInputError, match=r"sample 1 \(img-blue\): 2 <image> token\(s\) but 1 image\(s\)"):
        model.prepare_batch(samples)

    batch = model.prepare_batch(training_samples()[:2])
    with pytest.raises(ModelInputError, match=r"sample 0: 1 <image> token\(s\) but 2 image\(s\)"):
        model(**dict(batch, image_counts=torch.tensor([2, 0])))
    with pytest.raises(ModelInputError, match=r"2 <image> token\(s\) \(per sample: \[1, 1\]\) but 1 image"):
        model(batch["input_ids"], batch["pixel_values"][:1], batch["labels"], batch["attention_mask"])


def test_bad_image_names_sample_and_image(tokenizer_dir):
    model = tiny_model(tokenizer_dir)
    samples = training_samples()
    samples[2]["images"][1] = b"not a jpeg"
    with pytest.raises(DataError, match="sample 2, image 1: .*cannot decode JPEG"):
        model.prepare_batch(samples)
    with pytest.raises(ModelInputError, match="empty list"):
        model.prepare_batch([])


def test_sequence_longer_than_the_model_is_refused(tokenizer_dir):
    model = tiny_model(tokenizer_dir, max_length=30)
    batch = model.prepare_batch(training_samples()[2:3])  # 3 frames x 17 tokens
    with pytest.raises(ModelInputError, match=r"sample 0: \d+ tokens after expanding its images, more than .* 30"):
        model(**batch)


def test_bad_options_are_config_errors(tokenizer_dir):
    with pytest.raises(ConfigError, match="cannot freeze 'decoder'"):
        tiny_model(tokenizer_dir, freeze=["decoder"])
    with pytest.raises(ConfigError, match="autocast_dtype"):
        tiny_model(tokenizer_dir, autocast_dtype="int8")
    model = tiny_model(tokenizer_dir, tokenizer=None)
    with pytest.raises(ConfigError, match="no tokenizer"):
        model.prepare_batch(training_samples())


# ---- parameters, freezing, the loss seam, autocast --------------------------------------------
def test_vocab_follows_the_tokenizer_and_freeze_is_reflected_in_trainable_counts(tokenizer_dir):
    model = tiny_model(tokenizer_dir, freeze=["encoder", "language_model.model.embed_tokens"])
    counts = model.parameter_counts()
    parts = counts["parts"]
    assert counts["vocab_size"] == model.tokenizer.vocab_size == model.language_model.config.vocab_size
    explicit = tiny_model(tokenizer_dir, language_model=dict(type="llama", preset="tiny", vocab_size=6000))
    assert explicit.language_model.config.vocab_size == model.tokenizer.vocab_size  # the tokenizer decides
    assert parts["encoder"]["trainable"] == 0 and parts["encoder"]["params"] > 0
    assert parts["connector"]["trainable"] == parts["connector"]["params"] == 128 * 128 * 2 + 128 * 2
    lm = parts["language_model"]
    assert lm["input_embeddings"] == counts["vocab_size"] * 128
    assert lm["trainable"] == lm["params"] - lm["input_embeddings"]
    assert counts["trainable"] == parts["connector"]["trainable"] + lm["trainable"]
    assert counts["total"] == sum(p["params"] for p in parts.values())


def test_loss_goes_through_the_loss_fn_seam(tokenizer_dir):
    model = tiny_model(tokenizer_dir)
    batch = model.prepare_batch(training_samples())
    reference = model(**batch)["loss"]
    calls = []

    def spy(hidden, weight, targets):
        calls.append((hidden.shape, weight, targets))
        return torch.nn.functional.cross_entropy(hidden @ weight.T, targets)

    model.loss_fn = spy
    loss = model(**batch)["loss"]
    (hidden_shape, weight, targets), = calls
    supervised = int((batch["labels"] != -100).sum())  # every supervised id sits after position 0
    assert hidden_shape == (supervised, 128) and targets.shape == (supervised,)
    assert weight is model.language_model.lm_head.weight and (targets != -100).all()
    torch.testing.assert_close(loss, reference)


def test_bf16_autocast_on_cpu(tokenizer_dir):
    model = tiny_model(tokenizer_dir)
    bf16 = tiny_model(tokenizer_dir, autocast_dtype="bfloat16")
    bf16.load_state_dict(model.state_dict())
    batch = model.prepare_batch(training_samples())
    projected = []
    bf16.connector.register_forward_hook(lambda module, args, output: projected.append(output.dtype))
    out, out_bf16 = model(**batch), bf16(**batch)
    assert projected == [torch.bfloat16]  # matmuls ran in bf16 (the final RMSNorm returns float32)
    loss, loss_bf16 = float(out["loss"].detach()), float(out_bf16["loss"].detach())
    assert loss_bf16 != loss and abs(loss_bf16 - loss) < 0.03 * loss
    out_bf16["loss"].backward()
    assert bf16.connector.linear_1.weight.grad is not None


# ---- training and generation ---------------------------------------------------------------------
def test_tiny_model_overfits_one_batch(trained):
    _, losses = trained
    assert len(losses) <= 200
    assert losses[-1] <= 0.1 * losses[0], f"loss fell only from {losses[0]:.3f} to {losses[-1]:.3f}"


def test_generate_reproduces_the_learned_utterances_and_stops_at_eos(trained):
    model, _ = trained
    tokenizer = model.tokenizer
    samples = training_samples()
    for sample, utterance in ((samples[0], BALL), (samples[1], CUP), (samples[2], DOGGY)):
        ids = model.generate(sample, max_new_tokens=20)
        assert ids == tokenizer.encode(utterance)  # <eos> came next: generation stopped there
    assert model.generate(samples[0], max_new_tokens=2) == tokenizer.encode(BALL)[:2]
    texts = model.generate(samples[:3], max_new_tokens=20, return_text=True)
    assert texts == [BALL, CUP, DOGGY]


def test_batched_generation_equals_one_at_a_time(trained):
    model, _ = trained
    samples = training_samples()
    prompts = [samples[0], samples[2], {"prompt": "<image> the", "images": samples[1]["images"]}]
    batched = model.generate(prompts, max_new_tokens=6)
    single = [model.generate(p, max_new_tokens=6) for p in prompts]
    assert batched == single
    assert model.generate("<image> the", images=samples[1]["images"], max_new_tokens=6) == single[2]


def test_loglikelihood_prefers_the_learned_utterance(trained):
    model, _ = trained
    red = training_samples()[0]
    right = model.loglikelihood([red])[0]
    wrong = model.loglikelihood([dict(red, conversations=conversation("<image>", TRUCK))])[0]
    assert right[1] is True and wrong[1] is False
    assert right[0] > wrong[0] and right[0] <= 0.0


# ---- checkpoints -------------------------------------------------------------------------------
HF_SCRIPT = textwrap.dedent("""
    import sys
    sys.modules["babyvlm"] = None  # prove no babyvlm code is needed
    import json, torch
    from safetensors.torch import load_file
    from transformers import LlavaForConditionalGeneration, PreTrainedTokenizerFast
    checkpoint, request = sys.argv[1], sys.argv[2]
    model = LlavaForConditionalGeneration.from_pretrained(checkpoint).eval()
    tokenizer = PreTrainedTokenizerFast(tokenizer_file=checkpoint + "/tokenizer.json")
    spec = json.load(open(request))
    pixels = load_file(request + ".safetensors")
    per_image, image_id = model.config.image_seq_length, model.config.image_token_id
    results = []
    for index, prompt in enumerate(spec["prompts"]):
        ids = tokenizer(prompt)["input_ids"]
        expanded = [t for token in ids for t in ([token] * per_image if token == image_id else [token])]
        output = model.generate(input_ids=torch.tensor([expanded]), pixel_values=pixels[f"images{index}"],
                                attention_mask=torch.ones(1, len(expanded), dtype=torch.long),
                                max_new_tokens=spec["max_new_tokens"], do_sample=False)
        logits = model(input_ids=torch.tensor([expanded]), pixel_values=pixels[f"images{index}"]).logits
        results.append({"prompt_ids": ids, "new_ids": output[0, len(expanded):].tolist(),
                        "last_logits": logits[0, -1].tolist()})
    print(json.dumps(results))
""")


def test_hf_export_loads_in_plain_transformers_with_identical_greedy_tokens(trained, tmp_path):
    model, _ = trained
    info = model.save_pretrained(tmp_path / "ckpt")
    assert info.hf_loadable
    samples = training_samples()
    prompts = ["<image>", "<image>", "<image><image><image>", "<image> the"]
    image_sets = [samples[0]["images"], samples[1]["images"], samples[2]["images"], samples[1]["images"]]
    ours = [model.generate(p, images=images, max_new_tokens=8) for p, images in zip(prompts, image_sets, strict=True)]
    assert len({tuple(ids) for ids in ours}) >= 3 and all(ours)  # not a constant generator

    request = tmp_path / "request.json"
    request.write_text(json.dumps({"prompts": prompts, "max_new_tokens": 8}))
    save_file({f"images{i}": torch.stack([model.encoder.preprocess(image) for image in images])
               for i, images in enumerate(image_sets)}, str(request) + ".safetensors")
    script = tmp_path / "hf_check.py"
    script.write_text(HF_SCRIPT)
    run = subprocess.run([sys.executable, str(script), str(tmp_path / "ckpt"), str(request)],
                         capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr[-3000:]
    assert "LOAD REPORT" not in run.stderr, run.stderr  # no missing / unexpected / mismatched weights
    theirs = json.loads(run.stdout.strip().splitlines()[-1])
    eos = model.tokenizer.eos_id
    for prompt, images, mine, hf in zip(prompts, image_sets, ours, theirs, strict=True):
        assert hf["prompt_ids"] == model.prompt_ids({"prompt": prompt})
        generated = hf["new_ids"][:hf["new_ids"].index(eos)] if eos in hf["new_ids"] else hf["new_ids"]
        assert generated == mine, prompt
        # stricter than tokens: the next-token distribution itself matches
        batch = model._pad([hf["prompt_ids"]])
        pixels = torch.stack([model.encoder.preprocess(image) for image in images])
        with torch.no_grad():
            logits = model(batch["input_ids"], pixels, attention_mask=batch["attention_mask"])["logits"][0, -1]
        torch.testing.assert_close(torch.tensor(hf["last_logits"]), logits, atol=2e-4, rtol=1e-4)


def test_checkpoint_round_trip_survives_moving_the_folder(trained, tmp_path):
    model, _ = trained
    batch = model.prepare_batch(training_samples())
    with torch.no_grad():
        logits_before = model(**batch, return_logits=True)["logits"]
        model.save_pretrained(tmp_path / "a")
        # saving must not disturb the live model (e.g. by sharing its configs with the export)
        torch.testing.assert_close(model(**batch, return_logits=True)["logits"], logits_before, atol=0, rtol=0)
    for name in ("config.json", "model.safetensors", "config.py", "tokenizer.json", "babyvlm.json"):
        assert (tmp_path / "a" / name).is_file(), name
    shutil.move(tmp_path / "a", tmp_path / "b")
    loaded = BabyLLaVA.from_pretrained(tmp_path / "b")
    for (name, value), (other_name, other) in zip(model.state_dict().items(), loaded.state_dict().items(), strict=True):
        assert name == other_name and torch.equal(value, other), name
    sample = training_samples()[1]
    assert loaded.generate(sample, max_new_tokens=8) == model.generate(sample, max_new_tokens=8)
    # the JSON spec's tokenizer path is folder-relative: it follows the folder
    assert babyvlm.load_config(tmp_path / "b").model.tokenizer.path == str((tmp_path / "b").resolve())


def test_non_default_connector_saves_babyvlm_format_only(tokenizer_dir, tmp_path):
    model = tiny_model(tokenizer_dir, connector="linear")
    with pytest.warns(UserWarning, match="HF|Hugging Face LLaVA export needs the default components"):
        info = model.save_pretrained(tmp_path / "ckpt")
    assert not info.hf_loadable and "connector LinearConnector" in info.note
    assert not (tmp_path / "ckpt" / "config.json").exists()
    loaded = BabyLLaVA.from_pretrained(tmp_path / "ckpt")
    torch.testing.assert_close(loaded.connector.proj.weight, model.connector.proj.weight)


def test_checkpoint_errors(tokenizer_dir, tmp_path):
    with pytest.raises(DataError, match="not a babyvlm checkpoint"):
        BabyLLaVA.from_pretrained(tmp_path)
    tokenizer = babyvlm.build("tokenizer", dict(type="bpe", path=str(tokenizer_dir)))
    model = tiny_model(tokenizer_dir, tokenizer=tokenizer)
    with pytest.raises(ConfigError, match="tokenizer was passed as an object"):
        model.save_pretrained(tmp_path / "ckpt")

"""Items/s of shared-prefix option scoring vs one full forward per option (the lmms-eval way).

Same model, same items, same batch size: the ``babyvlm`` eval adapter with ``scoring="shared"`` (the
image + question prefix encoded once, every option scored from its KV cache) and ``scoring="full"``
(images and prefix re-run for every option). Items are DevCV-shaped: Picture Vocabulary (4 images,
4 letter options) and Left/Right (a query + 3 option images, 3 letter options). Scores must agree
within ``--atol`` and the chosen options must be identical, or the script exits non-zero.

    python benchmarks/eval_scoring.py                              # tiny preset, CPU
    python benchmarks/eval_scoring.py --preset paper --device cuda # the paper's model where a GPU is lent

The model is randomly initialised (speed does not depend on training); the tokenizer is a small BPE
trained on the prompts.
"""

from __future__ import annotations

import argparse
import io
import json
import sys
import time
import warnings

import numpy as np
import torch
from PIL import Image

import babyvlm
from babyvlm.core.records import Request

PRESETS = {
    "tiny": dict(encoder=dict(type="vit", preset="tiny"), language_model=dict(type="llama", preset="tiny")),
    "paper": dict(encoder=dict(type="vit", preset="vit-l-16"),
                  language_model=dict(type="llama", preset="tinyllama-1.1b")),
}
TASKS = {  # name: (images per item, options, prompt)
    "pv_4_options": (4, "ABCD", "<image><image><image><image> Touch the image of 'ball' (A) the first image "
                                "(B) the second image (C) the third image (D) the fourth image."),
    "leftright_3_options": (4, "ABC", "<image> Which of the following is the same as this? (A) <image> (B) "
                                      "<image> (C) <image>"),
}


def jpeg(rng: np.random.Generator, size: int) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(rng.integers(0, 255, (size, size, 3), dtype=np.uint8)).save(buffer, format="JPEG")
    return buffer.getvalue()


def build_model(preset: str, device: str):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        corpus = [prompt for _, _, prompt in TASKS.values()] * 8 + ["A B C D"] * 8
        tokenizer = babyvlm.build("tokenizer", dict(type="bpe", corpus=corpus, vocab_size=400, min_frequency=1))
    torch.manual_seed(0)
    spec = dict(type="babyllava", connector=dict(type="mlp2x_gelu"), tokenizer=tokenizer, template="baby_v1",
                **PRESETS[preset])
    return babyvlm.build_model({"model": spec}).to(device).eval()


def requests_for(task: str, n: int, image_size: int, seed: int = 0) -> list[Request]:
    images_per_item, options, prompt = TASKS[task]
    rng = np.random.default_rng(seed)
    return [Request("choice", f"{task}_{i}", task, [jpeg(rng, image_size) for _ in range(images_per_item)],
                    [{"from": "human", "value": prompt}], continuations=list(options)) for i in range(n)]


def timed(adapters: list, requests, repeats: int) -> list[tuple[float, list]]:
    """Best-of-``repeats`` seconds per adapter, the adapters interleaved so load drifts hit both alike."""
    for adapter in adapters:
        adapter.loglikelihood(requests[: adapter.batch_size])  # warm-up
    best, results = [float("inf")] * len(adapters), [[] for _ in adapters]
    for _ in range(repeats):
        for index, adapter in enumerate(adapters):
            if torch.cuda.is_available():
                torch.cuda.synchronize()
            start = time.perf_counter()
            results[index] = adapter.loglikelihood(requests)
            if torch.cuda.is_available():
                torch.cuda.synchronize()
            best[index] = min(best[index], time.perf_counter() - start)
    return list(zip(best, results, strict=True))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--preset", choices=sorted(PRESETS), default="tiny")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--items", type=int, default=64)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--atol", type=float, default=1e-5)
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads (1: steadier on a shared machine)")
    parser.add_argument("--json", action="store_true", help="print the rows as JSON")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)

    from babyvlm.plugins.evaluation.babyvlm_adapter import BabyVLMAdapter

    model = build_model(args.preset, args.device)
    size = int(model.encoder.image_size)
    rows, ok = [], True
    for task in TASKS:
        requests = requests_for(task, args.items, size)
        shared_adapter = BabyVLMAdapter(model=model, template=None, batch_size=args.batch_size, scoring="shared",
                                        device=args.device)
        full_adapter = BabyVLMAdapter(model=model, template=None, batch_size=args.batch_size, scoring="full",
                                      device=args.device)
        (shared_s, shared), (full_s, full) = timed([shared_adapter, full_adapter], requests, args.repeats)
        a = np.array([[loss for loss, _ in row] for row in shared])
        b = np.array([[loss for loss, _ in row] for row in full])
        same_pick = bool((a.argmin(axis=1) == b.argmin(axis=1)).all())
        max_diff = float(np.abs(a - b).max())
        ok &= same_pick and max_diff <= args.atol
        rows.append(dict(task=task, preset=args.preset, device=args.device, items=args.items,
                         batch_size=args.batch_size, shared_items_per_s=args.items / shared_s,
                         full_items_per_s=args.items / full_s, speedup=full_s / shared_s,
                         max_abs_loss_diff=max_diff, identical_picks=same_pick))
    if args.json:
        print(json.dumps(rows, indent=2))
    else:
        print(f"{'task':<22}{'shared it/s':>12}{'full it/s':>11}{'speed-up':>10}{'max |diff|':>12}  same picks")
        for row in rows:
            print(f"{row['task']:<22}{row['shared_items_per_s']:>12.1f}{row['full_items_per_s']:>11.1f}"
                  f"{row['speedup']:>9.2f}x{row['max_abs_loss_diff']:>12.2e}  {row['identical_picks']}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())

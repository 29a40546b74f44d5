"""Benchmark: samples/s decoding 224-px image-utterance samples to normalised float tensors.

Same samples, same script, same DataLoader (2 workers, batch 32, one fixed shuffled order), same
normalisation (ImageNet mean/std into a 3x224x224 float32 tensor); only the storage differs:

* lmdb            the ``lmdb`` store through ``PretrainingDataset`` (224-px JPEGs made at build time);
* llava-224       LLaVA JSON + JPEG folder exported from that store (byte-identical JPEGs): per sample
                  ``Image.open(folder / path).convert("RGB")``, as LLaVA's loader does;
* llava-native    LLaVA JSON + the frames at the video's native resolution (how derived frames are
                  distributed), resized to 224 at load time (PIL bicubic, no ``draft``: the decode is full);
* llava-hf        llava-native through LLaVA's own path: ``expand2square`` + a Hugging Face
                  ``CLIPImageProcessor`` (resize, crop, rescale, normalise);
* memmap          a raw uint8 N x 224 x 224 x 3 numpy memmap of the store's decoded pixels;
* lmdb-trainer    the trainer's image path (``babyvlm.plugins.mmengine_trainer.fast_images``): the same
                  store, JPEGs decoded with libjpeg-turbo (``simplejpeg``; Pillow when absent) into uint8
                  tensors in the workers, uint8 batches, normalised after the loader in one batched op
                  (on the GPU in training; here on the CPU, inside the timing);
* memmap-uint8    the memmap through that same uint8-batch path (the fair twin of lmdb-trainer).

Goals: lmdb >= 5x the LLaVA-style loader, >= 0.8x the memmap. Each loader runs ``--rounds`` timed
epochs after a warm-up epoch, interleaved round-robin; the best epoch counts (the machine is shared).
Usage: ``python benchmarks/loader.py [--quick] [--minutes M] [--native-size PX]``.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import time
import warnings
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")
# decoded images are read-only numpy views; the tensors made from them are copied, never written through
warnings.filterwarnings("ignore", message="The given NumPy array is not writable")

import numpy as np  # noqa: E402
import torch  # noqa: E402
from PIL import Image  # noqa: E402

from babyvlm import registry  # noqa: E402
from babyvlm.cli import cli  # noqa: E402
from babyvlm.plugins.mmengine_trainer.fast_images import (  # noqa: E402
    StoreImages,
    decoder_name,
    normalise_on_device,
    uint8_chw,
)
from babyvlm.plugins.pretraining_set import (  # noqa: E402
    BuildPlan,
    BuildSettings,
    PretrainingDataset,
    build_pretraining_set,
)
from babyvlm.plugins.pretraining_set.llava_io import export_llava  # noqa: E402

SIZE = 224
MEAN = np.array([0.485, 0.456, 0.406], dtype=np.float32)
STD = np.array([0.229, 0.224, 0.225], dtype=np.float32)
SCALE = torch.from_numpy(1.0 / (255.0 * STD))[:, None, None]
SHIFT = torch.from_numpy(-MEAN / STD)[:, None, None]


def normalise(pixels: np.ndarray) -> torch.Tensor:
    """HxWx3 uint8 -> 3xHxW float32, ImageNet-normalised (one channels-first copy, two in-place ops)."""
    chw = torch.from_numpy(np.ascontiguousarray(pixels)).permute(2, 0, 1).contiguous()
    return chw.to(torch.float32).mul_(SCALE).add_(SHIFT)


class LmdbImages(torch.utils.data.Dataset):
    def __init__(self, store: Path):
        self.dataset = PretrainingDataset(store, formats=["image"])

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, index: int) -> torch.Tensor:
        return normalise(self.dataset[index]["images"][0])


def first_image(record: dict) -> str:
    """LLaVA JSON names one image as a string (LLaVA-1.5's form) or several as a list."""
    image = record["image"]
    return image if isinstance(image, str) else image[0]


class LlavaImages(torch.utils.data.Dataset):
    """LLaVA's loader: a JSON list in memory, one image file opened per sample."""

    def __init__(self, json_path: Path, resize_to: int | None = None):
        self.folder = json_path.parent
        self.records = json.loads(json_path.read_text())
        self.resize_to = resize_to

    def __len__(self) -> int:
        return len(self.records)

    def __getitem__(self, index: int) -> torch.Tensor:
        image = Image.open(os.path.join(self.folder, first_image(self.records[index]))).convert("RGB")
        if self.resize_to and max(image.size) != self.resize_to:
            image = image.resize((self.resize_to, self.resize_to), Image.Resampling.BICUBIC)
        return normalise(np.asarray(image))


def expand2square(image: Image.Image, background: tuple[int, int, int]) -> Image.Image:
    """LLaVA's padding to a square with the mean colour."""
    width, height = image.size
    if width == height:
        return image
    side = max(width, height)
    result = Image.new(image.mode, (side, side), background)
    result.paste(image, ((side - width) // 2, (side - height) // 2))
    return result


class LlavaHfImages(LlavaImages):
    """LLaVA's exact image path: expand2square + a Hugging Face CLIPImageProcessor."""

    def __init__(self, json_path: Path):
        super().__init__(json_path)
        import transformers

        processor_class = getattr(transformers, "CLIPImageProcessorPil", None) or transformers.CLIPImageProcessor
        self.processor = processor_class(size={"shortest_edge": SIZE}, crop_size={"height": SIZE, "width": SIZE},
                                         image_mean=MEAN.tolist(), image_std=STD.tolist())

    def __getitem__(self, index: int) -> torch.Tensor:
        image = Image.open(os.path.join(self.folder, first_image(self.records[index]))).convert("RGB")
        image = expand2square(image, tuple(int(x * 255) for x in MEAN))
        return self.processor.preprocess(image, return_tensors="pt")["pixel_values"][0]


class MemmapImages(torch.utils.data.Dataset):
    def __init__(self, path: Path, count: int):
        self.path, self.count, self.array = path, count, None

    def __len__(self) -> int:
        return self.count

    def __getitem__(self, index: int) -> torch.Tensor:
        if self.array is None:  # opened lazily, once per worker
            self.array = np.memmap(self.path, dtype=np.uint8, mode="r", shape=(self.count, SIZE, SIZE, 3))
        return normalise(np.array(self.array[index]))


class MemmapUint8(MemmapImages):
    def __getitem__(self, index: int) -> torch.Tensor:
        if self.array is None:
            self.array = np.memmap(self.path, dtype=np.uint8, mode="r", shape=(self.count, SIZE, SIZE, 3))
        return uint8_chw(np.array(self.array[index]))


UINT8_LOADERS = ("lmdb-trainer", "memmap-uint8")  # normalised after the loader, inside the timing


def prepare(workdir: Path, minutes: float, native_size: int) -> dict[str, torch.utils.data.Dataset]:
    if "synth" not in registry.names("command") or "saycam" not in registry.names("source"):
        sys.exit("this benchmark needs the synthetic generator (babyvlm synth) and the saycam source")
    corpus = workdir / "corpus"
    cli.main(["synth", "saycam", str(corpus), "--minutes", str(minutes), "--size", str(native_size), "--seed", "0",
              "--quiet"], standalone_mode=False)
    images_only = dict(formats=("image",))
    for name, size in (("store", SIZE), ("store-native", 0)):
        plan = BuildPlan(source="saycam", root=corpus, out=workdir / name,
                         settings=BuildSettings(image_size=size, **images_only))
        build_pretraining_set(plan, log=lambda _: None)
    export_llava(workdir / "store", workdir / "llava-224", log=lambda _: None)
    export_llava(workdir / "store-native", workdir / "llava-native", log=lambda _: None)
    lmdb_images = PretrainingDataset(workdir / "store", formats=["image"])
    count = len(lmdb_images)
    memmap = np.lib.format.open_memmap(workdir / "pixels.npy", mode="w+", dtype=np.uint8, shape=(count, SIZE, SIZE, 3))
    for index in range(count):
        memmap[index] = lmdb_images[index]["images"][0]  # the very pixels the lmdb loader decodes
    memmap.flush()
    offset = np.lib.format.open_memmap(workdir / "pixels.npy", mode="r").offset
    raw = workdir / "pixels.u8"
    with open(workdir / "pixels.npy", "rb") as src, open(raw, "wb") as dst:
        src.seek(offset)
        shutil.copyfileobj(src, dst)
    return {"lmdb": LmdbImages(workdir / "store"), "llava-224": LlavaImages(workdir / "llava-224" / "data.json"),
            "llava-native": LlavaImages(workdir / "llava-native" / "data.json", resize_to=SIZE),
            "llava-hf": LlavaHfImages(workdir / "llava-native" / "data.json"), "memmap": MemmapImages(raw, count),
            "lmdb-trainer": StoreImages(lmdb_images.store, lmdb_images.shard_ids, lmdb_images.keys),
            "memmap-uint8": MemmapUint8(raw, count)}


def epoch_rate(loader: torch.utils.data.DataLoader, uint8: bool = False) -> float:
    start, seen = time.perf_counter(), 0
    for batch in loader:
        if uint8:
            batch = normalise_on_device(batch, "cpu")
        seen += batch.shape[0]
    return seen / (time.perf_counter() - start)


def measure(datasets: dict[str, torch.utils.data.Dataset], rounds: int, workers: int, batch: int) -> dict[str, list[float]]:
    order = torch.randperm(len(datasets["lmdb"]), generator=torch.Generator().manual_seed(0)).tolist()
    loaders = {name: torch.utils.data.DataLoader(ds, batch_size=batch, sampler=order, num_workers=workers,
                                                 persistent_workers=True, prefetch_factor=4)
               for name, ds in datasets.items()}
    for name, loader in loaders.items():
        epoch_rate(loader, name in UINT8_LOADERS)  # warm-up: worker start, page cache
    rates: dict[str, list[float]] = {name: [] for name in loaders}
    for _ in range(rounds):
        for name, loader in loaders.items():
            rates[name].append(epoch_rate(loader, name in UINT8_LOADERS))
    return rates


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--minutes", type=float, default=10.0, help="Minutes of synthetic video (about 50 samples each).")
    parser.add_argument("--native-size", type=int, default=480, help="Native frame size of the corpus.")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--quick", action="store_true", help="3 minutes of video, 2 rounds.")
    parser.add_argument("--workdir", type=Path, default=None, help="Keep the data here (default: a temp folder).")
    args = parser.parse_args()
    if args.quick:
        args.minutes, args.rounds = 3.0, 2
    torch.set_num_threads(1)
    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="babyvlm-loader-"))
    try:
        datasets = prepare(workdir, args.minutes, args.native_size)
        check = [datasets[name][0] for name in ("lmdb", "llava-224", "memmap")]
        assert all(torch.equal(check[0], other) for other in check[1:]), "loaders disagree on the same sample"
        fast = normalise_on_device(datasets["lmdb-trainer"][0][None], "cpu")[0]
        decode_gap = float((fast - check[0]).abs().max())  # libjpeg-turbo's fast DCT vs Pillow's
        rates = measure(datasets, args.rounds, args.workers, args.batch)
    finally:
        if args.workdir is None:
            shutil.rmtree(workdir, ignore_errors=True)
    best = {name: max(values) for name, values in rates.items()}
    print(f"{len(datasets['lmdb'])} image-utterance samples, 224 px, corpus native {args.native_size} px; "
          f"{args.workers} workers, batch {args.batch}; best of {args.rounds} epochs")
    print(f"{'loader':14} {'samples/s':>10} {'epochs (samples/s)':>30} {'lmdb / this':>12}")
    for name, values in rates.items():
        print(f"{name:14} {best[name]:10.0f} {' '.join(f'{v:.0f}' for v in values):>30} {best['lmdb'] / best[name]:12.2f}")
    print(f"lmdb vs llava-224 (same JPEG bytes): {best['lmdb'] / best['llava-224']:.2f}x; vs llava-native: "
          f"{best['lmdb'] / best['llava-native']:.2f}x; vs llava-hf (LLaVA's path): {best['lmdb'] / best['llava-hf']:.2f}x "
          f"(goal >= 5x); vs memmap: {best['lmdb'] / best['memmap']:.2f}x (goal >= 0.8x)")
    print(f"trainer path (decoder: {decoder_name()}, max abs pixel difference to Pillow {decode_gap:.3f} after "
          f"normalisation): lmdb-trainer vs llava-hf {best['lmdb-trainer'] / best['llava-hf']:.2f}x (goal >= 5x); "
          f"vs memmap {best['lmdb-trainer'] / best['memmap']:.2f}x (goal >= 0.8x); vs memmap-uint8 "
          f"{best['lmdb-trainer'] / best['memmap-uint8']:.2f}x")
    print(f"load average while running: {os.getloadavg()[0]:.2f} (1 min) on {os.cpu_count()} cores")


if __name__ == "__main__":
    main()

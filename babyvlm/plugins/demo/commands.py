"""The ``babyvlm demo`` command: synthetic corpus -> store -> tokenizer -> tiny BabyLLaVA -> report.json.

The stages are described in the package docstring (``babyvlm/plugins/demo/__init__.py``).
"""

from __future__ import annotations

import json
import os
import random
import time
from pathlib import Path
from typing import Any

import click
import torch

import babyvlm
from babyvlm import registry
from babyvlm.core.compose import load_config, write_resolved_config
from babyvlm.plugins.pretraining_set import PretrainingDataset


def run_command(name: str, *args: str) -> None:
    """Run a registered ``babyvlm`` command in-process, exactly as the CLI would."""
    click.echo(click.style(f"\n$ babyvlm {name} {' '.join(args)}", bold=True))
    registry.get("command", name).main(list(args), prog_name=f"babyvlm {name}", standalone_mode=False)


def recording_ids(dataset: PretrainingDataset) -> list[str]:
    """The recording each sample was cut from (read from the record, not parsed from its key)."""
    return [dataset.store.get(int(s), bytes(k)).meta["recording_id"] for s, k in zip(dataset.shard_ids, dataset.keys, strict=True)]


def heldout_recordings(dataset: PretrainingDataset, count: int, seed: int) -> set[str]:
    """Hold out whole recordings, so no held-out frame or utterance was seen in training."""
    unique = sorted(set(recording_ids(dataset)))
    if len(unique) <= count:
        raise click.ClickException(f"need more than {count} recordings to hold {count} out; the corpus has "
                                   f"{len(unique)} (raise corpus.minutes)")
    random.Random(seed).shuffle(unique)
    return set(unique[:count])


def subset(dataset: PretrainingDataset, recordings: set[str], keep: bool) -> torch.utils.data.Subset:
    ids = recording_ids(dataset)
    return torch.utils.data.Subset(dataset, [i for i, r in enumerate(ids) if (r in recordings) == keep])


@torch.no_grad()
def heldout_loss(model: Any, samples: list[dict], shuffle_images: bool, seed: int = 0) -> float:
    """Mean loss on held-out samples; with ``shuffle_images`` each sample gets another's images."""
    model.eval()
    if shuffle_images:
        order = list(range(len(samples)))
        random.Random(seed).shuffle(order)
        donors = [samples[j] for j in order]
        samples = [dict(s, images=_same_count(s, d)) for s, d in zip(samples, donors, strict=True)]
    losses = [float(model(**model.prepare_batch(samples[i:i + 16]))["loss"]) for i in range(0, len(samples), 16)]
    return sum(losses) / len(losses)


def _same_count(sample: dict, donor: dict) -> list:
    images = list(donor["images"])
    while len(images) < len(sample["images"]):
        images += donor["images"]
    return images[: len(sample["images"])]


def parse_overrides(pairs: tuple[str, ...]) -> dict[str, Any]:
    options = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep:
            raise click.BadParameter(f"expected KEY=VALUE, got {pair!r}", param_hint="--set")
        try:
            options[key] = json.loads(value)
        except json.JSONDecodeError:
            options[key] = value
    return options


@click.command("demo")
@click.option("--out", default="demo_out", show_default=True, type=click.Path(file_okay=False, path_type=Path))
@click.option("--config", "config_path", default="demo", show_default=True, help="Config file or preset name.")
@click.option("--set", "overrides", multiple=True, help="Override a config field, e.g. corpus.minutes=2.")
def demo_command(out: Path, config_path: str, overrides: tuple[str, ...]) -> None:
    """Run the end-to-end demo on the embedded synthetic infant world."""
    started = time.perf_counter()
    cfg = load_config(config_path)
    cfg.merge_from_dict(parse_overrides(overrides))
    out.mkdir(parents=True, exist_ok=True)
    write_resolved_config(cfg, out)
    torch.manual_seed(0)
    corpus, store = out / "corpus", out / "store"
    c = cfg.corpus
    run_command("synth", c.kind, str(corpus), "--minutes", str(c.minutes), "--seed", str(c.seed), "--fps", str(c.fps),
                "--size", str(c.size), "--video-minutes", str(c.video_minutes), "--quiet")
    source_opts = [f"--source-opt={k}={v}" for k, v in cfg.data.source_options.items()]
    run_command("data", "build", "--source", cfg.data.source, "--root", str(corpus), "--out", str(store),
                "--store", cfg.data.store, "--scorer", cfg.data.scorer, "--image-size", str(cfg.data.image_size),
                *source_opts)
    run_command("data", "verify", str(store))
    run_command("data", "stats", str(store))
    report = train_and_evaluate(cfg, out, store)
    report["seconds"] = round(time.perf_counter() - started, 1)
    (out / "report.json").write_text(json.dumps(report, indent=2))
    click.echo(click.style("\n== demo report ==", bold=True))
    click.echo(json.dumps({k: v for k, v in report.items() if k != "phases"}, indent=2))
    click.echo(f"full report: {out / 'report.json'}; resolved config: {out / 'config.py'}")


def train_and_evaluate(cfg: Any, out: Path, store: Path) -> dict[str, Any]:
    everything = PretrainingDataset(store)
    held = heldout_recordings(everything, cfg.data.heldout_recordings, seed=0)
    train_all, heldout = subset(everything, held, keep=False), list(subset(everything, held, keep=True))
    texts = [turn["value"] for sample in train_all for turn in sample["conversations"] if turn["from"] == "gpt"]
    tokenizer = babyvlm.build("tokenizer", dict(cfg.tokenizer, corpus=texts))
    tokenizer.save(out / "tokenizer")
    model = babyvlm.build_model({"model": dict(cfg.model, tokenizer=dict(type="bpe", path=str(out / "tokenizer")))})
    click.echo(click.style(f"\nmodel parameters: {model.parameter_counts()}", bold=True))
    before = heldout_loss(model, heldout, shuffle_images=False)
    phases = []
    for phase in cfg.phases:
        train = subset(PretrainingDataset(store, formats=list(phase.formats)), held, keep=False)
        click.echo(click.style(f"\n== phase {phase.name}: {len(train)} samples ({', '.join(phase.formats)}) ==",
                               bold=True))
        result = babyvlm.build("trainer", dict(phase.trainer)).fit(model, train, log=click.echo)
        phases.append({"name": phase.name, "samples": len(train), **result.to_dict()})
    model.save_pretrained(out / "checkpoint")
    after = heldout_loss(model, heldout, shuffle_images=False)
    shuffled = heldout_loss(model, heldout, shuffle_images=True)
    example = next(s for s in heldout if s["format"] == "image")
    prompt = dict(example, conversations=example["conversations"][:1])
    generated = model.generate(prompt, max_new_tokens=12, return_text=True)
    return {
        "store_samples": len(everything), "train_samples": len(train_all), "heldout_samples": len(heldout),
        "heldout_recordings": sorted(held),
        "heldout_loss_untrained": round(before, 4), "heldout_loss_trained": round(after, 4),
        "heldout_loss_shuffled_images": round(shuffled, 4),
        "example": {"reference": example["conversations"][-1]["value"], "generated": generated},
        "checkpoint": str(out / "checkpoint"), "phases": phases,
        "threads": torch.get_num_threads(), "cpu_count": os.cpu_count(),
    }

"""The ``babyvlm model`` click group: ``info`` and ``build`` (see the package docstring).

CONFIG is a preset name (``tiny``, ``paper``), a ``.py`` config, or a checkpoint folder (read through
its JSON model spec; its ``config.py`` is never executed). ``--set KEY=VALUE`` takes dotted keys and
JSON values (``--set 'model.freeze=["encoder"]'``), like every other babyvlm ``KEY=VALUE`` option.

``info`` reports tokens per image as the model computes them (the connector's ``output_tokens`` for the
encoder's tokens: a resampler's 4, not the ViT's 17), and with ``--stage STAGE`` the trainable counts
that training stage would leave (the model's ``freeze_backbones``; its config's ``freeze`` still holds).
"""

from __future__ import annotations

import json
import warnings
from pathlib import Path
from typing import Any

import click
import torch
from mmengine.config import Config

from babyvlm.core.compose import apply_overrides, build_model, load_config
from babyvlm.core.errors import ConfigError


def resolve_config(config: str, settings: tuple[str, ...] = (), tokenizer: str | None = None,
                   tokenizer_type: str = "bpe") -> Config:
    """Load CONFIG (a checkpoint folder through its JSON model spec) and apply ``--set`` overrides
    (``model.language_model.hidden_size=256``: dotted keys, JSON values)."""
    cfg = load_config(config)
    if "model" not in cfg:
        raise ConfigError(f"config {config!r} has no 'model' section")
    if tokenizer is not None:
        cfg.model.tokenizer = dict(type=tokenizer_type, path=str(Path(tokenizer).resolve()))
    apply_overrides(cfg, settings, "--set")
    return cfg


def model_info(cfg: Config, stage: str | None = None) -> dict[str, Any]:
    """Parameter counts of the config's model, built on the meta device (no memory, no init time); with
    ``stage``, the trainable counts after the model's ``freeze_backbones(stage)``."""
    with torch.device("meta"):
        model = build_model(cfg)
    if stage is not None:
        model.freeze_backbones(stage)
    info = model.parameter_counts()
    info["model"] = cfg.model.get("type")
    info["stage"] = stage
    info["components"] = {part: _component_name(cfg.model.get(part)) for part in info["parts"]}
    return info


def _component_name(spec: Any) -> str:
    if isinstance(spec, str):
        return spec
    if isinstance(spec, dict):
        preset = f" ({spec['preset']})" if "preset" in spec else ""
        return f"{spec.get('type', '?')}{preset}"
    return "?"


def _human(count: int) -> str:
    for scale, suffix in ((1e9, "B"), (1e6, "M"), (1e3, "K")):
        if count >= scale:
            return f"{count / scale:.4g}{suffix}"
    return str(count)


def format_info(info: dict[str, Any]) -> str:
    lines = [f"model {info['model']}"]
    for part, counts in info["parts"].items():
        line = (f"  {part:<15} {info['components'][part]:<24} {_human(counts['params']):>8} params  "
                f"({_human(counts['trainable'])} trainable)")
        if "input_embeddings" in counts:
            line += (f"; embeddings: input {_human(counts['input_embeddings'])}, "
                     f"output {_human(counts['output_embeddings'])}")
        lines.append(line)
    lines.append(f"  {'total':<15} {'':<24} {_human(info['total']):>8} params  ({_human(info['trainable'])} trainable)")
    if info.get("stage"):
        lines.append(f"  trainable counts for stage {info['stage']}")
    encoder_tokens = info.get("encoder_tokens")
    source = "" if encoder_tokens is None else f"from the connector, for {encoder_tokens} encoder tokens; "
    lines.append(f"  tokens per image: {info['tokens_per_image']} ({source}image {info['image_size']} px), "
                 f"vocab {info['vocab_size']}")
    return "\n".join(lines)


@click.group("model")
def model_group() -> None:
    """Inspect and build models."""


@model_group.command("info")
@click.argument("config")
@click.option("--set", "settings", multiple=True, metavar="KEY=VALUE", help="Override a config value; VALUE is JSON, else a string.")
@click.option("--stage", default=None, metavar="STAGE",
              help="Show trainable counts for a training stage (e.g. 1-alignment, 2-joint).")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
def info_command(config: str, settings: tuple[str, ...], stage: str | None, as_json: bool) -> None:
    """Parameters per part (encoder, connector, language model and its embeddings), tokens per image."""
    info = model_info(resolve_config(config, settings), stage)
    click.echo(json.dumps(info, indent=2) if as_json else format_info(info))


@model_group.command("build")
@click.argument("config")
@click.option("--out", "out_dir", required=True, type=click.Path(file_okay=False), help="Checkpoint folder.")
@click.option("--tokenizer", "tokenizer_dir", type=click.Path(exists=True), help="A saved tokenizer folder.")
@click.option("--tokenizer-type", default="bpe", show_default=True, help="Registered tokenizer of --tokenizer.")
@click.option("--set", "settings", multiple=True, metavar="KEY=VALUE", help="Override a config value; VALUE is JSON, else a string.")
def build_command(config: str, out_dir: str, tokenizer_dir: str | None, tokenizer_type: str,
                  settings: tuple[str, ...]) -> None:
    """Build a freshly initialised model and save it (weights, config.json, config.py, tokenizer)."""
    cfg = resolve_config(config, settings, tokenizer_dir, tokenizer_type)
    model = build_model(cfg)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # its note is printed below instead
        saved = model.save_pretrained(out_dir, config=cfg)
    layout = getattr(saved, "layout", "")
    click.echo(f"saved {cfg.model.get('type')} to {out_dir}" + (f" ({layout} layout)" if layout else ""))
    if getattr(saved, "processor", False):
        click.echo("with a Hugging Face processor and chat template: AutoProcessor.from_pretrained loads it")
    if getattr(saved, "note", ""):
        click.echo(f"note: {saved.note}")

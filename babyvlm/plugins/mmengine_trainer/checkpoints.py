"""Training checkpoints without pickle: what the ``mmengine`` (and ``dino``) trainer saves to resume a
phase exactly, and how it reads it back without trusting the work dir.

Checkpoint ``iter_N`` (N = iterations done) is three files in the phase's work dir:

- ``iter_N.safetensors``: the weights of the trained module (model, or DINO's student + teacher);
- ``state_N.safetensors``: the optimizer's tensors (AdamW moments, step counts) and the RNG streams;
- ``iter_N.json``: everything else, plain JSON: the iteration, the settings that shape the data order
  and the optimisation, the optimizer's parameter groups, the schedulers' counters, the sampler's
  position and the Python / NumPy RNG states.

``checkpoints.sha256`` (``sha256sum`` format) holds the SHA-256 of every checkpoint file, written when
it is saved and checked before a resume reads a byte of it; ``last_checkpoint`` names the newest record
(``iter_N.json``) relative to the work dir. Nothing is unpickled: a crafted ``.pth`` is never opened, a
``last_checkpoint`` pointing elsewhere (absolute, ``..``, a symlink out) is refused naming the file, and
a damaged or truncated file is named in one line with the previous intact checkpoint offered.

Each file is written atomically (readers see the old file or the new one); the index and
``last_checkpoint`` are updated only after the three files are complete, so a kill at any moment leaves
the previous checkpoint resumable. A full disk is reported naming the file being written.
"""

from __future__ import annotations

import hashlib
import json
import os
import random
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors import SafetensorError
from safetensors.torch import load as load_tensors
from safetensors.torch import save as save_tensors

from babyvlm.core.errors import ConfigError, DataError
from babyvlm.core.io import atomic_write_bytes, disk_errors, path_inside

FORMAT, VERSION = "babyvlm-train-checkpoint", 1
INDEX, LAST = "checkpoints.sha256", "last_checkpoint"
RECORD_NAME = re.compile(r"iter_(\d+)\.json")
OUR_FILES = re.compile(r"(iter_(\d+)\.(json|safetensors)|state_(\d+)\.safetensors)")
# trainer settings that change neither the data order nor the optimisation: free to change on resume
HARMLESS_SETTINGS = frozenset({"checkpoint_every", "keep_checkpoints", "log_every", "num_workers", "export",
                               "tensorboard", "device", "gradient_checkpointing", "probe", "probe_every",
                               "probe_k", "probe_crops", "image_cache_mb", "feature_cache_mb"})
SCHEDULER_COUNTERS = ("last_step", "_global_step", "_last_value")
AFTER_DISK_FULL = "the checkpoints written before it are kept: add --resume to continue from the last one"


def file_names(iteration: int) -> dict[str, str]:
    """The three files of checkpoint ``iter_N``."""
    return {"record": f"iter_{iteration}.json", "weights": f"iter_{iteration}.safetensors",
            "state": f"state_{iteration}.safetensors"}


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


# ---- the state, as tensors and plain values ---------------------------------------------------------
def unwrap(model: torch.nn.Module) -> torch.nn.Module:
    return model.module if hasattr(model, "module") else model


def weights_bytes(module: torch.nn.Module) -> bytes:
    """A state dict as safetensors bytes (tied tensors are stored once per name: cloned)."""
    return save_tensors({k: v.detach().cpu().contiguous().clone() for k, v in module.state_dict().items()})


def rng_state() -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """Every random stream training draws from: tensors (torch, CUDA, NumPy's key) and plain values."""
    kind, keys, position, has_gauss, gauss = np.random.get_state()
    tensors = {"rng.torch": torch.get_rng_state(), "rng.numpy_keys": torch.from_numpy(keys.astype(np.int64))}
    if torch.cuda.is_available():
        for device, state in enumerate(torch.cuda.get_rng_state_all()):
            tensors[f"rng.cuda.{device}"] = state
    version, internal, gauss_next = random.getstate()
    plain = {"python": [version, list(internal), gauss_next],
             "numpy": {"kind": kind, "position": int(position), "has_gauss": int(has_gauss), "gauss": float(gauss)}}
    return tensors, plain


def set_rng_state(tensors: Mapping[str, torch.Tensor], plain: Mapping[str, Any]) -> None:
    torch.set_rng_state(tensors["rng.torch"])
    numpy = plain["numpy"]
    np.random.set_state((numpy["kind"], tensors["rng.numpy_keys"].numpy().astype(np.uint32), numpy["position"],
                         numpy["has_gauss"], numpy["gauss"]))
    version, internal, gauss_next = plain["python"]
    random.setstate((version, tuple(internal), gauss_next))
    cuda = sorted((int(k.rsplit(".", 1)[1]), v) for k, v in tensors.items() if k.startswith("rng.cuda."))
    if cuda and torch.cuda.is_available():
        torch.cuda.set_rng_state_all([state for _, state in cuda])


def optimizer_state(optimizer: torch.optim.Optimizer) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """``optimizer.state_dict()`` split into tensors (``optimizer.<param>.<name>``) and plain values."""
    state = optimizer.state_dict()
    tensors, values = {}, {}
    for param, entries in state["state"].items():
        for name, value in entries.items():
            if isinstance(value, torch.Tensor):
                tensors[f"optimizer.{param}.{name}"] = value.detach().cpu().contiguous().clone()
            else:
                values.setdefault(str(param), {})[name] = value
    groups = [{key: list(value) if isinstance(value, tuple) else value for key, value in group.items()}
              for group in state["param_groups"]]
    return tensors, {"param_groups": groups, "values": values}


def optimizer_state_dict(tensors: Mapping[str, torch.Tensor], plain: Mapping[str, Any],
                         current: torch.optim.Optimizer) -> dict[str, Any]:
    """The inverse of ``optimizer_state``; list values whose current counterpart is a tuple (``betas``)
    become tuples again, so the optimizer computes exactly as before the checkpoint."""
    state: dict[int, dict[str, Any]] = {}
    for key, value in tensors.items():
        if key.startswith("optimizer."):
            _, param, name = key.split(".", 2)
            state.setdefault(int(param), {})[name] = value
    for param, entries in plain.get("values", {}).items():
        state.setdefault(int(param), {}).update(entries)
    groups = []
    for saved, live in zip(plain["param_groups"], current.param_groups, strict=False):
        groups.append({key: tuple(value) if isinstance(live.get(key), tuple) and isinstance(value, list) else value
                       for key, value in saved.items()})
    return {"state": state, "param_groups": groups}


def scheduler_state(scheduler: Any) -> dict[str, Any]:
    return {key: value for key, value in scheduler.state_dict().items() if _is_plain(value)}


def _is_plain(value: Any) -> bool:
    try:
        json.dumps(value, allow_nan=False)
    except (TypeError, ValueError):
        return False
    return True


def plain_settings(settings: Mapping[str, Any]) -> dict[str, Any]:
    """Settings as JSON reads them back (tuples become lists), so saved and current compare equal."""
    return json.loads(json.dumps(dict(settings), default=str))


def setting_differences(saved: Mapping[str, Any], current: Mapping[str, Any]) -> list[str]:
    """``key old -> new`` for every setting that changes the data order or the optimisation."""
    current = plain_settings(current)
    keys = sorted((set(saved) | set(current)) - HARMLESS_SETTINGS)
    return [f"{key} {_shown(saved, key)} -> {_shown(current, key)}" for key in keys
            if saved.get(key) != current.get(key)]


def _shown(settings: Mapping[str, Any], key: str) -> str:
    return repr(settings[key]) if key in settings else "(unset)"


# ---- saving -----------------------------------------------------------------------------------------
@dataclass
class CheckpointContent:
    """One checkpoint as bytes, ready to write: ``iteration`` and the three files' contents."""

    iteration: int
    weights: bytes
    state: bytes
    record: dict[str, Any]

    def files(self) -> dict[str, bytes]:
        names = file_names(self.iteration)
        text = json.dumps(self.record, indent=1, allow_nan=False) + "\n"
        return {names["weights"]: self.weights, names["state"]: self.state, names["record"]: text.encode()}


def write_checkpoint(folder: Path, content: CheckpointContent, keep: int) -> Path:
    """Write the checkpoint's files, then the index and ``last_checkpoint``, then drop the checkpoints
    beyond the newest ``keep``; returns the record's path."""
    # checkpoints past this one are another run's (a fresh start, or a resume from an earlier one): dropped
    index = {name: digest for name, digest in read_index(folder, missing_ok=True).items()
             if _file_order((name, digest))[0] <= content.iteration}
    for name, data in content.files().items():
        with disk_errors(folder / name, AFTER_DISK_FULL):
            atomic_write_bytes(folder / name, data)
        index[name] = sha256(data)
    record = file_names(content.iteration)["record"]
    write_index(folder, index)
    with disk_errors(folder / LAST, AFTER_DISK_FULL):
        atomic_write_bytes(folder / LAST, (record + "\n").encode())
    _prune(folder, index, keep)
    return folder / record


def read_index(folder: Path, missing_ok: bool = False) -> dict[str, str]:
    """``checkpoints.sha256`` as ``{file name: sha256}``; a malformed line is named."""
    path = folder / INDEX
    if not path.is_file():
        if missing_ok:
            return {}
        raise DataError(f"{path}: missing; without the checksums written beside the checkpoints none of them "
                        f"can be trusted (train the phase again without --resume)")
    index = {}
    for number, line in enumerate(path.read_text(encoding="utf-8", errors="replace").splitlines(), 1):
        digest, _, name = line.strip().partition("  ")
        if not line.strip():
            continue
        if not re.fullmatch(r"[0-9a-f]{64}", digest) or not OUR_FILES.fullmatch(name):
            raise DataError(f"{path}:{number}: not a '<sha256>  <checkpoint file>' line: {line[:80]!r}")
        index[name] = digest
    return index


def write_index(folder: Path, index: Mapping[str, str]) -> None:
    lines = "".join(f"{digest}  {name}\n" for name, digest in sorted(index.items(), key=_file_order))
    with disk_errors(folder / INDEX, AFTER_DISK_FULL):
        atomic_write_bytes(folder / INDEX, lines.encode())


def _file_order(item: tuple[str, str]) -> tuple[int, str]:
    match = OUR_FILES.fullmatch(item[0])
    number = (match.group(2) or match.group(4)) if match else None
    return (int(number) if number else -1, item[0])


def _iterations(index: Mapping[str, str]) -> list[int]:
    return sorted(int(match.group(1)) for name in index if (match := RECORD_NAME.fullmatch(name)))


def _prune(folder: Path, index: dict[str, str], keep: int) -> None:
    """Forget, then delete, checkpoints older than the newest ``keep``, and files of ours the index does
    not list (left by a save that was killed before its index update)."""
    old = _iterations(index)[:-keep] if keep > 0 else []
    doomed = {name for iteration in old for name in file_names(iteration).values()}
    if doomed:
        write_index(folder, {name: digest for name, digest in index.items() if name not in doomed})
    for path in folder.iterdir():
        if OUR_FILES.fullmatch(path.name) and (path.name in doomed or path.name not in index):
            path.unlink(missing_ok=True)


# ---- resuming ---------------------------------------------------------------------------------------
@dataclass
class TrainingCheckpoint:
    """A verified checkpoint, loaded: its record (plain values) and its tensors."""

    folder: Path
    iteration: int
    record: dict[str, Any]
    weights: dict[str, torch.Tensor] = field(repr=False)
    state: dict[str, torch.Tensor] = field(repr=False)

    @property
    def name(self) -> str:
        return f"iter_{self.iteration}"


def resume_target(folder: Path, requested: str | None) -> int:
    """The iteration to resume from: ``requested`` (``iter_8``, ``iter_8.json`` or ``8``), else what
    ``last_checkpoint`` names, which must be a record file inside the work dir."""
    if requested is not None:
        match = re.fullmatch(r"(?:iter_)?(\d+)(?:\.json)?", str(requested).strip())
        if not match:
            raise ConfigError(f"--resume-from {requested!r}: expected a checkpoint name like iter_8 "
                              f"(those in {folder}: {', '.join(available_checkpoints(folder)) or 'none'})")
        return int(match.group(1))
    pointer = folder / LAST
    if not pointer.is_file():
        raise ConfigError(f"--resume: no checkpoint to resume in {folder} (no {LAST} file)")
    text = pointer.read_text(encoding="utf-8", errors="replace").strip()
    if not text:
        raise DataError(f"{pointer}: empty, so it names no checkpoint; {_offer(folder, None)}")
    if text.endswith((".pth", ".pt", ".pkl")):
        raise DataError(f"{pointer}: names {text!r}, a pickled mmengine checkpoint; babyvlm never unpickles "
                        f"training state (a crafted pickle runs code when loaded): train the phase again "
                        f"without --resume")
    target = path_inside(folder, text, str(pointer))  # absolute, '..' and symlinks out are refused
    match = RECORD_NAME.fullmatch(text)
    if target.parent != folder.resolve() or not match:
        raise DataError(f"{pointer}: names {text!r}, not a checkpoint record iter_N.json of this work dir")
    return int(match.group(1))


def available_checkpoints(folder: Path) -> list[str]:
    try:
        index = read_index(folder, missing_ok=True)
    except DataError:
        return []
    return [f"iter_{iteration}" for iteration in _iterations(index)]


def damage(folder: Path, iteration: int, index: Mapping[str, str]) -> str | None:
    """Why checkpoint ``iter_N`` cannot be trusted (missing file, checksum differs), or None if intact."""
    for name in file_names(iteration).values():
        path = folder / name
        if name not in index:
            return f"{path}: not listed in {folder / INDEX}, so its content cannot be checked"
        if not path.is_file() or path.is_symlink():
            return f"{path}: missing" if not path.exists() else f"{path}: not a plain file; refused"
        if file_sha256(path) != index[name]:
            return (f"{path}: damaged (its SHA-256 differs from the one recorded when it was written: "
                    f"truncated or changed)")
    return None


def _offer(folder: Path, below: int | None) -> str:
    """The newest intact checkpoint older than ``below`` (any, when None), as advice."""
    try:
        index = read_index(folder, missing_ok=True)
    except DataError:
        index = {}
    for iteration in reversed(_iterations(index)):
        if (below is None or iteration < below) and damage(folder, iteration, index) is None:
            return (f"the previous intact checkpoint is iter_{iteration}: resume from it with "
                    f"--resume-from iter_{iteration}")
    return "no intact checkpoint is left here: train the phase again without --resume"


def load_checkpoint(folder: str | os.PathLike, requested: str | None = None) -> TrainingCheckpoint:
    """The checkpoint to resume, verified against ``checkpoints.sha256`` before anything is parsed."""
    folder = Path(folder)
    iteration = resume_target(folder, requested)
    index = read_index(folder)
    if requested is not None and f"iter_{iteration}.json" not in index:
        raise ConfigError(f"--resume-from {requested!r}: no such checkpoint in {folder} "
                          f"(there: {', '.join(available_checkpoints(folder)) or 'none'})")
    problem = damage(folder, iteration, index)
    if problem:
        raise DataError(f"{problem}; {_offer(folder, iteration)}")
    names = file_names(iteration)
    record = _read_record(folder / names["record"])
    weights = _read_tensors(folder / names["weights"], folder, iteration)
    state = _read_tensors(folder / names["state"], folder, iteration)
    if record.get("iteration") != iteration:
        raise DataError(f"{folder / names['record']}: records iteration {record.get('iteration')!r}, not {iteration}")
    return TrainingCheckpoint(folder, iteration, record, weights, state)


def restore_weights(module: torch.nn.Module, checkpoint: TrainingCheckpoint) -> None:
    """The checkpoint's weights into ``module`` (the unwrapped ``PhaseModule``); a mismatch is named."""
    missing, unexpected = module.load_state_dict(checkpoint.weights, strict=False)
    if missing or unexpected:
        path = checkpoint.folder / file_names(checkpoint.iteration)["weights"]
        raise DataError(f"{path}: weights do not fit this phase's model (missing {sorted(missing)[:3]}, "
                        f"unexpected {sorted(unexpected)[:3]}); was it written for another model config?")


def _read_record(path: Path) -> dict[str, Any]:
    try:
        record = json.loads(path.read_bytes())
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise DataError(f"{path}: not a checkpoint record ({exc})") from exc
    if not isinstance(record, dict) or record.get("format") != FORMAT:
        raise DataError(f"{path}: not a babyvlm training checkpoint record")
    if record.get("version") != VERSION:
        raise DataError(f"{path}: checkpoint format version {record.get('version')!r}; this babyvlm reads {VERSION}")
    return record


def _read_tensors(path: Path, folder: Path, iteration: int) -> dict[str, torch.Tensor]:
    try:
        return load_tensors(path.read_bytes())
    except (SafetensorError, ValueError, RuntimeError, OSError) as exc:
        raise DataError(f"{path}: not a readable safetensors file ({str(exc).splitlines()[0][:160]}); "
                        f"{_offer(folder, iteration)}") from exc

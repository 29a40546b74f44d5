"""What each component kind must offer: one ``typing.Protocol`` per kind.

The registry checks every component it builds against its kind's protocol (``check_contract``) and
names what is missing, so a plugin that forgets a method fails at build time with the plugin and
member named, not later deep inside a trainer. Code that uses a component relies on these members
instead of probing with ``getattr``. Optional extras (e.g. an encoder's LLaVA export mapping) are
described where they are used, not here.
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

from babyvlm.core.records import (
    Prediction,
    Recording,
    Request,
    Sample,
    SkipReport,
    TaskBuildRequest,
    TaskBuildResult,
    TaskItem,
)

Log = Callable[[str], None]


@runtime_checkable
class Source(Protocol):
    """Raw recordings (video + utterances + optional object annotations) under a root folder."""

    root: Path
    report: SkipReport  # every record it did not use, counted by reason

    def recordings(self) -> Iterator[Recording]: ...
    def validate(self) -> SkipReport: ...
    def describe(self) -> dict[str, Any]: ...


@runtime_checkable
class Scorer(Protocol):
    """Text–image similarity used to filter pretraining samples (None: keep everything)."""

    def score_images(self, images: Sequence[Any], texts: Sequence[str]) -> list[float] | None: ...
    def score_video(self, frames: Sequence[Any], text: str) -> float | None: ...


@runtime_checkable
class Builder(Protocol):
    """Cuts a source into a sample store and reads it back by recording. The dataset ``dataset`` returns
    may offer ``recording_ids()`` (the recordings its samples come from), so an experiment can verify that
    no held-out recording reached training."""

    def build(self, source: Any, root: str | os.PathLike, out: str | os.PathLike, **options: Any) -> Any: ...
    def describe(self, out: str | os.PathLike) -> dict[str, Any]: ...
    def recording_ids(self, out: str | os.PathLike) -> set[str]: ...
    def texts(self, out: str | os.PathLike, recordings: Iterable[str] | None = None,
              exclude_recordings: Iterable[str] | None = None) -> list[str]: ...
    def dataset(self, out: str | os.PathLike, formats: Iterable[str] | None = None,
                recordings: Iterable[str] | None = None, exclude_recordings: Iterable[str] | None = None) -> Any: ...


@runtime_checkable
class InstructionImporter(Protocol):
    """Optional for a builder: a store from a LLaVA-JSON instruction file (a phase's
    ``data=dict(llava_json=PATH, task=NAME)``; with ``task`` only that task's items). A builder without
    it trains only from its own stores."""

    def import_instructions(self, json_path: str | os.PathLike, out: str | os.PathLike, task: str | None = None,
                            log: Log = print) -> dict[str, Any]: ...


@runtime_checkable
class Store(Protocol):
    """Sharded sample storage: a writer per shard, keyed reads, integrity checks."""

    path: Path

    def writer(self, **options: Any) -> Any: ...
    def manifest(self) -> dict[str, Any]: ...
    def recording_ids(self) -> set[str]: ...
    def list_keys(self, formats: Sequence[str] | None = None, groups: Iterable[str] | None = None,
                  exclude_groups: Iterable[str] | None = None) -> Any: ...
    def get(self, shard: int, key: bytes) -> Sample: ...
    def iter_samples(self, formats: Sequence[str] | None = None) -> Iterator[tuple[bytes, Sample]]: ...
    def stats(self) -> dict[str, Any]: ...
    def verify(self, decode_images: bool = True) -> Any: ...


@runtime_checkable
class Encoder(Protocol):
    """Images ``[B, 3, S, S]`` -> features ``[B, num_tokens, hidden_size]``."""

    hidden_size: int
    image_size: int
    num_tokens: int

    def preprocess(self, image: Any) -> Any: ...  # one image -> normalised ``[3, S, S]`` tensor
    def __call__(self, pixel_values: Any) -> Any: ...


@runtime_checkable
class ImageFitting(Protocol):
    """Optional for an encoder, and for a model: ``fit_image(image)`` -> the picture as ``preprocess`` will use
    it (for the bundled encoders the uint8 ``S x S x 3`` pixels it normalises), such that preprocessing the
    result gives exactly what preprocessing ``image`` gives. A trainer fits each picture of a dataset once
    and keeps it across passes instead of decoding and resizing it on every draw; it keeps numpy arrays only
    (anything else is passed on as it comes, on every draw)."""

    def fit_image(self, image: Any) -> Any: ...


@runtime_checkable
class FeatureRemembering(Protocol):
    """Optional for a model: ``remember_frozen_features(max_bytes)``, a context manager inside which a *frozen*
    vision encoder's output per picture is computed once, kept up to ``max_bytes`` and reused (an encoder that
    trains runs as always). It yields an object whose ``stats()`` returns a dict of counts. A trainer enters it
    around a phase, whose passes then pay for each picture's encoding once."""

    def remember_frozen_features(self, max_bytes: int) -> Any: ...


@runtime_checkable
class Connector(Protocol):
    """Encoder features ``[B, T_in, d_enc]`` -> language-model tokens ``[B, T_out, d_lm]``. Optional:
    ``output_tokens`` (``TokenCounting``), without which a connector keeps the encoder's token count."""

    def __call__(self, features: Any) -> Any: ...


@runtime_checkable
class TokenCounting(Protocol):
    """Optional for a connector: ``T_out`` for ``T_in`` (a resampler may shrink it)."""

    def output_tokens(self, input_tokens: int) -> int: ...


_NOTED_IDENTITY: set[str] = set()


def connector_output_tokens(connector: Any, input_tokens: int) -> int:
    """Language-model tokens a connector emits per image: its ``output_tokens``, else ``input_tokens``
    (a connector written before ``output_tokens`` existed maps each token to one), said once per class."""
    if isinstance(connector, TokenCounting):
        return connector.output_tokens(input_tokens)
    name = type(connector).__name__
    if name not in _NOTED_IDENTITY:
        _NOTED_IDENTITY.add(name)
        warnings.warn(f"connector {name} has no output_tokens(input_tokens); assuming it keeps the encoder's "
                      f"{input_tokens} tokens per image", stacklevel=2)
    return input_tokens


@runtime_checkable
class LanguageModel(Protocol):
    """A causal LM in Hugging Face's shape (``LlamaForCausalLM`` and friends)."""

    config: Any

    def get_input_embeddings(self) -> Any: ...
    def get_output_embeddings(self) -> Any: ...
    def get_decoder(self) -> Any: ...
    def __call__(self, *args: Any, **kwargs: Any) -> Any: ...


@runtime_checkable
class Tokenizer(Protocol):
    """Text <-> ids with the shared specials (``babyvlm.core.constants``)."""

    vocab_size: int
    pad_id: int
    sos_id: int
    eos_id: int
    image_id: int

    def encode(self, text: str) -> list[int]: ...
    def decode(self, ids: Iterable[int]) -> str: ...
    def save(self, directory: str | os.PathLike) -> Path: ...


@runtime_checkable
class Template(Protocol):
    """LLaVA conversations -> ids + loss labels (``encode``) or a generation prompt (``prompt``)."""

    name: str

    def encode(self, conversations: Sequence[Mapping[str, Any]], tokenizer: Any) -> Any: ...
    def prompt(self, conversations: Sequence[Mapping[str, Any]], tokenizer: Any) -> list[int]: ...


@runtime_checkable
class Model(Protocol):
    """A trainable vision-language model that owns what each training stage unfreezes.

    ``stages()`` maps a stage name (``0-language``, ``0-vision``, ``1-alignment``, ``2-joint``,
    ``3-instruction``) to the parts it trains; ``freeze_backbones(stage)`` applies it and returns the
    parameter counts per part (``{part: {"params", "trainable"}}``) for the trainer to log. Optional:
    ``fit_image`` (``ImageFitting``), which lets a trainer prepare each picture once, and
    ``remember_frozen_features`` (``FeatureRemembering``), which lets it encode each picture once while the
    encoder is frozen.
    """

    tokens_per_image: int

    def parts(self) -> dict[str, Any]: ...
    def stages(self) -> dict[str, tuple[str, ...]]: ...
    def freeze_backbones(self, stage: str, train: Sequence[str] | None = None) -> dict[str, dict[str, int]]: ...
    def prepare_batch(self, samples: Sequence[Any]) -> dict[str, Any]: ...
    def __call__(self, *args: Any, **kwargs: Any) -> Any: ...
    def parameter_counts(self) -> dict[str, Any]: ...
    def save_pretrained(self, directory: str | os.PathLike, config: Any = None) -> Any: ...


@runtime_checkable
class Kernels(Protocol):
    """A kernel backend that patches a built model in place and returns it."""

    def apply(self, model: Any) -> Any: ...


@runtime_checkable
class Trainer(Protocol):
    """Runs one training phase; the result has ``to_dict()`` (steps, losses, seconds, ...)."""

    def fit(self, model: Any, dataset: Any, log: Log = print, **options: Any) -> Any: ...


@runtime_checkable
class Task(Protocol):
    """A DevCV-style evaluation task: items, the requests an adapter answers, scoring and metrics.

    ``metrics`` lists every metric the task reports, primary first (``primary_metric``); ``chance()`` is
    the primary metric's chance level for the task's answer space. ``requests(item, mode)`` turns one
    item into the ``Request``s an adapter answers (``mode`` is ``"generate"`` or ``"loglikelihood"``);
    ``score(item, responses, mode)`` turns the adapter's answers (one per request, same order) into a
    ``Prediction``; ``aggregate`` computes the metrics over all predictions (exactly as the DevCV
    leaderboard defines them). ``load`` reads released-format item files; ``build`` makes items from a
    source's annotated recordings.
    """

    name: str
    primary_metric: str
    metrics: tuple[str, ...]

    def chance(self) -> float: ...
    def load(self, folder: str | os.PathLike, split: str = "test") -> list[TaskItem]: ...
    def build(self, recordings: Sequence[Recording], splits: Mapping[str, str], seed: int = 0,
              log: Log = print) -> dict[str, list[TaskItem]]: ...
    def requests(self, item: TaskItem, mode: str) -> list[Request]: ...
    def score(self, item: TaskItem, responses: Sequence[Any], mode: str) -> Prediction: ...
    def aggregate(self, items: Sequence[TaskItem], predictions: Sequence[Prediction]) -> dict[str, float]: ...


@runtime_checkable
class ItemChance(Protocol):
    """Optional for a task whose chance depends on its items' answer spaces: ``chance_for_items(items)``
    (the evaluator uses it for the items it scored; a task without it has the fixed ``chance()``)."""

    def chance_for_items(self, items: Sequence[TaskItem]) -> float | None: ...


@runtime_checkable
class LeaderboardTask(Protocol):
    """Optional for a task: its facts on a published leaderboard. ``leaderboard_position`` is its place
    among the scored entries (``None``: reported, not part of the overall); ``published_chance`` the
    leaderboard's chance level for the released answer space (``None``: none published). A task
    without them is reported but not on the leaderboard."""

    leaderboard_position: int | None
    published_chance: float | None


@runtime_checkable
class EvalAdapter(Protocol):
    """A model as the evaluation engine sees it (the lmms-eval contract, on ``Request`` records).

    - ``generate_until``: one text answer per ``kind="generate"`` request (greedy unless configured).
    - ``loglikelihood``: per ``kind="choice"`` request, one ``(mean_token_loss, is_greedy)`` per
      continuation, each scored after the request's shared prefix (lower loss = preferred).
    - ``generate_until_multi_round``: per ``kind="multi_round"`` request, one answer per round, the
      conversation (images and the model's own answers) accumulating across rounds.
    ``fingerprint()`` identifies the model and its settings, so resumed results never mix models.
    """

    name: str

    def fingerprint(self) -> str: ...
    def generate_until(self, requests: Sequence[Request]) -> list[str]: ...
    def loglikelihood(self, requests: Sequence[Request]) -> list[list[tuple[float, bool]]]: ...
    def generate_until_multi_round(self, requests: Sequence[Request]) -> list[list[str]]: ...


@runtime_checkable
class ItemAware(Protocol):
    """Optional for an eval adapter: ``see_items`` is shown a task's items before their requests (the
    oracle's gold labels, the random guesser's answer spaces, a shuffled control's donors)."""

    def see_items(self, task_name: str, items: Sequence[TaskItem], task: Any = None,
                  mode: str = "generate") -> None: ...


@runtime_checkable
class PathLoading(Protocol):
    """Optional for an eval adapter class: ``accepts_path(folder)`` says it loads that model folder
    (``babyvlm eval --model FOLDER`` picks the claiming adapter of lowest ``PathPriority``)."""

    def accepts_path(self, path: Path) -> bool: ...


@runtime_checkable
class PathPriority(Protocol):
    """Optional with ``PathLoading``: lower is tried first (default ``DEFAULT_PATH_PRIORITY``)."""

    path_priority: int


DEFAULT_PATH_PRIORITY = 100


def show_items(adapter: Any, task_name: str, items: Sequence[TaskItem], task: Any = None,
               mode: str = "generate") -> None:
    """Show an adapter a task's items when it is ``ItemAware`` (others answer requests alone)."""
    if isinstance(adapter, ItemAware):
        adapter.see_items(task_name, items, task=task, mode=mode)


@runtime_checkable
class Evaluator(Protocol):
    """Runs tasks (item folders under ``data_dir``) through an adapter, writes results under ``out_dir``
    (lmms-eval-style ``<date>_results.json`` + ``<date>_samples_<task>.jsonl``) and returns them."""

    def evaluate(self, adapter: Any, tasks: Sequence[str], data_dir: str | os.PathLike,
                 out_dir: str | os.PathLike, **options: Any) -> dict[str, Any]: ...


@runtime_checkable
class Reporter(Protocol):
    """Writes a run's documents (e.g. report.md / report.html / PNG plots) from its results."""

    def write(self, results: Mapping[str, Any], out_dir: str | os.PathLike) -> list[Path]: ...


@runtime_checkable
class Annotator(Protocol):
    """A detector run in-process over a recording's frames (``babyvlm annotations detect``).

    ``annotate(recording, frames)`` gets consecutive chunks of one recording's frames in order (each an
    ``AnnotatorFrame(frame_index, time_sec, rgb)``, ``rgb`` H x W x 3 uint8 as babyvlm decodes the
    video, rotation applied) and returns one list per frame of ``DetectedObject(category, bbox=[x, y,
    w, h] in the frame's pixels, score=None, track_id=None)`` or mappings with those keys
    (``babyvlm.plugins.annotation_import.objects``). Thresholds, validation and writing are babyvlm's.
    """

    def annotate(self, recording: Recording, frames: Sequence[Any]) -> Sequence[Sequence[Any]]: ...


@runtime_checkable
class CorpusWriter(Protocol):
    """Writes a corpus folder that a source reads (e.g. a synthetic corpus in a real dataset's format);
    ``overwrite`` allows replacing a folder holding something else; returns the folder."""

    def write(self, out: str | os.PathLike, overwrite: bool = False, log: Log | None = None) -> Path: ...


@runtime_checkable
class TaskBuilder(Protocol):
    """Builds one domain's evaluation task sets (``TaskBuildRequest`` -> item files under
    ``out/<domain>/``) and, from a built folder, training-instruction files (``write_instructions``'s
    options are the builder's own, e.g. ``per_task=True``)."""

    def build(self, request: TaskBuildRequest, log: Log = print) -> TaskBuildResult: ...
    def write_instructions(self, folder: str | os.PathLike, log: Log = print, **options: Any) -> list[Path]: ...


@runtime_checkable
class ConfigSection(Protocol):
    """A plugin-owned config section's check: ``check(section)`` refuses a bad value with a ConfigError."""

    def __call__(self, section: Any) -> None: ...


CONTRACTS: dict[str, type] = {
    "source": Source, "scorer": Scorer, "builder": Builder, "store": Store, "encoder": Encoder,
    "connector": Connector, "language_model": LanguageModel, "tokenizer": Tokenizer, "template": Template,
    "model": Model, "kernels": Kernels, "trainer": Trainer, "task": Task, "eval_adapter": EvalAdapter,
    "evaluator": Evaluator, "reporter": Reporter, "annotator": Annotator, "corpus_writer": CorpusWriter,
    "task_builder": TaskBuilder, "config_section": ConfigSection,
}


def protocol_members(protocol: type) -> list[str]:
    """The attribute and method names a protocol requires (its own and its bases')."""
    names: set[str] = set()
    for klass in protocol.__mro__:
        if klass in (Protocol, object) or not getattr(klass, "_is_protocol", False):
            continue
        names.update(getattr(klass, "__annotations__", {}))
        names.update(name for name, value in vars(klass).items() if callable(value) and not name.startswith("_"))
        if "__call__" in vars(klass):
            names.add("__call__")
    return sorted(names)


def missing_members(kind: str, component: Any) -> list[str]:
    """What ``component`` lacks of its kind's contract (empty for kinds without one, e.g. commands)."""
    protocol = CONTRACTS.get(kind)
    if protocol is None:
        return []
    return [name for name in protocol_members(protocol) if not _has(component, name)]


def _has(component: Any, name: str) -> bool:
    try:
        getattr(component, name)
    except AttributeError:
        return False
    except Exception:  # a property that fails still exists; its own error surfaces when it is used
        return True
    return True

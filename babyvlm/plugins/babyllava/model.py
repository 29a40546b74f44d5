"""BabyLLaVA: vision encoder + connector + causal LM, composed from registered components.

Every ``<image>`` id is replaced in place by that image's projected tokens (any number of images per
sample; a video is a list of frames, one ``<image>`` each). How many tokens an image becomes is the
connector's to say: ``tokens_per_image = connector.output_tokens(encoder.num_tokens)`` (197 for the
paper's ViT-L/16 + MLP; fewer behind a resampler), used by the merge, the HF export's
``image_seq_length`` and ``babyvlm model info``. The loss goes through ``self.loss_fn(hidden,
lm_head.weight, targets)``, the seam a kernel plugin (e.g. Triton fused linear+cross-entropy) replaces.

The model owns what trains: ``parts()``, ``stages()`` and ``freeze_backbones(stage, train=None)`` (see
``freezing.py``); the config's ``freeze`` parts stay frozen in every stage. Every component it is given
or builds is checked against its kind's contract (``babyvlm.core.contracts``) when the model is built.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F

from babyvlm import registry
from babyvlm.core.constants import IGNORE_INDEX, SPECIAL_IDS
from babyvlm.core.contracts import ImageFitting, connector_output_tokens, missing_members
from babyvlm.core.errors import BabyVLMError, ConfigError, ModelInputError
from babyvlm.core.specs import is_spec, spec_dict
from babyvlm.plugins.babyllava import freezing
from babyvlm.plugins.babyllava.feature_memo import FeatureMemo
from babyvlm.plugins.babyllava.freezing import PARTS, STAGES, describe_trainable
from babyvlm.plugins.babyllava.generation import greedy_generate
from babyvlm.plugins.babyllava.hf_export import load_checkpoint, save_checkpoint
from babyvlm.plugins.babyllava.image_slots import (
    add_slot_tags,
    attach_slot_table,
    check_slot_count,
    slot_positions,
    slot_table,
)
from babyvlm.plugins.babyllava.merge import check_image_counts, merge_image_features
from babyvlm.plugins.babyllava.token_norm import attach_token_norm, check_token_norm, token_norm

__all__ = ["PARTS", "STAGES", "BabyLLaVA", "describe_trainable", "linear_cross_entropy"]


def linear_cross_entropy(hidden: torch.Tensor, weight: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """Mean cross-entropy of ``hidden @ weight.T`` over targets != -100 (the plain PyTorch reference)."""
    logits = F.linear(hidden, weight).float()
    return F.cross_entropy(logits, targets, ignore_index=IGNORE_INDEX)


def _build(kind: str, spec: Any, **options: Any) -> Any:
    """Build from a spec through the registry (an already-built object is used as is), then check it
    against its kind's contract, so a component missing a member fails here, named, not mid-training."""
    where = f"model 'babyllava': {kind}"
    component = registry.build(kind, spec_dict(spec, where), **options) if _is_spec(spec) else spec
    missing = missing_members(kind, component)
    if missing:
        raise ConfigError(f"{where} {type(component).__name__} does not implement the {kind} contract "
                          f"(babyvlm.core.contracts): missing {', '.join(missing)}")
    return component


def _is_spec(value: Any) -> bool:
    """A spec (built through the registry) rather than an object; a mapping without a string 'type' is
    a spec error, reported by the spec parser, not an object."""
    return is_spec(value) or isinstance(value, Mapping)


def _saved_spec(spec: Any) -> dict[str, Any] | None:
    """A component spec as a plain dict for the checkpoint (None for an already-built object)."""
    return spec_dict(spec, "model 'babyllava'") if _is_spec(spec) else None


class BabyLLaVA(torch.nn.Module):
    """The composed model. Parts: ``encoder``, ``connector``, ``language_model`` (a HF causal LM)."""

    def __init__(self, encoder: Any = None, connector: Any = "mlp2x_gelu", language_model: Any = None,
                 tokenizer: Any = None, template: Any = "baby_plain", freeze: Sequence[str] = (),
                 autocast_dtype: str | None = None, max_length: int | None = None, image_slots: int = 0,
                 image_token_norm: str | None = None):
        super().__init__()
        freeze = freezing.as_names(freeze, "freeze")
        if encoder is None or language_model is None:
            raise ConfigError("model 'babyllava' needs 'encoder' and 'language_model' (e.g. dict(type='vit', "
                              "preset='tiny') and dict(type='llama', preset='tiny'))")
        self.tokenizer = _build("tokenizer", tokenizer) if tokenizer is not None else None
        self.template = _build("template", template) if template is not None else None
        self.encoder = _build("encoder", encoder)
        lm_spec = self._language_model_spec(language_model)
        self.language_model = _build("language_model", lm_spec)
        self.connector = _build("connector", connector, in_features=self.encoder.hidden_size,
                                out_features=self.language_model.config.hidden_size)
        self.image_slots = check_slot_count(image_slots)
        if self.image_slots:  # picture-slot tags (image_slots.py), trained with the connector
            attach_slot_table(self.connector, self.image_slots, self.language_model.config.hidden_size)
        self.image_token_norm = check_token_norm(image_token_norm)
        if self.image_token_norm:  # running standardisation of the image tokens (token_norm.py), in the connector
            attach_token_norm(self.connector, self.image_token_norm, self.language_model.config.hidden_size)
        self.loss_fn = linear_cross_entropy
        self.autocast_dtype = _autocast_dtype(autocast_dtype)
        self.max_length = max_length or getattr(self.language_model.config, "max_position_embeddings", None)
        self.spec = dict(type="babyllava", encoder=_saved_spec(encoder), connector=_saved_spec(connector),
                         language_model=_saved_spec(lm_spec), tokenizer=_saved_spec(tokenizer),
                         template=_saved_spec(template), freeze=freeze, autocast_dtype=autocast_dtype,
                         max_length=max_length)
        if self.image_slots:  # recorded only when on: checkpoints without the tags keep their spec as it was
            self.spec["image_slots"] = self.image_slots
        if self.image_token_norm:  # likewise
            self.spec["image_token_norm"] = self.image_token_norm
        self.freeze = freeze
        self.feature_memo: FeatureMemo | None = None  # see remember_frozen_features
        self._check_tokens_per_image()
        self.apply_freeze(freeze)

    def use_template(self, template: Any) -> None:
        """Switch the chat template (``baby_plain`` for alignment, ``baby_v1`` for instruction tuning);
        the model's spec, and so a checkpoint saved afterwards, records the new one."""
        self.template = _build("template", template)
        self.spec["template"] = _saved_spec(template)

    def _language_model_spec(self, spec: Any) -> Any:
        """The LM spec with ``vocab_size`` set to the tokenizer's: the tokenizer is the authority (a trained
        BPE may fall short of the requested 6000), so a config's value is only the tokenizer-less default."""
        if not _is_spec(spec) or self.tokenizer is None:
            return spec
        return dict(spec_dict(spec, "model 'babyllava': language_model"), vocab_size=int(self.tokenizer.vocab_size))

    # ---- ids and parts --------------------------------------------------------------------------
    def special_id(self, name: str) -> int:
        """``pad_id``/``sos_id``/``eos_id``/``image_id``: the tokenizer's, else the shared convention's."""
        return int(getattr(self.tokenizer, name) if self.tokenizer is not None else SPECIAL_IDS[name])

    @property
    def image_id(self) -> int:
        return self.special_id("image_id")

    @property
    def device(self) -> torch.device:
        return self.language_model.get_input_embeddings().weight.device

    @property
    def tokens_per_image(self) -> int:
        """Language-model positions each ``<image>`` becomes: the connector's output for the encoder's tokens."""
        return int(connector_output_tokens(self.connector, int(self.encoder.num_tokens)))

    def _check_tokens_per_image(self) -> None:
        tokens = connector_output_tokens(self.connector, int(self.encoder.num_tokens))
        if not isinstance(tokens, int) or isinstance(tokens, bool) or tokens < 1:
            raise ConfigError(f"model 'babyllava': connector {type(self.connector).__name__}.output_tokens"
                              f"({int(self.encoder.num_tokens)}) must be a positive integer, got {tokens!r}")

    # ---- what trains -------------------------------------------------------------------------------
    def parts(self) -> dict[str, torch.nn.Module]:
        """The modules a stage can train: ``encoder``, ``connector``, ``language_model``."""
        return {name: getattr(self, name) for name in PARTS}

    def stages(self) -> dict[str, tuple[str, ...]]:
        """Training stage -> the parts it trains (see ``freezing.STAGES``)."""
        return dict(STAGES)

    def freeze_backbones(self, stage: str, train: Sequence[str] | None = None) -> dict[str, dict[str, int]]:
        """Train only ``stage``'s parts (or ``train``'s, when given), freeze the rest, keep the config's
        ``freeze`` frozen (asking to train one of those is a ``ConfigError``), and return
        ``{part: {"params", "trainable"}}``. See ``freezing.py``."""
        trained = freezing.trained_parts(stage, train)
        modules = [freezing.module_of(self, name, "train") for name in trained]
        freezing.check_not_frozen(stage, trained, self.freeze, explicit=train is not None)
        self.requires_grad_(False)
        for module in modules:
            module.requires_grad_(True)
        self.apply_freeze(self.freeze)  # frozen sub-modules inside a trained part stay frozen
        return self.trainable_counts()

    def trainable_counts(self) -> dict[str, dict[str, int]]:
        """``{part: {"params", "trainable"}}`` as the parameters stand now."""
        return {name: freezing.count(module) for name, module in self.parts().items()}

    describe_trainable = staticmethod(describe_trainable)

    def apply_freeze(self, parts: Sequence[str]) -> None:
        """Turn off gradients for the named parts (``encoder``, ``connector``, ``language_model`` or a
        dotted sub-module such as ``language_model.model.embed_tokens``)."""
        for name in freezing.as_names(parts, "freeze"):
            freezing.module_of(self, name, "freeze").requires_grad_(False)

    def parameter_counts(self) -> dict[str, Any]:
        """Parameters and trainable parameters per part, plus the LM's embedding tables."""
        parts: dict[str, dict[str, Any]] = dict(self.trainable_counts())
        lm = self.language_model
        parts["language_model"]["input_embeddings"] = lm.get_input_embeddings().weight.numel()
        output = lm.get_output_embeddings()
        parts["language_model"]["output_embeddings"] = 0 if output is None else output.weight.numel()
        total = freezing.count(self)
        return {"parts": parts, "total": total["params"], "trainable": total["trainable"],
                "tokens_per_image": self.tokens_per_image, "encoder_tokens": int(self.encoder.num_tokens),
                "vocab_size": lm.config.vocab_size,
                "image_size": int(self.encoder.image_size)}

    # ---- batches ----------------------------------------------------------------------------------
    def prepare_batch(self, samples: Sequence[Any]) -> dict[str, torch.Tensor]:
        """Tokenise (template), preprocess images and pad (right) a list of samples into forward's inputs.

        Each sample is a dict (or object) with ``conversations`` and ``images``; ``images`` holds HxWx3 uint8
        arrays, PIL images or JPEG bytes, one per ``<image>`` in reading order.
        """
        tokenizer, template = self._require_text_side()
        if not samples:
            raise ModelInputError("prepare_batch got an empty list of samples")
        encoded, images, names = [], [], []
        for index, sample in enumerate(samples):
            name = _sample_name(sample)
            try:
                result = template.encode(_field(sample, "conversations", index), tokenizer)
            except ModelInputError as exc:
                raise ModelInputError(f"sample {index}{f' ({name})' if name else ''}: {exc}") from exc
            encoded.append((result.input_ids, result.labels))
            images.append(list(_field(sample, "images", index, default=[])))
            names.append(name)
        check_image_counts([ids.count(self.image_id) for ids, _ in encoded], [len(i) for i in images], names)
        batch = self._pad([ids for ids, _ in encoded], [labels for _, labels in encoded])
        batch.update(self._pixels(images))
        return batch

    def fit_image(self, image: Any) -> Any:
        """One sample image as ``prepare_batch`` will use it: the encoder's ``fit_image`` (pixels at its input
        size, which it then only normalises) where the encoder has one, else the image unchanged. Lets a
        trainer fit each picture once and keep it (``contracts.ImageFitting``)."""
        return self.encoder.fit_image(image) if isinstance(self.encoder, ImageFitting) else image

    @contextlib.contextmanager
    def remember_frozen_features(self, max_bytes: int) -> Iterator[FeatureMemo]:
        """While inside, a frozen encoder's output per picture is computed once and kept (up to ``max_bytes``)
        and reused for that picture afterwards (``contracts.FeatureRemembering``; ``feature_memo.py``). An
        encoder that trains is run as always. Yields the memo, whose ``stats()`` say what it served."""
        if self.feature_memo is not None:
            raise RuntimeError("remember_frozen_features: the model already remembers its features (nested use)")
        memo = self.feature_memo = FeatureMemo(max_bytes)
        try:
            yield memo
        finally:
            self.feature_memo = None
            memo.release()  # the outputs go now, not when the last reference to the memo does

    def _pad(self, ids_list: list[list[int]], labels_list: list[list[int]] | None = None) -> dict[str, torch.Tensor]:
        longest = max((len(ids) for ids in ids_list), default=0)
        pad = self.special_id("pad_id")
        input_ids = torch.full((len(ids_list), longest), pad, dtype=torch.long)
        attention_mask = torch.zeros((len(ids_list), longest), dtype=torch.long)
        labels = torch.full((len(ids_list), longest), IGNORE_INDEX, dtype=torch.long)
        for row, ids in enumerate(ids_list):
            input_ids[row, :len(ids)] = torch.tensor(ids, dtype=torch.long)
            attention_mask[row, :len(ids)] = 1
            if labels_list is not None:
                labels[row, :len(ids)] = torch.tensor(labels_list[row], dtype=torch.long)
        batch = {"input_ids": input_ids, "attention_mask": attention_mask}
        if labels_list is not None:
            batch["labels"] = labels
        return batch

    def _pixels(self, images: list[list[Any]]) -> dict[str, torch.Tensor]:
        size = int(self.encoder.image_size)
        flat = []
        for index, sample_images in enumerate(images):
            for position, image in enumerate(sample_images):
                try:
                    flat.append(self.encoder.preprocess(image))
                except BabyVLMError as exc:
                    raise type(exc)(f"sample {index}, image {position}: {exc}") from exc
        pixel_values = torch.stack(flat) if flat else torch.zeros(0, 3, size, size)
        return {"pixel_values": pixel_values,
                "image_counts": torch.tensor([len(i) for i in images], dtype=torch.long)}

    def _require_text_side(self):
        if self.tokenizer is None or self.template is None:
            raise ConfigError("model 'babyllava' has no tokenizer/template; set tokenizer=dict(type='bpe', path=...) "
                              "and template='baby_plain' in the model config to tokenise samples")
        return self.tokenizer, self.template

    # ---- forward ----------------------------------------------------------------------------------
    def encode_images(self, pixel_values: torch.Tensor, positions: torch.Tensor | None = None) -> torch.Tensor:
        """``[N, 3, H, W]`` -> projected image tokens ``[N, tokens_per_image, lm_width]``. Equal images are
        encoded once where that changes nothing (see ``distinct_images``): a blind twin's batch of constant
        blanks costs one image, and evaluation items that reuse pictures pay once per picture. With
        ``image_slots`` on, each picture's slot tag is added: ``positions`` (``[N]``) gives each one's place
        in its sample (``embed`` passes them); without it every picture counts as a sample of its own, slot 0
        (how a one-picture sample shows it: the contrastive phase's view), so the table always gets a gradient."""
        distinct, inverse = distinct_images(pixel_values, self.encoder)
        memo = self.feature_memo
        features = self.connector(self.encoder(distinct) if memo is None else memo.encode(distinct, self.encoder))
        if features.ndim != 3 or features.shape[1] != self.tokens_per_image:
            raise ConfigError(f"model 'babyllava': connector {type(self.connector).__name__} produced features of "
                              f"shape {tuple(features.shape)}, but its output_tokens({int(self.encoder.num_tokens)}) "
                              f"declares {self.tokens_per_image} tokens per image")
        if self.image_token_norm:  # on the distinct pictures: each counted once in the running statistics
            features = token_norm(self.connector)(features)
        if inverse is not None:
            # index_select, not features[inverse]: on CPU the backward of advanced indexing adds the duplicates'
            # gradients in a thread-dependent order (a blind twin's training differed from run to run); on CUDA
            # index_select's backward is the non-deterministic one unless torch.use_deterministic_algorithms
            features = features.index_select(0, inverse)
        if self.image_slots:
            if positions is None:
                positions = torch.zeros(features.shape[0], dtype=torch.long)
            features = add_slot_tags(features, slot_table(self.connector), positions)
        return features

    def embed(self, input_ids: torch.Tensor, pixel_values: torch.Tensor | Sequence[torch.Tensor] | None,
              attention_mask: torch.Tensor | None = None, labels: torch.Tensor | None = None,
              image_counts: torch.Tensor | None = None):
        """Token embeddings with every ``<image>`` replaced by its image's tokens (see ``merge``)."""
        if attention_mask is None:
            attention_mask = torch.ones_like(input_ids)
        pixel_values, image_counts = _flatten_pixels(pixel_values, image_counts)
        if image_counts is not None:
            tokens = ((input_ids == self.image_id) & attention_mask.bool()).sum(dim=1).tolist()
            check_image_counts(tokens, image_counts.tolist())
        features = None
        if pixel_values is not None and pixel_values.shape[0]:
            if self.image_slots:
                positions = slot_positions(input_ids, attention_mask, self.image_id, self.image_slots)
                matched = positions.shape[0] == pixel_values.shape[0]  # else merge names the count mismatch
                features = self.encode_images(pixel_values, positions if matched else None)
            else:
                features = self.encode_images(pixel_values)
        text_embeds = self.language_model.get_input_embeddings()(input_ids)
        return merge_image_features(text_embeds, input_ids, attention_mask, features, self.image_id, labels,
                                    self.max_length, tokens_per_image=self.tokens_per_image)

    def forward(self, input_ids: torch.Tensor, pixel_values: torch.Tensor | Sequence[torch.Tensor] | None = None,
                labels: torch.Tensor | None = None, attention_mask: torch.Tensor | None = None,
                image_counts: torch.Tensor | None = None, return_logits: bool = False) -> dict[str, Any]:
        """Returns ``loss`` (when ``labels`` are given), the expanded ``attention_mask``/``labels`` and, when
        asked or without labels, ``logits`` over the expanded sequence."""
        with self._autocast(input_ids.device):
            merged = self.embed(input_ids, pixel_values, attention_mask, labels, image_counts)
            hidden = self.language_model.get_decoder()(
                inputs_embeds=merged.inputs_embeds, attention_mask=merged.attention_mask).last_hidden_state
            head = self.language_model.get_output_embeddings().weight
            out: dict[str, Any] = {"attention_mask": merged.attention_mask, "labels": merged.labels,
                                   "hidden_states": hidden}
            if merged.labels is not None:
                out["loss"] = self._loss(hidden, head, merged.labels)
            if return_logits or merged.labels is None:
                out["logits"] = F.linear(hidden, head).float()
        return out

    def _loss(self, hidden: torch.Tensor, head: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        targets = labels[:, 1:]
        keep = targets != IGNORE_INDEX
        if not bool(keep.any()):
            # nothing supervised (e.g. all answers masked): a zero that still joins the graph
            return hidden.sum() * 0.0
        # only supervised positions reach the vocabulary projection: image spans are ~all of a sequence
        return self.loss_fn(hidden[:, :-1][keep], head, targets[keep])

    def _autocast(self, device: torch.device):
        if self.autocast_dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(device.type, dtype=self.autocast_dtype)

    # ---- generation and scoring -------------------------------------------------------------------
    @torch.no_grad()
    def generate(self, inputs: Any, max_new_tokens: int = 32, *, images: Sequence[Any] | None = None,
                 return_text: bool = False) -> Any:
        """Greedy decoding until ``<eos>`` (not included in the result) or ``max_new_tokens``.

        ``inputs``: a sample dict (``conversations`` -> the template's prompt, or ``prompt`` text, or
        ``input_ids``; plus ``images``), a prompt string (with ``images=``), or a list of samples. Returns
        token ids (or text with ``return_text=True``); one result for one input, a list for a list.
        """
        single = isinstance(inputs, (str, Mapping))
        samples = [{"prompt": inputs, "images": list(images or [])} if isinstance(inputs, str) else inputs] \
            if single else list(inputs)
        prompts = [self.prompt_ids(sample, index) for index, sample in enumerate(samples)]
        pixels = self._pixels([list(_field(s, "images", i, default=[])) for i, s in enumerate(samples)])
        with self._autocast(self.device):
            outputs = greedy_generate(self, prompts, pixels["pixel_values"], pixels["image_counts"],
                                      max_new_tokens)
        if return_text:
            tokenizer, _ = self._require_text_side()
            outputs = [tokenizer.decode(ids) for ids in outputs]
        return outputs[0] if single else outputs

    def prompt_ids(self, sample: Any, index: int = 0) -> list[int]:
        """Token ids a generation starts from (see ``generate`` for the accepted forms)."""
        if isinstance(sample, Mapping) and "input_ids" in sample:
            return [int(i) for i in sample["input_ids"]]
        tokenizer, template = self._require_text_side()
        if isinstance(sample, Mapping) and "prompt" in sample:
            return [tokenizer.sos_id] + tokenizer.encode(sample["prompt"])
        try:
            return template.prompt(_field(sample, "conversations", index), tokenizer)
        except ModelInputError as exc:
            raise ModelInputError(f"sample {index}: {exc}") from exc

    @torch.no_grad()
    def loglikelihood(self, samples: Sequence[Any]) -> list[tuple[float, bool]]:
        """Per sample: summed log-probability of its supervised tokens, and whether greedy decoding
        would have produced exactly them (lmms-eval's ``loglikelihood`` contract)."""
        batch = {key: value.to(self.device) for key, value in self.prepare_batch(samples).items()}
        out = self.forward(**batch, return_logits=True)
        logprobs = out["logits"][:, :-1].log_softmax(dim=-1)
        targets = out["labels"][:, 1:]
        keep = targets != IGNORE_INDEX
        picked = logprobs.gather(-1, targets.clamp(min=0)[..., None])[..., 0]
        greedy = (logprobs.argmax(dim=-1) == targets) | ~keep
        totals = (picked * keep).sum(dim=1)
        return [(float(total), bool(exact)) for total, exact in zip(totals, greedy.all(dim=1), strict=True)]

    # ---- checkpoints ------------------------------------------------------------------------------
    def save_pretrained(self, directory: str | os.PathLike, config: Any = None):
        """Write config.json + model.safetensors (Hugging Face LLaVA layout when the components allow),
        the tokenizer files, ``babyvlm.json`` (the model spec as JSON) and a human-readable resolved
        ``config.py``. The folder is replaced as a whole. Returns a ``CheckpointInfo``."""
        return save_checkpoint(self, Path(directory), config)

    @classmethod
    def from_pretrained(cls, directory: str | os.PathLike, **overrides: Any) -> BabyLLaVA:
        """Rebuild from a folder written by ``save_pretrained`` (or ``babyvlm model build``) from its JSON
        model spec and weights; no code from the folder runs."""
        return load_checkpoint(Path(directory), **overrides)


def _autocast_dtype(name: str | None) -> torch.dtype | None:
    if name is None:
        return None
    dtype = getattr(torch, str(name), None)
    if not isinstance(dtype, torch.dtype) or not dtype.is_floating_point:
        raise ConfigError(f"model 'babyllava': autocast_dtype must be a floating torch dtype name such as "
                          f"'bfloat16', got {name!r}")
    return dtype


def _field(sample: Any, key: str, index: int, default: Any = ...) -> Any:
    value = sample.get(key, default) if isinstance(sample, Mapping) else getattr(sample, key, default)
    if value is ...:
        raise ModelInputError(f"sample {index}: missing {key!r}")
    return value


def _sample_name(sample: Any) -> str:
    name = sample.get("sample_id") if isinstance(sample, Mapping) else getattr(sample, "sample_id", None)
    return str(name) if name is not None else ""


def distinct_images(pixel_values: torch.Tensor, encoder: torch.nn.Module) -> tuple[torch.Tensor, torch.Tensor | None]:
    """The distinct images of a batch and each image's index among them (``None``: use the batch as is).

    Encoding each distinct image once and gathering is exact (the gather's backward sums the duplicates'
    gradients) as long as an image's features depend on nothing but that image: never with dropout in
    training mode (each copy would draw its own mask); with batch norm in training mode only when every
    image is the same (the batch statistics of N equal images are those of one)."""
    count = pixel_values.shape[0]
    training = [m for m in encoder.modules() if m.training]
    if count < 2 or any(isinstance(m, torch.nn.modules.dropout._DropoutNd) and m.p > 0 for m in training):
        return pixel_values, None
    if bool((pixel_values == pixel_values[:1]).all()):
        return pixel_values[:1], torch.zeros(count, dtype=torch.long, device=pixel_values.device)
    if any(isinstance(m, torch.nn.modules.batchnorm._BatchNorm) for m in training):
        return pixel_values, None
    distinct, inverse = torch.unique(pixel_values.reshape(count, -1), dim=0, return_inverse=True)
    if distinct.shape[0] == count:
        return pixel_values, None
    return distinct.reshape(-1, *pixel_values.shape[1:]), inverse


def _flatten_pixels(pixel_values: Any, image_counts: torch.Tensor | None):
    """A list of per-sample ``[n_i, 3, H, W]`` tensors becomes one tensor plus per-sample counts."""
    if pixel_values is None or isinstance(pixel_values, torch.Tensor):
        return pixel_values, image_counts
    per_sample = list(pixel_values)
    counts = torch.tensor([int(p.shape[0]) for p in per_sample], dtype=torch.long)
    non_empty = [p for p in per_sample if p.shape[0]]
    return (torch.cat(non_empty) if non_empty else None), counts

"""The Hugging Face processor files of a checkpoint: ``AutoProcessor.from_pretrained(ckpt)`` loads a stock
``LlavaProcessor`` (tokenizer + image processor + chat templates), so plain ``transformers`` runs a saved
BabyLLaVA with no babyvlm code and no hand-built inputs::

    processor = AutoProcessor.from_pretrained(ckpt)
    model = LlavaForConditionalGeneration.from_pretrained(ckpt)
    messages = [{"role": "user", "content": [{"type": "image", "path": "ball.png"},
                                             {"type": "text", "text": "what is this?"}]}]
    inputs = processor.apply_chat_template(messages, tokenize=True, return_dict=True, return_tensors="pt")
    answer = model.generate(**inputs, max_new_tokens=16, do_sample=False)

Files (written into the checkpoint folder next to the tokenizer's files, HF layout only):

- ``processor_config.json``: ``LlavaProcessor`` with the encoder's image processor settings (the ViT's
  ``llava_image_processor_config``: pad to square, bicubic resize, ImageNet mean/std; its docstring says
  exactly where the stock processor differs from babyvlm's preprocessing: the padding colour of
  non-square images), ``patch_size`` and ``num_additional_image_tokens`` chosen so the processor expands
  each ``<image>`` into ``tokens_per_image`` tokens (the model config's ``image_seq_length``;
  ``(image_size / patch_size)^2 + 1`` CLS for the ViT), ``vision_feature_select_strategy="full"``.
- ``chat_template.jinja``: the ``baby_v1`` template (``<sos> USER: <image>... ASSISTANT:``; DevCV
  evaluation's format), the default for both ``processor.apply_chat_template`` and the tokenizer's.
- ``additional_chat_templates/NAME.jinja``: the model's own template when it is another one (e.g.
  ``baby_plain`` after alignment): ``apply_chat_template(messages, chat_template="baby_plain")``.

The chat templates are the template components' own ``jinja`` (see ``babyvlm/plugins/chat_templates.py``
for how HF messages map onto LLaVA turns), so HF prompts tokenise to exactly the ids babyvlm's
templates build. A model without a tokenizer, or whose encoder has no ``llava_image_processor_config``,
gets no processor files (the weights still load as ``LlavaForConditionalGeneration``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from babyvlm import registry
from babyvlm.core.constants import IMAGE_TOKEN
from babyvlm.core.errors import ConfigError
from babyvlm.core.io import atomic_write_json, atomic_write_text

PROCESSOR_FILE = "processor_config.json"
CHAT_TEMPLATE_FILE = "chat_template.jinja"
CHAT_TEMPLATE_DIR = "additional_chat_templates"
DEFAULT_CHAT_TEMPLATE = "baby_v1"  # what DevCV evaluation prompts with


def processor_blocker(model: Any) -> str | None:
    """Why no processor can be written for ``model`` (already HF-exportable), or None when one can."""
    if model.tokenizer is None:
        return "the model has no tokenizer"
    if not hasattr(model.encoder, "llava_image_processor_config"):  # an optional export extra, like the mapping
        return f"encoder {type(model.encoder).__name__} has no LLaVA image processor settings"
    return None


def processor_config(model: Any) -> dict[str, Any]:
    """``processor_config.json``: a ``LlavaProcessor`` expanding each ``<image>`` to ``tokens_per_image``."""
    vision = model.encoder.llava_vision_config()
    patch_size = int(vision.patch_size)
    patches = (int(vision.image_size) // patch_size) ** 2
    extra = model.tokens_per_image - patches
    if extra < 0:
        raise ConfigError(f"cannot write a LlavaProcessor: {model.tokens_per_image} tokens per image is fewer than "
                          f"the encoder's {patches} patches, and LlavaProcessor counts image tokens from patches")
    return {"processor_class": "LlavaProcessor", "image_processor": model.encoder.llava_image_processor_config(),
            "image_token": IMAGE_TOKEN, "patch_size": patch_size, "num_additional_image_tokens": extra,
            "vision_feature_select_strategy": "full"}


def chat_templates(model: Any) -> tuple[str, dict[str, str]]:
    """The default chat template and the additional named ones (the model's own template, if different)."""
    default = registry.build("template", DEFAULT_CHAT_TEMPLATE).jinja
    own = model.template
    extra = {}
    if own is not None and own.name != DEFAULT_CHAT_TEMPLATE and getattr(own, "jinja", ""):
        extra[own.name] = own.jinja
    return default, extra


def write_processor_files(model: Any, folder: Path) -> list[str]:
    """Write the processor files into ``folder`` (a checkpoint being staged); returns their names."""
    atomic_write_json(folder / PROCESSOR_FILE, processor_config(model))
    default, extra = chat_templates(model)
    atomic_write_text(folder / CHAT_TEMPLATE_FILE, default)
    written = [PROCESSOR_FILE, CHAT_TEMPLATE_FILE]
    for name, text in extra.items():
        (folder / CHAT_TEMPLATE_DIR).mkdir(exist_ok=True)
        atomic_write_text(folder / CHAT_TEMPLATE_DIR / f"{name}.jinja", text)
        written.append(f"{CHAT_TEMPLATE_DIR}/{name}.jinja")
    return written

"""The plugin hooks babyvlm calls: one ``register_<kind>s(register)`` hook per component kind.

Each hook receives ``register(name, component, **info)``. ``component`` is a class or factory that
the registry builds from config options (``register("mlp2x_gelu", MLP2xGELU)``). Every hook is
documented with an example in docs/plugins.md.
"""

import pluggy

hookspec = pluggy.HookspecMarker("babyvlm")
hookimpl = pluggy.HookimplMarker("babyvlm")


@hookspec
def register_sources(register):
    """Raw-data sources: ``cls(root, **options)`` yielding ``Recording`` objects."""


@hookspec
def register_scorers(register):
    """Text–image similarity scorers used to filter pretraining samples."""


@hookspec
def register_builders(register):
    """Pretraining-set builders: a source's recordings -> ``Sample`` records in a store."""


@hookspec
def register_stores(register):
    """Sample stores that write and read ``Sample`` records."""


@hookspec
def register_encoders(register):
    """Vision encoders: images -> (batch, tokens, width) features."""


@hookspec
def register_connectors(register):
    """Connectors projecting encoder features into the language model's width."""


@hookspec
def register_language_models(register):
    """Causal language models (built from scratch, vocab from the tokenizer)."""


@hookspec
def register_tokenizers(register):
    """Tokenizers, trained from a text corpus or loaded from a folder."""


@hookspec
def register_templates(register):
    """Chat templates turning LLaVA conversations into token ids and loss labels."""


@hookspec
def register_models(register):
    """Composed vision-language models built from encoder, connector and language model."""


@hookspec
def register_kernels(register):
    """Kernel backends that patch a built model (``kernels="triton"`` in a model config)."""


@hookspec
def register_trainers(register):
    """Trainers that run a training phase over a dataset."""


@hookspec
def register_tasks(register):
    """DevCV evaluation tasks producing ``TaskItem`` records and scoring ``Prediction`` records."""


@hookspec
def register_eval_adapters(register):
    """Evaluation adapters: a model (checkpoint, HF folder, API, baseline) answering task ``Request``s."""


@hookspec
def register_evaluators(register):
    """Evaluation engines: run tasks through an adapter and write scored results."""


@hookspec
def register_reporters(register):
    """Reporters: turn a run's results into documents (report.md, report.html, plots)."""


@hookspec
def register_annotators(register):
    """Object annotators: a detector run in-process over a recording's frames, giving the boxes the DevCV
    builders need (``babyvlm annotations detect --annotator NAME``). ``cls(**options)`` offers
    ``annotate(recording, frames)``: ``frames`` is a list of ``AnnotatorFrame(frame_index, time_sec, rgb)``
    (consecutive chunks of one recording, in order), the answer one list of ``DetectedObject`` per frame
    (``category``, ``bbox`` = ``[x, y, w, h]`` in the frame's pixels, optional ``score`` and ``track_id``).
    Score thresholds, validation and the ``*.objects.json`` file are babyvlm's (docs/real-data.md)."""


@hookspec
def register_corpus_writers(register):
    """Corpus writers: ``cls(**options).write(out, overwrite=False, log=None)`` writes a corpus folder a
    source reads (e.g. a synthetic corpus in a real dataset's format) and returns its path."""


@hookspec
def register_task_builders(register):
    """Task-set builders: ``cls(**options).build(TaskBuildRequest, log)`` writes one domain's evaluation
    item files (and optional training instructions) under ``request.out/<domain>/``."""


@hookspec
def register_config_sections(register):
    """Top-level config sections owned by a plugin (e.g. the run pipeline's ``evaluation``):
    ``register(name, check)``; ``check(section, cfg)`` refuses a bad section before anything runs, and
    an ``Experiment`` accepts the section without reading it."""


@hookspec
def register_commands(register):
    """``babyvlm`` CLI subcommands: ``register(name, click_command)``."""

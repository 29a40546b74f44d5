"""The component kinds and the hook that registers each."""

KINDS: dict[str, str] = {
    "source": "register_sources",
    "scorer": "register_scorers",
    "builder": "register_builders",
    "store": "register_stores",
    "encoder": "register_encoders",
    "connector": "register_connectors",
    "language_model": "register_language_models",
    "tokenizer": "register_tokenizers",
    "template": "register_templates",
    "model": "register_models",
    "kernels": "register_kernels",
    "trainer": "register_trainers",
    "task": "register_tasks",
    "eval_adapter": "register_eval_adapters",
    "evaluator": "register_evaluators",
    "reporter": "register_reporters",
    "annotator": "register_annotators",
    "command": "register_commands",
}

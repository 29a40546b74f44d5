"""``babyvlm serve CHECKPOINT``: load a checkpoint folder and serve it over an OpenAI-compatible API.

The model class is found through the registry from the folder's JSON model spec (any model plugin with
``from_pretrained`` works). Binds to 127.0.0.1 unless ``--host`` says otherwise; ``--port 0`` picks a free
port. The first line printed is ``serving MODEL at http://HOST:PORT/v1`` (scripts wait for it).
"""

from __future__ import annotations

from pathlib import Path

import click

from babyvlm.core.errors import ConfigError
from babyvlm.core.specs import parse_spec
from babyvlm.webserver import bind_listener, listening_server


def load_served_model(checkpoint: Path):
    """The model in ``checkpoint``, in eval mode, built by the model plugin its spec names."""
    import babyvlm
    from babyvlm import registry

    config = babyvlm.load_config(checkpoint)
    if "model" not in config:
        raise ConfigError(f"{checkpoint}: not a checkpoint folder (no model spec)")
    name, _ = parse_spec(config.model, f"{checkpoint} model")
    model_class = registry.get("model", name)
    if not hasattr(model_class, "from_pretrained"):
        raise ConfigError(f"model {name!r} (plugin {registry.owner('model', name)!r}) has no from_pretrained; "
                          f"babyvlm serve cannot load it")
    model = model_class.from_pretrained(checkpoint)
    if getattr(model, "tokenizer", None) is None:
        raise ConfigError(f"{checkpoint}: the model has no tokenizer, so it cannot answer text")
    return model.eval()


@click.command()
@click.argument("checkpoint", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.option("--host", default="127.0.0.1", show_default=True, help="Interface to bind (loopback by default).")
@click.option("--port", default=8000, show_default=True, type=click.IntRange(0, 65535), help="0 picks a free port.")
@click.option("--model-name", default=None, help="Name in /v1/models and responses [default: the folder name].")
@click.option("--max-batch", default=8, show_default=True, type=click.IntRange(1, 1024),
              help="Most concurrent requests generated in one batch.")
@click.option("--max-queue", default=64, show_default=True, type=click.IntRange(1, 100000),
              help="Most requests waiting; more get HTTP 429.")
@click.option("--max-tokens-limit", default=1024, show_default=True, type=click.IntRange(1, 100000),
              help="Largest max_tokens a request may ask for.")
@click.option("--batch-wait-ms", default=10, show_default=True, type=click.IntRange(0, 10000),
              help="How long the worker waits for more requests to join a batch.")
@click.option("--threads", default=None, type=click.IntRange(1, 1024), help="torch CPU threads.")
def serve(checkpoint: Path, host: str, port: int, model_name: str | None, max_batch: int, max_queue: int,
          max_tokens_limit: int, batch_wait_ms: int, threads: int | None) -> None:
    """Serve a checkpoint over an OpenAI-compatible API.

    CHECKPOINT (a babyvlm checkpoint folder) is served at /v1/chat/completions and /v1/models.
    """
    import torch

    from babyvlm.plugins.serve.app import create_app

    listener = bind_listener(host, port)  # a bad --host fails before the model loads
    if threads:
        torch.set_num_threads(threads)
    model = load_served_model(checkpoint)
    name = model_name or checkpoint.resolve().name
    app = create_app(model, name, max_batch=max_batch, max_queue=max_queue, max_tokens_limit=max_tokens_limit,
                     batch_wait_s=batch_wait_ms / 1000)
    server = listening_server(app, host, listener)
    click.echo(f"serving {name} at http://{host}:{server.server_port}/v1", nl=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
        app.config["BATCHER"].close()


if __name__ == "__main__":  # `python -m babyvlm.plugins.serve.command` (before the entry point is installed)
    serve()

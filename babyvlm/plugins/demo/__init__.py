"""``babyvlm demo``: the main job on the embedded default, end to end.

synthetic infant world (written in SAYCam format) -> the real ``saycam`` loader -> three-format
LMDB pretraining set (verified) -> BPE tokenizer trained on the transcripts -> tiny BabyLLaVA
trained in phases -> held-out loss with the true images vs shuffled images -> report.json.

Each stage runs the same registered commands and components a user would call: ``babyvlm synth``,
then ``babyvlm.Experiment`` (the Python composition API) over ``babyvlm/configs/demo.py``, with
``babyvlm data verify`` / ``data stats`` on the store it builds. The command lives in ``commands.py``;
importing this package (plugin discovery) does not import torch.
"""

from babyvlm.core.hookspecs import hookimpl
from babyvlm.plugins import lazy_exports

__all__ = ["demo_command", "run_command", "train_and_evaluate"]
__getattr__ = lazy_exports(__name__, dict.fromkeys(__all__, "commands"))


@hookimpl
def register_commands(register):
    register("demo", "babyvlm.plugins.demo.commands:demo_command",
             short_help="Run the end-to-end demo on the embedded synthetic infant world.")

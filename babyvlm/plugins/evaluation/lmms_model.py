"""The lmms-eval model ``babyvlm`` (needs lmms-eval: ``pip install 'babyvlm[lmms]'``).

``lmms-eval eval --model babyvlm --model_args pretrained=CKPT_OR_ADAPTER[,batch_size=16,device=cpu]``:
any babyvlm eval adapter (a checkpoint folder, a local HF folder, ``random``, ``blind:CKPT``) answering
lmms-eval's requests through ``LmmsBridge``. Registered for lmms-eval's CLI by the ``lmms_eval.models``
entry point ``babyvlm = "babyvlm.plugins.evaluation.lmms:lmms_manifest"``.
"""

from __future__ import annotations

from typing import Any

from lmms_eval.api.model import lmms  # type: ignore[import-not-found]

from babyvlm.plugins.evaluation.lmms import LmmsBridge


class BabyVLMLmms(LmmsBridge, lmms):
    is_simple = True

    def __init__(self, pretrained: str = "random", batch_size: int | str = 16, device: str = "cpu",
                 conv_template: str | None = None, **kwargs: Any):
        super().__init__()
        # no conv_template: the checkpoint's own template (as `babyvlm eval`)
        options = {"template": conv_template} if conv_template and str(pretrained) not in ("random", "oracle") else {}
        self.setup_bridge(pretrained, batch_size=int(batch_size), device=device, **options)
        self.batch_size_per_gpu = int(batch_size)

    def generate_until(self, requests):
        return LmmsBridge.generate_until(self, requests)

    def loglikelihood(self, requests):
        return LmmsBridge.loglikelihood(self, requests)

    def generate_until_multi_round(self, requests):
        return LmmsBridge.generate_until_multi_round(self, requests)

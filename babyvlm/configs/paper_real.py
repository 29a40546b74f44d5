"""The paper's whole recipe on the real SAYCam and Ego4D, in one command:

    babyvlm run paper_real --work-dir /scratch/run --set data.root=/data/saycam --set ood_data.root=/data/ego4d

BabyLLaVA-V2 and its five phases as published (`paper.py`: sizes, optimiser settings, step counts from the
published epochs and batch sizes, templates, gradient checkpointing, 8 loader workers) around the stages
of a whole study (docs/study.md): the three-format pretraining store and the BPE tokenizer from the SAYCam
folder (ASR transcripts, as V2 pretrains on) -> phases 0-language, 0-vision, 1-alignment, 2-joint -> the
DevCV tasks built from your annotated recordings (in-domain SAYCam train/val/test, out-of-domain Ego4D
test) -> 3-instruction on the mixed in-domain train split -> the **blind twin**: this same recipe trained
on constant grey images (and tested on them) -> greedy-decoding evaluation of the model, its blind twin,
random and oracle on both domains -> report.md / report.html.

Both folders need the `annotations/*.objects.json` boxes the DevCV builders read: import your detector's
output first (`babyvlm annotations import` / `detect`, docs/real-data.md §9). To score the finished model
on the released DevCV files as well: `babyvlm eval --model WORK/checkpoint --data /data/devcv_released
--out WORK/eval/released --with-blind` ("blind at test": the same model shown grey images, not a twin).

Step counts assume SAYCam-sized data on 8 GPUs (`batch_size` is per process): for another size or GPU
count set them from `babyvlm data stats` (`--set phases.2.trainer.max_steps=...`). The CLIP filter of the
published set is a setting: `--set 'data.builder.scorer={"type": "open_clip", "checkpoint": "/models/clip.pt"}'`.
"""

_base_ = ["./paper.py"]

data = dict(
    source=dict(type="saycam", transcripts="asr"),
    root=None,  # your SAYCam folder: --set data.root=/data/saycam (babyvlm run refuses to start without it)
    heldout_recordings=0,  # the DevCV val and test recordings are held out of every training phase already
)
ood_data = dict(source="ego4d", root=None)  # your Ego4D folder: --set ood_data.root=/data/ego4d
tasks = dict(names="all", seed=0)
evaluation = dict(evaluator="devcv", mode="generate",  # greedy decoding, answers parsed from the text (facts §6)
                  baselines=["random", "oracle"], blind_twin=True)
report = dict(type="markdown")

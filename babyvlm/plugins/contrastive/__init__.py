"""Trainer ``contrastive``: a CVCL-style image–utterance phase (Vong et al. 2024, *Science*: a child's
head-camera frames paired with the utterances heard at the same time, trained with InfoNCE, learned
word–referent mappings). It is a phase like any other (``dict(name="2b-contrastive", formats=["image"],
trainer=dict(type="contrastive", ...))``) on the mmengine trainer's runner (same checkpoints, exact resume,
logs, ``metrics.jsonl``), and the Experiment saves the model's weights after it as after every phase.

Role: put the grounding where instruction tuning needs it. The image side is the model's own path into
the language model -- encoder -> connector -> the visual tokens, mean-pooled; the utterance side is the
mean of the language model's input token embeddings of the utterance (optionally through a learned
linear projection, identity-initialised, which is discarded after the phase). Both are L2-normalised and
scored with a learnable temperature; the loss is symmetric InfoNCE over in-batch negatives, where a pair
whose utterance text equals the anchor's (after lower-casing and whitespace folding) is never a negative.
What trains is the trainer's ``train`` list (default: ``encoder`` and ``connector``; add
``language_model.model.embed_tokens`` to move the word embeddings too).

Quality: image -> utterance retrieval (top-1 among the distinct utterances) on held-out pairs (the
held-out recordings' image samples; those the work dir's ``heldout.json`` marks ``test`` are never used),
before and after training, beside chance (1 / distinct utterances) and the majority utterance's share.
A diagnostic only: nothing is chosen by it. Importing this package imports no torch.
"""

from babyvlm.core.hookspecs import hookimpl


@hookimpl
def register_trainers(register):
    register("contrastive", "babyvlm.plugins.contrastive.trainer:ContrastiveTrainer")

"""The demo experiment: synthetic SAYCam-format corpus -> LMDB pretraining set -> tiny BabyLLaVA,
trained in the paper's phases (shortened for a CPU), checked on held-out recordings.

Every component is named by its registered string; `babyvlm demo --set key=value` overrides any field.
"""

corpus = dict(kind="saycam", minutes=12.0, seed=0, fps=5, size=224, video_minutes=1.0)
# data.root defaults to <work dir>/corpus, where `babyvlm demo` writes the synthetic corpus.
data = dict(
    source=dict(type="saycam", transcripts="human"),
    builder=dict(type="pretraining_set", store="lmdb", scorer="none", image_size=64),
    heldout_recordings=2,
)
tokenizer = dict(type="bpe", vocab_size=400, min_frequency=2)  # the demo corpus has ~120 distinct utterances
model = dict(
    type="babyllava",
    encoder=dict(type="vit", preset="tiny"),
    connector=dict(type="mlp2x_gelu"),
    language_model=dict(type="llama", preset="tiny"),
    template="baby_plain",
)
# Phase 1 (alignment) trains the connector only; phase 2 (joint) the LM + connector on all formats.
phases = [
    dict(name="1-alignment", formats=["image"],
         trainer=dict(type="simple", max_steps=60, lr=3e-3, batch_size=16, weight_decay=0.0, train=["connector"])),
    dict(name="2-joint", formats=["image", "video", "interleaved"],
         trainer=dict(type="simple", max_steps=240, lr=2e-3, batch_size=16, weight_decay=0.1,
                      train=["connector", "language_model"])),
]

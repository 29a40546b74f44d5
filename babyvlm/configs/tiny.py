"""Tiny BabyLLaVA: the paper's architecture at CPU-trainable size (64 px ViT, 2-layer LLaMA).

Components are named by their registered strings; every option is a setting.
"""

model = dict(
    type="babyllava",
    encoder=dict(type="vit", preset="tiny"),
    connector=dict(type="mlp2x_gelu"),
    language_model=dict(type="llama", preset="tiny", vocab_size=6000),
    tokenizer=None,  # e.g. dict(type="bpe", path="runs/tokenizer"); sets the LM vocab size when given
    template="baby_plain",
    freeze=[],
)

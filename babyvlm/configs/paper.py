"""BabyLLaVA-V2 as published: ViT-L/16 at 224 px (197 tokens x 1024) + MLP 2x GELU connector +
LLaMA with the TinyLlama-1.1B shape, vocabulary 6000 (about 1.3B parameters in all).
"""

model = dict(
    type="babyllava",
    encoder=dict(type="vit", preset="vit-l-16"),
    connector=dict(type="mlp2x_gelu"),
    language_model=dict(type="llama", preset="tinyllama-1.1b", vocab_size=6000),
    tokenizer=None,  # the BPE trained on the transcripts: dict(type="bpe", path=...)
    template="baby_plain",
    freeze=[],
)

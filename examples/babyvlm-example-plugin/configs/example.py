"""The tiny BabyLLaVA with the example plugin's connector, and its task among the evaluated ones.

`babyvlm model info configs/example.py` shows 4 tokens per image (the resampler's queries) where the
bundled `mlp2x_gelu` gives one per encoder token.
"""

model = dict(
    type="babyllava",
    encoder=dict(type="vit", preset="tiny"),
    connector=dict(type="query_resampler", num_queries=4, num_heads=4),  # in/out features filled in by babyllava
    language_model=dict(type="llama", preset="tiny"),
    template="baby_v1",
)
# The DevCV task this plugin adds, next to a bundled one; names are registered strings.
tasks = ["example_brighter", "baby_compare_synthetic"]

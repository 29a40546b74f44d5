"""BabyLLaVA-V2 as published: ViT-L/16 at 224 px (197 tokens x 1024) + MLP 2x GELU connector +
LLaMA with the TinyLlama-1.1B shape, vocabulary 6000 (about 1.3B parameters in all), and its training
recipe (babyvlm-v2 facts §5): `babyvlm train paper --set data.root=/data/saycam`.

Published: phase 0-language AdamW (0.9, 0.95), wd 0.1, cosine, warmup 3 %, clip 1.0, lr 2e-4, 8192-token
blocks; phase 1 lr 3e-3, batch 32 per GPU, wd 0; phase 2 lr 2e-5...2e-3 (swept; 2e-4 here), batch 64;
phase 3 lr 5e-5, ViT lr 1e-5, batch 128. Phase 0-vision's settings are not published: the DINO
reference recipe is used. `batch_size` is per process (8 GPUs assumed).

Step counts are the published epochs over the published data sizes (facts §3, §5): `epochs x samples /
global batch`. For a store of another size, set them from the counts `babyvlm data stats` prints
(`--set phases.N.trainer.max_steps=...`). Phase 0-language's token count and 0-vision's schedule are not
published: 20,000 blocks of 8192 tokens x 32 and 100,000 DINO steps (about 50 epochs of ~1M frames at 512).
Templates: `baby_plain` for 0-language and 1-alignment, `baby_v1` for 2-joint and 3-instruction (facts §4).
Phase 3 trains on the mixed DevCV train split that `babyvlm tasks build` writes beside the in-domain task
files (`{tasks}` = the run's `WORK/tasks`; `babyvlm run paper_real` builds them first).
"""

# the published data sizes and schedule (babyvlm-v2 facts §3, §5), from which the step counts follow
_GPUS = 8
_IMAGE_PAIRS, _VIDEO_CLIPS, _INTERLEAVED, _DEVCV_TRAIN = 768_000, 181_000, 63_000, 113_000
_ALIGNMENT_EPOCHS, _JOINT_EPOCHS, _INSTRUCTION_EPOCHS = 5, 5, 5  # phase 3: 5-10 published; 5 here
_ALIGNMENT_BATCH, _JOINT_BATCH, _INSTRUCTION_BATCH = 32 * _GPUS, 64, 128  # global batches

data = dict(
    source=dict(type="saycam", transcripts="human"),
    root=None,  # the SAYCam folder: --set data.root=/data/saycam
    builder=dict(type="pretraining_set", store="lmdb", scorer="none", image_size=224),
    heldout_recordings=20,
)
tokenizer = dict(type="bpe", vocab_size=6000, min_frequency=3)
model = dict(
    type="babyllava",
    encoder=dict(type="vit", preset="vit-l-16"),
    connector=dict(type="mlp2x_gelu"),
    language_model=dict(type="llama", preset="tinyllama-1.1b", vocab_size=6000),
    tokenizer=None,  # the BPE trained on the transcripts: dict(type="bpe", path=...)
    template="baby_plain",
    freeze=[],
)
_gpu = dict(type="mmengine", precision="bf16", betas=(0.9, 0.95), warmup_ratio=0.03, grad_clip=1.0,
            checkpoint_every=1000, log_every=50, num_workers=8)
phases = [
    dict(name="0-language", trainer=dict(_gpu, max_steps=20000, lr=2e-4, weight_decay=0.1, batch_size=4,
                                         block_size=8192, gradient_checkpointing=True)),
    dict(name="0-vision", formats=["image"],
         trainer=dict(type="dino", precision="bf16", max_steps=100000, batch_size=64, lr=5e-4 * 512 / 256,
                      weight_decay=0.04, grad_clip=3.0, warmup_ratio=0.1, out_dim=65536, hidden_dim=2048,
                      bottleneck_dim=256, local_crops=8, teacher_temp=(0.04, 0.07), teacher_momentum=0.996,
                      freeze_last_layer=2000, probe_every=5000, checkpoint_every=1000, log_every=50, num_workers=8)),
    dict(name="1-alignment", formats=["image"],
         trainer=dict(_gpu, max_steps=-(-_IMAGE_PAIRS * _ALIGNMENT_EPOCHS // _ALIGNMENT_BATCH), lr=3e-3,
                      weight_decay=0.0, batch_size=_ALIGNMENT_BATCH // _GPUS)),
    dict(name="2-joint", formats=["image", "video", "interleaved"], template="baby_v1",
         trainer=dict(_gpu, max_steps=-(-(_IMAGE_PAIRS + _VIDEO_CLIPS + _INTERLEAVED) * _JOINT_EPOCHS // _JOINT_BATCH),
                      lr=2e-4, weight_decay=0.0, batch_size=_JOINT_BATCH // _GPUS, gradient_checkpointing=True)),
    dict(name="3-instruction", template="baby_v1", data=dict(llava_json="{tasks}/saycam/devcv_instructions_train.json"),
         trainer=dict(_gpu, max_steps=-(-_DEVCV_TRAIN * _INSTRUCTION_EPOCHS // _INSTRUCTION_BATCH), lr=5e-5,
                      lr_per_part={"encoder": 1e-5}, weight_decay=0.0, batch_size=_INSTRUCTION_BATCH // _GPUS,
                      gradient_checkpointing=True)),
]
# helpers for the phases above, not config sections
del _gpu, _GPUS, _IMAGE_PAIRS, _VIDEO_CLIPS, _INTERLEAVED, _DEVCV_TRAIN, _ALIGNMENT_EPOCHS, _JOINT_EPOCHS
del _INSTRUCTION_EPOCHS, _ALIGNMENT_BATCH, _JOINT_BATCH, _INSTRUCTION_BATCH

"""Constants shared across stages, defined once: loss masking, the special-token convention every
bundled tokenizer, template and model follows, and SAYCam's age arithmetic."""

from __future__ import annotations

IGNORE_INDEX = -100  # label of a position that takes no loss (PyTorch's cross-entropy default)

IMAGE_TOKEN = "<image>"  # each one in a conversation consumes the next image
SPECIAL_TOKENS: tuple[str, ...] = ("<pad>", "<unk>", "<sos>", "<eos>", IMAGE_TOKEN)
PAD_ID, UNK_ID, SOS_ID, EOS_ID, IMAGE_ID = range(len(SPECIAL_TOKENS))
SPECIAL_IDS: dict[str, int] = dict(pad_id=PAD_ID, unk_id=UNK_ID, sos_id=SOS_ID, eos_id=EOS_ID, image_id=IMAGE_ID)

# SAYCam ages are written months + days (``2412`` = 24 months 12 days); a month is the mean Gregorian one.
DAYS_PER_MONTH = 365.25 / 12  # 30.4375

# The training stage in which the language model learns alone (on transcripts by default)
LANGUAGE_STAGE = "0-language"

# The file beside a run's task folders that records each recording's split (read as ``data.heldout_splits``)
TASK_SPLITS_FILE = "splits.json"

# How a task's requests are answered: free text (``generate``) or by scoring the choices (``loglikelihood``)
EVALUATION_MODES: tuple[str, ...] = ("generate", "loglikelihood")

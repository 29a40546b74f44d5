"""Shared helpers of the study tests (no tests here): DevCV items of four task shapes written by hand in
the released layout through the tasks' own ``save``, and the study's Flask app over them."""

from __future__ import annotations

import io
import re
from pathlib import Path

import numpy as np
from PIL import Image

from babyvlm import registry
from babyvlm.core.records import TaskItem

LATER = "Let's try more. Touch the new image. (A) <image> (B) <image>"
COLOURS = [(220, 40, 40), (40, 160, 60), (40, 80, 220), (230, 190, 30), (150, 60, 180), (30, 180, 190),
           (240, 120, 20), (120, 120, 120), (250, 250, 250), (20, 20, 20)]


def picture(seed: int, size: int = 96) -> bytes:
    """A JPEG with a coloured disc on a textured background (distinct per seed)."""
    rng = np.random.default_rng(seed)
    pixels = rng.integers(150, 230, size=(size, size, 3), dtype=np.uint8)
    yy, xx = np.mgrid[:size, :size]
    centre = rng.integers(size // 3, 2 * size // 3, size=2)
    disc = (yy - centre[0]) ** 2 + (xx - centre[1]) ** 2 < (size // 4) ** 2
    pixels[disc] = COLOURS[seed % len(COLOURS)]
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="JPEG", quality=90)
    return buffer.getvalue()


PLUGINS_USED = {("task", "baby_pv"): "babyvlm.plugins.devcv", ("eval_adapter", "random"): "babyvlm.plugins.evaluation",
                ("command", "study"): "babyvlm.plugins.study"}


def ensure_devcv() -> None:
    """The plugins these tests use on the current (fresh) registry, whether or not their entry points are
    installed yet (each is registered in-process only when its component is missing)."""
    import importlib

    for (kind, name), module in PLUGINS_USED.items():
        if name not in registry.names(kind):
            registry.register_plugin(importlib.import_module(module), f"{module.rsplit('.', 1)[1]}_for_tests")


def pv_items(count: int = 3) -> list[TaskItem]:
    prompt = ("<image><image><image><image>\nTouch the image of 'ball' (A) the first image (B) the second image "
              "(C) the third image (D) the fourth image.")
    return [TaskItem(f"pv_{n}", "baby_pv", [picture(10 * n + k) for k in range(4)],
                     [{"from": "human", "value": prompt}, {"from": "gpt", "value": "ABCD"[n % 4]}], "ABCD"[n % 4])
            for n in range(count)]


def count_items(count: int = 3) -> list[TaskItem]:
    return [TaskItem(f"count_{n}", "baby_count", [picture(100 + n)],
                     [{"from": "human", "value": "<image>\nHow many balls do you see?"},
                      {"from": "gpt", "value": str(n + 2)}], str(n + 2), choices=[str(c) for c in range(1, 7)])
            for n in range(count)]


def memory_item(number: int = 0) -> TaskItem:
    """15 rounds, 29 images: 5 learning rounds then 10 test rounds, with ``labels``."""
    learned = [f"obj{k}" for k in range(5)]
    images, conversations, labels = [], [], []
    seed = 1000 + 100 * number
    # round 1: one picture; rounds 2-5: the new object beside the previous one
    rounds = [([learned[0]], learned[0])] + [([learned[k], learned[k - 1]] if k % 2 else [learned[k - 1], learned[k]],
                                              learned[k]) for k in range(1, 5)]
    tests = learned + learned
    rounds += [([f"novel{r}", seen] if r % 2 else [seen, f"novel{r}"], f"novel{r}") for r, seen in enumerate(tests)]
    names = {}
    for shown, new in rounds:
        text = "Touch the new image. (A) <image>" if not conversations else LATER
        conversations += [{"from": "human", "value": text}, {"from": "gpt", "value": "AB"[shown.index(new)]}]
        for label in shown:
            names.setdefault(label, picture(seed + len(names)))
            images.append(names[label])
        labels.append(list(shown))
    return TaskItem(f"memory_{number}", "baby_memory", images, conversations, conversations[-1]["value"],
                    extras={"labels": labels})


def winoground_items(count: int = 2) -> list[TaskItem]:
    items = []
    for n in range(count):
        phrases = [f"see ball{n}", f"touch cup{n}"]
        items.append(TaskItem(f"wino_{n}", "baby_winoground", [picture(300 + 2 * n), picture(301 + 2 * n)],
                              [{"from": "human", "value": "<image>"}, {"from": "gpt", "value": phrases[0]},
                               {"from": "human", "value": "<image>"}, {"from": "gpt", "value": phrases[1]}],
                              " | ".join(phrases), extras={"phrases": phrases}))
    return items


def vdr_items(count: int = 2) -> list[TaskItem]:
    """Visual Delayed Response: 6 frames of a disc leaving the frame, answered left or right."""
    prompt = "<image>" * 6 + "\nDoes the ball leave the frame through the right side of the frame or the left side?"
    return [TaskItem(f"vdr_{n}", "baby_vdr_binary", [picture(500 + 6 * n + k) for k in range(6)],
                     [{"from": "human", "value": prompt}, {"from": "gpt", "value": ("left", "right")[n % 2]}],
                     ("left", "right")[n % 2], choices=["left", "right"]) for n in range(count)]


def write_task_folder(folder: Path, memory_items: int = 1) -> Path:
    """``folder`` holding baby_pv, baby_count, baby_memory, baby_winoground and baby_vdr_binary items."""
    ensure_devcv()
    for name, items in (("baby_pv", pv_items()), ("baby_count", count_items()),
                        ("baby_memory", [memory_item(n) for n in range(memory_items)]),
                        ("baby_winoground", winoground_items()), ("baby_vdr_binary", vdr_items())):
        registry.build("task", name).save(folder, "test", items)
    return folder


# ---- a participant through Flask's test client ------------------------------------------------------
def start(client, **params):
    query = "&".join(f"{k}={v}" for k, v in params.items())
    page = client.get(f"/?{query}")
    assert page.status_code == 200 and b"agree to take part" in page.data
    response = client.post("/start", data=dict(consent="yes", **params))
    assert response.status_code == 302 and response.headers["Location"].endswith("/trial")
    return client.get("/api/state").get_json()


def current(client, content):
    page = client.get("/trial").data.decode()
    fields = dict(re.findall(r'data-(participant|index|task|item|screen)="([^"]*)"', page))
    entry = content.entry(fields["task"], fields["item"])
    screen = entry.screens[int(fields["screen"])]
    return {"participant_id": fields["participant"], "trial_index": int(fields["index"]), "task": fields["task"],
            "item_id": fields["item"], "screen": int(fields["screen"])}, screen, page


def answer(client, trial, response, rt_ms=5.0):
    return client.post("/api/answer", json=dict(trial, response=response, rt_ms=rt_ms))

"""Shortcut probes: the validity suite ``babyvlm tasks check`` runs on every entry and domain.

A task item must need the asked property. Each probe tries to answer a task's items *without* doing the
task, from a partial or cheap view of them, fit on a train split and scored on the test split through
the task's own ``respond_with`` / ``score`` / ``aggregate``, so a probe's number is on the same scale as
a model's:

- ``majority``: the most frequent train answer of each decision (per round for multi-round items);
- ``text_only``: a classifier on the words of the question (and option texts), no image;
- ``image_stats``: a classifier on cheap statistics of every image slot — file bytes, width, height,
  luminance mean and std, mean colour; for tasks whose answer is a place in the picture
  (``probe_orientation``) also the luminance of the top half minus the bottom half and left minus right —
  and, where the options are images, each option's differences to the other options and to the query;
  a linear model and gradient-boosted trees, the better counts;
- ``options_only``: the same statistics of the options without the query (match-to-sample tasks: every
  option must be needed);
- ``answer_history``: each round's gold answer from the earlier rounds' golds (multi-round items).

A probe *fails* when its score beats the task's chance level by more than ``MARGIN`` with a one-sided
binomial test at ``ALPHA`` over the scored units (items; learned objects for Memory), counted at their
*effective* number: items built from one recording are not independent, so the count is divided by the
design effect of the probe's per-item scores over the recording clusters (``babyvlm.core.clusters``;
Kish's n / deff) — otherwise a check run of a hundred probe tests flags chance associations as shortcuts.
The score is the task's primary metric unless the task names a ``probe_metric`` with its ``probe_chance``.
Memory does (per-round test accuracy, chance 1/2): its adjusted score counts a learned picture when both of
its test rounds are right, so any *fixed* preference order over pictures, knowing nothing of the answers,
wins both whenever the learned picture ranks below both of its foils — 1/3 of the time, not 1/4 (a hash of
each picture's bytes as the order scored 0.29-0.35), and a tree ensemble fit on noise is such an order.
Per-round accuracy has no such floor, and any information a probe finds in a round's pictures shows in it.

Where the test split's domain has no train split, the probe is fit on another loaded domain's train split
of the same task, else cross-validated within the split (``FOLDS`` folds, grouped by recording so that, as
between a train and a test split, no recording is on both sides: ``cross_validation_folds``).

Tasks describe what a probe may look at through ``decisions(item)`` (``base.Decision``): the query
images, the option images (when the options are pictures), the text and the gold label of each
answer the item asks for.
"""

from __future__ import annotations

import hashlib
import io
import math
import re
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from babyvlm.core.clusters import cluster_items, design_effect
from babyvlm.core.constants import IMAGE_TOKEN
from babyvlm.core.errors import DataError
from babyvlm.core.records import TaskItem
from babyvlm.plugins.devcv.options import item_rng

MARGIN = 0.05  # points above chance a probe may reach before the p-value is asked
ALPHA = 0.01  # one-sided binomial
FOLDS = 5
STAT_NAMES = ("log_bytes", "width", "height", "lum_mean", "lum_std", "red", "green", "blue")
ORIENTATION_NAMES = ("lum_top_minus_bottom", "lum_left_minus_right")  # for tasks with ``probe_orientation``
PROBES = ("majority", "text_only", "image_stats", "options_only", "answer_history")


@dataclass
class ProbeOutcome:
    """One probe on one (domain, task) test split."""

    probe: str
    score: float | None  # the task's primary metric (or its probe_metric), None when not applicable
    chance: float
    units: int  # scored units (the binomial test counts them divided by ``design_effect``)
    p_value: float | None
    fitted_on: str  # "saycam/train", "cross-validated", ...
    detail: str = ""
    design_effect: float = 1.0
    metric: str = ""  # what ``score`` is, when not the task's primary metric

    @property
    def failed(self) -> bool:
        return (self.score is not None and self.p_value is not None
                and self.score - self.chance > MARGIN and self.p_value < ALPHA)

    def describe(self) -> str:
        if self.score is None:
            return f"{self.probe}: not applicable ({self.detail})"
        verdict = "SHORTCUT" if self.failed else "ok"
        metric = f" ({self.metric})" if self.metric else ""
        return (f"{self.probe} {self.score:.3f}{metric} vs chance {self.chance:.3f} (p={self.p_value:.2g}, "
                f"n={self.units}, effective {self.units / self.design_effect:.0f}, fit on {self.fitted_on}) {verdict}")

    def to_dict(self) -> dict[str, Any]:
        return {"probe": self.probe, "score": self.score, "chance": self.chance, "units": self.units,
                "design_effect": self.design_effect, "p_value": self.p_value, "metric": self.metric,
                "fitted_on": self.fitted_on, "failed": self.failed, "detail": self.detail}


# ---- cheap image statistics -------------------------------------------------------------------------
class ImageStats:
    """Statistics per distinct image (cached by content digest): ``STAT_NAMES``, and with ``orientation``
    also ``ORIENTATION_NAMES`` (mean luminance of the top half minus the bottom half, left minus right) —
    global statistics are blind to a flipped frame, and where a task's answer is a place in the picture a
    flip can give it away (an upside-down room with its object "at the top")."""

    def __init__(self, orientation: bool = False) -> None:
        self.orientation = orientation
        self.width = len(STAT_NAMES) + (len(ORIENTATION_NAMES) if orientation else 0)
        self._cache: dict[bytes, np.ndarray] = {}

    def __call__(self, data: bytes, where: str) -> np.ndarray:
        key = hashlib.sha1(data).digest()
        found = self._cache.get(key)
        if found is None:
            found = self._cache[key] = self._compute(data, where)
        return found

    def _compute(self, data: bytes, where: str) -> np.ndarray:
        from PIL import Image

        try:
            with Image.open(io.BytesIO(data)) as image:
                rgb = np.asarray(image.convert("RGB"), dtype=np.float32)
        except Exception as exc:  # Pillow raises several types for corrupt data
            raise DataError(f"{where}: cannot decode image ({type(exc).__name__}: {exc})") from exc
        luma = rgb @ np.asarray([0.299, 0.587, 0.114], np.float32)
        colour = rgb.reshape(-1, 3).mean(axis=0)
        found = [math.log(len(data)), rgb.shape[1], rgb.shape[0], luma.mean(), luma.std(), *colour]
        if self.orientation:
            rows, cols = max(1, luma.shape[0] // 2), max(1, luma.shape[1] // 2)  # a 1-px side: halves overlap
            found += [luma[:rows].mean() - luma[luma.shape[0] - rows:].mean(),
                      luma[:, :cols].mean() - luma[:, luma.shape[1] - cols:].mean()]
        return np.asarray(found, np.float32)


def picture_statistics(rgb: np.ndarray, quality: int = 90,
                       encode: Callable[[np.ndarray], bytes] | None = None, orientation: bool = False) -> np.ndarray:
    """The cheap statistics of an RGB array as it will be written (encoded at ``quality``): what the
    builders balance so that ``image_stats`` finds nothing (log bytes, luminance mean and std, colour).
    The file size is the encoding's; the others are read from the array itself, every other pixel (an
    encoding or the subsampling moves them by a fraction of a grey level). ``encode``: the builder's own
    encoder at ``quality`` (``DevCVTask.jpeg_bytes``), so a picture that is written is encoded once.
    ``orientation``: also top-minus-bottom and left-minus-right half luminance."""
    from babyvlm.media import encode_jpeg

    pixels = rgb[::2, ::2].astype(np.float32)  # every other pixel: the same moments at a quarter of the cost
    luma = pixels @ np.asarray([0.299, 0.587, 0.114], np.float32)
    encoded = encode(rgb) if encode is not None else encode_jpeg(rgb, quality)
    found = [math.log(len(encoded)), luma.mean(), luma.std(), *pixels.reshape(-1, 3).mean(axis=0)]
    if orientation:  # the half-picture luminance differences of ``ImageStats(orientation=True)``
        rows, cols = luma.shape[0] // 2, luma.shape[1] // 2
        found += [luma[:rows].mean() - luma[rows:].mean(), luma[:, :cols].mean() - luma[:, cols:].mean()]
    return np.asarray(found, np.float32)


# ---- features of one decision -------------------------------------------------------------------------
def _query_features(stats: list[np.ndarray], width: int) -> np.ndarray:
    """A sequence of query images as first, last, mean and last - first statistics (a single image: the
    difference is zero); ``width`` statistics per image."""
    if not stats:
        return np.zeros(4 * width, np.float32)
    first, last = stats[0], stats[-1]
    return np.concatenate([first, last, np.mean(stats, axis=0), last - first])


def _option_rows(option_stats: list[np.ndarray], query: np.ndarray | None) -> np.ndarray:
    """One row per option: its statistics, their difference to the other options' mean, and (with a
    query) their difference to the query's mean statistics."""
    matrix = np.stack(option_stats)
    rows = []
    for index, own in enumerate(matrix):
        others = np.delete(matrix, index, axis=0)
        parts = [own, own - (others.mean(axis=0) if len(others) else own)]
        if query is not None:
            parts.append(np.abs(own - query))
        rows.append(np.concatenate(parts))
    return np.stack(rows)


# ---- classifiers ------------------------------------------------------------------------------------
def _classifiers(seed: int) -> list[Any]:
    from sklearn.ensemble import HistGradientBoostingClassifier
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    return [make_pipeline(StandardScaler(), LogisticRegression(max_iter=2000, C=1.0)),
            HistGradientBoostingClassifier(max_iter=80, max_depth=3, learning_rate=0.1, random_state=seed)]


@dataclass
class _Split:
    """The decisions of one split, flattened, with each item's slice of them."""

    items: list[TaskItem]
    decisions: list[Any]  # base.Decision
    owner: list[int]  # decision -> item index


def _flatten(task: Any, items: Sequence[TaskItem]) -> _Split:
    decisions, owner = [], []
    for number, item in enumerate(items):
        for decision in task.decisions(item):
            decisions.append(decision)
            owner.append(number)
    return _Split(list(items), decisions, owner)


def _answers(task: Any, split: _Split, chosen: list[str]) -> list[Any]:
    """Per item, the answer ``respond_with`` takes: one label, or one per decision (multi-round)."""
    per_item: list[list[str]] = [[] for _ in split.items]
    for decision_index, label in enumerate(chosen):
        per_item[split.owner[decision_index]].append(label)
    return [labels if task.multi_round else labels[0] for labels in per_item]


def _score(task: Any, items: Sequence[TaskItem], answers: Sequence[Any]) -> tuple[float | None, int, float]:
    """The primary metric, the scored units and the design effect of the per-item scores."""
    mode = "loglikelihood"
    predictions = [task.score(item, task.respond_with(item, mode, answer), mode)
                   for item, answer in zip(items, answers, strict=True)]
    metric = task.probe_metric or task.primary_metric
    value = task.aggregate(items, predictions)[metric]
    if value is None:
        return None, task.scored_units(items), 1.0
    per_item = [task.aggregate([item], [prediction])[metric] or 0.0
                for item, prediction in zip(items, predictions, strict=True)]
    return float(value), task.scored_units(items), design_effect(per_item, cluster_items(items)[0])


# ---- the probes -------------------------------------------------------------------------------------
Fit = Callable[[_Split, _Split, int, "ImageStats"], list[str] | None]


def _majority(train: _Split, test: _Split, seed: int, stats: ImageStats) -> list[str] | None:
    by_position: dict[int, Counter] = {}
    for decision in train.decisions:
        by_position.setdefault(decision.position, Counter())[decision.gold] += 1
    overall = Counter(d.gold for d in train.decisions)
    picked = []
    for decision in test.decisions:
        counts = by_position.get(decision.position) or overall
        usable = [(count, label) for label, count in counts.items() if label in decision.labels]
        picked.append(max(usable)[1] if usable else decision.labels[0])
    return picked


def _text(decision: Any) -> str:
    return re.sub(r"\s+", " ", decision.text.replace(IMAGE_TOKEN, " ")).strip().lower()


def _text_only(train: _Split, test: _Split, seed: int, stats: ImageStats) -> list[str] | None:
    from sklearn.feature_extraction.text import CountVectorizer
    from sklearn.linear_model import LogisticRegression

    texts = [_text(d) for d in train.decisions]
    golds = [d.gold for d in train.decisions]
    if len(set(golds)) < 2:
        return None
    vectorizer = CountVectorizer(token_pattern=r"[a-z']+", ngram_range=(1, 2), binary=True)
    model = LogisticRegression(max_iter=2000, C=1.0)
    model.fit(vectorizer.fit_transform(texts), golds)
    probabilities = model.predict_proba(vectorizer.transform([_text(d) for d in test.decisions]))
    return [_best_label(d, dict(zip(model.classes_, row, strict=True))) for d, row in zip(test.decisions, probabilities,
                                                                                            strict=True)]


def _best_label(decision: Any, scores: dict[str, float]) -> str:
    """The allowed label with the highest score; ties drawn from the item id (never the first label)."""
    allowed = [(scores.get(label, -math.inf), label) for label in decision.labels]
    best = max(score for score, _ in allowed)
    tied = [label for score, label in allowed if score == best]
    return tied[0] if len(tied) == 1 else item_rng(decision.key).choice(tied)


def _image_probe(with_query: bool) -> Fit:
    def fit(train: _Split, test: _Split, seed: int, stats: ImageStats) -> list[str] | None:
        if all(d.options is None for d in train.decisions):
            if not with_query:
                return None
            return _classify_items(train, test, stats, seed)
        if not with_query and not any(d.query for d in train.decisions):
            return None  # no query to leave out: image_stats already is options-only
        return _rank_options(train, test, stats, seed, with_query)
    return fit


def _decision_query(decision: Any, stats: ImageStats) -> np.ndarray | None:
    if not decision.query:
        return None
    return np.mean([stats(image, decision.key) for image in decision.query], axis=0)


def _rank_options(train: _Split, test: _Split, stats: ImageStats, seed: int, with_query: bool) -> list[str]:
    def rows(decision: Any) -> np.ndarray:
        query = _decision_query(decision, stats) if with_query else None
        return _option_rows([stats(image, decision.key) for image in decision.options], query)

    train_rows = [rows(d) for d in train.decisions]
    test_rows = [rows(d) for d in test.decisions]
    x = np.concatenate(train_rows)
    y = np.concatenate([[label == d.gold for label in d.labels] for d in train.decisions])
    best: list[str] | None = None
    best_train = -1.0
    for model in _classifiers(seed):
        model.fit(x, y)
        train_choices = _pick_options(train.decisions, train_rows, model)
        accuracy = float(np.mean([c == d.gold for c, d in zip(train_choices, train.decisions, strict=True)]))
        if best is None or accuracy > best_train:  # the better model *on train* answers the test split
            best, best_train = _pick_options(test.decisions, test_rows, model), accuracy
    return best or []


def _pick_options(decisions: list[Any], rows: list[np.ndarray], model: Any) -> list[str]:
    """Each decision's option with the highest "is gold" probability (one batched prediction)."""
    scores = model.predict_proba(np.concatenate(rows))[:, 1]
    chosen, start = [], 0
    for decision, block in zip(decisions, rows, strict=True):
        chosen.append(_pick_option(decision, scores[start:start + len(block)]))
        start += len(block)
    return chosen


def _pick_option(decision: Any, scores: np.ndarray) -> str:
    return _best_label(decision, {label: float(s) for label, s in zip(decision.labels, scores, strict=True)})


def _classify_items(train: _Split, test: _Split, stats: ImageStats, seed: int) -> list[str] | None:
    def row(decision: Any) -> np.ndarray:
        return _query_features([stats(image, decision.key) for image in decision.query], stats.width)

    golds = [d.gold for d in train.decisions]
    if len(set(golds)) < 2:
        return None
    x = np.stack([row(d) for d in train.decisions])
    test_x = np.stack([row(d) for d in test.decisions])
    best, best_train = None, -1.0
    for model in _classifiers(seed):
        model.fit(x, golds)
        accuracy = float(np.mean(model.predict(x) == np.asarray(golds)))
        probabilities = model.predict_proba(test_x)
        chosen = [_best_label(d, dict(zip(model.classes_, p, strict=True))) for d, p in zip(test.decisions,
                                                                                          probabilities, strict=True)]
        if best is None or accuracy > best_train:
            best, best_train = chosen, accuracy
    return best


def _answer_history(train: _Split, test: _Split, seed: int, stats: ImageStats) -> list[str] | None:
    from sklearn.linear_model import LogisticRegression

    if not any(d.position > 0 for d in train.decisions):
        return None  # one decision per item: no history

    def row(split: _Split, index: int) -> list[float]:
        decision = split.decisions[index]
        earlier = [split.decisions[k] for k in range(index) if split.owner[k] == split.owner[index]]
        golds = [d.gold for d in earlier]
        last = golds[-1] if golds else ""
        labels = sorted({label for d in split.decisions for label in d.labels})
        return ([decision.position] + [float(last == label) for label in labels]
                + [golds.count(label) / max(1, len(golds)) for label in labels]
                + [float(len(golds) >= 2 and golds[-1] == golds[-2])])

    x = [row(train, k) for k in range(len(train.decisions))]
    golds = [d.gold for d in train.decisions]
    model = LogisticRegression(max_iter=2000).fit(x, golds)
    probabilities = model.predict_proba([row(test, k) for k in range(len(test.decisions))])
    return [_best_label(d, dict(zip(model.classes_, p, strict=True))) for d, p in zip(test.decisions, probabilities,
                                                                                     strict=True)]


PROBE_FITS: dict[str, Fit] = {"majority": _majority, "text_only": _text_only, "image_stats": _image_probe(True),
                              "options_only": _image_probe(False), "answer_history": _answer_history}


def run_probes(task: Any, test_items: Sequence[TaskItem], train_items: Sequence[TaskItem] | None,
               fitted_on: str, seed: int = 0, only: Sequence[str] = PROBES) -> list[ProbeOutcome]:
    """The probes named in ``only`` (default: every one) on ``test_items``; fit on ``train_items``, or
    cross-validated within ``test_items`` when there are none."""
    test = _flatten(task, test_items)
    chance = float(task.probe_chance if task.probe_metric else task.chance(list(test_items)))
    if not test.decisions:
        return [ProbeOutcome(name, None, chance, 0, None, fitted_on, "the task asks no per-item decision a "
                             "probe can answer (scored by likelihood comparisons)") for name in only]
    outcomes, stats = [], ImageStats(orientation=task.probe_orientation)
    for name in only:
        fit = PROBE_FITS[name]
        where = (fitted_on if train_items else f"{FOLDS}-fold cross-validation on the split, folds by "
                 f"{cross_validation_folds(test_items, seed)[1]}")
        chosen = _fit_and_answer(task, fit, test, test_items, train_items, seed, stats)
        if chosen is None:
            outcomes.append(ProbeOutcome(name, None, chance, 0, None, where, "nothing for this probe to use"))
            continue
        score, units, deff = _score(task, test.items, _answers(task, test, chosen))
        if score is None:
            outcomes.append(ProbeOutcome(name, None, chance, units, None, where, "the primary metric is unavailable"))
            continue
        effective = max(1, round(units / deff))
        outcome = ProbeOutcome(name, score, chance, units, _greater(score, effective, chance), where,
                               design_effect=round(deff, 2), metric=task.probe_metric or "")
        outcomes.append(outcome)
    return outcomes


def constant_shortcut(score: float, units: int, chance: float, tries: int = 1,
                      alpha: float = ALPHA) -> tuple[bool, float]:
    """Whether a score over ``units`` independent answers is a shortcut by the suite's rule (more than
    ``MARGIN`` above ``chance`` with one-sided binomial p < ``alpha``, Bonferroni-corrected over ``tries``
    answers tried), and that p-value. The ``constant`` check asks it; a builder asks it of its own golds
    with a larger ``alpha`` (it calls more scores shortcuts), so that what it keeps is not at the check's edge."""
    p_value = min(1.0, _greater(score, max(1, units), chance) * tries)
    return score - chance > MARGIN and p_value < alpha, p_value


def _greater(score: float, effective: int, level: float) -> float:
    """One-sided binomial p-value of ``score`` over ``effective`` units against ``level``."""
    from scipy.stats import binomtest

    hits = min(effective, max(0, round(score * effective)))
    return float(binomtest(hits, effective, min(max(level, 1e-9), 1.0), alternative="greater").pvalue)


def _fit_and_answer(task: Any, fit: Fit, test: _Split, test_items: Sequence[TaskItem],
                    train_items: Sequence[TaskItem] | None, seed: int, stats: ImageStats) -> list[str] | None:
    if train_items:
        return fit(_flatten(task, train_items), test, seed, stats)
    return _cross_validated(task, fit, test_items, seed, stats)


def _cross_validated(task: Any, fit: Fit, items: Sequence[TaskItem], seed: int,
                     stats: ImageStats) -> list[str] | None:
    whole = _flatten(task, items)
    chosen: list[str | None] = [None] * len(whole.decisions)
    for held in cross_validation_folds(items, seed)[0]:
        train = _flatten(task, [item for k, item in enumerate(items) if k not in held])
        test = _flatten(task, [item for k, item in enumerate(items) if k in held])
        if not train.decisions or not test.decisions:
            continue
        picked = fit(train, test, seed, stats)
        if picked is None:
            return None
        positions = [d for d, owner in enumerate(whole.owner) if owner in held]
        for position, label in zip(positions, picked, strict=True):
            chosen[position] = label
    return [label if label is not None else d.labels[0] for label, d in zip(chosen, whole.decisions, strict=True)]


def cross_validation_folds(items: Sequence[TaskItem], seed: int) -> tuple[list[set[int]], str]:
    """``FOLDS`` sets of item indices for cross-validation within one split, grouped by the items'
    clusters (``babyvlm.core.clusters``: the recording) when there are at least ``FOLDS`` of them, so that
    no recording has items on both sides — the way a train split and a test split never share a session.
    Item-level folds would let a probe recognise near-identical frames of one recording (a pile seen 0.2 s
    apart) and score a memory of the split that no evaluated model, which never sees test items, could have.
    Clusters go, largest first, to the fold with the fewest items (ties by a seeded order). Returns the
    folds and what they are grouped by."""
    import random

    labels, kind = cluster_items(items)
    rng = random.Random(f"probe-folds:{seed}")
    if len(set(labels)) < FOLDS or kind == "item":
        order = list(range(len(items)))
        rng.shuffle(order)
        return [set(order[k::FOLDS]) for k in range(FOLDS)], "item"
    members: dict[int, list[int]] = {}
    for index, label in enumerate(labels):
        members.setdefault(label, []).append(index)
    clusters = list(members.values())
    rng.shuffle(clusters)
    clusters.sort(key=len, reverse=True)
    folds: list[set[int]] = [set() for _ in range(FOLDS)]
    for cluster in clusters:
        min(folds, key=len).update(cluster)
    return folds, kind

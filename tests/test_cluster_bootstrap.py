"""Confidence intervals and probe tests over clusters of items: items built from one recording, or reusing a
picture, are resampled together (``babyvlm.core.clusters``), so repeated images widen the interval instead
of passing for independent evidence."""

from babyvlm.core.clusters import MIN_CLUSTERS, cluster_items, design_effect
from babyvlm.core.records import Prediction, TaskItem
from babyvlm.plugins.evaluation.metrics import bootstrap


def accuracy(items, predictions):
    by_id = {p.item_id: p for p in predictions}
    return {"acc": sum(bool(by_id[i.item_id].correct) for i in items) / len(items)}


def repeated_image_items(groups: int = 8, per_group: int = 10):
    """``groups`` pictures each reused by ``per_group`` items; an item is right exactly when its picture's
    group is even (perfectly correlated within a group, as a model that knows one picture)."""
    items, predictions = [], []
    for group in range(groups):
        for k in range(per_group):
            item = TaskItem(f"g{group}_{k}", "t", [f"picture {group}".encode(), f"unique {group} {k}".encode()], [], "A")
            items.append(item)
            predictions.append(Prediction(item.item_id, "t", "A", "A", correct=group % 2 == 0))
    return items, predictions


def test_items_sharing_a_picture_form_one_cluster():
    items, _ = repeated_image_items()
    labels, kind = cluster_items(items)
    assert kind == "shared images" and len(set(labels)) == 8
    assert all(labels[k] == labels[(k // 10) * 10] for k in range(len(items)))


def test_the_recording_wins_over_pictures_and_too_few_clusters_fall_back_to_items():
    items, _ = repeated_image_items(groups=3)
    for number, item in enumerate(items):
        item.extras["recording"] = f"rec{number % 6}"
    labels, kind = cluster_items(items)
    assert kind == "recording" and len(set(labels)) == 6
    few, _ = repeated_image_items(groups=MIN_CLUSTERS - 1)
    assert cluster_items(few)[1] == "item"


def test_the_cluster_interval_is_wider_than_the_item_interval_for_repeated_images():
    items, predictions = repeated_image_items()
    labels, _ = cluster_items(items)
    naive = bootstrap(accuracy, items, predictions, resamples=400, seed=1)["acc"]
    clustered = bootstrap(accuracy, items, predictions, resamples=400, seed=1, clusters=labels)["acc"]
    assert clustered["stderr"] > 2.5 * naive["stderr"]  # 80 items carry the evidence of 8
    assert clustered["ci_high"] - clustered["ci_low"] > 2 * (naive["ci_high"] - naive["ci_low"])
    scores = [float(p.correct) for p in predictions]
    # Kish: 1 + (10 - 1) x 1 = 10 items per cluster, times the small-sample factors 8/7 x 79/80
    assert abs(design_effect(scores, labels) - 10 * 8 / 7 * 79 / 80) < 1e-6
    assert design_effect(scores, list(range(len(scores)))) == 1.0

"""The build-speed changes keep what is built: videos rendered on threads come back in video order, the
shared annotation parse still reports its skips to every builder and is redone when the file changes, an
item file's images are all in place with one sync, and crops inside the frame need no fill colour."""

import json
import time

import numpy as np
import pytest

from babyvlm.core.records import Recording, SkipReport, TaskItem
from babyvlm.plugins.devcv import frames as frames_module
from babyvlm.plugins.devcv import itemio
from babyvlm.plugins.synthetic import corpus


def test_map_videos_keeps_video_order_on_threads_and_serially(monkeypatch):
    def slow_first(index: int, name: str) -> str:
        if index == 0:  # the first video finishes last: order must still be the videos'
            time.sleep(0.2)
        return f"{index}:{name}"

    expected = ["0:a", "1:b", "2:c", "3:d"]
    for threads in (1, 2):
        monkeypatch.setattr(corpus, "VIDEO_THREADS", threads)
        assert list(corpus.map_videos(slow_first, range(4), "abcd")) == expected


def test_a_failed_video_stops_the_videos_not_yet_started(monkeypatch):
    started = []

    def failing_first(index: int) -> int:
        started.append(index)
        if index == 0:
            raise OSError("No space left on device")
        time.sleep(0.05)
        return index

    monkeypatch.setattr(corpus, "VIDEO_THREADS", 2)
    with pytest.raises(OSError, match="No space left"):
        list(corpus.map_videos(failing_first, range(50)))
    assert len(started) < 50


def _annotated(tmp_path, bad_records: int) -> Recording:
    video = tmp_path / "v.mp4"
    video.write_bytes(b"not a video")  # unreadable header: no frame count bound, as for a broken file
    path = tmp_path / "v.objects.json"
    path.write_text(json.dumps({
        "fps": 5, "categories": [{"id": 1, "name": "ball"}],
        "images": [{"id": 0, "frame_index": 0, "width": 64, "height": 64}],
        "annotations": [{"image_id": 0, "category_id": 1, "bbox": [1, 2, 10, 12], "track_id": 4}]
        + [{"image_id": 9, "category_id": 1, "bbox": [1, 2, 3, 4]}] * bad_records}))
    return Recording("v", video, [], "test", annotations_path=path)


def test_shared_annotation_parse_reports_skips_to_every_builder_and_follows_file_changes(tmp_path, monkeypatch):
    frames_module.clear_cache()
    parses = []
    real = frames_module.read_recording_annotations
    monkeypatch.setattr(frames_module, "read_recording_annotations",
                        lambda recording, report: parses.append(1) or real(recording, report))
    recording = _annotated(tmp_path, bad_records=2)
    first, second = SkipReport(), SkipReport()
    assert frames_module.recording_annotations(recording, first) is frames_module.recording_annotations(recording, second)
    assert len(parses) == 1
    assert first.counts == second.counts == {"annotation_unknown_image": 2}
    recording = _annotated(tmp_path, bad_records=3)  # rewritten: a different size, so parsed anew
    third = SkipReport()
    assert frames_module.recording_annotations(recording, third)[0].boxes[0].track_id == 4
    assert len(parses) == 2 and third.counts == {"annotation_unknown_image": 3}
    frames_module.clear_cache()


def test_write_items_places_every_image_and_syncs_once(tmp_path, monkeypatch):
    syncs = []
    monkeypatch.setattr(itemio.os, "sync", lambda: syncs.append(1))
    items = [TaskItem(item_id=f"i{k}", task="t", images=[bytes([k]) * 10, bytes([k + 50]) * 12],
                      conversations=[{"from": "human", "value": "<image> <image> q"}, {"from": "gpt", "value": "A"}],
                      answer="A") for k in range(3)]
    path = itemio.write_items(tmp_path, "t", "test", items)
    assert len(syncs) == 1
    records = json.loads(path.read_text())
    assert [(tmp_path / name).read_bytes() for name in records[2]["image"]] == items[2].images
    itemio.write_items(tmp_path, "t", "test", items)  # nothing new to write: no sync
    assert len(syncs) == 1


def test_padded_region_fills_with_the_mean_colour_only_outside_the_frame():
    image = np.arange(8 * 8 * 3, dtype=np.uint8).reshape(8, 8, 3)
    assert np.array_equal(frames_module.padded_region(image, 2, 1, 4), image[1:5, 2:6])
    out = frames_module.padded_region(image, -2, 0, 4)
    mean = image.reshape(-1, 3).mean(axis=0).round().astype(np.uint8)
    assert np.array_equal(out[:, :2], np.broadcast_to(mean, (4, 2, 3)))
    assert np.array_equal(out[:, 2:], image[0:4, 0:2])


def test_pixel_batch_preprocesses_a_recurring_image_once_and_keeps_reading_order():
    import torch

    from babyvlm.plugins.evaluation.scoring import pixel_batch

    calls = []

    class Encoder:
        image_size = 2

        def preprocess(self, image):
            calls.append(image)
            return torch.full((3, 2, 2), float(image[0]))

    class Model:
        encoder, device = Encoder(), torch.device("cpu")

    pixels, counts = pixel_batch(Model(), [[b"\x01", b"\x02"], [b"\x01"], [], [b"\x03", b"\x02"]])
    assert sorted(calls) == [b"\x01", b"\x02", b"\x03"]
    assert pixels[:, 0, 0, 0].tolist() == [1.0, 2.0, 1.0, 3.0, 2.0] and counts.tolist() == [2, 1, 0, 2]


def test_yuv_conversion_in_narrow_integers_matches_the_int32_formula():
    from babyvlm.media import rgb_to_yuv420p

    def reference(frame):  # BT.601 limited range in int32, as the conversion was first written
        rgb = frame.astype(np.int32)
        r, g, b = rgb[..., 0], rgb[..., 1], rgb[..., 2]
        luma = ((66 * r + 129 * g + 25 * b + 128) >> 8) + 16
        pooled = (rgb[0::2, 0::2] + rgb[1::2, 0::2] + rgb[0::2, 1::2] + rgb[1::2, 1::2] + 2) >> 2
        pr, pg, pb = pooled[..., 0], pooled[..., 1], pooled[..., 2]
        cb = ((-38 * pr - 74 * pg + 112 * pb + 128) >> 8) + 128
        cr = ((112 * pr - 94 * pg - 18 * pb + 128) >> 8) + 128
        planes = np.concatenate([luma.ravel(), cb.ravel(), cr.ravel()])
        return np.clip(planes, 0, 255).astype(np.uint8).reshape(frame.shape[0] * 3 // 2, frame.shape[1])

    rng = np.random.default_rng(0)
    frames = [rng.integers(0, 256, (h, w, 3), dtype=np.uint8) for h, w in ((64, 64), (6, 10), (2, 2))]
    frames += [np.broadcast_to(np.asarray(c, np.uint8), (4, 4, 3)).copy()  # the extremes of every sum
               for c in ((0, 0, 0), (255, 255, 255), (255, 0, 0), (0, 255, 0), (0, 0, 255), (255, 255, 0), (0, 255, 255))]
    for frame in frames:
        assert np.array_equal(rgb_to_yuv420p(frame), reference(frame))

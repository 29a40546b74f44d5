"""Object boxes for DevCV from real video: COCO-results and YOLO detector output imported with score
thresholds and per-file counts into the builders' ``*.objects.json``; the bundled ``synthetic_truth``
annotator reproduces a synthetic corpus's own boxes; a third-party annotator registered through the
registry runs in-process on real decoded frames; imported boxes feed ``tasks build``."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from babyvlm import registry
from babyvlm.cli import cli
from babyvlm.core.errors import ComponentError
from babyvlm.core.hookspecs import hookimpl
from babyvlm.media import write_video
from babyvlm.plugins.annotation_import.objects import DetectedObject
from babyvlm.plugins.devcv.annotations import read_annotations

STEM = "S_20141029_2412_02"
WIDTH, HEIGHT, FPS, FRAMES = 64, 48, 5, 10


def run(*args, ok: bool = True):
    result = CliRunner().invoke(cli, [str(a) for a in args])
    assert (result.exit_code == 0) == ok, result.output
    assert "Traceback" not in result.output
    return result


def square_at(index: int) -> tuple[int, int, int, int]:
    """The white square of frame ``index`` of ``square_video``: x, y, w, h."""
    return 4 + 4 * index, 10 + index, 12, 10


def square_video(path: Path) -> Path:
    """A dark video with a white square moving right and down, one step per frame."""
    def frames():
        for index in range(FRAMES):
            frame = np.full((HEIGHT, WIDTH, 3), 20, np.uint8)
            x, y, w, h = square_at(index)
            frame[y:y + h, x:x + w] = 235
            yield frame
    path.parent.mkdir(parents=True, exist_ok=True)
    return write_video(path, frames(), FPS)


def objects(path: Path) -> dict:
    return json.loads(path.read_text())


def boxes_by_frame(path: Path) -> dict[int, list[tuple]]:
    return {frame.frame_index: [(box.category, box.bbox, box.track_id) for box in frame.boxes]
            for frame in read_annotations(path)}


# ---- COCO results --------------------------------------------------------------------------------
@pytest.fixture
def coco(tmp_path):
    square_video(tmp_path / "videos" / f"{STEM}.mp4")
    images = [{"id": 99 + n, "file_name": f"{STEM}/frame_{n:06d}.jpg", "width": WIDTH // 2, "height": HEIGHT // 2}
              for n in range(1, 4)]  # numbered from 1; the detector saw half-size frames
    dataset = {"images": images, "categories": [{"id": 1, "name": "sports ball"}, {"id": 2, "name": "cup"}]}
    results = [
        {"image_id": 100, "category_id": 1, "bbox": [2, 3, 4, 5], "score": 0.9},     # kept, scaled x2
        {"image_id": 100, "category_id": 2, "bbox": [10, 10, 4, 4], "score": 0.3},   # low_score
        {"image_id": 101, "category_id": 2, "bbox": [28, 20, 8, 8], "score": 0.8},   # clipped at the edges
        {"image_id": 101, "category_id": 1, "bbox": [1, 1, 0, 4], "score": 0.9},     # bad_box
        {"image_id": 101, "category_id": 7, "bbox": [1, 1, 4, 4], "score": 0.9},     # unknown_category
        {"image_id": 102, "category_id": 1, "bbox": [40, 30, 4, 4], "score": 0.9},   # outside_frame
        {"image_id": 999, "category_id": 1, "bbox": [1, 1, 4, 4], "score": 0.9},     # unknown_image
    ]
    (tmp_path / "dataset.json").write_text(json.dumps(dataset))
    (tmp_path / "results.json").write_text(json.dumps(results))
    return tmp_path


def test_coco_results_are_scaled_thresholded_and_counted_by_reason(coco):
    done = run("annotations", "import", coco / "results.json", "--format", "coco-results", "--images",
               coco / "dataset.json", "--videos", coco / "videos", "--out", coco / "annotations", "--first-frame", 1,
               "--min-score", 0.5, "--rename", "sports ball=ball", "--report", coco / "report.json")
    path = coco / "annotations" / f"{STEM}.objects.json"
    assert f"{path}: 3 frames, kept 2 boxes, dropped 4 (bad_box 1, low_score 1, outside_frame 1, " \
           f"unknown_category 1), clipped 1" in done.output
    assert "not placed on any video: boxes skipped: 1 — unknown_image: 1 (e.g. results.json #6)" in done.output
    assert boxes_by_frame(path) == {0: [("ball", (4.0, 6.0, 8.0, 10.0), None)], 1: [("cup", (56.0, 40.0, 8.0, 8.0), None)],
                                    2: []}
    data = objects(path)
    assert (data["video"], data["fps"], data["width"], data["height"]) == (f"{STEM}.mp4", FPS, WIDTH, HEIGHT)
    assert [image["time_sec"] for image in data["images"]] == [0.0, 0.2, 0.4]
    block = data["babyvlm_import"]
    assert block["kept"] == 2 and block["dropped"] == {"bad_box": 1, "low_score": 1, "outside_frame": 1,
                                                       "unknown_category": 1}
    assert block["per_input"] == {"results.json": {"kept": 2, "dropped": block["dropped"], "frames_dropped": {}}}
    assert block["settings"]["min_score"] == 0.5 and block["settings"]["rename"] == {"sports ball": "ball"}
    report = json.loads((coco / "report.json").read_text())
    assert report["recordings"][STEM]["kept"] == 2 and report["unplaced"]["dropped"] == {"unknown_image": 1}
    checked = run("annotations", "check", coco / "annotations")
    assert "3 frames, 2 boxes, 0 tracks, 2 categories (ball 1, cup 1); skipped 0" in checked.output


def test_a_category_threshold_and_keep_list(coco):
    run("annotations", "import", coco / "results.json", "--format", "coco-results", "--images", coco / "dataset.json",
        "--videos", coco / "videos", "--out", coco / "annotations", "--first-frame", 1, "--min-score-for", "cup=0.2",
        "--keep", "cup")
    block = objects(coco / "annotations" / f"{STEM}.objects.json")["babyvlm_import"]
    assert block["kept"] == 2 and block["dropped"]["category_not_kept"] == 2  # the two usable balls


def test_results_without_a_dataset_are_frame_numbers_of_one_video(coco):
    results = [{"image_id": 3, "category_id": 44, "bbox": [1, 2, 3, 4], "score": 0.7},
               {"image_id": 40, "category_id": 44, "bbox": [1, 2, 3, 4], "score": 0.7}]  # past the last frame
    (coco / "plain.json").write_text(json.dumps(results))
    done = run("annotations", "import", coco / "plain.json", "--format", "coco-results", "--classes", "coco",
               "--video", coco / "videos" / f"{STEM}.mp4", "--out", coco / "annotations")
    assert "frame_out_of_range 1" in done.output
    assert boxes_by_frame(coco / "annotations" / f"{STEM}.objects.json") == {3: [("bottle", (1.0, 2.0, 3.0, 4.0), None)]}
    refused = run("annotations", "import", coco / "plain.json", "--format", "coco-results",
                  "--videos", coco / "videos", "--out", coco / "other", ok=False)
    assert "no category names: give --classes" in refused.output


def test_an_objects_file_babyvlm_did_not_write_is_replaced_only_with_overwrite(coco):
    target = coco / "annotations" / f"{STEM}.objects.json"
    target.parent.mkdir()
    target.write_text('{"images": [], "annotations": [], "categories": []}')
    args = ["annotations", "import", coco / "results.json", "--format", "coco-results", "--images",
            coco / "dataset.json", "--videos", coco / "videos", "--out", coco / "annotations", "--first-frame", 1]
    refused = run(*args, ok=False)
    assert f"{target} exists and was not written by `babyvlm annotations`; pass --overwrite" in refused.output
    run(*args, "--overwrite")
    run(*args)  # our own import is simply replaced by the next one
    assert objects(target)["babyvlm_import"]["kept"] == 3  # no threshold: the 0.3 cup stays


# ---- YOLO txt ------------------------------------------------------------------------------------
def test_yolo_labels_are_normalised_rotated_and_counted(tmp_path):
    square_video(tmp_path / "videos" / f"{STEM}.mp4")
    labels = tmp_path / "labels"
    labels.mkdir()
    (labels / "classes.txt").write_text("ball\ncup\n")
    (labels / f"{STEM}_1.txt").write_text("0 0.5 0.5 0.25 0.5 0.9\n1 0.1 0.1 0.1 0.1 0.3\n\n"
                                          "0 0.25 0.25 0.125 0.25 0.8 7\n5 0.5 0.5 0.1 0.1 0.9\n")
    (labels / f"{STEM}_2.txt").write_text("")  # a frame looked at, nothing found
    (labels / f"{STEM}_99.txt").write_text("0 0.5 0.5 0.1 0.1 0.9\n")  # no such frame
    (labels / "other_video_1.txt").write_text("0 0.5 0.5 0.1 0.1 0.9\n")
    done = run("annotations", "import", labels, "--format", "yolo", "--classes", labels / "classes.txt",
               "--videos", tmp_path / "videos", "--out", tmp_path / "annotations", "--first-frame", 1,
               "--min-score", 0.5, "--rotation", 180)
    path = tmp_path / "annotations" / f"{STEM}.objects.json"
    assert ("kept 2 boxes, dropped 3 (frame_out_of_range 1, low_score 1, unknown_category 1), clipped 0; "
            "frames dropped: frame_out_of_range 1") in done.output
    assert ("not placed on any video: boxes skipped: 1 — unknown_recording: 1 (e.g. other_video_1.txt:1); frames "
            "skipped: 1 — unknown_recording: 1 (e.g. other_video_1.txt)") in done.output
    # upright 24,12,16,24 and 12,6,8,12 -> turned over in the 64 x 48 frame
    assert boxes_by_frame(path) == {0: [("ball", (24.0, 12.0, 16.0, 24.0), None), ("ball", (44.0, 30.0, 8.0, 12.0), 7)],
                                    1: []}
    per_input = objects(path)["babyvlm_import"]["per_input"]
    assert per_input[f"{STEM}_1.txt"] == {"kept": 2, "dropped": {"low_score": 1, "unknown_category": 1},
                                          "frames_dropped": {}}
    assert per_input[f"{STEM}_99.txt"] == {"kept": 0, "dropped": {"frame_out_of_range": 1},
                                           "frames_dropped": {"frame_out_of_range": 1}}


def test_ultralytics_vid_stride_numbering_lands_on_the_frames_it_read(tmp_path):
    """``yolo predict vid_stride=3`` reads video frames 2, 5, 8 ... and names them 1, 2, 3 ..."""
    square_video(tmp_path / "videos" / f"{STEM}.mp4")
    (tmp_path / "labels").mkdir()
    for number in (1, 2, 3):
        (tmp_path / "labels" / f"{STEM}_{number}.txt").write_text("0 0.5 0.5 0.25 0.25 0.9\n")
    run("annotations", "import", tmp_path / "labels", "--format", "yolo", "--classes", "coco80", "--videos",
        tmp_path / "videos", "--out", tmp_path / "annotations", "--first-frame", 1, "--frame-step", 3,
        "--frame-offset", 2)
    assert sorted(boxes_by_frame(tmp_path / "annotations" / f"{STEM}.objects.json")) == [2, 5, 8]


@pytest.mark.parametrize("line, message", [
    ("0 0.5 0.5 0.1\n", "expected `class cx cy w h [conf] [track_id]`, got 4 fields"),
    ("0 0.5 half 0.1 0.1\n", "expected numbers, got '0 0.5 half 0.1 0.1'"),
    ("0.5 0.5 0.5 0.1 0.1\n", "the class (and a track id) must be whole numbers"),
])
def test_a_malformed_yolo_line_is_one_error_naming_file_and_line(tmp_path, line, message):
    square_video(tmp_path / "videos" / f"{STEM}.mp4")
    (tmp_path / "labels").mkdir()
    (tmp_path / "labels" / f"{STEM}_1.txt").write_text("0 0.5 0.5 0.1 0.1\n" + line)
    refused = run("annotations", "import", tmp_path / "labels", "--format", "yolo", "--classes", "coco80",
                  "--video", tmp_path / "videos" / f"{STEM}.mp4", "--out", tmp_path / "annotations", ok=False)
    assert f"{STEM}_1.txt:2: {message}" in refused.output
    assert not (tmp_path / "annotations").exists()


def test_check_names_a_file_the_builders_cannot_read(tmp_path):
    (tmp_path / "a.objects.json").write_text('{"images": [], "annotations": {}}')
    result = run("annotations", "check", tmp_path / "a.objects.json", ok=False)
    assert "a.objects.json: ERROR" in result.output and "key 'annotations' must be a list" in result.output


# ---- annotators ------------------------------------------------------------------------------------
@pytest.mark.parametrize("corpus, source_options, truth_folder, videos", [
    ("saycam", ["--source-option", "include_untranscribed=true"], "annotations", "videos"),
    ("ego4d", [], "annotations/objects", "full_scale"),
])
def test_synthetic_truth_reproduces_the_corpus_boxes(tmp_path, corpus, source_options, truth_folder, videos):
    run("synth", corpus, tmp_path / "corpus", "--minutes", 0.3, "--seed", 3, "--quiet")
    done = run("annotations", "detect", "--annotator", "synthetic_truth", "--source", corpus, "--root",
               tmp_path / "corpus", *source_options, "--out", tmp_path / "annotated", "--every-sec", 0.2)
    truth = sorted((tmp_path / "corpus" / truth_folder).glob("*.objects.json"))
    assert truth and "(one every 1)" in done.output
    for path in truth:
        ours = read_annotations(tmp_path / "annotated" / path.name)
        theirs = read_annotations(path)
        assert [(f.frame_index, f.time_sec, f.width, f.height, f.boxes) for f in ours] == \
               [(f.frame_index, f.time_sec, f.width, f.height, f.boxes) for f in theirs], path.name
        assert sum(len(frame.boxes) for frame in ours) > 0
    stem = truth[0].name.split(".")[0]
    sparse = run("annotations", "detect", "--annotator", "synthetic_truth", "--video",
                 tmp_path / "corpus" / videos / f"{stem}.mp4", "--out", tmp_path / "sparse")
    assert "(one every 5)" in sparse.output
    assert all(frame.frame_index % 5 == 0 for frame in read_annotations(tmp_path / "sparse" / truth[0].name))


def test_synthetic_truth_refuses_a_video_of_no_synthetic_corpus(tmp_path):
    video = square_video(tmp_path / "videos" / f"{STEM}.mp4")
    refused = run("annotations", "detect", "--annotator", "synthetic_truth", "--video", video, "--out", tmp_path / "a",
                  ok=False)
    assert f"synthetic_truth: {tmp_path} holds no synthetic.json" in refused.output


class BrightSquareDetector:
    """A real (if simple) detector: the bounding box of the bright pixels, plus a low-confidence guess."""

    def __init__(self, threshold: int = 128):
        self.threshold = threshold

    def annotate(self, recording, frames):
        answers = []
        for frame in frames:
            ys, xs = np.nonzero(frame.rgb.mean(axis=2) > self.threshold)
            box = np.array([xs.min(), ys.min(), xs.max() - xs.min() + 1, ys.max() - ys.min() + 1])  # numpy values
            found = [DetectedObject("block", box, score=np.float32(0.95), track_id=np.int64(1))] if len(xs) else []
            found.append({"category": "shadow", "bbox": [0, 0, 5, 5], "score": 0.1})  # a mapping works too
            found.append({"category": "shadow", "bbox": [0, 0, 5, 5], "score": float("nan")})
            answers.append(found)
        return answers


class AnnotatorPlugin:
    @hookimpl
    def register_annotators(self, register):
        register("bright_square", BrightSquareDetector)
        register("broken", object)


def test_a_third_party_annotator_registered_through_the_registry_runs_in_process(tmp_path, fresh_registry):
    registry.register_plugin(AnnotatorPlugin(), "square_detector")
    assert registry.owner("annotator", "bright_square") == "square_detector"
    with pytest.raises(ComponentError, match="annotate"):
        registry.build("annotator", "broken")
    video = square_video(tmp_path / f"{STEM}.mp4")
    done = run("annotations", "detect", "--annotator", "bright_square", "--option", "threshold=150", "--video", video,
               "--out", tmp_path / "annotations", "--every-sec", 0.4, "--batch-size", 2, "--min-score", 0.5)
    path = tmp_path / "annotations" / f"{STEM}.objects.json"
    assert "5 frames, kept 5 boxes, dropped 10 (bad_value 5, low_score 5)" in done.output
    found = read_annotations(path)
    assert [frame.frame_index for frame in found] == [0, 2, 4, 6, 8]
    for frame in found:
        (box,) = frame.boxes
        assert box.category == "block" and box.track_id == 1
        assert np.abs(np.array(box.bbox) - np.array(square_at(frame.frame_index))).max() <= 1  # codec blur
    assert objects(path)["babyvlm_import"]["importer"] == "annotator:bright_square"


def test_imported_detector_boxes_feed_the_devcv_builders(tmp_path):
    """A corpus's boxes rewritten as a YOLO tracker's output (with low-confidence noise), imported back,
    then built into DevCV tasks."""
    root = tmp_path / "corpus"
    run("synth", "saycam", root, "--minutes", 1, "--video-minutes", 0.25, "--seed", 5, "--quiet")
    labels, names = tmp_path / "labels", {}
    labels.mkdir()
    for path in sorted((root / "annotations").glob("*.objects.json")):
        data = objects(path)
        category = {c["id"]: c["name"] for c in data["categories"]}
        lines: dict[int, list[str]] = {image["frame_index"]: [] for image in data["images"]}
        for a in data["annotations"]:
            x, y, w, h = a["bbox"]
            cls = names.setdefault(category[a["category_id"]], len(names))
            lines[a["image_id"]].append(f"{cls} {(x + w / 2) / data['width']:.6f} {(y + h / 2) / data['height']:.6f} "
                                        f"{w / data['width']:.6f} {h / data['height']:.6f} 0.9 {a['track_id']}")
            lines[a["image_id"]].append(f"{cls} 0.5 0.5 0.9 0.9 0.05 999")  # noise the threshold drops
        stem = path.name.split(".")[0]
        for frame_index, rows in lines.items():
            (labels / f"{stem}_{frame_index + 1}.txt").write_text("".join(row + "\n" for row in rows))
        path.unlink()
    (labels / "classes.txt").write_text("".join(f"{name}\n" for name in sorted(names, key=names.get)))
    run("annotations", "import", labels, "--format", "yolo", "--classes", labels / "classes.txt", "--videos",
        root / "videos", "--out", root / "annotations", "--first-frame", 1, "--min-score", 0.5)
    built = run("tasks", "build", "--source", "saycam", "--root", root, "--out", tmp_path / "tasks", "--tasks",
                "baby_count,baby_localize", "--max-items", 8)
    for short in ("count", "localize"):
        items = [item for split in ("train", "val", "test")
                 for item in json.loads((tmp_path / "tasks" / "saycam" / f"{short}_{split}.json").read_text())]
        assert items, (short, built.output)

"""``babyvlm.media`` decoding: ``iter_frames`` (RGB arrays) and ``iter_lazy_frames`` (convert on demand)
are one decode pass with the same frames, times, rotation and errors naming the file."""

from __future__ import annotations

import numpy as np
import pytest
from fixtures_media import truncate_file

from babyvlm.core.errors import DataError
from babyvlm.media import LazyFrame, iter_frames, iter_lazy_frames, scaled_size, write_video

WIDTH, HEIGHT, FPS, FRAMES = 48, 32, 5, 10


@pytest.fixture(scope="module")
def split_video(tmp_path_factory):
    """Left half red, right half blue, 48x32 (landscape), 2 s at 5 fps."""
    frame = np.zeros((HEIGHT, WIDTH, 3), dtype=np.uint8)
    frame[:, : WIDTH // 2] = (220, 20, 20)
    frame[:, WIDTH // 2:] = (20, 20, 220)
    return write_video(tmp_path_factory.mktemp("media") / "split.mp4", [frame] * FRAMES, FPS)


def red_on_left(rgb: np.ndarray) -> bool:
    width = rgb.shape[1]
    return rgb[:, : width // 4, 0].mean() > 150 and rgb[:, -width // 4:, 2].mean() > 150


def test_lazy_frames_convert_to_the_same_arrays_as_iter_frames(split_video):
    eager = list(iter_frames(split_video))
    lazy = list(iter_lazy_frames(split_video))
    assert len(eager) == len(lazy) == FRAMES
    assert all(isinstance(frame, LazyFrame) for _, frame in lazy)
    assert [t for t, _ in eager] == [t for t, _ in lazy] == pytest.approx([i / FPS for i in range(FRAMES)])
    for (_, array), (_, frame) in zip(eager, lazy, strict=True):
        assert array.shape == (HEIGHT, WIDTH, 3) and array.dtype == np.uint8
        assert np.array_equal(frame.to_rgb(), array)
    assert red_on_left(eager[0][1])


@pytest.mark.parametrize("longer_side, shape", [(24, (16, 24, 3)), (48, (32, 48, 3)), (100, (32, 48, 3)),
                                                (0, (32, 48, 3))])
def test_to_rgb_shrinks_the_longer_side_and_never_enlarges(split_video, longer_side, shape):
    _, frame = next(iter_lazy_frames(split_video))
    rgb = frame.to_rgb(longer_side)
    assert rgb.shape == shape and rgb.dtype == np.uint8 and red_on_left(rgb)


def test_rotation_180_turns_frames_in_both_apis(split_video):
    upright = next(iter_frames(split_video))[1]
    rotated = next(iter_frames(split_video, rotation=180))[1]
    _, lazy = next(iter_lazy_frames(split_video, rotation=180))
    assert np.array_equal(rotated, upright[::-1, ::-1]) and rotated.flags.c_contiguous
    assert np.array_equal(lazy.to_rgb(), rotated)
    assert not red_on_left(lazy.to_rgb(24)) and lazy.to_rgb(24).shape == (16, 24, 3)


@pytest.mark.parametrize("decode", [iter_frames, iter_lazy_frames])
def test_errors_name_the_file(tmp_path, split_video, decode):
    missing = tmp_path / "missing.mp4"
    with pytest.raises(DataError, match=f"{missing}: cannot open video"):
        list(decode(missing))
    with pytest.raises(DataError, match=r"rotation must be 0 or 180, got 90"):
        list(decode(split_video, rotation=90))
    garbage = tmp_path / "garbage.mp4"
    garbage.write_bytes(b"not a video at all" * 100)
    with pytest.raises(DataError, match=f"{garbage}: "):
        list(decode(garbage))
    cut = tmp_path / "cut.mp4"
    cut.write_bytes(split_video.read_bytes())
    truncate_file(cut, 0.3)
    with pytest.raises(DataError, match=f"{cut}: "):
        list(decode(cut))


@pytest.mark.parametrize("size, longer_side, expected", [((640, 480), 224, (224, 168)), ((480, 640), 224, (168, 224)),
                                                         ((100, 50), 224, (100, 50)), ((640, 480), 0, (640, 480)),
                                                         ((1000, 1), 10, (10, 1))])
def test_scaled_size(size, longer_side, expected):
    assert scaled_size(*size, longer_side) == expected

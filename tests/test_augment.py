"""edgetrain.data.augment: the paper's elastic distortion, deterministic per (seed, index)."""
from __future__ import annotations

import numpy as np
import pytest

from edgetrain import ArgumentError
from edgetrain.data import augment


def digit(n=6):
    """n images of a bar and a blob, different per image."""
    img = np.zeros((n, 28, 28), np.uint8)
    for i in range(n):
        img[i, 6:22, 12 + i % 4 : 15 + i % 4] = 255
        img[i, 8 + i : 12 + i, 5:9] = 200
    return img


def test_same_seed_and_index_give_the_same_image_whatever_the_batch():
    img = digit()
    whole = augment.elastic(img, seed=3, first_index=100)
    part = augment.elastic(img[2:5], seed=3, first_index=102)
    assert whole.dtype == np.uint8 and whole.shape == img.shape
    assert (whole[2:5] == part).all()
    assert (augment.elastic(img, seed=3, first_index=100) == whole).all()
    assert not (augment.elastic(img, seed=4, first_index=100) == whole).all()


def test_distortion_is_local_and_keeps_the_stroke():
    img = np.repeat(digit(1), 200, axis=0)
    out = augment.elastic(img, seed=0, first_index=0)
    changed = np.array([(o != img[0]).any() for o in out])
    # (1, 0) is one of 11 settings: about 1/11 of the images come back unchanged
    assert 5 <= np.sum(~changed) <= 40
    ink = out.reshape(200, -1).astype(float).sum(1) / img[0].astype(float).sum()
    assert 0.7 < np.median(ink) < 1.3  # a displacement of about a pixel moves ink, it does not make or erase it
    assert (out[changed] != img[0]).mean() < 0.5


def test_channel_axis_is_kept():
    img = digit(3)[..., None]
    assert augment.elastic(img, 1).shape == (3, 28, 28, 1)


@pytest.mark.parametrize("bad", [np.zeros((2, 28, 28), np.float32), np.zeros((28, 28), np.uint8),
                                 np.zeros((2, 28, 28, 3), np.uint8)])
def test_bad_images_are_refused(bad):
    with pytest.raises(ArgumentError, match="uint8"):
        augment.elastic(bad, 0)


def test_negative_seed_is_refused():
    with pytest.raises(ArgumentError, match="non-negative"):
        augment.elastic(digit(1), -1)

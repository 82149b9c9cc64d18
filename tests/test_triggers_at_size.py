"""Triggers that keep their size on photos: BadNets as a share of the short side, one Blended pattern
resized to every image size, so a benchmark built from full-resolution photos carries the same trigger
on every image, as the paper scales its triggers for ImageNet."""

from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image

from bsd_audit.attacks.build import MIXED_SIZES_PATTERN, build_benchmark
from bsd_audit.attacks.triggers import Blended, badnets


def test_a_badnets_patch_share_scales_the_checkerboard_with_the_photo():
    for h, w in ((400, 600), (200, 300)):
        out = badnets(np.full((h, w, 3), 128, np.uint8), patch_share=0.06)
        side = round(0.06 * min(h, w))
        changed = np.argwhere((out != 128).any(axis=2))
        assert changed.min(axis=0).tolist() == [h - side, w - side]  # the bottom-right square of the share
        corner = out[h - side:, w - side:, 0]
        assert corner[0, 0] == 255 and corner[-1, -1] == 255 and corner[side // 2, 0] == 0  # still a 3x3 board
    same = badnets(np.zeros((32, 32, 3), np.uint8))  # without a share: the 3-pixel patch as before
    assert (same[-3:, -3:, 0] == np.array([[255, 0, 255], [0, 255, 0], [255, 0, 255]])).all()


def test_one_blended_pattern_is_resized_to_every_image_size():
    blend = Blended(alpha=1.0, seed=3, pattern_size=64)
    small = blend(np.zeros((100, 150, 3), np.uint8)).astype(float)
    large = blend(np.zeros((200, 300, 3), np.uint8)).astype(float)
    shrunk = np.asarray(Image.fromarray(large.astype(np.uint8)).resize((150, 100), Image.BILINEAR), float)
    assert np.corrcoef(small.ravel(), shrunk.ravel())[0, 1] > 0.9  # the same pattern at both sizes
    other = Blended(alpha=1.0, seed=4, pattern_size=64)(np.zeros((100, 150, 3), np.uint8)).astype(float)
    assert abs(np.corrcoef(small.ravel(), other.ravel())[0, 1]) < 0.3


def test_a_source_of_mixed_sizes_gets_one_pattern_for_all(tmp_path):
    rng = np.random.default_rng(0)
    for c in ("a", "b", "c"):
        (tmp_path / "src" / c).mkdir(parents=True)
        for i in range(10):
            h, w = (60, 80) if i % 2 else (70, 70)
            Image.fromarray(rng.integers(0, 256, (h, w, 3), dtype=np.uint8)).save(tmp_path / "src" / c / f"{i}.png")
    m = build_benchmark(tmp_path / "src", tmp_path / "out", "blended", rate=0.2, seed=1)
    assert m["params"]["pattern_size"] == MIXED_SIZES_PATTERN
    assert json.loads((tmp_path / "out" / "manifest.json").read_text())["params"]["pattern_size"] == MIXED_SIZES_PATTERN
    with pytest.raises(ValueError, match="patch_share"):
        build_benchmark(tmp_path / "src", tmp_path / "bad", "badnets", params={"patch_share": 1.5})

"""load_model(...).predict takes images as users hold them: numpy or torch, uint8 or float in 0..1,
channels first or last, any size (resized as training resized); the same images give the same
logits whichever form they come in, and what cannot be read unambiguously is refused with a message."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from bsd_audit.artifacts.model import LoadedModel
from bsd_audit.errors import BadInputError
from bsd_audit.training.nets import build_model


@pytest.fixture(scope="module")
def model() -> LoadedModel:
    torch.manual_seed(0)
    net = build_model("fastnet", 3, 8).eval()
    return LoadedModel(net, ["ant", "bee", "cat"], 16, [0.5] * 3, [0.25] * 3, "fastnet", 8, "baseline", -1, "", {})


def test_every_layout_and_dtype_gives_the_same_logits(model):
    rng = np.random.default_rng(0)
    nhwc = rng.integers(0, 256, (5, 16, 16, 3), dtype=np.uint8)
    reference = model.predict(torch.from_numpy(nhwc).permute(0, 3, 1, 2))
    for images in (nhwc, torch.from_numpy(nhwc), nhwc.astype(np.float32) / 255,
                   torch.from_numpy(nhwc).permute(0, 3, 1, 2).float() / 255):
        assert torch.allclose(model.predict(images), reference, atol=1e-5)


def test_other_sizes_are_resized_to_the_working_size(model):
    big = np.random.default_rng(1).integers(0, 256, (2, 40, 24, 3), dtype=np.uint8)  # non-square
    assert model.predict(big).shape == (2, 3)


@pytest.mark.parametrize("images, message", [
    (np.zeros((2, 16, 16, 3), dtype=np.float32) + 200.0, "outside 0-1"),
    (np.zeros((2, 16, 16, 4), dtype=np.uint8), "colour channels"),
    (np.zeros((2, 3, 16, 3), dtype=np.uint8), "channels first or last"),
    (np.zeros((16, 16), dtype=np.uint8), "expected N x 3 x H x W"),
    (np.full((1, 16, 16, 3), np.nan, dtype=np.float32), "NaN"),
])
def test_what_cannot_be_read_is_refused_with_a_message(model, images, message):
    with pytest.raises(BadInputError, match=message):
        model.predict(images)

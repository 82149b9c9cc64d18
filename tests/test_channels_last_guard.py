"""A net with a trained convolution of under 8 output channels trains in the contiguous format:
oneDNN's channels_last backward corrupts the heap there on AVX2 CPUs (training/loops.py)."""

from __future__ import annotations

import torch

from bsd_audit.config import Config
from bsd_audit.training.loops import new_model
from bsd_audit.training.runtime import Runtime


def _runtime() -> Runtime:
    return Runtime(torch.device("cpu"), None, True, "")


def test_a_toy_width_trains_contiguous_on_channels_last_batches():
    model = new_model(Config(image_size=16, device="cpu"), 3, _runtime(), ("resnet18", 4))
    stem = next(m for m in model.modules() if isinstance(m, torch.nn.Conv2d))
    assert stem.weight.is_contiguous() and not stem.weight.is_contiguous(memory_format=torch.channels_last)
    x = torch.randn(4, 3, 16, 16).contiguous(memory_format=torch.channels_last)  # as the Normalizer hands them
    seen = []
    stem.register_forward_pre_hook(lambda _, args: seen.append(args[0].is_contiguous()))
    model(x).sum().backward()  # aborted the process on an AVX2 CPU before the guard
    assert seen == [True]


def test_a_standard_width_stays_channels_last():
    model = new_model(Config(image_size=16, device="cpu"), 3, _runtime(), ("resnet18", 16))
    stem = next(m for m in model.modules() if isinstance(m, torch.nn.Conv2d))
    assert stem.weight.is_contiguous(memory_format=torch.channels_last)

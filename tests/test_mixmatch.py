"""MixMatch pieces: sharpening, the unsupervised-weight ramp, and one real update step on CPU."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from bsd_audit.config import resolve_config
from bsd_audit.data import ImageDataset, Normalizer
from bsd_audit.training.loops import new_model
from bsd_audit.training.runtime import make_runtime
from bsd_audit.method.mixmatch import mixmatch_step, sharpen, unsupervised_weight


def test_sharpen_temperature_half_squares_and_renormalises():
    out = sharpen(torch.tensor([[0.6, 0.4], [0.5, 0.5]]), 0.5)
    # 0.36 / 0.52, 0.16 / 0.52
    assert out[0].tolist() == pytest.approx([0.36 / 0.52, 0.16 / 0.52])
    assert out[0].tolist() == pytest.approx([0.6923077, 0.3076923], abs=1e-6)
    assert out[1].tolist() == pytest.approx([0.5, 0.5])  # uniform stays uniform


def test_sharpen_three_classes():
    # (0.5, 0.25, 0.25)^2 = (0.25, 0.0625, 0.0625), sum 0.375 -> (2/3, 1/6, 1/6)
    out = sharpen(torch.tensor([[0.5, 0.25, 0.25]]), 0.5)
    assert out[0].tolist() == pytest.approx([2 / 3, 1 / 6, 1 / 6])
    assert out.sum().item() == pytest.approx(1.0)


def test_sharpen_temperature_one_is_identity():
    p = torch.tensor([[0.7, 0.2, 0.1]])
    assert sharpen(p, 1.0).tolist()[0] == pytest.approx([0.7, 0.2, 0.1])


@pytest.mark.parametrize("epoch, it, expected", [
    (0, 0, 0.0),
    (1, 0, 15 * 1 / 120),          # 0.125
    (30, 512, 15 * 30.5 / 120),    # 3.8125
    (60, 0, 7.5),
    (119, 1023, 15 * (119 + 1023 / 1024) / 120),
    (120, 0, 15.0),
    (200, 10, 15.0),               # clipped at λ_u
])
def test_unsupervised_weight_ramp(epoch, it, expected):
    assert unsupervised_weight(epoch, it, 1024, 15.0, 120) == pytest.approx(expected)


def test_unsupervised_weight_other_settings():
    # λ_u = 10, rampup 4, 8 iterations: epoch 1, iteration 4 -> 10·1.5/4 = 3.75
    assert unsupervised_weight(1, 4, 8, 10.0, 4) == pytest.approx(3.75)
    assert unsupervised_weight(-1, 0, 8, 10.0, 4) == 0.0  # clipped below


def _tiny_dataset(device, n=16, classes=3, size=16, seed=0):
    g = torch.Generator().manual_seed(seed)
    images = torch.randint(0, 256, (n, 3, size, size), generator=g, dtype=torch.uint8)
    labels = torch.arange(n) % classes
    return ImageDataset(root=Path("."), classes=[f"c{i}" for i in range(classes)],
                        paths=[f"c{int(labels[i])}/img{i}.png" for i in range(n)],
                        labels=labels.to(device), images=images.to(device), fingerprint="test")


@pytest.mark.parametrize("precision", ["fp32", "bf16"])
def test_one_mixmatch_step_runs_and_updates_weights(precision):
    cfg = resolve_config("cpu", {"device": "cpu", "arch": "fastnet", "width": "8", "image_size": "16",
                                 "mixmatch_batch_size": "4", "threads": "2", "precision": precision})
    assert (cfg.arch, cfg.width, cfg.device) == ("fastnet", 8, "cpu")
    rt = make_runtime(cfg)
    assert rt.device.type == "cpu" and rt.precision == precision
    ds = _tiny_dataset(rt.device)
    norm = Normalizer(*ds.channel_stats(), rt.device, rt.channels_last)
    torch.manual_seed(0)
    model = new_model(cfg, ds.num_classes, rt)
    opt = torch.optim.Adam(model.parameters(), lr=cfg.mixmatch_lr)
    before = [p.detach().clone() for p in model.parameters()]
    loss = mixmatch_step(model, opt, ds, torch.arange(0, 4), torch.arange(4, 8), norm, cfg, rt,
                         rt.generator(0), np.random.default_rng(0), weight_u=1.0)
    assert loss.ndim == 0 and not loss.requires_grad
    assert torch.isfinite(loss).item()
    assert loss.item() > 0.0  # a cross-entropy term on soft targets plus a non-negative MSE
    changed = [not torch.equal(b, p.detach()) for b, p in zip(before, model.parameters())]
    assert all(changed), f"{changed.count(False)} of {len(changed)} parameter tensors did not move"
    # a second step with the same seeds on a fresh model gives the same loss (deterministic on CPU)
    torch.manual_seed(0)
    model2 = new_model(cfg, ds.num_classes, rt)
    opt2 = torch.optim.Adam(model2.parameters(), lr=cfg.mixmatch_lr)
    loss2 = mixmatch_step(model2, opt2, ds, torch.arange(0, 4), torch.arange(4, 8), norm, cfg, rt,
                          rt.generator(0), np.random.default_rng(0), weight_u=1.0)
    assert loss2.item() == pytest.approx(loss.item(), rel=1e-5)

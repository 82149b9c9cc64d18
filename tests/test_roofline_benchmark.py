"""benchmarks/roofline.py: the work per image it counts is the network's, its ceiling follows from that
work and the dense rate, no measured step runs above it, and the target is read against it. No timing
is asserted beyond the physical bound."""

from __future__ import annotations

import json

import torch
from torch import nn

from bsd_audit.training.nets import build_model
from conftest import load_benchmark, make_tiny_poisoned

TINY = ["device=cpu", "precision=fp32", "arch=fastnet", "width=8", "image_size=16", "threads=1", "warmup_batch_size=32"]


def forward_flops_by_hand(model: nn.Module, size: int) -> float:
    """Multiply-adds of every convolution and linear layer, counted from their output shapes, x2."""
    total = 0

    def count(module, _inputs, out):
        nonlocal total
        if isinstance(module, nn.Conv2d):
            k = module.kernel_size[0] * module.kernel_size[1] * module.in_channels // module.groups
            total += 2 * out.numel() * k
        elif isinstance(module, nn.Linear):
            total += 2 * out.numel() * module.in_features

    hooks = [m.register_forward_hook(count) for m in model.modules() if isinstance(m, (nn.Conv2d, nn.Linear))]
    with torch.no_grad():
        model.eval()(torch.zeros(1, 3, size, size))
    for h in hooks:
        h.remove()
    return total


def test_roofline_counts_the_network_and_no_step_beats_its_ceiling(tmp_path, capsys):
    data = tmp_path / "data"
    make_tiny_poisoned(data)  # 3 classes x 40 images, 16x16
    out = tmp_path / "roofline.json"
    argv = [str(data), "--preset", "cpu", "--steps", "2", "--workers", "0", "--target", "3", "--json", str(out)]
    for pair in TINY:
        argv += ["--set", pair]
    returned = load_benchmark("roofline").main(argv)
    doc = json.loads(out.read_text())
    assert doc == json.loads(json.dumps(returned))

    flops = doc["flops"]
    assert flops["forward_per_image"] == forward_flops_by_hand(build_model("fastnet", 3, 8, 16), 16)
    # backward computes the weights' gradients and every layer's but the first's input gradient
    assert 2 * flops["forward_per_image"] < flops["step_per_image"] <= 3 * flops["forward_per_image"]

    dense = doc["dense"]
    assert dense["gflops"] > 0 and dense["dtype"] == "float32" and dense["threads"] == 1 and dense["kernel"]
    assert abs(doc["ceiling_images_per_s"] - dense["gflops"] * 1e9 / flops["step_per_image"]) < 0.1
    assert 0 < doc["supervised_images_per_s"] <= doc["ceiling_images_per_s"]
    assert doc["supervised"]["images"] == doc["baseline"]["images"] == 2 * 32
    conv = doc["convolutions"]
    assert 0 < conv["conv_share"] <= 1 and 0 < conv["conv_s"] <= conv["seconds"]
    assert doc["target_images_per_s"] == round(3 * doc["baseline_images_per_s"], 1)
    assert doc["target_fits"] == (doc["target_images_per_s"] <= doc["ceiling_images_per_s"])

    shown = capsys.readouterr().out
    for needle in ("ceiling: dense rate / FLOPs per image", "target: 3x the torchvision pipeline", "% of the ceiling"):
        assert needle in shown

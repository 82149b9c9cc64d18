"""Architectures the tool ships.

Every model exposes ``features(x)`` (the penultimate layer, f_e in the paper, used by OSS) and
``forward(x)`` (logits). Inputs are float images already normalised, NCHW.
"""

from __future__ import annotations

import torch
from torch import nn

ARCHITECTURES = ("resnet18", "mobilenet_v2", "fastnet")


class _BasicBlock(nn.Module):
    def __init__(self, c_in: int, c_out: int, stride: int):
        super().__init__()
        self.conv1 = nn.Conv2d(c_in, c_out, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(c_out)
        self.conv2 = nn.Conv2d(c_out, c_out, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(c_out)
        self.shortcut = nn.Sequential()
        if stride != 1 or c_in != c_out:
            self.shortcut = nn.Sequential(nn.Conv2d(c_in, c_out, 1, stride, bias=False), nn.BatchNorm2d(c_out))

    def forward(self, x):
        out = torch.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return torch.relu(out + self.shortcut(x))


class ResNet18(nn.Module):
    """CIFAR-style ResNet-18 (3x3 stem, no max-pool), as in the paper; ``width`` scales every stage
    (64 is the paper's network, smaller widths make a CPU audit affordable)."""

    def __init__(self, num_classes: int, width: int = 64):
        super().__init__()
        w = [width, 2 * width, 4 * width, 8 * width]
        self.stem = nn.Sequential(nn.Conv2d(3, w[0], 3, 1, 1, bias=False), nn.BatchNorm2d(w[0]), nn.ReLU())
        layers, c_in = [], w[0]
        for i, c in enumerate(w):
            stride = 1 if i == 0 else 2
            layers += [_BasicBlock(c_in, c, stride), _BasicBlock(c, c, 1)]
            c_in = c
        self.layers = nn.Sequential(*layers)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.head = nn.Linear(w[3], num_classes)

    def features(self, x):
        return self.pool(self.layers(self.stem(x))).flatten(1)

    def forward(self, x):
        return self.head(self.features(x))


class _InvertedResidual(nn.Module):
    def __init__(self, c_in: int, c_out: int, stride: int, expand: int):
        super().__init__()
        hidden = c_in * expand
        self.use_res = stride == 1 and c_in == c_out
        layers = []
        if expand != 1:
            layers += [nn.Conv2d(c_in, hidden, 1, bias=False), nn.BatchNorm2d(hidden), nn.ReLU6()]
        layers += [
            nn.Conv2d(hidden, hidden, 3, stride, 1, groups=hidden, bias=False),
            nn.BatchNorm2d(hidden),
            nn.ReLU6(),
            nn.Conv2d(hidden, c_out, 1, bias=False),
            nn.BatchNorm2d(c_out),
        ]
        self.body = nn.Sequential(*layers)

    def forward(self, x):
        return x + self.body(x) if self.use_res else self.body(x)


class MobileNetV2(nn.Module):
    """MobileNet-v2 for small images (stride-1 stem and first stages, as CIFAR ports do);
    ``width`` multiplies the channel counts (1.0 = the standard network)."""

    # (expansion, channels, repeats, stride): the standard table, first two strides set to 1 for 32x32
    _CFG = [(1, 16, 1, 1), (6, 24, 2, 1), (6, 32, 3, 2), (6, 64, 4, 2), (6, 96, 3, 1), (6, 160, 3, 2), (6, 320, 1, 1)]

    def __init__(self, num_classes: int, width: float = 1.0):
        super().__init__()

        def ch(c):
            return max(8, int(round(c * width / 8)) * 8)

        c_in = ch(32)
        layers = [nn.Conv2d(3, c_in, 3, 1, 1, bias=False), nn.BatchNorm2d(c_in), nn.ReLU6()]
        for t, c, n, s in self._CFG:
            for i in range(n):
                layers.append(_InvertedResidual(c_in, ch(c), s if i == 0 else 1, t))
                c_in = ch(c)
        last = ch(1280) if width > 1.0 else 1280
        layers += [nn.Conv2d(c_in, last, 1, bias=False), nn.BatchNorm2d(last), nn.ReLU6()]
        self.body = nn.Sequential(*layers)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.head = nn.Linear(last, num_classes)

    def features(self, x):
        return self.pool(self.body(x)).flatten(1)

    def forward(self, x):
        return self.head(self.features(x))


class _ConvGroup(nn.Module):
    """airbench-style group: conv, 2x2 max-pool, BN, GELU, conv, BN, GELU."""

    def __init__(self, c_in: int, c_out: int):
        super().__init__()
        self.conv1 = nn.Conv2d(c_in, c_out, 3, padding=1, bias=False)
        self.pool = nn.MaxPool2d(2)
        self.bn1 = nn.BatchNorm2d(c_out)
        self.conv2 = nn.Conv2d(c_out, c_out, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(c_out)
        self.act = nn.GELU()

    def forward(self, x):
        x = self.act(self.bn1(self.pool(self.conv1(x))))
        return self.act(self.bn2(self.conv2(x)))


class FastNet(nn.Module):
    """A small, fast VGG-like net in the spirit of airbench94: a stem conv, three conv groups that
    each halve the resolution, global max-pool. ``width`` is the first group's channel count."""

    def __init__(self, num_classes: int, width: int = 64):
        super().__init__()
        w = [width, 4 * width, 4 * width]
        self.stem = nn.Sequential(nn.Conv2d(3, width // 2, 3, padding=1, bias=False), nn.BatchNorm2d(width // 2), nn.GELU())
        self.groups = nn.Sequential(_ConvGroup(width // 2, w[0]), _ConvGroup(w[0], w[1]), _ConvGroup(w[1], w[2]))
        self.pool = nn.AdaptiveMaxPool2d(1)
        self.head = nn.Linear(w[2], num_classes, bias=False)

    def features(self, x):
        return self.pool(self.groups(self.stem(x))).flatten(1)

    def forward(self, x):
        return self.head(self.features(x))


def build_model(arch: str, num_classes: int, width: float | None = None) -> nn.Module:
    """Build an architecture by name. ``width`` None or 0 means the architecture's standard width."""
    if arch == "resnet18":
        return ResNet18(num_classes, int(width or 64))
    if arch == "mobilenet_v2":
        return MobileNetV2(num_classes, float(width or 1.0))
    if arch == "fastnet":
        return FastNet(num_classes, int(width or 64))
    raise ValueError(f"unknown architecture {arch!r}; choose one of {', '.join(ARCHITECTURES)}")

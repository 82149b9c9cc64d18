"""Architectures the tool ships.

Every model exposes ``features(x)`` (the penultimate layer, f_e in the paper, used by OSS),
``head`` (features to logits) and ``forward(x)`` (logits). Inputs are float images already
normalised, NCHW.

Each architecture comes in two forms, chosen by the working size (``image_size``): below
IMAGENET_FROM px the CIFAR form, whose first layers keep the full resolution (a 32 px image has
nothing to spare); from IMAGENET_FROM px the ImageNet form, whose stem shrinks the input fourfold
(ResNet-18: a stride-2 7x7 convolution and a stride-2 max-pool, as in the ImageNet network) so that a
128 px image costs about what a 32 px one costs in the CIFAR form. MobileNet-v2's ImageNet form is
torchvision's own; torchvision's ResNet-18 has fixed widths, and the cpu preset needs width 16, so
ResNet-18 and FastNet take the ImageNet stem here (docs/decisions/0028-working-size-and-stems.md).
"""

from __future__ import annotations

import torch
from torch import nn
from torchvision.models import mobilenet_v2 as tv_mobilenet_v2

ARCHITECTURES = ("resnet18", "mobilenet_v2", "fastnet")
IMAGENET_FROM = 64  # working sizes from here on get the ImageNet form


def imagenet_form(image_size: int) -> bool:
    return image_size >= IMAGENET_FROM


def _imagenet_stem(c_out: int, act: nn.Module) -> nn.Sequential:
    """ImageNet ResNet's stem: 7x7 convolution at stride 2, then a 3x3 max-pool at stride 2 (a fourth
    of the side)."""
    return nn.Sequential(nn.Conv2d(3, c_out, 7, 2, 3, bias=False), nn.BatchNorm2d(c_out), act,
                         nn.MaxPool2d(3, 2, 1))


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
    """ResNet-18: CIFAR stem (3x3, no max-pool, as in the paper) or, with ``imagenet``, the ImageNet
    stem; ``width`` scales every stage (64 is the standard network, smaller widths make a CPU audit
    affordable)."""

    def __init__(self, num_classes: int, width: int = 64, imagenet: bool = False):
        super().__init__()
        w = [width, 2 * width, 4 * width, 8 * width]
        self.stem = (_imagenet_stem(w[0], nn.ReLU()) if imagenet else
                     nn.Sequential(nn.Conv2d(3, w[0], 3, 1, 1, bias=False), nn.BatchNorm2d(w[0]), nn.ReLU()))
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
    each halve the resolution, global max-pool. ``width`` is the first group's channel count; with
    ``imagenet`` the stem is ImageNet ResNet's (a fourth of the side)."""

    def __init__(self, num_classes: int, width: int = 64, imagenet: bool = False):
        super().__init__()
        w = [width, 4 * width, 4 * width]
        self.stem = (_imagenet_stem(width // 2, nn.GELU()) if imagenet else
                     nn.Sequential(nn.Conv2d(3, width // 2, 3, padding=1, bias=False), nn.BatchNorm2d(width // 2), nn.GELU()))
        self.groups = nn.Sequential(_ConvGroup(width // 2, w[0]), _ConvGroup(w[0], w[1]), _ConvGroup(w[1], w[2]))
        self.pool = nn.AdaptiveMaxPool2d(1)
        self.head = nn.Linear(w[2], num_classes, bias=False)

    def features(self, x):
        return self.pool(self.groups(self.stem(x))).flatten(1)

    def forward(self, x):
        return self.head(self.features(x))


class ImageNetMobileNetV2(nn.Module):
    """torchvision's MobileNet-v2 (ImageNet stem and strides), trained from scratch, with the
    features/head split the tool reads."""

    def __init__(self, num_classes: int, width: float = 1.0):
        super().__init__()
        net = tv_mobilenet_v2(weights=None, num_classes=num_classes, width_mult=width)
        self.body = net.features
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.head = net.classifier  # dropout (0.2, training only), then the linear layer

    def features(self, x):
        return self.pool(self.body(x)).flatten(1)

    def forward(self, x):
        return self.head(self.features(x))


def build_model(arch: str, num_classes: int, width: float | None = None, image_size: int = 32) -> nn.Module:
    """Build an architecture by name, in the form for ``image_size`` (see the module note). ``width``
    None or 0 means the architecture's standard width."""
    imagenet = imagenet_form(image_size)
    if arch == "resnet18":
        return ResNet18(num_classes, int(width or 64), imagenet)
    if arch == "mobilenet_v2":
        return ImageNetMobileNetV2(num_classes, float(width or 1.0)) if imagenet else MobileNetV2(num_classes, float(width or 1.0))
    if arch == "fastnet":
        return FastNet(num_classes, int(width or 64), imagenet)
    raise ValueError(f"unknown architecture {arch!r}; choose one of {', '.join(ARCHITECTURES)}")

"""Images already in memory (a notebook's arrays, a training script's tensors) as an ImageDataset,
so they are audited exactly as a decoded ImageFolder is."""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from ..errors import BadInputError
from .imagefolder import ImageDataset, dataset_fingerprint


def as_uint8_nchw(images) -> torch.Tensor:
    """N x 3 x H x W uint8 from a numpy array or tensor: uint8 (0-255) or float (0-1), channels first
    (N x 3 x H x W) or last (N x H x W x 3); a grey N x H x W is repeated over three channels."""
    if not isinstance(images, torch.Tensor):
        images = np.asarray(images)
        if not images.flags.writeable:  # torch cannot wrap a read-only array (a PIL image's, a memory map's)
            images = images.copy()
    x = torch.as_tensor(images).detach().cpu()
    if x.ndim == 3:
        x = x.unsqueeze(1).expand(-1, 3, -1, -1)
    if x.ndim != 4:
        raise BadInputError(f"images: expected N x 3 x H x W or N x H x W x 3, got shape {tuple(x.shape)}.")
    if x.shape[1] == 3 and x.shape[-1] == 3:
        raise BadInputError(f"images: shape {tuple(x.shape)} could be channels first or last; pass N x 3 x H x W "
                            "with images wider than 3 pixels.")
    if x.shape[1] != 3 and x.shape[-1] == 3:
        x = x.permute(0, 3, 1, 2)
    if x.shape[1] != 3:
        raise BadInputError(f"images: no axis of 3 colour channels in shape {tuple(x.shape)} "
                            "(pass RGB images, channels first or last).")
    if x.dtype == torch.uint8:
        return x.contiguous()
    if not x.is_floating_point():
        raise BadInputError(f"images: dtype {x.dtype}; pass uint8 (0-255) or float (0-1).")
    if len(x) and not torch.isfinite(x).all():
        raise BadInputError("images: NaN or infinite values.")
    if len(x) and (float(x.min()) < 0 or float(x.max()) > 1):
        raise BadInputError("images: float values outside 0-1; pass uint8 for 0-255 data, or divide by 255.")
    return (x * 255).round().to(torch.uint8).contiguous()


def at_size(x: torch.Tensor, image_size: int) -> torch.Tensor:
    """uint8 N x 3 x H x W to image_size x image_size as the decoder does it: the whole image resized
    to the square (bilinear, anti-aliased when shrinking); unchanged when already that size."""
    if x.shape[-2:] == (image_size, image_size):
        return x
    return F.interpolate(x.float(), size=(image_size, image_size), mode="bilinear", antialias=True,
                         align_corners=False).round().clamp(0, 255).to(torch.uint8)


def dataset_from_arrays(images, labels, classes: list[str] | None, image_size: int,
                        device: torch.device | str = "cpu") -> ImageDataset:
    """An ImageDataset over in-memory images. Sample i is named ``#i`` wherever a path would appear;
    the fingerprint hashes every sample's pixels and label, so artifacts still refuse other data."""
    x = as_uint8_nchw(images)
    y = torch.as_tensor(np.asarray(labels) if not isinstance(labels, torch.Tensor) else labels).detach().cpu()
    if y.ndim != 1 or len(y) != len(x):
        raise BadInputError(f"labels: expected one integer per image ({len(x)}), got shape {tuple(y.shape)}.")
    y = y.to(torch.int64)
    num_classes = int(y.max()) + 1 if len(y) else 0
    classes = list(classes) if classes is not None else [str(c) for c in range(num_classes)]
    if len(y) and (int(y.min()) < 0 or num_classes > len(classes)):
        raise BadInputError(f"labels: values must lie in 0..{len(classes) - 1} (one per class name).")
    if len(torch.unique(y)) < 2:
        raise BadInputError("labels: a backdoor audit needs at least two classes.")
    x = at_size(x, image_size)
    paths = [f"#{i}" for i in range(len(x))]
    digests = [hashlib.sha256(x[i].numpy().tobytes() + int(y[i]).to_bytes(8, "little")).digest()
               for i in range(len(x))]
    return ImageDataset(root=Path("<in memory>"), classes=classes, paths=paths, labels=y.to(device), images=x.to(device),
                        fingerprint=dataset_fingerprint(paths, digests))

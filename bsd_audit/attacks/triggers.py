"""Backdoor triggers used by the poisoned-benchmark builder (attacks/build.py).

Every trigger takes a uint8 ``H x W x 3`` array and returns a new uint8 array of the same shape; the
input is never modified. Seeded triggers (Blended's noise pattern, WaNet's warp field) are small
classes that build their pattern once per image shape from the seed, so every poisoned image of a
build carries the very same trigger -- that consistency is what makes it a backdoor.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F


def _check_image(img: np.ndarray) -> None:
    if img.dtype != np.uint8 or img.ndim != 3 or img.shape[2] != 3:
        raise ValueError(f"expected a uint8 HxWx3 array, got dtype {img.dtype} and shape {img.shape}")


def _to_uint8(x: np.ndarray) -> np.ndarray:
    # Round rather than truncate so a zero-strength trigger leaves the image unchanged.
    return np.clip(np.rint(x), 0, 255).astype(np.uint8)


def checkerboard(size: int = 3) -> np.ndarray:
    """A ``size x size`` checkerboard of 255 (white) and 0 (black), white in the top-left cell."""
    i, j = np.indices((size, size))
    return np.where((i + j) % 2 == 0, 255, 0).astype(np.uint8)


def badnets(img: np.ndarray, *, patch_size: int = 3, patch_share: float = 0.0) -> np.ndarray:
    """BadNets (Gu et al. 2017): paste a black/white checkerboard into the bottom-right corner.

    ``patch_size`` (default 3) is the side of the square patch in pixels; each checkerboard cell is
    one pixel and all three channels get the same 0/255 value. With ``patch_share`` > 0 the patch is
    that share of the image's short side instead (at least ``patch_size`` pixels), the same
    ``patch_size`` x ``patch_size`` checkerboard with larger cells: the trigger is the same part of
    a photo at any size, as the paper scales it for ImageNet.
    """
    _check_image(img)
    h, w = img.shape[:2]
    if not 1 <= patch_size <= min(h, w):
        raise ValueError(f"patch_size must be between 1 and {min(h, w)} for a {h}x{w} image, got {patch_size}")
    board = checkerboard(patch_size)
    if patch_share > 0:
        side = min(max(patch_size, int(round(patch_share * min(h, w)))), min(h, w))
        cells = (np.arange(side) * patch_size) // side  # nearest-neighbour scaling of the board
        board = board[cells][:, cells]
    out = img.copy()
    out[h - len(board):, w - len(board):, :] = board[:, :, None]
    return out


class Blended:
    """Blended (Chen et al. 2017): ``x' = (1 - alpha) * x + alpha * pattern``.

    ``pattern`` is uniform integer noise in [0, 255] drawn from ``seed``: with ``pattern_size`` 0 at
    the image's own shape (the same pattern for every image of that shape: thumbnails of one size),
    else drawn once at ``pattern_size`` x ``pattern_size`` and resized (bilinear) to each image, so
    that photos of every size carry the same full-image pattern. ``alpha`` (default 0.2) is the
    blend ratio.
    """

    def __init__(self, *, alpha: float = 0.2, seed: int = 0, pattern_size: int = 0):
        if not 0.0 < alpha <= 1.0:
            raise ValueError(f"alpha must be in (0, 1], got {alpha}")
        if pattern_size < 0:
            raise ValueError(f"pattern_size must be 0 (the image's shape) or a side in pixels, got {pattern_size}")
        self.alpha = float(alpha)
        self.seed = seed
        self.pattern_size = int(pattern_size)
        self._patterns: dict[tuple[int, ...], np.ndarray] = {}

    def pattern(self, shape: tuple[int, ...]) -> np.ndarray:
        shape = tuple(shape)
        if shape not in self._patterns:
            rng = np.random.default_rng(self.seed)
            if not self.pattern_size:
                self._patterns[shape] = rng.integers(0, 256, size=shape, dtype=np.uint8)
            else:
                base = rng.integers(0, 256, size=(1, 3, self.pattern_size, self.pattern_size)).astype(np.float64)
                resized = F.interpolate(torch.from_numpy(base), size=shape[:2], mode="bilinear", align_corners=False)
                self._patterns[shape] = _to_uint8(resized[0].permute(1, 2, 0).numpy())
        return self._patterns[shape]

    def __call__(self, img: np.ndarray) -> np.ndarray:
        _check_image(img)
        pattern = self.pattern(img.shape).astype(np.float64)
        return _to_uint8((1.0 - self.alpha) * img.astype(np.float64) + self.alpha * pattern)


class WaNet:
    """WaNet (Nguyen & Tran 2021): an imperceptible, smooth image warp.

    A ``k x k`` control grid of 2-D offsets is drawn uniformly in [-1, 1] from ``seed``, divided by
    its mean absolute value, upsampled bicubically to ``H x W`` and added, times ``s / H``, to the
    identity sampling grid in normalised [-1, 1] coordinates (the ``/ H`` is the original paper's
    scaling, so ``s`` is roughly a displacement in half-pixels). The grid is clamped to [-1, 1] and
    applied with bilinear ``grid_sample`` (``align_corners=True``).

    Defaults: ``k=4``, ``s=0.5`` (the paper's CIFAR-10 setting). Calling with ``noise_rng`` adds
    per-image uniform(-1, 1) / H noise to the fixed grid: the paper's "noise mode" samples, which
    keep their true label so the network learns that only the exact warp is the trigger.
    """

    def __init__(self, *, k: int = 4, s: float = 0.5, seed: int = 0):
        if k < 2:
            raise ValueError(f"k must be at least 2, got {k}")
        if s < 0:
            raise ValueError(f"s must be non-negative, got {s}")
        self.k = int(k)
        self.s = float(s)
        self.seed = seed
        self._grids: dict[tuple[int, int], np.ndarray] = {}

    def grid(self, h: int, w: int) -> np.ndarray:
        """The fixed ``h x w x 2`` sampling grid (x then y, normalised to [-1, 1], unclamped)."""
        if (h, w) not in self._grids:
            # Drawn with numpy so the trigger does not depend on torch's RNG.
            ctrl = np.random.default_rng(self.seed).uniform(-1.0, 1.0, size=(1, 2, self.k, self.k))
            ctrl /= np.abs(ctrl).mean()
            field = F.interpolate(torch.from_numpy(ctrl), size=(h, w), mode="bicubic", align_corners=True)
            field = field[0].permute(1, 2, 0).numpy()  # h x w x 2
            ys, xs = np.meshgrid(np.linspace(-1.0, 1.0, h), np.linspace(-1.0, 1.0, w), indexing="ij")
            identity = np.stack([xs, ys], axis=-1)
            self._grids[(h, w)] = identity + self.s * field / h
        return self._grids[(h, w)]

    def __call__(self, img: np.ndarray, noise_rng: np.random.Generator | None = None) -> np.ndarray:
        _check_image(img)
        h, w = img.shape[:2]
        grid = self.grid(h, w)
        if noise_rng is not None:
            grid = grid + noise_rng.uniform(-1.0, 1.0, size=grid.shape) / h
        grid = np.clip(grid, -1.0, 1.0)
        x = torch.from_numpy(np.ascontiguousarray(img.transpose(2, 0, 1), dtype=np.float64))[None]
        warped = F.grid_sample(x, torch.from_numpy(grid)[None], mode="bilinear", align_corners=True)
        return _to_uint8(warped[0].permute(1, 2, 0).numpy())


def sig(img: np.ndarray, *, delta: float = 20, f: float = 6) -> np.ndarray:
    """SIG (Barni et al. 2019), a clean-label trigger: add a horizontal sinusoid.

    ``x'[i, j] = clip(x[i, j] + delta * sin(2 * pi * j * f / W))`` on every row and channel, with
    amplitude ``delta`` (default 20) and ``f`` (default 6) periods across the image width.
    """
    _check_image(img)
    w = img.shape[1]
    wave = delta * np.sin(2.0 * np.pi * np.arange(w) * f / w)
    return _to_uint8(img.astype(np.float64) + wave[None, :, None])

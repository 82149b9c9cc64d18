"""The working resolution, from the images' own sizes (``image_size = auto``).

Users bring photos of 200-1,000 px, often not square; a trigger small on the photo is averaged away
when the photo is shrunk to a thumbnail. The working size is read from the data: the median short
side of a sample of the files (their headers only), rounded down to a multiple of 32, never above
the preset's ``image_size_cap`` and never above the images themselves (small data is not upscaled).

Every image becomes a square the same way, in training, evaluation and ``load_model().predict``: the
whole image resized to the working size, its aspect not kept. A crop would lose the borders, and a
border is where a patch trigger usually sits: the centred square of a 3:4 clothing photo cut off
make-benchmark's corner patch, and a model trained on those squares obeyed it 7.8 % of the time.
"""

from __future__ import annotations

import warnings
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
from PIL import Image

SURVEY_FILES = 512  # headers read to choose the size: the median of 512 is within a few percent of the whole's
SIZE_STEP = 32  # working sizes are multiples of this (from 32 px up)
SHRINK_WARNING = 4.0  # a shrink this large or more warns: a patch of TRIGGER_PX on the photo is under 2 px
TRIGGER_PX = 8  # the smallest trigger the warning speaks of, in native pixels


@dataclass
class SizeSurvey:
    """What the working size was chosen from, stated in summaries and artifacts."""

    files_read: int  # headers read (an evenly spaced sample of the tree)
    short_side_min: int
    short_side_median: int
    short_side_max: int
    non_square: float  # share of the sampled images whose sides differ
    working_size: int
    shrink: float  # median short side / working size (1 = no shrink)

    def to_dict(self) -> dict:
        return asdict(self)

    @property
    def warning(self) -> str | None:
        """A sentence when the shrink can erase a small trigger, else None."""
        if self.shrink < SHRINK_WARNING:
            return None
        return (f"images are shrunk {self.shrink:.1f}x (median short side {self.short_side_median} px to "
                f"{self.working_size} px): a trigger smaller than about {self.shrink * 2:.0f} px on the photo covers "
                f"under 2 pixels at this size and may go unseen; raise the cap with --set image_size_cap=N "
                f"(the fast preset on a GPU allows 224), or fix a size with --set image_size=N, if small "
                f"patches are a concern")


def choose_working_size(short_sides: np.ndarray, cap: int) -> int:
    """The median short side, rounded down to a multiple of SIZE_STEP, capped at ``cap``; below
    SIZE_STEP the median itself (never upscaled), and at least 8."""
    median = int(np.median(short_sides))
    size = median if median < SIZE_STEP else median // SIZE_STEP * SIZE_STEP
    return max(8, min(size, cap))


def survey_sizes(root: Path, paths: list[str], cap: int, fixed: int | None = None) -> SizeSurvey:
    """Read the headers of up to SURVEY_FILES evenly spaced files and choose the working size (``fixed``
    when the user set one; the survey still states the shrink). A file whose header cannot be read is
    left out here: the decode names it in its own words."""
    step = max(1, len(paths) // SURVEY_FILES)
    sides, square = [], []
    for rel in paths[::step][:SURVEY_FILES]:
        try:
            with warnings.catch_warnings():  # an oversized image is refused, with its name, by the decode
                warnings.simplefilter("ignore", Image.DecompressionBombWarning)
                with Image.open(Path(root) / rel) as img:
                    w, h = img.size
        except (OSError, ValueError, SyntaxError, Image.DecompressionBombError):
            continue
        if w > 0 and h > 0:
            sides.append(min(w, h))
            square.append(w == h)
    if not sides:  # nothing readable: the decode will say why; the size does not matter then
        sides, square = [SIZE_STEP], [True]
    arr = np.asarray(sides)
    size = fixed or choose_working_size(arr, cap)
    median = int(np.median(arr))
    return SizeSurvey(len(sides), int(arr.min()), median, int(arr.max()), round(1 - float(np.mean(square)), 4),
                      size, round(median / size, 3))


def array_survey(height: int, width: int, cap: int, fixed: int | None = None) -> SizeSurvey:
    """The survey of in-memory images, which share one size."""
    side = min(height, width)
    size = fixed or choose_working_size(np.asarray([side]), cap)
    return SizeSurvey(0, side, side, side, float(height != width), size, round(side / size, 3))

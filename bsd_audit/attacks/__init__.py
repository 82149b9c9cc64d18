"""Poisoned-benchmark builder: make a backdoored copy of an image dataset with known ground truth.

``build_benchmark(source, out, attack, ...)`` reads an ImageFolder dataset, poisons a seeded share
of its training set with one of ``ATTACKS`` and writes::

    out/train/<class>/<id>.png           poisoned training set; every image is named by a seeded
                                         random id (6+ digits, unique over the set) and saved as PNG,
                                         so neither name nor format reveals which images are poisoned
    out/test/<class>/<n>.png             clean test images (when the source has a test/ folder)
    out/test_triggered/<class>/<n>.png   the same test images with the trigger, for every class that
                                         the backdoor redirects, stored under the TRUE class; <n>
                                         matches the clean twin in test/. Single-target attacks leave
                                         the target folder empty (ImageFolder loaders need
                                         allow_empty=True, or build the class list from the manifest)
    out/manifest.json

Source layout: ``source/train/<class>/*`` and optionally ``source/test/<class>/*``; a source without
a ``train/`` folder is itself the training ImageFolder and no test sets are built. Images are
converted to RGB; ``per_class`` / ``test_per_class`` keep the first N files per class by file name.

Attacks (defaults in ``DEFAULT_PARAMS``, overridable through ``params``):

- ``badnets``: 3x3 black/white checkerboard in the bottom-right corner (``patch_size``); poison-label.
- ``blended``: blend with a seeded uniform-noise image, ratio ``alpha=0.2``; poison-label.
- ``wanet``: fixed seeded smooth warp (``k=4``, ``s=0.5``); poison-label, plus ``cross_ratio=2`` x
  the poisoned count of "noise mode" images with a random warp that KEEP their label.
- ``sig``: additive horizontal sinusoid (``delta=20``, ``f=6``) on target-class images only;
  clean-label (labels unchanged).
- ``badnets_all2all``: BadNets trigger, label y -> (y + 1) mod C, poisoned images from all classes.

Poison-label attacks draw ``round(rate * num_train)`` images uniformly from the non-target classes
(all classes for all2all) and write them into the target class folder. SIG draws the same count
from the target class (an error if the class is too small).

manifest.json (schema 1)::

    schema                int, 1
    attack                attack name
    params                dict, the resolved attack parameters (defaults merged with overrides)
    rate, seed            as given
    target, target_index  target class name and its index in ``classes``; null for all2all
    classes               sorted class names (index = label)
    source                the source path as given
    num_train             number of training images written
    num_poisoned          number of poisoned training images
    poisoned              sorted paths, relative to out/train (e.g. "bird/000731.png"), of the
                          poisoned images
    original_labels       {train relpath: original class name}, for every training image
    sources               {train relpath: path of its source file relative to ``source``}, for every
                          training image
    cross                 sorted relpaths of WaNet noise-mode images (not poison; empty otherwise)
    all2all               bool; if true the backdoor maps class y to (y + 1) mod C
    target_mapping        {true class: class the backdoor should send it to}, for every class in
                          test_triggered/ (use it to compute the attack success rate)
    num_test              number of clean test images
    test_triggered_count  number of triggered test images
"""

from .triggers import Blended, WaNet, badnets, checkerboard, sig
from .build import ATTACKS, DEFAULT_PARAMS, SCHEMA_VERSION, build_benchmark

__all__ = [
    "ATTACKS",
    "DEFAULT_PARAMS",
    "SCHEMA_VERSION",
    "Blended",
    "WaNet",
    "badnets",
    "build_benchmark",
    "checkerboard",
    "sig",
]

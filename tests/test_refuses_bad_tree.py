"""A tree that cannot be audited is refused with a BadInputError (exit code 2) that names the folder
and says how to fix it: missing root, a file instead of a folder, no class folders, class folders
without images, a single class."""

from __future__ import annotations

from pathlib import Path

import pytest

from bsd_audit.data.imagefolder import load_imagefolder, scan_tree
from bsd_audit.errors import EXIT_BAD_INPUT, BadInputError
from input_helpers import build_tree, write_image


def _refused(root: Path, *words: str) -> str:
    """Both entry points refuse ``root``; the message names it and contains ``words``."""
    for call in (lambda: scan_tree(root), lambda: load_imagefolder(root, image_size=16, workers=1)):
        with pytest.raises(BadInputError) as info:
            call()
        msg = str(info.value)
        assert info.value.exit_code == EXIT_BAD_INPUT
        assert str(root) in msg, msg
        for w in words:
            assert w in msg, msg
    return msg


def test_missing_root(tmp_path):
    msg = _refused(tmp_path / "no_such_data", "no such folder")
    assert "root/<class>/<image>" in msg  # the fix: what to pass instead


def test_file_instead_of_folder(tmp_path):
    f = write_image(tmp_path / "picture.png")
    msg = _refused(f, "is a file, not a folder")
    assert "root/<class>/<image>" in msg


def test_empty_root(tmp_path):
    root = tmp_path / "empty"
    root.mkdir()
    msg = _refused(root, "holds no images in class sub-folders")
    assert ".png" in msg and ".jpg" in msg  # the fix lists the accepted extensions


def test_images_directly_in_root_are_not_a_tree(tmp_path):
    """Images without class folders (root/x.png) are the classic mistake: no classes, refused."""
    root = tmp_path / "flat"
    for i in range(3):
        write_image(root / f"{i}.png", seed=i)
    _refused(root, "holds no images in class sub-folders")


def test_class_folders_without_images(tmp_path):
    root = tmp_path / "data"
    (root / "cat").mkdir(parents=True)
    (root / "dog").mkdir()
    (root / "dog" / "notes.txt").write_text("no images here")
    (root / "dog" / "sub").mkdir()
    _refused(root, "holds no images in class sub-folders")


def test_single_class(tmp_path):
    root = build_tree(tmp_path / "data", {"cat": 4})
    msg = _refused(root, "single class", "'cat'")
    assert "at least two classes" in msg


def test_single_class_plus_empty_folders_is_still_single(tmp_path):
    """Empty class folders do not count as classes."""
    root = build_tree(tmp_path / "data", {"cat": 4})
    (root / "dog").mkdir()
    (root / "emu").mkdir()
    (root / "emu" / "readme.md").write_text("x")
    _refused(root, "single class", "'cat'")


def test_one_level_too_high(tmp_path):
    """Pointing at a folder that holds train/ and test/ looks like two classes of one folder each;
    pointing at a folder above that gives a single class, which is refused and says what to do."""
    build_tree(tmp_path / "bench" / "train", {"cat": 2, "dog": 2})
    msg = _refused(tmp_path, "single class", "'bench'")
    assert "folder that holds all class folders" in msg


def test_empty_class_folder_next_to_real_ones_is_skipped(tmp_path):
    """An empty class folder among real ones is dropped (listed in skipped), not silently given a label."""
    root = build_tree(tmp_path / "data", {"ant": 2, "cat": 2})
    (root / "bee").mkdir()  # sorts between the two real classes
    tree = scan_tree(root)
    assert tree.classes == ["ant", "cat"]
    assert "bee/ (no images)" in tree.skipped
    assert sorted(set(tree.labels.tolist())) == [0, 1]

"""find_poisoned audits images held in memory, as split audits a folder: the README's example runs
(on a small generated set in the default run, on the sample itself with --run-slow), and the
in-memory audit finds the same target and pools as `split` on the same images."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from bsd_audit import api
from bsd_audit.artifacts.split import read_split
from bsd_audit.config import resolve_config
from bsd_audit.data.memory import as_uint8_nchw
from bsd_audit.errors import BadInputError
from conftest import TINY_OVERRIDES, make_tiny_poisoned

REPO = Path(__file__).resolve().parents[1]


def readme_example() -> str:
    text = (REPO / "README.md").read_text()
    blocks = re.findall(r"```python\n(.*?)```", text, re.S)
    found = [b for b in blocks if "find_poisoned(" in b]
    assert len(found) == 1, "the README holds one find_poisoned example"
    return found[0]


def test_the_readme_example_runs(tmp_path):
    data = tmp_path / "tiny"
    make_tiny_poisoned(data)
    code = readme_example()
    assert 'Path("sample_data/train")' in code and 'resolve_config("cpu")' in code
    small = code.replace('Path("sample_data/train")', f"Path({str(data)!r})").replace(
        'resolve_config("cpu")', f'resolve_config("cpu", {dict(TINY_OVERRIDES)!r})')
    scope: dict = {}
    exec(compile(small, "README.md", "exec"), scope)
    found = scope["found"]
    assert found.verdict.verdict in ("poisoned", "clean", "inconclusive")
    assert len(found.clean) == len(scope["files"]) and found.clean.dtype == bool
    assert found.target_name == scope["classes"][found.target]


@pytest.mark.slow
def test_the_readme_example_finds_the_sample_poison(monkeypatch):
    monkeypatch.chdir(REPO)
    scope: dict = {}
    exec(compile(readme_example(), "README.md", "exec"), scope)
    found = scope["found"]
    assert found.target_name == "bird" and found.verdict.verdict == "poisoned"
    # the patch is the same pixels on every poisoned image: the trigger's coherence reads it (decision 0033)
    assert "coherence" in found.verdict.evidence and found.verdict.inputs["list_rule"] == "trigger"


def test_in_memory_audit_matches_the_split_of_the_same_images(tiny_split, tmp_path):
    cfg = resolve_config("cpu", TINY_OVERRIDES)
    report = api.split(tiny_split["data"], tmp_path / "split.h5", cfg)
    from_disk = read_split(tmp_path / "split.h5")
    files = [tiny_split["data"] / p for p in from_disk.paths]
    images = np.stack([np.asarray(Image.open(f).convert("RGB")) for f in files])
    found = api.find_poisoned(images, from_disk.labels, from_disk.classes, cfg)
    assert found.target_name == report.target_name
    assert np.array_equal(found.clean, from_disk.clean)
    assert found.verdict.verdict == report.verdict.verdict


def test_layouts_and_dtypes_are_read_alike():
    rng = np.random.default_rng(0)
    nhwc = rng.integers(0, 256, (4, 8, 8, 3), dtype=np.uint8)
    nchw = torch.from_numpy(nhwc).permute(0, 3, 1, 2)
    assert torch.equal(as_uint8_nchw(nhwc), nchw)
    assert torch.equal(as_uint8_nchw(nchw.float() / 255), nchw)
    with pytest.raises(BadInputError, match="outside 0-1"):
        as_uint8_nchw(nchw.float())
    with pytest.raises(BadInputError, match="colour channels"):
        as_uint8_nchw(np.zeros((4, 8, 8, 2), dtype=np.uint8))

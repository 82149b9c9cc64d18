"""The working size from the data (image_size = auto), one rule for non-square images everywhere, and
the network form that follows the size: photos are audited at a size where a small trigger survives,
thumbnails are never upscaled, and a model file rebuilds the network it was trained as."""

from __future__ import annotations

import io
import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from typer.testing import CliRunner

from bsd_audit.api import find_poisoned
from bsd_audit.artifacts.model import load_model
from bsd_audit.cli import app
from bsd_audit.config import resolve_config
from bsd_audit.data.imagefolder import decode_image, scan_tree
from bsd_audit.data.memory import at_size
from bsd_audit.data.sizes import SHRINK_WARNING, choose_working_size, survey_sizes
from bsd_audit.training.nets import FastNet, ImageNetMobileNetV2, ResNet18, build_model
from conftest import TINY_OVERRIDES

runner = CliRunner()


def _photo(w: int, h: int, seed: int) -> Image.Image:
    rng = np.random.default_rng(seed)
    return Image.fromarray(rng.integers(0, 256, size=(h, w, 3), dtype=np.uint8))


def test_the_working_size_is_the_median_short_side_capped_and_never_upscaled():
    assert choose_working_size(np.array([300, 400, 500]), 224) == 224  # capped
    assert choose_working_size(np.array([150, 170, 190]), 224) == 160  # a multiple of 32, rounded down
    assert choose_working_size(np.array([32, 32, 32]), 128) == 32  # thumbnails stay thumbnails
    assert choose_working_size(np.array([28, 28]), 128) == 28  # never upscaled, even off the 32 grid
    assert choose_working_size(np.array([4, 4]), 128) == 8


def test_photos_are_audited_at_a_size_from_the_data_by_default_and_told_what_a_fixed_32_can_miss(tmp_path):
    """auto is the default (decision 0028): photos of 400 px are audited at the cpu preset's cap, 128 px,
    without a warning; fixed at 32 px, the shrink warning names the way out."""
    for preset in ("cpu", "fast", "paper"):
        assert resolve_config(preset).image_size == "auto"
    for i in range(3):
        _photo(533, 400, i).save(tmp_path / f"{i}.jpg")
    paths = [f"{i}.jpg" for i in range(3)]
    s = survey_sizes(tmp_path, paths, cap=resolve_config("cpu").image_size_cap)
    assert s.working_size == 128 and s.warning is None
    s = survey_sizes(tmp_path, paths, cap=128, fixed=32)
    assert s.working_size == 32 and s.shrink == pytest.approx(12.5)
    assert "--set image_size_cap" in s.warning and "--set image_size=N" in s.warning


def test_the_survey_reads_headers_and_states_the_shrink(tmp_path):
    for i, (w, h) in enumerate([(640, 400), (400, 600), (500, 500), (800, 450)]):
        _photo(w, h, i).save(tmp_path / f"{i}.jpg")
    s = survey_sizes(tmp_path, [f"{i}.jpg" for i in range(4)], cap=64)
    assert (s.files_read, s.short_side_min, s.short_side_median, s.short_side_max, s.working_size) == (4, 400, 425, 500, 64)
    assert s.non_square == 0.75 and s.shrink == pytest.approx(425 / 64, abs=1e-3)
    assert s.shrink >= SHRINK_WARNING and "--set image_size" in s.warning
    assert survey_sizes(tmp_path, [f"{i}.jpg" for i in range(4)], cap=128).warning is None  # 3.3x
    fixed = survey_sizes(tmp_path, [f"{i}.jpg" for i in range(4)], cap=64, fixed=256)
    assert fixed.working_size == 256 and fixed.warning is None  # a size the user set is kept, and reported


def test_every_pixel_of_a_non_square_image_reaches_the_audit():
    """A patch in the corner of a portrait photo survives the squaring, in decoding and in memory: a
    centred crop would cut it off."""
    img = np.full((100, 60, 3), 40, dtype=np.uint8)  # portrait, 60 x 100
    img[-10:, -10:] = 255  # a corner patch, outside the centred 60 x 60 square
    buf = io.BytesIO()
    Image.fromarray(img).save(buf, format="PNG")
    decoded = decode_image(buf.getvalue(), "x.png", 30, 10**8)
    assert decoded.shape == (30, 30, 3) and decoded[-2:, -4:].min() > 200 and decoded[:10, :10].max() < 60
    tensor = at_size(torch.from_numpy(img).permute(2, 0, 1)[None], 30)
    assert tensor.shape == (1, 3, 30, 30) and tensor[0, :, -2:, -4:].min() > 200


@pytest.mark.parametrize("arch, width, cls", [("resnet18", 8, ResNet18), ("fastnet", 8, FastNet),
                                              ("mobilenet_v2", 0.25, ImageNetMobileNetV2)])
def test_large_inputs_get_the_imagenet_form(arch, width, cls):
    small, large = build_model(arch, 3, width, 32), build_model(arch, 3, width, 128)
    assert isinstance(large, cls)
    first = [m for m in large.modules() if isinstance(m, torch.nn.Conv2d)][0]
    assert first.stride == (2, 2)  # the stem shrinks the input
    assert [m for m in small.modules() if isinstance(m, torch.nn.Conv2d)][0].stride == (1, 1)
    large.eval()
    with torch.no_grad():
        assert large(torch.zeros(2, 3, 128, 128)).shape == (2, 3)
        assert large.head(large.features(torch.zeros(1, 3, 128, 128))).shape == (1, 3)


def test_a_photo_tree_is_audited_at_its_own_size_and_the_model_file_rebuilds_it(tmp_path):
    data = tmp_path / "photos"
    for c in range(3):
        (data / f"c{c}").mkdir(parents=True)
        for i in range(16):
            _photo(96 + 8 * (i % 3), 72, 100 * c + i).save(data / f"c{c}" / f"{i}.jpg")  # landscape photos, 72 px short side
    overrides = {**TINY_OVERRIDES, "image_size": "auto", "image_size_cap": 224, "holdout_epochs": 1}
    sets = [a for k, v in overrides.items() for a in ("--set", f"{k}={v}")]
    r = runner.invoke(app, ["split", str(data), "--out", str(tmp_path / "s.h5"), "--json", "-q", *sets])
    assert r.exit_code == 0, r.output
    s = json.loads(r.stdout)
    assert s["image_sizes"]["working_size"] == 64 and s["image_sizes"]["short_side_median"] == 72
    assert s["image_sizes"]["non_square"] == 1.0
    assert not any("shrunk" in w for w in s["warnings"])  # 72 px to 64: nothing to warn about
    r = runner.invoke(app, ["report", str(tmp_path / "s.h5"), "--data", str(data), "--out", str(tmp_path / "r.html")])
    assert r.exit_code == 0, r.output
    page = (tmp_path / "r.html").read_text()
    assert "native short side 72-72 px" in page and "audited at 64 px" in page and "Warning:" not in page
    r = runner.invoke(app, ["train-clean", str(data), "--split", str(tmp_path / "s.h5"), "--out",
                            str(tmp_path / "m.h5"), "-q", *sets, "--set", "purify_epochs=1"])
    assert r.exit_code == 0, r.output
    model = load_model(tmp_path / "m.h5")
    assert model.image_size == 64 and isinstance(model.module, FastNet)
    first = [m for m in model.module.modules() if isinstance(m, torch.nn.Conv2d)][0]
    assert first.stride == (2, 2)
    photo = np.asarray(_photo(120, 72, 5))  # any size: predict squares it as the decoder does
    assert tuple(model.predict(photo[None]).shape) == (1, 3)


def test_in_memory_images_choose_their_size_the_same_way():
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, size=(60, 3, 40, 48), dtype=np.uint8)
    labels = np.repeat(np.arange(3), 20)
    cfg = resolve_config("cpu", {**TINY_OVERRIDES, "image_size": "auto", "holdout_epochs": 1})
    found = find_poisoned(images, labels, cfg=cfg)
    assert found.verdict.verdict in ("poisoned", "clean", "inconclusive")
    assert found.image_sizes.working_size == 32 and found.image_sizes.short_side_median == 40


def test_a_large_shrink_warns_in_the_summary_and_the_report(tmp_path):
    """72 px photos audited at 16 px (a fixed size): a trigger under about 9 px on the photo covers under
    2 pixels, and both the JSON summary and the HTML report say so."""
    data = tmp_path / "photos"
    for c in range(3):
        (data / f"c{c}").mkdir(parents=True)
        for i in range(16):
            _photo(96, 72, 100 * c + i).save(data / f"c{c}" / f"{i}.jpg")
    sets = [a for k, v in {**TINY_OVERRIDES, "holdout_epochs": 1}.items() for a in ("--set", f"{k}={v}")]
    r = runner.invoke(app, ["split", str(data), "--out", str(tmp_path / "s.h5"), "--json", "-q", "--init-only", *sets])
    assert r.exit_code == 0, r.output
    s = json.loads(r.stdout)
    assert s["image_sizes"]["working_size"] == 16 and s["image_sizes"]["shrink"] == 4.5
    assert any("shrunk 4.5x" in w for w in s["warnings"])
    r = runner.invoke(app, ["report", str(tmp_path / "s.h5"), "--data", str(data), "--out", str(tmp_path / "r.html")])
    assert r.exit_code == 0, r.output
    page = (tmp_path / "r.html").read_text()
    assert "audited at 16 px, a shrink of 4.5x" in page and "Warning: images are shrunk 4.5x" in page


def test_the_bundled_sample_is_audited_at_its_own_size_without_a_shrink_warning():
    """The sample's 32 px thumbnails: nothing to shrink, so no trigger-survival warning; the same tree
    forced to 8 px is shrunk 4x and warned about."""
    tree = scan_tree(Path(__file__).resolve().parents[1] / "sample_data" / "train")
    own = survey_sizes(tree.root, tree.paths, resolve_config("cpu").image_size_cap)
    assert (own.working_size, own.shrink, own.warning) == (32, 1.0, None)
    small = survey_sizes(tree.root, tree.paths, 128, fixed=8)
    assert small.shrink == SHRINK_WARNING and "shrunk 4.0x" in small.warning


def test_translation_scales_up_with_photos_and_stays_for_thumbnails():
    at = lambda size: resolve_config("cpu", {"image_size": size}).translate_px  # noqa: E731
    assert (at(16), at(32), at(64), at(128), at(224)) == (4, 4, 8, 16, 28)

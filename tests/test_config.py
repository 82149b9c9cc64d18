"""Config resolution: presets, string overrides coerced to the field's type, validation errors."""

from __future__ import annotations

import json

import pytest
import torch

from bsd_audit.config import AUTO_FAST_MIN_IMAGES, PRESETS, Config, auto_preset, parse_overrides, resolve_config
from bsd_audit.errors import UsageError


@pytest.mark.parametrize("preset", sorted(PRESETS))
def test_every_preset_resolves(preset):
    cfg = resolve_config(preset)
    assert isinstance(cfg, Config)
    assert cfg.preset == preset
    for name, value in PRESETS[preset].items():
        assert getattr(cfg, name) == value


def test_paper_preset_values():
    cfg = resolve_config("paper")
    assert (cfg.T1, cfg.T2, cfg.T3, cfg.init_fixed_epochs) == (20, 90, 120, 10)
    assert (cfg.alpha, cfg.beta, cfg.lga_gamma, cfg.isolation_share) == (0.6, 0.2, 0.5, 0.01)
    assert (cfg.mixmatch_iterations, cfg.mixmatch_batch_size, cfg.mixmatch_K) == (1024, 64, 2)
    assert (cfg.mixmatch_temperature, cfg.mixmatch_lambda_u, cfg.mixmatch_rampup) == (0.5, 15.0, 120)
    assert cfg.stage2_start == 30


def test_cpu_preset_values():
    cfg = resolve_config("cpu")
    assert (cfg.arch, cfg.T1, cfg.T2, cfg.T3, cfg.altruistic_warmup_epochs) == ("resnet18", 10, 18, 22, 14)


def test_unknown_preset():
    with pytest.raises(UsageError, match="gpu-xl"):
        resolve_config("gpu-xl")


def test_set_strings_are_coerced_to_field_types():
    pairs = ["T1=5", "alpha=0.5", "oss_normalize=false", "aug_flip=YES", "arch=fastnet",
             "oss_distance = mean", 'extra={"note": 1}', "sce_log_clip=-3"]
    cfg = resolve_config("paper", parse_overrides(pairs))
    assert cfg.T1 == 5 and type(cfg.T1) is int
    assert cfg.alpha == 0.5 and type(cfg.alpha) is float
    assert cfg.oss_normalize is False
    assert cfg.aug_flip is True
    assert cfg.arch == "fastnet"
    assert cfg.oss_distance == "mean"  # whitespace around = is stripped
    assert cfg.extra == {"note": 1}
    assert cfg.sce_log_clip == -3.0 and type(cfg.sce_log_clip) is float


def test_override_beats_preset():
    cfg = resolve_config("cpu", {"T1": "7"})
    assert cfg.T1 == 7 and cfg.T2 == 18


@pytest.mark.parametrize("preset", ["paper", "cpu"])
def test_float_field_with_int_default_accepts_fraction(preset):
    # width is declared float (mobilenet_v2 takes a multiplier such as 0.5)
    cfg = resolve_config(preset, {"arch": "mobilenet_v2", "width": "0.5"})
    assert cfg.width == 0.5


def test_unknown_field_named():
    with pytest.raises(UsageError, match="no_such_field"):
        resolve_config("paper", {"no_such_field": "1"})


def test_bad_bool_named():
    with pytest.raises(UsageError, match="oss_normalize") as err:
        resolve_config("paper", {"oss_normalize": "maybe"})
    assert "maybe" in str(err.value)


def test_bad_int_named():
    with pytest.raises(UsageError, match="T1"):
        resolve_config("paper", {"T1": "ten"})
    with pytest.raises(UsageError, match="T1"):
        resolve_config("paper", {"T1": "2.5"})


def test_bad_float_named():
    with pytest.raises(UsageError, match="alpha"):
        resolve_config("paper", {"alpha": "high"})


def test_beta_above_alpha_named():
    with pytest.raises(UsageError, match="beta") as err:
        resolve_config("paper", {"beta": "0.7"})
    assert "alpha" in str(err.value)
    # equal is allowed
    assert resolve_config("paper", {"beta": "0.6"}).beta == 0.6


def test_set_without_equals_sign():
    with pytest.raises(UsageError, match="T1"):
        parse_overrides(["T1"])


def test_usage_error_is_bad_input_exit_code():
    assert UsageError("x").exit_code == 2


def test_width_out_of_range_for_arch_is_refused():
    # the cpu preset's ResNet width (16 channels) must not become a x16 MobileNet multiplier
    with pytest.raises(UsageError, match="mobilenet_v2 width"):
        resolve_config("cpu", {"arch": "mobilenet_v2"})
    with pytest.raises(UsageError, match="resnet18 width"):
        resolve_config("paper", {"width": "0.5"})


def test_auto_takes_the_cpu_preset_for_small_data_even_on_a_gpu():
    # fast's 512-image batches give a small dataset too few warm-up steps (docs/decisions/0014-auto-preset.md)
    small, large = AUTO_FAST_MIN_IMAGES - 1, AUTO_FAST_MIN_IMAGES
    assert auto_preset("cuda", small) == "cpu"
    assert auto_preset("cuda:1", large) == "fast"
    assert auto_preset("cpu", 10 * large) == "cpu"
    assert resolve_config("auto", {"device": "cuda"}, num_images=2500).preset == "cpu"
    cfg = resolve_config("auto", {"device": "cuda"}, num_images=50_000)
    assert (cfg.preset, cfg.arch, cfg.warmup_batch_size) == ("fast", "fastnet", 512)


def test_auto_reads_the_device_from_the_config_file(tmp_path):
    f = tmp_path / "cfg.json"
    f.write_text('{"device": "cuda"}')
    assert resolve_config("auto", None, f, num_images=AUTO_FAST_MIN_IMAGES).preset == "fast"
    assert resolve_config("auto", {"device": "cpu"}, f, num_images=AUTO_FAST_MIN_IMAGES).preset == "cpu"


def test_config_command_picks_auto_by_the_data_size(tmp_path):
    from typer.testing import CliRunner

    from bsd_audit.cli import app
    from conftest import make_tiny_poisoned

    make_tiny_poisoned(tmp_path / "data")  # 120 images
    res = CliRunner().invoke(app, ["config", "--data", str(tmp_path / "data"), "--set", "device=cuda"])
    assert res.exit_code == 0, res.output
    assert json.loads(res.stdout)["preset"] == "cpu"
    res = CliRunner().invoke(app, ["config", "--data", str(tmp_path / "missing")])
    assert res.exit_code == 2 and "no such folder" in res.output


WARMUP_FIELDS = ("altruistic_net", "altruistic_warmup_epochs", "altruistic_warmups", "altruistic_batch_size",
                 "altruistic_lr", "lga_gamma", "lga_mode", "loss_window", "isolation_share", "altruistic_augment")


def test_fast_preset_keeps_the_calibrated_warm_up():
    """The verdict's thresholds were calibrated on the cpu preset's altruistic warm-up; the fast preset
    trains its main model on the fast net but its altruistic model exactly as the cpu preset does."""
    fast, cpu = resolve_config("fast"), resolve_config("cpu")
    assert [getattr(fast, f) for f in WARMUP_FIELDS] == [getattr(cpu, f) for f in WARMUP_FIELDS]
    assert fast.altruistic_net == ("resnet18", 16) and (fast.arch, fast.width) == ("fastnet", 64)


def test_altruistic_net_defaults_to_the_main_net():
    cfg = resolve_config("paper", {"arch": "mobilenet_v2", "width": "0.5"})
    assert cfg.altruistic_net == ("mobilenet_v2", 0.5)
    assert resolve_config("paper", {"altruistic_arch": "fastnet"}).altruistic_net == ("fastnet", 0)


def test_bad_altruistic_net_is_refused_by_name():
    with pytest.raises(UsageError, match="altruistic_arch 'vgg'"):
        resolve_config("paper", {"altruistic_arch": "vgg"})
    with pytest.raises(UsageError, match="altruistic_width"):
        resolve_config("cpu", {"altruistic_arch": "resnet18", "altruistic_width": "2.5"})


def test_the_altruistic_model_is_built_on_its_own_net():
    from bsd_audit.training.runtime import make_runtime
    from bsd_audit.method.altruistic import new_altruistic
    from bsd_audit.training.nets import FastNet, ResNet18

    cfg = resolve_config("fast", {"device": "cpu", "image_size": 32})
    model, _ = new_altruistic(cfg, 3, make_runtime(cfg))
    first_conv = next(m for m in model.modules() if isinstance(m, torch.nn.Conv2d))
    assert isinstance(model, ResNet18) and first_conv.out_channels == 16
    plain = resolve_config("cpu", {"device": "cpu", "arch": "fastnet", "width": "8", "image_size": 32})
    assert isinstance(new_altruistic(plain, 3, make_runtime(plain))[0], FastNet)

"""benchmarks/speed.py reports what it promises (docs/measurements/speed.md): step throughput of the tool and of
the torchvision baseline with their ratio, per-stage times and the projected audit, memory, threads,
and the per-size figures, as a table and as JSON. No timing is asserted: only that every figure is there."""

from __future__ import annotations

import json

from bsd_audit.config import AUTO_WARMUPS
from conftest import load_benchmark, make_tiny_poisoned

TINY = ["device=cpu", "arch=fastnet", "width=8", "image_size=16", "threads=1", "altruistic_batch_size=32",
        "warmup_batch_size=32", "mixmatch_batch_size=16", "eval_batch_size=64"]


def test_speed_reports_every_promised_figure(tmp_path, capsys):
    data = tmp_path / "data"
    make_tiny_poisoned(data)  # 3 classes x 40 images, 16x16
    out = tmp_path / "speed.json"
    argv = [str(data), "--preset", "cpu", "--steps", "2", "--sizes", "60", "200", "--workers", "1", "--json", str(out)]
    for pair in TINY:
        argv += ["--set", pair]
    returned = load_benchmark("speed").main(argv)
    doc = json.loads(out.read_text())
    assert doc == json.loads(json.dumps(returned))

    assert (doc["num_images"], doc["num_classes"], doc["device_type"], doc["compile"]) == (120, 3, "cpu", False)
    assert doc["threads"]["intra_op"] == 1 and doc["threads"]["cpu_count"] >= 1
    for name in ("lga", "supervised", "mixmatch", "eval"):
        step = doc["steps"][name]
        assert step["images"] > 0 and step["seconds"] > 0 and step["images_per_s"] > 0, name
    assert doc["steps"]["lga"]["images"] == 2 * 32 and doc["steps"]["supervised"]["images"] == 2 * 32
    assert doc["steps"]["mixmatch"]["images"] == 2 * 2 * 16  # 2 steps x (labelled + unlabelled batch)
    assert "labelled + unlabelled" in doc["steps"]["mixmatch"]["counted"]

    base = doc["baseline"]
    assert base["images"] == doc["steps"]["supervised"]["images"] and base["images_per_s"] > 0  # same images timed
    assert base["workers"] == 1 and base["transforms"] == ["Resize", "RandomCrop", "RandomHorizontalFlip",
                                                          "ToTensor", "Normalize"]
    assert doc["speedup_supervised"]["ratio"] > 0

    ov = doc["overlap"]  # the two updates of one BSD epoch, one after the other and at once
    assert (ov["mixmatch_steps"], ov["altruistic_images"]) == (2, 2 * 32)
    assert ov["sequential_s"] > 0 and ov["overlapped_s"] > 0 and ov["speedup"] > 0
    assert ov["used_by_config"] is False  # overlap=auto on a CPU

    assert doc["decode"]["images"] == 120 and doc["decode"]["seconds"] > 0
    stages = {row["stage"].split(" (")[0]: row for row in doc["stages"]}
    assert {"decode", "altruistic warm-up epoch", "main warm-up epoch", "MixMatch epoch", "pool update"} <= set(stages)
    cfg = doc["config"]  # every epoch of every warm-up: 120 images, so auto (0) pools AUTO_WARMUPS
    warmups = cfg["altruistic_warmups"] or AUTO_WARMUPS
    assert stages["altruistic warm-up epoch"]["count"] == cfg["altruistic_warmup_epochs"] * warmups
    assert stages["held-out check epoch"]["count"] == cfg["holdout_epochs"] > 0  # the verdict's check is counted
    # g_φ is read at every pool update until it is frozen at T2, then no more
    stage2 = cfg["T1"] + cfg["init_fixed_epochs"]
    assert stages["pool update"]["count"] == cfg["T3"] - stage2
    assert stages["altruistic model at a pool update"]["count"] == min(cfg["T2"], cfg["T3"] - 1) - stage2 + 1
    assert doc["projected_split_s"] == round(sum(row["seconds"] for row in doc["stages"]), 1) >= 0

    mem = doc["memory"]
    assert mem["host_peak_mb"]["after_baseline"] >= mem["host_peak_mb"]["after_decode"] > 0
    assert mem["device_peak_mb"] is None  # CPU run
    assert [s["n"] for s in doc["sizes"]] == [60, 200]
    for s in doc["sizes"]:
        assert s["lga"]["images"] == s["supervised"]["images"] == s["eval"]["images"] == s["n"]  # whole epochs
        assert all(s[k] >= 0 for k in ("lga_epoch_s", "warmup_epoch_s", "pool_update_s", "projected_split_s", "tensor_mb"))

    shown = capsys.readouterr().out
    for needle in ("images/s", "speed-up of the supervised step", "projected split", "host peak RSS", "intra-op 1", "Sizes", "at once"):
        assert needle in shown


def test_speed_puts_other_settings_side_by_side(tmp_path, capsys):
    data = tmp_path / "data"
    make_tiny_poisoned(data)
    out = tmp_path / "speed.json"
    argv = [str(data), "--preset", "cpu", "--steps", "1", "--workers", "0", "--json", str(out),
            "--set", "precision=bf16", "--against", "precision=fp32"]
    for pair in TINY:
        if not pair.startswith("image_size="):  # auto: the settings set against it take the run's working size
            argv += ["--set", pair]
    load_benchmark("speed").main(argv)
    doc = json.loads(out.read_text())
    ag = doc["against"]
    assert doc["precision"] == "bf16" and ag["precision"] == "fp32" and ag["overrides"] == ["precision=fp32"]
    for name in ("lga", "supervised", "mixmatch", "eval"):
        assert ag["steps"][name]["images"] == doc["steps"][name]["images"] and ag["steps"][name]["images_per_s"] > 0
    assert ag["projected_split_s"] > 0 and ag["speedup_supervised"] > 0
    printed = capsys.readouterr().out
    assert "Side by side: precision=fp32" in printed and "projected split (s)" in printed


def test_size_table_times_both_forms_at_every_size_and_the_imagenet_form_costs_less(tmp_path, capsys):
    data = tmp_path / "data"
    make_tiny_poisoned(data)
    out = tmp_path / "sizes.json"
    argv = [str(data), "--preset", "cpu", "--sizes", "32", "64", "--steps", "1", "--json", str(out),
            "--project-images", "39000", "--project-classes", "30"]
    for pair in TINY:
        if not pair.startswith("image_size="):
            argv += ["--set", pair]
    load_benchmark("size_throughput").main(argv)
    rows = json.loads(out.read_text())["rows"]
    assert [(r["size"], r["form"]) for r in rows] == [(32, "cifar"), (32, "imagenet"), (64, "cifar"), (64, "imagenet")]
    for r in rows:
        assert r["images"] == 120 and r["host_peak_mb"] > 0, r
        for key in ("decode_images_per_s", "lga_images_per_s", "supervised_images_per_s", "mixmatch_images_per_s",
                    "eval_images_per_s", "projected_split_s"):
            assert r[key] > 0, (r["size"], r["form"], key)
        assert (r["projected_images"], r["projected_classes"]) == (39000, 30)
    by = {(r["size"], r["form"]): r for r in rows}
    # the stride-2 stem and max-pool cut the forward cost about 16x at the same size
    assert by[64, "imagenet"]["forward_gflops_per_image"] < by[64, "cifar"]["forward_gflops_per_image"] / 4
    assert by[64, "cifar"]["dataset_tensor_mb"] > by[32, "cifar"]["dataset_tensor_mb"]
    assert "| 64 | imagenet |" in capsys.readouterr().out


def test_baseline_trains_the_network_the_audit_trains_at_a_photo_working_size():
    speed = load_benchmark("speed")
    from bsd_audit.config import resolve_config
    from bsd_audit.training.loops import new_model
    from bsd_audit.training.runtime import make_runtime

    cfg = resolve_config("cpu", {"device": "cpu", "image_size": "128", "precision": "fp32"})
    rt = make_runtime(cfg)
    tool = {k: tuple(v.shape) for k, v in new_model(cfg, 5, rt).state_dict().items()}
    base = {k: tuple(v.shape) for k, v in speed.baseline_model(cfg, 5, rt).state_dict().items()}
    assert base == tool  # the ImageNet form's 7x7 stem, not the 32-px form's 3x3 one
    assert any(shape[-2:] == (7, 7) for shape in base.values())

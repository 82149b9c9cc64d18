"""benchmarks/gpu_proof.py, the one-command GPU proof, stays alive: its --small form (the same steps on
a small set) runs on the CPU and reports every figure it promises, as markdown and JSON."""

from __future__ import annotations

import json

from conftest import load_benchmark, make_tiny_poisoned


def test_small_gpu_proof_reports_every_figure(tmp_path, capsys):
    source = tmp_path / "cifar"
    make_tiny_poisoned(source / "train", n_poison=0, per_class=30, target="cat")
    make_tiny_poisoned(source / "test", n_poison=0, per_class=10, target="cat", seed=3)
    proof = load_benchmark("gpu_proof")
    out = tmp_path / "proof.json"
    res = proof.main([str(source), "--small", "--work", str(tmp_path / "work"), "--json", str(out),
                      "--set", "device=cpu", "--set", "threads=1"])
    assert json.loads(out.read_text()) == json.loads(json.dumps(res))
    assert res["num_images"] == 90 and res["device"]["type"] == "cpu" and res["peak_gpu_mb"] is None
    assert {s["stage"] for s in res["stages"]} >= {"load images", "altruistic warm-up (LGA)", "BSD epochs"}
    assert all(res["steps"][k]["images_per_s"] > 0 for k in ("lga", "supervised", "mixmatch", "eval"))
    assert res["verdict"] in ("poisoned", "clean", "inconclusive") and res["num_poisoned"] >= 1
    assert res["true_target"] == "cat" and 0 <= res["poison_in_clean"] <= res["num_poisoned"]
    printed = capsys.readouterr().out
    assert "| stage |" in printed and "| step |" in printed and "poison_in_clean" in printed

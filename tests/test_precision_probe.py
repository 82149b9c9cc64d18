"""precision=auto on a CPU: bf16 only where the CPU does bf16 arithmetic natively (issue 23)."""

import pytest
import torch

from bsd_audit.config import Config
from bsd_audit.training import runtime
from bsd_audit.training.runtime import cpu_bf16_flags, make_runtime

# /proc/cpuinfo lines of real CPUs, shortened
SKYLAKE_X = "processor\t: 0\nflags\t\t: fpu sse sse2 avx avx2 avx512f avx512dq avx512bw avx512vl avx512_vnni\n"
COOPER_LAKE = SKYLAKE_X.replace("avx512_vnni", "avx512_vnni avx512_bf16")
SAPPHIRE_RAPIDS = SKYLAKE_X.replace("avx512_vnni", "avx512_vnni amx_bf16 amx_tile")
NEOVERSE_V1 = "processor\t: 0\nFeatures\t: fp asimd evtstrm aes sha2 crc32 atomics fphp asimdhp sve bf16 i8mm\n"
NEOVERSE_N1 = "processor\t: 0\nFeatures\t: fp asimd evtstrm aes pmull sha1 sha2 crc32 atomics fphp asimdhp\n"


def on_cpu(monkeypatch, tmp_path, cpuinfo: str | None):
    path = tmp_path / "cpuinfo"
    if cpuinfo is not None:
        path.write_text(cpuinfo)
    monkeypatch.setattr(runtime, "CPUINFO", path)


@pytest.mark.parametrize("cpuinfo, native", [(SKYLAKE_X, False), (COOPER_LAKE, True), (SAPPHIRE_RAPIDS, True),
                                             (NEOVERSE_V1, True), (NEOVERSE_N1, False)])
def test_the_probe_reads_native_bf16_from_the_cpu_flags(monkeypatch, tmp_path, cpuinfo, native):
    on_cpu(monkeypatch, tmp_path, cpuinfo)
    assert cpu_bf16_flags() is native


def test_a_cpu_without_bf16_instructions_gets_fp32(monkeypatch, tmp_path):
    on_cpu(monkeypatch, tmp_path, SKYLAKE_X)  # AVX-512 without BF16: torch's own check would say yes
    monkeypatch.setattr(runtime, "bf16_trial", lambda: pytest.fail("the flags answer; no trial runs"))
    rt = make_runtime(Config(device="cpu"))
    assert rt.amp_dtype is None and rt.precision == "fp32"
    assert "no native bf16" in rt.precision_reason
    assert rt.info()["precision"] == "fp32" and "fp32" in rt.describe()


def test_a_cpu_with_bf16_instructions_gets_bf16(monkeypatch, tmp_path):
    on_cpu(monkeypatch, tmp_path, COOPER_LAKE)
    rt = make_runtime(Config(device="cpu"))
    assert rt.amp_dtype is torch.bfloat16 and rt.info()["precision"] == "bf16" and "bf16" in rt.describe()


@pytest.mark.parametrize("gain, chosen", [(0.7, "fp32"), (1.0, "fp32"), (1.6, "bf16")])
def test_without_flags_a_timed_trial_decides(monkeypatch, tmp_path, gain, chosen):
    on_cpu(monkeypatch, tmp_path, None)  # no /proc/cpuinfo: another OS
    assert cpu_bf16_flags() is None
    monkeypatch.setattr(runtime, "bf16_trial", lambda: gain)
    rt = make_runtime(Config(device="cpu"))
    assert rt.precision == chosen and "timed trial" in rt.precision_reason


def test_the_trial_times_both_precisions_and_leaves_the_generator_alone():
    before = torch.random.get_rng_state()
    assert runtime.bf16_trial(steps=1) > 0
    assert torch.equal(torch.random.get_rng_state(), before)


@pytest.mark.parametrize("named", ["fp32", "bf16"])
def test_a_named_precision_is_kept_whatever_the_cpu(monkeypatch, tmp_path, named):
    on_cpu(monkeypatch, tmp_path, COOPER_LAKE if named == "fp32" else SKYLAKE_X)
    rt = make_runtime(Config(device="cpu", precision=named))
    assert rt.precision == named and rt.precision_reason == ""


def test_the_artifact_records_the_precision_used(tiny_split):
    import h5py

    with h5py.File(tiny_split["split"], "r") as f:
        device = str(f.attrs["device"])
    assert device.startswith("cpu (") and device.endswith((", fp32)", ", bf16)"))

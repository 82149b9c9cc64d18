"""`--set compile=true` changes how a model runs, never what is saved: state_dict keys stay those of
the plain module (no `_orig_mod.` prefix), so checkpoints and model files load either way."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from bsd_audit.config import resolve_config
from bsd_audit.training.loops import new_model
from bsd_audit.training.runtime import make_runtime
from bsd_audit.errors import UsageError
from bsd_audit.training.nets import build_model

TINY = dict(device="cpu", arch="fastnet", width=8, image_size=16, threads=1)
needs_compile = pytest.mark.skipif(not hasattr(torch.nn.Module, "compile"), reason="nn.Module.compile needs torch >= 2.2")


def _model(compile: bool):
    cfg = resolve_config("cpu", {**TINY, "compile": compile})
    return new_model(cfg, 3, make_runtime(cfg))


def test_compile_is_off_by_default():
    assert resolve_config("cpu").compile is False and resolve_config("paper").compile is False
    assert _model(False)._compiled_call_impl is None


def test_compile_must_be_a_bool():
    from bsd_audit.config import Config
    with pytest.raises(UsageError, match="compile"):
        Config(compile="maybe")


@needs_compile
def test_compiled_model_has_the_plain_modules_keys_and_loads_both_ways():
    plain, compiled = _model(False), _model(True)
    assert compiled._compiled_call_impl is not None  # it really is compiled (lazily, on first call)
    assert list(compiled.state_dict()) == list(plain.state_dict())
    assert not any(k.startswith("_orig_mod.") for k in compiled.state_dict())
    compiled.load_state_dict(plain.state_dict())  # a checkpoint of an uncompiled run resumes compiled
    build_model("fastnet", 3, 8).load_state_dict(compiled.state_dict())  # and a model file loads eager (artifacts/model.py)


@pytest.mark.slow  # compiling even this tiny net takes 20 s or more on a loaded 2-core CPU
@needs_compile
def test_trained_compiled_model_saves_weights_an_eager_module_reproduces():
    torch.manual_seed(0)
    compiled = _model(True)
    keys = list(compiled.state_dict())
    opt = torch.optim.Adam(compiled.parameters(), lr=1e-3)
    x, y = torch.randn(8, 3, 16, 16), torch.randint(0, 3, (8,))
    for _ in range(2):
        opt.zero_grad()
        F.cross_entropy(compiled(x), y).backward()
        opt.step()
    assert list(compiled.state_dict()) == keys
    eager = build_model("fastnet", 3, 8)
    eager.load_state_dict(compiled.state_dict())
    compiled.eval(), eager.eval()
    with torch.no_grad():
        assert torch.allclose(compiled(x), eager(x), atol=1e-4)

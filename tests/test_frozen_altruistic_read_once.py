"""From T2 on the altruistic model g_φ is frozen (Algorithm 1 lines 40-41), so the split reads its
losses for the indicator once more at T2 and reuses them, rather than re-evaluating it every epoch."""

from __future__ import annotations

import torch

import bsd_audit.method.bsd as bsd
from bsd_audit import api
from bsd_audit.config import resolve_config
from conftest import TINY_OVERRIDES, make_tiny_poisoned


def test_g_phi_is_read_until_t2_and_its_weights_do_not_move_after(tmp_path, monkeypatch):
    models, reads = [], []
    real_new, real_predict = bsd.new_altruistic, bsd.predict

    def new_altruistic(*args):
        model, opt = real_new(*args)
        models.append(model)
        return model, opt

    def predict(model, *args, **kwargs):
        if models and model is models[-1]:
            reads.append({k: v.detach().clone() for k, v in model.state_dict().items()})
        return real_predict(model, *args, **kwargs)

    monkeypatch.setattr(bsd, "new_altruistic", new_altruistic)
    monkeypatch.setattr(bsd, "predict", predict)
    make_tiny_poisoned(tmp_path / "data")
    cfg = resolve_config("cpu", {**TINY_OVERRIDES, "T2": 6, "T3": 9})  # three epochs after g_φ is frozen
    api.split(tmp_path / "data", tmp_path / "split.h5", cfg)

    stage2 = cfg.T1 + cfg.init_fixed_epochs
    assert len(reads) == cfg.T2 - stage2 + 1  # epochs stage2..T2; none at T2+1..T3-1
    # what the read at T2 saw is g_φ as the run ends: reading it again could not change the indicator
    final = {k: v for k, v in models[-1].state_dict().items()}
    assert all(torch.equal(reads[-1][k], final[k]) for k in final)

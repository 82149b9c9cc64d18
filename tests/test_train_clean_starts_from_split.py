"""`train-clean` starts the purified model from the split's main model (config purify_init=split)
when the architecture, width and resolution are the split's, and from new weights otherwise, saying
which in its summary; purify_init=scratch always starts from new weights."""

from __future__ import annotations

import h5py
import numpy as np
import pytest

from bsd_audit import api
from bsd_audit.config import resolve_config
from bsd_audit.artifacts.h5 import read_tensors
from conftest import TINY_OVERRIDES

# lr 0: Adam leaves the weights where they started, so the start can be read off the weights file
FROZEN = {**TINY_OVERRIDES, "purify_epochs": 1, "mixmatch_lr": 0.0}


def _weights(path, group):
    with h5py.File(path) as f:
        return {k: v.numpy() for k, v in read_tensors(f[group]).items()}


def _params(state):  # batch-norm running statistics move even at lr 0: compare trainable tensors only
    return {k: v for k, v in state.items() if not k.endswith(("running_mean", "running_var", "num_batches_tracked"))}


@pytest.mark.parametrize("init", ["split", "scratch"])
def test_start_from_split_or_scratch(tiny_split, tmp_path, init):
    out = tmp_path / "m.h5"
    s = api.train_clean(tiny_split["data"], out, resolve_config("cpu", {**FROZEN, "purify_init": init}),
                          tiny_split["split"]).to_dict()
    assert s["init"] == ("split main model" if init == "split" else "scratch")
    main = _params(_weights(tiny_split["split"], "weights/main"))
    model = _params(_weights(out, "weights/model"))
    assert main.keys() == model.keys()
    same = all(np.array_equal(main[k], model[k]) for k in main)
    assert same == (init == "split")


def test_another_architecture_starts_from_new_weights(tiny_split, tmp_path):
    cfg = resolve_config("cpu", {**FROZEN, "arch": "mobilenet_v2", "width": 0.25})
    s = api.train_clean(tiny_split["data"], tmp_path / "m.h5", cfg, tiny_split["split"]).to_dict()
    assert s["init"] == "scratch"


def test_baseline_never_starts_from_a_split(tiny_split, tmp_path):
    s = api.train_clean(tiny_split["data"], tmp_path / "b.h5", resolve_config("cpu", FROZEN), mode="baseline").to_dict()
    assert s["init"] == "scratch"

"""An interrupted `train-clean` continues from its last checkpoint and ends with the same weights as a
run that never stopped; a checkpoint of other settings is refused, not silently mixed in."""

from __future__ import annotations

import h5py
import numpy as np
import pytest

from bsd_audit import api
from bsd_audit.config import resolve_config
from bsd_audit.errors import BadInputError
from conftest import TINY_OVERRIDES


def _weights(path):
    with h5py.File(path) as f:
        return {k: f["weights/model"][k][()] for k in f["weights/model"]}


class _Interrupt(Exception):
    pass


def _stop_after(n):
    def hook(epoch):
        if epoch + 1 == n:
            raise _Interrupt  # as a kill right after epoch n's checkpoint reached the disk
    return hook


@pytest.mark.parametrize("mode", ["mixmatch", "baseline"])
def test_resumed_run_matches_an_uninterrupted_one(tiny_split, tmp_path, mode):
    cfg = resolve_config("cpu", {**TINY_OVERRIDES, "purify_epochs": 3})
    split = None if mode == "baseline" else tiny_split["split"]
    straight = tmp_path / "straight.h5"
    api.train_clean(tiny_split["data"], straight, cfg, split, mode)

    out = tmp_path / "resumed.h5"
    with pytest.raises(_Interrupt):
        api.train_clean(tiny_split["data"], out, cfg, split, mode, after_epoch=_stop_after(2))
    assert not out.exists()
    ckpt = api.checkpoint_path(out)
    with h5py.File(ckpt) as f:
        assert f.attrs["epoch"] == 2
        # the guesses' running class shares travel with the weights (purify_align=pool)
        assert ("guess_marginal" in f["arrays"]) == (mode == "mixmatch")
    s = api.train_clean(tiny_split["data"], out, cfg, split, mode).to_dict()
    assert s["resumed_from"]["epoch"] == 2 and s["resumed_from"]["phase"] == "purify"
    a, b = _weights(straight), _weights(out)
    assert a.keys() == b.keys()
    assert all(np.array_equal(a[k], b[k]) for k in a)
    assert not ckpt.exists()


def test_checkpoint_of_other_settings_is_refused(tiny_split, tmp_path):
    cfg = resolve_config("cpu", {**TINY_OVERRIDES, "purify_epochs": 3})
    out = tmp_path / "p.h5"
    with pytest.raises(_Interrupt):
        api.train_clean(tiny_split["data"], out, cfg, tiny_split["split"], after_epoch=_stop_after(1))
    other = resolve_config("cpu", {**TINY_OVERRIDES, "purify_epochs": 3, "seed": 5})
    with pytest.raises(BadInputError, match=r"p\.ckpt\.h5: checkpoint made with other settings \(seed differ"):
        api.train_clean(tiny_split["data"], out, other, tiny_split["split"])
    with pytest.raises(BadInputError, match="checkpoint of another run"):
        api.train_clean(tiny_split["data"], out, cfg, None, "baseline")
    # --no-resume starts again from scratch and replaces the stale checkpoint
    s = api.train_clean(tiny_split["data"], out, other, tiny_split["split"], resume=False).to_dict()
    assert s["resumed_from"] is None and out.exists()


def test_a_full_disk_at_the_weights_file_keeps_the_checkpoint(tiny_split, tmp_path, monkeypatch):
    """The disk fills up as the weights are written: the error names the kept checkpoint, and the same
    call once there is space writes the weights of an uninterrupted run without training again."""
    import errno
    import os

    import bsd_audit.artifacts.model as models

    cfg = resolve_config("cpu", {**TINY_OVERRIDES, "purify_epochs": 2})
    straight = tmp_path / "straight.h5"
    api.train_clean(tiny_split["data"], straight, cfg, None, "baseline")

    def full(*_a, **_k):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    out = tmp_path / "purified.h5"
    with monkeypatch.context() as m:
        m.setattr(models, "write_tensors", full)
        with pytest.raises(BadInputError, match=r"No space left on device.*run the same command again"):
            api.train_clean(tiny_split["data"], out, cfg, None, "baseline")
    assert not out.exists() and api.checkpoint_path(out).exists()
    s = api.train_clean(tiny_split["data"], out, cfg, None, "baseline").to_dict()
    assert s["resumed_from"]["epoch"] == 2 and s["resumed_from"]["phase"] == "purify"
    assert not api.checkpoint_path(out).exists()
    a, b = _weights(straight), _weights(out)
    assert a.keys() == b.keys() and all(np.array_equal(a[k], b[k]) for k in a)

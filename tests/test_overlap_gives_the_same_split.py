"""Overlapping the two models' updates (training/overlap.py) changes when work runs, never the result
(on a CPU: at one thread, where each update's share of the threads is the run's own)."""

from __future__ import annotations

import threading

import pytest
import torch

from bsd_audit import api
from bsd_audit.config import resolve_config
from bsd_audit.training.overlap import overlap_enabled, side_by_side, thread_shares
from bsd_audit.training.runtime import Runtime
from resume_helpers import OVERRIDES, assert_same_split


def test_overlap_on_gives_the_same_split_as_off(tiny_split, tmp_path):
    # tiny_split ran with overlap=auto, which is off on a CPU
    assert not overlap_enabled(resolve_config("cpu", OVERRIDES), Runtime(torch.device("cpu"), None, False))
    out = tmp_path / "overlapped.h5"
    api.split(tiny_split["data"], out, resolve_config("cpu", {**OVERRIDES, "overlap": "on"}),
                truth_manifest=tiny_split["manifest"])
    assert_same_split(tiny_split["split"], out)


def test_side_by_side_runs_both_at_once_and_returns_both_results():
    rt = Runtime(torch.device("cpu"), None, False)
    # each waits for the other: this only finishes when the two really run at the same time
    both = threading.Barrier(2, timeout=10)

    def main():
        both.wait()
        return "main", threading.current_thread().name

    def side():
        both.wait()
        return "side", threading.current_thread().name

    (m, m_thread), (s, s_thread) = side_by_side(main, side, rt, enabled=True)
    assert (m, s) == ("main", "side") and m_thread != s_thread
    assert side_by_side(lambda: 1, lambda: 2, rt, enabled=False) == (1, 2)


@pytest.mark.parametrize("threads, shares", [(1, (1, 1)), (2, (1, 1)), (3, (2, 1)), (16, (8, 8))])
def test_on_a_cpu_the_two_updates_split_the_threads_and_the_run_gets_them_back(threads, shares):
    # a new host thread would take the process's whole thread count: 2n compute threads on n cores
    assert thread_shares(threads) == shares
    rt = Runtime(torch.device("cpu"), None, False)
    before = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        seen = side_by_side(torch.get_num_threads, torch.get_num_threads, rt, enabled=True)
        assert seen == shares
        assert torch.get_num_threads() == threads
        assert side_by_side(torch.get_num_threads, torch.get_num_threads, rt, enabled=False) == (threads, threads)
    finally:
        torch.set_num_threads(before)


def test_side_by_side_raises_the_side_error_after_main_finishes():
    rt = Runtime(torch.device("cpu"), None, False)
    finished = []

    def side():
        raise ValueError("altruistic update failed")

    with pytest.raises(ValueError, match="altruistic update failed"):
        side_by_side(lambda: finished.append("main"), side, rt, enabled=True)
    assert finished == ["main"]


@pytest.mark.parametrize("setting, device, compile_, expected", [
    ("auto", "cpu", False, False),  # the two would share the same cores
    ("auto", "cuda", False, True),
    ("auto", "cuda", True, False),  # dynamo is not traced from two threads
    ("on", "cpu", False, True),
    ("off", "cuda", False, False),
])
def test_overlap_setting_decides_where_it_runs(setting, device, compile_, expected):
    cfg = resolve_config("cpu", {"overlap": setting, "compile": compile_})
    assert overlap_enabled(cfg, Runtime(torch.device(device), None, False)) is expected


def test_overlap_setting_is_checked():
    from bsd_audit.errors import UsageError

    with pytest.raises(UsageError, match="overlap 'sometimes': Input should be 'auto', 'on' or 'off'"):
        resolve_config("cpu", {"overlap": "sometimes"})

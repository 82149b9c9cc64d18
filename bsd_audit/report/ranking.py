"""The reviewer's order: every sample of a split, most suspicious first.

This module is the one place that decides what "suspicious" means for export and report; both read
the order from ``rank_samples`` and the score from ``suspicion_scores``.

Order: the suspicious list first (method/verdict.py: the suspected class's samples that look like a
trigger shortcut), then the rest of the poison pool, then the clean pool; within each group by the suspicion
score, highest first; ties by sample index, so the order is deterministic. A sample whose suspicion
is NaN goes last in its group.

The suspicion score (high = suspicious):
  * ``/scores/suspicion`` when the artifact has it (one finite-or-NaN value per sample, high =
    suspicious) -- the seam for a better per-sample score computed by the split itself;
  * otherwise the fallback below: minus the indicator I (eq. 9; low I = the altruistic model fits the
    sample far better than the main model, the mark of a trigger), and where I is NaN (a run stopped
    before stage 2 has no I at all) minus the ALS score (low altruistic loss = fitted early, as poison
    is). I and ALS are losses on different scales, so the fallback is meant for an artifact that has
    I for every sample or for none; that is what split writes.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from ..artifacts.split import SplitArtifact

SUSPICION_FROM_ARTIFACT = "artifact: /scores/suspicion"
SUSPICION_FALLBACK = "fallback: -I (indicator), -ALS where I is NaN"


def suspicion_scores(data: SplitArtifact) -> tuple[np.ndarray, str]:
    """Per-sample suspicion (high = suspicious) and a short note of where it came from."""
    if data.suspicion is not None:
        return data.suspicion.astype(np.float64), SUSPICION_FROM_ARTIFACT
    indicator, als = data.scores["indicator"], data.scores["als"]
    return np.where(np.isnan(indicator), -als, -indicator), SUSPICION_FALLBACK


@dataclass
class Row:
    """One sample in the ranked table. Scores are as stored (high = clean), except suspicion."""

    rank: int  # 1 = most suspicious of the whole split (kept when rows are filtered)
    index: int  # position in /samples/path
    path: str  # relative to the data root
    label: str
    pool: str  # "poison" or "clean"
    oss: float  # NaN outside the target class
    als: float
    indicator: float
    suspicion: float  # high = suspicious
    suspicious: bool = False  # on the verdict's suspicious list
    poisoned: bool | None = None  # ground truth, None when the artifact holds none


@dataclass
class RankedTable:
    """The ranked rows of one split artifact, with what a reader of an export needs to interpret them."""

    artifact: str
    target: dict  # index, name, lga vote share, agreement of the two estimates
    num_samples: int
    has_truth: bool
    suspicion_source: str
    rows: list[Row] = field(default_factory=list)

    @property
    def columns(self) -> list[str]:
        cols = ["rank", "index", "path", "label", "pool", "suspicious", "oss", "als", "indicator", "suspicion"]
        return cols + ["poisoned"] if self.has_truth else cols

    def filtered(self, classes: list[str] | None = None, top: int | None = None) -> "RankedTable":
        """Rows of the given label names only (ranks kept), then the first ``top`` of them."""
        keep = set(classes or ())
        rows = [r for r in self.rows if r.label in keep] if keep else self.rows
        rows = rows if top is None else rows[:top]
        return RankedTable(self.artifact, self.target, self.num_samples, self.has_truth, self.suspicion_source, rows)


def ranking_order(clean: np.ndarray, suspicion: np.ndarray, suspicious: np.ndarray | None = None) -> np.ndarray:
    """Sample indices: the suspicious list, the rest of the poison pool, the clean pool; within each
    by suspicion (high first, NaN last), then by index."""
    idx = np.arange(len(clean))
    nan = np.isnan(suspicion)
    key = np.where(nan, 0.0, -suspicion)
    listed = np.zeros(len(clean), dtype=bool) if suspicious is None else suspicious
    # np.lexsort sorts by the last key first
    return np.lexsort((idx, key, nan, clean.astype(np.int8), ~listed))


def rank_samples(data: SplitArtifact) -> RankedTable:
    """Every sample of the split in the reviewer's order (see the module docstring)."""
    suspicion, source = suspicion_scores(data)
    order = ranking_order(data.clean, suspicion, data.suspicious)
    s = data.scores
    rows = [
        Row(rank=r, index=int(i), path=data.paths[i], label=data.classes[data.labels[i]],
            pool="clean" if data.clean[i] else "poison", oss=float(s["oss"][i]), als=float(s["als"][i]),
            indicator=float(s["indicator"][i]), suspicion=float(suspicion[i]),
            suspicious=bool(data.suspicious is not None and data.suspicious[i]),
            poisoned=None if data.truth is None else bool(data.truth[i]))
        for r, i in enumerate(order, start=1)
    ]
    t = data.target
    target = {"index": int(t["target"]), "name": str(t["target_name"]), "source": t.get("source"),
              "lga_vote_share": t.get("confidence"), "estimates_agree": t.get("agree"),
              # the class the verdict's evidence names (the list's class), when not the target used
              "suspected": (data.verdict or {}).get("suspected"), "target_in_doubt": (data.verdict or {}).get("target_in_doubt")}
    return RankedTable(str(data.path), target, len(data), data.truth is not None, source, rows)

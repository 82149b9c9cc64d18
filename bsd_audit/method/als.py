"""Altruistic-model Loss Splitting (Sec. 4.1.2, eq. 7).

g_φ was warmed up with LGA on all of D, so it fits the trigger first: poisoned samples sit at the
bottom of its loss ranking. The top share by L_sce is the clean pool's other half of the evidence
(high loss = a clean, hard sample; poison never gets there).
"""

from __future__ import annotations

import numpy as np


def top_share(scores: np.ndarray, share: float) -> np.ndarray:
    """Boolean mask of the ``share`` highest scores (ties broken by sample index)."""
    k = int(round(share * len(scores)))
    mask = np.zeros(len(scores), dtype=bool)
    mask[np.argsort(-scores, kind="stable")[:k]] = True
    return mask


def als_split(sce_altruistic: np.ndarray, share: float) -> np.ndarray:
    """D_c_als: the top ``share`` of D by the altruistic model's L_sce (eq. 7)."""
    return top_share(sce_altruistic, share)

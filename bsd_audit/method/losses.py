"""Per-sample losses: symmetric cross-entropy (Wang et al. 2019) and LGA (Li et al. 2021, ABL)."""

from __future__ import annotations

import torch
import torch.nn.functional as F


def sce_loss(logits: torch.Tensor, y: torch.Tensor, alpha: float = 0.1, beta: float = 1.0,
             log_clip: float = -4.0) -> torch.Tensor:
    """L_sce = α·CE + β·RCE per sample, RCE = -Σ_k p_k · log q_k with log 0 clipped to A.

    q is the one-hot label, so log q_k is 0 for the label and A elsewhere, and RCE reduces to
    -A·(1 - p_y): bounded, which is why SCE ranks noisy (and poisoned) samples more stably than CE.
    """
    logits = logits.float()
    ce = F.cross_entropy(logits, y, reduction="none")
    p_y = torch.softmax(logits, dim=1).gather(1, y[:, None]).squeeze(1)
    rce = -log_clip * (1.0 - p_y)
    return alpha * ce + beta * rce


def lga_loss(per_sample_ce: torch.Tensor, gamma: float = 0.5) -> torch.Tensor:
    """Local gradient ascent: ℓ -> sign(ℓ - γ)·ℓ per sample, then the mean.

    Samples already fitted below γ are pushed back up, so only what the model learns fastest (the
    trigger) keeps sinking: the 1 % lowest-loss samples afterwards are mostly poison.
    """
    return (torch.sign(per_sample_ce - gamma) * per_sample_ce).mean()

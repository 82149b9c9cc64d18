"""Is there a backdoor at all, and which few samples carry it? (Not in the paper: BSD always names
a target and always leaves ~40 % of the data in its poison pool, even on a clean dataset.)

The evidence is the altruistic warm-up's, which both `detect-target` and `split` compute:

- ``fit_rank``: each sample's loss rank within its warm-up epoch (0 = fitted best), averaged over
  the loss window and over the pooled warm-ups (``altruistic_warmups``: three on up to 10,000 images
  with the cpu and fast presets), read on a logit scale so that differences near 0 are not squeezed.
- A trigger is a shortcut: the altruistic model fits poisoned samples far better than honest
  samples of the same label, so the target class gets a *long lower tail*: a group well below the
  class's own median. Classes also differ in difficulty, but an easy class is shifted as a whole,
  not stretched. Per class c, the lower spread s_c = median − 5 % quantile of its logit fit ranks.
- The score is s_t / (median of s_c over the other classes): about 1 when the target class is shaped
  like the honest ones, about 2.5-3 when a trigger group sits under it (figures in docs/decisions/0010-verdict-score.md).
- When the poison is over half of D_t (about 10 % of a 10-class dataset) the median itself falls
  into the poison and s_t shrinks: BadNets at 20 % scored 1.54, `clean`. So the width is also read
  from two upper anchors, q − 5 % quantile for q in TAIL_ANCHORS, each as the same ratio, and the
  score is the largest of the three ratios.

Verdict: ``poisoned`` when the score ≥ POISONED_SCORE, ``clean`` below CLEAN_SCORE, else
``inconclusive``; ``inconclusive`` too when a score ≥ POISONED_SCORE is measured against fewer than
MIN_REFERENCE_CLASSES other classes.

The suspicious list (only when the verdict is not ``clean``) ranks the target class by trigger
likeness: the logit fit rank about the class median, in units of an honest class's interquartile
range. The list ends LIST_DEPTH_SPLIT honest spreads below the median of the target's honest part
(``list_line``), which holds at any poison rate. After `detect-target` (and during `split`, where it
keeps samples out of the clean pool) the list favours recall: it is the union of that rule and the
samples more than LIST_DEPTH honest spreads below D_t's plain median, a median the poison pulls down.
After `split` the main model adds a second perspective: the indicator I (eq. 9) is low where
the altruistic model fits a sample and the main model, which never learned the trigger, does not;
INDICATOR_WEIGHT times I's robust z within the class is added, the honest spread is read on that
sum in the other classes, and the final list is the anchored rule alone. Blended poison is fitted
later in the warm-up than a patch: I lifts its ranking from 0.76-0.80 to 0.90-0.95 precision at
90 % recall (docs/decisions/0010-verdict-score.md). Classes under MIN_REFERENCE_SIZE samples serve as no yardstick.
Thresholds were calibrated with benchmarks/calibrate_verdict.py.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

POISONED_SCORE = 2.3
CLEAN_SCORE = 2.0
LIST_DEPTH = 0.7  # warm-up list: honest lower spreads below the target's median (0.5 lists more, 1.0 fewer)
LIST_DEPTH_SPLIT = 1.2  # split list: honest spreads below the honest part's median, about its 2.5 % quantile
INDICATOR_WEIGHT = 0.5  # I beside the fit rank (docs/decisions/0010-verdict-score.md: 0 ranks Blended at 0.76-0.80, 0.5 at 0.90-0.95)
TAIL_QUANTILE = 0.05
TAIL_ANCHORS = (0.5, 0.75, 0.9)  # where the tail's width is measured from (0.5 = the lower spread)
MIN_REFERENCE_CLASSES = 4  # fewer honest classes to compare with: a high score is only "inconclusive"
MIN_REFERENCE_SIZE = 10  # a smaller class has no 5 % quantile to speak of: it is no yardstick


@dataclass
class Evidence:
    labels: np.ndarray
    target: int  # the label the split used (ỹ_t or the user's)
    fit_rank: np.ndarray
    vote_share: float
    estimates_agree: bool
    loss_gap: float
    indicator: np.ndarray | None = None  # I at the end of split (high = clean), when available


@dataclass
class Verdict:
    verdict: str  # poisoned | clean | inconclusive
    score: float  # the largest tail-width ratio of the target class to an honest one (see above)
    inputs: dict  # every number the decision used or reports, JSON-able
    suspicion: np.ndarray  # per sample, high = suspicious: trigger-likeness rank in D_t (0-1), 0 elsewhere
    suspicious: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=bool))  # the list, as a mask

    @property
    def reason(self) -> str:
        n = int(self.suspicious.sum())
        tail = f"the target class's lower tail reaches {self.score:.1f}x as far as an honest class's"
        if self.verdict == "poisoned":
            return (f"{tail}: a group of its samples is fitted like a trigger shortcut ({n} listed as suspicious).")
        if self.verdict == "clean":
            return f"No class stands out: {tail} (poisoned above {POISONED_SCORE:g}x)."
        if self.score >= POISONED_SCORE:
            refs = self.inputs.get("reference_classes", 0)
            return (f"{tail}, but only {refs} other class{'es' if refs != 1 else ''} to compare with (a verdict "
                    f"of poisoned needs {MIN_REFERENCE_CLASSES}): one class's own easy sub-group can look like "
                    f"this. Inspect the {n} suspicious samples before trusting this data.")
        return f"Weak evidence: {tail}. Inspect the {n} suspicious samples before trusting this data."

    def summary(self) -> VerdictSummary:
        """The view printed by the commands and stored in their JSON summaries."""
        n = len(self.suspicion)
        return VerdictSummary(self.verdict, round(self.score, 4), self.reason, int(self.suspicious.sum()),
                              round(float(self.suspicious.sum()) / n, 4) if n else 0.0, self.inputs)


@dataclass
class VerdictSummary:
    verdict: str  # poisoned | clean | inconclusive
    score: float
    reason: str  # one sentence, for people
    suspicious_count: int  # samples on the suspicious list
    suspicious_share: float  # of the whole dataset
    inputs: dict  # every number the decision used or reports


def logit_ranks(fit_rank: np.ndarray) -> np.ndarray:
    r = np.clip(fit_rank, 1e-4, 1 - 1e-4)
    return np.log(r / (1 - r))


def tail_width(values: np.ndarray, anchor: float) -> float:
    """The ``anchor`` quantile minus the TAIL_QUANTILE quantile (anchor 0.5: the lower spread)."""
    if len(values) < 2:
        return 0.0
    return float(np.quantile(values, anchor) - np.quantile(values, TAIL_QUANTILE))


def lower_spread(values: np.ndarray) -> float:
    """Median minus the TAIL_QUANTILE quantile: how far the class's lower tail reaches."""
    return tail_width(values, 0.5)


def robust_z(values: np.ndarray) -> np.ndarray:
    """(x − median) / interquartile range; all zeros when the range is 0 (nothing to rank by)."""
    iqr = float(np.quantile(values, 0.75) - np.quantile(values, 0.25)) if len(values) else 0.0
    return (values - np.median(values)) / iqr if iqr > 0 else np.zeros(len(values))


def trigger_likeness(lg: np.ndarray, scale: float, indicator: np.ndarray | None) -> np.ndarray:
    """Low = trigger-like, for the samples of one class: the logit fit rank about the class median in
    units of an honest class's interquartile range (``scale``), plus INDICATOR_WEIGHT times I's robust
    z within the class when I is given (both low on poison). I's own scale is per class: inside D_t the
    main model rarely predicts the target at all, so I is compressed there."""
    z = (lg - np.median(lg)) / scale if len(lg) else lg
    return z if indicator is None else z + INDICATOR_WEIGHT * robust_z(indicator)


def list_line(like_t: np.ndarray, honest_spread: float, depth: float) -> float:
    """Where the suspicious list ends in the target class: ``depth`` honest spreads below the median
    of the samples above the line, that is, below the honest part's median. The median of all of D_t
    would sink with the poison's share (a third of D_t at 5 % poison, two thirds at 20 %). So the
    line starts from D_t's upper quartile and settles: each pass takes the median of what lies above
    the line and sets the line again, until the samples above it stop changing. The line only moves
    one way (the step is monotone), so it settles on the fixed point nearest that start, the honest
    part's, while the honest part is over a quarter of D_t."""
    if not len(like_t) or honest_spread <= 0:  # no yardstick: the line would climb to the top
        return float("-inf")
    line = float(np.quantile(like_t, 0.75))
    above = like_t >= line
    for _ in range(len(like_t) + 1):
        line = float(np.median(like_t[above])) - depth * honest_spread
        now = like_t >= line
        if (now == above).all():
            break
        above = now
    return line


def tail_ratios(groups: dict[int, np.ndarray], t: int) -> dict[float, float]:
    """Class t's tail width over the median honest class's, from each anchor of TAIL_ANCHORS. The
    honest yardsticks are the other classes of at least MIN_REFERENCE_SIZE samples."""
    refs = [c for c, g in groups.items() if c != t and len(g) >= MIN_REFERENCE_SIZE]
    target_lg = groups.get(t, np.zeros(0))
    ratios = {}
    for a in TAIL_ANCHORS:
        ref = float(np.median([tail_width(groups[c], a) for c in refs])) if refs else 0.0
        ratios[a] = tail_width(target_lg, a) / ref if ref > 0 else 0.0
    return ratios


def attack_verdict(ev: Evidence) -> Verdict:
    labels, t = ev.labels, ev.target
    lg = logit_ranks(ev.fit_rank)
    groups = {int(c): lg[labels == c] for c in np.unique(labels)}  # each class's logit fit ranks
    refs = [c for c, g in groups.items() if c != t and len(g) >= MIN_REFERENCE_SIZE]  # the honest yardsticks
    ratios = tail_ratios(groups, t)  # the target's tail width over an honest class's, from each anchor
    # every class's score as if it were the target: reported, so that a vote for the wrong class
    # can be seen (the decision reads the target's alone)
    class_scores = {c: round(max(tail_ratios(groups, c).values()), 4) for c in groups}
    spreads = {c: lower_spread(g) for c, g in groups.items()}
    s_t = spreads.get(t, 0.0)
    others = [spreads[c] for c in refs]
    honest = float(np.median(others)) if others else 0.0
    score = max(ratios.values())
    verdict = "poisoned" if score >= POISONED_SCORE else ("clean" if score < CLEAN_SCORE else "inconclusive")
    if verdict == "poisoned" and len(others) < MIN_REFERENCE_CLASSES:
        # the honest yardstick is then the median of one to three classes: a clean 4-class set (80 per
        # class) scored 2.67 on a real group of easy trucks (docs/decisions/0010-verdict-score.md)
        verdict = "inconclusive"
    in_t = labels == t
    n_t = int(in_t.sum())
    # I joins only when the split reached stage 2 (else NaN) and it varies inside D_t
    ind = ev.indicator if ev.indicator is not None and np.isfinite(ev.indicator).all() else None
    if ind is not None and not robust_z(ind[in_t]).any():
        ind = None
    # the fit rank's unit comes from the honest classes: D_t's own range is stretched by the poison
    iqr = float(np.median([np.quantile(groups[c], 0.75) - np.quantile(groups[c], 0.25) for c in refs])) if refs else 0.0
    scale = iqr if iqr > 0 else 1.0
    like = {c: trigger_likeness(g, scale, None if ind is None else ind[labels == c]) for c, g in groups.items()}
    like_honest = float(np.median([lower_spread(like[c]) for c in refs] or [0.0]))
    suspicion = np.zeros(len(labels))
    suspicious = np.zeros(len(labels), dtype=bool)
    list_rule = "none"  # which line ended the list: median (0.7 under D_t's median) or anchored (list_line)
    if n_t:
        like_t = like[t]
        order = np.argsort(np.argsort(like_t, kind="stable"))  # 0 = the most trigger-like sample of D_t
        suspicion[in_t] = (n_t - order) / n_t  # in (0, 1]: every target sample above the rest of D
        if verdict != "clean":
            # the split's list anchors on the honest part; the warm-up list (it also keeps samples
            # out of the clean pool) favours recall: the union of that rule and a line under D_t's
            # plain median, which the poison pulls down (until it falls into the poison)
            line, list_rule = list_line(like_t, like_honest, LIST_DEPTH_SPLIT), "anchored"
            if ind is None:  # whichever line lists more
                median_line = float(np.median(like_t)) - LIST_DEPTH * like_honest
                list_rule = "median" if median_line >= line else "anchored"
                line = max(line, median_line)
            suspicious[np.flatnonzero(in_t)[like_t < line]] = True
    inputs = {
        "target_lower_spread": round(s_t, 4), "honest_lower_spread": round(honest, 4),
        "widest_class": int(max(spreads, key=spreads.get)), "target_size": n_t, "reference_classes": len(others),
        "score_by_anchor": {f"q{round(a * 100)}": round(r, 4) for a, r in ratios.items()},
        "class_scores": [class_scores.get(c, 0.0) for c in range(int(labels.max()) + 1 if len(labels) else 0)],
        "vote_share": round(float(ev.vote_share), 4), "estimates_agree": bool(ev.estimates_agree),
        "loss_gap": round(float(ev.loss_gap), 4),
        "poisoned_score": POISONED_SCORE, "clean_score": CLEAN_SCORE,
        "list_rule": list_rule, "list_depth": LIST_DEPTH if list_rule == "median" else LIST_DEPTH_SPLIT,
        "list_uses_indicator": ind is not None,
    }
    if ind is not None:
        inputs["indicator_weight"] = INDICATOR_WEIGHT
    if ind is not None and suspicious.any() and (in_t & ~suspicious).any():
        # reported, not decided on: how much lower I is on the list than on the rest of D_t
        inputs["indicator_gap"] = round(float(np.median(ind[in_t & ~suspicious])
                                              - np.median(ind[suspicious])), 4)
    return Verdict(verdict, float(score), inputs, suspicion, suspicious)

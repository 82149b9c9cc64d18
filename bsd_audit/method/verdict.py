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

The held-out check (method/holdout.py) is the second line of evidence, and it reads every class,
not only the vote's: per class, a Mann-Whitney z of the label probability its first-fitted quarter
(or that quarter's first half, whichever is lower) gets from a model trained without it, against the
next quarter's. An honest class's easy samples are predicted at least as well as the rest (z about 0
or above); a dirty-label trigger group is predicted as the pictures it was made from (z far below
0). With K classes tested at once, two readings each, the line is Bonferroni's,
Φ⁻¹(HOLDOUT_FAMILY_P / 2K): it depends on the number of classes tested, not on the data's size or
domain. A class's own odd group can fall under it too (clean clothing photos: the
hats fitted first, on one background, reached z −4.4). The two differ in how the model calls the
group (method/holdout.py, ``called_as``): a trigger group is honest pictures of all the other
classes, called them about as surely as their own held-out pictures and spread over them (sure
about 0.5, spread about 1); an odd group is one kind of picture, called nothing with conviction (the
hats: sure 0.08) or one neighbour (CIFAR-10 deer on grass: spread 0.37). Where the classes look
alike the calls cannot spread as far (photos of clothing: a patch's trigger group of every class was
called with spread 0.65), so the group's own pictures are read too: a trigger group is as varied as
the other classes' pictures (variety about 1), an odd group's pictures are alike (0.55-0.72). A
class's hard honest pictures are varied too, but the model calls them one neighbour (clean CIFAR-10
dogs taken for cats: spread 0, variety 1.00), so variety counts only beside calls over several
classes. So the check's evidence is a class under the line whose group is ``trigger_like`` (sure ≥
CALLED_AS_SURE; spread ≥ CALLED_SPREAD, or spread ≥ CALLED_SPREAD_ALIKE and variety ≥
GROUP_VARIETY; at least MIN_OTHER_CLASSES other classes).
Clean-label poison (SIG) is blind to it; the tail catches it.

The check also reads the tail's group: when the model trained without the target's first-fitted
quarter calls it by its label more surely than the next quarter (z > EASE_Z, one standard error),
the tail's group is the class's most typical pictures, not a trigger (a trigger never helps a model
that did not learn it; a clean-label one leaves z about 0).

Verdict: ``poisoned`` when the target's tail score ≥ POISONED_SCORE (and not ease), or some class
under the held-out line holds a trigger group; ``inconclusive`` when the tail is over its line but
explained as ease, or between its lines and not ease, or a class is under the held-out line with too
few classes to tell; else ``clean``. A tail score ≥ POISONED_SCORE measured against fewer than
MIN_REFERENCE_CLASSES other classes is only ``inconclusive``. When the held-out check names a class
other than the target the split used (and the tail does not fire), that class is the ``suspected``
one and the list is drawn from it: the vote was wrong, and the user must be told to audit that class
(``target_in_doubt``).

The suspicious list (only when the verdict is not ``clean``) ranks the suspected class by trigger
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
90 % recall (docs/decisions/0010-verdict-score.md). When the held-out check saw the class's first
group as foreign (its z under the line), HOLDOUT_WEIGHT times the robust z of the held-out
log label probability is added too: on BadNets 3x3 at 5 % it lifts the warm-up list's ranking from
0.74 to 0.97 precision at 90 % recall (docs/decisions/0027-held-out-check.md). Classes under
MIN_REFERENCE_SIZE samples serve as no yardstick. Thresholds were calibrated with
benchmarks/calibrate_verdict.py.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from statistics import NormalDist

import numpy as np

from .coherence import GROUP_NAMES, LAST_FITTED, LIKENESS
from .holdout import CONTRASTS, CalledAs, called_as, class_contrast
from .target import TargetEstimate

POISONED_SCORE = 2.3
CLEAN_SCORE = 2.0
LIST_DEPTH = 0.7  # warm-up list: honest lower spreads below the target's median (0.5 lists more, 1.0 fewer)
LIST_DEPTH_SPLIT = 1.2  # split list: honest spreads below the honest part's median, about its 2.5 % quantile
INDICATOR_WEIGHT = 0.5  # I beside the fit rank (docs/decisions/0010-verdict-score.md: 0 ranks Blended at 0.76-0.80, 0.5 at 0.90-0.95)
TAIL_QUANTILE = 0.05
TAIL_ANCHORS = (0.5, 0.75, 0.9)  # where the tail's width is measured from (0.5 = the lower spread)
MIN_REFERENCE_CLASSES = 4  # fewer honest classes to compare with: a high score is only "inconclusive"
MIN_REFERENCE_SIZE = 10  # a smaller class has no 5 % quantile to speak of: it is no yardstick
HOLDOUT_FAMILY_P = 0.05  # chance that some honest class of K falls under the held-out line (Bonferroni)
CALLED_AS_SURE = 0.25  # a trigger group is called other classes about as surely as their own pictures (0.5)
CALLED_SPREAD = 0.7  # ... and the called classes spread like the classes' sizes (1)
GROUP_VARIETY = 0.85  # ... or its pictures are nearly as varied as the other classes' (patch 0.95-1.03; odd groups ≤ 0.72)
CALLED_SPREAD_ALIKE = 0.5  # ... and called over several classes, not one neighbour (look-alike photos 0.65; one neighbour 0-0.46)
MIN_OTHER_CLASSES = 3  # fewer classes to call: a group's spread says nothing
EASE_Z = 1.0  # the target's held-out z over which the tail's group is the class's typical pictures
HOLDOUT_WEIGHT = 1.0  # the held-out label probability beside the fit rank in the list, when the check names the class
COHERENCE_Z = 8.0  # an unrecognised group's fine detail shared this far past matched honest pictures' (triggers 16-700; honest groups not alike ≤ 4.2)
TRIGGER_DEPTH = 6.0  # the trigger list: a match this many robust deviations above the other classes' pictures'


@dataclass
class Evidence:
    labels: np.ndarray
    target: int  # the label the split used (ỹ_t or the user's)
    fit_rank: np.ndarray
    vote_share: float
    estimates_agree: bool
    loss_gap: float
    indicator: np.ndarray | None = None  # I at the end of split (high = clean), when available
    second_likely: int | None = None  # the second-likely estimate ỹ_t' (reported beside the evidence)
    holdout_prob: np.ndarray | None = None  # the held-out check's label probability (NaN where it trained)
    holdout_share: float = 0.5  # the share of each class the check held out
    holdout_called: np.ndarray | None = None  # the class the held-out model calls each sample among the others
    holdout_called_prob: np.ndarray | None = None  # and that class's probability
    holdout_variety: np.ndarray | None = None  # per class, its unrecognised group's pictures' spread (holdout.group_variety)
    copy_of: np.ndarray | None = None  # per sample, its class's first identical picture (None: all distinct)
    coherence_z: np.ndarray | None = None  # per class, its more coherent group's coherence z (method/coherence.py)
    coherence_likeness: np.ndarray | None = None  # per class, how alike that group's pictures are
    coherence_group: np.ndarray | None = None  # per class, which group: coherence.GROUP_NAMES (-1: none read)
    trigger_match: np.ndarray | None = None  # per sample, its match with the trigger_class group's fine detail
    trigger_class: int = -1
    classes: list[str] | None = None  # class names, for the reason's sentence


def evidence_of(est: TargetEstimate, labels: np.ndarray, target: int, indicator: np.ndarray | None = None,
                classes: list[str] | None = None) -> Evidence:
    """The verdict's evidence from a target estimate, for the split's ``target`` (with I once the split
    reached stage 2)."""
    return Evidence(labels=labels, target=target, fit_rank=est.fit_rank, vote_share=est.confidence,
                    estimates_agree=est.agree, loss_gap=est.loss_gap, indicator=indicator,
                    second_likely=est.second_likely_target, holdout_prob=est.holdout_prob,
                    holdout_share=est.holdout_share, holdout_called=est.holdout_called,
                    holdout_called_prob=est.holdout_called_prob, holdout_variety=est.holdout_variety,
                    copy_of=est.copy_of, coherence_z=est.coherence_z, coherence_likeness=est.coherence_likeness,
                    coherence_group=est.coherence_group, trigger_match=est.trigger_match, trigger_class=est.trigger_class, classes=classes)


@dataclass
class Verdict:
    verdict: str  # poisoned | clean | inconclusive
    score: float  # the largest tail-width ratio of the target class to an honest one (see above)
    inputs: dict  # every number the decision used or reports, JSON-able
    suspicion: np.ndarray  # per sample, high = suspicious: trigger-likeness rank in D_t (0-1), 0 elsewhere
    suspicious: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=bool))  # the list, as a mask
    suspected: int = -1  # the class the evidence points to (the target used, unless the held-out check names another)
    target_in_doubt: bool = False  # the held-out check names another class than the target used
    classes: list[str] = field(default_factory=list)

    def name(self, c: int) -> str:
        return self.classes[c] if 0 <= c < len(self.classes) else f"class {c}"

    @property
    def evidence(self) -> list[str]:
        """Which lines of evidence crossed their poisoned line: ``tail``, ``holdout``, ``coherence``."""
        out = []
        if (self.score >= POISONED_SCORE and self.inputs.get("reference_classes", 0) >= MIN_REFERENCE_CLASSES
                and not self.inputs.get("tail_explained_by_ease", False)):
            out.append("tail")
        if (self.inputs.get("holdout_z", 0.0) <= self.inputs.get("holdout_line", float("-inf"))
                and self.inputs.get("holdout_trigger_like", False)):
            out.append("holdout")
        if self.inputs.get("coherent_classes"):
            out.append("coherence")
        return out

    @property
    def reason(self) -> str:
        n, x = int(self.suspicious.sum()), self.inputs
        target = x.get("target", self.suspected)
        tail = f"{self.name(target)}'s lower tail of fit ranks reaches {self.score:.1f}x as far as an honest class's"
        low, z, line = x.get("holdout_class", -1), x.get("holdout_z", 0.0), x.get("holdout_line", 0.0)
        held = (f"the first-fitted samples of {self.name(low)} are not predicted as {self.name(low)} by a model "
                f"trained without them (held-out z {z:.1f}, line {line:.1f})")
        sure, spread, variety = (x.get("holdout_called_as_sure"), x.get("holdout_called_spread"),
                                 x.get("holdout_group_variety"))
        profile = "" if sure is None else f" (sure {sure:.2f}, spread {spread:.2f}" + (
            f", pictures {variety:.2f}x as varied as the other classes'" if variety is not None else "") + ")"
        listed = f"{n} listed as suspicious"
        elsewhere = (f" The run used {self.name(target)} as the target; a split without --target, or with --target "
                     f"{self.name(self.suspected)}, builds its pools around {self.name(self.suspected)}."
                     if self.target_in_doubt else "")
        trig = x.get("trigger_class", -1)
        shared = ""
        if trig >= 0:
            cz, cl = x["coherence_z"][trig], x["coherence_likeness"][trig]
            read = (f"(coherence z {cz:.0f}, line {x['coherence_line']:g}), and are not one kind of picture "
                    f"(likeness {cl:.2f}, line {x['likeness_line']:g})")
            if coherence_group_of(x, trig) == GROUP_NAMES[LAST_FITTED]:
                shared = (f"the pictures of {self.name(trig)} the model fits last share fine detail that the "
                          f"class's other pictures do not {read}: the same pixels on pictures the model learns "
                          f"as mislabelled, as a trigger puts there (this training did not take it as a "
                          f"shortcut; a longer or larger one may)")
            else:
                shared = (f"the pictures of {self.name(trig)} that a model trained without them does not call "
                          f"{self.name(trig)} share fine detail that pictures of the classes it calls them do not "
                          f"{read}: the same pixels on pictures of other classes, as a trigger puts there")
        if self.verdict == "poisoned" and "tail" in self.evidence:
            extra = "".join(f"; and {e}" for e, on in ((held, "holdout" in self.evidence), (shared, bool(shared))) if on)
            return f"{tail}: a group of its samples is fitted like a trigger shortcut{extra} ({listed})."
        if self.verdict == "poisoned" and shared:
            by = " by their match with that detail" if x.get("list_rule") == "trigger" else ""
            return f"{shared[0].upper()}{shared[1:]} ({listed}{by}).{elsewhere}"
        if self.verdict == "poisoned":
            return (f"{held[0].upper()}{held[1:]}; it calls them what pictures of the other classes are called, as "
                    f"surely and as varied{profile}: their label comes from something no honest picture of "
                    f"{self.name(low)} carries, as a trigger's does ({listed}).{elsewhere}")
        odd = x.get("holdout_odd_groups") or []
        odd_note = (f"; a group fitted first in {', '.join(self.name(c) for c in odd)} is not predicted as its "
                    f"label by a model trained without it, but is called as one kind of picture, a class's own "
                    f"odd group, not a trigger group of other classes' pictures") if odd else ""
        checked = (f"; every class's first-fitted samples are predicted as their label by a model trained without "
                   f"them (lowest held-out z {z:.1f}, line {line:.1f})" if x.get("holdout_tested") and not odd else odd_note)
        copies = x.get("copies_counted_once", 0)
        if copies and x.get("holdout_tested"):
            checked += f"; {copies} images are copies of another picture of their class, each picture counted once"
        t_z = x.get("target_holdout_z")
        ease = (f", but a model trained without its first-fitted samples calls them {self.name(target)} more "
                f"surely than the class's next ones (held-out z {t_z:+.1f})") if x.get("tail_explained_by_ease") else ""
        best = most_coherent(x)
        apart = (f"; no class's unrecognised or last-fitted pictures share a trigger's fine detail (highest "
                 f"coherence z {best[0]:.1f}, line {x['coherence_line']:g})" if best else "")
        if self.verdict == "clean":
            why = ": the class's most typical pictures, fitted first, not a trigger group" if ease else ""
            return f"No class stands out: {tail} (poisoned from {POISONED_SCORE:g}x){ease}{why}{checked}{apart}."
        if ease and self.score >= POISONED_SCORE:
            return (f"{tail}{ease}: the class's most typical pictures, fitted first, or a poison share so large "
                    f"that both groups are poison. Inspect the {n} suspicious samples before trusting this data.")
        if self.score >= POISONED_SCORE and x.get("reference_classes", 0) < MIN_REFERENCE_CLASSES:
            refs = x.get("reference_classes", 0)
            return (f"{tail}, but only {refs} other class{'es' if refs != 1 else ''} to compare with (a verdict "
                    f"of poisoned needs {MIN_REFERENCE_CLASSES}): one class's own easy sub-group can look like "
                    f"this. Inspect the {n} suspicious samples before trusting this data.")
        if z <= line:
            return (f"Held-out evidence, no tail: {held}, but with {x.get('holdout_tested', 0)} classes there are too "
                    f"few others to tell a trigger group of their pictures from a class's own odd group. Inspect the "
                    f"{n} suspicious samples before trusting this data.{elsewhere}")
        return f"Weak evidence: {tail}{odd_note}. Inspect the {n} suspicious samples before trusting this data."

    def summary(self) -> VerdictSummary:
        """The view printed by the commands and stored in their JSON summaries."""
        n = len(self.suspicion)
        return VerdictSummary(self.verdict, round(self.score, 4), self.reason, int(self.suspicious.sum()),
                              round(float(self.suspicious.sum()) / n, 4) if n else 0.0, self.evidence,
                              self.name(self.suspected), self.target_in_doubt, self.inputs)


@dataclass
class VerdictSummary:
    verdict: str  # poisoned | clean | inconclusive
    score: float
    reason: str  # one sentence, for people
    suspicious_count: int  # samples on the suspicious list
    suspicious_share: float  # of the whole dataset
    evidence: list[str]  # the lines of evidence over their poisoned line: tail, holdout
    suspected: str  # the class the list is drawn from
    target_in_doubt: bool  # the held-out check names another class than the run's target
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


def held_out_log_prob(prob: np.ndarray) -> np.ndarray:
    """The held-out model's log label probability for the samples of one class; the samples it trained
    on (NaN: the later-fitted half) take the class's largest held-out value, the least suspicious."""
    held = np.isfinite(prob)
    if not held.any():
        return np.zeros(len(prob))
    lp = np.log(np.clip(prob, 1e-4, 1.0))
    return np.where(held, lp, lp[held].max())


def trigger_likeness(lg: np.ndarray, scale: float, indicator: np.ndarray | None,
                     holdout_prob: np.ndarray | None = None) -> np.ndarray:
    """Low = trigger-like, for the samples of one class: the logit fit rank about the class median in
    units of an honest class's interquartile range (``scale``), plus INDICATOR_WEIGHT times I's robust
    z within the class when I is given, plus HOLDOUT_WEIGHT times the robust z of the held-out check's
    log label probability when it is given (all low on poison). I's own scale is per class: inside D_t
    the main model rarely predicts the target at all, so I is compressed there."""
    z = (lg - np.median(lg)) / scale if len(lg) else lg
    if indicator is not None:
        z = z + INDICATOR_WEIGHT * robust_z(indicator)
    if holdout_prob is not None:
        z = z + HOLDOUT_WEIGHT * robust_z(held_out_log_prob(holdout_prob))
    return z


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


def holdout_line(tested: int) -> float:
    """The held-out z under which a class's first-fitted group is not explained by its content, with
    ``tested`` classes read at once (Bonferroni over the classes and the CONTRASTS readings of each;
    the z is a one-sided normal score)."""
    return -NormalDist().inv_cdf(1 - HOLDOUT_FAMILY_P / max(CONTRASTS * tested, 1))


def trigger_like(c: CalledAs) -> bool:
    """The held-out model calls the group as it would honest pictures of the other classes: as surely
    as their own, and spread over them, or over pictures as varied as theirs (method/holdout.py,
    ``called_as`` and ``group_variety``)."""
    varied = c.spread >= CALLED_SPREAD or (c.spread >= CALLED_SPREAD_ALIKE and np.isfinite(c.variety)
                                           and c.variety >= GROUP_VARIETY)
    return c.others >= MIN_OTHER_CLASSES and c.sure >= CALLED_AS_SURE and varied


def coherent_classes(ev: Evidence) -> list[int]:
    """The classes whose unrecognised group is coherent past COHERENCE_Z and not alike (method/coherence.py)."""
    if ev.coherence_z is None or ev.coherence_likeness is None:
        return []
    return [c for c, (z, like) in enumerate(zip(ev.coherence_z, ev.coherence_likeness))
            if np.isfinite(z) and z >= COHERENCE_Z and np.isfinite(like) and like < LIKENESS]


def coherence_group_of(inputs: dict, c: int) -> str | None:
    """Which group class c's coherence reading is of (coherence.GROUP_NAMES), from the verdict's inputs."""
    groups = inputs.get("coherence_group") or []
    return groups[c] if 0 <= c < len(groups) else None


def most_coherent(inputs: dict) -> tuple[float, int] | None:
    """(z, class) of the most coherent group whose pictures are not alike, from the verdict's inputs;
    None when no group was read (what the reason, the reports and the calibration tables show)."""
    read = [(z, c) for c, (z, like) in enumerate(zip(inputs.get("coherence_z") or [], inputs.get("coherence_likeness") or []))
            if z is not None and like is not None and like < inputs.get("likeness_line", 0.0)]
    return max(read) if read else None


def trigger_line(honest: np.ndarray) -> float:
    """TRIGGER_DEPTH robust standard deviations (1.4826 MAD) above the median match of pictures that
    carry no trigger. On the calibration runs the poison's matches were 0.25-0.8 and an honest
    picture's deviation 0.01-0.05: the line kept precision 1.00 at recall 0.97-1.00."""
    if not len(honest):
        return float("inf")
    med = float(np.median(honest))
    return med + TRIGGER_DEPTH * 1.4826 * float(np.median(np.abs(honest - med)))


def _per_class(values: np.ndarray | None, n: int) -> list[float | None]:
    if values is None:
        return [None] * n
    return [round(float(x), 4) if np.isfinite(x) else None for x in np.asarray(values, dtype=np.float64)[:n]]


def attack_verdict(ev: Evidence) -> Verdict:
    labels, t = ev.labels, ev.target
    lg = logit_ranks(ev.fit_rank)
    groups = {int(c): lg[labels == c] for c in np.unique(labels)}  # each class's logit fit ranks
    refs = [c for c, g in groups.items() if c != t and len(g) >= MIN_REFERENCE_SIZE]  # the honest yardsticks
    ratios = tail_ratios(groups, t)  # the target's tail width over an honest class's, from each anchor
    # every class's score as if it were the target: reported (the decision reads the target's alone:
    # the largest of ten or twenty such ratios is over the line on clean data)
    class_scores = {c: round(max(tail_ratios(groups, c).values()), 4) for c in groups}
    spreads = {c: lower_spread(g) for c, g in groups.items()}
    s_t = spreads.get(t, 0.0)
    others = [spreads[c] for c in refs]
    honest = float(np.median(others)) if others else 0.0
    score = max(ratios.values())
    contrast = class_contrast(labels, ev.fit_rank, ev.holdout_prob, ev.holdout_share, ev.copy_of)
    called = called_as(labels, ev.fit_rank, ev.holdout_prob, ev.holdout_called, ev.holdout_called_prob,
                       ev.holdout_share, ev.copy_of, ev.holdout_variety)
    line = holdout_line(len(contrast))
    # The tail's early group is honest ease when a model trained without it calls it by its label more
    # surely than the class's next pictures (z > EASE_Z): a trigger, even a clean-label one, never helps
    # a model that did not learn it. On clean data the tail reached 2.0-2.9 on such groups (z +1.1 to
    # +4.3); on poison the target's z was +0.1 and -0.4 (SIG) to -7.7 (docs/decisions/0027-held-out-check.md).
    t_z = contrast.get(t)
    ease = t_z is not None and t_z > EASE_Z
    # one class's own easy sub-group can pass the tail line when the yardstick is one to three classes:
    # a clean 4-class set (80 per class) scored 2.67 on a real group of easy trucks (docs/decisions/0010-verdict-score.md)
    tail_hit = score >= POISONED_SCORE and len(others) >= MIN_REFERENCE_CLASSES and not ease
    tail_question = score >= POISONED_SCORE or (score >= CLEAN_SCORE and not ease)
    # A class under the line holds a group its content does not explain. It is a trigger group's when
    # the model calls the group as it would honest pictures of the other classes (trigger_like); a
    # class's own odd group is called as one kind of picture: clean clothing's hats (z -4.4) and clean
    # CIFAR-10 deer (z -3.9) (docs/decisions/0027-held-out-check.md). With too few classes to tell, the
    # group stays a question.
    foreign = {c: z for c, z in contrast.items() if z <= line}
    hits = {c: z for c, z in foreign.items() if c in called and trigger_like(called[c])}
    undecided = {c: z for c, z in foreign.items() if c not in called or called[c].others < MIN_OTHER_CLASSES}
    doubted = hits or undecided or contrast
    low = min(doubted, key=doubted.get) if doubted else -1  # the class the held-out check doubts most
    low_z = contrast.get(low, 0.0)
    # A class whose unrecognised pictures share fine detail that matched honest pictures do not, and
    # are not one kind of picture: the same pixels on pictures of every class, a trigger's
    # (method/coherence.py). The trigger's direction was read from the most coherent such group.
    coherent = coherent_classes(ev)
    trig = ev.trigger_class if ev.trigger_class in coherent and ev.trigger_match is not None else None
    if tail_hit or hits or coherent:
        verdict = "poisoned"
    elif tail_question or undecided:
        verdict = "inconclusive"
    else:
        verdict = "clean"
    # the class to list from: the target the split used, unless only the held-out check found a class
    # that may hold a trigger group, and another class: the vote picked the wrong class
    named = trig if trig is not None else (low if low in {**hits, **undecided} else None)
    in_doubt = not tail_hit and named is not None and named != t and t not in hits and t not in coherent
    suspected = named if in_doubt else t
    in_s = labels == suspected
    n_s = int(in_s.sum())
    refs_s = [c for c, g in groups.items() if c != suspected and len(g) >= MIN_REFERENCE_SIZE]
    # I joins only when the split reached stage 2 (else NaN), it varies inside the class, and the
    # class is the split's target (elsewhere the main model may have learnt the trigger)
    ind = ev.indicator if ev.indicator is not None and np.isfinite(ev.indicator).all() and suspected == t else None
    if ind is not None and not robust_z(ind[in_s]).any():
        ind = None
    # the fit rank's unit comes from the honest classes: the suspected class's own range is stretched by the poison
    iqr = float(np.median([np.quantile(groups[c], 0.75) - np.quantile(groups[c], 0.25) for c in refs_s])) if refs_s else 0.0
    scale = iqr if iqr > 0 else 1.0
    # the held-out probability joins the list when the check itself saw the class's first group as foreign
    # (clean-label poison is predicted as its label: there it would only blur the fit rank)
    hold = ev.holdout_prob if suspected in hits or suspected in undecided else None
    like = {c: trigger_likeness(g, scale, None if ind is None else ind[labels == c],
                                None if hold is None else hold[labels == c]) for c, g in groups.items()}
    like_honest = float(np.median([lower_spread(like[c]) for c in refs_s] or [0.0]))
    suspicion = np.zeros(len(labels))
    suspicious = np.zeros(len(labels), dtype=bool)
    list_rule = "none"  # which line ended the list: trigger, median (0.7 under the class median) or anchored (list_line)
    trigger_cut = None
    if n_s and trig == suspected:
        # the trigger's match ranks the class, and the list ends where the other classes' pictures,
        # which carry no trigger, are left far behind
        match = np.nan_to_num(ev.trigger_match, nan=0.0)
        trigger_cut = trigger_line(match[labels != suspected])
        order = np.argsort(np.argsort(-match[in_s], kind="stable"))
        suspicion[in_s] = (n_s - order) / n_s
        suspicious[np.flatnonzero(in_s)[match[in_s] >= trigger_cut]] = True
        list_rule = "trigger"
    elif n_s:
        like_s = like[suspected]
        order = np.argsort(np.argsort(like_s, kind="stable"))  # 0 = the most trigger-like sample of the class
        suspicion[in_s] = (n_s - order) / n_s  # in (0, 1]: every suspected-class sample above the rest of D
        if verdict != "clean":
            # the split's list anchors on the honest part; the warm-up list (it also keeps samples
            # out of the clean pool) favours recall: the union of that rule and a line under the
            # class's plain median, which the poison pulls down (until it falls into the poison)
            cut, list_rule = list_line(like_s, like_honest, LIST_DEPTH_SPLIT), "anchored"
            if ind is None:  # whichever line lists more
                median_line = float(np.median(like_s)) - LIST_DEPTH * like_honest
                list_rule = "median" if median_line >= cut else "anchored"
                cut = max(cut, median_line)
            suspicious[np.flatnonzero(in_s)[like_s < cut]] = True
    n_classes = int(labels.max()) + 1 if len(labels) else 0
    inputs = {
        "target_lower_spread": round(s_t, 4), "honest_lower_spread": round(honest, 4),
        "widest_class": int(max(spreads, key=spreads.get)), "target_size": int((labels == t).sum()),
        "reference_classes": len(others),
        "score_by_anchor": {f"q{round(a * 100)}": round(r, 4) for a, r in ratios.items()},
        "class_scores": [class_scores.get(c, 0.0) for c in range(n_classes)],
        "holdout_z": round(low_z, 4), "holdout_class": low, "holdout_line": round(line, 4),
        "holdout_tested": len(contrast),
        "copies_counted_once": 0 if ev.copy_of is None else int((ev.copy_of != np.arange(len(labels))).sum()),
        "holdout_called_as_sure": round(called[low].sure, 4) if low in called else None,
        "holdout_called_spread": round(called[low].spread, 4) if low in called else None,
        "holdout_group_variety": (round(called[low].variety, 4) if low in called and np.isfinite(called[low].variety)
                                  else None),
        "called_as_sure_line": CALLED_AS_SURE, "called_spread_line": CALLED_SPREAD, "group_variety_line": GROUP_VARIETY,
        "called_spread_alike_line": CALLED_SPREAD_ALIKE,
        "holdout_trigger_like": low in hits, "holdout_odd_groups": sorted(set(foreign) - set(hits) - set(undecided)),
        "holdout_class_z": [round(contrast[c], 4) if c in contrast else None for c in range(n_classes)],
        "target": t, "suspected_class": suspected, "target_in_doubt": in_doubt,
        "target_holdout_z": None if t_z is None else round(t_z, 4), "tail_explained_by_ease": ease,
        "vote_share": round(float(ev.vote_share), 4), "estimates_agree": bool(ev.estimates_agree),
        "second_likely": ev.second_likely, "loss_gap": round(float(ev.loss_gap), 4),
        "poisoned_score": POISONED_SCORE, "clean_score": CLEAN_SCORE,
        "list_rule": list_rule, "list_depth": {"median": LIST_DEPTH, "trigger": TRIGGER_DEPTH}.get(list_rule, LIST_DEPTH_SPLIT),
        "list_uses_indicator": ind is not None, "list_uses_holdout": hold is not None,
        "coherence_z": _per_class(ev.coherence_z, n_classes), "coherence_likeness": _per_class(ev.coherence_likeness, n_classes),
        "coherence_group": [GROUP_NAMES[g] if 0 <= g < len(GROUP_NAMES) else None
                            for g in (ev.coherence_group if ev.coherence_group is not None else [-1] * n_classes)],
        "coherence_line": COHERENCE_Z, "likeness_line": LIKENESS, "coherent_classes": sorted(coherent),
        "trigger_class": -1 if trig is None else trig,
        "trigger_list_cut": None if trigger_cut is None else round(trigger_cut, 4),
    }
    if ind is not None:
        inputs["indicator_weight"] = INDICATOR_WEIGHT
    if ind is not None and suspicious.any() and (in_s & ~suspicious).any():
        # reported, not decided on: how much lower I is on the list than on the rest of the class
        inputs["indicator_gap"] = round(float(np.median(ind[in_s & ~suspicious])
                                              - np.median(ind[suspicious])), 4)
    return Verdict(verdict, float(score), inputs, suspicion, suspicious, suspected, in_doubt, list(ev.classes or []))

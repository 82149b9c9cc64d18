"""The report's opening words: what the artifact says, in plain language, in a few sentences.

``headline`` is the one place that phrases it. The split artifact's ``/verdict`` leads when it is there
(``attack_present`` and ``reason``); without one the text weighs the target vote alone, and says that
a clean dataset also yields a most likely target.
"""

from __future__ import annotations

from typing import Any

from ..artifacts.split import SplitArtifact

# The first sentence for each verdict: only ``clean`` says that no attack was found.
HEADLINES = {
    "poisoned": "Backdoor poisoning found: the attack's target label is most likely \u201c{name}\u201d.",
    "inconclusive": ("Inconclusive: the evidence neither clears this dataset nor shows an attack; inspect the "
                     "suspicious images of \u201c{name}\u201d before trusting it."),
    "clean": "No backdoor attack found in this dataset.",
}

STRONG_VOTE = 0.5  # the vote needs more than half of the isolated samples (docs/decisions/0005-second-likely-estimate.md)


def _pct(x: float) -> str:
    return f"{x:.0%}"


def headline(target: dict[str, Any], num_samples: int, clean_size: int,
                 verdict: dict[str, Any] | None = None) -> list[str]:
    """Sentences, the headline first. ``target`` holds the /target attributes plus ``num_isolated``."""
    name = str(target["target_name"])
    share = float(target.get("confidence", float("nan")))
    agree = bool(target.get("agree", False))
    source = target.get("source", "lga")
    poison_size = num_samples - clean_size
    out: list[str] = []
    if verdict is not None and "verdict" in verdict:
        # the class the evidence names: the target used, unless the held-out check found the poison elsewhere
        out.append(HEADLINES[str(verdict["verdict"])].format(name=verdict.get("suspected") or name))
        if verdict.get("reason"):
            out.append(str(verdict["reason"]).strip())
    elif source == "user":
        out.append(f"Target label \u201c{name}\u201d was given by the user; the split is built around it.")
    else:
        strong = share > STRONG_VOTE and agree
        out.append(f"The most likely attack target is \u201c{name}\u201d"
                   + (" (strong evidence)." if strong else " (weak evidence: treat it with care)."))
    if source != "user":
        n_iso = int(target.get("num_isolated") or 0)
        votes = target.get("votes")
        k = int(votes[int(target["lga_target"])]) if votes is not None and "lga_target" in target else None
        among = (f"{k} of the {n_iso} lowest-loss samples ({_pct(share)})" if k is not None and n_iso
                 else f"{_pct(share)} of the lowest-loss samples")
        second = str(target.get("second_likely_name", "?"))
        out.append(f"{among} (those the backdoor-prone model fitted first) carry the label "
                   f"\u201c{target.get('lga_target_name', name)}\u201d, "
                   + ("and the independent second-likely estimate agrees." if agree
                      else f"and the independent second-likely estimate names \u201c{second}\u201d (the verdict weighs "
                      "the evidence of every class, not the votes)."))
        if source == "holdout":
            out.append(f"The split was built around \u201c{name}\u201d, not the vote's class: the held-out check "
                       f"found a trigger group there and none in \u201c{target.get('lga_target_name', '?')}\u201d.")
    if verdict is None or "verdict" not in verdict:
        out.append("This artifact holds no attack-present decision: a clean dataset also yields a most likely "
                   "target, so weigh the evidence and the images below.")
    out.append(f"The clean pool holds {clean_size:,} of {num_samples:,} images ({_pct(clean_size / max(num_samples, 1))}); "
               f"the other {poison_size:,} form the poison pool, which holds every image not confidently clean "
               "and is not a list of confirmed poison.")
    return out


def headline_of(data: SplitArtifact) -> list[str]:
    return headline(data.target, len(data), int(data.clean.sum()), data.verdict)

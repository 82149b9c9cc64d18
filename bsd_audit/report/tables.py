"""The terminal's tables: the JSON summaries of the commands, drawn with rich for a person. Every
string from the data (class names, paths, messages) goes through rich's escape: a class folder named
"[bold]x" is shown as it is, not read as markup."""

from __future__ import annotations

from rich.markup import escape
from rich.table import Table

from ..method.verdict import coherence_group_of, most_coherent


def class_evidence(s: dict, name: str) -> str:
    """A class's two lines of verdict evidence, as the summary's verdict inputs hold them."""
    x, i = s["verdict"]["inputs"], s["classes"].index(name)
    tail = x.get("class_scores", [])[i] if i < len(x.get("class_scores", [])) else None
    z = x.get("holdout_class_z", [])[i] if i < len(x.get("holdout_class_z", [])) else None
    return (f"tail {'-' if tail is None else format(tail, '.2f')}x, "
            f"held-out z {'-' if z is None else format(z, '+.1f')}")


def called_profile(x: dict) -> str:
    """How the held-out model calls the doubted class's unrecognised samples, as the verdict inputs hold it."""
    if x.get("holdout_called_as_sure") is None:
        return ""
    variety = x.get("holdout_group_variety")
    varied = "" if variety is None else (f"; its pictures {variety:.2f}x as varied as the other classes' (a trigger "
                                         f"group's: from {x['group_variety_line']:g} with a spread from "
                                         f"{x['called_spread_alike_line']:g})")
    return (f"; called other classes with sureness {x['holdout_called_as_sure']:.2f} and spread "
            f"{x['holdout_called_spread']:.2f} (a trigger group's: from {x['called_as_sure_line']:g} and "
            f"{x['called_spread_line']:g}){varied}")


def coherence_fact(x: dict, classes: list[str]) -> str | None:
    """The most coherent not-alike group (method/coherence.py), as the verdict inputs hold it."""
    best = most_coherent(x)
    if best is None:
        return None
    z, c = best
    group = coherence_group_of(x, c)
    return (f"highest z {z:.1f} in {classes[c]}{f' ({group} pictures)' if group else ''} (line "
            f"{x['coherence_line']:g}); its pictures' likeness "
            f"{x['coherence_likeness'][c]:.2f} (one kind of picture from {x['likeness_line']:g})")


def target_table(s: dict) -> Table:
    t = Table(title="Target label", show_header=False)
    t.add_row("target used", f"[bold]{escape(s['target_name'])}[/bold] ({s['source']})")
    n = sum(s["votes"].values())
    t.add_row("LGA vote", f"{escape(s['lga_target_name'])}: {s['votes'][s['lga_target_name']]} of the {n} isolated samples "
              f"({s['confidence']:.0%}); {class_evidence(s, s['lga_target_name'])}")
    t.add_row("second-likely estimate", f"{escape(s['second_likely_name'])}: {class_evidence(s, s['second_likely_name'])}")
    x = s["verdict"]["inputs"]
    if x.get("holdout_tested"):
        low = s["classes"][x["holdout_class"]]
        doubt = "  [bold yellow](not the target used)[/bold yellow]" if s["verdict"]["target_in_doubt"] else ""
        t.add_row("held-out check", f"lowest z {x['holdout_z']:+.1f} in {escape(low)} of {x['holdout_tested']} classes "
                  f"(line {x['holdout_line']:.1f}){called_profile(x)}{doubt}")
    fact = coherence_fact(x, s["classes"])
    if fact is not None:
        t.add_row("fine-detail coherence", escape(fact))
    t.add_row("loss gap of isolated samples", f"{s['loss_gap']:.3f}")
    t.add_row("votes", ", ".join(f"{escape(k)}: {v}" for k, v in s["votes"].items() if v))
    return t


def split_table(s: dict) -> Table:
    t = Table(title="Split", show_header=False)
    v = s["verdict"]
    colour = {"poisoned": "red", "clean": "green"}.get(v["verdict"], "yellow")
    t.add_row("verdict", f"[bold {colour}]{v['verdict']}[/bold {colour}]: {escape(v['reason'])}")
    t.add_row("suspicious list", f"{v['suspicious_count']} of {s['num_samples']} samples ({v['suspicious_share']:.1%}); "
              "`bsd-audit export` lists them first")
    t.add_row("clean pool", f"{s['clean_size']} of {s['num_samples']} ({s['clean_share']:.0%})")
    t.add_row("poison pool", f"{s['poison_size']} (not a list of suspects: every sample not confidently clean)")
    t.add_row("clean per class", ", ".join(f"{escape(k)}: {v}" for k, v in s["clean_per_class"].items()))
    if "truth" in s:
        tr = s["truth"]
        t.add_row("ground truth", f"{tr['num_poisoned']} poisoned; {tr['poison_in_clean']} left in the clean pool "
                  f"(recall {tr['poison_recall']:.1%})")
        if tr.get("suspicious_recall") is not None:
            p90 = tr.get("suspicion_precision_at_recall_0.9")
            t.add_row("suspicious list vs truth", f"precision {tr['suspicious_precision'] or 0:.1%}, "
                      f"recall {tr['suspicious_recall']:.1%}"
                      + ("" if p90 is None else f"; the ranking: precision {p90:.1%} at 90% recall"))
        t.add_row("AUROC (OSS, ALS, I)", ", ".join("-" if tr[k] is None else f"{tr[k]:.3f}"
                                                 for k in ("auroc_oss", "auroc_als", "auroc_indicator")))
    return t


def metrics_table(s: dict) -> Table:
    def pct(v):
        return "-" if v is None else f"{v:.2f} %"

    t = Table(title=f"Evaluation of {s['model']} ({s['mode']})", show_header=False)
    t.add_row("clean accuracy (CA)", f"{pct(s['ca'])} on {s['num_test']} test images")
    if "asr" in s:
        t.add_row("attack success rate (ASR)", f"{pct(s['asr'])} of {s['num_triggered']} triggered images "
                  f"(target {escape(s['target_name'])}, from {s['target_source']})")
    if "baseline" in s:
        b = s["baseline"]
        t.add_row("no-defence baseline", f"CA {pct(b['ca'])}" + (f", ASR {pct(b['asr'])}" if "asr" in b else ""))
    if "der" in s:
        t.add_row("DER", pct(s["der"]))
    t.add_row("per-class accuracy", ", ".join(f"{escape(c)}: {pct(v)}" for c, v in s["per_class_accuracy"].items()))
    if "split_quality" in s:
        q = s["split_quality"]
        t.add_row("split quality", f"{q['poison_in_clean']} of {q['num_poisoned']} poisoned left in the clean pool "
                  f"(recall {q['poison_recall']:.1%}); AUROC OSS/ALS/I " + ", ".join(
                      "-" if q.get(k) is None else f"{q[k]:.3f}" for k in ("auroc_oss", "auroc_als", "auroc_indicator")))
    return t

"""The command line: parse options, call the commands in api.py, print their results, exit with the gate's code.

No maths and no decisions here: the config is resolved in config.py, the work is done in api.py, the
exit codes are decided in report/gate.py (errors.py, the README and the man pages list them).
"""

from __future__ import annotations

import json
import os
import sys
import time
import traceback
from pathlib import Path
from typing import Any, Callable, List, Optional

import typer
from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress as RichProgress, TextColumn, TimeElapsedColumn

from . import __version__, api
from .attacks import build_benchmark
from .config import PRESETS, Config, parse_overrides
from .errors import EXIT_INTERNAL, EXIT_INTERRUPTED, EXIT_OK, AuditError, BadInputError
from .report import export, write_report
from .report.gate import AuditGate, audit_gate
from .report.tables import metrics_table, split_table, target_table
from .training.progress import Progress

EXIT_CODES_HELP = (
    "Exit codes: 0 finished (no threshold passed); 1 poison found above a threshold; 2 bad input or usage; "
    "3 internal failure; 4 --strict and the evidence names another class than the target used; "
    "5 evaluate: CA below --min-ca or ASR above --max-asr; 6 --fail-on-verdict and the verdict is inconclusive; "
    "7 training diverged (NaN or infinite loss): lower the learning rate and run again to resume."
)

app = typer.Typer(
    name="bsd-audit",
    help="Audit an image dataset (ImageFolder tree) for backdoor poisoning with BSD, without trusted clean data. "
         + EXIT_CODES_HELP,
    no_args_is_help=True,
    add_completion=True,
    pretty_exceptions_enable=False,
)

err = Console(stderr=True)


class RichProgressReporter(Progress):
    """Progress bars on stderr, so stdout stays clean for --json."""

    def __init__(self, console: Console):
        self.console = console
        self.bar: RichProgress | None = None
        self.task = None

    def start(self, stage: str, total: int) -> None:
        self.finish()
        self.bar = RichProgress(TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
                                TimeElapsedColumn(), TextColumn("{task.fields[note]}"), console=self.console,
                                transient=False)
        self.bar.start()
        self.task = self.bar.add_task(stage, total=total, note="")

    def advance(self, n: int = 1, note: str = "") -> None:
        if self.bar is not None:
            self.bar.update(self.task, advance=n, note=note)

    def log(self, message: str) -> None:
        # escaped: a file name such as "img[1].png" must not be read as rich markup
        self.console.print(f"[dim]{escape(message)}[/dim]", soft_wrap=True)

    def finish(self) -> None:
        if self.bar is not None:
            self.bar.stop()
            self.bar = None


class LineProgressReporter(Progress):
    """Progress for a log, not a terminal (every CI job): a plain line per stage start and end, per
    epoch, and at least every PLAIN_EVERY_S seconds within a long stage, with elapsed time and ETA."""

    PLAIN_EVERY_S = 30.0
    EPOCH_LIKE = 500  # stages of at most this many steps (epochs) print every step

    def __init__(self, console: Console, clock: Callable[[], float] = time.monotonic):
        self.console, self.clock = console, clock
        self.stage, self.total, self.done, self.t0, self.last = "", 0, 0, 0.0, 0.0

    def _line(self, note: str = "") -> None:
        elapsed = self.clock() - self.t0
        eta = elapsed / self.done * (self.total - self.done) if self.done else None
        self.last = self.clock()
        self.console.print(f"[{self.stage}] {self.done}/{self.total}, {elapsed:.0f} s elapsed"
                           + ("" if eta is None else f", ETA {eta:.0f} s") + (f": {note}" if note else ""),
                           markup=False, highlight=False, soft_wrap=True)

    def start(self, stage: str, total: int) -> None:
        self.stage, self.total, self.done = stage, total, 0
        self.t0 = self.last = self.clock()
        self._line("started")

    def advance(self, n: int = 1, note: str = "") -> None:
        self.done += n
        if self.total <= self.EPOCH_LIKE or self.clock() - self.last >= self.PLAIN_EVERY_S:
            self._line(note)

    def log(self, message: str) -> None:
        self.console.print(message, markup=False, highlight=False, soft_wrap=True)

    def finish(self) -> None:
        if self.stage and self.done and self.total > self.EPOCH_LIKE:
            self._line("done")
        self.stage = ""


def _reporter(quiet: bool) -> Progress:
    """Where progress goes: nowhere with --quiet; bars on a terminal; plain lines in a log. --json
    keeps it: progress is on stderr, the JSON alone on stdout."""
    if quiet:
        return Progress()
    return RichProgressReporter(err) if err.is_terminal else LineProgressReporter(err)


# ---------------------------------------------------------------------------------- shared options
PresetOpt = typer.Option("auto", "--preset", "-p", help=f"Settings preset: auto, {', '.join(PRESETS)}. "
                         "auto = fast on a GPU for 50,000 images or more, cpu otherwise; "
                         "paper = the paper's settings (GPU, hours); fast = CIFAR-10-sized audit in minutes on a GPU; "
                         "cpu = small datasets on a CPU.")
ConfigOpt = typer.Option(None, "--config", "-c", help="JSON or TOML file of config fields (applied after the preset).",
                         dir_okay=False)
SetOpt = typer.Option(None, "--set", "-s", help="Override one config field: --set T3=30 (repeatable).")
SeedOpt = typer.Option(None, "--seed", help="Random seed (same data, config and seed give the same split on the same device).")
DeviceOpt = typer.Option(None, "--device", help="auto (GPU when present), cpu, cuda or cuda:N.")
JsonOpt = typer.Option(False, "--json", help="Print one JSON summary on stdout (for CI).")
QuietOpt = typer.Option(False, "--quiet", "-q", help="No progress output (warnings and errors still print).")
VerboseOpt = typer.Option(False, "--verbose", "-v", help="Print every config field before starting.")
DataStoreOpt = typer.Option(None, "--data-store", help="Where the decoded images live: auto (default: disk when they "
                            "would take over half the memory available on the device), memory (one tensor on the "
                            "device), or disk (the decode cache's file, read batch by batch). Same result either way.")
SkipBadOpt = typer.Option(False, "--skip-bad-files", help="Leave unusable image files out (each listed in the "
                          "summary and the artifact) instead of refusing the tree: for scraped data.")
ForceOpt = typer.Option(False, "--force", help="Replace an existing --out that is not an earlier output of this "
                        "command (an earlier one is replaced without it). Never allowed inside the data or over an input.")
NoCacheOpt = typer.Option(False, "--no-cache", help="Decode every image again and keep no decode cache (by default "
                          "decoded images are kept in $BSD_AUDIT_CACHE_DIR, else ~/.cache/bsd-audit, for the next command).")


def _configure(preset: str, config_file: Optional[Path], sets: Optional[List[str]], data: Optional[Path] = None,
               **typed: Any) -> api.Configured:
    """The resolved config from the preset, the config file, --set pairs and the typed options (those
    not None; later wins). With ``--preset auto`` the scan of ``data`` picks the preset and is reused."""
    overrides: dict[str, Any] = parse_overrides(sets)
    overrides.update({k: v for k, v in typed.items() if v is not None})
    return api.configure(preset, overrides, config_file, data)


def _run(fn: Callable[[], int]) -> None:
    """Run a command body; the tool's own errors become a message and an exit code, never a traceback."""
    rank = int(os.environ.get("RANK", "0"))
    if rank != 0:
        # Under torchrun rank 0 speaks for the run (progress, tables, the JSON summary); the other
        # ranks print only their own errors, prefixed with their rank.
        err.quiet = True
        sys.stdout = open(os.devnull, "w")  # noqa: SIM115 - for the life of the process
    try:
        code = fn()
    except (Exception, KeyboardInterrupt):
        if rank != 0:
            err.quiet = False
            err.print(f"[bold]rank {rank}:[/bold]", end=" ")
        _handled()
    raise typer.Exit(code)


def _handled() -> None:
    """Inside an except block: report the exception in flight and exit with its documented code."""
    try:
        raise
    except AuditError as exc:
        # The message names files: escape it (rich would eat "[...]" in a path as markup) and do not
        # wrap it (a path broken across lines cannot be copied or grepped from a CI log).
        err.print(f"[bold red]error:[/bold red] {escape(str(exc))}", highlight=False, soft_wrap=True)
        raise typer.Exit(exc.exit_code)
    except BrokenPipeError:
        # the reader of stdout stopped (`bsd-audit export s.h5 | head`): not a failure of the tool;
        # point stdout at nothing so the interpreter's final flush does not fail again
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        raise typer.Exit(EXIT_OK)
    except KeyboardInterrupt:
        err.print("[bold red]interrupted[/bold red]: no artifact was written (any earlier one is unchanged); "
                  "detect-target, split and train-clean continue from their checkpoint when run again")
        raise typer.Exit(EXIT_INTERRUPTED)
    except Exception:  # noqa: BLE001 - the last line of defence: report, exit with the documented code
        err.print("[bold red]internal error[/bold red] (please report it with the trace below):")
        err.print(traceback.format_exc(), highlight=False, markup=False, soft_wrap=True)
        raise typer.Exit(EXIT_INTERNAL)


def _print_config(cfg: Config, quiet: bool, verbose: bool) -> None:
    """One line naming the preset; every field with --verbose (the artifact stores them all)."""
    if verbose:
        err.print("config: " + cfg.to_json(), markup=False, highlight=False, soft_wrap=True)
    elif not quiet:
        err.print(f"[dim]config: preset {cfg.preset}, seed {cfg.seed}, {cfg.arch}, image size {cfg.image_size} "
                  "(every field: --verbose, or `bsd-audit config`)[/dim]", highlight=False)


def _gate(s: dict, on_verdict: bool, min_confidence: float | None, min_flagged: float | None,
          strict: bool) -> AuditGate:
    """The gate of a detect-target or split summary, stored in it as ``gate``."""
    v = s["verdict"]
    gate = audit_gate(v["verdict"], v["reason"], s["confidence"], v["suspicious_share"], v["target_in_doubt"], on_verdict,
                      min_confidence, min_flagged, strict, votes=(s["votes"][s["lga_target_name"]], sum(s["votes"].values())),
                      flagged=(v["suspicious_count"], s["num_samples"]))
    s["gate"] = gate.to_dict()
    return gate


def _finish(s: dict, gate: AuditGate, quiet: bool) -> int:
    """The end of detect-target and split: the wrong-target warning, the gate's reasons, its exit code.
    Two estimates that merely disagree are no warning (with the cpu preset they nearly always do); the
    warning is for when the verdict's evidence names another class than the one the run used."""
    for warning in s["warnings"]:
        err.print(f"[bold yellow]warning:[/bold yellow] {escape(warning)}", soft_wrap=True)
    v = s["verdict"]
    if v["target_in_doubt"] and not quiet:
        err.print(f"[bold yellow]warning:[/bold yellow] the verdict's evidence points to {escape(v['suspected'])}, not to "
                  f"{escape(s['target_name'])}, the target this run used (LGA vote {escape(s['lga_target_name'])}, "
                  f"second-likely {escape(s['second_likely_name'])}). Run split again with --target "
                  f"{escape(v['suspected'])}.", soft_wrap=True)
    for reason in gate.reasons:
        err.print(f"[bold red]gate:[/bold red] {escape(reason)}", soft_wrap=True)
    return gate.exit_code


# ---------------------------------------------------------------------------------- commands
@app.command("detect-target")
def detect_target_cmd(
    data: Path = typer.Argument(..., help="Root of the ImageFolder tree (root/<class>/<image>)."),
    out: Path = typer.Option(Path("target.h5"), "--out", "-o", help="Artifact to write (HDF5)."),
    preset: str = PresetOpt, config_file: Optional[Path] = ConfigOpt, sets: Optional[List[str]] = SetOpt,
    seed: Optional[int] = SeedOpt, device: Optional[str] = DeviceOpt,
    data_store: Optional[str] = DataStoreOpt, no_cache: bool = NoCacheOpt,
    strict: bool = typer.Option(False, "--strict", help="Exit 4 when the verdict's evidence names another class than "
                                "the LGA vote (the vote was wrong: run split with --target that class)."),
    fail_on_verdict: bool = typer.Option(False, "--fail-on-verdict", help="Exit 1 when the verdict is 'poisoned', "
                                         "6 when it is 'inconclusive' (the quickest gate: the warm-up alone)."),
    fail_on_confidence: Optional[float] = typer.Option(None, "--fail-on-confidence", min=0.0, max=1.0, help="Exit 1 when the LGA "
                                                       "vote share of the target is at least this (0-1)."),
    resume: bool = typer.Option(True, "--resume/--no-resume", help="Continue from the checkpoint beside --out "
                                "(OUT.ckpt.h5, written every warm-up epoch) when an earlier run was interrupted."),
    as_json: bool = JsonOpt, quiet: bool = QuietOpt, force: bool = ForceOpt, verbose: bool = VerboseOpt, skip_bad_files: bool = SkipBadOpt,
) -> None:
    """Estimate the attack's target label: altruistic warm-up with LGA, vote of the lowest-loss samples,
    and the independent second-likely estimate. Writes ỹ_t, votes, confidence and isolated samples.
    A checkpoint beside --out is written every warm-up epoch: run the same command again after an
    interruption and it continues where it stopped, with the same result as an uninterrupted run."""
    def body() -> int:
        c = _configure(preset, config_file, sets, data, seed=seed, device=device, data_store=data_store,
                       cache_dir="off" if no_cache else None, skip_bad_files=skip_bad_files or None)
        _print_config(c.cfg, quiet, verbose)
        reporter = _reporter(quiet)
        s = api.detect_target(data, out, c.cfg, reporter, resume=resume, tree=c.tree, force=force).to_dict()
        gate = _gate(s, fail_on_verdict, fail_on_confidence, None, strict)
        if as_json:
            print(json.dumps(s, sort_keys=True))
        elif not quiet:
            err.print(target_table(s))
            v = s["verdict"]
            err.print(f"verdict: [bold]{v['verdict']}[/bold]: {escape(v['reason'])}")
            r = s["resumed_from"]
            resumed = f", resumed from its checkpoint after warm-up epoch {r['epoch']}" if r else ""
            err.print(f"wrote {escape(str(out))} in {s['wall_time_s']:.0f} s{resumed}", soft_wrap=True)
        return _finish(s, gate, quiet or as_json)

    _run(body)


@app.command("split")
def split_cmd(
    data: Path = typer.Argument(..., help="Root of the ImageFolder tree (root/<class>/<image>)."),
    out: Path = typer.Option(Path("split.h5"), "--out", "-o", help="Artifact to write (HDF5)."),
    target: Optional[str] = typer.Option(None, "--target", help="Known target class name: skips detection's vote "
                                         "(the warm-up still runs, ALS needs it)."),
    target_from: Optional[Path] = typer.Option(None, "--target-from", help="Reuse a detect-target artifact "
                                               "(its warmed-up altruistic model and ALS scores)."),
    truth: Optional[Path] = typer.Option(None, "--truth", help="Ground-truth manifest.json of a benchmark: "
                                         "records poison recall and poison left in the clean pool (never used to decide)."),
    preset: str = PresetOpt, config_file: Optional[Path] = ConfigOpt, sets: Optional[List[str]] = SetOpt,
    seed: Optional[int] = SeedOpt, device: Optional[str] = DeviceOpt,
    data_store: Optional[str] = DataStoreOpt, no_cache: bool = NoCacheOpt,
    strict: bool = typer.Option(False, "--strict", help="Exit 4 when the verdict's evidence names another class than "
                                "the target this run used (the vote was wrong: run again with --target that class)."),
    init_only: bool = typer.Option(False, "--init-only", help="Quick gating mode: stop once the initial pools exist "
                                   "(skips the MixMatch stages; the verdict needs only the warm-up)."),
    fail_on_verdict: bool = typer.Option(False, "--fail-on-verdict", help="Exit 1 when the verdict is 'poisoned', "
                                         "6 when it is 'inconclusive'."),
    fail_on_confidence: Optional[float] = typer.Option(None, "--fail-on-confidence", min=0.0, max=1.0, help="Exit 1 when the LGA "
                                                       "vote share of the target is at least this (0-1)."),
    fail_on_flagged: Optional[float] = typer.Option(None, "--fail-on-flagged", min=0.0, max=1.0, help="Exit 1 when the suspicious "
                                                    "list holds at least this share of the dataset (0-1)."),
    resume: bool = typer.Option(True, "--resume/--no-resume", help="Continue from the checkpoint beside --out "
                                "(OUT.ckpt.h5, written every epoch) when an earlier run was interrupted."),
    as_json: bool = JsonOpt, quiet: bool = QuietOpt, force: bool = ForceOpt, verbose: bool = VerboseOpt, skip_bad_files: bool = SkipBadOpt,
) -> None:
    """Run BSD: target detection, OSS and ALS pool initialisation, MixMatch training with class completion
    and selective drop. Writes per-sample OSS, ALS and I scores, clean/poison index lists and the pool history.
    A checkpoint beside --out is written every epoch: run the same command again after an interruption and it
    continues where it stopped, with the same result as an uninterrupted run."""
    def body() -> int:
        c = _configure(preset, config_file, sets, data, seed=seed, device=device, data_store=data_store,
                       cache_dir="off" if no_cache else None, skip_bad_files=skip_bad_files or None, stop_after_init=True if init_only else None)
        _print_config(c.cfg, quiet, verbose)
        reporter = _reporter(quiet)
        s = api.split(data, out, c.cfg, target=target, target_from=target_from, truth_manifest=truth,
                      progress=reporter, resume=resume, tree=c.tree, force=force).to_dict()
        gate = _gate(s, fail_on_verdict, fail_on_confidence, fail_on_flagged, strict)
        if as_json:
            print(json.dumps(s, sort_keys=True))
        elif not quiet:
            err.print(target_table(s))
            err.print(split_table(s))
            r = s["resumed_from"]
            resumed = f", resumed from its checkpoint ({r['phase']} phase, epoch {r['epoch']})" if r else ""
            err.print(f"wrote {escape(str(out))} in {s['wall_time_s']:.0f} s{resumed}", soft_wrap=True)
        return _finish(s, gate, quiet or as_json)

    _run(body)


@app.command("train-clean")
def train_clean_cmd(
    data: Path = typer.Argument(..., help="Root of the ImageFolder tree the split was computed on."),
    split: Optional[Path] = typer.Option(None, "--split", help="Split artifact from `bsd-audit split` (checked against DATA)."),
    out: Path = typer.Option(Path("purified.h5"), "--out", "-o", help="Weights file to write (HDF5)."),
    mode: str = typer.Option("mixmatch", "--mode", "-m", help="mixmatch: clean pool labelled, poison pool unlabelled "
                             "(the paper's purified model); supervised: clean pool only."),
    baseline: bool = typer.Option(False, "--baseline", help="Train the no-defence model on every sample as labelled "
                                  "(no --split needed): the reference DER is measured against."),
    arch: Optional[str] = typer.Option(None, "--arch", help="resnet18, mobilenet_v2 or fastnet (default: the preset's); "
                                       "its standard width unless --set width=... is given."),
    resume: bool = typer.Option(True, "--resume/--no-resume", help="Continue from the checkpoint beside --out "
                                "(OUT.ckpt.h5, written every epoch) when an earlier run was interrupted."),
    preset: str = PresetOpt, config_file: Optional[Path] = ConfigOpt, sets: Optional[List[str]] = SetOpt,
    seed: Optional[int] = SeedOpt, device: Optional[str] = DeviceOpt,
    data_store: Optional[str] = DataStoreOpt, no_cache: bool = NoCacheOpt,
    as_json: bool = JsonOpt, quiet: bool = QuietOpt, force: bool = ForceOpt, verbose: bool = VerboseOpt, skip_bad_files: bool = SkipBadOpt,
) -> None:
    """Train the purified model on a finished split (MixMatch: clean pool labelled, poison pool unlabelled),
    or with --baseline the no-defence model. Writes the weights (one dataset per tensor) with the architecture,
    class names, normalisation, config and the data fingerprint; load them with bsd_audit.artifacts.model.load_model."""
    def body() -> int:
        c = _configure(preset, config_file, sets, data, seed=seed, device=device, data_store=data_store,
                       cache_dir="off" if no_cache else None, skip_bad_files=skip_bad_files or None, arch=arch,
                       # a width meant for the preset's net does not fit another
                       width=0 if arch is not None and "width" not in parse_overrides(sets) else None)
        _print_config(c.cfg, quiet, verbose)
        reporter = _reporter(quiet)
        s = api.train_clean(data, out, c.cfg, split, "baseline" if baseline else mode, resume, reporter,
                            tree=c.tree, force=force).to_dict()
        if as_json:
            print(json.dumps(s, sort_keys=True))
        elif not quiet:
            what = "no-defence baseline" if baseline else f"purified model ({mode})"
            r = s["resumed_from"]
            resumed = f", resumed after epoch {r['epoch']}" if r else ""
            err.print(f"wrote {escape(str(out))}: {what}, {s['arch']}, {s['epochs']} epochs on {s['labelled']} labelled"
                      f" and {s['unlabelled']} unlabelled images{resumed}, {s['wall_time_s']:.0f} s", soft_wrap=True)
        return EXIT_OK

    _run(body)


@app.command("evaluate")
def evaluate_cmd(
    model: Path = typer.Argument(..., help="Weights file from `bsd-audit train-clean`."),
    test: Path = typer.Option(..., "--test", help="Clean test ImageFolder (class folders named as in training)."),
    triggered: Optional[Path] = typer.Option(None, "--triggered", help="Triggered test ImageFolder, images under their "
                                             "TRUE class: gives the ASR."),
    baseline: Optional[Path] = typer.Option(None, "--baseline", help="No-defence weights (train-clean --baseline): gives the DER."),
    truth: Optional[Path] = typer.Option(None, "--truth", help="Benchmark manifest.json: the attack's target for the ASR, "
                                         "and the split's quality (poison recall, poison left in the clean pool, AUROC)."),
    split: Optional[Path] = typer.Option(None, "--split", help="Split artifact to judge with --truth (default: the one "
                                         "the model was trained from)."),
    target: Optional[str] = typer.Option(None, "--target", help="The attack's target class for the ASR (default: from "
                                         "--truth, else the split's estimate stored in the model)."),
    out: Optional[Path] = typer.Option(None, "--out", "-o", help="Also write the metrics as HDF5."),
    min_ca: Optional[float] = typer.Option(None, "--min-ca", help="Exit 5 if the clean accuracy is below this (percent)."),
    max_asr: Optional[float] = typer.Option(None, "--max-asr", help="Exit 5 if the attack success rate is above this (percent)."),
    device: str = typer.Option("auto", "--device", help="auto (GPU when present), cpu, cuda or cuda:N."),
    as_json: bool = JsonOpt, quiet: bool = QuietOpt, force: bool = ForceOpt,
) -> None:
    """CA, ASR and DER of a model, with per-class accuracy and the confusion matrix; the split's quality
    when a ground-truth manifest is given. Percentages throughout. --min-ca / --max-asr gate a CI job (exit 5)."""
    def body() -> int:
        reporter = _reporter(quiet)
        r = api.evaluate(model, test, triggered, baseline, truth, split, target, out, device, min_ca, max_asr, reporter,
                         force)
        s = r.to_dict()
        if as_json:
            print(json.dumps(s, sort_keys=True))
        elif not quiet:
            err.print(metrics_table(s))
            if out is not None:
                err.print(f"wrote {escape(str(out))}", soft_wrap=True)
        for failure in r.thresholds.failures:
            err.print(f"[bold red]threshold:[/bold red] {escape(failure)}")
        return r.thresholds.exit_code

    _run(body)


@app.command("make-benchmark")
def make_benchmark_cmd(
    source: Path = typer.Argument(..., help="A clean ImageFolder (or a folder with train/ and test/ ImageFolders)."),
    out: Path = typer.Argument(..., help="Output folder (must be empty or absent)."),
    attack: str = typer.Option("badnets", "--attack", "-a", help="badnets, blended, wanet, sig or badnets_all2all."),
    rate: float = typer.Option(0.05, "--rate", help="Poisoned share of the training set."),
    target: Optional[str] = typer.Option(None, "--target", help="Target class name (default: the third class)."),
    per_class: Optional[int] = typer.Option(None, "--per-class", help="Keep the first N training images per class."),
    test_per_class: Optional[int] = typer.Option(None, "--test-per-class", help="Keep the first N test images per class."),
    param: Optional[List[str]] = typer.Option(None, "--param", help="Attack parameter, e.g. --param alpha=0.1 (repeatable)."),
    seed: int = typer.Option(0, "--seed", help="Seed for the choice of samples and the trigger."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace an existing output folder."),
    as_json: bool = JsonOpt,
) -> None:
    """Build a poisoned benchmark from a clean ImageFolder, with a ground-truth manifest and a triggered test set."""

    def body() -> int:
        params = {k: json.loads(v) for k, v in parse_overrides(param).items()}
        try:
            m = build_benchmark(source, out, attack, rate=rate, target=target, per_class=per_class,
                                test_per_class=test_per_class, seed=seed, params=params, overwrite=overwrite)
        except ValueError as exc:
            raise BadInputError(str(exc)) from exc
        brief = {k: m[k] for k in ("attack", "params", "rate", "target", "num_train", "num_poisoned", "num_test",
                                   "test_triggered_count")}
        brief["out"] = str(out)
        if as_json:
            print(json.dumps(brief, sort_keys=True))
        else:
            err.print(f"wrote {escape(str(out))}: {m['num_train']} training images, {m['num_poisoned']} poisoned "
                      f"({escape(attack)}, target {escape(str(m['target']))}); manifest {escape(str(out / 'manifest.json'))}",
                      soft_wrap=True)
        return EXIT_OK

    _run(body)


@app.command("config")
def config_cmd(
    preset: str = PresetOpt, config_file: Optional[Path] = ConfigOpt, sets: Optional[List[str]] = SetOpt,
    data: Optional[Path] = typer.Option(None, "--data", help="With --preset auto: the ImageFolder tree whose size "
                                        "picks the preset, as the commands that take DATA do."),
) -> None:
    """Print the resolved config (preset, then file, then --set) as JSON: every field and its value."""

    def body() -> int:
        cfg = _configure(preset, config_file, sets, data).cfg
        print(json.dumps(cfg.to_dict(), indent=2, sort_keys=True))
        return EXIT_OK

    _run(body)


# ---------------------------------------------------------------------------------- reading a split
@app.command("export")
def export_cmd(
    artifact: Path = typer.Argument(..., help="Split artifact (.h5) written by `bsd-audit split`."),
    fmt: str = typer.Option("csv", "--format", "-f", metavar="FORMAT", help="csv (header row, one row per sample) or json "
                            "(one object, schema 1: schema, artifact, target, num_samples, rows)."),
    out: Optional[Path] = typer.Option(None, "--out", "-o", metavar="FILE", help="File to write (atomically); default stdout."),
    top: Optional[int] = typer.Option(None, "--top", "-k", metavar="K", help="Keep only the K most suspicious rows "
                                      "(after --class)."),
    classes: Optional[List[str]] = typer.Option(None, "--class", metavar="NAME", help="Keep only samples labelled NAME "
                                                "(repeatable); ranks stay those of the whole split."),
    quiet: bool = QuietOpt, force: bool = ForceOpt,
) -> None:
    """Export every sample of a split ranked by suspicion: the poison pool first, then by the suspicion
    score (most suspicious first). Columns: rank, index, path, label, pool, oss, als, indicator,
    suspicion, and poisoned when the artifact holds ground truth."""
    def body() -> int:
        e = export(artifact, fmt, top=top, classes=classes, out=out, force=force)
        if out is None:
            sys.stdout.write(e.text)
        elif not quiet:
            err.print(f"wrote {len(e.table.rows)} rows to {escape(str(out))}", highlight=False, soft_wrap=True)
        return EXIT_OK

    _run(body)


@app.command("report")
def report_cmd(
    artifact: Path = typer.Argument(..., help="Split artifact (.h5) written by `bsd-audit split`."),
    data: Path = typer.Option(..., "--data", "-d", metavar="DATA_ROOT", help="Root of the ImageFolder tree the split was run on "
                              "(checked against the artifact's fingerprint)."),
    out: Path = typer.Option(Path("report.html"), "--out", "-o", metavar="FILE", help="HTML file to write (atomically)."),
    top: int = typer.Option(64, "--top", "-k", metavar="K", help="Number of most suspicious images shown as thumbnails."),
    as_json: bool = JsonOpt, quiet: bool = QuietOpt, force: bool = ForceOpt,
) -> None:
    """Write a self-contained HTML report of a split for a human reviewer: a plain-language verdict, the
    target vote, pool sizes per class, ALS and I histograms, and the most suspicious images as
    thumbnails. No network, no script: one file that opens anywhere."""
    def body() -> int:
        s = write_report(artifact, data, out, top, force)
        if as_json:
            print(json.dumps(s, sort_keys=True))
        elif not quiet:
            err.print(f"wrote {escape(str(out))}: target {escape(s['target_name'])}, {s['shown']} most suspicious "
                      "images shown", highlight=False, soft_wrap=True)
        return EXIT_OK

    _run(body)

def _version(value: bool) -> None:
    if value:
        print(f"bsd-audit {__version__}")
        raise typer.Exit(0)


@app.callback()
def main_callback(version: bool = typer.Option(False, "--version", callback=_version, is_eager=True,
                                               help="Print the version and exit.")) -> None:
    """Audit an image dataset for backdoor poisoning with BSD."""


def main() -> None:
    try:
        app()
    except SystemExit as exc:
        if exc.code == EXIT_INTERRUPTED:
            # Every file write was undone or kept whole on the way here; leave without waiting for
            # worker threads, one of which may be blocked on a read that never returns.
            sys.stdout.flush()
            sys.stderr.flush()
            os._exit(EXIT_INTERRUPTED)
        raise


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())

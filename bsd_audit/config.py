"""One config object for every stage, resolved once, printed and stored in every artifact.

Field names follow ../docs/method.md (the paper's symbols spelled out). Presets:

- ``paper``: the paper's settings (App. C.4): ResNet-18, T1=20, T2=90, T3=120, 1024 MixMatch
  iterations per epoch. Meant for a GPU; days on a CPU.
- ``fast``: a CIFAR-10-sized audit in minutes on one GPU: the fast net, fewer epochs and iterations;
  the altruistic warm-up is the cpu preset's, on which the verdict was calibrated.
- ``cpu``: the bundled sample (a few thousand 32x32 images) in minutes on a 2-core CPU.
- ``auto`` (the commands' default): fast on a GPU from AUTO_FAST_MIN_IMAGES images on, cpu otherwise.

Every field can be overridden (``--set name=value`` on the command line, or a JSON/TOML file).
"""

from __future__ import annotations

import dataclasses
import json
import tomllib
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from .errors import UsageError


ARCHS = ("resnet18", "mobilenet_v2", "fastnet")


def altruistic_net_of(fields: dict[str, Any]) -> tuple[str, float]:
    """(arch, width) of g_φ from config fields, a Config's or an artifact's stored ones (which may
    predate altruistic_arch: then g_φ was the main model's net)."""
    if fields.get("altruistic_arch"):
        return fields["altruistic_arch"], fields.get("altruistic_width", 0)
    return fields["arch"], fields["width"]


@dataclass
class Config:
    # --- data
    image_size: int = 32  # working resolution: every image is resized to image_size x image_size
    max_image_pixels: int = 89_478_485  # decompression-bomb guard (PIL's default limit)
    # Where the decoded pixels live (data/store.py): memory = one tensor on the device; disk = the decode
    # cache's file, read batch by batch; auto = disk when they are over half the memory available there.
    data_store: str = "auto"
    # Decode cache folder (data/cache.py): "" = $BSD_AUDIT_CACHE_DIR, else $XDG_CACHE_HOME/bsd-audit, else
    # ~/.cache/bsd-audit; "off" = decode every time (a disk store then uses a nameless temporary file).
    cache_dir: str = ""
    # --- models
    arch: str = "resnet18"  # resnet18 | mobilenet_v2 | fastnet
    width: float = 0  # 0 = the architecture's standard width; else resnet18 base channels, mobilenet_v2 multiplier, fastnet first group
    channels_last: bool = True  # faster convolutions on CPU and tensor cores
    # torch.compile every model where it is built (engine/loops.py new_model). Off by default: compiling
    # costs seconds to minutes per model and again per train/eval mode, which dominates short CPU runs (the cpu
    # preset's whole audit is a few minutes); measure it with benchmarks/speed.py --compile first.
    compile: bool = False
    precision: str = "auto"  # auto (bf16 on CUDA, fp32 elsewhere) | fp32 | bf16
    # Run the main and the altruistic model's updates of a BSD epoch at once (engine/overlap.py): auto = on
    # for one CUDA process without compile, off on a CPU (the two would share its cores) | on | off.
    overlap: str = "auto"
    # --- stage 0: target detection (App. B lines 5-13, App. E.3)
    # g_φ's own net ("" = arch and width). The verdict's thresholds were calibrated on the cpu preset's
    # warm-up (ResNet-18 width 16); the fast preset keeps it, because its fast net's warm-up missed Blended
    # at 2,500, 10,000 and 50,000 images where this one found it (docs/decisions.md).
    altruistic_arch: str = ""
    altruistic_width: float = 0
    altruistic_warmup_epochs: int = 25
    # independent LGA warm-ups whose per-sample evidence is averaged (not in the paper; method/target.py):
    # at a few thousand images one warm-up's fit of a 2-3 % trigger depends on its seed (docs/decisions.md).
    # 0 = auto: AUTO_WARMUPS up to AUTO_WARMUPS_MAX_IMAGES images, 1 above (see warmups_for)
    altruistic_warmups: int = 1
    altruistic_lr: float = 1e-3
    altruistic_batch_size: int = 128
    lga_gamma: float = 0.5  # LGA threshold γ: loss -> sign(loss - γ)·loss
    lga_mode: str = "batch"  # batch: sign on the batch-mean loss (ABL's code) | sample: per-sample sign | off
    loss_window: float = 0.5  # isolation/ALS losses are averaged over this last share of warm-up epochs
    isolation_share: float = 0.01  # share of lowest-loss samples that vote for the target
    altruistic_augment: bool = False  # g_φ should fit the trigger fast: augmentation would blur it
    # --- stage 1: pool initialisation (Sec. 4.1)
    T1: int = 20  # main-model warm-up on D_nt (OSS)
    warmup_lr: float = 2e-3
    warmup_batch_size: int = 128
    beta: float = 0.2  # OSS share of D_t kept as clean, and α_start (Decision in method.md)
    oss_distance: str = "min"  # min | mean | max over non-target class means (App. E.2)
    oss_normalize: bool = True  # L2-normalise features and means before the distance (Decision, see docs)
    init_combine: str = "intersection"  # eq. 3 (intersection) or Algorithm 1 line 22 (union)
    stop_after_init: bool = False  # quick gating mode (split --init-only): stop once the initial pools exist
    # --- stages 2-3: pool updates (Sec. 4.2)
    init_fixed_epochs: int = 10  # epochs [T1, T1+init_fixed_epochs) train on the fixed init pools
    T2: int = 90
    T3: int = 120
    alpha: float = 0.6  # final clean-pool share α
    sce_alpha: float = 0.1
    sce_beta: float = 1.0
    sce_log_clip: float = -4.0  # A: log(0) is clipped to this in RCE
    class_completion: bool = True
    completion_scope: str = "all"  # fewest: eq. 8 as printed (one class) | all: every class below the median (Decision)
    selective_drop: bool = True
    exclude_suspicious: bool = True  # the verdict's suspicious list never enters the clean pool (Decision)
    target_keep: str = "fit_rank"  # D_t's least trigger-like samples stay clean through completion and drop (Decision): fit_rank | als | off
    target_keep_share: float = 0.1  # share of D_t kept that way
    # --- MixMatch (ASD's settings)
    mixmatch_iterations: int = 1024
    mixmatch_batch_size: int = 64
    mixmatch_lr: float = 2e-3
    mixmatch_K: int = 2
    mixmatch_temperature: float = 0.5
    mixmatch_mixup_alpha: float = 0.75
    mixmatch_lambda_u: float = 15.0
    mixmatch_rampup: int = 120
    # --- train-clean: the purified model (and the no-defence baseline)
    purify_epochs: int = 120  # the paper's run length; λ_u ramps up over all of them
    # split: start from the split's main model when it has the same architecture (Decision: it has
    # already trained on the final pools the same way) | scratch: new weights, as the paper's table
    purify_init: str = "split"
    # --- augmentation (batch-level, on the device)
    aug_translate: int = 4  # reflect-pad then random crop, in pixels
    aug_flip: bool = True
    # --- machinery
    eval_batch_size: int = 512
    seed: int = 0
    device: str = "auto"  # auto | cpu | cuda | cuda:N
    threads: int = 0  # CPU threads; 0 = every core
    preset: str = "paper"
    extra: dict = field(default_factory=dict)  # free-form notes stored with the config

    # ---------------------------------------------------------------- derived
    @property
    def altruistic_net(self) -> tuple[str, float]:
        """(arch, width) of the altruistic model g_φ."""
        return altruistic_net_of(vars(self))

    @property
    def stage2_start(self) -> int:
        """First epoch of the class-completion stage (T1 + init_fixed_epochs)."""
        return self.T1 + self.init_fixed_epochs

    def validate(self) -> "Config":
        def need(cond: bool, msg: str):
            if not cond:
                raise UsageError(f"invalid config: {msg}")

        for prefix, arch, width in (("", self.arch, self.width), ("altruistic_", *self.altruistic_net)):
            need(arch in ARCHS, f"{prefix}arch {arch!r} is not one of {', '.join(ARCHS)}")
            if arch == "mobilenet_v2":
                need(0 <= width <= 4, f"mobilenet_v2 {prefix}width is a channel multiplier (0 = 1.0, at most 4), got "
                     f"{width}; set {prefix}width explicitly when changing {prefix}arch")
            else:
                need(width == 0 or (width >= 4 and float(width).is_integer()),
                     f"{arch} {prefix}width is a channel count (an integer >= 4, or 0 for the standard width), got {width}")
        need(0 < self.beta <= self.alpha < 1, f"need 0 < beta ({self.beta}) <= alpha ({self.alpha}) < 1")
        need(0 < self.isolation_share < 1, "isolation_share must be in (0, 1)")
        need(self.T1 >= 1, "T1 must be >= 1")
        need(self.T1 + self.init_fixed_epochs < self.T2 <= self.T3,
             f"need T1 + init_fixed_epochs < T2 <= T3 (got {self.T1}+{self.init_fixed_epochs}, {self.T2}, {self.T3})")
        need(self.altruistic_warmup_epochs >= 1, "altruistic_warmup_epochs must be >= 1")
        need(self.altruistic_warmups >= 0, "altruistic_warmups must be >= 1, or 0 for auto")
        need(self.oss_distance in ("min", "mean", "max"), "oss_distance must be min, mean or max")
        need(self.completion_scope in ("fewest", "all"), "completion_scope must be fewest or all")
        need(self.init_combine in ("intersection", "union"), "init_combine must be intersection or union")
        need(self.target_keep in ("fit_rank", "als", "off"), "target_keep must be fit_rank, als or off")
        need(0 < self.target_keep_share < 1, "target_keep_share must be in (0, 1)")
        need(self.lga_mode in ("batch", "sample", "off"), "lga_mode must be batch, sample or off")
        need(0 < self.loss_window <= 1, "loss_window must be in (0, 1]")
        need(self.precision in ("auto", "fp32", "bf16"), "precision must be auto, fp32 or bf16")
        need(self.overlap in ("auto", "on", "off"), f"overlap must be auto, on or off, got {self.overlap!r}")
        need(self.image_size >= 8, "image_size must be >= 8")
        need(self.data_store in ("auto", "memory", "disk"), f"data_store must be auto, memory or disk, got {self.data_store!r}")
        need(self.purify_epochs >= 1, "purify_epochs must be >= 1")
        need(self.purify_init in ("split", "scratch"), "purify_init must be split or scratch")
        need(self.mixmatch_iterations >= 1 and self.mixmatch_batch_size >= 2, "MixMatch needs iterations >= 1, batch >= 2")
        need(isinstance(self.compile, bool), f"compile must be true or false, got {self.compile!r}")
        if self.compile:
            import torch
            need(hasattr(torch.nn.Module, "compile"), f"compile=true needs torch >= 2.2 (this is {torch.__version__})")
        return self

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), sort_keys=True)


PRESETS: dict[str, dict[str, Any]] = {
    "paper": {},
    # A CIFAR-10-sized audit in minutes on one GPU: the airbench-style net, a third of the epochs
    # and a tenth of the iterations; schedules keep the paper's proportions. The altruistic warm-up is
    # the cpu preset's, on which the verdict was calibrated (the fast net's missed Blended at every size).
    "fast": dict(
        arch="fastnet", width=64, altruistic_arch="resnet18", altruistic_width=16, altruistic_warmup_epochs=14,
        altruistic_warmups=0, altruistic_batch_size=128, warmup_batch_size=512,
        T1=12, init_fixed_epochs=3, T2=30, T3=40, mixmatch_iterations=100, mixmatch_batch_size=128,
        mixmatch_rampup=40, eval_batch_size=2048, purify_epochs=40,
    ),
    # The bundled sample (2,500 images) on a 2-core CPU in minutes. Detection keeps 14 LGA epochs:
    # at this scale the trigger is fitted only from epoch 6-8 on, and with 10 epochs the vote was
    # wrong on a BadNets benchmark in one run of two (docs/decisions.md).
    "cpu": dict(
        arch="resnet18", width=16, altruistic_warmup_epochs=14, altruistic_warmups=0, T1=10, init_fixed_epochs=2,
        T2=18, T3=22, mixmatch_iterations=24, mixmatch_batch_size=64, mixmatch_rampup=22, eval_batch_size=500,
        purify_epochs=30,
    ),
}


# altruistic_warmups=0 (the cpu and fast presets): pool three warm-ups on small data, where one
# warm-up's verdict on a 2-3 % trigger was measured to depend on its seed (2,500 images, 20 steps an
# epoch); above 10,000 images a warm-up takes four times the steps or more, and a 50,000-image warm-up
# already costs 15 minutes on a 2-core CPU, so one it is (docs/decisions.md).
AUTO_WARMUPS = 3
AUTO_WARMUPS_MAX_IMAGES = 10_000


def warmups_for(cfg: Config, num_images: int) -> int:
    """How many LGA warm-ups stage 0 runs on ``num_images`` images (``altruistic_warmups``, 0 = auto)."""
    if cfg.altruistic_warmups:
        return cfg.altruistic_warmups
    return AUTO_WARMUPS if num_images <= AUTO_WARMUPS_MAX_IMAGES else 1


def lga_epochs(cfg: Config, num_images: int) -> int:
    """LGA epochs over all warm-ups: what stage 0 costs, in passes over D."""
    return cfg.altruistic_warmup_epochs * warmups_for(cfg, num_images)


_TYPES = {"int": int, "float": float, "bool": bool, "str": str, "dict": dict}


def _coerce(name: str, raw: Any) -> Any:
    """Turn a command-line or file value into the declared type of the field it overrides."""
    kind = _TYPES[Config.__dataclass_fields__[name].type]
    if kind is bool:
        if isinstance(raw, bool):
            return raw
        low = str(raw).lower()
        if low in ("1", "true", "yes", "on"):
            return True
        if low in ("0", "false", "no", "off"):
            return False
        raise UsageError(f"config field {name} expects true/false, got {raw!r}")
    try:
        if kind is dict:
            value = json.loads(raw) if isinstance(raw, str) else raw
            if not isinstance(value, dict):
                raise ValueError
            return value
        if kind is int and isinstance(raw, float) and not raw.is_integer():
            raise ValueError
        return kind(raw)
    except (ValueError, TypeError) as exc:
        raise UsageError(f"config field {name} expects {'an' if kind is int else 'a'} {kind.__name__}, got {raw!r}") from exc


# The fast preset is for CIFAR-10-sized data: its main model trains in 512-image batches, 5 steps an
# epoch on 2,500 images. (Its own warm-up once missed Blended at every size; it now warms up as cpu does.)
AUTO_FAST_MIN_IMAGES = 50_000


def auto_preset(device: str = "auto", num_images: int | None = None) -> str:
    """What ``--preset auto`` means here: fast on a GPU for a CIFAR-10-sized dataset, cpu otherwise
    (the cpu preset's small net is quick on a GPU too)."""
    if num_images is not None and num_images < AUTO_FAST_MIN_IMAGES:
        return "cpu"
    if device == "cpu":
        return "cpu"
    if str(device).startswith("cuda"):
        return "fast"
    import torch
    return "fast" if torch.cuda.is_available() else "cpu"


def resolve_config(preset: str = "paper", overrides: dict[str, Any] | None = None,
                   config_file: Path | None = None, num_images: int | None = None) -> Config:
    """Preset (``auto``: see ``auto_preset``; ``num_images`` is the dataset's size when known), then
    the config file, then explicit overrides (later wins)."""
    file_layer = load_config_file(config_file) if config_file is not None else {}
    if preset == "auto":
        device = (overrides or {}).get("device", file_layer.get("device", "auto"))
        preset = auto_preset(str(device), num_images)
    if preset not in PRESETS:
        raise UsageError(f"unknown preset {preset!r}; choose one of {', '.join(PRESETS)}")
    cfg = Config(preset=preset)
    layers: list[dict[str, Any]] = [PRESETS[preset], file_layer, overrides or {}]
    known = {f.name: f for f in fields(Config)}
    for layer in layers:
        for name, raw in layer.items():
            if name not in known:
                raise UsageError(f"unknown config field {name!r}; see `bsd-audit config --preset {preset}` for the list")
            setattr(cfg, name, _coerce(name, raw))
    return cfg.validate()


def load_config_file(path: Path) -> dict[str, Any]:
    path = Path(path)
    try:
        text = path.read_text()
    except OSError as exc:
        raise UsageError(f"cannot read config file {path}: {exc.strerror}") from exc
    try:
        data = tomllib.loads(text) if path.suffix == ".toml" else json.loads(text)
    except (ValueError, tomllib.TOMLDecodeError) as exc:
        raise UsageError(f"config file {path} is not valid {'TOML' if path.suffix == '.toml' else 'JSON'}: {exc}") from exc
    if not isinstance(data, dict):
        raise UsageError(f"config file {path} must hold a table of field = value")
    return data


def parse_overrides(pairs: list[str] | None) -> dict[str, str]:
    """`--set name=value` pairs into a dict."""
    out: dict[str, str] = {}
    for pair in pairs or []:
        if "=" not in pair:
            raise UsageError(f"--set expects name=value, got {pair!r}")
        name, value = pair.split("=", 1)
        out[name.strip()] = value.strip()
    return out

"""One config object for every stage, resolved once, printed and stored in every artifact.

Field names follow docs/method.md (the paper's symbols spelled out). Presets:

- ``paper``: the paper's settings (App. C.4): ResNet-18, T1=20, T2=90, T3=120, 1024 MixMatch
  iterations per epoch. Meant for a GPU; days on a CPU.
- ``fast``: a CIFAR-10-sized audit in minutes on one GPU: the fast net, fewer epochs and iterations;
  the altruistic warm-up is the cpu preset's, on which the verdict was calibrated.
- ``cpu``: the bundled sample (a few thousand 32x32 images) in minutes on a 2-core CPU.
- ``auto`` (the commands' default): fast on a GPU from AUTO_FAST_MIN_IMAGES images on, cpu otherwise.

Every field can be overridden (``--set name=value`` on the command line, or a JSON/TOML file).
The fields are a pydantic model: values from the command line and files are converted to each
field's type and checked against its range where the config is built, once (docs/decisions/).
"""

from __future__ import annotations

import json
import re
import tomllib
from pathlib import Path
from typing import Any, Literal, Mapping

import torch
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from .errors import UsageError


ARCHS = ("resnet18", "mobilenet_v2", "fastnet")
Arch = Literal["resnet18", "mobilenet_v2", "fastnet"]


def altruistic_net_of(fields: Mapping[str, Any]) -> tuple[str, float]:
    """(arch, width) of g_φ from config fields (a Config's, or an artifact's stored ones): its own net,
    or the main model's when altruistic_arch is empty."""
    if fields.get("altruistic_arch"):
        return fields["altruistic_arch"], fields.get("altruistic_width", 0)
    return fields["arch"], fields["width"]


class Config(BaseModel):
    model_config = ConfigDict(extra="forbid")

    # --- data
    # Working resolution: every image is resized whole to image_size x image_size. auto = from the
    # data's own sizes (median short side, a multiple of 32), at most image_size_cap, never upscaled
    # (data/sizes.py); the run's config holds the size it chose: 32 px for CIFAR-like thumbnails, 128 px
    # for photos with the cpu preset, where a small patch survives (docs/decisions/0028-working-size-and-stems.md).
    image_size: int | Literal["auto"] = "auto"
    image_size_cap: int = Field(224, ge=8, le=1024)
    max_image_pixels: int = Field(89_478_485, ge=1)
    # Leave unusable image files out (listed in the summary and the artifact) instead of refusing the tree.
    skip_bad_files: bool = False  # decompression-bomb guard (PIL's default limit)
    # Where the decoded pixels live (data/store.py): memory = one tensor on the device; disk = the decode
    # cache's file, read batch by batch; auto = disk when they are over half the memory available there.
    data_store: Literal["auto", "memory", "disk"] = "auto"
    # Decode cache folder (data/cache.py): "" = $BSD_AUDIT_CACHE_DIR, else $XDG_CACHE_HOME/bsd-audit, else
    # ~/.cache/bsd-audit; "off" = decode every time (a disk store then uses a nameless temporary file).
    cache_dir: str = ""
    # --- models
    arch: Arch = "resnet18"  # resnet18 | mobilenet_v2 | fastnet
    width: float = Field(0, ge=0)  # 0 = the architecture's standard width; else resnet18 base channels, mobilenet_v2 multiplier, fastnet first group
    channels_last: bool = True  # faster convolutions on CPU and tensor cores
    # torch.compile every model where it is built (training/loops.py new_model). Off by default: compiling
    # costs seconds to minutes per model and again per train/eval mode, which dominates short CPU runs (the cpu
    # preset's whole audit is a few minutes); measure it with benchmarks/speed.py --compile first.
    compile: bool = False
    # auto: bf16 on a GPU that has it and on a CPU with native bf16 arithmetic (AVX512-BF16, AMX, Arm's BF16),
    # fp32 elsewhere (training/runtime.py, docs/decisions/0030-bf16-on-cpus.md) | fp32 | bf16
    precision: Literal["auto", "fp32", "bf16"] = "auto"
    # Run the main and the altruistic model's updates of a BSD epoch at once (training/overlap.py): auto = on
    # for one CUDA process without compile, off on a CPU (the two would share its cores) | on | off.
    overlap: Literal["auto", "on", "off"] = "auto"
    # --- stage 0: target detection (App. B lines 5-13, App. E.3)
    # g_φ's own net ("" = arch and width). The verdict's thresholds were calibrated on the cpu preset's
    # warm-up (ResNet-18 width 16); the fast preset keeps it, because its fast net's warm-up missed Blended
    # at 2,500, 10,000 and 50,000 images where this one found it (docs/decisions/0015-fast-keeps-cpu-altruistic-net.md).
    altruistic_arch: str = ""
    altruistic_width: float = Field(0, ge=0)
    altruistic_warmup_epochs: int = Field(25, ge=1)
    # independent LGA warm-ups whose per-sample evidence is averaged (not in the paper; method/target.py):
    # at a few thousand images one warm-up's fit of a 2-3 % trigger depends on its seed (docs/decisions/0013-pooled-warmups.md).
    # 0 = auto: AUTO_WARMUPS up to AUTO_WARMUPS_MAX_IMAGES images, 1 above (see warmups_for)
    altruistic_warmups: int = Field(1, ge=0)
    altruistic_lr: float = Field(1e-3, ge=0)
    altruistic_batch_size: int = Field(128, ge=1)
    lga_gamma: float = Field(0.5, ge=0)  # LGA threshold γ: loss -> sign(loss - γ)·loss
    lga_mode: Literal["batch", "sample", "off"] = "batch"  # batch: sign on the batch-mean loss (ABL's code) | sample: per-sample sign | off
    loss_window: float = Field(0.5, gt=0, le=1)  # isolation/ALS losses are averaged over this last share of warm-up epochs
    isolation_share: float = Field(0.01, gt=0, lt=1)  # share of lowest-loss samples that vote for the target
    altruistic_augment: bool = False  # g_φ should fit the trigger fast: augmentation would blur it
    # The verdict's held-out check (method/holdout.py): the main net trained for holdout_epochs on D without
    # each class's first-fitted holdout_share; 0 epochs = no check (the verdict then reads the fit ranks alone).
    holdout_epochs: int = Field(15, ge=0)
    holdout_share: float = Field(0.5, gt=0, lt=1)
    # --- stage 1: pool initialisation (Sec. 4.1)
    T1: int = Field(20, ge=1)  # main-model warm-up on D_nt (OSS)
    warmup_lr: float = Field(2e-3, ge=0)
    warmup_batch_size: int = Field(128, ge=1)
    beta: float = Field(0.2, gt=0, lt=1)  # OSS share of D_t kept as clean, and α_start (Decision in method.md)
    oss_distance: Literal["min", "mean", "max"] = "min"  # min | mean | max over non-target class means (App. E.2)
    oss_normalize: bool = True  # L2-normalise features and means before the distance (Decision, see docs)
    init_combine: Literal["intersection", "union"] = "intersection"  # eq. 3 (intersection) or Algorithm 1 line 22 (union)
    stop_after_init: bool = False  # quick gating mode (split --init-only): stop once the initial pools exist
    # --- stages 2-3: pool updates (Sec. 4.2)
    init_fixed_epochs: int = Field(10, ge=0)  # epochs [T1, T1+init_fixed_epochs) train on the fixed init pools
    T2: int = Field(90, ge=1)
    T3: int = Field(120, ge=1)
    alpha: float = Field(0.6, gt=0, lt=1)  # final clean-pool share α
    sce_alpha: float = Field(0.1, ge=0)
    sce_beta: float = Field(1.0, ge=0)
    sce_log_clip: float = Field(-4.0, lt=0)  # A: log(0) is clipped to this in RCE
    class_completion: bool = True
    completion_scope: Literal["fewest", "all"] = "all"  # fewest: eq. 8 as printed (one class) | all: every class below the median (Decision)
    selective_drop: bool = True
    exclude_suspicious: bool = True  # the verdict's suspicious list never enters the clean pool (Decision)
    # D_t's least trigger-like samples stay clean through completion and drop (docs/decisions/0008-target-keep.md):
    # trigger = by the trigger's match where coherence read the target's trigger, by fit rank elsewhere | fit_rank | als | off
    target_keep: Literal["trigger", "fit_rank", "als", "off"] = "trigger"
    target_keep_share: float = Field(0.2, gt=0, lt=1)  # share of D_t kept that way
    # --- MixMatch (ASD's settings)
    mixmatch_iterations: int = Field(1024, ge=1)
    mixmatch_batch_size: int = Field(64, ge=2)
    mixmatch_lr: float = Field(2e-3, ge=0)
    mixmatch_K: int = Field(2, ge=1)
    mixmatch_temperature: float = Field(0.5, gt=0)
    mixmatch_mixup_alpha: float = Field(0.75, gt=0)
    mixmatch_lambda_u: float = Field(15.0, ge=0)
    mixmatch_rampup: int = Field(120, ge=1)
    # --- train-clean: the purified model (and the no-defence baseline)
    purify_epochs: int = Field(120, ge=1)  # the paper's run length; λ_u ramps up over all of them
    # split: start from the split's main model when it has the same architecture (Decision: it has
    # already trained on the final pools the same way) | scratch: new weights, as the paper's table
    purify_init: Literal["split", "scratch"] = "split"
    # pool: align MixMatch's guesses to the unlabelled pool's class shares, the target class left as
    # guessed (Decision: without it the small classes of an imbalanced set are guessed as the largest
    # one) | off: MixMatch as the split runs it
    purify_align: Literal["pool", "off"] = "pool"
    # --- augmentation (batch-level, on the device)
    aug_translate: int = Field(4, ge=0)  # reflect-pad then random crop, in pixels at 32 px (scaled up with larger working sizes)
    aug_flip: bool = True
    # --- machinery
    eval_batch_size: int = Field(512, ge=1)
    seed: int = Field(0, ge=0, lt=2**63)
    device: str = "auto"  # auto | cpu | cuda | cuda:N
    threads: int = Field(0, ge=0)  # CPU threads; 0 = every core
    preset: str = "paper"
    extra: dict = Field(default_factory=dict)  # free-form notes stored with the config


    # ---------------------------------------------------------------- derived
    @property
    def altruistic_net(self) -> tuple[str, float]:
        """(arch, width) of the altruistic model g_φ."""
        return altruistic_net_of(vars(self))

    @property
    def translate_px(self) -> int:
        """aug_translate at the working size: photos get the share of the image CIFAR's 4 of 32 px is;
        thumbnails of 32 px or less keep aug_translate itself, as CIFAR-style training does."""
        size = 32 if self.image_size == "auto" else max(self.image_size, 32)
        return int(round(self.aug_translate * size / 32))

    @property
    def stage2_start(self) -> int:
        """First epoch of the class-completion stage (T1 + init_fixed_epochs)."""
        return self.T1 + self.init_fixed_epochs

    @model_validator(mode="after")
    def _consistent(self) -> "Config":
        """Checks that span several fields (each field's own range is in its declaration)."""
        def need(cond: bool, msg: str):
            if not cond:
                raise ValueError(msg)

        for prefix, arch, width in (("", self.arch, self.width), ("altruistic_", *self.altruistic_net)):
            need(arch in ARCHS, f"{prefix}arch {arch!r} is not one of {', '.join(ARCHS)}")
            if arch == "mobilenet_v2":
                need(0 <= width <= 4, f"mobilenet_v2 {prefix}width is a channel multiplier (0 = 1.0, at most 4), got "
                     f"{width}; set {prefix}width explicitly when changing {prefix}arch")
            else:
                need(width == 0 or (width >= 4 and float(width).is_integer()),
                     f"{arch} {prefix}width is a channel count (an integer >= 4, or 0 for the standard width), got {width}")
        need(self.beta <= self.alpha, f"need 0 < beta ({self.beta}) <= alpha ({self.alpha}) < 1")
        need(self.T1 + self.init_fixed_epochs < self.T2 <= self.T3,
             f"need T1 + init_fixed_epochs < T2 <= T3 (got {self.T1}+{self.init_fixed_epochs}, {self.T2}, {self.T3})")
        need(not self.compile or hasattr(torch.nn.Module, "compile"),
             f"compile=true needs torch >= 2.2 (this is {torch.__version__})")
        return self

    @field_validator("image_size")
    @classmethod
    def _image_size(cls, value):
        if value != "auto" and not 8 <= value <= 1024:
            raise ValueError(f"image_size is auto or a side in pixels from 8 to 1024, got {value}")
        return value

    @field_validator("device")
    @classmethod
    def _device(cls, value: str) -> str:
        if not re.fullmatch(r"auto|cpu|cuda(:[0-9]+)?", value):
            raise ValueError("the device is auto, cpu, cuda or cuda:N (this tool runs on NVIDIA GPUs or the CPU)")
        return value

    @field_validator("extra", mode="before")
    @classmethod
    def _json_object(cls, raw: Any) -> Any:
        return json.loads(raw) if isinstance(raw, str) else raw

    def __init__(self, **values: Any):
        try:
            super().__init__(**values)
        except ValidationError as exc:
            raise UsageError(f"invalid config: {_describe(exc)}") from None

    def to_dict(self) -> dict[str, Any]:
        return self.model_dump()

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
    # wrong on a BadNets benchmark in one run of two (docs/decisions/0006-cpu-preset-warmup.md).
    "cpu": dict(
        arch="resnet18", width=16, altruistic_warmup_epochs=14, altruistic_warmups=0, T1=10, init_fixed_epochs=2,
        T2=18, T3=22, mixmatch_iterations=24, mixmatch_batch_size=64, mixmatch_rampup=22, eval_batch_size=500,
        purify_epochs=30, image_size_cap=128,
    ),
}


# altruistic_warmups=0 (the cpu and fast presets): pool three warm-ups on small data, where one
# warm-up's verdict on a 2-3 % trigger was measured to depend on its seed (2,500 images, 20 steps an
# epoch); above 10,000 images a warm-up takes four times the steps or more, and a 50,000-image warm-up
# already costs 15 minutes on a 2-core CPU, so one it is (docs/decisions/0013-pooled-warmups.md).
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


def _describe(exc: ValidationError) -> str:
    """A pydantic error as one line per field: name, the value given, what it must be."""
    parts = []
    for e in exc.errors():
        name = ".".join(str(x) for x in e["loc"])
        msg = e["msg"].removeprefix("Value error, ")
        parts.append(f"{name} {e['input']!r}: {msg}" if name else msg)
    return "; ".join(parts)


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
    values: dict[str, Any] = {}
    for layer in (PRESETS[preset], file_layer, overrides or {}):
        for name in layer:
            if name not in Config.model_fields:
                raise UsageError(f"unknown config field {name!r}; see `bsd-audit config --preset {preset}` for the list")
        values.update(layer)
    return Config(**{**values, "preset": preset})


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

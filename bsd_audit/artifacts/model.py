"""Model weights files (kind ``model``): what train-clean writes and evaluate reads; this module alone
writes and reads them.

Besides the common provenance (artifacts/h5.py) a model file holds, as root attributes:
``arch``, ``width``, ``image_size``, ``mode`` (mixmatch | supervised | baseline), ``norm_mean`` and
``norm_std`` (the input normalisation, 0-1 scale), ``target`` / ``target_name`` (the split's ỹ_t,
-1 / "" for the baseline), ``split_path`` and ``split_created``; the group ``/weights/model`` holds
one dataset per tensor of the state dict (no pickle); ``/history`` the per-epoch loss.

Load one back with :func:`load_model`::

    from bsd_audit.artifacts.model import load_model
    m = load_model("purified.h5")          # m.module is a torch.nn.Module in eval mode
    logits = m.predict(images)             # uint8 or 0-1 float, NCHW or NHWC, numpy or torch
    names = [m.classes[i] for i in logits.argmax(1)]
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch import nn

from ..data.memory import as_uint8_nchw, at_size
from ..errors import BadInputError
from ..training.nets import build_model
from .h5 import atomic_h5, open_artifact, read_tensors, strings, write_provenance, write_tensors


@dataclass
class LoadedModel:
    module: nn.Module  # in eval mode, on ``device``
    classes: list[str]
    image_size: int
    mean: list[float]
    std: list[float]
    arch: str
    width: float
    mode: str
    target: int  # the split's ỹ_t the model was purified against; -1 for a baseline
    fingerprint: str  # of the training data
    config: dict
    attrs: dict = field(default_factory=dict)

    @property
    def device(self) -> torch.device:
        return next(self.module.parameters()).device

    @torch.no_grad()
    def predict(self, images, batch_size: int = 512) -> torch.Tensor:
        """Logits (float32, N x C), normalised as in training. ``images``: numpy or torch, uint8 (0-255)
        or float (0-1), N x 3 x H x W or N x H x W x 3; resized to ``image_size`` when another size.
        Anything else is refused with a BadInputError that says what was expected."""
        images_u8 = at_size(as_uint8_nchw(images), self.image_size)
        dev = self.device
        mean = torch.tensor(self.mean, device=dev).view(1, 3, 1, 1) * 255
        std = torch.tensor(self.std, device=dev).view(1, 3, 1, 1) * 255
        out = []
        for start in range(0, len(images_u8), batch_size):
            x = (images_u8[start:start + batch_size].to(dev).float() - mean) / std
            out.append(self.module(x).float())
        return torch.cat(out) if out else torch.zeros(0, len(self.classes), device=dev)


def write_model(path: Path, model: nn.Module, ds, cfg, device: str, mode: str, mean, std,
                         target: int, split_path: str, split_created: str, history: list[dict],
                         summary: dict) -> None:
    with atomic_h5(path) as f:
        write_provenance(f, "model", cfg, ds, device)
        f.attrs.update({
            "arch": cfg.arch, "width": cfg.width, "image_size": cfg.image_size, "mode": mode,
            "norm_mean": np.asarray(mean, dtype=np.float64), "norm_std": np.asarray(std, dtype=np.float64),
            "target": target, "target_name": ds.classes[target] if target >= 0 else "",
            "split_path": split_path, "split_created": split_created, "summary": json.dumps(summary, sort_keys=True),
        })
        write_tensors(f.create_group("weights/model"), {k: v.detach().cpu() for k, v in model.state_dict().items()})
        h = f.create_group("history")
        h.create_dataset("epoch", data=np.array([r["epoch"] for r in history], dtype=np.int64))
        h.create_dataset("loss", data=np.array([r["loss"] for r in history], dtype=np.float64))


def load_model(path: Path | str, device: torch.device | str = "cpu") -> LoadedModel:
    """Read a model file written by ``bsd-audit train-clean`` into a torch module (eval mode).

    Raises BadInputError, naming the file, for anything that is not a complete model file."""
    path = Path(path)
    with open_artifact(path, "model") as f:
        try:
            classes = strings(f["classes"])
            attrs = {k: (v.tolist() if isinstance(v, np.ndarray) else v) for k, v in f.attrs.items()}
            module = build_model(str(attrs["arch"]), len(classes), float(attrs["width"]), int(attrs["image_size"]))
            state = read_tensors(f["weights/model"])
        except KeyError as exc:
            raise BadInputError(f"{path}: incomplete model file (missing {exc}). Re-run train-clean.") from exc
        except (OSError, RuntimeError, ValueError) as exc:
            raise BadInputError(f"{path}: damaged model file ({exc}). Re-run train-clean.") from exc
    try:
        module.load_state_dict(state)
    except RuntimeError as exc:
        raise BadInputError(f"{path}: weights do not fit a {attrs['arch']} of width {attrs['width']} "
                            f"({str(exc).splitlines()[0]}). The file is damaged; re-run train-clean.") from exc
    module.to(device).eval()
    return LoadedModel(module=module, classes=classes, image_size=int(attrs["image_size"]),
                       mean=[float(v) for v in attrs["norm_mean"]], std=[float(v) for v in attrs["norm_std"]],
                       arch=str(attrs["arch"]), width=float(attrs["width"]), mode=str(attrs["mode"]),
                       target=int(attrs["target"]), fingerprint=str(attrs["fingerprint"]),
                       config=json.loads(attrs["config"]), attrs=attrs)

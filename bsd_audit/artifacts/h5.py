"""What every HDF5 artifact shares: provenance, atomic writes, tensors without pickle, validated opening.

Every file carries, as root attributes: ``schema_version``, ``kind`` (target | split | ...),
``tool_version``, ``created`` (UTC ISO time), ``config`` (the resolved config as JSON), ``seed``,
``device``, ``fingerprint`` (of the dataset), ``data_root``, ``num_samples``, ``num_classes``.
Per-sample arrays are datasets aligned with ``/samples/path``. Tensors (weights, optimiser state)
are stored one dataset per tensor: nothing is ever pickled, so reading a file runs no code.
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import errno
import json
import os
import re
from pathlib import Path
from typing import Any, Iterator

import h5py
import numpy as np
import torch

from .. import __version__
from ..errors import BadInputError
from ..training.distributed import is_main
from .outputs import write_hint

SCHEMA_VERSION = 1
_STR = h5py.string_dtype("utf-8")


@contextlib.contextmanager
def atomic_path(path: Path) -> Iterator[Path]:
    """A temporary path beside ``path``, renamed onto it only once the block finished writing it.

    A crash, a kill or a full disk leaves the previous file (if any) untouched and no partial file.
    The block must make its bytes durable (fsync) before it ends.
    """
    path = Path(path)
    if path.parent and not path.parent.exists():
        raise BadInputError(f"{path.parent}: output folder does not exist. Create it or choose another --out.")
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    try:
        yield tmp
        os.replace(tmp, path)
    except BaseException as exc:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
        # A full disk or an unwritable folder is the user's to fix, not a bug: say so, with the path,
        # instead of an internal error and a traceback.
        code = _write_errno(exc)
        if code in _WRITE_ERRNOS:
            kept = "; the previous file is unchanged" if path.exists() else ""
            raise BadInputError(f"{path}: cannot be written ({os.strerror(code)}); nothing was written{kept}. "
                                + write_hint(code)) from exc
        raise


@contextlib.contextmanager
def atomic_h5(path: Path) -> Iterator[h5py.File]:
    """Write an HDF5 file through atomic_path. Under torchrun only rank 0 writes: the other ranks
    run the same writing code into an in-memory file that is never stored (training/distributed.py)."""
    if not is_main():
        with h5py.File(f"{Path(path).name}.rank-{os.getpid()}", "w", driver="core", backing_store=False) as f:
            yield f
        return
    with atomic_path(path) as tmp:
        with h5py.File(tmp, "w") as f:
            yield f
        with open(tmp, "rb") as fh:  # make the bytes durable before the rename publishes them
            os.fsync(fh.fileno())


# errno values of a failed write that the user can fix (space, quota, file size limit, permissions)
_WRITE_ERRNOS = {errno.ENOSPC, errno.EDQUOT, errno.EFBIG, errno.EACCES, errno.EPERM, errno.EROFS}


def _write_errno(exc: BaseException) -> int | None:
    """The errno of a failed write. An OSError carries it; h5py often reports an I/O failure as an
    OSError or RuntimeError whose errno is only in the text ("... errno = 28, error message = ...")."""
    if not isinstance(exc, (OSError, RuntimeError)):
        return None
    if isinstance(exc, OSError) and exc.errno is not None:
        return exc.errno
    m = re.search(r"errno = (\d+)", str(exc))
    return int(m.group(1)) if m else None


def write_provenance(f: h5py.File, kind: str, cfg, ds, device: str) -> None:
    f.attrs.update({
        "schema_version": SCHEMA_VERSION, "kind": kind, "tool_version": __version__,
        "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "config": cfg.to_json(), "seed": cfg.seed, "device": device, "fingerprint": ds.fingerprint,
        "data_root": str(ds.root), "num_samples": len(ds), "num_classes": ds.num_classes,
        "skipped_bad_files": json.dumps([{"path": rel, "error": why} for rel, why in ds.bad_files]),
    })
    f.create_dataset("classes", data=np.array(ds.classes, dtype=object), dtype=_STR)
    g = f.create_group("samples")
    g.create_dataset("path", data=np.array(ds.paths, dtype=object), dtype=_STR)
    g.create_dataset("label", data=ds.labels.cpu().numpy())


def write_tensors(group: h5py.Group, tensors: dict[str, torch.Tensor]) -> None:
    """One dataset per tensor, named by its key (dots kept: h5py names may hold them)."""
    for name, t in tensors.items():
        arr = t.detach().cpu()
        if arr.dtype == torch.bfloat16:
            arr = arr.float()
        group.create_dataset(name, data=arr.numpy())


def members(group: h5py.Group, kind: type) -> Iterator[tuple[str, Any]]:
    """(name, member) of a group, each checked to be ``kind``: a damaged file's dangling link reads
    as None, which must be reported as a missing entry (KeyError), not crash later."""
    for name in group:
        member = group.get(name)
        if not isinstance(member, kind):
            raise KeyError(f"{group.name}/{name}")
        yield name, member


def read_tensors(group: h5py.Group) -> dict[str, torch.Tensor]:
    return {name: torch.from_numpy(np.asarray(ds[()])) for name, ds in members(group, h5py.Dataset)}


def write_optimizer(group: h5py.Group, state: dict) -> None:
    """An optimiser's state_dict without pickle: tensors as datasets, the rest as JSON."""
    group.attrs["param_groups"] = json.dumps(state["param_groups"])
    for pid, entries in state["state"].items():
        sub = group.create_group(f"state/{pid}")
        for key, value in entries.items():
            sub.create_dataset(key, data=torch.as_tensor(value).detach().cpu().numpy())


def read_optimizer(group: h5py.Group) -> dict:
    state = {}
    if "state" in group:
        for pid, sub in members(group["state"], h5py.Group):
            state[int(pid)] = {k: torch.from_numpy(np.asarray(v[()])) for k, v in members(sub, h5py.Dataset)}
    return {"state": state, "param_groups": json.loads(group.attrs["param_groups"])}


def open_artifact(path: Path, kind: str | None = None) -> h5py.File:
    """Open and validate an artifact: an HDF5 file, complete, of a schema this tool can read."""
    path = Path(path)
    if not path.is_file():
        raise BadInputError(f"{path}: no such file. Pass the .h5 file written by an earlier bsd-audit command.")
    if not h5py.is_hdf5(path):
        raise BadInputError(f"{path}: not an HDF5 file. Pass the .h5 file written by an earlier bsd-audit command.")
    try:
        f = h5py.File(path, "r")
    except OSError as exc:
        raise BadInputError(f"{path}: cannot be opened as HDF5 (truncated or damaged: {exc}). "
                            "Re-run the command that wrote it.") from exc
    try:
        version = int(f.attrs.get("schema_version", -1))
        if version < 0 or "kind" not in f.attrs:
            raise BadInputError(f"{path}: an HDF5 file, but not a bsd-audit artifact. Pass a file written by bsd-audit.")
        if version > SCHEMA_VERSION:
            raise BadInputError(f"{path}: written with artifact schema {version}, newer than this tool's "
                                f"({SCHEMA_VERSION}). Upgrade bsd-audit to read it.")
        if kind is not None and f.attrs["kind"] != kind:
            raise BadInputError(f"{path}: a {f.attrs['kind']!r} artifact where a {kind!r} one is needed.")
        # touch the per-sample table: a truncated file fails here rather than mid-run
        n = int(f.attrs["num_samples"])
        if f["samples/path"].shape != (n,):
            raise BadInputError(f"{path}: sample table has {f['samples/path'].shape[0]} rows, header says {n}. "
                                "The file is damaged; re-run the command that wrote it.")
    except BadInputError:
        f.close()
        raise
    except (OSError, KeyError, RuntimeError, ValueError) as exc:  # h5py reports damaged metadata as any of these
        f.close()
        raise BadInputError(f"{path}: damaged or truncated artifact ({exc}). Re-run the command that wrote it.") from exc
    return f


def check_fingerprint(f: h5py.File, ds, path: Path) -> None:
    """Refuse an artifact computed on other data: indices would point at the wrong files."""
    if f.attrs["fingerprint"] != ds.fingerprint:
        raise BadInputError(
            f"{path}: computed on a different dataset (fingerprint {f.attrs['fingerprint'][:12]}..., "
            f"this data {ds.fingerprint[:12]}...; written for {f.attrs['data_root']}). "
            "Use the artifact of this dataset, or re-run without it.")


def config_of(f: h5py.File) -> dict[str, Any]:
    return json.loads(f.attrs["config"])


def strings(ds: h5py.Dataset) -> list[str]:
    return [s.decode("utf-8") if isinstance(s, bytes) else str(s) for s in ds[()]]


def read_samples(path: Path) -> tuple[list[str], list[str]]:
    """(class names, sample paths) of any artifact: the provenance every kind carries."""
    with open_artifact(path) as f:
        return strings(f["classes"]), strings(f["samples/path"])

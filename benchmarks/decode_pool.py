"""Decode speed with threads (what load_imagefolder uses) against processes, on one ImageFolder.

The decode runs on a thread pool because PIL releases the GIL inside its decoders and resize; how
much of a small image's decode is spent outside them (holding the GIL) decides whether threads
scale. This times load_imagefolder (no cache) with one thread and with every core, and the same
chunks of the same per-image function (imagefolder._read_one) on a process pool of every core,
forked (workers share the parent's imports) and from a fork server (each worker imports the tool,
and so torch, before its first image).

    python benchmarks/decode_pool.py /work/shared/data/cifar10/train --images 10000
"""

from __future__ import annotations

import argparse
import json
import os
import time
from concurrent.futures import ProcessPoolExecutor
from multiprocessing import get_context
from pathlib import Path

import numpy as np

from bsd_audit.config import Config
from bsd_audit.data.imagefolder import ScannedTree, _read_one, load_imagefolder, scan_tree


def _chunk(args: tuple[Path, list[str], int, int]) -> bytes:
    root, paths, size, max_pixels = args
    out = np.empty((len(paths), 3, size, size), np.uint8)
    for i, rel in enumerate(paths):
        arr, _, err = _read_one((root, rel, size, max_pixels))
        if err is not None:
            raise RuntimeError(err)
        out[i] = arr.transpose(2, 0, 1)
    return out.tobytes()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("data", type=Path)
    ap.add_argument("--images", type=int, default=10000, help="images decoded per measurement (spread over the tree)")
    ap.add_argument("--size", type=int, default=32)
    ap.add_argument("--repeats", type=int, default=2, help="best of this many runs of each")
    args = ap.parse_args()
    tree = scan_tree(args.data)
    step = max(1, len(tree.paths) // args.images)
    sub = ScannedTree(tree.root, tree.classes, tree.paths[::step][:args.images], tree.labels[::step][:args.images])
    for rel in sub.paths:  # from the page cache, for every contender alike
        (sub.root / rel).read_bytes()
    cores = os.cpu_count() or 1
    n = len(sub.paths)

    def threads(workers: int) -> float:
        t0 = time.perf_counter()
        load_imagefolder(sub.root, args.size, tree=sub, workers=workers)
        return n / (time.perf_counter() - t0)

    def processes(method: str) -> float:
        chunks = [(sub.root, sub.paths[i:i + 256], args.size, Config().max_image_pixels) for i in range(0, n, 256)]
        t0 = time.perf_counter()  # pool start-up included: a real decode would pay it
        with ProcessPoolExecutor(cores, mp_context=get_context(method)) as pool:
            for _ in pool.map(_chunk, chunks):
                pass
        return n / (time.perf_counter() - t0)

    res = {"images": n, "cores": cores,
           "threads_1": max(threads(1) for _ in range(args.repeats)),
           f"threads_{cores}": max(threads(cores) for _ in range(args.repeats)),
           # fork: workers share the parent's imports; forkserver: each imports the tool, so torch, first
           f"processes_{cores}_fork": max(processes("fork") for _ in range(args.repeats)),
           f"processes_{cores}_forkserver": max(processes("forkserver") for _ in range(args.repeats)),
           "load_average": [round(x, 2) for x in os.getloadavg()]}
    print(json.dumps({k: round(v) if isinstance(v, float) else v for k, v in res.items()}))


if __name__ == "__main__":
    main()

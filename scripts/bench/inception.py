"""Inception throughput for FID against the number of images per call, on this machine's CPU.

    python scripts/bench/inception.py [--n 200] [--batch-sizes 10,25,50,100,200]

Prints img/s per batch size (the resize to 299 x 299 included) and the largest difference of the features
from those of the first batch size, which shows that the batch size changes only the speed. The default of
diffnotes.fid (INCEPTION_BATCH) was chosen with it: on the 2-core CPU 25 images per call run about 1.8 times
as fast as 200, because a small batch's activations stay in cache. Run it with nothing else running.
"""
from __future__ import annotations

import argparse
import time

import numpy as np
import torch

from diffnotes import fid


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--n", type=int, default=200, help="images per measurement (random bytes)")
    p.add_argument("--batch-sizes", default="10,25,50,100,200")
    args = p.parse_args()
    sizes = [int(b) for b in args.batch_sizes.split(",")]
    u = torch.randint(0, 256, (args.n, 3, 32, 32), dtype=torch.uint8, generator=torch.Generator().manual_seed(0))
    model = fid.load_inception()
    fid.inception_features(u[:sizes[0]], model=model, batch_size=sizes[0], progress=False)  # warm-up
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, {args.n} images per row "
          f"(default batch size {fid.INCEPTION_BATCH})")
    print("| images per call | img/s | largest feature difference |\n|---|---|---|")
    first = None
    for b in sizes:
        t0 = time.perf_counter()
        f = fid.inception_features(u, model=model, batch_size=b, progress=False)
        rate = args.n / (time.perf_counter() - t0)
        first = f if first is None else first
        print(f"| {b} | {rate:.1f} | {float(np.abs(f - first).max()):.2g} |", flush=True)


if __name__ == "__main__":
    main()

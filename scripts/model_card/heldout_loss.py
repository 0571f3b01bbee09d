"""A fixed held-out loss for comparing training recipes: L_simple of each model on the same noisy test images.

The first ``--n`` CIFAR-10 test images (none seen in training), each noised at one timestep of a stratified grid
(image i at t_i = floor((i + 1/2) T / n), so every part of the schedule counts equally, as in L_simple's uniform t)
with noise from one seeded generator: every model sees the very same (x_0, t, eps). The network runs in float32
and without a label (its null class), as the FID rows sample. Reported: the mean of ||eps - eps_hat||^2 per
dimension over all images, and over four bands of t (the loss of a recipe that re-weights t moves differently
in each band), and for every model after the first its paired difference from the first with the standard error of
that difference (the same images, timesteps and noise for both, so the spread between images cancels). Lower is
better; the figures are comparable only between models scored by this script with the same ``--n`` and ``--seed``.

    DIFFNOTES_CIFAR10=<stand-in>/cifar-10-batches-py .venv/bin/python scripts/model_card/heldout_loss.py \
        runs/pilots/A runs/pilots/B cifar10-cpu-4 [--n 2000] [--json runs/pilots/heldout.json]
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

import torch

from diffnotes import data, forward, losses
from diffnotes.checkpoints import load_model

BANDS = ((0, 250), (250, 500), (500, 750), (750, 1000))


def fixed_batch(n: int, T: int, seed: int):
    """(x_0, t, eps): the first n test images in [-1, 1], the stratified timesteps, seeded noise."""
    images, _ = data.load_cifar10(split="test")
    if n > len(images):
        raise SystemExit(f"--n {n} is more than the {len(images)} test images")
    x_0 = data.to_float(torch.from_numpy(images[:n]))
    t = ((torch.arange(n, dtype=torch.float64) + 0.5) * T / n).floor().long()
    eps = torch.randn(x_0.shape, generator=torch.Generator().manual_seed(seed))
    return x_0, t, eps


@torch.no_grad()
def per_image_loss(model, x_0, t, eps, batch_size: int = 250) -> torch.Tensor:
    """||eps - eps_hat||^2 / D for each image (L_simple with reduction "none")."""
    out = []
    for s in range(0, len(x_0), batch_size):
        sl = slice(s, s + batch_size)
        a = model.schedule.alpha_bar[t[sl]].float()
        x_t = forward.q_sample(x_0[sl], a, eps=eps[sl])
        out.append(losses.l_simple(model(x_t, t[sl]), eps[sl], reduction="none"))
    return torch.cat(out)


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("models", nargs="+", help="run folders (EMA weights), .safetensors files or shipped names")
    p.add_argument("--n", type=int, default=2000)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--json", type=Path, help="also write the figures here")
    args = p.parse_args()
    if args.n < 2:
        p.error(f"--n must be at least 2 (a standard error needs two images), got {args.n}")
    models = [(name, load_model(name)) for name in args.models]  # every model opens before any long work
    T = models[0][1].schedule.T
    x_0, t, eps = fixed_batch(args.n, T, args.seed)
    rows, first = {}, None
    for name, model in models:
        per = per_image_loss(model, x_0, t, eps).double()
        row = {"loss": float(per.mean())}
        for lo, hi in BANDS:
            row[f"t{lo}-{hi}"] = float(per[(t >= lo) & (t < hi)].mean())
        if first is None:
            first = per
        else:  # paired with the first model: same x_0, t and eps
            d = per - first
            row.update(diff_vs_first=float(d.mean()), diff_se=float(d.std() / len(d) ** 0.5))
        rows[name] = row
        print(name, " ".join(f"{k} {v:.6f}" for k, v in row.items()), flush=True)
    if args.json:
        args.json.write_text(json.dumps({"n": args.n, "seed": args.seed, "rows": rows}, indent=1) + "\n")


if __name__ == "__main__":
    main()

"""Analytic-DPM's effect on the variational bound of the shipped model: bits/dim of test images.

For K respaced steps (uniform_timesteps) the bound of the K-step chain is evaluated by
`diffnotes.likelihood.vlb` on the respaced schedule with three reverse variances: DDPM's beta_tilde and
beta, and Analytic-DPM's sigma*^2 (fast_samplers.analytic_dpm_variance, with Gamma estimated by
diffnotes.generate.training_gamma: the first 1 000 training images, as in scripts/model_card/fid_rows.py). The decoder step (onto the 8-bit data) uses the fixed choices' variance in all three, so the
difference comes from the steps n >= 2, where Bao et al. 2022's Theorem 1 applies. The network runs in
float32; the three bounds share the same draws of x_t (one generator seed) and so the same network
outputs, which are computed once. Writes diffnotes/pretrained/fid/<ckpt>-bpd.json. Run from the
repository root:

    DIFFNOTES_CIFAR10=<stand-in>/cifar-10-batches-py .venv/bin/python scripts/fast_samplers/bits_per_dim.py \
        [--ckpt cifar10-cpu-3] [--n 1000] [--steps 10 25 50]
"""
from __future__ import annotations

import argparse
import math
import time
from pathlib import Path

import torch

from diffnotes import data, likelihood, records
from diffnotes import fast_samplers as F
from diffnotes.checkpoints import DEFAULT_MODEL, load_model
from diffnotes.generate import training_gamma
from diffnotes.schedules import respace, uniform_timesteps


class _Memo(torch.nn.Module):
    """The model, computing each (x_t, t) once: the three bounds call it with the same inputs in turn."""

    def __init__(self, model):
        super().__init__()
        self.model, self.cache = model, []

    def forward(self, x_t, t):
        for x, tt, out in self.cache:
            if torch.equal(tt, t) and torch.equal(x, x_t):
                return out
        out = self.model(x_t, t)
        self.cache.append((x_t.clone(), t.clone(), out))
        return out


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--ckpt", default=DEFAULT_MODEL)
    p.add_argument("--n", type=int, default=1000)
    p.add_argument("--steps", type=int, nargs="+", default=[10, 25, 50])
    p.add_argument("--batch-size", type=int, default=100)
    args = p.parse_args()
    torch.set_num_threads(2)
    model = load_model(args.ckpt)
    full = model.schedule
    x_test = data.to_float(torch.from_numpy(data.load_cifar10(split="test")[0][:args.n])).double()
    results = records.measurements("bpd", args.ckpt) or {"rows": {}}
    for K in args.steps:
        t0 = time.perf_counter()
        ts = uniform_timesteps(full.T, K)
        sch = respace(full, ts)
        gamma = training_gamma(model, torch.arange(sch.T), schedule=sch)
        ab = sch.alpha_bar
        ab_prev = torch.cat([torch.ones(1, dtype=torch.float64), ab[:-1]])
        star = F.analytic_dpm_variance(ab, ab_prev, gamma)
        decoder = sch.beta_tilde[1] if sch.T > 1 else sch.betas[0]
        star[0] = decoder  # the fixed choices' decoder variance (likelihood.fixed_log_variances)
        totals = {"beta_tilde": [], "beta": [], "analytic": []}
        for start in range(0, args.n, args.batch_size):
            x0 = x_test[start:start + args.batch_size]
            memo = _Memo(lambda x, t: model(x.float(), t).double())
            for name, variance in (("beta_tilde", "beta_tilde"), ("beta", "beta"), ("analytic", star)):
                with torch.no_grad():
                    r = likelihood.vlb(memo, x0, schedule=sch, variance=variance,
                                       generator=torch.Generator().manual_seed(10_000 + start))
                totals[name].append(r["total"])
        row = {"steps": K, "n": args.n, "timesteps": [int(t) for t in ts], "gamma": gamma.tolist(),
               "variance_analytic": star.tolist(), "seconds": round(time.perf_counter() - t0, 1)}
        for name, parts in totals.items():
            v = torch.cat(parts)
            row[name] = {"bpd": v.mean().item(), "se": v.std().item() / math.sqrt(v.numel())}
        results["rows"][str(K)] = row
        results.update(model=Path(args.ckpt).name, protocol=(
            f"bits/dim of the first {args.n} test images under the bound of the K-step respaced chain, "
            "one draw of x_t per step and image (the same draws for the three variances), float32 network; "
            "the decoder's variance is beta_tilde of the second kept step in all three"),
            command=f"python scripts/fast_samplers/bits_per_dim.py --ckpt {Path(args.ckpt).name} --n {args.n}")
        records.write_record("bpd", args.ckpt, results)
        print(f"K={K}: " + ", ".join(f"{k} {row[k]['bpd']:.3f} +- {row[k]['se']:.3f}" for k in totals)
              + f" ({row['seconds']:.0f} s)", flush=True)


if __name__ == "__main__":
    main()

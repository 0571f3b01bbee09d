"""FID of the chapter-9 fast samplers on the shipped model (model-card protocol).

1 000 samples (image k from seed k, no label, bf16 autocast as `python -m diffnotes fid` does) against
the cached statistics of 2 000 training images (`runs/eval/ref2k_train.stats.npz`, written by
`scripts/model_card/make_refs.py`), `method="eigh"`. Rows are measured in the order of ROWS (the goal,
NFE 10, first) and appended to runs/eval/fast_samplers.json as each finishes; rows already there are
skipped, so an interrupted run resumes. Run from the repository root:

    DIFFNOTES_CIFAR10=<stand-in>/cifar-10-batches-py nice -n 10 .venv/bin/python scripts/fast_samplers/measure.py

Options: --rows name,name (a subset of ROWS), --n (default 1000). Several workers with disjoint
--rows may run at once; each re-reads the file before writing its row.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from diffnotes import fast_samplers as F  # noqa: E402
from diffnotes import fid, samplers  # noqa: E402
from diffnotes._util import PerSampleGenerator  # noqa: E402
from diffnotes.cli import load_model  # noqa: E402
from diffnotes.data import to_float, to_uint8  # noqa: E402
from diffnotes.schedules import uniform_timesteps  # noqa: E402

OUT = ROOT / "runs/eval/fast_samplers.json"
REF = ROOT / "runs/eval/ref2k_train.stats.npz"
GAMMA = ROOT / "runs/eval/fast_samplers_gamma.json"

# name: (sampler, steps[, grid]); NFE = steps except Heun (2*steps - 1). grid "rho7": the same first index as
# uniform_timesteps, then fast_samplers.karras_timesteps (EDM's rho = 7 spacing) down to 0
ROWS = {
    "dpmpp2m_10_rho7": ("dpmpp2m", 10, "rho7"), "heun_9_rho7": ("heun", 5, "rho7"), "ddim_10_rho7": ("ddim", 10, "rho7"),
    "dpmpp2m_50_rho7": ("dpmpp2m", 50, "rho7"),
    "ddim_10": ("ddim", 10), "dpmpp2m_10": ("dpmpp2m", 10), "heun_9": ("heun", 5),
    "analytic_10": ("analytic", 10), "ddpm_beta_tilde_10": ("ddpm_beta_tilde", 10), "ddpm_beta_10": ("ddpm_beta", 10),
    "ddim_5": ("ddim", 5), "dpmpp2m_5": ("dpmpp2m", 5), "heun_5": ("heun", 3),
    "ddim_20": ("ddim", 20), "dpmpp2m_20": ("dpmpp2m", 20), "heun_19": ("heun", 10),
}


def gamma_for(model, ts, n_train=1000):
    """Gamma at `ts` from the first n_train training images (cached in GAMMA)."""
    key = ",".join(str(int(t)) for t in ts)
    cache = json.loads(GAMMA.read_text()) if GAMMA.is_file() else {}
    if key in cache:
        return torch.tensor(cache[key]["gamma"], dtype=torch.float64)
    from diffnotes.course import cifar10_images

    x0 = to_float(cifar10_images(n_train, split="train"))
    t0 = time.perf_counter()
    with torch.no_grad():
        g = F.estimate_gamma(model, x0, ts, schedule=model.schedule, batch_size=250,
                             generator=torch.Generator().manual_seed(0))
    cache[key] = {"gamma": g.tolist(), "timesteps": [int(t) for t in ts], "n_train": n_train,
                  "seconds": time.perf_counter() - t0}
    GAMMA.write_text(json.dumps(cache, indent=2) + "\n")
    return g


def load() -> dict:
    return json.loads(OUT.read_text()) if OUT.is_file() else {"rows": {}}


def draw(model, kind, steps, n, batch_size=250, grid="uniform"):
    sch = model.schedule
    ts = uniform_timesteps(sch.T, steps)
    if grid == "rho7":
        ts = F.karras_timesteps(sch, steps, t_max=int(ts[0]))
    gamma = gamma_for(model, ts) if kind == "analytic" else None
    out = []
    for start in range(0, n, batch_size):
        b = min(batch_size, n - start)
        gen = PerSampleGenerator(range(start, start + b))
        x = gen.randn((3, 32, 32), dtype=torch.float32)
        with torch.no_grad():
            if kind == "ddim":
                x = F.sample_ddim_exp(model, x, ts, schedule=sch)
            elif kind == "dpmpp2m":
                x = F.sample_dpmpp_2m(model, x, ts, schedule=sch)
            elif kind == "heun":
                x = F.sample_heun(model, x, ts, schedule=sch)
            elif kind == "analytic":
                x = F.sample_analytic_dpm(model, x, ts, schedule=sch, gamma=gamma, generator=gen)
            else:
                var = "beta" if kind == "ddpm_beta" else "beta_tilde"
                x = samplers.sample_ddpm(model, x, ts, schedule=sch, variance=var, generator=gen)
        out.append(to_uint8(x).cpu())
    return torch.cat(out), ts


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--rows", default=",".join(ROWS))
    p.add_argument("--n", type=int, default=1000)
    args = p.parse_args()
    torch.set_num_threads(2)
    model = load_model("cifar10-cpu", bf16=None)
    ref = fid.load_statistics(REF)
    for name in args.rows.split(","):
        have = load()["rows"].get(name)
        if have is not None and have.get("n") == args.n:
            print(f"{name}: have FID {have['fid']:.2f}", flush=True)
            continue
        kind, steps, *grid = ROWS[name]
        grid = grid[0] if grid else "uniform"
        t0 = time.perf_counter()
        images, ts = draw(model, kind, steps, args.n, grid=grid)
        t1 = time.perf_counter()
        value = fid.compute_fid(images, ref, method="eigh", progress=False)
        nfe = F.heun_nfe(steps) if kind == "heun" else steps
        results = load()  # re-read: several workers (disjoint --rows) may share the file
        results["protocol"] = (f"{args.n} samples (image k from seed k, no label, bf16 autocast) vs "
                               f"{REF.relative_to(ROOT)} (2000 training images), method eigh")
        results["command"] = "nice -n 10 .venv/bin/python scripts/fast_samplers/measure.py [--rows ...]"
        results["torch"], results["python"] = torch.__version__, platform.python_version()
        results["rows"][name] = {"sampler": kind, "steps": steps, "grid": grid, "nfe": nfe, "fid": value, "n": args.n,
                                 "timesteps": [int(t) for t in ts], "sample_seconds": t1 - t0,
                                 "seconds": time.perf_counter() - t0}
        tmp = OUT.with_suffix(f".{os.getpid()}.tmp")
        tmp.write_text(json.dumps(results, indent=2) + "\n")
        os.replace(tmp, OUT)
        print(f"{name}: FID {value:.2f} (NFE {nfe}, {time.perf_counter() - t0:.0f} s)", flush=True)


if __name__ == "__main__":
    main()

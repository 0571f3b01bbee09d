"""FID rows of a shipped model: the model card's table and chapter 9's samplers, in one file.

Protocol: ``--n`` samples (default 2 000; image k from seed k, bf16 autocast on a CPU with native bf16, as
``python -m diffnotes fid`` draws them) against the Inception statistics of 2 000 training images (every 25th
image of the CIFAR-10 folder in $DIFFNOTES_CIFAR10), ``method="eigh"``. Each row also records the FID of its
first and of its second 1 000 samples: the first comparable with the 1 000-sample tables of earlier cards,
the two together a measure of the noise of FID at that N. The floor row scores the
first ``--n`` real test images in the same way.

Rows are measured in the order of ROWS (most important first) and written to
``diffnotes/pretrained/fid/<ckpt>.json`` (:func:`diffnotes.records.write_record`) as each finishes; rows already there at the same n are skipped, so
an interrupted run resumes where it stopped. Each row's Inception features are kept in
``runs/eval/features/<ckpt>/<row>.npy`` so that a larger reference can score them later without sampling
again. Run from the repository root:

    DIFFNOTES_CIFAR10=<stand-in>/cifar-10-batches-py .venv/bin/python scripts/model_card/fid_rows.py \
        [--ckpt cifar10-cpu-3] [--rows name,name] [--n 2000]
"""
from __future__ import annotations

import argparse
import json
import platform
import time
from pathlib import Path

import numpy as np
import torch

from diffnotes import data, fid, records
from diffnotes import fast_samplers as F
from diffnotes._util import PerSampleGenerator
from diffnotes.checkpoints import DEFAULT_MODEL, load_model
from diffnotes.generate import SAMPLERS, sample_images, sampler_timesteps, training_gamma
from diffnotes.samplers import sample_ddpm

ROOT = Path(__file__).resolve().parents[2]

# name: (kind, options). kind "cli": diffnotes.generate.sample_images(**options), exactly what
# `python -m diffnotes fid` draws; kind "fast": a sampler of diffnotes.fast_samplers on `steps`
# timesteps (grid "uniform": uniform_timesteps; "rho7": EDM's rho = 7 spacing from the same first
# index, fast_samplers.karras_timesteps); kind "real": the first n images of a CIFAR-10 split.
ROWS = {
    "real_test": ("real", {"split": "test"}),
    "ddim_10": ("cli", {"sampler": "ddim", "steps": 10}),
    "dpmpp2m_10_rho7": ("fast", {"sampler": "dpmpp2m", "steps": 10, "grid": "rho7"}),
    "ddim_50": ("cli", {"sampler": "ddim", "steps": 50}),
    "heun_9_rho7": ("fast", {"sampler": "heun", "steps": 5, "grid": "rho7"}),
    "ddim_20": ("cli", {"sampler": "ddim", "steps": 20}),
    "dpmpp2m_20_rho7": ("fast", {"sampler": "dpmpp2m", "steps": 20, "grid": "rho7"}),
    "ddim_5": ("cli", {"sampler": "ddim", "steps": 5}),
    "dpmpp2m_5_rho7": ("fast", {"sampler": "dpmpp2m", "steps": 5, "grid": "rho7"}),
    "heun_5_rho7": ("fast", {"sampler": "heun", "steps": 3, "grid": "rho7"}),
    "heun_19_rho7": ("fast", {"sampler": "heun", "steps": 10, "grid": "rho7"}),
    "dpmpp2m_50_rho7": ("fast", {"sampler": "dpmpp2m", "steps": 50, "grid": "rho7"}),
    "ddim_100": ("cli", {"sampler": "ddim", "steps": 100}),
    "ddpm_100": ("cli", {"sampler": "ddpm", "steps": 100}),
    "ode_heun_50": ("cli", {"sampler": "ode_heun", "steps": 50}),
    "ddim_50_cond": ("cli", {"sampler": "ddim", "steps": 50, "label": "cycle"}),
    "heun_49_rho7": ("fast", {"sampler": "heun", "steps": 25, "grid": "rho7"}),
    "analytic_10": ("fast", {"sampler": "analytic", "steps": 10, "grid": "uniform"}),
    # the same, but the step into code index 0 with beta_tilde (Gamma = 1 there): is the last noisy step the culprit?
    "analytic_10_lastbt": ("fast", {"sampler": "analytic", "steps": 10, "grid": "uniform", "last_beta_tilde": True}),
    # the authors' rule: the variance of that step capped so its noise moves a pixel by 2 bins on average
    "analytic_10_clip2": ("fast", {"sampler": "analytic", "steps": 10, "grid": "uniform", "clip_pixels": 2}),
    "ddpm_beta_10": ("fast", {"sampler": "ddpm_beta", "steps": 10, "grid": "uniform"}),
    "ddpm_10": ("cli", {"sampler": "ddpm", "steps": 10}),
    "analytic_25": ("fast", {"sampler": "analytic", "steps": 25, "grid": "uniform"}),
    "ddpm_25": ("cli", {"sampler": "ddpm", "steps": 25}),
    "ddpm_beta_25": ("fast", {"sampler": "ddpm_beta", "steps": 25, "grid": "uniform"}),
    "analytic_50": ("fast", {"sampler": "analytic", "steps": 50, "grid": "uniform"}),
    "ddpm_50": ("cli", {"sampler": "ddpm", "steps": 50}),
    "ddpm_beta_50": ("fast", {"sampler": "ddpm_beta", "steps": 50, "grid": "uniform"}),
    # chapter 10's comparison with the velocity model: DDIM and DPM-Solver++ 2M at NFE 2, 4, 8, 16, 32
    **{f"ddim_{n}": ("cli", {"sampler": "ddim", "steps": n}) for n in (2, 4, 8, 16, 32)},
    **{f"dpmpp2m_{n}_rho7": ("fast", {"sampler": "dpmpp2m", "steps": n, "grid": "rho7"}) for n in (2, 4, 8, 16, 32)},
    # a velocity model (objective "flow", e.g. cifar10-flow): Euler and Heun on the uniform grid of flow times
    **{f"flow_euler_{n}": ("cli", {"sampler": "flow_euler", "steps": n}) for n in (2, 4, 8, 16, 32)},
    **{f"flow_heun_{2 * n - 1}": ("cli", {"sampler": "flow_heun", "steps": n}) for n in (2, 4, 8, 16)},
}


def timesteps(model, steps: int, grid: str) -> torch.Tensor:
    return sampler_timesteps(model.schedule.T, steps, "karras" if grid == "rho7" else "uniform", schedule=model.schedule)


def draw_fast(model, sampler: str, steps: int, grid: str, n: int, record: dict, batch_size: int = 250,
              last_beta_tilde: bool = False, clip_pixels: float | None = None):
    sch = model.schedule
    ts = timesteps(model, steps, grid)
    record["timesteps"] = [int(t) for t in ts]
    g = None
    if sampler == "analytic":
        g = training_gamma(model, ts)
        if last_beta_tilde:  # sigma*^2 = beta_tilde exactly when Gamma = 1: the step from ts[-2] to ts[-1]
            g[-2] = 1.0
        record["gamma"] = g.tolist()
    out = []
    for start in range(0, n, batch_size):
        b = min(batch_size, n - start)
        gen = PerSampleGenerator(range(start, start + b))
        x = gen.randn((3, 32, 32), dtype=torch.float32)
        with torch.no_grad():
            if sampler == "dpmpp2m":
                x = F.sample_dpmpp_2m(model, x, ts, schedule=sch)
            elif sampler == "heun":
                x = F.sample_heun(model, x, ts, schedule=sch)
            elif sampler == "analytic":
                x = F.sample_analytic_dpm(model, x, ts, schedule=sch, gamma=g, generator=gen, clip_pixels=clip_pixels)
            elif sampler == "ddpm_beta":
                x = sample_ddpm(model, x, ts, schedule=sch, variance="beta", generator=gen)
            else:
                raise ValueError(f"unknown fast sampler {sampler!r}")
        out.append(data.to_uint8(x).cpu())
    return torch.cat(out)


def nfe_of(kind: str, opts: dict) -> int | None:
    if kind == "real":
        return None
    spec = SAMPLERS.get(opts["sampler"])  # the registry counts calls; ddpm_beta (not in it) makes one per step
    return spec.nfe(opts["steps"]) if spec is not None else opts["steps"]


def write_row(out: Path, model: str, name: str, record: dict, n: int) -> None:
    """Add (or replace) row ``name`` of ``model``'s record ``out`` with the protocol's header fields."""
    results = json.loads(out.read_text()) if out.is_file() else {"rows": {}}
    results.update(
        model=model,
        protocol=(f"{n} samples (image k from seed k, bf16 autocast) against the statistics of 2 000 "
                  f"training images (every 25th), method eigh; fid_first1000 / fid_second1000: the first / second 1 000 samples"),
        command=f"python scripts/model_card/fid_rows.py --ckpt {model} --n {n}",
        torch=torch.__version__, python=platform.python_version(), cpu=records.cpu_name())
    results["rows"][name] = record
    records.write_json(out, results)


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--ckpt", default=DEFAULT_MODEL)
    p.add_argument("--rows", default=",".join(ROWS))
    p.add_argument("--n", type=int, default=2000)
    p.add_argument("--json", type=Path, default=None,
                   help="write the rows here instead of the model's record (a run that is not shipped, e.g. a pilot)")
    p.add_argument("--rescore", action="store_true",
                   help="recompute the FID columns of the rows in the file from their saved features")
    args = p.parse_args()
    if args.rescore:  # the scores of rows already measured, from their saved features (no sampling)
        out, ref = args.json or records.record_path("fid", args.ckpt), records.reference_2k()
        results = json.loads(out.read_text())
        for name, record in results["rows"].items():
            path = ROOT / "runs/eval/features" / Path(args.ckpt).name / f"{name}.npy"
            if path.is_file():
                record.update(records.fid_scores(np.load(path).astype(np.float64), ref))
        records.write_json(out, results)
        return
    names = args.rows.split(",")
    unknown = [r for r in names if r not in ROWS]
    if unknown:
        p.error(f"unknown rows {unknown}; choose from {list(ROWS)}")
    torch.set_num_threads(2)
    model = load_model(args.ckpt, bf16=None)
    ref = records.reference_2k()
    out = args.json or records.record_path("fid", args.ckpt)
    feat_dir = ROOT / "runs/eval/features" / Path(args.ckpt).name
    feat_dir.mkdir(parents=True, exist_ok=True)
    for name in names:
        results = json.loads(out.read_text()) if out.is_file() else {"rows": {}}
        have = results["rows"].get(name)
        if have is not None and have.get("n") == args.n:
            print(f"{name}: have FID {have['fid']:.2f}", flush=True)
            continue
        kind, opts = ROWS[name]
        record = {"kind": kind, **opts, "nfe": nfe_of(kind, opts), "n": args.n}
        t0 = time.perf_counter()
        if kind == "real":
            images = torch.from_numpy(data.load_cifar10(split=opts["split"])[0][:args.n])
        elif kind == "cli":
            images = sample_images(model, args.n, batch_size=250, progress=False, **opts)
        else:
            images = draw_fast(model, opts["sampler"], opts["steps"], opts["grid"], args.n, record,
                               last_beta_tilde=opts.get("last_beta_tilde", False), clip_pixels=opts.get("clip_pixels"))
        t1 = time.perf_counter()
        feats = fid.inception_features(images, progress=False)
        np.save(feat_dir / f"{name}.npy", feats.astype(np.float32))
        record.update(records.fid_scores(feats, ref))
        record.update(sample_seconds=round(t1 - t0, 1), seconds=round(time.perf_counter() - t0, 1))
        write_row(out, Path(args.ckpt).name, name, record, args.n)
        print(f"[{time.strftime('%H:%M:%S')}] {name}: FID {record['fid']:.2f} (first 1000: "
              f"{record['fid_first1000']:.2f}; {record['seconds']:.0f} s, {record['sample_seconds']:.0f} s sampling)",
              flush=True)


if __name__ == "__main__":
    main()

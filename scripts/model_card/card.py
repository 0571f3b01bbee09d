"""Prints the rows of the model card's FID table, and the training totals, from runs/ (after measure.sh)."""
import json
from pathlib import Path

import torch

E = Path("runs/eval")
uncond = [json.loads(l) for l in open("runs/cifar10-cpu/metrics.jsonl") if l.strip()]
cond = [json.loads(l) for l in open("runs/cifar10-cpu-cond/metrics.jsonl") if l.strip()]
state_u = torch.load("runs/cifar10-cpu/state.pt", weights_only=True, map_location="cpu")
state_c = torch.load("runs/cifar10-cpu-cond/state.pt", weights_only=True, map_location="cpu")
cfg = json.loads(Path("diffnotes/pretrained/cifar10-cpu.json").read_text())
steps_u, steps_c = state_u["step"], state_c["step"]
sec_u, sec_c = state_u["elapsed"], state_c["elapsed"]
imgs_u, imgs_c = steps_u * 64, steps_c * 64
hours = (sec_u + sec_c) / 3600


def fid(name):
    p = E / f"fid_{name}.json"
    return json.loads(p.read_text()) if p.exists() else None


def row(label, sampler, nfe, f):
    if f is None:
        return f"| {label} | {sampler} | {nfe} | not measured (CPU time ran out) | - |"
    secs = f["seconds"]
    sample = f.get("sample_seconds")
    wall = f"{secs:.0f} s" + (f" ({sample:.0f} s of it sampling)" if sample else "")
    return f"| {label} | {sampler} | {nfe} | **{f['fid']:.1f}** | {wall} |"


rows = [
    row("`cifar10-cpu`, no label", "DDIM, eta 0", 10, fid("ddim10")),
    row("`cifar10-cpu`, no label", "DDIM, eta 0", 20, fid("ddim20")),
    row("`cifar10-cpu`, no label", "DDIM, eta 0", 50, fid("ddim50")),
    row("`cifar10-cpu`, no label", "DDIM, eta 0", 100, fid("ddim100")),
    row("`cifar10-cpu`, no label", "DDPM (beta_tilde), 100 respaced steps", 100, fid("ddpm100")),
    row("`cifar10-cpu`, no label", "PF-ODE (VP SDE), Heun, 50 steps, t from 1 to 1e-3", 100, fid("heun50")),
    row("`cifar10-cpu`, labels 0..9 in turn", "DDIM, eta 0", 50, fid("ddim50_cond")),
    row("warm start (unconditional, 824 576 images)", "DDIM, eta 0", 50, fid("warmstart_ddim50")),
    row("1 000 real test images of the stand-in (the floor at this N)", "-", "-", fid("real1k")),
]
print("\n".join(rows))
print(f"images {imgs_u} + {imgs_c} = {imgs_u + imgs_c}; hours {sec_u/3600:.2f} + {sec_c/3600:.2f} = {hours:.2f}")
print("final loss (mean of last 5 logs):", sum(r["loss"] for r in cond[-5:]) / 5)

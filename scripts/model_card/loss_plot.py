"""The model card's training-loss figure: both stages (runs/cifar10-cpu, runs/cifar10-cpu-cond), batch 64."""
import json
import sys
import matplotlib
matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np

def rows(path):
    return [json.loads(l) for l in open(path) if l.strip()]

a = rows("runs/cifar10-cpu/metrics.jsonl")
b = rows("runs/cifar10-cpu-cond/metrics.jsonl")
offset = a[-1]["step"]
fig, ax = plt.subplots(figsize=(7, 3.2))
for data, off, label in ((a, 0, "unconditional (warm start, then resumed)"), (b, offset, "class-conditional (init-from)")):
    s = np.array([r["step"] + off for r in data]) * 64
    l = np.array([r["loss"] for r in data])
    k = 5
    sm = np.convolve(l, np.ones(k) / k, mode="valid")
    ax.plot(s, l, lw=0.6, alpha=0.4)
    ax.plot(s[k - 1:], sm, lw=1.5, label=label)
ax.set(xlabel="images seen", ylabel="L_simple, mean of 100 steps", ylim=(0.025, 0.045))
ax.grid(alpha=0.3)
ax.legend(fontsize=8)
fig.tight_layout()
fig.savefig(sys.argv[1] if len(sys.argv) > 1 else "diffnotes/pretrained/cifar10-cpu-loss.png", dpi=100)

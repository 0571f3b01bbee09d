"""The model card's sample grid: two rows without a label, then one row per class (DDIM, eta 0, 50 steps).

    python scripts/model_card/grid.py [CKPT] [OUT.png]
"""
import sys
import matplotlib
matplotlib.use("Agg")
import matplotlib.pyplot as plt
import torch
from diffnotes import data, widgets
from diffnotes.checkpoints import DEFAULT_MODEL, load_model
from diffnotes.generate import sample_images

ckpt = sys.argv[1] if len(sys.argv) > 1 else DEFAULT_MODEL
out = sys.argv[2] if len(sys.argv) > 2 else f"diffnotes/pretrained/{ckpt}-samples.png"
model = load_model(ckpt, bf16=None)
per_row = 10
rows = [sample_images(model, 2 * per_row, steps=50, seed=0, progress=False)]
for c in range(10):
    rows.append(sample_images(model, per_row, steps=50, seed=1000 + 100 * c, label=c, progress=False))
images = torch.cat(rows).float() / 127.5 - 1  # uint8 -> [-1, 1]
names = ["no label", "no label"] + list(data.CIFAR10_CLASSES)
fig, ax = plt.subplots(figsize=(6.2, 7.6))
ax.imshow(widgets.image_grid(images, nrow=per_row))
ax.set_xticks([])
ax.set_yticks([2 + 34 * i + 16 for i in range(len(names))])
ax.set_yticklabels(names, fontsize=8)
ax.set_title(f"{ckpt}: DDIM (eta 0), 50 steps; two rows without a label, then one row per class", fontsize=8)
fig.tight_layout()
fig.savefig(out, dpi=110)
print("->", out)

"""Write notebooks/appendix/11_latent_diffusion_appendix.ipynb, the measurements that chapter 11 folds away:
how the shipped autoencoder spends its rate across the latent channels (lesson section 1), the scale factor
measured again on held-out images (section 2), and the FID rows of section 4 with their noise. Sources only;
execute it afterwards with ``make nbval``'s settings (DIFFNOTES_FAST=1 DIFFNOTES_BF16=0 jupyter nbconvert
--execute --inplace).
"""
from __future__ import annotations

import sys
from pathlib import Path

from nbcells import Notebook  # scripts/course/nbcells.py (a script's folder is on the import path)

ROOT = Path(__file__).resolve().parents[2]
NB = Notebook()
md, code = NB.md, NB.code

md("a11a0001", r"""
# Chapter 11, appendix &mdash; measurements of the shipped autoencoder and latent model

This notebook holds the checks of chapter 11 (`../11_latent_diffusion.ipynb`) that measure rather than teach:
how the rate of `cifar10-ae` is spread over its four latent channels (lesson section 1), the latent scale factor
measured again on images the autoencoder was not trained on (section 2), and the FID rows of section 4 with
the noise of FID at 2 000 samples. The images are CIFAR-10 test images when a copy is configured, else samples
of the pixel model. Every claim raises when it does not hold.
""", slide="slide")

code("a11a0002", r'''
%matplotlib inline
import math

import matplotlib.pyplot as plt
import torch
from IPython.display import Markdown, display

from diffnotes import autoencoder as vae
from diffnotes import course, data, generate, records
from diffnotes.checkpoints import PRETRAINED_DIR, load_model, read_config

torch.set_num_threads(2)
AE = load_model("cifar10-ae")
S = read_config(PRETRAINED_DIR / "cifar10-ldm.json")["latent"]["scale_factor"]   # measured on the training set
N_IMG = course.sizes(256, 2000)
images_u8 = course.cifar10_images(N_IMG, verbose=False)
SOURCE = "CIFAR-10 test images"
if images_u8 is None:   # 64 samples of the pixel model instead (DDIM, 20 steps)
    N_IMG, SOURCE = 64, "pixel-model samples"
    images_u8 = generate.sample_images(load_model(bf16=None), N_IMG, steps=20, progress=False)
with torch.no_grad():
    MU, LOGVAR = AE.encode(data.to_float(images_u8))   # [N, 4, 8, 8] each
''', slide="skip")

md("a11a0003", r"""
## 1. Where the rate goes (lesson section 1)

The rate $D_{KL}(q(z\mid x)\,\Vert\,\mathcal N(0, I))$ is a sum over the 256 latent numbers, so it splits by
channel. A channel whose posterior equals the prior (mean 0, standard deviation 1) carries no information and
costs nothing: the KL term pushes unused channels there ("posterior collapse"). Per channel, the table gives
the rate per image, the spread of the posterior means over images and the typical posterior standard deviation.
""")

code("a11a0004", r'''
# NBVAL_IGNORE_OUTPUT
# (encoder outputs in float32: their last digits differ between CPUs; the claims below still raise)
kl_elem = 0.5 * (MU**2 + LOGVAR.exp() - 1 - LOGVAR)              # [N, 4, 8, 8], the closed form of lesson 11
rate_c = kl_elem.sum((2, 3)).mean(0)                              # nats per image, per channel
spread_c = MU.transpose(0, 1).flatten(1).std(1)                   # std of the means, per channel
width_c = (0.5 * LOGVAR).exp().transpose(0, 1).flatten(1).median(1).values
display(Markdown(f"{N_IMG} {SOURCE}\n\n| channel | rate (nats per image) | std of $\\mu$ | median $\\sigma$ |\n|---|---|---|---|\n" +
                 "\n".join(f"| {c} | {rate_c[c]:.0f} | {spread_c[c]:.2f} | {width_c[c]:.3f} |" for c in range(4))))
checks_rate = course.CheckTable()
checks_rate.check("channel rates sum to gaussian_kl", rate_c.sum(), vae.gaussian_kl(MU, LOGVAR).mean(), rtol=1e-5,
                  why="two sums of one KL, float32")
checks_rate.claim("no channel has collapsed to the prior", bool((rate_c > 0.1 * rate_c.mean()).all()),
                  ", ".join(f"{r:.0f}" for r in rate_c.tolist()), "each > 10 % of the mean channel's")
checks_rate.claim("posteriors are narrow next to the spread of their means", bool((width_c < 0.25 * spread_c).all()),
                  ", ".join(f"{w:.3f}/{s:.2f}" for w, s in zip(width_c.tolist(), spread_c.tolist())), "sigma < spread / 4")
checks_rate.show()
''')

md("a11a0005", r"""
The first channel carries the most information (and has the widest spread of means); the other three carry
about two thirds as much each, and none has collapsed. Every posterior is narrow: its median standard deviation is
2 to 9 per cent of the spread of the means, so the decoder sees almost exactly $\mu_\phi(x)$, and the latent model
of section 3 is trained on posterior means for that reason.

## 2. The scale factor on held-out images (lesson section 2)

The shipped scale factor $s = 1/\hat\sigma$ was measured on the posterior means of the 50 000 training images and
their mirror images. Measured again here on the images above, with a standard error from eight groups of them:
""", slide="slide")

code("a11a0006", r'''
# NBVAL_IGNORE_OUTPUT
if SOURCE.startswith("CIFAR-10"):   # a statistic of the data: model samples would not measure it
    groups = MU.reshape(8, -1)                                    # eight groups of images, all their latents
    s_here, s_groups = 1 / MU.std(), 1 / groups.std(1)
    checks_scale = course.CheckTable()
    checks_scale.within_se("1 / std of the held-out latents = the shipped s", s_here, S, s_groups.std() / math.sqrt(8))
    checks_scale.claim("the latents are centred", abs(float(MU.mean())) < 0.05 * float(MU.std()),
                       f"mean {float(MU.mean()):.3f}", "< 5 % of the std")
    checks_scale.show()
    print(f"s on {N_IMG} {SOURCE}: {float(s_here):.4f} (the shipped s: {S:.4f})")
else:
    print("This part measures the data, so it needs CIFAR-10 test images: set DIFFNOTES_CIFAR10 (see the README).")
''')

md("a11a0007", r"""
The scale factor does not depend on which images measure it: the difference is within the sampling error.

## 3. The FID rows of section 4 and their noise

Each FID uses 2 000 images against the 2 000-image training reference of the pixel model (lesson 7's
protocol); the brackets give the FID of the first and of the second 1 000 images. The largest gap between two
halves of one row measures how much FID moves between two draws of 1 000 images; a difference between two rows
counts only when it is larger than that.
""", slide="slide")

code("a11a0008", r'''
rec = records.measurements("latent", "cifar10-ldm")["reconstruction"]
fid_rows = {
    "reconstructions of test images (the floor)": rec,
    "latent model cifar10-ldm, DDIM 50": records.measurements("fid", "cifar10-ldm")["rows"]["ddim_50"],
    "pixel model after its first stage, DDIM 50": records.measurements("fid", "cifar10-cpu-stage1")["rows"]["ddim_50"],
    "pixel model cifar10-cpu-5, DDIM 50": records.measurements("fid", "cifar10-cpu-5")["rows"]["ddim_50"],
}
display(Markdown("| images | FID (first / second 1 000) |\n|---|---|\n" +
                 "\n".join(f"| {k} | {records.fid_with_halves(r)} |" for k, r in fid_rows.items())))
noise = max(abs(r["fid_first1000"] - r["fid_second1000"]) for r in fid_rows.values())
f = [r["fid"] for r in fid_rows.values()]
checks_fid = course.CheckTable()
checks_fid.claim("the latent model is worse than the pixel model's first stage", f[1] - f[2] > noise,
                 f"{f[1]:.1f} vs {f[2]:.1f}", f"higher by > {noise:.1f}")
checks_fid.claim("the latent samples are worse than their floor", f[1] - f[0] > noise,
                 f"{f[1]:.1f} vs {f[0]:.1f}", f"higher by > {noise:.1f}")
checks_fid.claim("the floor lies above the best pixel model", f[0] - f[3] > noise,
                 f"{f[0]:.1f} vs {f[3]:.1f}", f"higher by > {noise:.1f}")
checks_fid.show()
''')

md("a11a0009", r"""
All three differences of the lesson's table are several times the noise of a row, so its conclusions do not
depend on which 2 000 samples were drawn: at this budget the latent model loses to the pixel model, and with
this autoencoder it would lose even with a perfect latent model, since its floor lies above the pixel model's
best row.
""")

NB.write(Path(sys.argv[1]) if len(sys.argv) > 1 else ROOT / "notebooks" / "appendix" / "11_latent_diffusion_appendix.ipynb")

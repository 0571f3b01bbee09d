"""Write notebooks/11_latent_diffusion.ipynb from its cells (sources only; execute it afterwards with
``make nbval``'s settings: DIFFNOTES_FAST=1 DIFFNOTES_BF16=0 jupyter nbconvert --execute --inplace).

The lesson is kept here as Python so that its cells can be reviewed as a diff; the notebook is what readers
open and what nbval checks.
"""
from __future__ import annotations

import sys
from pathlib import Path

from nbcells import Notebook  # scripts/course/nbcells.py (a script's folder is on the import path)

ROOT = Path(__file__).resolve().parents[2]
SETUP = "c11000002"
NB = Notebook()
md, code = NB.md, NB.code


md("c11000001", r"""
# Chapter 11 &mdash; Latent diffusion

**After this lesson you can**
1. write the ELBO of a variational autoencoder with a Gaussian decoder, and derive its KL term in closed form;
2. encode images into a small latent and decode them back, and measure what the round trip loses;
3. compute the latent scale factor and explain why the noise schedule needs it;
4. run the samplers of the earlier lessons on a diffusion model in latent space, and decode its samples;
5. compare a latent and a pixel model by cost and by quality, from measurements.

**Assumes:** lessons 2 (DDPM and $L_{\rm simple}$), 3 (DDIM) and 7 (FID).
**Study time:** 2 hours.
**90-minute lecture path:** picture (10 min) · §1 the autoencoder and its ELBO (25) · §2 the scale factor (15) ·
§3 diffusion in the latent (15) · §4 what it costs and what it buys (15) · exercises (10).
""", slide="slide")

md("c11000003", r"""
Sources: Rombach et al. 2022 (*High-Resolution Image Synthesis with Latent Diffusion Models*), Kingma & Welling
2014 (*Auto-Encoding Variational Bayes*). The two networks of this lesson were trained on this course's 2-core
CPU; how, and for how long, is in `diffnotes/pretrained/LATENT_CARD.md`. Each section's numeric checks fold
into one line (the table opens on a click). Longer measurements (where the rate goes, the scale factor on
held-out images, the noise of the FID rows) are in the appendix, `appendix/11_latent_diffusion_appendix.ipynb`.
""")

code(SETUP, r'''
%matplotlib inline
import math

import matplotlib.pyplot as plt
import sympy as sp
import torch
from IPython.display import Markdown, display

from diffnotes import autoencoder as vae
from diffnotes import course, data, generate, records, schedules
from diffnotes import fast_samplers as fs
from diffnotes.checkpoints import PRETRAINED_DIR, load_model, read_config

torch.set_num_threads(2)
F64 = torch.float64
gen = lambda seed: torch.Generator().manual_seed(seed)
AE = load_model("cifar10-ae")                  # the KL autoencoder: 32x32x3 images <-> 8x8x4 latents
LDM = load_model("cifar10-ldm", bf16=None)     # a DDPM U-Net on the scaled latents, and the way back to images
S = LDM.scale_factor                           # the latent scale factor (section 2)
SIGMA_X = AE.config["train"]["sigma_x"]         # the decoder's standard deviation (section 1)
REC = records.measurements("latent", "cifar10-ldm")
''', slide="skip")

md("c11000004", r"""
**The picture.** Top row: eight images. Middle row: what the decoder makes of their latents. Bottom row: the
latents themselves, each $8\times 8\times 4$ (the four channels as a $2\times 2$ mosaic, red positive, blue
negative): 256 numbers per image, where the image has 3 072.
""", slide="slide")

code("c11000005", r'''
# NBVAL_IGNORE_OUTPUT
# Real test images when a CIFAR-10 folder is configured (DIFFNOTES_CIFAR10); else samples of the pixel model.
images_u8 = course.cifar10_images(8)
if images_u8 is None:
    images_u8 = generate.sample_images(load_model(bf16=None), 8, steps=20, progress=False)
    print("Showing 8 samples of the shipped pixel model instead.")
x = data.to_float(images_u8)
with torch.no_grad():
    mu, logvar = AE.encode(x)
    x_rec = AE.decode(mu)
mosaic = torch.cat([torch.cat([mu[:, 0], mu[:, 1]], -1), torch.cat([mu[:, 2], mu[:, 3]], -1)], -2)
m = float(mosaic.abs().max())
fig, axes = plt.subplots(3, 8, figsize=(12, 4.9))
for k in range(8):
    axes[0, k].imshow(images_u8[k].permute(1, 2, 0))
    axes[1, k].imshow(data.to_uint8(x_rec[k:k + 1])[0].permute(1, 2, 0))
    axes[2, k].imshow(mosaic[k], cmap="RdBu_r", vmin=-m, vmax=m)
for ax in axes.flat:
    ax.set_axis_off()
for row, name in enumerate(("image", "decoded", "latent")):
    axes[row, 0].set_title(name, loc="left", fontsize=10)
course.show_figure(fig, alt="Three rows of eight: images, their reconstructions through the 8x8x4 latent, "
                            "and the latents as red-blue mosaics of four 8x8 channels.")
print(f"PSNR of these eight reconstructions: {float(vae.psnr(x, data.to_float(data.to_uint8(x_rec))).mean()):.1f} dB")
''')

md("c11000006", r"""
Look at the first two rows. The decoded images keep the layout, the colours and the large shapes; what goes is
fine texture and sharp edges (a car's outline and wheels, the small petals behind an animal's head). The
bottom row shows why this is not simply a shrunken image: the latents do not look like the picture at all. The
encoder is free to spread what it keeps over the four channels however decoding works best.
""")

md("c11000007", r"""
## 1. The autoencoder and its ELBO

A variational autoencoder has an encoder that gives a Gaussian over latents,
$q_\phi(z\mid x) = \mathcal N(\mu_\phi(x), \operatorname{diag}\sigma^2_\phi(x))$, a prior $p(z) = \mathcal N(0, I)$, and a
decoder $p_\theta(x\mid z) = \mathcal N(D_\theta(z), \sigma_x^2 I)$. It maximises the evidence lower bound

$$\log p_\theta(x) \;\ge\; \mathcal L(x) = \underbrace{\mathbb E_{q_\phi(z|x)}\big[\log p_\theta(x\mid z)\big]}_{-\text{distortion}}
\;-\; \underbrace{D_{KL}\big(q_\phi(z\mid x)\,\|\,p(z)\big)}_{\text{rate}} .$$

With the Gaussian decoder the distortion is a squared error, $\lVert x - D_\theta(z)\rVert^2/(2\sigma_x^2)$ plus a
constant, so $\sigma_x$ sets how much a bit of rate is worth in squared error. Our decoder has
$\sigma_x = 0.05$ on pixels in $[-1, 1]$. Three facts, proved below: the gap $\log p(x) - \mathcal L$ is the KL from
$q$ to the true posterior (so the bound is tight exactly when $q$ is that posterior); the KL to $\mathcal N(0, 1)$ is
$\tfrac12(\mu^2 + \sigma^2 - 1 - \log\sigma^2)$ per latent; and the decoder's term is the squared error.
""", slide="slide")

code("c11000008", r'''
z, m_, x_, a_ = sp.symbols("z m x a", real=True)
s_, s1, s2, sx = sp.symbols("s s_1 s_2 sigma_x", positive=True)
m1, m2 = sp.symbols("m_1 m_2", real=True)
normal = lambda v, mean, sd: sp.exp(-(v - mean) ** 2 / (2 * sd**2)) / sp.sqrt(2 * sp.pi * sd**2)
expect = lambda f, mean, sd: sp.integrate(sp.expand(f) * normal(z, mean, sd), (z, -sp.oo, sp.oo))

# KL(N(m1, s1^2) || N(m2, s2^2)) = E_q[log q - log p], the log-densities expanded (a polynomial in z)
log_n = lambda v, mean, sd: -(v - mean) ** 2 / (2 * sd**2) - sp.log(2 * sp.pi * sd**2) / 2
kl_general = sp.simplify(expect(log_n(z, m1, s1) - log_n(z, m2, s2), m1, s1))
kl_closed = sp.log(s2 / s1) + (s1**2 + (m1 - m2) ** 2) / (2 * s2**2) - sp.Rational(1, 2)
checks_elbo = course.CheckTable()
checks_elbo.proved("KL by integration - closed form", sp.simplify(kl_general - kl_closed))
kl_prior = kl_closed.subs({m1: m_, s1: s_, m2: 0, s2: 1})
checks_elbo.proved("KL to N(0,1) - (m^2 + s^2 - 1 - log s^2)/2",
                   sp.simplify(sp.expand_log(kl_prior - (m_**2 + s_**2 - 1 - sp.log(s_**2)) / 2)))
checks_elbo.proved("-log N(x; D, sigma_x^2) - [(x - D)^2/(2 sigma_x^2) + log(2 pi sigma_x^2)/2]",
                   sp.simplify(-sp.log(normal(x_, m_, sx)) - ((x_ - m_) ** 2 / (2 * sx**2) + sp.log(2 * sp.pi * sx**2) / 2)))
sp.Eq(sp.Symbol("D_KL(N(m, s^2) || N(0, 1))"), (m_**2 + s_**2 - 1 - sp.log(s_**2)) / 2)
''')

md("c11000009", r"""
The gap of the bound, on a model small enough to know everything: $z \sim \mathcal N(0, 1)$,
$x\mid z \sim \mathcal N(a z, \sigma_x^2)$. Then $p(x) = \mathcal N(0, a^2 + \sigma_x^2)$ and the posterior
$p(z\mid x)$ is Gaussian too; for **any** $q = \mathcal N(m, s^2)$, SymPy confirms
$\log p(x) - \mathcal L(x; q) = D_{KL}(q\,\|\,p(z\mid x))$.
""")

code("c11000010", r'''
post_mean, post_var = a_ * x_ / (a_**2 + sx**2), sx**2 / (a_**2 + sx**2)       # Bayes' rule for this model
elbo = expect(log_n(x_, a_ * z, sx), m_, s_) - kl_prior                     # E_q[log p(x|z)] - KL(q || p(z))
log_px = log_n(x_, 0, sp.sqrt(a_**2 + sx**2))
kl_to_post = kl_closed.subs({m1: m_, s1: s_, m2: post_mean, s2: sp.sqrt(post_var)})
checks_elbo.proved("log p(x) - ELBO - KL(q || p(z|x))", sp.simplify(sp.expand_log(log_px - elbo - kl_to_post, force=True)))

# the package's functions against independent values: torch.distributions, and a Monte Carlo estimate
g = gen(0)
mu_t, lv_t = torch.randn(4, 4, 8, 8, generator=g, dtype=F64), torch.randn(4, 4, 8, 8, generator=g, dtype=F64)
q = torch.distributions.Normal(mu_t, torch.exp(0.5 * lv_t))
p0 = torch.distributions.Normal(torch.zeros_like(mu_t), torch.ones_like(mu_t))
checks_elbo.check("gaussian_kl = torch.distributions", vae.gaussian_kl(mu_t, lv_t),
                  torch.distributions.kl_divergence(q, p0).flatten(1).sum(1), rtol=1e-12, why="float64 round-off")
zs = mu_t + torch.exp(0.5 * lv_t) * torch.randn((course.sizes(4000, 40000), *mu_t.shape), generator=gen(1), dtype=F64)
mc = (q.log_prob(zs) - p0.log_prob(zs)).flatten(2).sum(2)
checks_elbo.within_se("gaussian_kl = Monte Carlo E_q[log q - log p]", mc.mean(0), vae.gaussian_kl(mu_t, lv_t),
                      mc.std(0) / math.sqrt(mc.shape[0]))
x_hat_t = torch.randn(4, 3, 32, 32, generator=g, dtype=F64)
x_t = torch.randn(4, 3, 32, 32, generator=g, dtype=F64)
terms = vae.negative_elbo(x_t, x_hat_t, mu_t, lv_t, sigma_x=SIGMA_X)
checks_elbo.check("distortion = -log N(x; x_hat, sigma_x^2)", terms["distortion"],
                  -torch.distributions.Normal(x_hat_t, SIGMA_X).log_prob(x_t).flatten(1).sum(1), rtol=1e-12)
checks_elbo.show()
''')

md("c11000011", r"""
What the shipped autoencoder pays and gets, per image (its posterior at the eight images above): the rate in nats,
the distortion's squared error, and how wide $q(z\mid x)$ is next to the spread of the means.
""")

code("c11000012", r'''
# NBVAL_IGNORE_OUTPUT
with torch.no_grad():
    nelbo = vae.negative_elbo(x, x_rec, mu, logvar, sigma_x=SIGMA_X)
print(f"rate KL(q || N(0, I)): {float(nelbo['rate'].mean()):.0f} nats per image "
      f"= {float(nelbo['rate'].mean()) / x[0].numel():.3f} nats per pixel value")
print(f"mean squared error: {float((x - x_rec).pow(2).mean()):.4f} (pixels in [-1, 1])")
print(f"posterior std sigma_phi(x): median {float(torch.exp(0.5 * logvar).median()):.3f}; "
      f"std of the means mu_phi(x): {float(mu.std()):.3f}")
''')

md("c11000013", r"""
The rate is about 0.24 nats per pixel value, and the distortion is a mean squared error near 0.008, a PSNR
near 27 dB (printed above for the images shown; `LATENT_CARD.md` gives it on 2 000 test images). The
posterior is narrow: $\sigma_\phi(x)$ is a few hundredths where the means spread over about 1, so the latent
model below is trained on the means $\mu_\phi(x)$ (Rombach et al. draw $z \sim q_\phi$; at this width the two
differ little).
""")

md("c11000014", r"""
## 2. The scale factor

The noise schedule of lesson 2 was tuned for pixels in $[-1, 1]$, whose standard deviation is about 0.5. Its
last step leaves $\bar\alpha_T = 4\times 10^{-5}$ of the signal's variance, so for data of standard deviation
$\sigma_d$ the signal-to-noise ratio at $t = T$ is
$$\mathrm{SNR}(T) = \frac{\bar\alpha_T\,\sigma_d^2}{1 - \bar\alpha_T}.$$
Sampling starts from pure noise, so that ratio must be negligible, and the steps in between were placed for
data of unit-order spread. The autoencoder's latents have whatever spread training gave them. Rombach et al.
therefore multiply them by $s = 1/\hat\sigma$, one over their standard deviation over the training set, before
diffusion, and divide by $s$ before decoding.
""", slide="slide")

code("c11000015", r'''
lin = schedules.linear_schedule(1000)
ab_T = float(lin.alpha_bar[-1])
snr_T = lambda sd: ab_T * sd**2 / (1 - ab_T)
rows = [("pixels in [-1, 1] (CIFAR-10, about)", 0.5), ("our latents as encoded", 1 / S), ("our latents times s", 1.0),
        ("Stable Diffusion's latents as encoded (s = 0.18215)", 1 / 0.18215)]
display(Markdown("| data | std | SNR at t = T |\n|---|---|---|\n" +
                 "\n".join(f"| {n} | {sd:.3g} | {snr_T(sd):.2g} |" for n, sd in rows)))
print(f"scale factor s = {S:.4f} (one over the standard deviation of the 50 000 training images' latents)")
# Why ours is near 1: scale every latent by c (the decoder can undo it); the KL is smallest at c^2 (m^2 + s^2) = 1
c = sp.symbols("c", positive=True)
kl_c = (c**2 * m_**2 + c**2 * s_**2 - 1 - sp.log(c**2 * s_**2)) / 2
best = sp.solve(sp.diff(kl_c, c), c)
checks_scale = course.CheckTable()
checks_scale.proved("dKL/dc = 0 only at c^2 (m^2 + s^2) = 1", len(best) - 1, sp.simplify(best[0] ** 2 * (m_**2 + s_**2) - 1))
checks_scale.show()
''')

md("c11000016", r"""
Our latents come out of the encoder with a standard deviation of 0.99, so $s = 1.012$ changes almost nothing.
That is the KL term at work. Multiplying every latent by $c$ costs no distortion (the decoder's first layer can
undo it) but changes the rate, and the check above proves that the rate is smallest when
$c^2(\mu^2 + \sigma^2) = 1$: the KL pulls the latents' second moment to 1. How hard it pulls is the KL's weight.
Ours, $1/(2\sigma_x^2)$ against the squared error, is strong; Rombach et al. weight the KL by $10^{-6}$, too
weakly to act within training, and their latents drift to whatever spread the decoder likes: Stable Diffusion's autoencoder needs $s = 0.18215$, a
standard deviation of 5.5, and without the factor the signal-to-noise ratio at $t = T$ would be about 120 times
the pixels' (last row), with every intermediate noise level shifted by the same factor. The factor costs one division; measuring
it is the only way to know whether it matters.
""")

code("c11000017", r'''
# NBVAL_IGNORE_OUTPUT
fig, ax = plt.subplots(figsize=(6, 3.4))
grid_z = torch.linspace(-4, 4, 200)
ax.hist((mu * S).flatten().numpy(), bins=60, density=True, alpha=0.6, label="s * mu(x), the eight images above")
ax.plot(grid_z, torch.exp(-grid_z**2 / 2) / math.sqrt(2 * math.pi), "k", lw=1, label="N(0, 1)")
ax.set_xlim(-4, 4)
ax.legend(fontsize=8)
course.show_figure(fig, alt="Histogram of the scaled latent values of eight images, with the standard normal "
                            "density drawn over it.")
print(f"std of s * mu over these eight images: {float((mu * S).std()):.2f}; "
      f"mean of mu^2 + sigma^2 there: {float((mu**2 + logvar.exp()).mean()):.2f}")
''')

md("c11000018", r"""
The scaled latents have about unit spread but are not Gaussian: more of them sit near zero than the normal curve
predicts, with a tail on both sides. Diffusion does not need Gaussian data, only data of a scale the schedule
was made for.
""")

md("c11000019", r"""
## 3. Diffusion in the latent

Nothing in lessons 2 and 3 cared what $x_0$ is. The latent model is the DDPM U-Net of the pixel model with
4 input channels at $8\times 8$, trained with $L_{\rm simple}$ on $z_0 = s\,\mu_\phi(x)$ by the very training
loop of the pixel model. So every sampler of the course runs on it unchanged; only at the end does the decoder
turn $z_0$ into an image, $\hat x = D_\theta(z_0/s)$. Sixteen samples, DDIM with 50 steps:
""", slide="slide")

code("c11000020", r'''
info = {}
samples = generate.sample_images(LDM, 16, sampler="ddim", steps=50, seed=0, progress=False, info=info)
fig = course.show_images(samples, nrow=8)
course.show_figure(fig, alt="Sixteen images sampled by DDIM in the latent space and decoded.")
print(f"{info['nfe']:.0f} network calls per image, on 8x8x4 latents; then one decoder call")
''')

md("c11000021", r"""
The samples have CIFAR's colours and layouts (sky above, green or brown ground, shapes that could be birds,
vehicles or animals), but they are soft all over, softer than the reconstructions in the opening picture. Two
things blur them: the decoder, which blurs everything it decodes, and the latent model, which after an hour of
training on the CPU has not yet learnt where real latents lie. Section 4 separates the two.
""")

md("c11000022", r"""
The same holds for any sampler in the registry: DPM-Solver++ 2M with 10 steps (lesson 9) from the same
seeds. The check below confirms that the latent model's samplers receive and return latents of shape
$4\times 8\times 8$ and that decoding gives the images.
""")

code("c11000023", r'''
checks_latent = course.CheckTable()
shapes = []
def seen(step):
    shapes.append(tuple(step.x.shape))
x_T = torch.randn(2, 4, 8, 8, generator=gen(1))
ts = generate.SAMPLERS["dpmpp2m"].timesteps(LDM.schedule, 10, None)
with torch.no_grad():
    z0 = fs.sample_dpmpp_2m(LDM, x_T, ts, schedule=LDM.schedule, callback=seen)
    decoded = LDM.decode_latents(z0)
checks_latent.claim("every sampler state is a latent", all(s[1:] == (4, 8, 8) for s in shapes),
                    f"{len(shapes)} states of shape {shapes[0][1:]}", "(4, 8, 8)")
with torch.no_grad():
    checks_latent.check("decode = D(z0 / s)", decoded, AE.decode(z0 / S), atol=1e-6, why="float32 round-off")
fast = generate.sample_images(LDM, 16, sampler="dpmpp2m", steps=10, seed=0, progress=False)
checks_latent.claim("16 decoded images", fast.shape == (16, 3, 32, 32) and fast.dtype == torch.uint8,
                    f"{tuple(fast.shape)} {fast.dtype}", "(16, 3, 32, 32) uint8")
checks_latent.show()
''')

md("c11000024", r"""
## 4. What it costs and what it buys

Measured on this course's CPU (`scripts/latent/card.py`, `scripts/model_card/fid_rows.py`): training and
sampling speed, and FID of 2 000 images against the same 2 000 training images as the pixel model's table
in lesson 9 (the protocol of lesson 7). The reconstruction row decodes the latents of 2 000 test images: no
sample decoded by this autoencoder can be expected to do better.
""", slide="slide")

code("c11000025", r'''
speed, rec = REC["speed"], REC["reconstruction"]
display(Markdown("| network | training img/s (batch 64) |\n|---|---|\n" +
                 "\n".join(f"| {k} | {v:.0f} |" for k, v in speed["train_img_s"].items()) +
                 "\n\n| sampling, DDIM 50 steps | img/s |\n|---|---|\n" +
                 "\n".join(f"| {k} | {v:.0f} |" for k, v in speed["ddim50_img_s"].items())))
rows = [("reconstructions of test images (the floor)", rec["fid"], "-"),
        ("latent model, DDIM 50", records.measurements("fid", "cifar10-ldm")["rows"]["ddim_50"]["fid"],
         f"{LDM.config['lineage']['cpu_hours'] + AE.config['lineage']['cpu_hours']:.1f}")]
stage1 = records.measurements("fid", "cifar10-cpu-stage1")   # the pixel model's unconditional first stage
rows.append(("pixel model after its first stage, DDIM 50", stage1["rows"]["ddim_50"]["fid"], f"{stage1['cpu_hours']:.1f}"))
rows.append(("pixel model cifar10-cpu-5, DDIM 50", records.measurements("fid", "cifar10-cpu-5")["rows"]["ddim_50"]["fid"],
             f"{read_config(PRETRAINED_DIR / 'cifar10-cpu-5.json')['lineage']['cpu_hours']:.1f}"))
display(Markdown("| images | FID (2 000) | CPU hours of training |\n|---|---|---|\n" +
                 "\n".join(f"| {n} | {f:.1f} | {h} |" for n, f, h in rows)))
''')

md("c11000026", r"""
The speed is real: a training step of the latent U-Net processes about four times as many images per second as
the pixel model's, and sampling with DDIM-50, decoding included, is about five times faster. The quality is
not there. The reconstructions alone score 53.8, so even a perfect latent model could not, on average, do
better than that; the latent model's samples score 86.9. The pixel model's first stage, trained for about
half an hour more (2.2 against 1.7 CPU hours), scores 65.6, and the pixel model trained longer scores 47.6,
below the latent model's floor; each gap is several times FID's noise (appendix, part 3). On 32x32 images
there is little to save, and a squared-error autoencoder's blur costs more FID than the cheaper network buys. Latent diffusion pays off on large images (Rombach et al.
work at 256x256 and above, where a factor 4 to 8 per side removes most of the cost) and with an autoencoder
trained for perceptual quality.
""")

md("c11000027", r"""
> **A question readers ask: is latent diffusion simply faster, with the same theory?**
> Note `003_e5b5ddf638f4bf09.txt` says that Stable Diffusion (first called latent diffusion) adds the noise in
> a low-dimensional hidden space, that it is therefore faster than diffusion on pixels, and that the theory of
> the two is the same. The theory is indeed the same: section 3 ran the unchanged samplers on latents. "Faster"
> needs two qualifications, both visible in the table above. What is cheaper is each call of the denoising
> network, by a factor that depends on the two networks, not on the ratio of dimensions alone. And the
> autoencoder is a second model, trained first, whose reconstructions bound the quality: the latent model
> inherits their FID as a floor. Rombach et al. make the same trade explicit: they pick the downsampling factor
> that balances the two (their $f = 4$ to $16$), and their autoencoders add perceptual and adversarial losses so
> that the floor sits far below what a squared error gives.
""")

md("c11000028", r"""
## Exercises

Each exercise has a grader cell that checks your code against an independent value; the solutions are
collapsed.

### Exercise 1 (derive): the rate of a diagonal Gaussian
Write `rate(mu, logvar)`: $D_{KL}(\mathcal N(\mu, \operatorname{diag} e^{\log\sigma^2})\,\|\,\mathcal N(0, I))$ of each
sample of a batch, summed over all other axes, from the closed form of section 1.
""", slide="slide")

HINT1 = "Per element 0.5 * (mu**2 + exp(logvar) - 1 - logvar), then sum over every axis but the first."
code("c11000029", r'''
def rate(mu, logvar):
    """KL of N(mu, exp(logvar)) from N(0, I), one value per sample (sum over all axes but the first)."""
    # BEGIN SOLUTION
    return (0.5 * (mu**2 + torch.exp(logvar) - 1 - logvar)).flatten(1).sum(1)
    # END SOLUTION
''', tags=["solution"], exercise={"number": 1, "hint": HINT1, "needs": [SETUP]}, hidden=True)

code("c11000030", r'''
def grade_1(table):
    m, lv = torch.randn(5, 4, 8, 8, generator=gen(10), dtype=F64), torch.randn(5, 4, 8, 8, generator=gen(11), dtype=F64)
    q = torch.distributions.Normal(m, torch.exp(0.5 * lv))
    p = torch.distributions.Normal(torch.zeros_like(m), torch.ones_like(m))
    table.check("rate = torch.distributions KL", rate(m, lv), torch.distributions.kl_divergence(q, p).flatten(1).sum(1),
                rtol=1e-10)
    table.check("zero at the prior", rate(torch.zeros(2, 3, dtype=F64), torch.zeros(2, 3, dtype=F64)), 0.0, atol=1e-15)


_ = course.grade(1, grade_1, hint=HINT)
'''.replace("HINT)", repr(HINT1) + ")"), tags=["grader"], exercise={"number": 1})

md("c11000031", r"""
### Exercise 2 (implement): a draw from the posterior
Write `draw(mu, logvar, generator)`: one sample $z = \mu + \sigma\epsilon$ of $q(z\mid x)$ with
$\epsilon \sim \mathcal N(0, I)$ from `generator`, written so that gradients reach `mu` and `logvar`. The grader
checks the mean and variance of many draws and the gradients.
""")

HINT2 = "z = mu + torch.exp(0.5 * logvar) * torch.randn(mu.shape, generator=generator, dtype=mu.dtype)."
code("c11000032", r'''
def draw(mu, logvar, generator):
    """z = mu + sigma * eps with eps ~ N(0, I) from generator (the reparameterisation)."""
    # BEGIN SOLUTION
    return mu + torch.exp(0.5 * logvar) * torch.randn(mu.shape, generator=generator, dtype=mu.dtype)
    # END SOLUTION
''', tags=["solution"], exercise={"number": 2, "hint": HINT2, "needs": [SETUP]}, hidden=True)

code("c11000033", r'''
def grade_2(table):
    m = torch.tensor([1.5, -2.0], dtype=F64, requires_grad=True)
    lv = torch.tensor([math.log(0.25), math.log(4.0)], dtype=F64, requires_grad=True)
    n = 50_000
    zs = draw(m.expand(n, 2), lv.expand(n, 2), gen(12))
    table.within_se("mean of the draws", zs.mean(0).detach(), m.detach(), zs.std(0).detach() / math.sqrt(n))
    v = zs.var(0).detach()
    table.within_se("variance of the draws", v, torch.tensor([0.25, 4.0], dtype=F64), v * math.sqrt(2 / (n - 1)))
    zs.sum().backward()
    table.check("d sum(z) / d mu", m.grad, float(n), rtol=1e-12)
    table.claim("gradient reaches logvar", bool(lv.grad is not None and lv.grad.abs().min() > 0),
                "nonzero" if lv.grad is not None and lv.grad.abs().min() > 0 else "zero or missing", "nonzero")


_ = course.grade(2, grade_2, hint=HINT)
'''.replace("HINT)", repr(HINT2) + ")"), tags=["grader"], exercise={"number": 2})

md("c11000034", r"""
### Exercise 3 (measure): how much signal survives the last step?
Write `snr_at_T(std, schedule)`: the signal-to-noise ratio $\bar\alpha_T\sigma_d^2/(1-\bar\alpha_T)$ at the
last step of `schedule` for data of standard deviation `std`. The grader compares it with the ratio of the
variances of $\sqrt{\bar\alpha_T}\,x_0$ and $\sqrt{1-\bar\alpha_T}\,\epsilon$ in simulated forward draws.
""")

HINT3 = "ab = float(schedule.alpha_bar[-1]); return ab * std**2 / (1 - ab)."
code("c11000035", r'''
def snr_at_T(std, schedule):
    """Signal-to-noise ratio at the last step of the schedule for data of standard deviation std."""
    # BEGIN SOLUTION
    ab = float(schedule.alpha_bar[-1])
    return ab * std**2 / (1 - ab)
    # END SOLUTION
''', tags=["solution"], exercise={"number": 3, "hint": HINT3, "needs": [SETUP]}, hidden=True)

code("c11000036", r'''
def grade_3(table):
    sched = schedules.linear_schedule(1000)
    ab = sched.alpha_bar[-1].double()
    for sd in (0.5, 3.0):
        x0 = sd * torch.randn(200_000, generator=gen(13), dtype=F64)
        eps = torch.randn(200_000, generator=gen(14), dtype=F64)
        simulated = float((ab.sqrt() * x0).var() / ((1 - ab).sqrt() * eps).var())
        table.check(f"SNR(T) for std {sd}", snr_at_T(sd, sched), simulated, rtol=0.02,
                    why="200 000 draws: the variance ratio to about 0.5 %")


_ = course.grade(3, grade_3, hint=HINT)
'''.replace("HINT)", repr(HINT3) + ")"), tags=["grader"], exercise={"number": 3})

md("c11000037", r"""
## Summary

* A KL autoencoder is a VAE: it maximises the ELBO, a squared-error distortion plus a rate
  $\tfrac12\sum(\mu^2 + \sigma^2 - 1 - \log\sigma^2)$, and the bound's gap is the KL to the true posterior.
* The latent must have the scale the noise schedule was made for: $s = 1/\hat\sigma$. The KL term itself pulls
  the latents' second moment to 1, so a strongly weighted KL (ours) needs $s \approx 1$ and a tiny one
  (Stable Diffusion's) needs $s = 0.18$.
* Diffusion in the latent is the same DDPM: same loss, same loop, same samplers; only the decoder is new.
* Each network call is several times cheaper, but the autoencoder's reconstructions set a floor on quality. On
  CIFAR-10 with a squared-error autoencoder that floor (FID 53.8) is above what the pixel model reaches.
""", slide="slide")

NB.write(Path(sys.argv[1]) if len(sys.argv) > 1 else ROOT / "notebooks" / "11_latent_diffusion.ipynb")

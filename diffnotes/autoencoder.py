r"""Latent diffusion (Rombach et al. 2022): a KL-regularised autoencoder and a diffusion model in its latent.

The autoencoder maps a 32x32x3 image to a posterior :math:`q_\phi(z \mid x) = N(\mu_\phi(x),
\mathrm{diag}\,\sigma^2_\phi(x))` over an 8x8x4 latent and decodes :math:`z` back with a Gaussian decoder
:math:`p_\theta(x \mid z) = N(D_\theta(z), \sigma_x^2 I)` of fixed width. It is trained on the negative ELBO
(Kingma & Welling 2014, eq. 3)

.. math::
    -\mathcal{L}(x) = \mathbb{E}_{q_\phi(z|x)}\!\left[\frac{\lVert x - D_\theta(z)\rVert^2}{2\sigma_x^2}\right]
    + \frac{d}{2}\log(2\pi\sigma_x^2) + D_{KL}\big(q_\phi(z \mid x)\,\|\,N(0, I)\big),

whose KL term has the closed form of :func:`gaussian_kl`. The diffusion model then learns the latents
:math:`s\,\mu_\phi(x)`, scaled by :func:`latent_scale_factor` to unit variance (Rombach et al. 2022, sec. 4.3.2
and appendix G), and :class:`LatentDiffusion` decodes what it samples. Chapter 11.
"""
from __future__ import annotations

import math

import torch
from torch import nn

from ._checks import check_int, check_range, check_same_shape
from ._util import carry_trained_attrs, randn_like
from .likelihood import normal_kl

__all__ = [
    "gaussian_kl",
    "reparameterize",
    "negative_elbo",
    "psnr",
    "latent_scale_factor",
    "AutoencoderKL",
    "LatentDiffusion",
]


# --------------------------------------------------------------------------------------
# the mathematics
# --------------------------------------------------------------------------------------
def gaussian_kl(mu: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
    r"""KL divergence of :math:`N(\mu, \mathrm{diag}\,e^{\log\sigma^2})` from :math:`N(0, I)`, one value per sample.

    .. math:: D_{KL} = \tfrac12 \sum_j \left(\mu_j^2 + \sigma_j^2 - 1 - \log\sigma_j^2\right)

    (Kingma & Welling 2014, appendix B, with the sign of their :math:`-D_{KL}`): the case
    :math:`\mu_2 = 0, \sigma_2 = 1` of :func:`diffnotes.likelihood.normal_kl`, summed over every axis but
    the first. In nats; zero exactly when :math:`\mu = 0` and :math:`\sigma = 1`.
    """
    check_same_shape("logvar", logvar, "mu", mu)
    if mu.ndim < 1:
        raise ValueError(f"mu must have a batch axis, got shape {tuple(mu.shape)}")
    kl = normal_kl(mu, logvar, 0.0, 0.0)
    return kl.flatten(1).sum(1) if kl.ndim > 1 else kl


def reparameterize(mu: torch.Tensor, logvar: torch.Tensor, *, generator=None) -> torch.Tensor:
    r""":math:`z = \mu + \sigma \odot \epsilon`, :math:`\epsilon \sim N(0, I)`: a draw from :math:`q_\phi(z|x)` that is
    differentiable in :math:`\mu` and :math:`\log\sigma^2` (Kingma & Welling 2014, sec. 2.4)."""
    check_same_shape("logvar", logvar, "mu", mu)
    return mu + torch.exp(0.5 * logvar) * randn_like(mu, generator)


def negative_elbo(x: torch.Tensor, x_hat: torch.Tensor, mu: torch.Tensor, logvar: torch.Tensor, *,
                  sigma_x: float) -> dict:
    r"""The negative ELBO of each image for one draw :math:`z` (module docstring), in nats, and its two terms.

    .. math:: -\mathcal{L} = \underbrace{\frac{\lVert x - \hat x\rVert^2}{2\sigma_x^2}
              + \frac{d}{2}\log(2\pi\sigma_x^2)}_{-\log p_\theta(x|z)}
              + \underbrace{D_{KL}(q_\phi(z|x)\,\|\,N(0,I))}_{\text{rate}}

    with :math:`\hat x = D_\theta(z)` and :math:`d` the number of pixel values. Returns ``{"nelbo",
    "distortion", "rate"}``, each of shape ``[B]``: the sum, :math:`-\log p_\theta(x|z)` and the KL.
    """
    check_same_shape("x_hat", x_hat, "x", x)
    check_range("sigma_x", sigma_x, 0.0, None, low_open=True)
    if x.ndim < 2:
        raise ValueError(f"x must be a batch [B, ...], got shape {tuple(x.shape)}")
    d = x[0].numel()
    sq = (x - x_hat).pow(2).flatten(1).sum(1)
    distortion = sq / (2.0 * sigma_x**2) + 0.5 * d * math.log(2.0 * math.pi * sigma_x**2)
    rate = gaussian_kl(mu, logvar)
    return {"nelbo": distortion + rate, "distortion": distortion, "rate": rate}


def psnr(x: torch.Tensor, x_hat: torch.Tensor, *, peak_to_peak: float = 2.0) -> torch.Tensor:
    r"""Peak signal-to-noise ratio of each image in dB, :math:`10\log_{10}(P^2/\mathrm{MSE})`.

    ``peak_to_peak`` is the range :math:`P` of the pixel values: 2 for images in :math:`[-1, 1]` (the
    package's convention; the same PSNR as 255 for bytes), 255 for bytes, 1 for :math:`[0, 1]`.
    Identical images give ``inf``.
    """
    check_same_shape("x_hat", x_hat, "x", x)
    check_range("peak_to_peak", peak_to_peak, 0.0, None, low_open=True)
    mse = (x.double() - x_hat.double()).pow(2).flatten(1).mean(1)
    return (10.0 * torch.log10(peak_to_peak**2 / mse)).to(x.dtype if x.is_floating_point() else torch.float64)


def latent_scale_factor(latents: torch.Tensor) -> float:
    r"""The factor :math:`s = 1/\hat\sigma` that gives latents unit variance, :math:`\hat\sigma` their standard
    deviation over all elements (Rombach et al. 2022, sec. 4.3.2: "rescale the latent ... by the
    component-wise standard deviation" of a batch; Stable Diffusion's 0.18215 was found this way).

    The diffusion schedule assumes data of about unit variance: with :math:`s` the noise at :math:`t = T`
    drowns the latents as it drowns images in :math:`[-1, 1]`.
    """
    latents = torch.as_tensor(latents)
    if latents.numel() < 2:
        raise ValueError(f"latents must hold at least 2 values to estimate a spread, got shape {tuple(latents.shape)}")
    std = float(latents.double().std())
    if not math.isfinite(std) or std <= 0.0:
        raise ValueError(f"latents have standard deviation {std}: they must vary and be finite")
    return 1.0 / std


# --------------------------------------------------------------------------------------
# the network
# --------------------------------------------------------------------------------------
class _Block(nn.Module):
    """GroupNorm-SiLU-conv twice, with a (1x1 where the width changes) skip connection."""

    def __init__(self, c_in: int, c_out: int, groups: int):
        super().__init__()
        self.body = nn.Sequential(
            nn.GroupNorm(groups, c_in), nn.SiLU(), nn.Conv2d(c_in, c_out, 3, padding=1),
            nn.GroupNorm(groups, c_out), nn.SiLU(), nn.Conv2d(c_out, c_out, 3, padding=1),
        )
        self.skip = nn.Conv2d(c_in, c_out, 1) if c_in != c_out else nn.Identity()

    def forward(self, x):
        return self.skip(x) + self.body(x)


class AutoencoderKL(nn.Module):
    r"""A small convolutional VAE: 32x32x3 images to an 8x8x``latent_channels`` Gaussian posterior and back.

    Encoder: 3x3 conv to ``ch``; per level of ``ch_mult`` a residual block, then a stride-2 conv except at
    the last level; GroupNorm, SiLU and a 3x3 conv to :math:`2 \times` ``latent_channels`` maps,
    :math:`(\mu, \log\sigma^2)`. Decoder: the mirror image, with nearest-neighbour upsampling and a conv. Each
    stride-2 level halves the side: ``ch_mult`` of length 3 gives 32 -> 8 (Rombach et al. 2022's
    :math:`f = 4`; their KL models use the same GroupNorm-SiLU residual blocks, far larger).

    ``encode(x) -> (mu, logvar)``, ``decode(z) -> x_hat``, ``forward(x, generator=None) -> (x_hat, mu, logvar)``
    with :math:`z` drawn by :func:`reparameterize` (``sample=False``: :math:`z = \mu`).
    """

    def __init__(self, in_channels: int = 3, latent_channels: int = 4, ch: int = 64, ch_mult=(1, 2, 2),
                 num_groups: int = 16, logvar_min: float = -30.0, logvar_max: float = 20.0):
        super().__init__()
        in_channels = check_int("in_channels", in_channels, 1)
        latent_channels = check_int("latent_channels", latent_channels, 1)
        ch = check_int("ch", ch, 1)
        ch_mult = tuple(check_int("ch_mult[i]", m, 1) for m in ch_mult)
        if not ch_mult:
            raise ValueError("ch_mult must name at least one level")
        num_groups = check_int("num_groups", num_groups, 1)
        widths = [ch * m for m in ch_mult]
        if any(w % num_groups for w in [ch, *widths]):
            raise ValueError(f"num_groups={num_groups} must divide every width {sorted({ch, *widths})}")
        if not logvar_min < logvar_max:
            raise ValueError(f"logvar_min must be below logvar_max, got {logvar_min} and {logvar_max}")
        self.arch = dict(in_channels=in_channels, latent_channels=latent_channels, ch=ch, ch_mult=list(ch_mult),
                         num_groups=num_groups, logvar_min=float(logvar_min), logvar_max=float(logvar_max))
        self.downsampling = 2 ** (len(ch_mult) - 1)
        self.latent_channels = latent_channels
        self.logvar_range = (float(logvar_min), float(logvar_max))

        enc = [nn.Conv2d(in_channels, ch, 3, padding=1)]
        c = ch
        for i, w in enumerate(widths):
            enc.append(_Block(c, w, num_groups))
            c = w
            if i < len(widths) - 1:
                enc.append(nn.Conv2d(c, c, 3, stride=2, padding=1))
        enc += [nn.GroupNorm(num_groups, c), nn.SiLU(), nn.Conv2d(c, 2 * latent_channels, 3, padding=1)]
        self.encoder = nn.Sequential(*enc)

        dec = [nn.Conv2d(latent_channels, widths[-1], 3, padding=1)]
        c = widths[-1]
        for i, w in enumerate(reversed(widths)):
            dec.append(_Block(c, w, num_groups))
            c = w
            if i < len(widths) - 1:
                dec += [nn.Upsample(scale_factor=2, mode="nearest"), nn.Conv2d(c, c, 3, padding=1)]
        dec += [nn.GroupNorm(num_groups, c), nn.SiLU(), nn.Conv2d(c, in_channels, 3, padding=1)]
        self.decoder = nn.Sequential(*dec)

    def _check_image(self, x: torch.Tensor) -> None:
        c, f = self.arch["in_channels"], self.downsampling
        if x.ndim != 4 or x.shape[1] != c or x.shape[-1] % f or x.shape[-2] % f:
            raise ValueError(f"x must be images [B, {c}, H, W] with H and W divisible by {f}, got {tuple(x.shape)}")

    def encode(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        r""":math:`(\mu_\phi(x), \log\sigma^2_\phi(x))`, each ``[B, latent_channels, H/f, W/f]``; the log-variance is
        clamped to ``[logvar_min, logvar_max]`` (a guard against overflow of :math:`e^{\log\sigma^2}` early in
        training, as Rombach et al.'s code does)."""
        self._check_image(x)
        mu, logvar = self.encoder(x).chunk(2, dim=1)
        return mu, logvar.clamp(*self.logvar_range)

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        r"""The decoder's mean :math:`D_\theta(z)`, images in (about) :math:`[-1, 1]`."""
        if z.ndim != 4 or z.shape[1] != self.latent_channels:
            raise ValueError(f"z must be latents [B, {self.latent_channels}, h, w], got {tuple(z.shape)}")
        return self.decoder(z)

    def forward(self, x: torch.Tensor, *, sample: bool = True, generator=None):
        mu, logvar = self.encode(x)
        z = reparameterize(mu, logvar, generator=generator) if sample else mu
        return self.decode(z), mu, logvar


class LatentDiffusion(nn.Module):
    r"""A noise-prediction network in the latent space of an :class:`AutoencoderKL`, with the way back to images.

    Called as the latent network, ``model(z_t, t) -> eps_hat``, so every sampler of the package runs on it
    unchanged (on latents of shape ``[B, latent_channels, 8, 8]``); :meth:`decode_latents` maps a sampled
    :math:`z_0` (in the scaled units the network was trained on) to images,
    :math:`D_\theta(z_0 / s)`. It carries the latent network's ``.schedule`` and ``.config``.
    """

    def __init__(self, unet: nn.Module, autoencoder: AutoencoderKL, scale_factor: float):
        super().__init__()
        check_range("scale_factor", scale_factor, 0.0, None, low_open=True)
        self.unet = unet
        self.autoencoder = autoencoder
        self.scale_factor = float(scale_factor)
        carry_trained_attrs(unet, self)

    def forward(self, z_t, t, *args, **kwargs):
        return self.unet(z_t, t, *args, **kwargs)

    def decode_latents(self, z_0: torch.Tensor) -> torch.Tensor:
        r"""Images :math:`D_\theta(z_0 / s)` from scaled latents :math:`z_0`."""
        return self.autoencoder.decode(z_0 / self.scale_factor)

    def encode_images(self, x: torch.Tensor) -> torch.Tensor:
        r"""Scaled latents :math:`s\,\mu_\phi(x)` of images in :math:`[-1, 1]`: what the network was trained on."""
        return self.autoencoder.encode(x)[0] * self.scale_factor

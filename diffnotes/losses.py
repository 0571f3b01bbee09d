r"""Training objectives: L_simple, the variational bound, denoising score matching, the hybrid loss.

The variational lower bound (VLB) of a DDPM (Ho et al. 2020, eq. 5) is a sum of terms

.. math::
    L_{\mathrm{vlb}} = \underbrace{D_{KL}(q(x_T\mid x_0)\,\|\,N(0, I))}_{L_T}
        + \sum_{t=2}^{T} \underbrace{D_{KL}(q(x_{t-1}\mid x_t, x_0)\,\|\,p_\theta(x_{t-1}\mid x_t))}_{L_{t-1}}
        \underbrace{-\log p_\theta(x_0 \mid x_1)}_{L_0}

and every term here is one function: :func:`prior_kl` (:math:`L_T`), :func:`posterior_kl`
(:math:`L_{t-1}`), :func:`decoder_nll` (:math:`L_0`, through the discretised Gaussian
:func:`discretized_gaussian_log_likelihood`), :func:`vlb_term` (the one that applies at code index
``t``: :math:`L_0` for ``t == 0``, else :math:`L_{t}` in the paper's 1-based numbering) and
:func:`vlb` (all of them for a model, by one pass over every step).

Units. ``unit="bpd"`` (default) gives bits per dimension: nats averaged over all non-batch
dimensions and divided by :math:`\ln 2`; ``unit="nats"`` gives nats summed over all non-batch
dimensions (the negative log-likelihood of the whole sample). They differ by the factor
:math:`D \ln 2`, with :math:`D` the number of dimensions of one sample.

Index convention (see CONTRIBUTING.md): code index ``t = 0 .. T-1`` is the paper's step
``1 .. T``; the first step (``t == 0``) is the one where :math:`\bar\alpha_{t-1} = 1`.

Recipe options of ``train`` (issue M): per-step loss weights (:func:`min_snr_weight`,
:func:`edm_weight`, :func:`timestep_loss_weights`, :func:`weighted_l_simple`) and EDM's log-normal
distribution of the noise level mapped onto a discrete schedule (:func:`sample_t_log_normal`).

Chapters 2 (L_simple and the loss: Gaussian KL, VLB terms, discretised decoder),
5 (denoising score matching) and 6 (improved DDPM: learned variances, the hybrid loss,
importance sampling of t, bits/dim).
"""
from __future__ import annotations

import math

import torch

from ._checks import _show, check_batch, check_finite, check_int, check_range, check_same_shape
from ._util import append_dims, batch_t
from .forward import posterior_mean, posterior_variance, q_sample, x0_from_eps

__all__ = [
    "l_simple",
    "normal_kl",
    "approx_standard_normal_cdf",
    "discretized_gaussian_log_likelihood",
    "prior_kl",
    "posterior_kl",
    "decoder_nll",
    "vlb_term",
    "vlb",
    "dsm_loss",
    "learned_log_variance",
    "hybrid_loss",
    "importance_probs",
    "importance_weights",
    "LossAwareSampler",
    "min_snr_weight",
    "edm_weight",
    "timestep_loss_weights",
    "weighted_l_simple",
    "schedule_log_snr",
    "nearest_log_snr_index",
    "sample_t_log_normal",
]

_LN2 = math.log(2.0)
_BIN_HALF_WIDTH = 1.0 / 255.0  # 8-bit data in [-1, 1]: 256 bins of width 2/255
_UNITS = ("bpd", "nats")
_REDUCTIONS = ("mean", "none")
_VARIANCES = ("beta_tilde", "beta", "learned")


# --------------------------------------------------------------------------- helpers
def _check_choice(name, value, allowed):
    if value not in allowed:
        raise ValueError(f"{name} must be one of {', '.join(map(repr, allowed))}; got {value!r}")


def _flat(x: torch.Tensor) -> torch.Tensor:
    return x.reshape(x.shape[0], -1)


def _reduce(per_sample: torch.Tensor, reduction: str) -> torch.Tensor:
    _check_choice("reduction", reduction, _REDUCTIONS)
    return per_sample.mean() if reduction == "mean" else per_sample


def _to_unit(nats: torch.Tensor, unit: str) -> torch.Tensor:
    """Per-element nats ``[B, ...]`` -> per-sample ``[B]`` in ``unit``."""
    if unit == "bpd":
        return _flat(nats).mean(1) / _LN2
    return _flat(nats).sum(1)


def _like_x(name: str, c, x: torch.Tensor) -> torch.Tensor:
    """A scalar, a ``[B]`` tensor or a tensor broadcastable to ``x`` expanded to ``x.shape``."""
    if isinstance(c, torch.Tensor):
        c = c.to(device=x.device, dtype=x.dtype)
    else:
        c = torch.as_tensor(c, device=x.device, dtype=x.dtype)
    if c.ndim == 1 and x.ndim > 1 and c.shape[0] == x.shape[0]:
        c = append_dims(c, x)
    try:
        return torch.broadcast_to(c, x.shape)
    except RuntimeError:
        raise ValueError(
            f"{name} of shape {tuple(c.shape)} cannot be broadcast to the data shape {tuple(x.shape)}"
        ) from None


def _check_t(t, x: torch.Tensor, T: int) -> torch.Tensor:
    """``t`` (int or LongTensor [B]) as a CPU LongTensor [B] with values in [0, T-1]."""
    t = torch.as_tensor(t)
    if t.dtype.is_floating_point or t.dtype == torch.bool:
        raise ValueError(f"t must hold integer timestep indices, got dtype {t.dtype}")
    t = batch_t(t, x).cpu()
    if t.ndim != 1 or t.shape[0] != x.shape[0]:
        raise ValueError(f"t must be an int or a tensor of shape [B] with B={x.shape[0]}, got shape {tuple(t.shape)}")
    if bool((t < 0).any()) or bool((t >= T).any()):
        raise ValueError(f"t must lie in [0, {T - 1}] for a schedule with T={T}, got {_show(t)}")
    return t


def _check_8bit(name: str, x: torch.Tensor) -> None:
    """Raise unless every element of ``x`` is one of the 256 values ``2k/255 - 1``."""
    check_range(name, x, -1.0, 1.0)
    k = (x.detach().double() + 1.0) * 127.5
    off = (k - k.round()).abs()
    if bool((off > 1e-3).any()):
        raise ValueError(
            f"{name} must hold 8-bit data scaled to [-1, 1] (values 2k/255 - 1, k = 0..255); "
            f"the worst element is {off.max().item():.3g} bins away from that grid"
        )


# --------------------------------------------------------------------------- L_simple
def l_simple(eps_hat: torch.Tensor, eps: torch.Tensor, *, reduction: str = "mean") -> torch.Tensor:
    r"""The simplified DDPM objective: mean squared error between true and predicted noise.

    .. math:: L_{\mathrm{simple}} = \mathbb{E}_{t, x_0, \epsilon}\,
              \lVert \epsilon - \epsilon_\theta(x_t, t) \rVert^2

    Ho et al. 2020, eq. 14. The squared error is averaged over all non-batch dimensions, which
    only rescales the paper's sum by the constant :math:`1/D`. Chapter 2.

    Parameters
    ----------
    eps_hat, eps : torch.Tensor, shape [B, ...]
        Predicted and true noise.
    reduction : {"mean", "none"}
        ``"none"`` returns the per-sample losses, shape ``[B]``; ``"mean"`` their batch mean.
    """
    check_batch("eps_hat", eps_hat)
    check_batch("eps", eps)
    check_same_shape("eps", eps, "eps_hat", eps_hat)
    per_sample = _flat((eps - eps_hat) ** 2).mean(1)
    return _reduce(per_sample, reduction)


# --------------------------------------------------------------------------- Gaussian pieces
def normal_kl(mean1, logvar1, mean2, logvar2) -> torch.Tensor:
    r"""Elementwise KL divergence between diagonal Gaussians given their means and log-variances.

    .. math::
        D_{KL}(N(\mu_1, \sigma_1^2)\,\|\,N(\mu_2, \sigma_2^2)) =
        \tfrac12\left(\log\frac{\sigma_2^2}{\sigma_1^2} + \frac{\sigma_1^2}{\sigma_2^2}
        + \frac{(\mu_1-\mu_2)^2}{\sigma_2^2} - 1\right)

    The standard closed form (e.g. Kingma & Welling 2014, appendix B), as used by Ho et al. 2020,
    eq. 5-8. Written as :math:`\tfrac12(\mathrm{expm1}(d) - d + (\mu_1-\mu_2)^2 e^{-\log\sigma_2^2})`
    with :math:`d = \log\sigma_1^2 - \log\sigma_2^2`, which is exactly 0 for equal Gaussians and
    keeps full relative precision when the variances are close. Chapter 2.

    The arguments broadcast against each other (tensors or numbers); the result has their
    broadcast shape, in nats, one value per element (sum it for a multivariate diagonal KL).
    """
    names = ("mean1", "logvar1", "mean2", "logvar2")
    given = (mean1, logvar1, mean2, logvar2)
    tensors = [a for a in given if isinstance(a, torch.Tensor)]
    if not tensors:
        raise ValueError("normal_kl needs at least one tensor argument")
    dtype = tensors[0].dtype
    for a in tensors[1:]:
        dtype = torch.promote_types(dtype, a.dtype)
    if not dtype.is_floating_point:
        dtype = torch.get_default_dtype()
    device = tensors[0].device
    m1, lv1, m2, lv2 = (a.to(device=device, dtype=dtype) if isinstance(a, torch.Tensor)
                        else torch.as_tensor(a, device=device, dtype=dtype) for a in given)
    for n, a in zip(names, (m1, lv1, m2, lv2)):
        check_finite(n, a.detach())
    try:
        d = lv1 - lv2
        return 0.5 * (torch.expm1(d) - d + (m1 - m2) ** 2 * torch.exp(-lv2))
    except RuntimeError:
        shapes = ", ".join(f"{n} {tuple(a.shape)}" for n, a in zip(names, (m1, lv1, m2, lv2)))
        raise ValueError(f"normal_kl arguments must broadcast against each other, got shapes {shapes}") from None


def approx_standard_normal_cdf(x: torch.Tensor) -> torch.Tensor:
    r"""A fast approximation of the standard normal CDF :math:`\Phi(x)`.

    .. math:: \Phi(x) \approx \tfrac12\left(1 + \tanh\!\left(\sqrt{2/\pi}\,(x + 0.044715\,x^3)\right)\right)

    Page 1977 (the tanh approximation also behind the GELU of Hendrycks & Gimpel 2016, sec. 2); the
    original DDPM and improved-DDPM code compute their discretised decoder with it. Its absolute
    error is below :math:`2\cdot 10^{-4}` everywhere, but its relative error in the tails is
    large, so :func:`discretized_gaussian_log_likelihood` uses the exact :math:`\Phi` instead.
    Kept for comparison with those numbers (no chapter uses it).
    """
    return 0.5 * (1.0 + torch.tanh(math.sqrt(2.0 / math.pi) * (x + 0.044715 * x**3)))


def _log1mexp(d: torch.Tensor) -> torch.Tensor:
    r""":math:`\log(1 - e^{d})` for :math:`d \le 0` (Maechler 2012's two-branch formula).

    The argument of the logarithm is floored at the smallest normal number of the dtype, so a
    probability that underflows gives a large negative finite value instead of ``-inf``.
    """
    tiny = torch.finfo(d.dtype).tiny
    d = d.clamp(max=0.0)
    near = torch.log((-torch.expm1(d)).clamp_min(tiny))  # d close to 0
    far = torch.log1p(-torch.exp(d.clamp(max=-_LN2)))  # d far below 0 (clamped: no NaN gradient)
    return torch.where(d > -_LN2, near, far)


def _log_normal_interval(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    r""":math:`\log(\Phi(b) - \Phi(a))` for :math:`a < b`, accurate also far in the tails.

    By symmetry an interval right of 0 is mirrored to the left, so it is either in the left tail
    (then :math:`\log\Phi(b) + \log(1 - \Phi(a)/\Phi(b))` with :math:`\log\Phi` from
    ``log_ndtr``) or near the centre (then :math:`\tfrac12(\mathrm{erf}(b/\sqrt2)-\mathrm{erf}(a/\sqrt2))`,
    where no catastrophic cancellation occurs).
    """
    tiny = torch.finfo(a.dtype).tiny
    flip = a > 0
    lo = torch.where(flip, -b, a)
    hi = torch.where(flip, -a, b)
    log_hi = torch.special.log_ndtr(hi)
    tail = log_hi + _log1mexp(torch.special.log_ndtr(lo) - log_hi)
    centre_p = 0.5 * (torch.erf(hi / math.sqrt(2.0)) - torch.erf(lo / math.sqrt(2.0)))
    centre = torch.log(centre_p.clamp_min(tiny))
    return torch.where(hi < -1.0, tail, centre)


def discretized_gaussian_log_likelihood(x: torch.Tensor, *, means, log_scales) -> torch.Tensor:
    r"""Log-probability of 8-bit data under a Gaussian discretised to the 256 pixel bins.

    .. math::
        p(x \mid \mu, \sigma) = \int_{\delta_-(x)}^{\delta_+(x)} N(y; \mu, \sigma^2)\,dy,\quad
        \delta_+(x) = \begin{cases}\infty & x = 1\\ x + \frac{1}{255} & x < 1\end{cases},\quad
        \delta_-(x) = \begin{cases}-\infty & x = -1\\ x - \frac{1}{255} & x > -1\end{cases}

    Ho et al. 2020, sec. 3.3 (eq. 13): data are the integers 0..255 scaled to [-1, 1], each value
    owns a bin of width 2/255, and the two edge bins extend to :math:`\pm\infty`, so the 256
    probabilities sum to one for any :math:`\mu, \sigma`. Chapters 2 and 6.

    Numerics: the exact :math:`\Phi` is used through ``torch.special.log_ndtr`` and ``erf``, with
    intervals in a tail computed as :math:`\log\Phi(b) + \log(1-\Phi(a)/\Phi(b))` after mirroring,
    so a bin hundreds of standard deviations from the mean still gets its correct (very negative)
    log-probability instead of ``log(0)``. The only clamp is on the *argument of a logarithm*: a
    probability is floored at the dtype's smallest normal number (``torch.finfo(dtype).tiny``)
    before ``log``, which only matters when the bin's probability itself underflows. The data
    ``x`` are never clipped; values outside [-1, 1] or off the 8-bit grid raise.

    Parameters
    ----------
    x : torch.Tensor, shape [B, ...]
        Data, each element one of :math:`2k/255 - 1`, :math:`k = 0..255`.
    means, log_scales : torch.Tensor
        :math:`\mu` and :math:`\log\sigma` (log standard deviation), broadcastable to ``x``.

    Returns
    -------
    torch.Tensor, shape of ``x``
        :math:`\log p(x)` per element, in nats.
    """
    if not isinstance(x, torch.Tensor) or not x.dtype.is_floating_point:
        raise ValueError("x must be a floating-point torch.Tensor")
    _check_8bit("x", x)
    means = _like_x("means", means, x)
    log_scales = _like_x("log_scales", log_scales, x)
    check_finite("means", means.detach())
    check_finite("log_scales", log_scales.detach())
    centred = x - means
    inv_sigma = torch.exp(-log_scales)
    lower = (centred - _BIN_HALF_WIDTH) * inv_sigma  # standardised bin edges
    upper = (centred + _BIN_HALF_WIDTH) * inv_sigma
    k = torch.round((x.detach() + 1.0) * 127.5)
    log_first = torch.special.log_ndtr(upper)  # P(y < upper): the bin of x = -1
    log_last = torch.special.log_ndtr(-lower)  # P(y > lower): the bin of x = +1
    log_inner = _log_normal_interval(lower, upper)
    return torch.where(k <= 0, log_first, torch.where(k >= 255, log_last, log_inner))


# --------------------------------------------------------------------------- VLB terms
def prior_kl(x_0: torch.Tensor, alpha_bar_T, *, unit: str = "bpd") -> torch.Tensor:
    r"""The prior term :math:`L_T`: how far :math:`q(x_T \mid x_0)` is from the prior :math:`N(0, I)`.

    .. math:: L_T = D_{KL}\big(N(\sqrt{\bar\alpha_T}\,x_0,\ (1-\bar\alpha_T) I)\ \|\ N(0, I)\big)

    Ho et al. 2020, eq. 5. It has no parameters, so it is constant during training, but it is
    part of the bound (and of the bits/dim of chapter 2). Returns shape ``[B]`` in ``unit``. Chapter 2.
    """
    check_batch("x_0", x_0)
    _check_choice("unit", unit, _UNITS)
    check_range("alpha_bar_T", alpha_bar_T, 0.0, 1.0, high_open=True)
    ab = append_dims(alpha_bar_T, x_0)
    mean = torch.sqrt(ab) * x_0
    logvar = torch.log1p(-ab).expand(x_0.shape)
    return _to_unit(normal_kl(mean, logvar, 0.0, 0.0), unit)


def posterior_kl(x_0, x_t, alpha_bar_t, alpha_bar_prev, beta_t, *, model_mean, model_log_variance,
                 unit: str = "bpd") -> torch.Tensor:
    r"""One denoising term :math:`L_{t-1}` of the bound: the KL from the true posterior to the model.

    .. math::
        L_{t-1} = D_{KL}\big(q(x_{t-1}\mid x_t, x_0)\,\|\,p_\theta(x_{t-1}\mid x_t)\big)
        = D_{KL}\big(N(\tilde\mu_t(x_t, x_0), \tilde\beta_t I)\,\|\,N(\mu_\theta(x_t,t), \sigma_t^2 I)\big)

    Ho et al. 2020, eq. 5-8. Valid for every step except the first (code index ``t == 0``, where
    :math:`\bar\alpha_{t-1} = 1` and :math:`\tilde\beta_t = 0`); there the bound's term is
    :func:`decoder_nll`, and :func:`vlb_term` picks the right one. Chapter 2.

    Parameters
    ----------
    x_0, x_t : torch.Tensor, shape [B, ...]
    alpha_bar_t, alpha_bar_prev, beta_t : float or tensor [B]
        Schedule coefficients (``schedule.at(t, like=x_t)``); ``alpha_bar_prev`` must be < 1.
    model_mean : torch.Tensor, shape of ``x_t``
        :math:`\mu_\theta(x_t, t)`.
    model_log_variance : float or tensor, broadcastable to ``x_t`` (a ``[B]`` tensor is allowed)
        :math:`\log\sigma_t^2`.
    unit : {"bpd", "nats"}

    Returns
    -------
    torch.Tensor, shape [B]
    """
    check_batch("x_0", x_0)
    check_batch("x_t", x_t)
    check_same_shape("x_0", x_0, "x_t", x_t)
    check_same_shape("model_mean", model_mean, "x_t", x_t)
    _check_choice("unit", unit, _UNITS)
    check_range("alpha_bar_prev", alpha_bar_prev, 0.0, 1.0, high_open=True)
    true_mean = posterior_mean(x_0, x_t, alpha_bar_t, alpha_bar_prev, beta_t)
    true_logvar = _like_x("beta_tilde", torch.log(posterior_variance(alpha_bar_t, alpha_bar_prev, beta_t)), x_t)
    logvar = _like_x("model_log_variance", model_log_variance, x_t)
    return _to_unit(normal_kl(true_mean, true_logvar, model_mean, logvar), unit)


def decoder_nll(x_0, *, model_mean, model_log_variance, unit: str = "bpd") -> torch.Tensor:
    r"""The reconstruction term :math:`L_0 = -\log p_\theta(x_0 \mid x_1)` with the discretised decoder.

    .. math:: L_0 = -\log \int_{\delta_-(x_0)}^{\delta_+(x_0)} N(y;\ \mu_\theta(x_1, 1),\ \sigma_1^2)\,dy

    Ho et al. 2020, eq. 13 (see :func:`discretized_gaussian_log_likelihood`; the scale is
    :math:`\sigma_1 = \exp(\tfrac12 \log\sigma_1^2)`). ``x_0`` must be 8-bit data in [-1, 1].
    Returns shape ``[B]`` in ``unit``. Chapter 2.
    """
    check_batch("x_0", x_0)
    check_same_shape("model_mean", model_mean, "x_0", x_0)
    _check_choice("unit", unit, _UNITS)
    logvar = _like_x("model_log_variance", model_log_variance, x_0)
    log_p = discretized_gaussian_log_likelihood(x_0, means=model_mean, log_scales=0.5 * logvar)
    return _to_unit(-log_p, unit)


def vlb_term(x_0, x_t, t, *, model_mean, model_log_variance, schedule, unit: str = "bpd") -> torch.Tensor:
    r"""The term of the bound that belongs to step ``t``: :math:`L_0` at the first step, else :math:`L_{t-1}`.

    .. math::
        L^{(t)} = \begin{cases} -\log p_\theta(x_0\mid x_1) & t = 1 \text{ (code index 0)}\\
        D_{KL}(q(x_{t-1}\mid x_t,x_0)\,\|\,p_\theta(x_{t-1}\mid x_t)) & t > 1 \end{cases}

    Ho et al. 2020, eq. 5; with ``t`` uniform, :math:`T\cdot L^{(t)}` is an unbiased estimate of
    :math:`\sum_t L^{(t)}` (Nichol & Dhariwal 2021, sec. 3.1). Each sample is dispatched to
    :func:`decoder_nll` or :func:`posterior_kl` (no ``where`` over both, so no NaN gradient from
    the undefined branch). ``x_0`` must be 8-bit data in [-1, 1] for every sample. Chapters 2, 6.

    Parameters
    ----------
    x_0, x_t : torch.Tensor, shape [B, ...]
    t : int or LongTensor [B]
        Code indices into ``schedule`` (not ``original_t``).
    model_mean, model_log_variance
        As in :func:`posterior_kl`.
    schedule : Schedule

    Returns
    -------
    torch.Tensor, shape [B], in ``unit``.
    """
    check_batch("x_0", x_0)
    check_same_shape("x_t", x_t, "x_0", x_0)
    check_same_shape("model_mean", model_mean, "x_0", x_0)
    _check_choice("unit", unit, _UNITS)
    _check_8bit("x_0", x_0)
    t = _check_t(t, x_0, schedule.T)
    logvar = _like_x("model_log_variance", model_log_variance, x_0)
    first = (t == 0).to(x_0.device)
    out = x_0.new_zeros(x_0.shape[0])
    idx = torch.nonzero(first, as_tuple=True)[0]
    if idx.numel():
        dec = decoder_nll(x_0[idx], model_mean=model_mean[idx], model_log_variance=logvar[idx], unit=unit)
        out = out.index_put((idx,), dec)
    idx = torch.nonzero(~first, as_tuple=True)[0]
    if idx.numel():
        c = schedule.at(t[idx.cpu()], like=x_0)
        kl = posterior_kl(x_0[idx], x_t[idx], c["alpha_bar"], c["alpha_bar_prev"], c["beta"],
                          model_mean=model_mean[idx], model_log_variance=logvar[idx], unit=unit)
        out = out.index_put((idx,), kl)
    return out


def _log_variance_bounds(schedule, t: torch.Tensor, like: torch.Tensor):
    r"""(:math:`\log\beta_t`, :math:`\log\tilde\beta_t`) at indices ``t``, with the first step's
    :math:`\tilde\beta` (which is 0) replaced by the second step's, as in the reference code of
    Ho et al. 2020 and Nichol & Dhariwal 2021 (the decoder needs a positive variance)."""
    bt = schedule.beta_tilde.clone()
    bt[0] = bt[1] if schedule.T > 1 else schedule.betas[0]
    log_beta = torch.log(schedule.betas)[t].to(device=like.device, dtype=like.dtype)
    log_beta_tilde = torch.log(bt)[t].to(device=like.device, dtype=like.dtype)
    return log_beta, log_beta_tilde


def _model_mean_from_eps(x_t, eps_hat, c):
    """mu_theta(x_t, t): the posterior mean with x_0 replaced by x0_from_eps (Ho et al. eq. 11)."""
    x0_hat = x0_from_eps(x_t, eps_hat, c["alpha_bar"])
    return posterior_mean(x0_hat, x_t, c["alpha_bar"], c["alpha_bar_prev"], c["beta"])


def vlb(model, x_0: torch.Tensor, *, schedule, variance: str = "beta_tilde", generator=None,
        unit: str = "bpd") -> dict:
    r"""The full variational bound of an :math:`\epsilon`-model on a batch, one pass over every step.

    .. math:: L_{\mathrm{vlb}}(x_0) = L_T + \sum_{t=2}^{T} L_{t-1} + L_0
              \ \ge\ -\log p_\theta(x_0)

    Ho et al. 2020, eq. 5, evaluated the way bits/dim are reported (Nichol & Dhariwal 2021, sec. 3):
    for every step one :math:`x_t \sim q(x_t\mid x_0)` is drawn and the exact term
    :func:`vlb_term` is computed, so the total is an unbiased one-sample estimate of the bound.
    It costs ``T`` model calls: meant for small ``T``, tests and chapter 2. Wrap it in
    ``torch.no_grad()`` for evaluation.

    Parameters
    ----------
    model : callable
        ``model(x_t, t) -> eps_hat`` with ``t`` the original indices (``schedule.original_t``);
        for ``variance="learned"`` it returns ``(eps_hat, v)`` with ``v`` any finite real
        (``v = -1`` / ``1`` give :math:`\tilde\beta_t` / :math:`\beta_t`; see :func:`learned_log_variance`).
    x_0 : torch.Tensor, shape [B, ...]
        8-bit data in [-1, 1].
    schedule : Schedule
    variance : {"beta_tilde", "beta", "learned"} or tensor [T]
        :math:`\sigma_t^2` of the reverse step. At the first step the fixed choices use
        :math:`\tilde\beta` of the second step, as the reference implementations do. A tensor
        gives :math:`\sigma_t^2` for every step of ``schedule`` itself (column ``t``; entry 0 is the
        decoder's), e.g. Analytic-DPM's optimal variance on a respaced schedule
        (:func:`diffnotes.fast_samplers.analytic_dpm_variance`, chapter 9).
    generator : torch.Generator, optional
    unit : {"bpd", "nats"}

    Returns
    -------
    dict
        ``"total"`` [B] (the bound), ``"terms"`` [B, T] (column ``t`` is :func:`vlb_term` at
        code index ``t``, so column 0 is :math:`L_0`) and ``"prior"`` [B] (:math:`L_T`).
    """
    check_batch("x_0", x_0)
    given = isinstance(variance, torch.Tensor)
    if given:
        if variance.shape != (schedule.T,) or not bool(torch.isfinite(variance).all()) \
                or not bool((variance > 0).all()):
            raise ValueError(f"variance as a tensor must hold {schedule.T} positive, finite values (one per step of "
                             f"the schedule), got shape {tuple(variance.shape)}")
        log_given = torch.log(variance.to(torch.float64)).to(device=x_0.device, dtype=x_0.dtype)
    else:
        _check_choice("variance", variance, _VARIANCES)
    _check_choice("unit", unit, _UNITS)
    _check_8bit("x_0", x_0)
    B = x_0.shape[0]
    log_beta_all, log_beta_tilde_all = _log_variance_bounds(schedule, torch.arange(schedule.T), x_0)
    terms = []
    for i in range(schedule.T):
        c = schedule.at(i, like=x_0)  # scalars: every sample is at step i
        x_t = q_sample(x_0, c["alpha_bar"], generator=generator)
        t_model = torch.full((B,), int(schedule.original_t[i]), dtype=torch.long, device=x_0.device)
        out = model(x_t, t_model)
        log_beta, log_beta_tilde = log_beta_all[i], log_beta_tilde_all[i]
        if given:
            eps_hat, logvar = out, log_given[i]
        elif variance == "learned":
            eps_hat, v = out
            logvar = learned_log_variance(v, log_beta.exp(), log_beta_tilde.exp())
        else:
            eps_hat = out
            logvar = log_beta if (variance == "beta" and i > 0) else log_beta_tilde
        mean = _model_mean_from_eps(x_t, eps_hat, c)
        if i == 0:  # same dispatch as vlb_term, for one step at a time
            term = decoder_nll(x_0, model_mean=mean, model_log_variance=logvar, unit=unit)
        else:
            term = posterior_kl(x_0, x_t, c["alpha_bar"], c["alpha_bar_prev"], c["beta"],
                                model_mean=mean, model_log_variance=logvar, unit=unit)
        terms.append(term)
    terms = torch.stack(terms, 1)
    prior = prior_kl(x_0, schedule.alpha_bar[-1].item(), unit=unit)
    return {"total": terms.sum(1) + prior, "terms": terms, "prior": prior}


# --------------------------------------------------------------------------- score matching
def dsm_loss(score_hat, x_t, x_0, alpha, sigma, *, weighting: str = "sigma2", reduction: str = "mean"):
    r"""Denoising score matching: regress the score of the noising kernel :math:`q(x_t \mid x_0)`.

    .. math::
        \ell = \lambda(\sigma)\,\Big\lVert s_\theta(x_t) - \nabla_{x_t}\log q(x_t\mid x_0)\Big\rVert^2,
        \qquad \nabla_{x_t}\log q(x_t\mid x_0) = -\frac{x_t - \alpha x_0}{\sigma^2},
        \qquad \lambda(\sigma) = \sigma^2

    Vincent 2011 (DSM); Song & Ermon 2019, eq. 2 and sec. 4.2 (the weighting
    :math:`\lambda(\sigma)=\sigma^2`). Here :math:`x_t = \alpha x_0 + \sigma\epsilon` with
    :math:`\alpha = \sqrt{\bar\alpha_t}, \sigma = \sqrt{1-\bar\alpha_t}` for DDPM and
    :math:`\alpha = 1` for a VE process. The squared norm is averaged over the non-batch
    dimensions and the paper's factor 1/2 is dropped, so that with the weighting
    :math:`\sigma^2` and :math:`s_\theta = -\hat\epsilon/\sigma` this loss **equals**
    :func:`l_simple` of :math:`\hat\epsilon` exactly (the target is :math:`-\epsilon/\sigma`);
    unweighted it is :math:`L_{\mathrm{simple}}/\sigma^2`. Chapter 5.

    Parameters
    ----------
    score_hat, x_t, x_0 : torch.Tensor, shape [B, ...]
    alpha, sigma : float or tensor [B]
        Mean coefficient (>= 0) and noise standard deviation (> 0) of :math:`q(x_t\mid x_0)`.
    weighting : {"sigma2", "none"}
        :math:`\lambda(\sigma) = \sigma^2` or 1.
    reduction : {"mean", "none"}
    """
    check_batch("score_hat", score_hat)
    check_same_shape("x_t", x_t, "score_hat", score_hat)
    check_same_shape("x_0", x_0, "score_hat", score_hat)
    _check_choice("weighting", weighting, ("sigma2", "none"))
    check_range("alpha", alpha, 0.0, None)
    check_range("sigma", sigma, 0.0, None, low_open=True)
    a = append_dims(alpha, x_t)
    s = append_dims(sigma, x_t)
    target = -(x_t - a * x_0) / s**2
    err = (score_hat - target) ** 2
    if weighting == "sigma2":
        err = err * s**2
    per_sample = _flat(err).mean(1)
    return _reduce(per_sample, reduction)


# --------------------------------------------------------------------------- improved DDPM
def learned_log_variance(v, beta_t, beta_tilde_t) -> torch.Tensor:
    r"""The learned reverse-process log-variance: log-space interpolation of :math:`\tilde\beta_t` and :math:`\beta_t`.

    .. math::
        \log\Sigma_\theta(x_t, t) = w\log\beta_t + (1-w)\log\tilde\beta_t,
        \qquad w = \frac{v+1}{2}

    Nichol & Dhariwal 2021, eq. 15, where the weight is called :math:`v`. Convention: as in their
    code, the network output ``v`` is mapped to the weight :math:`w = (v+1)/2`, so ``v = -1`` gives
    :math:`\tilde\beta_t`, ``v = 0`` the geometric mean :math:`\sqrt{\beta_t\tilde\beta_t}` and
    ``v = 1`` gives :math:`\beta_t`. The paper puts no constraint on its weight (sec. 3.1), and
    neither does this function: any finite real ``v`` is accepted. Outside [-1, 1] (a weight
    outside [0, 1]) the interpolation extrapolates and the variance lies outside
    :math:`[\tilde\beta_t, \beta_t]`, but it is still :math:`\exp` of a finite number, a valid
    positive variance. ``v`` holding NaN or
    infinity raises. :math:`\tilde\beta_t` must be > 0: at the first step pass the second step's
    value, as the reference code does. Chapter 6.

    Parameters
    ----------
    v : torch.Tensor, shape [B, ...]
        Any finite real values.
    beta_t, beta_tilde_t : float or tensor [B] (or shaped like ``v``)
        Both in (0, 1].

    Returns
    -------
    torch.Tensor, shape of ``v``
    """
    if not isinstance(v, torch.Tensor) or not v.dtype.is_floating_point:
        raise ValueError("v must be a floating-point torch.Tensor")
    check_finite("v", v.detach())
    check_range("beta_t", beta_t, 0.0, 1.0, low_open=True)
    check_range("beta_tilde_t", beta_tilde_t, 0.0, 1.0, low_open=True)
    frac = (v + 1.0) / 2.0
    log_beta = torch.log(_like_x("beta_t", beta_t, v))
    log_beta_tilde = torch.log(_like_x("beta_tilde_t", beta_tilde_t, v))
    return frac * log_beta + (1.0 - frac) * log_beta_tilde


def hybrid_loss(eps_hat, v, eps, x_0, x_t, t, schedule, lambda_vlb: float = 0.001) -> dict:
    r"""The improved-DDPM hybrid objective :math:`L_{\mathrm{simple}} + \lambda L_{\mathrm{vlb}}`.

    .. math::
        L_{\mathrm{hybrid}} = L_{\mathrm{simple}} + \lambda\,L_{\mathrm{vlb}},\qquad
        L_{\mathrm{vlb}} \approx T\cdot L^{(t)}\big(\mathrm{sg}[\mu_\theta],\ \Sigma_\theta\big),
        \qquad \lambda = 0.001

    Nichol & Dhariwal 2021, sec. 3.1 (eq. 16). :math:`L^{(t)}` is :func:`vlb_term` in bits/dim
    for the model with mean :math:`\mu_\theta` from ``eps_hat`` (Ho et al. 2020, eq. 11) and
    log-variance :func:`learned_log_variance` of ``v``. A stop-gradient (``detach``) on
    ``eps_hat`` inside that term makes :math:`L_{\mathrm{vlb}}` train only the variance, while
    :math:`L_{\mathrm{simple}}` (:func:`l_simple`, per sample) trains the mean. With ``t``
    uniform, :math:`T\,L^{(t)}` is an unbiased estimate of :math:`\sum_t L^{(t)}`; the constant
    :math:`L_T` is left out. For ``T = 1000`` and :math:`\lambda = 0.001` this is the reference
    code's ``mse + vb``. Chapter 6.

    Parameters
    ----------
    eps_hat, v : torch.Tensor, shape [B, ...]
        The network's two outputs: predicted noise and the variance interpolation ``v`` (any finite
        real; [-1, 1] spans :math:`[\tilde\beta_t, \beta_t]`, see :func:`learned_log_variance`).
    eps, x_0, x_t : torch.Tensor, shape [B, ...]
        True noise, 8-bit data in [-1, 1] and :math:`x_t = \sqrt{\bar\alpha_t}x_0 + \sqrt{1-\bar\alpha_t}\epsilon`.
    t : LongTensor [B]
        Code indices into ``schedule``.
    schedule : Schedule
    lambda_vlb : float
        :math:`\lambda \ge 0`.

    Returns
    -------
    dict of [B] tensors
        ``"loss"`` (multiply by importance weights, then average), ``"l_simple"``, ``"l_vlb"``
        (:math:`T L^{(t)}`, bits/dim).
    """
    check_batch("eps_hat", eps_hat)
    for name, a in (("v", v), ("eps", eps), ("x_0", x_0), ("x_t", x_t)):
        check_same_shape(name, a, "eps_hat", eps_hat)
    check_range("lambda_vlb", lambda_vlb, 0.0, None)
    t = _check_t(t, x_t, schedule.T)
    c = schedule.at(t, like=x_t)
    simple = l_simple(eps_hat, eps, reduction="none")
    log_beta, log_beta_tilde = _log_variance_bounds(schedule, t, x_t)
    logvar = learned_log_variance(v, log_beta.exp(), log_beta_tilde.exp())
    mean = _model_mean_from_eps(x_t, eps_hat.detach(), c)  # stop-gradient: L_vlb trains only the variance
    l_vlb = schedule.T * vlb_term(x_0, x_t, t, model_mean=mean, model_log_variance=logvar,
                                  schedule=schedule, unit="bpd")
    return {"loss": simple + lambda_vlb * l_vlb, "l_simple": simple, "l_vlb": l_vlb}


# --------------------------------------------------------------------------- importance sampling
def importance_probs(history_sq: torch.Tensor, *, uniform_prob: float = 0.0) -> torch.Tensor:
    r"""Sampling probabilities of the timesteps from a history of squared losses.

    .. math:: p_t \propto \sqrt{\mathbb{E}[L_t^2]}, \qquad \sum_t p_t = 1

    Nichol & Dhariwal 2021, eq. 18; the expectation is the mean over the stored history.
    With ``uniform_prob = u > 0`` the result is :math:`(1-u)\,p + u/T` (their code uses
    :math:`u = 10^{-3}` so that no step gets probability 0). Chapter 6.

    Parameters
    ----------
    history_sq : torch.Tensor, shape [T, K]
        The last ``K`` values of :math:`L_t^2` for each of the ``T`` steps.

    Returns
    -------
    torch.Tensor, shape [T], float64
    """
    h = torch.as_tensor(history_sq, dtype=torch.float64)
    if h.ndim != 2 or h.shape[0] == 0 or h.shape[1] == 0:
        raise ValueError(f"history_sq must have shape [T, K] with T, K >= 1, got {tuple(h.shape)}")
    check_range("history_sq", h, 0.0, None)
    check_range("uniform_prob", uniform_prob, 0.0, 1.0)
    root_ms = h.mean(1).sqrt()
    total = root_ms.sum()
    if uniform_prob == 0.0 and bool((root_ms == 0).any()):
        raise ValueError(
            "every step needs a nonzero loss history for p_t > 0 (a step with p_t = 0 is never sampled, "
            "which biases the estimate); pass uniform_prob > 0"
        )
    p = root_ms / total if float(total) > 0 else torch.full_like(root_ms, 1.0 / h.shape[0])
    return (1.0 - uniform_prob) * p + uniform_prob / h.shape[0]


def importance_weights(p: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    r"""Weights that make a loss at importance-sampled steps an unbiased estimate of the uniform mean.

    .. math:: w_t = \frac{1}{T\,p_t}, \qquad \mathbb{E}_{t\sim p}[w_t L_t] = \frac1T\sum_t L_t

    Nichol & Dhariwal 2021, sec. 3.3 (:math:`L_{\mathrm{vlb}} = E_{t\sim p}[L_t/p_t]`, here
    divided by :math:`T` so that uniform sampling has weight 1). Returns float64, shape of ``t``.
    """
    p = torch.as_tensor(p, dtype=torch.float64)
    if p.ndim != 1:
        raise ValueError(f"p must be a 1-D tensor of probabilities, got shape {tuple(p.shape)}")
    check_range("p", p, 0.0, 1.0)
    t = torch.as_tensor(t).cpu()
    if t.dtype.is_floating_point or bool((t < 0).any()) or bool((t >= p.numel()).any()):
        raise ValueError(f"t must hold integer indices in [0, {p.numel() - 1}], got {_show(t)}")
    pt = p[t.long()]
    if bool((pt == 0).any()):
        raise ValueError("p_t must be > 0 at every sampled step")
    return 1.0 / (p.numel() * pt)


class LossAwareSampler:
    r"""Importance sampling of the timestep from recent losses (Nichol & Dhariwal 2021, sec. 3.3).

    Keeps the last ``history`` values of :math:`L_t^2` for each step. Until every step has a full
    history, :meth:`sample_t` is uniform with weight 1 (warm-up); afterwards it draws
    :math:`t \sim p_t \propto \sqrt{E[L_t^2]}` (:func:`importance_probs`) and returns the weights
    :math:`1/(T p_t)` (:func:`importance_weights`), so that ``(weights * loss).mean()`` is an
    unbiased estimate of the uniformly weighted loss. Chapter 6.

    Usage::

        t, w = sampler.sample_t(B, generator=g)
        terms = hybrid_loss(...)               # or any per-sample loss
        (w * terms["loss"]).mean().backward()
        sampler.update(t, terms["l_vlb"])      # the paper tracks the L_vlb terms
    """

    def __init__(self, T: int, history: int = 10, uniform_prob: float = 0.0):
        self.T = check_int("T", T, 1)
        self.history = check_int("history", history, 1)
        check_range("uniform_prob", uniform_prob, 0.0, 1.0)
        self.uniform_prob = float(uniform_prob)
        self.history_sq = torch.zeros(self.T, self.history, dtype=torch.float64)
        self.counts = torch.zeros(self.T, dtype=torch.long)

    @property
    def warmed_up(self) -> bool:
        """Whether every step has a full history (before that, sampling is uniform)."""
        return bool((self.counts >= self.history).all())

    def update(self, t, losses) -> None:
        """Record the per-sample losses ``losses`` [B] observed at steps ``t`` [B] (oldest dropped)."""
        t = torch.as_tensor(t).detach().cpu().reshape(-1)
        losses = torch.as_tensor(losses).detach().cpu().to(torch.float64).reshape(-1)
        if t.numel() != losses.numel():
            raise ValueError(f"t and losses must have the same length, got {t.numel()} and {losses.numel()}")
        if t.dtype.is_floating_point or bool((t < 0).any()) or bool((t >= self.T).any()):
            raise ValueError(f"t must hold integer indices in [0, {self.T - 1}], got {_show(t)}")
        check_finite("losses", losses)
        for ti, li in zip(t.tolist(), losses.tolist()):
            n = int(self.counts[ti])
            if n < self.history:
                self.history_sq[ti, n] = li * li
            else:
                self.history_sq[ti] = torch.roll(self.history_sq[ti], -1)
                self.history_sq[ti, -1] = li * li
            self.counts[ti] = n + 1

    def probs(self) -> torch.Tensor:
        """Current :math:`p_t`, shape [T], float64: uniform during warm-up."""
        if not self.warmed_up:
            return torch.full((self.T,), 1.0 / self.T, dtype=torch.float64)
        return importance_probs(self.history_sq, uniform_prob=self.uniform_prob)

    def sample_t(self, batch: int, generator=None, *, device=None, dtype=None):
        """Draw ``batch`` timesteps; returns ``(t, weights)`` (LongTensor [B], tensor [B]).

        ``weights`` have ``dtype`` (default: torch's default dtype) and, like ``t``, live on
        ``device`` (default: the generator's device, else CPU).
        """
        batch = check_int("batch", batch, 1)
        gen_device = generator.device if generator is not None else torch.device("cpu")
        device = gen_device if device is None else device
        dtype = torch.get_default_dtype() if dtype is None else dtype
        if not self.warmed_up:
            t = torch.randint(self.T, (batch,), generator=generator, device=gen_device)
            w = torch.ones(batch, dtype=torch.float64)
        else:
            p = self.probs()
            t = torch.multinomial(p.to(gen_device), batch, replacement=True, generator=generator)
            w = importance_weights(p, t)
        return t.to(device), w.to(device=device, dtype=dtype)


# --------------------------------------------------------------------------- recipe: loss weights, t sampling
_WEIGHTINGS = ("l_simple", "min_snr", "edm")


def min_snr_weight(snr, gamma: float = 5.0) -> torch.Tensor:
    r"""Min-SNR-:math:`\gamma` weight of the noise-prediction loss at signal-to-noise ratio ``snr``.

    .. math:: w_t = \frac{\min(\mathrm{SNR}_t,\ \gamma)}{\mathrm{SNR}_t}
              = \min\!\left(1,\ \frac{\gamma}{\mathrm{SNR}_t}\right)

    Hang et al. 2023, "Efficient Diffusion Training via Min-SNR Weighting Strategy":
    the x_0-loss weighted by :math:`\min(\mathrm{SNR}_t, \gamma)`, written for an
    :math:`\epsilon`-prediction network (:math:`\lVert x_0-\hat x_0\rVert^2 =
    \lVert\epsilon-\hat\epsilon\rVert^2/\mathrm{SNR}_t`). The weight is 1 at every noisy step
    (:math:`\mathrm{SNR}_t \le \gamma`, where it is L_simple) and :math:`\gamma/\mathrm{SNR}_t < 1`
    at the nearly clean ones, whose easy, conflicting gradients it turns down. They use
    :math:`\gamma = 5`. Returns float64, the shape of ``snr``.
    """
    snr = torch.as_tensor(snr, dtype=torch.float64)
    check_range("snr", snr, 0.0, None, low_open=True)
    check_range("gamma", gamma, 0.0, None, low_open=True)
    return torch.clamp(snr, max=float(gamma)) / snr  # min(SNR, gamma) / SNR: exactly 1 where SNR <= gamma


def edm_weight(snr, sigma_data: float = 0.5) -> torch.Tensor:
    r"""EDM's loss weight (Karras et al. 2022) carried over to an :math:`\epsilon`-prediction network.

    .. math:: w_t = \lambda(\sigma_t)\,\sigma_t^2 = \frac{\sigma_t^2 + \sigma_\text{data}^2}{\sigma_\text{data}^2}
              = 1 + \frac{1}{\sigma_\text{data}^2\,\mathrm{SNR}_t},
              \qquad \sigma_t^2 = \frac{1-\bar\alpha_t}{\bar\alpha_t} = \frac{1}{\mathrm{SNR}_t}

    Derivation. EDM trains a denoiser with :math:`\lambda(\sigma)\lVert D(x;\sigma)-x_0\rVert^2`,
    :math:`\lambda(\sigma) = (\sigma^2+\sigma_\text{data}^2)/(\sigma\,\sigma_\text{data})^2` (its
    Table 1), on :math:`x = x_0 + \sigma\epsilon`. A VP sample is that :math:`x` scaled:
    :math:`x_t = \sqrt{\bar\alpha_t}\,x`, and the denoiser an :math:`\epsilon`-network implies is
    :math:`D = x_t/\sqrt{\bar\alpha_t} - \sigma_t\hat\epsilon`, so
    :math:`D - x_0 = -\sigma_t(\hat\epsilon-\epsilon)` and EDM's loss is :math:`w_t\lVert
    \hat\epsilon-\epsilon\rVert^2` with the :math:`w_t` above (Kingma & Gao 2023 write EDM's weighting
    the same way, as a function of log-SNR).
    This is the weighting only: EDM's network has its preconditioning (:math:`c_\text{skip},
    c_\text{out}`), which keeps the error of :math:`D` bounded at high noise; an
    :math:`\epsilon`-network's weight grows like :math:`1/\mathrm{SNR}_t` (about :math:`10^5` at the
    last step of the linear schedule), so use it with EDM's log-normal noise levels
    (:func:`sample_t_log_normal`), which almost never draw those steps. :math:`\sigma_\text{data}
    = 0.5` for images in [-1, 1]. Returns float64, the shape of ``snr``.
    """
    snr = torch.as_tensor(snr, dtype=torch.float64)
    check_range("snr", snr, 0.0, None, low_open=True)
    check_range("sigma_data", sigma_data, 0.0, None, low_open=True)
    return 1.0 + 1.0 / (float(sigma_data) ** 2 * snr)


def timestep_loss_weights(schedule, weighting: str = "l_simple", *, gamma: float = 5.0,
                          sigma_data: float = 0.5) -> torch.Tensor:
    r"""The loss weight :math:`w_t` of every step index ``t = 0..T-1`` of ``schedule``, float64 [T].

    ``"l_simple"``: :math:`w_t = 1` (Ho et al. 2020, eq. 14); ``"min_snr"``: :func:`min_snr_weight`
    with ``gamma``; ``"edm"``: :func:`edm_weight` with ``sigma_data``. The training loss of a batch is
    :func:`weighted_l_simple` with ``weights[t]``.
    """
    _check_choice("weighting", weighting, _WEIGHTINGS)
    check_range("gamma", gamma, 0.0, None, low_open=True)
    check_range("sigma_data", sigma_data, 0.0, None, low_open=True)
    snr = schedule.snr.to(torch.float64)
    if weighting == "min_snr":
        return min_snr_weight(snr, gamma)
    if weighting == "edm":
        return edm_weight(snr, sigma_data)
    return torch.ones_like(snr)


def weighted_l_simple(eps_hat: torch.Tensor, eps: torch.Tensor, weight) -> torch.Tensor:
    r"""L_simple with a weight per sample: :math:`\frac1B\sum_b w_b\,\frac1D\lVert\epsilon_b-\hat\epsilon_b\rVert^2`.

    ``weight`` has shape ``[B]`` (e.g. ``timestep_loss_weights(...)[t]``); with every weight 1 it
    is :func:`l_simple` (Ho et al. 2020, eq. 14); Hang et al. 2023 and Karras et al. 2022 weight it
    per noise level. The loss is computed in ``eps``'s dtype.
    """
    per_sample = l_simple(eps_hat, eps, reduction="none")
    w = torch.as_tensor(weight).to(device=per_sample.device, dtype=per_sample.dtype)
    if w.shape != per_sample.shape:
        raise ValueError(f"weight must have shape [B] = {tuple(per_sample.shape)}, got {tuple(w.shape)}")
    check_range("weight", w, 0.0, None)
    return (w * per_sample).mean()


def schedule_log_snr(schedule) -> torch.Tensor:
    r"""Log signal-to-noise ratio of every step, :math:`\lambda_t = \log\bar\alpha_t - \log(1-\bar\alpha_t)`,
    float64 [T], strictly decreasing in ``t`` (Kingma et al. 2021, sec. 3)."""
    ab = schedule.alpha_bar.to(torch.float64)
    return torch.log(ab) - torch.log1p(-ab)


def nearest_log_snr_index(schedule, log_snr) -> torch.Tensor:
    r"""The step index whose :math:`\lambda_t` (:func:`schedule_log_snr`) is nearest to each value of ``log_snr``.

    .. math:: t(\lambda) = \arg\min_{t\in\{0..T-1\}} \lvert\lambda_t - \lambda\rvert

    Values beyond the schedule's range go to its ends: above :math:`\lambda_0` to ``t = 0`` (the
    cleanest step), below :math:`\lambda_{T-1}` to ``t = T-1``. A value exactly half-way between two
    steps goes to the noisier one. Equivalently, index ``t`` receives the interval between the
    midpoints :math:`(\lambda_{t+1}+\lambda_t)/2` and :math:`(\lambda_t+\lambda_{t-1})/2`.
    This puts a continuous noise level (EDM's :math:`\sigma = e^{-\lambda/2}`, Karras et al. 2022) on a
    discrete schedule trained at its own steps. Returns a LongTensor of the shape and device of ``log_snr``.
    """
    x = torch.as_tensor(log_snr, dtype=torch.float64)
    check_finite("log_snr", x)
    lam = schedule_log_snr(schedule).to(x.device)
    T = lam.numel()
    if T == 1:
        return torch.zeros(x.shape, dtype=torch.long, device=x.device)
    asc = lam.flip(0).contiguous()  # increasing: asc[j] is lambda at index T-1-j
    j = torch.searchsorted(asc, x.contiguous()).clamp(1, T - 1)
    lo, hi = asc[j - 1], asc[j]
    pick = torch.where(x - lo <= hi - x, j - 1, j)
    return (T - 1) - pick


def sample_t_log_normal(schedule, n: int, *, mean: float = 2.4, std: float = 2.4, generator=None,
                        device=None) -> torch.Tensor:
    r"""Training step indices with a normally distributed log-SNR, mapped to the schedule's nearest step.

    .. math:: \lambda \sim N(P_\text{mean}, P_\text{std}^2), \qquad t = \arg\min_t \lvert\lambda_t-\lambda\rvert

    (the mapping is :func:`nearest_log_snr_index`). EDM (Karras et al. 2022, sec. 5 and Table 1)
    draws :math:`\ln\sigma \sim N(-1.2, 1.2^2)`; with :math:`\sigma^2 = 1/\mathrm{SNR}`,
    :math:`\lambda = -2\ln\sigma \sim N(2.4, 2.4^2)`, the defaults here. Index ``t`` is drawn with
    the probability :math:`\Phi(b_t) - \Phi(a_t)` of its interval :math:`[a_t, b_t)` between
    midpoints (standardised), so the mass beyond the schedule's range lands on its end steps. The
    draws (float64) come from ``generator``; the result lives on ``device`` (default: the
    generator's device, else the CPU).
    """
    n = check_int("n", n, 0)
    check_range("mean", mean, None, None)
    check_range("std", std, 0.0, None, low_open=True)
    gen_device = generator.device if generator is not None else torch.device("cpu")
    z = torch.randn(n, generator=generator, device=gen_device, dtype=torch.float64)
    t = nearest_log_snr_index(schedule, float(mean) + float(std) * z)
    return t.to(device if device is not None else gen_device)

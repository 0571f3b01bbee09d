r"""The likelihood of a DDPM: the Gaussian KL, the discretised decoder and the variational bound.

The variational lower bound (VLB) of a DDPM (Ho et al. 2020, eq. 5) is a sum of terms

.. math::
    L_{\mathrm{vlb}} = \underbrace{D_{KL}(q(x_T\mid x_0)\,\|\,N(0, I))}_{L_T}
        + \sum_{t=2}^{T} \underbrace{D_{KL}(q(x_{t-1}\mid x_t, x_0)\,\|\,p_\theta(x_{t-1}\mid x_t))}_{L_{t-1}}
        \underbrace{-\log p_\theta(x_0 \mid x_1)}_{L_0}

and every term here is one function: :func:`prior_kl` (:math:`L_T`), :func:`posterior_kl`
(:math:`L_{t-1}`), :func:`decoder_nll` (:math:`L_0`, through the discretised Gaussian
:func:`discretized_gaussian_log_likelihood`), :func:`vlb_term` (the one that applies at code index
``t``: :math:`L_0` for ``t == 0``, else :math:`L_{t}` in the paper's 1-based numbering) and
:func:`vlb` (all of them for a model, by one pass over every step). The reverse step's
distribution :math:`p_\theta` they score has the mean :func:`model_mean_from_eps` and the variance
:func:`learned_log_variance` (improved DDPM) or one of the fixed choices (:func:`fixed_log_variances`).

Units. ``unit="bpd"`` (default) gives bits per dimension: nats averaged over all non-batch
dimensions and divided by :math:`\ln 2`; ``unit="nats"`` gives nats summed over all non-batch
dimensions (the negative log-likelihood of the whole sample). They differ by the factor
:math:`D \ln 2`, with :math:`D` the number of dimensions of one sample.

Index convention (see CONTRIBUTING.md): code index ``t = 0 .. T-1`` is the paper's step
``1 .. T``; the first step (``t == 0``) is the one where :math:`\bar\alpha_{t-1} = 1`.

The training objectives built on these terms (L_simple, the hybrid loss, importance sampling of
``t``) are in :mod:`diffnotes.losses`. Chapters 2 (Gaussian KL, VLB terms, discretised decoder,
bits/dim) and 6 (learned variances, the bound of the hybrid loss).
"""
from __future__ import annotations

import math

import torch

from ._checks import check_batch, check_choice, check_finite, check_range, check_same_shape, check_t
from ._util import append_dims
from .forward import posterior_mean, posterior_variance, q_sample, x0_from_eps

__all__ = [
    "normal_kl",
    "discretized_gaussian_log_likelihood",
    "prior_kl",
    "posterior_kl",
    "decoder_nll",
    "vlb_term",
    "learned_log_variance",
    "fixed_log_variances",
    "model_mean_from_eps",
    "vlb",
]

_LN2 = math.log(2.0)
_BIN_HALF_WIDTH = 1.0 / 255.0  # 8-bit data in [-1, 1]: 256 bins of width 2/255
_UNITS = ("bpd", "nats")
_VARIANCES = ("beta_tilde", "beta", "learned")


# --------------------------------------------------------------------------- helpers
def _to_unit(nats: torch.Tensor, unit: str) -> torch.Tensor:
    """Per-element nats ``[B, ...]`` -> per-sample ``[B]`` in ``unit``."""
    if unit == "bpd":
        return nats.flatten(1).mean(1) / _LN2
    return nats.flatten(1).sum(1)


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
    check_choice("unit", unit, _UNITS)
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
    check_choice("unit", unit, _UNITS)
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
    check_choice("unit", unit, _UNITS)
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
    check_choice("unit", unit, _UNITS)
    _check_8bit("x_0", x_0)
    t = check_t(t, x_0, schedule.T)
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


def fixed_log_variances(schedule, t: torch.Tensor, like: torch.Tensor):
    r"""The two fixed reverse log-variances (:math:`\log\beta_t`, :math:`\log\tilde\beta_t`) at indices ``t``.

    Ho et al. 2020, sec. 3.2 (:math:`\sigma_t^2 = \beta_t` or :math:`\tilde\beta_t`), with the first step's
    :math:`\tilde\beta` (which is 0) replaced by the second step's, as in the reference code of
    Ho et al. 2020 and Nichol & Dhariwal 2021 (the decoder needs a positive variance)."""
    bt = schedule.beta_tilde.clone()
    bt[0] = bt[1] if schedule.T > 1 else schedule.betas[0]
    log_beta = torch.log(schedule.betas)[t].to(device=like.device, dtype=like.dtype)
    log_beta_tilde = torch.log(bt)[t].to(device=like.device, dtype=like.dtype)
    return log_beta, log_beta_tilde


def model_mean_from_eps(x_t, eps_hat, c):
    """The reverse step's mean mu_theta(x_t, t) of an eps-model.

    The posterior mean with x_0 replaced by x0_from_eps (Ho et al. 2020, eq. 11); ``c`` is
    ``schedule.at(t, like=x_t)``.
    """
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
        check_choice("variance", variance, _VARIANCES)
    check_choice("unit", unit, _UNITS)
    _check_8bit("x_0", x_0)
    B = x_0.shape[0]
    log_beta_all, log_beta_tilde_all = fixed_log_variances(schedule, torch.arange(schedule.T), x_0)
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
        mean = model_mean_from_eps(x_t, eps_hat, c)
        if i == 0:  # same dispatch as vlb_term, for one step at a time
            term = decoder_nll(x_0, model_mean=mean, model_log_variance=logvar, unit=unit)
        else:
            term = posterior_kl(x_0, x_t, c["alpha_bar"], c["alpha_bar_prev"], c["beta"],
                                model_mean=mean, model_log_variance=logvar, unit=unit)
        terms.append(term)
    terms = torch.stack(terms, 1)
    prior = prior_kl(x_0, schedule.alpha_bar[-1].item(), unit=unit)
    return {"total": terms.sum(1) + prior, "terms": terms, "prior": prior}

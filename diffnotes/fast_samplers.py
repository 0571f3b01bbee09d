r"""Fast samplers: DDIM as an exponential integrator, DPM-Solver++ 2M, Heun (EDM), Analytic-DPM.

Every sampler has the signature of :func:`diffnotes.samplers.sample_ddim`,
``sample_xxx(model, x, timesteps, *, schedule, <options>, generator=None, callback=None,
progress=False)``: an :math:`\epsilon`-prediction ``model(x_t, t)`` called with the original
(code) index ``t``, a strictly decreasing sequence of code indices ``timesteps`` into a discrete
``schedule`` (linear or cosine), and a last step that lands on the data, :math:`\bar\alpha = 1`.

The ODE samplers work in the half log signal-to-noise ratio

.. math:: \alpha = \sqrt{\bar\alpha},\quad \sigma = \sqrt{1-\bar\alpha},\quad
          \lambda = \log(\alpha/\sigma),

in which the probability-flow ODE of the discrete schedule is, for :math:`x_\lambda`,

.. math:: \frac{dx}{d\lambda} = \frac{d\log\alpha}{d\lambda}\,x - \sigma\,\hat\epsilon(x, \lambda)
          \qquad\text{(Lu et al. 2022, eq. 3.3 with } \lambda\text{ as the variable).}

Notation (code name -> symbol):

==================  ==============================================  =======================================
code                symbol                                          meaning
==================  ==============================================  =======================================
``alpha_bar_s``     :math:`\bar\alpha_s`                            at the current (noisier) point
``alpha_bar_t``     :math:`\bar\alpha_t`                            at the point the step reaches
``lam``             :math:`\lambda = \log(\alpha/\sigma)`           half log-SNR; :math:`+\infty` at the data
``h``               :math:`h = \lambda_t - \lambda_s`               step length in :math:`\lambda`
``r``               :math:`r = h_{\rm last}/h`                      ratio of the last step to this one
``x0_hat``          :math:`\hat x_0 = (x - \sigma\hat\epsilon)/\alpha`  the data prediction
``sigma_edm``       :math:`\sigma_{\rm EDM} = \sigma/\alpha`        EDM's noise level (Karras et al. 2022)
``gamma``           :math:`\Gamma_n = E\lVert\hat\epsilon\rVert^2/d`  Analytic-DPM's moment (Bao et al. 2022)
==================  ==============================================  =======================================

Note: the papers write :math:`t` for the current (noisier) time and :math:`s` for the next one
in some places and the reverse in others; here ``s`` is always where a step starts and ``t``
where it ends, so :math:`\lambda_t > \lambda_s`.

Chapter 9.
"""
from __future__ import annotations

import math

import torch

from . import samplers
from ._checks import (as_f64, call_model_checked, check_alpha_bars, check_batch, check_callback, check_eps, check_int,
                      check_range, check_same_shape, check_sampler_inputs)
from ._util import append_dims, randn_like, steps
from .forward import x0_from_eps
from .samplers import StepResult

__all__ = [
    "log_snr",
    "edm_sigma",
    "exp_integrator_step",
    "dpmpp_2m_step",
    "heun_step",
    "analytic_dpm_variance",
    "estimate_gamma",
    "pixel_variance_cap",
    "analytic_dpm_step",
    "sample_ddim_exp",
    "sample_dpmpp_2m",
    "sample_heun",
    "sample_analytic_dpm",
    "heun_nfe",
    "karras_timesteps",
    "gaussian_flow_map",
    "fit_order",
    "convergence_errors",
]


# --------------------------------------------------------------------------- coordinates
def log_snr(alpha_bar) -> torch.Tensor:
    r"""The half log signal-to-noise ratio :math:`\lambda = \log(\alpha/\sigma)`.

    .. math:: \lambda = \tfrac12\log\frac{\bar\alpha}{1-\bar\alpha}

    :math:`+\infty` at :math:`\bar\alpha = 1` (the data). Lu et al. 2022 (DPM-Solver), sec. 3.1.
    Chapter 9.
    """
    check_range("alpha_bar", alpha_bar, 0.0, 1.0, low_open=True)
    ab = as_f64(alpha_bar)
    return 0.5 * (torch.log(ab) - torch.log1p(-ab))


def edm_sigma(alpha_bar) -> torch.Tensor:
    r"""EDM's noise level of a VP point: :math:`\sigma_{\rm EDM} = \sigma/\alpha = e^{-\lambda}`.

    .. math:: \sigma_{\rm EDM} = \sqrt{\frac{1-\bar\alpha}{\bar\alpha}}

    Karras et al. 2022 (EDM), Table 1 (VP column: :math:`s(t) = \alpha`, :math:`\sigma(t)` as
    above). Zero at the data. Chapter 9.
    """
    check_range("alpha_bar", alpha_bar, 0.0, 1.0, low_open=True)
    ab = as_f64(alpha_bar)
    return torch.sqrt((1 - ab) / ab)


def _alpha_sigma(alpha_bar):
    ab = as_f64(alpha_bar)
    return torch.sqrt(ab), torch.sqrt(1 - ab)


# --------------------------------------------------------------------------- one step
def exp_integrator_step(x_s, eps_hat, alpha_bar_s, alpha_bar_t) -> torch.Tensor:
    r"""First-order exponential-integrator step of the PF-ODE in :math:`\lambda` (DPM-Solver-1).

    The linear part :math:`(d\log\alpha/d\lambda)\,x` is integrated exactly and
    :math:`\hat\epsilon` is held at its value at :math:`s`:

    .. math:: x_t = \frac{\alpha_t}{\alpha_s}\,x_s - \sigma_t\,(e^{h} - 1)\,\hat\epsilon(x_s, s),
              \qquad h = \lambda_t - \lambda_s

    Lu et al. 2022 (DPM-Solver), eq. 3.7 / 4.1. It *is* deterministic DDIM (Song et al. 2021,
    eq. 12 with :math:`\sigma_t = 0`): the two agree to round-off (chapter 9 proves it in SymPy).
    At the data (:math:`\bar\alpha_t = 1`, :math:`h = \infty`) the product
    :math:`\sigma_t(e^h - 1)` is taken as its limit :math:`\alpha_t\sigma_s/\alpha_s - \sigma_t`,
    which makes the step return :math:`\hat x_0`.

    Parameters
    ----------
    x_s : Tensor [B, ...]
    eps_hat : Tensor, shape of ``x_s``
    alpha_bar_s, alpha_bar_t : float or 0-d Tensor, ``0 < alpha_bar_s <= alpha_bar_t <= 1``,
        ``alpha_bar_s < 1``.
    """
    check_eps(x_s, eps_hat)
    check_alpha_bars(alpha_bar_s, alpha_bar_t)
    a_s, s_s = _alpha_sigma(alpha_bar_s)
    a_t, s_t = _alpha_sigma(alpha_bar_t)
    h = log_snr(alpha_bar_t) - log_snr(alpha_bar_s)
    # sigma_t * expm1(h); its limit alpha_t sigma_s / alpha_s - sigma_t at the data (h = inf)
    phi = torch.where(torch.isinf(h), a_t * s_s / a_s - s_t, s_t * torch.expm1(h.clamp_max(700.0)))
    return append_dims(a_t / a_s, x_s) * x_s - append_dims(phi, x_s) * eps_hat


def dpmpp_2m_step(x_s, x0_hat, x0_hat_last, alpha_bar_last, alpha_bar_s, alpha_bar_t) -> torch.Tensor:
    r"""One step of DPM-Solver++ 2M: multistep, second order, in the data prediction.

    .. math::
        h = \lambda_t - \lambda_s,\quad r = \frac{\lambda_s - \lambda_{\rm last}}{h},\quad
        D = \Big(1 + \frac{1}{2r}\Big)\hat x_0^{(s)} - \frac{1}{2r}\hat x_0^{(\rm last)},\quad
        x_t = \frac{\sigma_t}{\sigma_s}\,x_s - \alpha_t\,(e^{-h} - 1)\,D

    Lu et al. 2022b (DPM-Solver++), Algorithm 2. ``x0_hat_last=None`` (the first step) gives the
    first-order step :math:`D = \hat x_0^{(s)}` (DPM-Solver++ 1, which is DDIM again).

    The step onto the data (:math:`\bar\alpha_t = 1`) is infinitely long in :math:`\lambda`
    (:math:`h = \infty`, :math:`r = 0`), where the correction :math:`\frac{1}{2r}(\hat x_0^{(s)} -
    \hat x_0^{(\rm last)})` has no finite limit. There this function takes the first-order step,
    whose limit is exact and simple: :math:`x_t = \hat x_0^{(s)}` (the same choice as k-diffusion's
    ``sample_dpmpp_2m`` and diffusers' ``lower_order_final``). It costs nothing in the order:
    the step starts at the schedule's smallest noise level, where :math:`\hat x_0` hardly moves.

    Parameters
    ----------
    x_s : Tensor [B, ...]
    x0_hat, x0_hat_last : Tensor (shape of ``x_s``); ``x0_hat_last`` may be None
        :math:`\hat x_0` at the current point and at the previous point of the sampler.
    alpha_bar_last, alpha_bar_s, alpha_bar_t : float or 0-d Tensor
        :math:`\bar\alpha` at the previous, current and next point, increasing (``alpha_bar_last``
        is ignored when ``x0_hat_last`` is None).
    """
    check_eps(x_s, x0_hat)
    check_alpha_bars(alpha_bar_s, alpha_bar_t)
    a_t, s_t = _alpha_sigma(alpha_bar_t)
    _, s_s = _alpha_sigma(alpha_bar_s)
    lam_s, lam_t = log_snr(alpha_bar_s), log_snr(alpha_bar_t)
    h = lam_t - lam_s
    D = x0_hat
    if x0_hat_last is not None and not bool(torch.isinf(h)):
        check_same_shape("x0_hat_last", x0_hat_last, "x_s", x_s)
        check_alpha_bars(alpha_bar_last, alpha_bar_s)
        r = (lam_s - log_snr(alpha_bar_last)) / h
        if not bool(r > 0):
            raise ValueError(f"alpha_bar_last must be below alpha_bar_s, got {float(as_f64(alpha_bar_last))} "
                             f"and {float(as_f64(alpha_bar_s))}")
        c = append_dims(1 / (2 * r), x_s)
        D = (1 + c) * x0_hat - c * x0_hat_last
    # at the data, sigma_t / sigma_s = 0 and expm1(-h) = -1: x_t = alpha_t * D = D
    return append_dims(s_t / s_s, x_s) * x_s - append_dims(a_t * torch.expm1(-h), x_s) * D


def heun_step(x_s, eps_hat, alpha_bar_s, alpha_bar_t, eps_fn=None) -> tuple[torch.Tensor, int]:
    r"""One step of Heun's method on the PF-ODE in EDM's variables; returns ``(x_t, nfe)``.

    With :math:`\tilde x = x/\alpha` and :math:`\sigma_{\rm EDM} = \sigma/\alpha` the ODE is
    :math:`d\tilde x/d\sigma_{\rm EDM} = \hat\epsilon(\alpha\tilde x)`, and

    .. math::
        d_s = \hat\epsilon(x_s),\quad
        \tilde x' = \tilde x_s + (\sigma_t - \sigma_s)\,d_s,\quad
        \tilde x_t = \tilde x_s + (\sigma_t - \sigma_s)\,\tfrac12\big(d_s + \hat\epsilon(\alpha_t\tilde x')\big)

    Karras et al. 2022 (EDM), Algorithm 1 (deterministic) with the VP scaling
    :math:`s(t) = \alpha` of their Table 1. The Euler line alone is DDIM. The correction is
    skipped on the step onto the data (:math:`\sigma_t = 0`, Algorithm 1 line 6), so ``eps_fn``
    (``x -> eps_hat`` at the level :math:`\bar\alpha_t`) is called once or not at all.
    """
    check_eps(x_s, eps_hat)
    check_alpha_bars(alpha_bar_s, alpha_bar_t)
    a_s, _ = _alpha_sigma(alpha_bar_s)
    a_t, _ = _alpha_sigma(alpha_bar_t)
    sig_s, sig_t = edm_sigma(alpha_bar_s), edm_sigma(alpha_bar_t)
    dsig = append_dims(sig_t - sig_s, x_s)
    xt_s = x_s / append_dims(a_s, x_s)
    xt_t = xt_s + dsig * eps_hat  # Euler (= DDIM)
    if float(sig_t) == 0.0 or eps_fn is None:
        return append_dims(a_t, x_s) * xt_t, 0
    d_t = eps_fn(append_dims(a_t, x_s) * xt_t)
    xt_t = xt_s + dsig * 0.5 * (eps_hat + d_t)  # trapezoidal correction
    return append_dims(a_t, x_s) * xt_t, 1


def heun_nfe(steps: int) -> int:
    """Network calls of :func:`sample_heun` with ``steps`` timesteps: ``2*steps - 1`` (EDM, sec. 3)."""
    steps = check_int("steps", steps, 1)
    return 2 * steps - 1


def karras_timesteps(schedule, steps: int, *, rho: float = 7.0, t_max: int | None = None) -> torch.Tensor:
    r"""``steps`` code indices whose EDM noise levels follow Karras et al.'s :math:`\rho`-spacing.

    .. math:: \sigma_i = \Big(\sigma_{\max}^{1/\rho} + \tfrac{i}{S-1}\big(\sigma_{\min}^{1/\rho}
              - \sigma_{\max}^{1/\rho}\big)\Big)^{\rho},\qquad i = 0, \dots, S-1,

    with :math:`\sigma_{\max} = \sigma_{\rm EDM}(\bar\alpha_{t_{\max}})` and
    :math:`\sigma_{\min} = \sigma_{\rm EDM}(\bar\alpha_0)`, each :math:`\sigma_i` taken to the code
    index of nearest :math:`\log\sigma_{\rm EDM}` (a discrete model only knows its own
    timesteps), kept strictly decreasing. Karras et al. 2022 (EDM), eq. 5 (:math:`\rho = 7`):
    steps shrink towards the data, where the ODE bends most, instead of being even in :math:`t`.
    Decreasing order, from ``t_max`` (default ``T - 1``) to 0. Chapter 9.
    """
    T = schedule.T
    S = check_int("steps", steps, 1, T)
    check_range("rho", rho, 0.0, None, low_open=True)
    t_max = T - 1 if t_max is None else check_int("t_max", t_max, S - 1, T - 1)
    if S == 1:
        return torch.tensor([t_max], dtype=torch.long)
    log_sig = torch.log(edm_sigma(schedule.alpha_bar[: t_max + 1]))
    hi, lo = float(log_sig[-1]), float(log_sig[0])
    ramp = torch.linspace(0, 1, S, dtype=torch.float64)
    target = rho * torch.log(math.exp(hi / rho) + ramp * (math.exp(lo / rho) - math.exp(hi / rho)))
    ts = (log_sig[None, :] - target[:, None]).abs().argmin(1)
    ts[0] = t_max
    for i in range(1, S):   # nearest indices may repeat where sigma is dense: step down, leaving room below
        ts[i] = max(min(int(ts[i]), int(ts[i - 1]) - 1), S - 1 - i)
    return ts.long()


# --------------------------------------------------------------------------- oracle helpers
def gaussian_flow_map(x_s, mean, cov, alpha_bar_s, alpha_bar_t) -> torch.Tensor:
    r"""The exact PF-ODE solution for Gaussian data :math:`x_0 \sim N(\mu, \Sigma)`, from s to t.

    Each eigen-direction of :math:`\Sigma` moves independently, and the flow keeps the standardised
    coordinate fixed:

    .. math:: x_t - \alpha_t\mu = (\alpha_t^2\Sigma + \sigma_t^2 I)^{1/2}
              (\alpha_s^2\Sigma + \sigma_s^2 I)^{-1/2}(x_s - \alpha_s\mu)

    (solve :math:`dx/d\lambda` of the module docstring with :math:`\hat\epsilon` the exact
    :math:`E[\epsilon\mid x]`; chapter 9 checks it against a fine numerical solve). Used as the
    oracle for the order of convergence. ``x_s``: ``[B, D]``; ``mean`` ``[D]``; ``cov`` ``[D, D]``.
    """
    check_batch("x_s", x_s)
    mean = torch.as_tensor(mean, dtype=torch.float64, device=x_s.device)
    cov = torch.as_tensor(cov, dtype=torch.float64, device=x_s.device)
    if cov.shape != (x_s.shape[1], x_s.shape[1]) or mean.shape != (x_s.shape[1],):
        raise ValueError(f"mean [D] and cov [D, D] must match x_s [B, D={x_s.shape[1]}], got "
                         f"{tuple(mean.shape)} and {tuple(cov.shape)}")
    check_range("alpha_bar_s", alpha_bar_s, 0.0, 1.0, low_open=True)
    check_range("alpha_bar_t", alpha_bar_t, 0.0, 1.0, low_open=True)
    lam, U = torch.linalg.eigh(cov)
    a_s, s_s = _alpha_sigma(alpha_bar_s)
    a_t, s_t = _alpha_sigma(alpha_bar_t)
    scale = torch.sqrt((a_t**2 * lam + s_t**2) / (a_s**2 * lam + s_s**2)).to(x_s.device)
    y = (x_s.double() - a_s * mean) @ U
    return ((y * scale) @ U.T + a_t * mean).to(x_s.dtype)


def fit_order(steps, errors) -> float:
    r"""The order :math:`p` of a least-squares fit :math:`\log e = -p\log S + c` (steps S, errors e)."""
    S = torch.as_tensor(steps, dtype=torch.float64).flatten()
    e = torch.as_tensor(errors, dtype=torch.float64).flatten()
    if S.numel() != e.numel() or S.numel() < 2 or bool((S <= 0).any()) or bool((e <= 0).any()):
        raise ValueError(f"steps and errors must be positive and of the same length >= 2, got {S.tolist()} "
                         f"and {e.tolist()}")
    A = torch.stack([torch.log(S), torch.ones_like(S)], 1)
    return float(-torch.linalg.lstsq(A, torch.log(e)[:, None]).solution[0])


def convergence_errors(sampler, model, x, mean, cov, *, schedule, steps, start) -> list[float]:
    r"""Mean error :math:`E\lVert x^{(S)} - x^{\rm exact}\rVert` at the last grid point, for each S.

    ``sampler`` runs on ``torch.linspace(start, 0, S).round()`` (code indices, both ends kept)
    from ``x`` (a batch at code index ``start``) with the exact Gaussian ``model``; the error is
    taken at code index 0 from the callback (``x`` before the last step), against
    :func:`gaussian_flow_map`. The last step, onto the data, is left out on purpose: it is the
    same map :math:`x \mapsto \hat x_0(x)` for DDIM, DPM-Solver++ 2M and Heun, and its error
    does not shrink with S. Chapter 9.
    """
    exact = gaussian_flow_map(x, mean, cov, schedule.alpha_bar[start], schedule.alpha_bar[0])
    out = []
    for S in steps:
        ts = torch.linspace(int(start), 0, int(S), dtype=torch.float64).round().long()
        seen = {}
        sampler(model, x, ts, schedule=schedule, callback=lambda d: seen.__setitem__("x", d.x))
        out.append(float((seen["x"] - exact).norm(dim=1).mean()))
    return out


# --------------------------------------------------------------------------- Analytic-DPM
def analytic_dpm_variance(alpha_bar_t, alpha_bar_prev, gamma, lambda2=None) -> torch.Tensor:
    r"""The optimal variance of a Gaussian reverse step, in closed form (Analytic-DPM).

    .. math::
        \sigma_n^{*2} = \lambda_n^2 + \Big(\sqrt{\tfrac{\bar\beta_n}{\alpha_n}}
        - \sqrt{\bar\beta_{n-1} - \lambda_n^2}\Big)^2 (1 - \Gamma_n),\qquad
        \Gamma_n = \frac{E\,\lVert\hat\epsilon(x_n, n)\rVert^2}{d}

    with :math:`\bar\beta_n = 1-\bar\alpha_n` and :math:`\alpha_n = \bar\alpha_n/\bar\alpha_{n-1}`
    (the ratio, so a skipping sampler is right). Bao et al. 2022 (Analytic-DPM), Theorem 1 with
    :math:`E\lVert\nabla\log q_n\rVert^2 = E\lVert\epsilon\text{-pred}\rVert^2/\bar\beta_n`
    (their eq. 7 and sec. 3). The default :math:`\lambda_n^2 = \tilde\beta_n` is the DDPM chain;
    :math:`\lambda_n^2 = 0` is DDIM's. ``gamma`` is clamped to [0, 1], which keeps
    :math:`\sigma_n^{*2}` between :math:`\lambda_n^2` and
    :math:`\lambda_n^2 + (\sqrt{\bar\beta_n/\alpha_n} - \sqrt{\bar\beta_{n-1}-\lambda_n^2})^2`
    (the bounds of their Theorem 2 without the data-range term). Chapter 9.
    """
    check_alpha_bars(alpha_bar_t, alpha_bar_prev)
    check_range("gamma", gamma, 0.0, None)
    ab, abp = as_f64(alpha_bar_t), as_f64(alpha_bar_prev)
    bbar, bbar_prev = 1 - ab, 1 - abp
    alpha_n = ab / abp
    beta_n = 1 - alpha_n
    if lambda2 is None:
        lambda2 = bbar_prev / bbar * beta_n  # beta_tilde of the (respaced) step
    lambda2 = as_f64(lambda2)
    if bool((lambda2 < 0).any()) or bool((lambda2 > bbar_prev * (1 + 1e-12)).any()):
        raise ValueError(f"lambda2 must lie in [0, 1 - alpha_bar_prev], got {lambda2.tolist()}")
    gap = torch.sqrt(bbar / alpha_n) - torch.sqrt((bbar_prev - lambda2).clamp_min(0))
    g = as_f64(gamma).clamp(0.0, 1.0)
    return lambda2 + gap**2 * (1 - g)


def estimate_gamma(model, x_0, timesteps, *, schedule, batch_size=250, generator=None,
                   progress=False) -> torch.Tensor:
    r"""Monte-Carlo estimate of :math:`\Gamma_n = E_{x_0, \epsilon}\lVert\hat\epsilon(x_n, n)\rVert^2/d`.

    .. math:: x_n = \sqrt{\bar\alpha_n}\,x_0 + \sqrt{1-\bar\alpha_n}\,\epsilon,\qquad
              \hat\Gamma_n = \frac{1}{M d}\sum_{m=1}^M\lVert\hat\epsilon(x_n^{(m)}, n)\rVert^2

    Bao et al. 2022 (Analytic-DPM), eq. 8 (one noise draw per data point). Chapter 9.

    Parameters
    ----------
    x_0 : Tensor [M, ...]
        Data (e.g. training images in [-1, 1]); its dtype and device are used.
    timesteps : sequence of int
        Code indices at which to estimate (any order); the result has the same order.
    batch_size : int
    generator : torch.Generator, optional

    Returns
    -------
    Tensor [len(timesteps)], float64
    """
    check_batch("x_0", x_0)
    ts = torch.as_tensor(timesteps, dtype=torch.long).flatten()
    if ts.numel() == 0 or int(ts.min()) < 0 or int(ts.max()) >= schedule.T:
        raise ValueError(f"timesteps must be indices in [0, {schedule.T - 1}], got {ts.tolist()[:8]}")
    batch_size = check_int("batch_size", batch_size, 1)
    d = x_0[0].numel()
    out = torch.zeros(ts.numel(), dtype=torch.float64)
    for j in steps(ts.numel(), progress, "Gamma"):
        t = int(ts[j])
        ab = schedule.alpha_bar[t]
        total = 0.0
        for start in range(0, x_0.shape[0], batch_size):
            x0 = x_0[start:start + batch_size]
            eps = randn_like(x0, generator)
            x_t = math.sqrt(float(ab)) * x0 + math.sqrt(float(1 - ab)) * eps
            eps_hat = call_model_checked(model, x_t, int(schedule.original_t[t]), j, t)
            total += float(eps_hat.double().pow(2).sum())
        out[j] = total / (x_0.shape[0] * d)
    return out


def pixel_variance_cap(pixels: float, *, levels: int = 256, data_range: float = 2.0) -> float:
    r"""The largest variance whose Gaussian noise moves a pixel by at most ``pixels`` quantisation bins on average.

    .. math:: E\,\lvert\sigma z\rvert = \sigma\sqrt{2/\pi} \le c\,\Delta
              \quad\Longleftrightarrow\quad \sigma^2 \le \Big(c\,\Delta\sqrt{\pi/2}\Big)^2,
              \qquad \Delta = \frac{\text{data range}}{\text{levels} - 1}

    (:math:`z \sim N(0, 1)`; :math:`\Delta = 2/255` for 8-bit images in [-1, 1]). Analytic-DPM's authors cap the
    variance of the last noisy step of their samplers with it (Bao et al. 2022; their released CIFAR-10
    settings use :math:`c = 2` for the linear schedule): that step's noise is never removed by a later step,
    so it ends up in the image. Used by :func:`sample_analytic_dpm` (``clip_pixels``). Chapter 9.
    """
    if not (isinstance(pixels, (int, float)) and math.isfinite(pixels) and pixels > 0):
        raise ValueError(f"pixels must be a positive number of quantisation bins, got {pixels!r}")
    levels = check_int("levels", levels, 2)
    if not (math.isfinite(data_range) and data_range > 0):
        raise ValueError(f"data_range must be positive, got {data_range!r}")
    return (pixels * data_range / (levels - 1) * math.sqrt(math.pi / 2)) ** 2


def analytic_dpm_step(x_t, eps_hat, alpha_bar_t, alpha_bar_prev, gamma, *, generator=None,
                      noise=None, max_variance: float | None = None) -> torch.Tensor:
    r"""One DDPM step with the Analytic-DPM variance: a draw from :math:`N(\tilde\mu_n, \sigma_n^{*2} I)`.

    .. math::
        x_{n-1} = \tilde\mu_n\big(x_n, \hat x_0(x_n)\big) + \sigma_n^* z

    The mean is DDPM's (Bao et al. 2022, Theorem 1: the optimal mean is the posterior mean at
    :math:`\hat x_0`), the variance :func:`analytic_dpm_variance` with
    :math:`\lambda_n^2 = \tilde\beta_n`; with skipping, :math:`\beta_n = 1 - \bar\alpha_t/\bar\alpha_{\rm prev}`.
    As in :func:`diffnotes.samplers.ddpm_step`, the step onto the data (``alpha_bar_prev == 1``)
    returns the mean without noise. ``max_variance`` (e.g. :func:`pixel_variance_cap`) replaces
    :math:`\sigma_n^{*2}` by :math:`\min(\sigma_n^{*2}, \text{max\_variance})`. Chapter 9.
    """
    var = analytic_dpm_variance(alpha_bar_t, alpha_bar_prev, gamma)
    if max_variance is not None:
        check_range("max_variance", max_variance, 0.0, None)
        var = var.clamp(max=float(max_variance))
    mean = samplers.ddpm_step(x_t, eps_hat, alpha_bar_t, alpha_bar_prev, variance="beta", noise=torch.zeros_like(x_t))
    if float(as_f64(alpha_bar_prev)) >= 1.0:
        return mean
    z = randn_like(x_t, generator) if noise is None else noise.to(dtype=x_t.dtype, device=x_t.device)
    check_same_shape("noise", z, "x_t", x_t)
    return mean + append_dims(torch.sqrt(var), x_t) * z


# --------------------------------------------------------------------------- samplers
def sample_ddim_exp(model, x, timesteps, *, schedule, generator=None, callback=None,
                    progress=False) -> torch.Tensor:
    r"""Deterministic DDIM written as the first-order exponential integrator in :math:`\lambda`.

    .. math:: x_{\tau_{i-1}} = \frac{\alpha_{\tau_{i-1}}}{\alpha_{\tau_i}}x_{\tau_i}
              - \sigma_{\tau_{i-1}}(e^{h_i}-1)\hat\epsilon(x_{\tau_i}, \tau_i)

    Lu et al. 2022 (DPM-Solver-1, eq. 3.7 and Proposition 4.1: it equals DDIM). Output equals
    :func:`diffnotes.samplers.sample_ddim` with ``eta=0`` to round-off. ``generator`` is unused
    (deterministic). ``callback`` gets a :class:`diffnotes.samplers.StepResult` after each step
    (``eps_hat``, ``x0_hat``, ``alpha_bar_t``, ``alpha_bar_next``, ``noise_std`` 0, ``nfe``). Chapter 9.
    """
    check_callback(callback)
    ts, ab, abp = check_sampler_inputs(x, timesteps, schedule)
    t_model = schedule.original_t[ts]
    for i in steps(len(ts), progress, "DDIM (exp. integrator)"):
        t = int(ts[i])
        eps_hat = call_model_checked(model, x, int(t_model[i]), i, t)
        x_prev = exp_integrator_step(x, eps_hat, ab[i], abp[i])
        if callback is not None:
            callback(StepResult(i=i, t=t, t_next=StepResult.index_after(ts, i), x=x, x_next=x_prev,
                                x0_hat=x0_from_eps(x, eps_hat, ab[i]), eps_hat=eps_hat, alpha_bar_t=float(ab[i]),
                                alpha_bar_next=float(abp[i]), noise_std=0.0, nfe=i + 1))
        x = x_prev
    return x


def sample_dpmpp_2m(model, x, timesteps, *, schedule, generator=None, callback=None,
                    progress=False) -> torch.Tensor:
    r"""DPM-Solver++ 2M: one network call per step, second order from the second step on.

    Lu et al. 2022b (DPM-Solver++), Algorithm 2; the first step is first order (there is no
    previous :math:`\hat x_0`), and so is the step onto the data (see :func:`dpmpp_2m_step`).
    NFE = ``len(timesteps)``. ``generator`` is unused (deterministic). ``callback`` as in
    :func:`sample_ddim_exp`. Chapter 9.
    """
    check_callback(callback)
    ts, ab, abp = check_sampler_inputs(x, timesteps, schedule)
    t_model = schedule.original_t[ts]
    x0_last, ab_last = None, None
    for i in steps(len(ts), progress, "DPM-Solver++ 2M"):
        t = int(ts[i])
        eps_hat = call_model_checked(model, x, int(t_model[i]), i, t)
        x0_hat = x0_from_eps(x, eps_hat, ab[i])
        x_prev = dpmpp_2m_step(x, x0_hat, x0_last, ab_last, ab[i], abp[i])
        if callback is not None:
            callback(StepResult(i=i, t=t, t_next=StepResult.index_after(ts, i), x=x, x_next=x_prev, x0_hat=x0_hat,
                                eps_hat=eps_hat, alpha_bar_t=float(ab[i]), alpha_bar_next=float(abp[i]), noise_std=0.0,
                                nfe=i + 1))
        x0_last, ab_last, x = x0_hat, ab[i], x_prev
    return x


def sample_heun(model, x, timesteps, *, schedule, generator=None, callback=None,
                progress=False) -> torch.Tensor:
    r"""Heun's second-order method on the PF-ODE in EDM's parameterisation (deterministic).

    Karras et al. 2022 (EDM), Algorithm 1, on the noise levels
    :math:`\sigma_{\rm EDM}(\bar\alpha_{\tau_i})` of ``timesteps`` and then 0; see
    :func:`heun_step`. NFE = ``2*len(timesteps) - 1`` (:func:`heun_nfe`): no correction on the
    last step. ``generator`` is unused. ``callback`` as in :func:`sample_ddim_exp` (``nfe``
    counts the calls so far). Chapter 9.
    """
    check_callback(callback)
    ts, ab, abp = check_sampler_inputs(x, timesteps, schedule)
    t_model = schedule.original_t[ts]
    nfe = 0
    for i in steps(len(ts), progress, "Heun (EDM)"):
        t = int(ts[i])
        eps_hat = call_model_checked(model, x, int(t_model[i]), i, t)
        nfe += 1
        eps_fn = None
        if i + 1 < len(ts):
            t_next, tm_next = int(ts[i + 1]), int(t_model[i + 1])
            eps_fn = lambda y, tm=tm_next, tn=t_next, k=i: call_model_checked(model, y, tm, k, tn)  # noqa: E731
        x_prev, extra = heun_step(x, eps_hat, ab[i], abp[i], eps_fn)
        nfe += extra
        if callback is not None:
            callback(StepResult(i=i, t=t, t_next=StepResult.index_after(ts, i), x=x, x_next=x_prev,
                                x0_hat=x0_from_eps(x, eps_hat, ab[i]), eps_hat=eps_hat, alpha_bar_t=float(ab[i]),
                                alpha_bar_next=float(abp[i]), noise_std=0.0, nfe=nfe))
        x = x_prev
    return x


def sample_analytic_dpm(model, x, timesteps, *, schedule, gamma, generator=None, callback=None,
                        progress=False, clip_pixels: float | None = None) -> torch.Tensor:
    r"""Ancestral sampling with the Analytic-DPM variance on any decreasing subsequence.

    Bao et al. 2022 (Analytic-DPM), sec. 3 and 4 (respaced trajectories); the step is
    :func:`analytic_dpm_step`. ``gamma`` holds :math:`\Gamma` at each of ``timesteps`` (same
    order), e.g. from :func:`estimate_gamma`. ``clip_pixels`` (off by default) caps the variance of
    the last noisy step (into ``timesteps[-1]``) at :func:`pixel_variance_cap` of that many quantisation bins of
    8-bit data in [-1, 1], as the authors' samplers do. ``callback`` gets a :class:`diffnotes.samplers.StepResult`
    as in :func:`sample_ddim_exp`, with ``noise_std`` the standard deviation used, :math:`\sigma^*_n` (capped
    where asked; 0 on the step onto the data, which adds no noise). Chapter 9.
    """
    check_callback(callback)
    ts, ab, abp = check_sampler_inputs(x, timesteps, schedule)
    g = torch.as_tensor(gamma, dtype=torch.float64).flatten()
    if g.numel() != ts.numel():
        raise ValueError(f"gamma must hold one value per timestep ({ts.numel()}), got {g.numel()}")
    check_range("gamma", g, 0.0, None)
    var = analytic_dpm_variance(ab, abp, g)
    caps = [None] * len(ts)
    if clip_pixels is not None and len(ts) >= 2:
        caps[-2] = pixel_variance_cap(clip_pixels)
        var[-2] = min(float(var[-2]), caps[-2])
    t_model = schedule.original_t[ts]
    for i in steps(len(ts), progress, "Analytic-DPM"):
        t = int(ts[i])
        eps_hat = call_model_checked(model, x, int(t_model[i]), i, t)
        x_prev = analytic_dpm_step(x, eps_hat, ab[i], abp[i], g[i], generator=generator, max_variance=caps[i])
        if callback is not None:
            callback(StepResult(i=i, t=t, t_next=StepResult.index_after(ts, i), x=x, x_next=x_prev,
                                x0_hat=x0_from_eps(x, eps_hat, ab[i]), eps_hat=eps_hat, alpha_bar_t=float(ab[i]),
                                alpha_bar_next=float(abp[i]), noise_std=math.sqrt(float(var[i])) if i + 1 < len(ts) else 0.0,
                                nfe=i + 1))
        x = x_prev
    return x

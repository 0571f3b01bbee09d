r"""Discrete-time samplers: DDPM ancestral sampling, the DDIM family, DDIM inversion, slerp.

Every sampler has one signature,
``sample_xxx(model, x, timesteps, *, schedule, <options>, generator=None, callback=None,
progress=False)``: ``model(x_t, t) -> eps_hat`` is called with ``t`` a ``LongTensor [B]`` on
``x``'s device holding the *original* schedule index (``schedule.original_t[t]``), ``x`` is the
starting :math:`x_{\tau_S}`, and ``timesteps`` is the strictly decreasing sequence
:math:`\tau_S > \dots > \tau_1` of indices into ``schedule`` that the sampler visits. The step
after the last one lands on the data, :math:`\bar\alpha_{\tau_0} := 1`. Because each step uses
only the two values :math:`\bar\alpha_{\tau_i}` and :math:`\bar\alpha_{\tau_{i-1}}`, skipping
steps needs no respaced schedule: every formula below is written with ratios of
:math:`\bar\alpha` and is right on any subsequence.

Notation (code name -> symbol; see also CONTRIBUTING.md):

==================  ==========================================  =========================================
code                symbol                                      meaning
==================  ==========================================  =========================================
``alpha_bar_t``     :math:`\bar\alpha_t`                        signal fraction at the current step
``alpha_bar_prev``  :math:`\bar\alpha_{t-1}`                    at the next step of the sampler (1 at the end)
``beta_t``          :math:`1-\bar\alpha_t/\bar\alpha_{t-1}`     variance of the (respaced) forward step
``beta_tilde``      :math:`\tilde\beta_t`                       DDPM posterior variance
``eps_hat``         :math:`\hat\epsilon_\theta(x_t, t)`         the model's noise prediction
``x0_hat``          :math:`\hat x_0`                            predicted clean sample (DDIM eq. 9)
``sigma_t``         :math:`\sigma_t`                            std of the noise a DDIM step adds
``eta``             :math:`\eta`                                0: deterministic DDIM, 1: DDPM posterior
``timesteps``       :math:`\tau`                                decreasing indices visited by a sampler
==================  ==========================================  =========================================

The DDIM paper (Song et al. 2021) writes :math:`\alpha_t` for our :math:`\bar\alpha_t`.

Chapters 2 (DDPM sampling) and 3 (DDIM, inversion, interpolation).
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from ._checks import (show_value, as_f64, call_model_checked, check_alpha_bars, check_batch, check_eps, check_range,
                      check_same_shape, check_sampler_inputs)
from ._util import append_dims, randn_like, steps
from .forward import posterior_mean, x0_from_eps

__all__ = [
    "StepResult",
    "ddim_sigma",
    "ddim_step",
    "ddpm_step",
    "sample_ddpm",
    "sample_ddim",
    "ddim_invert",
    "slerp",
]

_VARIANCES = ("beta_tilde", "beta")


@dataclass(frozen=True)
class StepResult:
    r"""What one sampler step hands to its ``callback``: where it started and ended, and what the model said.

    Every sampler of :mod:`diffnotes.samplers`, :mod:`diffnotes.fast_samplers`, :mod:`diffnotes.sde`
    and :mod:`diffnotes.flow_matching` calls ``callback(StepResult(...))`` once per step, after the
    step, with the fields named the same everywhere:

    ``i``
        The step's number, 0 for the first.
    ``t``, ``t_next``
        Where the step starts and where it lands: code indices into the schedule for the discrete
        samplers (``t_next = -1`` is the data, :math:`\bar\alpha = 1`, reached by the last step;
        see :meth:`index_after`), times for the SDE and flow-matching samplers.
    ``x``, ``x_next``
        The state at ``t`` (the step's input) and at ``t_next`` (its output); ``x_next`` of one
        step is ``x`` of the next, and that of the last step is what the sampler returns.
    ``x0_hat``
        The estimate of the data from ``x``: :math:`\hat x_0` (DDIM eq. 9 for an
        :math:`\epsilon`-model, Tweedie's formula for a score, :math:`x_t - t\,v` for a velocity);
        every sampler of the package gives it.
    ``eps_hat``, ``score``, ``v``
        The network's output at ``(x, t)``, under the name of what it predicts; the other two are ``None``.
    ``alpha_bar_t``, ``alpha_bar_next``
        :math:`\bar\alpha` at ``t`` and ``t_next`` (discrete samplers; ``None`` otherwise).
    ``noise_std``
        The standard deviation of the fresh Gaussian noise the step added (DDIM's :math:`\sigma_t`,
        Analytic-DPM's :math:`\sigma^*_n`); ``None`` where the sampler does not report it.
    ``nfe``
        Network evaluations so far, where the sampler counts them (:mod:`diffnotes.fast_samplers`).
    """

    i: int
    t: float
    t_next: float
    x: torch.Tensor
    x_next: torch.Tensor
    x0_hat: torch.Tensor | None = None
    eps_hat: torch.Tensor | None = None
    score: torch.Tensor | None = None
    v: torch.Tensor | None = None
    alpha_bar_t: float | None = None
    alpha_bar_next: float | None = None
    noise_std: float | None = None
    nfe: int | None = None

    @staticmethod
    def index_after(timesteps, i: int) -> int:
        """The code index step ``i`` of a discrete sampler lands on: ``timesteps[i + 1]``, or -1 (the data)
        after the last step."""
        return int(timesteps[i + 1]) if i + 1 < len(timesteps) else -1



# --------------------------------------------------------------------------- helpers
def _clip(x0_hat: torch.Tensor, clip_x0) -> torch.Tensor:
    """Clamp the predicted x_0 only when asked: ``c`` means [-c, c], ``(lo, hi)`` means [lo, hi]."""
    if clip_x0 is None:
        return x0_hat
    if isinstance(clip_x0, (tuple, list)):
        if len(clip_x0) != 2 or not float(clip_x0[0]) < float(clip_x0[1]):
            raise ValueError(f"clip_x0 as a pair must be (low, high) with low < high, got {clip_x0!r}")
        lo, hi = float(clip_x0[0]), float(clip_x0[1])
    else:
        check_range("clip_x0", clip_x0, 0.0, None, low_open=True)
        lo, hi = -float(clip_x0), float(clip_x0)
    return x0_hat.clamp(lo, hi)


def _noise(x, noise, generator):
    if noise is None:
        return randn_like(x, generator)
    if not isinstance(noise, torch.Tensor):
        raise ValueError(f"noise must be a torch.Tensor, got {type(noise).__name__}")
    check_same_shape("noise", noise, "x_t", x)
    return noise.to(dtype=x.dtype, device=x.device)


# --------------------------------------------------------------------------- one step
def ddim_sigma(alpha_bar_t, alpha_bar_prev, eta) -> torch.Tensor:
    r"""Standard deviation of the noise of one DDIM step, interpolating DDIM (0) and DDPM (1).

    .. math::
        \sigma_t(\eta) = \eta\,\sqrt{\frac{1-\bar\alpha_{t-1}}{1-\bar\alpha_t}}\,
                         \sqrt{1-\frac{\bar\alpha_t}{\bar\alpha_{t-1}}}

    With :math:`\eta = 1`, :math:`\sigma_t^2 = \tilde\beta_t` of the (respaced) chain whose step
    variance is :math:`\beta_t = 1-\bar\alpha_t/\bar\alpha_{t-1}`, so it is right when steps are skipped.

    Song et al. 2021 (DDIM), eq. 16. Chapter 3.

    Parameters
    ----------
    alpha_bar_t, alpha_bar_prev : float or Tensor (scalar or [B])
        :math:`\bar\alpha` at the current and the next (less noisy) step, with
        ``0 < alpha_bar_t <= alpha_bar_prev <= 1`` and ``alpha_bar_t < 1``.
    eta : float, >= 0

    Returns
    -------
    Tensor
        :math:`\sigma_t` (float64 when given numbers).
    """
    check_range("eta", eta, 0.0, None)
    check_alpha_bars(alpha_bar_t, alpha_bar_prev)
    ab, abp = as_f64(alpha_bar_t), as_f64(alpha_bar_prev)
    return eta * torch.sqrt((1 - abp) / (1 - ab)) * torch.sqrt(1 - ab / abp)


def _ddim_update(x_t, eps_hat, alpha_bar_t, alpha_bar_prev, sigma_t, generator, noise, clip_x0):
    """DDIM eq. 12, returning ``(x_prev, x0_hat)``."""
    check_eps(x_t, eps_hat)
    check_range("alpha_bar_prev", alpha_bar_prev, 0.0, 1.0, low_open=True)
    check_range("sigma_t", sigma_t, 0.0, None)
    abp, sigma = as_f64(alpha_bar_prev), as_f64(sigma_t)
    room = 1 - abp - sigma.to(abp.device) ** 2  # variance left for the "direction to x_t" term
    # sigma_t = sqrt(1 - abp) exactly is allowed: a negative `room` of round-off size counts as 0.
    if bool((room < -1e-12 * (1 - abp)).any()):
        raise ValueError(
            f"sigma_t**2 must not exceed 1 - alpha_bar_prev, got sigma_t**2={show_value(sigma**2)} and "
            f"1 - alpha_bar_prev={show_value(1 - abp)} (eta too large?)"
        )
    x0_hat = x0_from_eps(x_t, eps_hat, alpha_bar_t)
    if clip_x0 is not None:
        check_range("alpha_bar_t", alpha_bar_t, 0.0, 1.0, low_open=True, high_open=True)
        # Keep the step consistent with the clipped prediction: re-derive eps from (x_t, x0_hat).
        x0_hat = _clip(x0_hat, clip_x0)
        ab = append_dims(alpha_bar_t, x_t)
        eps_hat = (x_t - torch.sqrt(ab) * x0_hat) / torch.sqrt(1 - ab)
    x_prev = append_dims(torch.sqrt(abp), x_t) * x0_hat + append_dims(torch.sqrt(room.clamp_min(0)), x_t) * eps_hat
    if bool((sigma > 0).any()):
        x_prev = x_prev + append_dims(sigma, x_t) * _noise(x_t, noise, generator)
    return x_prev, x0_hat


def ddim_step(x_t, eps_hat, alpha_bar_t, alpha_bar_prev, *, sigma_t=0.0, generator=None, noise=None,
              clip_x0=None) -> torch.Tensor:
    r"""One step of the DDIM family: a draw from :math:`q_\sigma(x_{t-1} \mid x_t, \hat x_0)`.

    .. math::
        \hat x_0 = \frac{x_t - \sqrt{1-\bar\alpha_t}\,\hat\epsilon}{\sqrt{\bar\alpha_t}},\qquad
        x_{t-1} = \sqrt{\bar\alpha_{t-1}}\,\hat x_0
                  + \sqrt{1-\bar\alpha_{t-1}-\sigma_t^2}\,\hat\epsilon + \sigma_t z

    Song et al. 2021 (DDIM), eq. 12. Chapter 3. ``sigma_t = 0`` is deterministic DDIM;
    ``sigma_t = ddim_sigma(..., eta=1)`` is the DDPM posterior. No noise is drawn when every
    ``sigma_t`` is 0. The map is written between two arbitrary noise levels, so
    :func:`ddim_invert` reuses it with the levels swapped.

    Parameters
    ----------
    x_t : Tensor [B, ...]
    eps_hat : Tensor, shape of ``x_t``
    alpha_bar_t, alpha_bar_prev : float or Tensor (scalar or [B]), in (0, 1]
    sigma_t : float or Tensor (scalar or [B]), with ``sigma_t**2 <= 1 - alpha_bar_prev``
    generator : torch.Generator, optional
    noise : Tensor, optional
        The :math:`z` to use instead of drawing one (shape of ``x_t``).
    clip_x0 : float or (float, float), optional
        Clamp :math:`\hat x_0` to ``[-clip_x0, clip_x0]`` (or the given range) and re-derive
        :math:`\hat\epsilon` from it. Off by default: nothing is ever clipped unless asked.
    """
    return _ddim_update(x_t, eps_hat, alpha_bar_t, alpha_bar_prev, sigma_t, generator, noise, clip_x0)[0]


def _ddpm_update(x_t, eps_hat, alpha_bar_t, alpha_bar_prev, variance, generator, noise, clip_x0):
    """DDPM ancestral step (Ho et al. Alg. 2 line 4 in the x0 form), returning ``(x_prev, x0_hat)``."""
    if variance not in _VARIANCES:
        raise ValueError(f"variance must be one of {_VARIANCES}, got {variance!r}")
    check_eps(x_t, eps_hat)
    check_alpha_bars(alpha_bar_t, alpha_bar_prev)
    ab, abp = as_f64(alpha_bar_t), as_f64(alpha_bar_prev)
    abp = abp.to(ab.device)
    beta_t = 1 - ab / abp  # the (respaced) step's beta
    x0_hat = _clip(x0_from_eps(x_t, eps_hat, ab), clip_x0)
    mean = posterior_mean(x0_hat, x_t, ab, abp, beta_t)
    var = beta_t if variance == "beta" else (1 - abp) / (1 - ab) * beta_t
    # The last step (alpha_bar_prev == 1) returns the mean: Ho et al. 2020, Alg. 2, z = 0 at t = 1.
    std = torch.where(abp < 1, torch.sqrt(var), torch.zeros_like(var))
    if bool((std > 0).any()):
        mean = mean + append_dims(std, x_t) * _noise(x_t, noise, generator)
    return mean, x0_hat


def ddpm_step(x_t, eps_hat, alpha_bar_t, alpha_bar_prev, *, variance="beta_tilde", generator=None,
              noise=None, clip_x0=None) -> torch.Tensor:
    r"""One DDPM ancestral step: a draw from :math:`N(\tilde\mu_t(x_t, \hat x_0), \sigma_t^2 I)`.

    .. math::
        \beta_t = 1 - \frac{\bar\alpha_t}{\bar\alpha_{t-1}},\qquad
        \tilde\mu_t = \frac{\sqrt{\bar\alpha_{t-1}}\beta_t}{1-\bar\alpha_t}\hat x_0
                    + \frac{\sqrt{1-\beta_t}(1-\bar\alpha_{t-1})}{1-\bar\alpha_t}x_t,\qquad
        \sigma_t^2 \in \{\tilde\beta_t, \beta_t\}

    Without clipping this equals Ho et al.'s
    :math:`\frac{1}{\sqrt{\alpha_t}}(x_t - \frac{\beta_t}{\sqrt{1-\bar\alpha_t}}\hat\epsilon)`.
    Defining :math:`\beta_t` by the ratio makes the step right on a respaced subsequence.
    No noise is added when ``alpha_bar_prev == 1`` (the last step).

    Ho et al. 2020, eq. 7 and Algorithm 2 (the two variances: sec. 3.2). Chapter 2.

    Parameters
    ----------
    variance : {"beta_tilde", "beta"}
        :math:`\tilde\beta_t` (optimal for deterministic :math:`x_0`) or :math:`\beta_t`
        (optimal for :math:`x_0 \sim N(0, I)`).
    clip_x0 : float or (float, float), optional
        Clamp :math:`\hat x_0` before forming the posterior mean (off by default).

    Other parameters as in :func:`ddim_step`.
    """
    return _ddpm_update(x_t, eps_hat, alpha_bar_t, alpha_bar_prev, variance, generator, noise, clip_x0)[0]


# --------------------------------------------------------------------------- samplers
def sample_ddpm(model, x, timesteps, *, schedule, variance="beta_tilde", clip_x0=None, generator=None,
                callback=None, progress=False) -> torch.Tensor:
    r"""Ancestral sampling (DDPM), on the full schedule or any decreasing subsequence of it.

    .. math:: x_{\tau_{i-1}} \sim N\big(\tilde\mu(x_{\tau_i}, \hat x_0), \sigma_{\tau_i}^2 I\big),
              \quad i = S, \dots, 1

    Ho et al. 2020, Algorithm 2; respaced as in Nichol & Dhariwal 2021, sec. 4. Chapter 2.

    Parameters
    ----------
    model : callable
        ``model(x_t, t) -> eps_hat`` with ``t`` a LongTensor [B] of original indices.
    x : Tensor [B, ...]
        The starting point, usually ``randn`` (:math:`x_T \sim N(0, I)`).
    timesteps : sequence of int
        Strictly decreasing indices into ``schedule`` (e.g. ``uniform_timesteps(T, S)``).
    schedule : Schedule
    variance, clip_x0 : see :func:`ddpm_step`.
    generator : torch.Generator, optional
    callback : callable, optional
        Called after each step with a :class:`StepResult` (``x``: :math:`x_t` before the step,
        ``x_next`` after it; ``eps_hat``, ``x0_hat``, ``alpha_bar_t``, ``alpha_bar_next``).
    progress : bool
        Show a tqdm progress bar.

    Returns
    -------
    Tensor
        The sample :math:`x_0`, shape of ``x``.
    """
    if variance not in _VARIANCES:
        raise ValueError(f"variance must be one of {_VARIANCES}, got {variance!r}")
    ts, ab, abp = check_sampler_inputs(x, timesteps, schedule)
    t_model = schedule.original_t[ts]
    for i in steps(len(ts), progress, "DDPM"):
        t = int(ts[i])
        eps_hat = call_model_checked(model, x, int(t_model[i]), i, t)
        x_prev, x0_hat = _ddpm_update(x, eps_hat, ab[i], abp[i], variance, generator, None, clip_x0)
        if callback is not None:
            callback(StepResult(i=i, t=t, t_next=StepResult.index_after(ts, i), x=x, x_next=x_prev, x0_hat=x0_hat,
                                eps_hat=eps_hat, alpha_bar_t=float(ab[i]), alpha_bar_next=float(abp[i])))
        x = x_prev
    return x


def sample_ddim(model, x, timesteps, *, schedule, eta=0.0, clip_x0=None, generator=None, callback=None,
                progress=False) -> torch.Tensor:
    r"""DDIM sampling with noise level :math:`\eta` (0: deterministic, 1: DDPM posterior).

    .. math:: x_{\tau_{i-1}} = \sqrt{\bar\alpha_{\tau_{i-1}}}\,\hat x_0
              + \sqrt{1-\bar\alpha_{\tau_{i-1}}-\sigma_{\tau_i}^2}\,\hat\epsilon + \sigma_{\tau_i} z,
              \qquad \sigma_{\tau_i} = \sigma(\eta)

    Song et al. 2021 (DDIM), eq. 12 and 16, sec. 4.2 (sampling on a subsequence). Chapter 3.

    Parameters
    ----------
    eta : float, >= 0
        Values above 1 are allowed as long as :math:`\sigma^2 \le 1-\bar\alpha_{\tau_{i-1}}` at
        every step (checked before the first model call).
    callback : callable, optional
        Called after each step with a :class:`StepResult`, as in :func:`sample_ddpm`, with
        ``noise_std`` :math:`\sigma_{\tau_i}`.

    Other parameters as in :func:`sample_ddpm`; ``clip_x0`` as in :func:`ddim_step`.
    """
    check_range("eta", eta, 0.0, None)
    ts, ab, abp = check_sampler_inputs(x, timesteps, schedule)
    sigma = ddim_sigma(ab, abp, eta)
    bad = sigma**2 > 1 - abp
    if bool(bad.any()):
        j = int(bad.nonzero()[0])
        raise ValueError(
            f"eta={eta} is too large: at step i={j} (t={int(ts[j])}) sigma**2={float(sigma[j] ** 2):.6g} "
            f"exceeds 1 - alpha_bar_prev={float(1 - abp[j]):.6g}"
        )
    t_model = schedule.original_t[ts]
    for i in steps(len(ts), progress, "DDIM"):
        t = int(ts[i])
        eps_hat = call_model_checked(model, x, int(t_model[i]), i, t)
        x_prev, x0_hat = _ddim_update(x, eps_hat, ab[i], abp[i], sigma[i], generator, None, clip_x0)
        if callback is not None:
            callback(StepResult(i=i, t=t, t_next=StepResult.index_after(ts, i), x=x, x_next=x_prev, x0_hat=x0_hat,
                                eps_hat=eps_hat, alpha_bar_t=float(ab[i]), alpha_bar_next=float(abp[i]),
                                noise_std=float(sigma[i])))
        x = x_prev
    return x


def ddim_invert(model, x_0, timesteps, *, schedule, callback=None, progress=False) -> torch.Tensor:
    r"""Deterministic DDIM run backwards: encode data :math:`x_0` into a latent :math:`x_{\tau_S}`.

    Each step solves the :math:`\eta=0` DDIM step for its input, evaluating the model at the less
    noisy point it knows (the standard approximation
    :math:`\hat\epsilon(x_{\tau_i}, \tau_i) \approx \hat\epsilon(x_{\tau_{i-1}}, \tau_i)`):

    .. math:: x_{\tau_i} = \sqrt{\bar\alpha_{\tau_i}}\,\hat x_0(x_{\tau_{i-1}})
              + \sqrt{1-\bar\alpha_{\tau_i}}\,\hat\epsilon(x_{\tau_{i-1}}, \tau_i),
              \qquad \bar\alpha_{\tau_0} = 1

    i.e. :func:`ddim_step` with the two noise levels swapped. The error of the round trip
    ``sample_ddim(model, ddim_invert(model, x_0, ts), ts)`` shrinks with the step size.

    Song et al. 2021 (DDIM), sec. 5.4 (reconstruction from the ODE). Chapter 3.

    Parameters
    ----------
    timesteps : sequence of int
        In *sampling* (decreasing) order, the same sequence as given to :func:`sample_ddim`;
        they are visited from the last to the first.
    callback : callable, optional
        Called after each step with a :class:`StepResult`: ``x`` is the input of the step (less
        noisy, at ``t``; ``t = -1`` for the data), ``x_next`` its output at the level ``t_next``
        reached, ``eps_hat`` the model's output at ``(x, t_next)``, ``noise_std`` 0.
    """
    ts, ab, abp = check_sampler_inputs(x_0, timesteps, schedule)
    t_model = schedule.original_t[ts]
    x = x_0
    n = len(ts)
    for i in steps(n, progress, "DDIM inversion"):
        j = n - 1 - i  # visit the timesteps in increasing order
        t = int(ts[j])
        eps_hat = call_model_checked(model, x, int(t_model[j]), i, t)
        x_next, x0_hat = _ddim_update(x, eps_hat, abp[j], ab[j], 0.0, None, None, None)
        if callback is not None:
            callback(StepResult(i=i, t=StepResult.index_after(ts, j), t_next=t, x=x, x_next=x_next, x0_hat=x0_hat,
                                eps_hat=eps_hat, alpha_bar_t=float(abp[j]), alpha_bar_next=float(ab[j]), noise_std=0.0))
        x = x_next
    return x


# --------------------------------------------------------------------------- interpolation
def slerp(x0: torch.Tensor, x1: torch.Tensor, alpha) -> torch.Tensor:
    r"""Spherical linear interpolation between two batches of vectors (one angle per sample).

    .. math:: \theta = \arccos\frac{\langle x_0, x_1\rangle}{\lVert x_0\rVert\lVert x_1\rVert},\qquad
              \mathrm{slerp}(x_0, x_1; \alpha) = \frac{\sin((1-\alpha)\theta)}{\sin\theta}x_0
              + \frac{\sin(\alpha\theta)}{\sin\theta}x_1

    Shoemake 1985; used on latents :math:`x_T` by Song et al. 2021 (DDIM), sec. 5.3, because
    it keeps a Gaussian latent's norm where linear interpolation shrinks it. Chapter 3.

    Parameters
    ----------
    x0, x1 : Tensor [B, ...]
        Same shape; the angle is taken over all non-batch dimensions. A batch of 1 broadcasts
        against a ``[B]`` ``alpha``.
    alpha : float or Tensor (scalar or [B]), in [0, 1]
    """
    check_batch("x0", x0, min_ndim=1)
    check_batch("x1", x1, min_ndim=1)
    check_same_shape("x1", x1, "x0", x0)
    check_range("alpha", alpha, 0.0, 1.0)
    a = torch.as_tensor(alpha, dtype=x0.dtype, device=x0.device)
    if a.ndim > 1:
        raise ValueError(f"alpha must be a scalar or a 1-D tensor [B], got shape {tuple(a.shape)}")
    flat0, flat1 = x0.reshape(x0.shape[0], -1), x1.reshape(x1.shape[0], -1)
    n0, n1 = flat0.norm(dim=1), flat1.norm(dim=1)
    if bool((n0 == 0).any()) or bool((n1 == 0).any()):
        raise ValueError("x0 and x1 must have non-zero norm in every sample (the angle is undefined)")
    cos = ((flat0 * flat1).sum(1) / (n0 * n1)).clamp(-1.0, 1.0)  # rounding only: |cos| <= 1 in exact math
    theta = torch.arccos(cos)
    if bool((math.pi - theta < 1e-6).any()):
        raise ValueError("x0 and x1 point in opposite directions in some sample; slerp is not unique there")
    a = a.reshape(-1, *([1] * (x0.ndim - 1))) if a.ndim == 1 else a
    th = theta.reshape(-1, *([1] * (x0.ndim - 1)))
    small = th < 1e-7  # nearly parallel: the limit of slerp is lerp
    sin_th = torch.where(small, torch.ones_like(th), torch.sin(th))
    w0 = torch.where(small, 1 - a * torch.ones_like(th), torch.sin((1 - a) * th) / sin_th)
    w1 = torch.where(small, a * torch.ones_like(th), torch.sin(a * th) / sin_th)
    return w0 * x0 + w1 * x1

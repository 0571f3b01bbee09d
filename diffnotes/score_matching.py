r"""Score models in continuous time: denoising score matching at a real-valued t, and SMLD's sampler.

Two pieces that chapter 5 needs next to the SDEs of :mod:`diffnotes.sde`:

* :func:`dsm_loss_continuous` -- the training objective of Song et al. 2021b, eq. 7: denoising score
  matching with the time drawn uniformly from :math:`[t_{\min}, T]` (a real number, not a step
  index), the kernel :math:`p_{0t}(x_t\mid x_0) = N(m(t)x_0, s(t)^2 I)` of any SDE with
  ``marginal_coefs``, and the weight :math:`\lambda(t) = s(t)^2`.
* :func:`annealed_langevin` -- the sampler of score matching with Langevin dynamics (SMLD / NCSN,
  Song & Ermon 2019, Algorithm 1): Langevin dynamics at a decreasing sequence of noise levels
  (:func:`smld_sigmas`).

Notation: ``sigmas`` are Song & Ermon's :math:`\sigma_1 > \dots > \sigma_L` (code index ``0..L-1``);
a noise-conditional score model is ``model(x, sigma) -> score`` with ``sigma`` a float tensor
``[B]``; a continuous-time score model is ``model(x_t, t) -> score`` as in :mod:`diffnotes.sde`.
Chapter 5.
"""
from __future__ import annotations

import math

import torch

from ._checks import show_value, check_batch, check_finite, check_int, check_range
from ._util import append_dims, randn_like
from .samplers import StepResult

__all__ = ["dsm_loss_continuous", "smld_sigmas", "annealed_langevin"]

_WEIGHTINGS = ("sigma2", "none")


def dsm_loss_continuous(model, x_0, sde, *, t_min=1e-3, weighting="sigma2", generator=None, return_parts=False):
    r"""Denoising score matching with a real-valued time :math:`t \sim U(t_{\min}, T)`.

    .. math::
        L(\theta) = E_{t\sim U(t_{\min}, T)}\,E_{x_0}\,E_{\epsilon}\Big[\lambda(t)\,
            \big\lVert s_\theta(x_t, t) + \epsilon / s(t)\big\rVert^2\Big],
        \qquad x_t = m(t)\,x_0 + s(t)\,\epsilon,\quad \lambda(t) = s(t)^2

    Song et al. 2021b, eq. 7 (and appendix C for :math:`t_{\min} > 0`): :math:`-\epsilon/s(t)` is
    :math:`\nabla_{x_t}\log p_{0t}(x_t\mid x_0)`. The lower bound :math:`t_{\min}` keeps the target
    finite: its variance :math:`D/s(t)^2` is not integrable at :math:`t = 0` for the VP SDE. With the
    weight :math:`s^2` and :math:`s_\theta = -\hat\epsilon/s`, each term is
    :math:`\lVert\hat\epsilon - \epsilon\rVert^2` (the DDPM loss, now at continuous t). The squared
    norm is averaged over the non-batch dimensions, as in :func:`diffnotes.losses.dsm_loss`.
    Chapter 5.

    Parameters
    ----------
    model : callable
        ``model(x_t, t) -> score``, ``t`` a float tensor ``[B]`` with ``x_0``'s dtype and device.
    x_0 : torch.Tensor, shape [B, ...]
        A batch of data.
    sde : VPSDE | SubVPSDE | VESDE
        Anything with ``T`` and ``marginal_coefs(t) -> (m(t), s(t))``.
    t_min : float
        Smallest time drawn, in (0, T).
    weighting : {"sigma2", "none"}
        :math:`\lambda(t) = s(t)^2` or 1.
    generator : torch.Generator, optional
        For t and :math:`\epsilon`.
    return_parts : bool
        If true, return ``(loss, dict(t, x_t, eps))`` with the draws used.
    """
    check_batch("x_0", x_0)
    check_range("t_min", t_min, 0.0, sde.T, low_open=True, high_open=True)
    if weighting not in _WEIGHTINGS:
        raise ValueError(f"weighting must be one of {_WEIGHTINGS}, got {weighting!r}")
    b = x_0.shape[0]
    u = torch.rand(b, generator=generator, dtype=torch.float64, device="cpu").to(x_0.device)
    t = t_min + (sde.T - t_min) * u
    m, s = sde.marginal_coefs(t)
    m, s = m.to(x_0.device), s.to(x_0.device)
    eps = randn_like(x_0, generator)
    x_t = append_dims(m, x_0) * x_0 + append_dims(s, x_0) * eps
    score = model(x_t, t.to(x_0.dtype))
    if not isinstance(score, torch.Tensor) or score.shape != x_0.shape:
        shape = tuple(score.shape) if isinstance(score, torch.Tensor) else type(score).__name__
        raise ValueError(f"model output must be a tensor of shape {tuple(x_0.shape)}, got {shape}")
    target = -eps / append_dims(s, x_0)
    per_sample = (score - target).pow(2).flatten(1).mean(1)
    if weighting == "sigma2":
        per_sample = per_sample * s.to(per_sample.dtype) ** 2
    loss = per_sample.mean()
    if return_parts:
        return loss, dict(t=t, x_t=x_t, eps=eps)
    return loss


def smld_sigmas(sigma_1: float = 1.0, sigma_L: float = 0.01, L: int = 10) -> torch.Tensor:
    r"""SMLD's noise levels: a geometric sequence :math:`\sigma_1 > \sigma_2 > \dots > \sigma_L` (float64).

    .. math:: \sigma_i = \sigma_1\,(\sigma_L/\sigma_1)^{(i-1)/(L-1)},\qquad i = 1..L

    Song & Ermon 2019, sec. 4.2 (:math:`\sigma_1 = 1`, :math:`\sigma_L = 0.01`, :math:`L = 10`);
    element ``k`` of the result is :math:`\sigma_{k+1}`. Chapter 5.
    """
    L = check_int("L", L, 2)
    check_range("sigma_L", sigma_L, 0.0, None, low_open=True)
    check_range("sigma_1", sigma_1, sigma_L, None, low_open=True)
    return torch.logspace(math.log10(sigma_1), math.log10(sigma_L), L, dtype=torch.float64)


def annealed_langevin(model, x, sigmas, *, step_lr=2e-5, n_steps_each=100, generator=None, callback=None):
    r"""Annealed Langevin dynamics: T Langevin steps at each noise level, largest level first.

    For :math:`i = 1..L`, with :math:`\alpha_i = \epsilon\,\sigma_i^2/\sigma_L^2`, repeat T times

    .. math:: \tilde x \leftarrow \tilde x + \frac{\alpha_i}{2}\,s_\theta(\tilde x, \sigma_i)
              + \sqrt{\alpha_i}\;z,\qquad z\sim N(0, I)

    Song & Ermon 2019, Algorithm 1 (:math:`\epsilon` = ``step_lr``, T = ``n_steps_each``; they
    use :math:`\epsilon = 2\cdot10^{-5}`, T = 100). The step is proportional to :math:`\sigma_i^2`
    so that the signal-to-noise ratio of the update is the same at every level. Noise is added at
    every step, the last one included: the result approximates :math:`p_{\sigma_L}`, the data
    convolved with :math:`N(0, \sigma_L^2 I)`. Chapter 5.

    Parameters
    ----------
    model : callable
        Noise-conditional score ``model(x, sigma) -> score`` of :math:`p_\sigma`, ``sigma`` a float
        tensor ``[B]`` with ``x``'s dtype and device (``oracle.score(x, 1, sigma)`` for an oracle).
    x : torch.Tensor, shape [B, ...]
        The initial state :math:`\tilde x_0` (Song & Ermon draw it uniformly).
    sigmas : sequence of float
        Strictly decreasing noise levels :math:`\sigma_1 > \dots > \sigma_L > 0`, e.g. :func:`smld_sigmas`.
    step_lr : float
        :math:`\epsilon > 0`, the step size at the last level.
    n_steps_each : int
        T >= 1, Langevin steps per noise level.
    generator : torch.Generator, optional
    callback : callable, optional
        Called after each noise level with a :class:`diffnotes.samplers.StepResult`: ``i`` the code index
        ``0..L-1`` of the level (the paper's :math:`i-1`), ``t = t_next`` = :math:`\sigma_i` (the level
        does not move the noise level, it samples at it), ``x`` / ``x_next`` the state before and after
        the level's T steps, ``score`` the score at ``x``, ``x0_hat`` = :math:`x + \sigma_i^2 s` (Tweedie),
        ``noise_std`` = :math:`\sqrt{\alpha_i}` of each Langevin step, ``nfe`` the scores evaluated so far.
    """
    check_batch("x", x)
    sig = torch.as_tensor(sigmas, dtype=torch.float64).detach().cpu()
    if sig.ndim != 1 or sig.numel() < 1:
        raise ValueError(f"sigmas must be a 1-D sequence of at least one noise level, got {show_value(sig)}")
    check_finite("sigmas", sig)
    if float(sig[-1]) <= 0.0 or not bool((sig[1:] < sig[:-1]).all()):
        raise ValueError(
            f"sigmas must be positive and strictly decreasing (sigma_1 > ... > sigma_L > 0), got {show_value(sig)}"
        )
    check_range("step_lr", step_lr, 0.0, None, low_open=True)
    n_steps_each = check_int("n_steps_each", n_steps_each, 1)
    sigma_L = float(sig[-1])
    levels = sig.tolist()
    for i, sigma_i in enumerate(levels):
        alpha = step_lr * sigma_i**2 / sigma_L**2
        s_b = torch.full((x.shape[0],), sigma_i, dtype=x.dtype, device=x.device)
        x_start, first_score = x, None
        for _ in range(n_steps_each):
            score = model(x, s_b)
            if not isinstance(score, torch.Tensor) or score.shape != x.shape:
                shape = tuple(score.shape) if isinstance(score, torch.Tensor) else type(score).__name__
                raise ValueError(
                    f"model output at sigma={sigma_i:.6g} must be a tensor of shape {tuple(x.shape)}, got {shape}"
                )
            first_score = score if first_score is None else first_score
            x = x + 0.5 * alpha * score.to(x.dtype) + math.sqrt(alpha) * randn_like(x, generator)
        if callback is not None:  # one "step" is one noise level: T Langevin steps at sigma_i
            callback(StepResult(i=i, t=sigma_i, t_next=sigma_i, x=x_start, x_next=x,
                                x0_hat=x_start + sigma_i**2 * first_score.to(x.dtype), score=first_score,
                                noise_std=math.sqrt(alpha), nfe=(i + 1) * n_steps_each))
    return x

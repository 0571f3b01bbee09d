r"""Bridges between a discrete-time model and the continuous-time solvers: one home for each.

* :func:`vp_sde_for` -- the one VP SDE that stands for a discrete linear schedule, used by the
  command line's score-SDE samplers (``sample --sampler ode_heun``, the model card's PF-ODE row) and
  by the sampler explorer of chapter 5.
"""
from __future__ import annotations

import math

import torch

from .schedules import Schedule
from .sde import VPSDE

__all__ = ["vp_sde_for", "is_linear"]


def vp_sde_for(schedule: Schedule) -> VPSDE:
    r"""The VP SDE that stands for a discrete linear DDPM schedule in continuous time.

    A linear schedule :math:`\beta_i` from :math:`\beta_1` to :math:`\beta_T` discretises
    :math:`\beta(t) = \beta_{\min} + t(\beta_{\max} - \beta_{\min})` (Song et al. 2021b, appendix B).
    We keep :math:`\beta_{\min} = T\beta_1` and choose :math:`\beta_{\max}` so that the SDE's signal
    coefficient at :math:`t = 1` equals the schedule's, :math:`m(1)^2 = \exp(-\tfrac12(\beta_{\min} +
    \beta_{\max})) = \bar\alpha_T`:

    .. math:: \beta_{\max} = -2\log\bar\alpha_T - \beta_{\min}.

    For T = 1000 and ``1e-4..0.02`` this gives 20.135 instead of the paper's :math:`T\beta_T = 20`:
    the limit :math:`T\beta_T` drops the second-order term :math:`\sum_i \beta_i^2/2` of
    :math:`-\log\bar\alpha_T = -\sum_i \log(1-\beta_i)`, so its :math:`\log m(t)^2` misses the
    schedule's :math:`\log\bar\alpha` at :math:`t = i/T` by up to 0.068; this choice by up to 0.012,
    and its prior :math:`N(0, I)` is exactly as far from :math:`p_T` as DDPM's. Chapter 5 derives it.

    Any full schedule gets the VP SDE with linear :math:`\beta(t)` that matches it at both ends (for a
    schedule whose first beta is its largest, :math:`\beta_{\max}` would fall below :math:`\beta_{\min}`:
    then the constant rate :math:`-\log\bar\alpha_T`). It is the limit of the schedule only when the
    schedule is linear (:func:`is_linear`); the command line's continuous samplers require that.
    Raises ``ValueError`` for a respaced schedule.
    """
    if not isinstance(schedule, Schedule):
        raise ValueError(f"schedule must be a diffnotes.schedules.Schedule, got {type(schedule).__name__}")
    T = schedule.betas.numel()
    if schedule.original_t is not None and not torch.equal(schedule.original_t, torch.arange(T)):
        raise ValueError("the continuous samplers need the model's full schedule, got a respaced one")
    beta_min = T * float(schedule.betas[0])
    total = -math.log(float(schedule.alpha_bar[-1]))      # -log alpha_bar_T = (beta_min + beta_max) / 2
    beta_max = 2.0 * total - beta_min
    if beta_max < beta_min:
        beta_min = beta_max = total
    return VPSDE(beta_min=beta_min, beta_max=beta_max)


def is_linear(schedule: Schedule) -> bool:
    """Whether ``schedule``'s betas are linear in the index (a DDPM linear schedule), so that the VP SDE
    of :func:`vp_sde_for` is its continuous limit."""
    betas = schedule.betas
    linear = torch.linspace(float(betas[0]), float(betas[-1]), betas.numel(), dtype=torch.float64)
    return betas.numel() >= 2 and bool(torch.allclose(betas, linear, rtol=1e-9, atol=1e-12))

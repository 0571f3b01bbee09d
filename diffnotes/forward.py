r"""The forward (noising) process and the conversions between parameterisations.

Every function takes the schedule coefficients it needs (``beta_t``, ``alpha_bar_t``, ...) as
scalars or per-sample tensors of shape ``[B]``, so it is one equation with no hidden state.
Pick them from a :class:`~diffnotes.schedules.Schedule` with ``schedule.at(t, like=x)``.

Chapters 1 (forward process) and 2 (DDPM).
"""
from __future__ import annotations

import torch

from ._checks import check_range, check_same_shape
from ._util import append_dims, randn_like

__all__ = [
    "q_step",
    "q_sample",
    "q_mean_std",
    "posterior_mean_coefs",
    "posterior_mean",
    "posterior_variance",
    "x0_from_eps",
    "eps_from_x0",
    "score_from_eps",
    "eps_from_score",
    "v_from_eps",
    "eps_from_v",
    "x0_from_v",
]


def _noise(x, eps, generator):
    if eps is None:
        return randn_like(x, generator)
    check_same_shape("eps", eps, "x", x)
    return eps


def _posterior_args(alpha_bar_t, alpha_bar_prev, beta_t):
    """Validate the posterior's coefficients and return them as tensors (float64 for numbers)."""
    check_range("alpha_bar_t", alpha_bar_t, 0.0, 1.0, high_open=True)
    check_range("alpha_bar_prev", alpha_bar_prev, 0.0, 1.0)
    check_range("beta_t", beta_t, 0.0, 1.0)
    return tuple(v if isinstance(v, torch.Tensor) else torch.as_tensor(v, dtype=torch.float64)
                 for v in (alpha_bar_t, alpha_bar_prev, beta_t))


def q_step(x_prev: torch.Tensor, beta_t, *, eps=None, generator=None) -> torch.Tensor:
    r"""One forward step, a draw from :math:`q(x_t \mid x_{t-1})`.

    .. math:: x_t = \sqrt{1-\beta_t}\,x_{t-1} + \sqrt{\beta_t}\,\epsilon

    Ho et al. 2020, eq. 2. Chapter 1.
    """
    check_range("beta_t", beta_t, 0.0, 1.0)
    eps = _noise(x_prev, eps, generator)
    b = append_dims(beta_t, x_prev)
    return torch.sqrt(1 - b) * x_prev + torch.sqrt(b) * eps


def q_sample(x_0: torch.Tensor, alpha_bar_t, *, eps=None, generator=None) -> torch.Tensor:
    r"""A draw from the marginal :math:`q(x_t \mid x_0)` (the reparameterisation trick).

    .. math:: x_t = \sqrt{\bar\alpha_t}\,x_0 + \sqrt{1-\bar\alpha_t}\,\epsilon

    Ho et al. 2020, eq. 4. Chapter 1.
    """
    check_range("alpha_bar_t", alpha_bar_t, 0.0, 1.0)
    eps = _noise(x_0, eps, generator)
    ab = append_dims(alpha_bar_t, x_0)
    return torch.sqrt(ab) * x_0 + torch.sqrt(1 - ab) * eps


def q_mean_std(x_0: torch.Tensor, alpha_bar_t):
    r"""Mean and standard deviation of :math:`q(x_t \mid x_0)`:
    :math:`(\sqrt{\bar\alpha_t}x_0,\ \sqrt{1-\bar\alpha_t})`. Ho et al. 2020, eq. 4."""
    check_range("alpha_bar_t", alpha_bar_t, 0.0, 1.0)
    ab = append_dims(alpha_bar_t, x_0)
    return torch.sqrt(ab) * x_0, torch.sqrt(1 - ab)


def posterior_mean_coefs(alpha_bar_t, alpha_bar_prev, beta_t):
    r"""Coefficients of :math:`\tilde\mu_t(x_t, x_0) = c_0 x_0 + c_t x_t`.

    .. math::
        c_0 = \frac{\sqrt{\bar\alpha_{t-1}}\,\beta_t}{1-\bar\alpha_t},\qquad
        c_t = \frac{\sqrt{\alpha_t}\,(1-\bar\alpha_{t-1})}{1-\bar\alpha_t}

    Ho et al. 2020, eq. 7. Chapter 2. Works for a respaced step too when ``beta_t`` is
    :math:`1-\bar\alpha_t/\bar\alpha_{t-1}`. Returns tensors (float64 when given floats).
    """
    ab, abp, b = _posterior_args(alpha_bar_t, alpha_bar_prev, beta_t)
    c0 = torch.sqrt(abp) * b / (1 - ab)
    ct = torch.sqrt(1 - b) * (1 - abp) / (1 - ab)
    return c0, ct


def posterior_mean(x_0, x_t, alpha_bar_t, alpha_bar_prev, beta_t) -> torch.Tensor:
    r"""Mean of the posterior :math:`q(x_{t-1} \mid x_t, x_0)`, Ho et al. 2020, eq. 7.

    .. math:: \tilde\mu_t = \frac{\sqrt{\bar\alpha_{t-1}}\beta_t}{1-\bar\alpha_t}x_0
              + \frac{\sqrt{\alpha_t}(1-\bar\alpha_{t-1})}{1-\bar\alpha_t}x_t
    """
    check_same_shape("x_0", x_0, "x_t", x_t)
    c0, ct = posterior_mean_coefs(alpha_bar_t, alpha_bar_prev, beta_t)
    return append_dims(c0, x_t) * x_0 + append_dims(ct, x_t) * x_t


def posterior_variance(alpha_bar_t, alpha_bar_prev, beta_t) -> torch.Tensor:
    r"""Variance of the posterior, :math:`\tilde\beta_t = \frac{1-\bar\alpha_{t-1}}{1-\bar\alpha_t}\beta_t`.

    Ho et al. 2020, eq. 7. Chapter 2.
    """
    ab, abp, b = _posterior_args(alpha_bar_t, alpha_bar_prev, beta_t)
    return (1 - abp) / (1 - ab) * b


def x0_from_eps(x_t, eps, alpha_bar_t) -> torch.Tensor:
    r"""Predicted clean sample from predicted noise (inverting eq. 4 of Ho et al. 2020).

    .. math:: \hat x_0 = \frac{x_t - \sqrt{1-\bar\alpha_t}\,\hat\epsilon}{\sqrt{\bar\alpha_t}}

    Chapter 2; DDIM's "predicted x_0" (Song et al. 2021, eq. 9).
    """
    check_range("alpha_bar_t", alpha_bar_t, 0.0, 1.0, low_open=True)
    check_same_shape("eps", eps, "x_t", x_t)
    ab = append_dims(alpha_bar_t, x_t)
    return (x_t - torch.sqrt(1 - ab) * eps) / torch.sqrt(ab)


def eps_from_x0(x_t, x_0, alpha_bar_t) -> torch.Tensor:
    r"""Noise implied by a clean sample: :math:`\epsilon = (x_t - \sqrt{\bar\alpha_t}x_0)/\sqrt{1-\bar\alpha_t}`.

    Ho et al. 2020, eq. 4 solved for epsilon. Chapter 2.
    """
    check_range("alpha_bar_t", alpha_bar_t, 0.0, 1.0, high_open=True)
    check_same_shape("x_0", x_0, "x_t", x_t)
    ab = append_dims(alpha_bar_t, x_t)
    return (x_t - torch.sqrt(ab) * x_0) / torch.sqrt(1 - ab)


def score_from_eps(eps, alpha_bar_t) -> torch.Tensor:
    r"""Score of :math:`q(x_t)` from the noise prediction (Tweedie / DSM).

    .. math:: \nabla_{x_t}\log q(x_t) = -\frac{\hat\epsilon}{\sqrt{1-\bar\alpha_t}}

    Song et al. 2021 (score SDE), eq. 7 with the VP marginal; chapter 2 and 5.
    """
    check_range("alpha_bar_t", alpha_bar_t, 0.0, 1.0, high_open=True)
    return -eps / torch.sqrt(1 - append_dims(alpha_bar_t, eps))


def eps_from_score(score, alpha_bar_t) -> torch.Tensor:
    r"""Noise prediction from a score, the inverse of :func:`score_from_eps`.

    .. math:: \hat\epsilon = -\sqrt{1-\bar\alpha_t}\,\nabla_{x_t}\log q(x_t)

    Song et al. 2021 (score SDE), eq. 7 with the VP marginal. Chapter 5.
    """
    check_range("alpha_bar_t", alpha_bar_t, 0.0, 1.0)
    return -torch.sqrt(1 - append_dims(alpha_bar_t, score)) * score


def v_from_eps(x_0, eps, alpha_bar_t) -> torch.Tensor:
    r"""The velocity target :math:`v = \sqrt{\bar\alpha_t}\,\epsilon - \sqrt{1-\bar\alpha_t}\,x_0`.

    Salimans & Ho 2022, sec. 4. Chapter 2.
    """
    check_range("alpha_bar_t", alpha_bar_t, 0.0, 1.0)
    check_same_shape("eps", eps, "x_0", x_0)
    ab = append_dims(alpha_bar_t, x_0)
    return torch.sqrt(ab) * eps - torch.sqrt(1 - ab) * x_0


def eps_from_v(x_t, v, alpha_bar_t) -> torch.Tensor:
    r"""Noise from a velocity prediction.

    .. math:: \epsilon = \sqrt{1-\bar\alpha_t}\,x_t + \sqrt{\bar\alpha_t}\,v

    Salimans & Ho 2022, sec. 4. Chapter 2.
    """
    check_range("alpha_bar_t", alpha_bar_t, 0.0, 1.0)
    check_same_shape("v", v, "x_t", x_t)
    ab = append_dims(alpha_bar_t, x_t)
    return torch.sqrt(1 - ab) * x_t + torch.sqrt(ab) * v


def x0_from_v(x_t, v, alpha_bar_t) -> torch.Tensor:
    r"""Clean sample from a velocity prediction.

    .. math:: x_0 = \sqrt{\bar\alpha_t}\,x_t - \sqrt{1-\bar\alpha_t}\,v

    Salimans & Ho 2022, sec. 4. Chapter 2.
    """
    check_range("alpha_bar_t", alpha_bar_t, 0.0, 1.0)
    check_same_shape("v", v, "x_t", x_t)
    ab = append_dims(alpha_bar_t, x_t)
    return torch.sqrt(ab) * x_t - torch.sqrt(1 - ab) * v

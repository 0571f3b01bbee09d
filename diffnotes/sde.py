r"""Score-based generative modelling in continuous time: forward SDEs, their reversals, samplers.

A forward SDE :math:`dx = f(t)\,x\,dt + g(t)\,dw` with a drift linear in ``x`` has a Gaussian
transition kernel, so its marginal given the data is

.. math:: x_t = m(t)\,x_0 + s(t)\,z,\qquad z\sim N(0, I),

with ``mean_coef`` :math:`m(t) = \exp\int_0^t f` and ``std`` :math:`s(t)` solving the moment ODE
:math:`\tfrac{d}{dt}s^2 = 2f s^2 + g^2`. Every SDE here exposes ``drift``, ``diffusion`` and
``marginal_coefs(t) -> (mean_coef, std)`` in closed form.

Given the score :math:`\nabla_x\log p_t`, the same marginals are produced backwards in time by the
reverse SDE (:func:`reverse_drift`) and by the deterministic probability-flow ODE
(:func:`probability_flow_drift`). The samplers integrate them from ``t = T`` down to a small
``t_end > 0`` (the score of the data itself is not needed, and for a finite data set not defined).

Notation (Song et al. 2021b, "Score-Based Generative Modeling through Stochastic Differential
Equations", ICLR 2021):

=====================  ==============================================================
code                   symbol
=====================  ==============================================================
``beta(t)``            :math:`\beta(t)`, VP / sub-VP noise rate
``sigma(t)``           :math:`\sigma(t)`, VE noise level
``drift_coef(t)``      :math:`f(t)` with :math:`f(x, t) = f(t)\,x`
``diffusion(t)``       :math:`g(t)`
``marginal_coefs(t)``  :math:`(m(t), s(t))` of :math:`p_{0t}(x_t\mid x_0) = N(m x_0, s^2 I)`
``score``              :math:`s_\theta(x, t) \approx \nabla_x \log p_t(x)`
``timesteps``          decreasing float times :math:`T = t_0 > t_1 > \dots > t_N = t_{\rm end} > 0`
=====================  ==============================================================

A continuous-time model is ``score_model(x_t, t) -> score`` where ``t`` is a float tensor of shape
``[B]`` with ``x_t``'s dtype and device. :func:`eps_model_as_score` turns a discrete DDPM
noise-prediction network into one. Continuous-time denoising score matching and SMLD's annealed
Langevin sampler live in :mod:`diffnotes.score_matching`. Chapter 5.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch

from ._checks import show_value, check_batch, check_finite, check_int, check_range
from ._util import append_dims, call_at_time, randn_like, steps
from .samplers import StepResult

__all__ = [
    "VPSDE",
    "SubVPSDE",
    "VESDE",
    "reverse_drift",
    "probability_flow_drift",
    "time_grid",
    "sample_euler_maruyama",
    "sample_pc",
    "sample_ode_euler",
    "sample_ode_heun",
    "sample_ode_adaptive",
    "eps_model_as_score",
]

_ODE_METHODS = ("RK45", "RK23", "DOP853", "Radau", "BDF", "LSODA")


# ---------------------------------------------------------------------------------------------
# The three SDEs
# ---------------------------------------------------------------------------------------------
class _LinearSDE:
    """Shared machinery of SDEs with drift :math:`f(t)x` (not public; subclasses are dataclasses).

    Subclasses provide ``T``, ``drift_coef``, ``diffusion``, ``marginal_coefs`` and ``prior_std``.
    All coefficient methods take ``t`` as a float, a 0-d tensor or a tensor ``[B]`` in [0, T] and
    return float64 tensors of ``t``'s shape on ``t``'s device; ``append_dims`` casts them to the
    data's dtype at the point of use.
    """

    T: float

    def _t(self, t) -> torch.Tensor:
        """``t`` as a float64 tensor, checked to lie in [0, T]."""
        if isinstance(t, torch.Tensor):
            t = t.detach().to(torch.float64)
        else:
            t = torch.as_tensor(t, dtype=torch.float64)
        check_range("t", t, 0.0, self.T)
        return t

    def drift(self, x: torch.Tensor, t) -> torch.Tensor:
        r"""Drift of the forward SDE, :math:`f(x, t) = f(t)\,x`.

        Song et al. 2021b, eq. 5 (and eqs. 9, 11 for the VE, VP, sub-VP instances). Chapter 5.
        """
        return append_dims(self.drift_coef(t), x) * x

    def transition_coefs(self, s, t):
        r"""Mean factor and std of the exact transition kernel :math:`p(x_t \mid x_s)`, ``s < t``.

        .. math:: x_t = \frac{m(t)}{m(s)}\,x_s + \sqrt{s(t)^2 - \Big(\frac{m(t)}{m(s)}\Big)^2 s(s)^2}\;z

        (the marginal of a linear SDE composes: noise added up to ``s`` is scaled by
        :math:`m(t)/m(s)`, the rest is fresh). For VP this is DDPM's step
        :math:`(\sqrt{1-\beta_i}, \sqrt{\beta_i})`; for VE it is SMLD's
        :math:`(1, \sqrt{\sigma_t^2 - \sigma_s^2})` (Song et al. 2021b, appendix B). Chapter 5.
        """
        s_, t_ = self._t(s), self._t(t)
        if bool((s_ > t_).any()):
            raise ValueError(f"transition_coefs needs s <= t, got s={show_value(s_)} and t={show_value(t_)}")
        m_s, std_s = self.marginal_coefs(s_)
        m_t, std_t = self.marginal_coefs(t_)
        ratio = m_t / m_s
        var = std_t**2 - ratio**2 * std_s**2
        return ratio, torch.sqrt(var)

    def prior_sample(self, shape, *, generator=None, dtype=torch.float32, device="cpu") -> torch.Tensor:
        r"""A draw from the prior :math:`p_T \approx N(0, \sigma_T^2 I)` with :math:`\sigma_T` = ``prior_std``.

        Song et al. 2021b, sec. 3.4 (VP, sub-VP: :math:`N(0, I)`; VE: :math:`N(0, \sigma_{\max}^2 I)`).
        """
        like = torch.empty(tuple(shape), dtype=dtype, device=device)
        return self.prior_std * randn_like(like, generator)


@dataclass(frozen=True)
class _BetaSDE(_LinearSDE):
    """Fields and the linear :math:`\\beta(t)` shared by :class:`VPSDE` and :class:`SubVPSDE`."""

    beta_min: float = 0.1
    beta_max: float = 20.0
    T: float = 1.0

    def __post_init__(self):
        check_range("beta_min", self.beta_min, 0.0, None, low_open=True)
        check_range("beta_max", self.beta_max, 0.0, None, low_open=True)
        check_range("T", self.T, 0.0, None, low_open=True)

    def beta(self, t) -> torch.Tensor:
        r""":math:`\beta(t) = \beta_{\min} + \tfrac{t}{T}(\beta_{\max}-\beta_{\min})` (Song et al. 2021b, appendix B)."""
        t = self._t(t)
        return self.beta_min + t / self.T * (self.beta_max - self.beta_min)

    def integrated_beta(self, t) -> torch.Tensor:
        r""":math:`B(t) = \int_0^t \beta(s)\,ds = \beta_{\min}t + \tfrac{t^2}{2T}(\beta_{\max}-\beta_{\min})`."""
        t = self._t(t)
        return self.beta_min * t + 0.5 * t**2 / self.T * (self.beta_max - self.beta_min)

    def drift_coef(self, t) -> torch.Tensor:
        r""":math:`f(t) = -\tfrac12\beta(t)` (Song et al. 2021b, eqs. 11 and 12)."""
        return -0.5 * self.beta(t)

    @property
    def prior_std(self) -> float:
        """Std of the prior :math:`N(0, I)`: 1."""
        return 1.0


@dataclass(frozen=True)
class VPSDE(_BetaSDE):
    r"""Variance-preserving SDE, the continuous limit of DDPM.

    .. math:: dx = -\tfrac12\beta(t)\,x\,dt + \sqrt{\beta(t)}\,dw,\qquad
              \beta(t) = \beta_{\min} + \tfrac{t}{T}(\beta_{\max} - \beta_{\min})

    Song et al. 2021b, eq. 11 and appendix B. With :math:`\beta_{\min}=0.1, \beta_{\max}=20`
    and ``T=1`` it is the limit of the DDPM linear schedule (1e-4..0.02, 1000 steps), since
    :math:`\beta_i = \beta(i/N)/N`. Chapter 5.
    """

    def diffusion(self, t) -> torch.Tensor:
        r""":math:`g(t) = \sqrt{\beta(t)}` (Song et al. 2021b, eq. 11)."""
        return torch.sqrt(self.beta(t))

    def marginal_coefs(self, t):
        r"""Mean coefficient and std of :math:`p_{0t}(x_t \mid x_0)`.

        .. math:: m(t) = e^{-\frac12 B(t)},\qquad s(t) = \sqrt{1 - e^{-B(t)}}

        Song et al. 2021b, appendix B (eq. 29); :math:`m^2` is DDPM's :math:`\bar\alpha`. Chapter 5.
        """
        B = self.integrated_beta(t)
        return torch.exp(-0.5 * B), torch.sqrt(-torch.expm1(-B))


@dataclass(frozen=True)
class SubVPSDE(_BetaSDE):
    r"""Sub-variance-preserving SDE: the VP drift with a smaller diffusion.

    .. math:: dx = -\tfrac12\beta(t)\,x\,dt + \sqrt{\beta(t)\big(1 - e^{-2\int_0^t\beta(s)ds}\big)}\,dw

    Its marginal variance :math:`(1-e^{-B})^2` is never above the VP one :math:`1-e^{-B}`.
    Song et al. 2021b, eq. 12. Note the factor is :math:`1 - e^{-2B}`: the form
    :math:`1 - 2e^{-B}` would be negative for small t. Chapter 5.
    """

    def diffusion(self, t) -> torch.Tensor:
        r""":math:`g(t) = \sqrt{\beta(t)(1 - e^{-2B(t)})}` (Song et al. 2021b, eq. 12)."""
        return torch.sqrt(self.beta(t) * -torch.expm1(-2.0 * self.integrated_beta(t)))

    def marginal_coefs(self, t):
        r"""Mean coefficient and std of :math:`p_{0t}(x_t \mid x_0)`.

        .. math:: m(t) = e^{-\frac12 B(t)},\qquad s(t) = 1 - e^{-B(t)}

        Song et al. 2021b, appendix B (eq. 29). Chapter 5.
        """
        B = self.integrated_beta(t)
        return torch.exp(-0.5 * B), -torch.expm1(-B)


@dataclass(frozen=True)
class VESDE(_LinearSDE):
    r"""Variance-exploding SDE, the continuous limit of SMLD / NCSN.

    .. math:: dx = \sigma(t)\sqrt{\tfrac{2}{T}\log\tfrac{\sigma_{\max}}{\sigma_{\min}}}\,dw,\qquad
              \sigma(t) = \sigma_{\min}\Big(\tfrac{\sigma_{\max}}{\sigma_{\min}}\Big)^{t/T}

    Song et al. 2021b, eq. 9 and appendix C (``T=1``). Chapter 5.
    """

    sigma_min: float = 0.01
    sigma_max: float = 50.0
    T: float = 1.0

    def __post_init__(self):
        check_range("sigma_min", self.sigma_min, 0.0, None, low_open=True)
        check_range("sigma_max", self.sigma_max, self.sigma_min, None, low_open=True)
        check_range("T", self.T, 0.0, None, low_open=True)

    @property
    def _log_ratio(self) -> float:
        return math.log(self.sigma_max / self.sigma_min)

    def sigma(self, t) -> torch.Tensor:
        r""":math:`\sigma(t) = \sigma_{\min}(\sigma_{\max}/\sigma_{\min})^{t/T}` (Song et al. 2021b, appendix C)."""
        t = self._t(t)
        return self.sigma_min * torch.exp(t / self.T * self._log_ratio)

    def drift_coef(self, t) -> torch.Tensor:
        r""":math:`f(t) = 0` (Song et al. 2021b, eq. 9)."""
        return torch.zeros_like(self._t(t))

    def diffusion(self, t) -> torch.Tensor:
        r""":math:`g(t) = \sqrt{d\sigma^2/dt} = \sigma(t)\sqrt{2\log(\sigma_{\max}/\sigma_{\min})/T}`
        (Song et al. 2021b, eq. 9)."""
        return self.sigma(t) * math.sqrt(2.0 * self._log_ratio / self.T)

    def marginal_coefs(self, t):
        r"""Mean coefficient and std of :math:`p_{0t}(x_t \mid x_0)`.

        .. math:: m(t) = 1,\qquad s(t) = \sqrt{\sigma(t)^2 - \sigma(0)^2}

        This is the exact solution started at :math:`x(0) = x_0` (Song et al. 2021b, appendix B, eq. 29), so
        :math:`s(0)=0`. The reference code uses :math:`s(t)=\sigma(t)`, i.e. it treats the data as
        already perturbed by :math:`\sigma_{\min}`; the two differ only for :math:`\sigma(t)` close
        to :math:`\sigma_{\min}`. Chapter 5.
        """
        t = self._t(t)
        std = self.sigma_min * torch.sqrt(torch.expm1(2.0 * t / self.T * self._log_ratio))
        return torch.ones_like(t), std

    @property
    def prior_std(self) -> float:
        r"""Std of the prior :math:`N(0, \sigma_{\max}^2 I)`: ``sigma_max``."""
        return float(self.sigma_max)


# ---------------------------------------------------------------------------------------------
# Reverse-time dynamics
# ---------------------------------------------------------------------------------------------
def reverse_drift(sde, x: torch.Tensor, t, score: torch.Tensor) -> torch.Tensor:
    r"""Drift of the reverse-time SDE, run with negative time steps.

    .. math:: dx = \big[f(x, t) - g(t)^2\,\nabla_x\log p_t(x)\big]\,dt + g(t)\,d\bar w

    Song et al. 2021b, eq. 6 (Anderson 1982). Chapter 5.
    """
    g = sde.diffusion(t)
    return sde.drift(x, t) - append_dims(g**2, x) * score


def probability_flow_drift(sde, x: torch.Tensor, t, score: torch.Tensor) -> torch.Tensor:
    r"""Velocity of the probability-flow ODE, whose solutions have the SDE's marginals :math:`p_t`.

    .. math:: \frac{dx}{dt} = f(x, t) - \tfrac12 g(t)^2\,\nabla_x\log p_t(x)

    Song et al. 2021b, eq. 13. Chapter 5.
    """
    g = sde.diffusion(t)
    return sde.drift(x, t) - 0.5 * append_dims(g**2, x) * score


def time_grid(n: int, t_start: float = 1.0, t_end: float = 1e-3) -> torch.Tensor:
    r"""``n + 1`` evenly spaced, decreasing times from ``t_start`` to ``t_end`` (float64).

    :math:`t_i = t_{\rm start} + \tfrac{i}{n}(t_{\rm end} - t_{\rm start})`, i = 0..n: the grid of
    Song et al. 2021b, appendix G (``t_end = 1e-3`` for VP, 1e-5 for VE there). Chapter 5.
    """
    n = check_int("n", n, 1)
    check_range("t_end", t_end, 0.0, None, low_open=True)
    check_range("t_start", t_start, t_end, None, low_open=True)
    return torch.linspace(float(t_start), float(t_end), n + 1, dtype=torch.float64)


# ---------------------------------------------------------------------------------------------
# Sampler helpers
# ---------------------------------------------------------------------------------------------
def _check_times(timesteps, sde, name: str = "timesteps") -> torch.Tensor:
    """A sampler's time grid as a float64 CPU tensor: >= 2 points, strictly decreasing, in (0, T]."""
    ts = torch.as_tensor(timesteps, dtype=torch.float64).detach().cpu()
    if ts.ndim != 1 or ts.numel() < 2:
        raise ValueError(
            f"{name} must be a 1-D sequence of at least 2 times (start and end), got {show_value(ts)}"
        )
    check_finite(name, ts)
    if not bool((ts[1:] < ts[:-1]).all()):
        raise ValueError(
            f"{name} must be strictly decreasing (a sampler runs from noise at t=T to data), got {show_value(ts)}"
        )
    if float(ts[-1]) <= 0.0 or float(ts[0]) > sde.T:
        raise ValueError(f"{name} must lie in (0, {sde.T}] for an SDE with T={sde.T}, got {show_value(ts)}")
    return ts


def _x0_hat(sde, x: torch.Tensor, t: float, score: torch.Tensor) -> torch.Tensor:
    r"""Tweedie's denoised estimate :math:`\hat x_0 = (x_t + s(t)^2\,\mathrm{score})/m(t)`."""
    m, s = sde.marginal_coefs(t)
    return (x + append_dims(s**2, x) * score) / append_dims(m, x)


def _emit(callback, sde, i, t, t_next, x, score, x_next):
    if callback is not None:
        callback(StepResult(i=i, t=float(t), t_next=float(t_next), x=x, x_next=x_next,
                            x0_hat=_x0_hat(sde, x, t, score), score=score))


# ---------------------------------------------------------------------------------------------
# Stochastic samplers
# ---------------------------------------------------------------------------------------------
def sample_euler_maruyama(model, x, timesteps, *, sde, generator=None, callback=None, progress=False):
    r"""Sample by integrating the reverse SDE with the Euler-Maruyama scheme.

    With :math:`\Delta t = t_{i+1} - t_i < 0`:

    .. math:: x_{i+1} = x_i + \big[f(x_i, t_i) - g(t_i)^2 s_\theta(x_i, t_i)\big]\Delta t
              + g(t_i)\sqrt{-\Delta t}\;z_i

    Song et al. 2021b, eq. 6 and sec. 4.2. Noise is added at every step, the last one included,
    so the result is a draw from (approximately) :math:`p_{t_{\rm end}}`; the callback's ``x0_hat``
    is its Tweedie-denoised version. Chapter 5.

    Parameters
    ----------
    model : callable
        ``model(x_t, t) -> score``, ``t`` a float tensor ``[B]`` with ``x``'s dtype and device.
    x : torch.Tensor, shape [B, ...]
        The starting point at ``timesteps[0]``, e.g. ``sde.prior_sample(...)``.
    timesteps : sequence of float
        Strictly decreasing times in (0, T], e.g. :func:`time_grid`.
    sde : VPSDE | SubVPSDE | VESDE
    generator : torch.Generator, optional
    callback : callable, optional
        Called after each step with a :class:`diffnotes.samplers.StepResult`: ``x`` at time ``t``
        (before the step), ``x_next`` at ``t_next``, the ``score`` at ``(x, t)`` and ``x0_hat``.
    progress : bool
        Show a tqdm bar.
    """
    check_batch("x", x)
    ts = _check_times(timesteps, sde)
    for i in steps(len(ts) - 1, progress, "Euler-Maruyama"):
        t, t_next = float(ts[i]), float(ts[i + 1])
        score = call_at_time(model, x, t, where=f"step {i} (t={t:.6g})", what="score")
        x_next = _predictor("euler_maruyama", sde, x, t, t_next, score, generator)
        _emit(callback, sde, i, t, t_next, x, score, x_next)
        x = x_next
    return x


def _predictor(kind, sde, x, t, t_next, score, generator):
    """One predictor step from t to t_next < t (score already evaluated at (x, t))."""
    if kind == "euler_maruyama":
        # x + [f - g^2 s] dt + g sqrt(|dt|) z, with dt = t_next - t < 0 (Song et al. 2021b, eq. 6)
        dt = t_next - t
        g = append_dims(sde.diffusion(t), x)
        return x + reverse_drift(sde, x, t, score) * dt + g * math.sqrt(-dt) * randn_like(x, generator)
    # reverse diffusion (Song et al. 2021b, appendix E): undo the forward step t_next -> t,
    # x_t = x_{t_next} + (r - 1) x_{t_next} + G z with (r, G) the exact transition kernel.
    r, G = sde.transition_coefs(t_next, t)
    r, G = append_dims(r, x), append_dims(G, x)
    return x - (r - 1) * x + G**2 * score + G * randn_like(x, generator)


def sample_pc(
    model,
    x,
    timesteps,
    *,
    sde,
    snr=0.16,
    n_corrector=1,
    predictor="reverse_diffusion",
    norm="sample",
    generator=None,
    callback=None,
    progress=False,
):
    r"""Predictor-corrector sampling: a reverse-SDE step, then Langevin MCMC steps at the new time.

    Predictor (``predictor="reverse_diffusion"``, Song et al. 2021b, appendix E) with the forward step
    :math:`x_t = r\,x_{t'} + G z` taken as the exact transition kernel
    (:meth:`transition_coefs`; DDPM's step for VP, SMLD's for VE):

    .. math:: x_{t'} = x_t - (r - 1)x_t + G^2 s_\theta(x_t, t) + G z

    or ``predictor="euler_maruyama"`` (the step of :func:`sample_euler_maruyama`).

    Corrector (Langevin dynamics at time :math:`t'` with a step size set by the target
    signal-to-noise ratio ``snr``; Song et al. 2021b, appendix G, Algorithms 4 and 5):

    .. math:: \epsilon = 2\alpha\Big(\frac{r_{\rm snr}\,\lVert z\rVert_2}{\lVert s_\theta\rVert_2}\Big)^2,
              \qquad x \leftarrow x + \epsilon\,s_\theta(x, t') + \sqrt{2\epsilon}\,z

    where :math:`\alpha = (m(t)/m(t'))^2` is the discrete :math:`\alpha_i = 1-\beta_i` of the step
    just taken (1 for VE). Norms are over all non-batch dimensions.

    ``norm="sample"`` (the default) takes them per sample, as Algorithms 4-5 are written, so a
    sample's trajectory does not depend on the rest of its batch. The step size then depends on
    the state, and Langevin dynamics with a step :math:`h(x)` has stationary density
    :math:`\propto p/h`, here :math:`p\,\lVert s\rVert^2`: for D-dimensional Gaussian data the
    variance grows by a factor of order :math:`(D+2)/D`, negligible for images (D = 3072) but
    large for toy data (for D = 2, :math:`1/\lVert s\rVert^2` even has infinite mean). ``norm="batch"`` averages both
    norms over the batch (as the reference code does), giving every sample the same step: use it
    for low-dimensional data. Either way unadjusted Langevin with this step inflates a Gaussian's
    variance by :math:`1/(1-r_{\rm snr}^2)` (2.6 % at 0.16). Noise is added at every step. Chapter 5.

    Parameters
    ----------
    snr : float
        Target signal-to-noise ratio :math:`r_{\rm snr} > 0` (0.16 for VE on CIFAR-10 in the paper).
    n_corrector : int
        Langevin steps after each predictor step (0 gives the predictor alone).
    predictor : {"reverse_diffusion", "euler_maruyama"}
    norm : {"sample", "batch"}
        How the norms in the step size are taken (see above): "batch" for low-dimensional data.

    Other parameters as :func:`sample_euler_maruyama`. The model is called
    ``(1 + n_corrector)`` times per step; ``callback`` once per step, after the correctors, with the
    predictor's ``score`` at ``(x, t)`` and ``x_next`` after the correctors.
    """
    check_batch("x", x)
    ts = _check_times(timesteps, sde)
    check_range("snr", snr, 0.0, None, low_open=True)
    n_corrector = check_int("n_corrector", n_corrector, 0)
    if predictor not in ("reverse_diffusion", "euler_maruyama"):
        raise ValueError(f"predictor must be 'reverse_diffusion' or 'euler_maruyama', got {predictor!r}")
    if norm not in ("sample", "batch"):
        raise ValueError(f"norm must be 'sample' or 'batch', got {norm!r}")
    for i in steps(len(ts) - 1, progress, "predictor-corrector"):
        t, t_next = float(ts[i]), float(ts[i + 1])
        score = call_at_time(model, x, t, where=f"step {i} (t={t:.6g}), predictor", what="score")
        x_in, score_in = x, score
        x = _predictor(predictor, sde, x, t, t_next, score, generator)
        m_t, _ = sde.marginal_coefs(t)
        m_next, _ = sde.marginal_coefs(t_next)
        alpha = float((m_t / m_next) ** 2)
        for j in range(n_corrector):
            score = call_at_time(model, x, t_next, where=f"step {i} (t={t_next:.6g}), corrector {j}", what="score")
            z = randn_like(x, generator)
            s_norm = score.flatten(1).norm(dim=1)
            z_norm = z.flatten(1).norm(dim=1)
            if norm == "batch":
                s_norm, z_norm = s_norm.mean(), z_norm.mean()
            if bool((s_norm == 0).any()):
                raise ValueError(
                    f"the score is exactly zero for some sample at step {i}, corrector {j}: the "
                    "Langevin step size 2*alpha*(snr*|z|/|score|)^2 is undefined"
                )
            eps = 2.0 * alpha * (snr * z_norm / s_norm) ** 2
            x = x + append_dims(eps, x) * score + append_dims(torch.sqrt(2.0 * eps), x) * z
        _emit(callback, sde, i, t, t_next, x_in, score_in, x)
    return x


# ---------------------------------------------------------------------------------------------
# Probability-flow ODE samplers
# ---------------------------------------------------------------------------------------------
def sample_ode_euler(model, x, timesteps, *, sde, callback=None, progress=False):
    r"""Integrate the probability-flow ODE with Euler's method (deterministic, one NFE per step).

    .. math:: x_{i+1} = x_i + \Big[f(x_i, t_i) - \tfrac12 g(t_i)^2 s_\theta(x_i, t_i)\Big](t_{i+1} - t_i)

    Song et al. 2021b, eq. 13. Chapter 5. Parameters as :func:`sample_euler_maruyama`.
    """
    check_batch("x", x)
    ts = _check_times(timesteps, sde)
    for i in steps(len(ts) - 1, progress, "PF-ODE Euler"):
        t, t_next = float(ts[i]), float(ts[i + 1])
        score = call_at_time(model, x, t, where=f"step {i} (t={t:.6g})", what="score")
        x_next = x + probability_flow_drift(sde, x, t, score) * (t_next - t)
        _emit(callback, sde, i, t, t_next, x, score, x_next)
        x = x_next
    return x


def sample_ode_heun(model, x, timesteps, *, sde, callback=None, progress=False):
    r"""Integrate the probability-flow ODE with Heun's second-order method (two NFE per step).

    With :math:`d(x, t)` the drift of :func:`probability_flow_drift` and :math:`h = t_{i+1}-t_i`:

    .. math:: \tilde x = x_i + h\,d(x_i, t_i),\qquad
              x_{i+1} = x_i + \tfrac{h}{2}\big[d(x_i, t_i) + d(\tilde x, t_{i+1})\big]

    The explicit trapezoidal rule (Heun 1900), as used for diffusion ODEs by Karras et al. 2022,
    Algorithm 1. Every step is a Heun step, since ``t_end > 0`` keeps the score defined at the last
    time. Chapter 5. Parameters as :func:`sample_euler_maruyama`.
    """
    check_batch("x", x)
    ts = _check_times(timesteps, sde)
    for i in steps(len(ts) - 1, progress, "PF-ODE Heun"):
        t, t_next = float(ts[i]), float(ts[i + 1])
        h = t_next - t
        score = call_at_time(model, x, t, where=f"step {i} (t={t:.6g})", what="score")
        d = probability_flow_drift(sde, x, t, score)
        x_euler = x + d * h
        score_next = call_at_time(model, x_euler, t_next, where=f"step {i} (t={t_next:.6g}), Heun correction", what="score")
        d_next = probability_flow_drift(sde, x_euler, t_next, score_next)
        x_next = x + 0.5 * h * (d + d_next)
        _emit(callback, sde, i, t, t_next, x, score, x_next)
        x = x_next
    return x


def sample_ode_adaptive(
    model,
    x,
    timesteps=(1.0, 1e-3),
    *,
    sde,
    rtol=1e-5,
    atol=1e-5,
    method="RK45",
    return_info=False,
    callback=None,
):
    r"""Integrate the probability-flow ODE with an adaptive solver, ``scipy.integrate.solve_ivp``.

    .. math:: \frac{dx}{dt} = f(x, t) - \tfrac12 g(t)^2 s_\theta(x, t),\qquad t: T \to t_{\rm end}

    Song et al. 2021b, sec. 4.3 (they use RK45 with rtol = atol = 1e-5). The whole batch is one
    state vector of the solver (float64), so step sizes are shared and the tolerances apply to
    it as a whole; the model is evaluated in ``x``'s dtype. Chapter 5.

    Parameters
    ----------
    timesteps : sequence of float
        Strictly decreasing times in (0, T]; the solver runs from the first to the last, and the
        intermediate ones are where the solution is reported to ``callback``.
    rtol, atol : float
        Relative and absolute tolerances (> 0) of the solver.
    method : str
        A ``solve_ivp`` method: "RK45", "RK23", "DOP853", "Radau", "BDF" or "LSODA".
    return_info : bool
        If true, return ``(x, info)`` with ``info = {"nfe": model calls by the solver,
        "message", "success", "status", "t": times of accepted steps, "n_steps"}``.
    callback : callable, optional
        Called after the solve for each time in ``timesteps[:-1]`` with a
        :class:`diffnotes.samplers.StepResult` (``x`` the solution at ``t``, ``x_next`` at ``t_next``,
        the ``score`` at ``(x, t)``); these extra model calls are not counted in ``nfe``.
    """
    from scipy.integrate import solve_ivp

    check_batch("x", x)
    ts = _check_times(timesteps, sde)
    check_range("rtol", rtol, 0.0, None, low_open=True)
    check_range("atol", atol, 0.0, None, low_open=True)
    if method not in _ODE_METHODS:
        raise ValueError(f"method must be one of {_ODE_METHODS}, got {method!r}")
    shape, dtype, device = x.shape, x.dtype, x.device
    nfe = 0

    def to_torch(y):
        return torch.from_numpy(np.ascontiguousarray(y)).reshape(shape).to(device=device, dtype=dtype)

    def fun(t, y):
        nonlocal nfe
        xt = to_torch(y)
        score = call_at_time(model, xt, t, where=f"evaluation {nfe} (t={t:.6g}) of the adaptive solver", what="score")
        nfe += 1
        d = probability_flow_drift(sde, xt, t, score)
        return d.reshape(-1).to(device="cpu", dtype=torch.float64).numpy()

    y0 = x.detach().reshape(-1).to(device="cpu", dtype=torch.float64).numpy()
    t_eval = ts.numpy()
    sol = solve_ivp(
        fun, (float(ts[0]), float(ts[-1])), y0, method=method, t_eval=t_eval, rtol=rtol, atol=atol
    )
    if not sol.success:
        raise RuntimeError(f"solve_ivp ({method}) failed after {nfe} model calls: {sol.message}")
    if callback is not None:
        for i in range(len(ts) - 1):
            xi = to_torch(sol.y[:, i])
            score = call_at_time(model, xi, float(ts[i]), where=f"callback {i} (t={float(ts[i]):.6g})", what="score")
            _emit(callback, sde, i, float(ts[i]), float(ts[i + 1]), xi, score, to_torch(sol.y[:, i + 1]))
    out = to_torch(sol.y[:, -1])
    if not return_info:
        return out
    info = {
        "nfe": nfe,
        "message": sol.message,
        "success": bool(sol.success),
        "status": int(sol.status),
        "t": sol.t.copy(),
        "n_steps": int(sol.t.size - 1),
    }
    return out, info


# ---------------------------------------------------------------------------------------------
# Discrete eps-models as continuous score models
# ---------------------------------------------------------------------------------------------
def eps_model_as_score(model, sde, schedule):
    r"""Wrap a discrete noise-prediction model trained on ``schedule`` as a VP score model.

    For a continuous time t the wrapper picks the discrete index whose :math:`\bar\alpha_i` is
    nearest (in log) to the VP SDE's :math:`m(t)^2`, asks ``model`` for
    :math:`\hat\epsilon = \epsilon_\theta(x_t, i)` and returns

    .. math:: s_\theta(x_t, t) = -\frac{\hat\epsilon}{\sqrt{1-\bar\alpha_i}}

    (Song et al. 2021b, appendix B / eq. 7 with the VP marginal; ``forward.score_from_eps``).
    Dividing by the std :math:`\sqrt{1-\bar\alpha_i}` the model was trained for makes the result
    the model's exact score of the noise level it was asked about. Matching :math:`\bar\alpha`
    rather than using :math:`i = \mathrm{round}(t(N-1))` works for any schedule (cosine too); for
    the DDPM linear schedule and ``VPSDE(0.1, 20)`` the two differ by at most one index. A respaced
    schedule's model is called with the parent indices (``schedule.original_t``). Chapter 5.

    Parameters
    ----------
    model : callable
        ``model(x_t, t) -> eps_hat`` with ``t`` a ``LongTensor [B]`` of original indices.
    sde : VPSDE
        Only the VP SDE shares DDPM's marginals :math:`N(\sqrt{\bar\alpha}x_0, (1-\bar\alpha)I)`.
    schedule : diffnotes.schedules.Schedule

    Returns
    -------
    callable
        ``score_model(x_t, t) -> score``, ``t`` a float, 0-d tensor or tensor ``[B]``.
    """
    if type(sde) is not VPSDE:
        raise ValueError(
            f"sde must be a VPSDE (the SDE whose marginals are DDPM's), got {type(sde).__name__}"
        )
    log_ab = torch.log(schedule.alpha_bar)  # decreasing, float64
    neg_log_ab = -log_ab
    std_disc = torch.sqrt(-torch.expm1(log_ab))
    original_t = schedule.original_t

    def score_model(x_t, t):
        t = torch.as_tensor(t, dtype=torch.float64).detach().cpu()
        if t.ndim == 0:
            t = t.expand(x_t.shape[0])
        target = sde.integrated_beta(t)  # -log m(t)^2
        j = torch.searchsorted(neg_log_ab, target).clamp(0, schedule.T - 1)
        j_lo = (j - 1).clamp(0, schedule.T - 1)
        take_lo = (target - neg_log_ab[j_lo]).abs() < (neg_log_ab[j] - target).abs()
        idx = torch.where(take_lo, j_lo, j)
        eps_hat = model(x_t, original_t[idx].to(x_t.device))
        return -eps_hat / append_dims(std_disc[idx].to(x_t.device), eps_hat)

    return score_model


r"""Flow matching and rectified flow on the straight Gaussian path, and its bridge to DDIM.

The conditional path joins a data point :math:`x_0` to a noise draw :math:`\epsilon\sim N(0, I)`
along a straight line,

.. math:: x_t = (1-t)\,x_0 + t\,\epsilon,\qquad t\in[0, 1],

so data sits at ``t = 0`` and noise at ``t = 1`` (the time direction of the diffusion chapters).
Along one line the velocity is the constant :math:`\epsilon - x_0`; the **marginal velocity**
:math:`v(x, t) = E[\epsilon - x_0 \mid x_t = x]` moves the whole law :math:`p_t` and its ODE
:math:`dx/dt = v(x, t)`, run from ``t = 1`` to ``0``, turns noise into data. This is the Gaussian
path with :math:`\alpha_t = 1-t`, :math:`\sigma_t = t`, so :math:`v`, :math:`E[\epsilon\mid x_t]`,
:math:`E[x_0\mid x_t]` and the score are affine in each other (the conversions below).

Notation (code name -> symbol):

==================  ===============================================  =====================================
code                symbol                                           meaning
==================  ===============================================  =====================================
``t``               :math:`t \in [0, 1]`                             flow time: 0 data, 1 noise
``x0``              :math:`x_0`                                      data (or its prediction)
``eps``             :math:`\epsilon`                                 noise (or its prediction)
``v``               :math:`v = \epsilon - x_0`                       velocity (conditional or marginal)
``score``           :math:`\nabla_x\log p_t(x)`                      the score of the noisy marginal
``log_snr``         :math:`\lambda = \log(\alpha_t^2/\sigma_t^2)`    log signal-to-noise ratio
``timesteps``       :math:`1 \ge t_0 > t_1 > \dots > t_N \ge 0`      decreasing flow times of a sampler
==================  ===============================================  =====================================

A velocity model is any callable ``model(x, t) -> v`` with ``t`` a float tensor ``[B]`` in ``x``'s
dtype and device; :func:`velocity_model` makes one from an oracle of :mod:`diffnotes.oracles`.

Sources: Lipman et al. 2023, *Flow Matching for Generative Modeling* (ICLR); Liu, Gong & Liu 2023,
*Flow Straight and Fast: Learning to Generate and Transfer Data with Rectified Flow* (ICLR);
Kingma & Gao 2023, *Understanding Diffusion Objectives as the ELBO with Simple Data Augmentation*
(NeurIPS); Song et al. 2021, *Denoising Diffusion Implicit Models* (ICLR). Chapter 10.
"""
from __future__ import annotations

import torch

from ._checks import show_value, check_batch, check_finite, check_int, check_range, check_same_shape
from ._util import append_dims, call_at_time, randn_like, steps
from .samplers import StepResult

__all__ = [
    "conditional_path",
    "conditional_velocity",
    "sample_path",
    "x0_from_velocity",
    "eps_from_velocity",
    "velocity_from_x0",
    "velocity_from_eps",
    "score_from_velocity",
    "velocity_from_score",
    "marginal_velocity",
    "velocity_model",
    "time_grid",
    "sample_euler",
    "sample_heun",
    "straightness",
    "reflow_pairs",
    "kernel_velocity",
    "flow_time_from_alpha_bar",
    "flow_from_ddim",
    "ddim_from_flow",
    "log_snr",
    "flow_matching_weight",
    "l_simple_weight",
]


# --------------------------------------------------------------------------- helpers
def _t(name, t, x, *, low=0.0, high=1.0, low_open=False, high_open=False) -> torch.Tensor:
    """``t`` checked to lie in the interval, as a coefficient broadcast against ``x``."""
    check_range(name, t, low, high, low_open=low_open, high_open=high_open)
    return append_dims(t, x)


def _pair(name, value, ref_name, ref) -> None:
    check_batch(ref_name, ref, min_ndim=1)
    if not isinstance(value, torch.Tensor):
        raise ValueError(f"{name} must be a torch.Tensor, got {type(value).__name__}")
    check_same_shape(name, value, ref_name, ref)


# --------------------------------------------------------------------------- the conditional path
def conditional_path(x0: torch.Tensor, eps: torch.Tensor, t) -> torch.Tensor:
    r"""A point on the straight path from data to noise, :math:`x_t = (1-t)\,x_0 + t\,\epsilon`.

    Lipman et al. 2023, sec. 4.1 with :math:`\sigma_{\min}=0` (the optimal-transport path); Liu et
    al. 2023 (the linear interpolation :math:`X_t = tX_1 + (1-t)X_0`, their :math:`X_1` our
    noise). Chapter 10.

    Parameters
    ----------
    x0, eps : Tensor [B, ...]
        Data and noise, the same shape.
    t : float or Tensor (scalar or [B]), in [0, 1]
    """
    _pair("eps", eps, "x0", x0)
    tt = _t("t", t, x0)
    return (1 - tt) * x0 + tt * eps


def conditional_velocity(x0: torch.Tensor, eps: torch.Tensor) -> torch.Tensor:
    r"""The velocity of the straight path, :math:`u = \frac{d}{dt}x_t = \epsilon - x_0` (constant in t).

    Lipman et al. 2023, sec. 4.1 with :math:`\sigma_{\min}=0`; the regression target of rectified flow,
    Liu et al. 2023. Chapter 10.
    """
    _pair("eps", eps, "x0", x0)
    return eps - x0


def sample_path(x0: torch.Tensor, t, *, generator=None):
    r"""Draw :math:`\epsilon\sim N(0, I)` and return ``(x_t, eps, u)``: the point
    :math:`x_t = (1-t)x_0 + t\epsilon` and the regression target :math:`u = \epsilon - x_0`.

    One draw of the conditional flow-matching loss :math:`\lVert v_\theta(x_t, t) - u\rVert^2`
    (Lipman et al. 2023, the conditional flow-matching loss and Theorem 2). Chapter 10.
    """
    check_batch("x0", x0, min_ndim=1)
    eps = randn_like(x0, generator)
    return conditional_path(x0, eps, t), eps, conditional_velocity(x0, eps)


# --------------------------------------------------------------------------- conversions
def x0_from_velocity(x_t: torch.Tensor, v: torch.Tensor, t) -> torch.Tensor:
    r"""The data prediction from a velocity, :math:`\hat x_0 = x_t - t\,v`.

    From :math:`x_t = (1-t)x_0 + t\epsilon` and :math:`v = \epsilon - x_0`: :math:`x_t = x_0 + t v`.
    Affine and exact for conditional expectations too (Lipman et al. 2023, sec. 4.1; the
    :math:`\alpha_t = 1-t`, :math:`\sigma_t = t` case of the Gaussian paths of Kingma & Gao 2023). Chapter 10.

    Parameters
    ----------
    x_t, v : Tensor [B, ...], the same shape
    t : float or Tensor (scalar or [B]), in [0, 1]
    """
    _pair("v", v, "x_t", x_t)
    return x_t - _t("t", t, x_t) * v


def eps_from_velocity(x_t: torch.Tensor, v: torch.Tensor, t) -> torch.Tensor:
    r"""The noise prediction from a velocity, :math:`\hat\epsilon = x_t + (1-t)\,v`.

    From :math:`x_t = (1-t)x_0 + t\epsilon` and :math:`x_0 = \epsilon - v`. Lipman et al. 2023,
    sec. 4.1. Chapter 10.
    """
    _pair("v", v, "x_t", x_t)
    return x_t + (1 - _t("t", t, x_t)) * v


def velocity_from_x0(x_t: torch.Tensor, x0: torch.Tensor, t) -> torch.Tensor:
    r"""The velocity from a data prediction, :math:`v = (x_t - \hat x_0)/t`, for ``t`` in (0, 1].

    Inverse of :func:`x0_from_velocity`. Chapter 10.
    """
    _pair("x0", x0, "x_t", x_t)
    return (x_t - x0) / _t("t", t, x_t, low_open=True)


def velocity_from_eps(x_t: torch.Tensor, eps: torch.Tensor, t) -> torch.Tensor:
    r"""The velocity from a noise prediction, :math:`v = (\hat\epsilon - x_t)/(1-t)`, for ``t`` in [0, 1).

    Inverse of :func:`eps_from_velocity`. Chapter 10.
    """
    _pair("eps", eps, "x_t", x_t)
    return (eps - x_t) / (1 - _t("t", t, x_t, high_open=True))


def score_from_velocity(x_t: torch.Tensor, v: torch.Tensor, t) -> torch.Tensor:
    r"""The score from a velocity, :math:`\nabla\log p_t(x_t) = -\dfrac{x_t + (1-t)\,v}{t}`, ``t`` in (0, 1].

    Tweedie's formula for :math:`x_t = \alpha_t x_0 + \sigma_t\epsilon` gives
    :math:`\nabla\log p_t = -E[\epsilon\mid x_t]/\sigma_t` (Vincent 2011; Efron 2011);
    with :math:`\sigma_t = t` and :func:`eps_from_velocity` this is the formula. Chapter 10.
    """
    _pair("v", v, "x_t", x_t)
    tt = _t("t", t, x_t, low_open=True)
    return -(x_t + (1 - tt) * v) / tt


def velocity_from_score(x_t: torch.Tensor, score: torch.Tensor, t) -> torch.Tensor:
    r"""The velocity from a score, :math:`v = -\dfrac{x_t + t\,\nabla\log p_t(x_t)}{1-t}`, ``t`` in [0, 1).

    Inverse of :func:`score_from_velocity` (Lipman et al. 2023, sec. 4.1). Chapter 10.
    """
    _pair("score", score, "x_t", x_t)
    tt = _t("t", t, x_t, high_open=True)
    return -(x_t + tt * score) / (1 - tt)


# --------------------------------------------------------------------------- the exact marginal velocity
def marginal_velocity(oracle, x: torch.Tensor, t) -> torch.Tensor:
    r"""The exact marginal velocity of an oracle's data, :math:`v(x, t) = E[\epsilon - x_0\mid x_t = x]`.

    .. math:: v(x, t) = \frac{x - E[x_0\mid x_t = x]}{t},\qquad
              x_t = (1-t)\,x_0 + t\,\epsilon

    (:func:`velocity_from_x0` applied to the posterior mean). For a
    :class:`~diffnotes.oracles.GaussianMixture` the posterior mean is the responsibility-weighted
    sum of the components' Gaussian posterior means,
    :math:`E[x_0\mid x] = \sum_k p(k\mid x)\,\big(\mu_k + a\Sigma_k(a^2\Sigma_k + s^2I)^{-1}(x - a\mu_k)\big)`
    with :math:`a = 1-t`, :math:`s = t`, so the velocity is in closed form. At ``t = 1`` the noise
    carries no information about :math:`x_0` and :math:`v(x, 1) = x - E[x_0]`.

    Lipman et al. 2023 (the marginal vector field, Theorem 1); Liu et al. 2023 (the rectified velocity).
    Chapter 10.

    Parameters
    ----------
    oracle : diffnotes.oracles.Oracle
        A :class:`Gaussian`, :class:`GaussianMixture` or :class:`PointSet`.
    x : Tensor [B, *oracle.event_shape]
    t : float or Tensor (scalar or [B]), in (0, 1]

    Returns
    -------
    Tensor
        :math:`v(x, t)`, in ``x``'s dtype and device (computed in float64).
    """
    if not hasattr(oracle, "_denoise") or not hasattr(oracle, "_flat"):
        raise ValueError(f"oracle must be a diffnotes.oracles.Oracle, got {type(oracle).__name__}")
    check_batch("x", x, min_ndim=1)
    check_finite("x", x)
    check_range("t", t, 0.0, 1.0, low_open=True)
    xf = oracle._flat(x)
    tt = torch.as_tensor(t, dtype=torch.float64, device=xf.device)
    if tt.ndim == 0:
        tt = tt.expand(xf.shape[0])
    if tt.ndim != 1 or tt.shape[0] not in (1, xf.shape[0]):
        raise ValueError(f"t must be a scalar or have shape [B] with B={xf.shape[0]}, got shape {tuple(tt.shape)}")
    tt = tt.reshape(-1, 1)
    # The oracle's posterior mean for x_t = a x_0 + s eps, with a = 1 - t (0 allowed: then it is E[x_0]).
    x0_hat = oracle._denoise(xf, 1 - tt, tt)
    v = (xf - x0_hat) / tt
    return v.reshape(x.shape).to(x.dtype)


def velocity_model(oracle):
    r"""A velocity model ``model(x, t) -> v`` that returns the oracle's exact :func:`marginal_velocity`.

    ``t`` is a float or a float tensor ``[B]`` in (0, 1]. Chapter 10.
    """
    if not hasattr(oracle, "_denoise"):
        raise ValueError(f"oracle must be a diffnotes.oracles.Oracle, got {type(oracle).__name__}")

    def model(x, t):
        return marginal_velocity(oracle, x, t)

    return model


# --------------------------------------------------------------------------- samplers
def time_grid(n: int, t_start: float = 1.0, t_end: float = 0.0) -> torch.Tensor:
    r"""``n + 1`` evenly spaced, decreasing flow times from ``t_start`` to ``t_end`` (float64).

    :math:`t_i = t_{\rm start} + \tfrac{i}{n}(t_{\rm end} - t_{\rm start})`; the uniform grid of
    Liu et al. 2023 and Lipman et al. 2023, run from noise to data. Chapter 10.
    """
    n = check_int("n", n, 1)
    check_range("t_end", t_end, 0.0, 1.0, high_open=True)
    check_range("t_start", t_start, t_end, 1.0, low_open=True)
    return torch.linspace(float(t_start), float(t_end), n + 1, dtype=torch.float64)


def _check_grid(timesteps) -> torch.Tensor:
    ts = torch.as_tensor(timesteps, dtype=torch.float64).detach().cpu()
    if ts.ndim != 1 or ts.numel() < 2:
        raise ValueError(f"timesteps must be a 1-D sequence of at least 2 times (start and end), got {show_value(ts)}")
    check_finite("timesteps", ts)
    if not bool((ts[1:] < ts[:-1]).all()):
        raise ValueError(f"timesteps must be strictly decreasing (from noise at t=1 to data at t=0), got {show_value(ts)}")
    if float(ts[-1]) < 0.0 or float(ts[0]) > 1.0:
        raise ValueError(f"timesteps must lie in [0, 1], got {show_value(ts)}")
    return ts


def _emit(callback, i, t, t_next, x, v, x_next):
    if callback is not None:
        callback(StepResult(i=i, t=float(t), t_next=float(t_next), x=x, x_next=x_next, x0_hat=x - float(t) * v, v=v))


def sample_euler(model, x, timesteps, *, callback=None, progress=False) -> torch.Tensor:
    r"""Integrate :math:`dx/dt = v(x, t)` from ``timesteps[0]`` down to ``timesteps[-1]`` with Euler's method.

    .. math:: x_{t_{i+1}} = x_{t_i} + (t_{i+1} - t_i)\,v(x_{t_i}, t_i)

    One model call per step; first order, the global error is :math:`O(\max_i |t_{i+1}-t_i|)`.
    Liu et al. 2023 (the Euler sampler of rectified flow). Chapter 10.

    Parameters
    ----------
    model : callable
        ``model(x, t) -> v`` with ``t`` a float tensor [B].
    x : Tensor [B, ...]
        The start, usually noise :math:`x_1 \sim N(0, I)`.
    timesteps : sequence of float
        Strictly decreasing flow times in [0, 1] (e.g. :func:`time_grid`); the velocity is never
        evaluated at the last one, so it may be 0.
    callback : callable, optional
        Called after each step with a :class:`diffnotes.samplers.StepResult`: ``x`` the state at ``t``,
        ``x_next`` at ``t_next``, the velocity ``v`` at ``(x, t)`` and ``x0_hat`` = :math:`x - t\,v`.
    progress : bool
        Show a tqdm progress bar.

    Returns
    -------
    Tensor
        The state at ``timesteps[-1]``, shape of ``x``.
    """
    check_batch("x", x, min_ndim=1)
    check_finite("x", x)
    ts = _check_grid(timesteps)
    for i in steps(len(ts) - 1, progress, "flow Euler"):
        t, t_next = float(ts[i]), float(ts[i + 1])
        v = call_at_time(model, x, t, where=f"step {i} (t={t:.6g})", what="velocity")
        x_next = x + (t_next - t) * v
        _emit(callback, i, t, t_next, x, v, x_next)
        x = x_next
    return x


def sample_heun(model, x, timesteps, *, callback=None, progress=False) -> torch.Tensor:
    r"""Integrate :math:`dx/dt = v(x, t)` with Heun's second-order method.

    With :math:`h = t_{i+1} - t_i`:

    .. math:: \tilde x = x_i + h\,v(x_i, t_i),\qquad
              x_{i+1} = x_i + \tfrac{h}{2}\big[v(x_i, t_i) + v(\tilde x, t_{i+1})\big]

    The step that ends at ``t = 0`` is an Euler step (the velocity of data with a finite support is
    not defined there), as in Karras et al. 2022, Algorithm 1; its local error is still
    :math:`O(h^2)`, so the method stays second order. Two model calls per step (one on the last).
    Heun 1900; Karras et al. 2022, Algorithm 1. Chapter 10. Parameters as :func:`sample_euler`.
    """
    check_batch("x", x, min_ndim=1)
    check_finite("x", x)
    ts = _check_grid(timesteps)
    for i in steps(len(ts) - 1, progress, "flow Heun"):
        t, t_next = float(ts[i]), float(ts[i + 1])
        h = t_next - t
        v = call_at_time(model, x, t, where=f"step {i} (t={t:.6g})", what="velocity")
        x_next = x + h * v
        if t_next > 0:
            v_next = call_at_time(model, x_next, t_next, where=f"step {i} (t={t_next:.6g}), Heun correction", what="velocity")
            x_next = x + 0.5 * h * (v + v_next)
        _emit(callback, i, t, t_next, x, v, x_next)
        x = x_next
    return x


# --------------------------------------------------------------------------- straightness and reflow
def straightness(velocities, timesteps) -> torch.Tensor:
    r"""How far a trajectory is from a straight line: Liu et al.'s
    :math:`S = \int_0^1 \lVert (x_1 - x_0) - v(x_t, t)\rVert^2\,dt`, one number per sample.

    ``velocities[i]`` is :math:`v(x_{t_i}, t_i)` along a trajectory on the grid ``timesteps``
    (what :func:`sample_euler`'s callback gives). The integral is the left Riemann sum with weights
    :math:`\Delta_i = t_i - t_{i+1}`, and :math:`x_1 - x_0` is the same sum of the velocities,
    :math:`\sum_i \Delta_i v_i` (for an Euler trajectory, exactly its start minus its end). Over the
    grid's span :math:`T = t_0 - t_N`, :math:`x_1 - x_0` is replaced by the mean velocity, so
    :math:`S = \sum_i \Delta_i \lVert \bar v - v_i\rVert^2`, :math:`\bar v = \sum_i \Delta_i v_i / T`.
    :math:`S = 0` exactly when the velocity is constant along the path (a straight line at constant
    speed), and then one Euler step is exact.

    Liu et al. 2023 (their straightness of a flow). Chapter 10.

    Parameters
    ----------
    velocities : Tensor [N, B, ...] (or a list of N tensors [B, ...])
    timesteps : sequence of N + 1 strictly decreasing floats in [0, 1]

    Returns
    -------
    Tensor [B]
        Per-sample straightness (average it for :math:`E[S]`).
    """
    if isinstance(velocities, (list, tuple)):
        if not velocities:
            raise ValueError("velocities must hold at least one step, got an empty list")
        velocities = torch.stack(list(velocities))
    if not isinstance(velocities, torch.Tensor) or velocities.ndim < 2:
        raise ValueError(f"velocities must be a tensor [N, B, ...], got {type(velocities).__name__} "
                         f"of shape {tuple(getattr(velocities, 'shape', ()))}")
    ts = _check_grid(timesteps)
    if ts.numel() != velocities.shape[0] + 1:
        raise ValueError(f"timesteps must have N + 1 = {velocities.shape[0] + 1} entries for {velocities.shape[0]} "
                         f"velocities, got {ts.numel()}")
    w = (ts[:-1] - ts[1:]).to(device=velocities.device, dtype=velocities.dtype)
    w = w.reshape(-1, *([1] * (velocities.ndim - 1)))
    mean_v = (w * velocities).sum(0) / w.sum()
    dev = ((velocities - mean_v) ** 2).flatten(2).sum(2)  # [N, B]
    return (w.reshape(-1, 1) * dev).sum(0)


def reflow_pairs(model, x1, timesteps, *, method="heun"):
    r"""The coupling that one reflow step learns from: pairs :math:`(x_0, x_1)` with
    :math:`x_0 = \mathrm{ODE}(x_1)`, the end of the flow of ``model`` started at noise ``x1``.

    A new velocity fitted to the straight interpolation :math:`(1-t)x_0 + t x_1` of these pairs is
    the 1-rectified flow; its paths cross less, so they are straighter (Liu et al. 2023,
    "reflow", and their theorem that it does not increase transport costs). Chapter 10.

    Parameters
    ----------
    model : callable ``model(x, t) -> v``
    x1 : Tensor [B, ...], noise
    timesteps : the grid for the ODE solve (fine, so that :math:`x_0` is the flow's end)
    method : {"heun", "euler"}

    Returns
    -------
    (Tensor, Tensor)
        ``(x0, x1)``.
    """
    solvers = {"heun": sample_heun, "euler": sample_euler}
    if method not in solvers:
        raise ValueError(f"method must be one of {tuple(solvers)}, got {method!r}")
    return solvers[method](model, x1, timesteps), x1


def kernel_velocity(x0: torch.Tensor, x1: torch.Tensor, *, bandwidth: float, chunk: int = 4096):
    r"""A nonparametric velocity fitted to pairs: the Nadaraya-Watson regression of :math:`x_1 - x_0`
    on the interpolated points :math:`x_t^{(j)} = (1-t)x_0^{(j)} + t\,x_1^{(j)}`.

    .. math:: \hat v(x, t) = \frac{\sum_j K_h\big(x - x_t^{(j)}\big)\,\big(x_1^{(j)} - x_0^{(j)}\big)}
                                 {\sum_j K_h\big(x - x_t^{(j)}\big)},\qquad
              K_h(d) = \exp\!\big(-\lVert d\rVert^2 / 2h^2\big)

    It estimates :math:`E[x_1 - x_0\mid x_t = x]`, the velocity that the rectified-flow loss
    :math:`E\lVert v(x_t, t) - (x_1 - x_0)\rVert^2` is minimised by (Liu et al. 2023),
    without training a network: a cheap reflow target on low-dimensional data (Nadaraya 1964,
    Watson 1964). Chapter 10.

    Parameters
    ----------
    x0, x1 : Tensor [M, D], the pairs (data end and noise end)
    bandwidth : float > 0
        The kernel width :math:`h`.
    chunk : int
        Query points per block (memory only).

    Returns
    -------
    callable ``model(x, t) -> v`` with ``t`` a float or a tensor [B] in [0, 1].
    """
    _pair("x1", x1, "x0", x0)
    if x0.ndim != 2 or x0.shape[0] == 0:
        raise ValueError(f"x0 must have shape [M, D] with M >= 1, got {tuple(x0.shape)}")
    check_finite("x0", x0)
    check_finite("x1", x1)
    check_range("bandwidth", bandwidth, 0.0, None, low_open=True)
    chunk = check_int("chunk", chunk, 1)
    p0, p1 = x0.detach().to(torch.float64), x1.detach().to(torch.float64)
    target = p1 - p0
    h2 = float(bandwidth) ** 2

    def model(x, t):
        check_batch("x", x)
        if x.ndim != 2 or x.shape[1] != p0.shape[1]:
            raise ValueError(f"x must have shape [B, {p0.shape[1]}], got {tuple(x.shape)}")
        tt = torch.as_tensor(t, dtype=torch.float64).cpu()
        check_range("t", tt, 0.0, 1.0)
        tt = tt.expand(x.shape[0]) if tt.ndim == 0 else tt
        if tt.ndim != 1 or tt.shape[0] != x.shape[0]:
            raise ValueError(f"t must be a scalar or have shape [B] with B={x.shape[0]}, got shape {tuple(tt.shape)}")
        xq = x.detach().to(device="cpu", dtype=torch.float64)
        out = torch.empty_like(xq)
        for t_val in tt.unique():
            rows = (tt == t_val).nonzero().flatten()
            pts = (1 - t_val) * p0 + t_val * p1  # the interpolated points at this time [M, D]
            for s in range(0, rows.numel(), chunk):
                r = rows[s:s + chunk]
                logits = -torch.cdist(xq[r], pts) ** 2 / (2 * h2)
                out[r] = torch.softmax(logits, dim=1) @ target
        return out.to(dtype=x.dtype, device=x.device)

    return model


# --------------------------------------------------------------------------- the bridge to DDIM
def flow_time_from_alpha_bar(alpha_bar) -> torch.Tensor:
    r"""The flow time at which DDIM's noise level :math:`\bar\alpha` sits,
    :math:`t = \dfrac{\sqrt{1-\bar\alpha}}{\sqrt{\bar\alpha} + \sqrt{1-\bar\alpha}}`.

    Both paths have the same noise-to-signal ratio there:
    :math:`t/(1-t) = \sqrt{1-\bar\alpha}/\sqrt{\bar\alpha}`, the :math:`\bar\sigma` in which DDIM
    is an Euler method (Song et al. 2021, eq. 14). Chapter 10.

    Parameters
    ----------
    alpha_bar : float or Tensor, in (0, 1]
    """
    check_range("alpha_bar", alpha_bar, 0.0, 1.0, low_open=True)
    ab = alpha_bar if isinstance(alpha_bar, torch.Tensor) else torch.as_tensor(alpha_bar, dtype=torch.float64)
    s, n = torch.sqrt(ab), torch.sqrt(1 - ab)
    return n / (s + n)


def flow_from_ddim(x: torch.Tensor, alpha_bar):
    r"""DDIM's state :math:`x` at level :math:`\bar\alpha` as the flow-matching state:
    :math:`x^{\rm FM}_t = x / (\sqrt{\bar\alpha} + \sqrt{1-\bar\alpha})` at :math:`t` =
    :func:`flow_time_from_alpha_bar`. Returns ``(x_fm, t)``.

    Both are :math:`\bar x = x_0 + \bar\sigma\epsilon` rescaled: DDIM's
    :math:`x = \sqrt{\bar\alpha}\,\bar x`, the flow's :math:`x_t = (1-t)\,\bar x`, so the
    deterministic DDIM ODE and :math:`dx/dt = v` are one ODE in :math:`(\bar\sigma, \bar x)`
    (Song et al. 2021, eq. 14; Lipman et al. 2023, sec. 4.1). Chapter 10.

    Parameters
    ----------
    x : Tensor [B, ...]
    alpha_bar : float or Tensor (scalar or [B]), in (0, 1]
    """
    check_batch("x", x, min_ndim=1)
    check_range("alpha_bar", alpha_bar, 0.0, 1.0, low_open=True)
    ab = append_dims(alpha_bar, x)
    return x / (torch.sqrt(ab) + torch.sqrt(1 - ab)), flow_time_from_alpha_bar(alpha_bar)


def ddim_from_flow(x: torch.Tensor, t):
    r"""The inverse of :func:`flow_from_ddim`: the flow state :math:`x_t` as DDIM's state
    :math:`x = x_t/\sqrt{(1-t)^2 + t^2}` at :math:`\bar\alpha = (1-t)^2/((1-t)^2 + t^2)`.
    Returns ``(x_ddim, alpha_bar)``. Chapter 10.

    Parameters
    ----------
    x : Tensor [B, ...]
    t : float or Tensor (scalar or [B]), in [0, 1)
    """
    check_batch("x", x, min_ndim=1)
    check_range("t", t, 0.0, 1.0, high_open=True)
    tt = t if isinstance(t, torch.Tensor) else torch.as_tensor(t, dtype=torch.float64)
    norm2 = (1 - tt) ** 2 + tt**2
    return x / append_dims(torch.sqrt(norm2), x), (1 - tt) ** 2 / norm2


# --------------------------------------------------------------------------- loss weighting
def log_snr(t) -> torch.Tensor:
    r"""The log signal-to-noise ratio of the straight path,
    :math:`\lambda(t) = \log\frac{(1-t)^2}{t^2} = 2\log\frac{1-t}{t}`, for ``t`` in (0, 1).

    Kingma & Gao 2023, sec. 2 (their :math:`\lambda = \log(\alpha^2/\sigma^2)`). Chapter 10.
    """
    check_range("t", t, 0.0, 1.0, low_open=True, high_open=True)
    tt = t if isinstance(t, torch.Tensor) else torch.as_tensor(t, dtype=torch.float64)
    return 2 * torch.log((1 - tt) / tt)


def flow_matching_weight(log_snr) -> torch.Tensor:
    r"""The weighting :math:`w(\lambda) = e^{-\lambda/2}` that the flow-matching loss with
    :math:`t\sim U(0, 1)` puts on the noise prediction error at log-SNR :math:`\lambda`.

    In Kingma & Gao's frame every diffusion loss is
    :math:`\tfrac12\int w(\lambda)\,E\lVert\hat\epsilon - \epsilon\rVert^2\,d\lambda`. For the straight
    path :math:`\lVert\hat v - v\rVert^2 = \lVert\hat\epsilon - \epsilon\rVert^2/(1-t)^2` and
    :math:`dt = \tfrac12 t(1-t)\,d\lambda`, so :math:`w = t/(1-t) = e^{-\lambda/2}`.
    Kingma & Gao 2023 (the weighted loss and their table of weightings). Chapter 10.

    Parameters
    ----------
    log_snr : float or Tensor
    """
    check_finite("log_snr", log_snr)
    lam = log_snr if isinstance(log_snr, torch.Tensor) else torch.as_tensor(log_snr, dtype=torch.float64)
    return torch.exp(-lam / 2)


def l_simple_weight(schedule):
    r"""The weighting :math:`w(\lambda)` that :math:`L_{\rm simple}` (t uniform over a discrete schedule)
    puts on each log-SNR: twice the density of :math:`\lambda` under the uniform index,
    :math:`w(\lambda) = 2\,|dt/d\lambda|`, estimated between neighbouring steps as
    :math:`2 / (T\,|\lambda_{i+1} - \lambda_i|)`.

    :math:`L_{\rm simple} = E_{t}\lVert\hat\epsilon - \epsilon\rVert^2` with :math:`t\sim U`
    weighs the error at each level by how often the level is drawn (Ho et al. 2020, eq. 14;
    Kingma & Gao 2023, sec. 2). For the continuous cosine schedule it is
    :math:`\mathrm{sech}(\lambda/2)/\pi`. Chapter 10.

    Parameters
    ----------
    schedule : diffnotes.schedules.Schedule

    Returns
    -------
    (Tensor, Tensor)
        ``(log_snr, w)`` at the midpoints of neighbouring steps, float64 [T - 1], log-SNR decreasing.
    """
    ab = getattr(schedule, "alpha_bar", None)
    if not isinstance(ab, torch.Tensor) or ab.ndim != 1 or ab.numel() < 2:
        raise ValueError(f"schedule must be a diffnotes Schedule with at least 2 steps, got {type(schedule).__name__}")
    lam = torch.log(ab / (1 - ab)).to(torch.float64)
    mid = (lam[1:] + lam[:-1]) / 2
    w = 2.0 / (ab.numel() * (lam[:-1] - lam[1:]).abs())
    return mid, w


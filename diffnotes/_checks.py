"""Input validation with messages that name the argument, its value and what is allowed."""
from __future__ import annotations

import math

import torch

from ._util import batch_t


def show_value(value) -> str:
    """A value as error messages quote it: a short tensor as its list, a long one by its shape."""
    if isinstance(value, torch.Tensor):
        if value.numel() <= 8:
            return repr(value.tolist())
        return f"tensor of shape {tuple(value.shape)}"
    return repr(value)


def check_finite(name: str, value) -> None:
    """Raise if ``value`` (number or tensor) holds NaN or infinity."""
    if isinstance(value, torch.Tensor):
        if not bool(torch.isfinite(value).all()):
            raise ValueError(f"{name} must be finite, but it contains NaN or inf ({show_value(value)})")
    elif not math.isfinite(float(value)):
        raise ValueError(f"{name} must be finite, got {value!r}")


def check_range(name: str, value, low=None, high=None, *, low_open=False, high_open=False) -> None:
    """Raise unless every element of ``value`` lies in the interval given by low/high.

    ``low_open``/``high_open`` make the corresponding bound strict.
    """
    check_finite(name, value)
    if isinstance(value, torch.Tensor):
        bad = torch.zeros((), dtype=torch.bool)
        if low is not None:
            bad = bad | ((value <= low) if low_open else (value < low)).any()
        if high is not None:
            bad = bad | ((value >= high) if high_open else (value > high)).any()
        bad = bool(bad)
    else:  # a number: plain comparisons (no tensor, so no graph break inside a compiled forward)
        v = float(value)
        bad = ((low is not None and (v <= low if low_open else v < low))
               or (high is not None and (v >= high if high_open else v > high)))
    if bad:
        lb = "(" if (low_open or low is None) else "["
        hb = ")" if (high_open or high is None) else "]"
        lo = "-inf" if low is None else repr(low)
        hi = "inf" if high is None else repr(high)
        raise ValueError(f"{name} must lie in {lb}{lo}, {hi}{hb}, got {show_value(value)}")


def check_int(name: str, value, low=None, high=None) -> int:
    """Return ``value`` as an int, raising unless it is an integer in [low, high]."""
    if isinstance(value, bool) or not float(value).is_integer():
        raise ValueError(f"{name} must be an integer, got {value!r}")
    value = int(value)
    if (low is not None and value < low) or (high is not None and value > high):
        lo = "-inf" if low is None else low
        hi = "inf" if high is None else high
        raise ValueError(f"{name} must be an integer in [{lo}, {hi}], got {value}")
    return value


def check_timesteps(timesteps, T: int, name: str = "timesteps") -> torch.Tensor:
    """Validate a sampler's timestep sequence: 1-D, integer, strictly decreasing, in [0, T-1].

    Returns it as a CPU ``LongTensor``.
    """
    ts = torch.as_tensor(timesteps)
    if ts.ndim != 1 or ts.numel() == 0:
        raise ValueError(f"{name} must be a non-empty 1-D sequence of integers, got {show_value(ts)}")
    if ts.dtype.is_floating_point:
        if not bool((ts == ts.round()).all()):
            raise ValueError(f"{name} must hold integer timestep indices, got {show_value(ts)}")
    ts = ts.to(torch.long).cpu()
    if ts.numel() > 1 and not bool((ts[1:] < ts[:-1]).all()):
        raise ValueError(
            f"{name} must be strictly decreasing (a sampler runs from noise to data), got {show_value(ts)}"
        )
    if int(ts.min()) < 0 or int(ts.max()) > T - 1:
        raise ValueError(f"{name} must lie in [0, {T - 1}] for a schedule with T={T}, got {show_value(ts)}")
    return ts


def check_batch(name: str, x: torch.Tensor, min_ndim: int = 2) -> None:
    """Raise unless ``x`` is a floating tensor with a batch dimension."""
    if not isinstance(x, torch.Tensor):
        raise ValueError(f"{name} must be a torch.Tensor, got {type(x).__name__}")
    if x.ndim < min_ndim:
        raise ValueError(
            f"{name} must have shape [B, ...] with at least {min_ndim} dimensions, got shape {tuple(x.shape)}"
        )
    if not x.dtype.is_floating_point:
        raise ValueError(f"{name} must be a floating-point tensor, got dtype {x.dtype}")


def check_same_shape(name: str, value: torch.Tensor, ref_name: str, ref: torch.Tensor) -> None:
    """Raise unless ``value`` has exactly the shape of ``ref`` (no silent broadcasting)."""
    if tuple(value.shape) != tuple(ref.shape):
        raise ValueError(
            f"{name} must have the shape of {ref_name} {tuple(ref.shape)}, got {tuple(value.shape)}"
        )


def check_choice(name: str, value, allowed) -> None:
    """Raise unless ``value`` is one of ``allowed`` (an option given by name)."""
    if value not in allowed:
        raise ValueError(f"{name} must be one of {', '.join(map(repr, allowed))}; got {value!r}")


def check_t(t, x: torch.Tensor, T: int) -> torch.Tensor:
    """``t`` (int or LongTensor [B]) as a CPU LongTensor [B] with values in [0, T-1]."""
    t = torch.as_tensor(t)
    if t.dtype.is_floating_point or t.dtype == torch.bool:
        raise ValueError(f"t must hold integer timestep indices, got dtype {t.dtype}")
    t = batch_t(t, x).cpu()
    if t.ndim != 1 or t.shape[0] != x.shape[0]:
        raise ValueError(f"t must be an int or a tensor of shape [B] with B={x.shape[0]}, got shape {tuple(t.shape)}")
    if bool((t < 0).any()) or bool((t >= T).any()):
        raise ValueError(f"t must lie in [0, {T - 1}] for a schedule with T={T}, got {show_value(t)}")
    return t


def as_f64(v) -> torch.Tensor:
    """Numbers become float64 tensors; tensors are kept (dtype and device) as they are."""
    return v if isinstance(v, torch.Tensor) else torch.as_tensor(v, dtype=torch.float64)


def check_alpha_bars(alpha_bar_t, alpha_bar_prev) -> None:
    """Raise unless 0 < alpha_bar_t <= alpha_bar_prev <= 1, alpha_bar_t < 1: one sampler step towards less noise."""
    check_range("alpha_bar_t", alpha_bar_t, 0.0, 1.0, low_open=True, high_open=True)
    check_range("alpha_bar_prev", alpha_bar_prev, 0.0, 1.0, low_open=True)
    if bool((as_f64(alpha_bar_t) > as_f64(alpha_bar_prev).to(as_f64(alpha_bar_t).device)).any()):
        raise ValueError(
            "alpha_bar_t must not exceed alpha_bar_prev (a sampler step goes towards less noise), "
            f"got alpha_bar_t={show_value(alpha_bar_t)} and alpha_bar_prev={show_value(alpha_bar_prev)}"
        )


def check_eps(x_t, eps_hat) -> None:
    """Raise unless ``eps_hat`` (a network's prediction) is a tensor of the shape of ``x_t``."""
    if not isinstance(eps_hat, torch.Tensor):
        raise ValueError(f"eps_hat must be a torch.Tensor, got {type(eps_hat).__name__}")
    check_same_shape("eps_hat", eps_hat, "x_t", x_t)


def check_sampler_inputs(x, timesteps, schedule):
    """Validate the common sampler inputs ``x`` and ``timesteps`` (:func:`check_timesteps`);
    return (timesteps, alpha_bar_t, alpha_bar_prev) per step, with alpha_bar_prev = 1 after the last."""
    check_batch("x", x)
    check_finite("x", x)
    ts = check_timesteps(timesteps, schedule.T)
    ab_all = schedule.alpha_bar
    ab = ab_all[ts]
    abp = torch.cat([ab[1:], torch.ones(1, dtype=torch.float64)])
    return ts, ab, abp


def call_model_checked(model, x, t_model: int, i: int, t: int) -> torch.Tensor:
    """Call ``model(x, t_model)`` at step ``i`` (code index ``t``) and check its output: the shape of
    ``x``, finite; returned in ``x``'s dtype."""
    t_batch = torch.full((x.shape[0],), int(t_model), dtype=torch.long, device=x.device)
    eps_hat = model(x, t_batch)
    if not isinstance(eps_hat, torch.Tensor) or eps_hat.shape != x.shape:
        shape = tuple(eps_hat.shape) if isinstance(eps_hat, torch.Tensor) else type(eps_hat).__name__
        raise ValueError(
            f"model output must have the shape of x {tuple(x.shape)}, got {shape} "
            f"at step i={i} (t={t})"
        )
    if not bool(torch.isfinite(eps_hat).all()):
        raise ValueError(f"model output contains NaN or inf at step i={i} (t={t})")
    return eps_hat.to(dtype=x.dtype)


def check_callback(callback) -> None:
    """Raise unless ``callback`` (a sampler's per-step hook) is ``None`` or callable."""
    if callback is not None and not callable(callback):
        raise ValueError(f"callback must be callable, got {type(callback).__name__}")

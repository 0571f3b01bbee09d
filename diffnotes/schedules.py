r"""Noise schedules: the betas of the forward process and everything derived from them.

A :class:`Schedule` stores :math:`\beta_1..\beta_T` in float64 (0-based in code:
``betas[t]`` is the paper's :math:`\beta_{t+1}`) and derives
:math:`\alpha_t = 1-\beta_t`, :math:`\bar\alpha_t = \prod_{s\le t}\alpha_s`, the posterior
variance :math:`\tilde\beta_t` and the signal-to-noise ratio.

Used by chapters 1 (forward process), 3 (DDIM, respacing) and 6 (cosine schedule).
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from ._checks import show_value, check_int, check_range, check_timesteps

__all__ = [
    "Schedule",
    "linear_schedule",
    "cosine_schedule",
    "cosine_alpha_bar",
    "respace",
    "uniform_timesteps",
    "quadratic_timesteps",
    "random_timesteps",
    "make_timesteps",
    "make_schedule",
    "SCHEDULES",
]


@dataclass(frozen=True, eq=False)
class Schedule:
    r"""A discrete forward process :math:`q(x_t \mid x_{t-1}) = N(\sqrt{1-\beta_t}\,x_{t-1}, \beta_t I)`.

    Ho et al. 2020, eq. 2. Chapters 1, 2, 3, 6.

    Parameters
    ----------
    betas : torch.Tensor, shape [T]
        :math:`\beta_t` for each step, each in (0, 1]; stored as float64 on the CPU.
    original_t : torch.Tensor, shape [T], optional
        For a respaced schedule, the index in the parent schedule of each kept step (what a
        model trained on the parent must be told). ``None`` means ``arange(T)``.
    name : str
        A label for plots and widgets.
    """

    betas: torch.Tensor
    original_t: torch.Tensor | None = None
    name: str = "custom"

    def __post_init__(self):
        betas = torch.as_tensor(self.betas, dtype=torch.float64).detach().cpu()
        if betas.ndim != 1 or betas.numel() == 0:
            raise ValueError(f"betas must be a non-empty 1-D sequence, got shape {tuple(betas.shape)}")
        check_range("betas", betas, 0.0, 1.0, low_open=True)
        if bool((1.0 - betas == 1.0).any()):
            # alpha_t would round to exactly 1: alpha_bar stalls and beta_tilde becomes 0/0.
            raise ValueError(
                f"betas must be large enough that 1 - beta < 1 in float64 (beta > 2**-54 ~ 5.6e-17), "
                f"got min(betas)={betas.min().item()!r}"
            )
        object.__setattr__(self, "betas", betas)
        if self.original_t is None:
            object.__setattr__(self, "original_t", torch.arange(betas.numel(), dtype=torch.long))
        else:
            ot = torch.as_tensor(self.original_t, dtype=torch.long).cpu()
            if ot.shape != betas.shape:
                raise ValueError(
                    f"original_t must have the same length as betas ({betas.numel()}), got {ot.numel()}"
                )
            if ot.numel() > 1 and not bool((ot[1:] > ot[:-1]).all()):
                raise ValueError(f"original_t must be strictly increasing, got {show_value(ot)}")
            if int(ot.min()) < 0:
                raise ValueError(f"original_t must hold indices >= 0, got {show_value(ot)}")
            object.__setattr__(self, "original_t", ot)

    # --- derived quantities -------------------------------------------------
    @property
    def T(self) -> int:
        """Number of steps."""
        return self.betas.numel()

    @property
    def alphas(self) -> torch.Tensor:
        r""":math:`\alpha_t = 1 - \beta_t` (Ho et al. 2020, sec. 2)."""
        return 1.0 - self.betas

    @property
    def alpha_bar(self) -> torch.Tensor:
        r""":math:`\bar\alpha_t = \prod_{s=1}^t \alpha_s` (Ho et al. 2020, eq. 4)."""
        return torch.cumprod(self.alphas, dim=0)

    @property
    def alpha_bar_prev(self) -> torch.Tensor:
        r""":math:`\bar\alpha_{t-1}`, with :math:`\bar\alpha_0 = 1` before the first step."""
        return torch.cat([torch.ones(1, dtype=torch.float64), self.alpha_bar[:-1]])

    @property
    def beta_tilde(self) -> torch.Tensor:
        r"""Posterior variance :math:`\tilde\beta_t = \frac{1-\bar\alpha_{t-1}}{1-\bar\alpha_t}\beta_t`
        (Ho et al. 2020, eq. 7). Zero at the first step."""
        return (1.0 - self.alpha_bar_prev) / (1.0 - self.alpha_bar) * self.betas

    @property
    def snr(self) -> torch.Tensor:
        r"""Signal-to-noise ratio :math:`\bar\alpha_t / (1-\bar\alpha_t)` (Kingma et al. 2021, eq. 2)."""
        ab = self.alpha_bar
        return ab / (1.0 - ab)

    @property
    def snr_db(self) -> torch.Tensor:
        """SNR in decibels, :math:`10\\log_{10}` SNR."""
        return 10.0 * torch.log10(self.snr)

    def at(self, t, like: torch.Tensor | None = None) -> dict:
        """All per-step coefficients at index ``t`` (int or LongTensor), as a dict of tensors.

        With ``like`` the values are cast to its dtype and device.
        """
        t = torch.as_tensor(t, dtype=torch.long).cpu()
        if bool((t < 0).any()) or bool((t >= self.T).any()):
            raise ValueError(f"t must lie in [0, {self.T - 1}], got {t.tolist()}")
        out = {
            "beta": self.betas[t],
            "alpha": self.alphas[t],
            "alpha_bar": self.alpha_bar[t],
            "alpha_bar_prev": self.alpha_bar_prev[t],
            "beta_tilde": self.beta_tilde[t],
        }
        if like is not None:
            out = {k: v.to(device=like.device, dtype=like.dtype) for k, v in out.items()}
        return out

    def __repr__(self) -> str:
        return (
            f"Schedule(name={self.name!r}, T={self.T}, beta[0]={self.betas[0].item():.3g}, "
            f"beta[-1]={self.betas[-1].item():.3g}, alpha_bar[-1]={self.alpha_bar[-1].item():.3g})"
        )


def linear_schedule(T: int = 1000, beta_start: float = 1e-4, beta_end: float = 0.02) -> Schedule:
    r"""Linearly spaced betas, :math:`\beta_t` from ``beta_start`` to ``beta_end``.

    .. math:: \beta_t = \beta_1 + \frac{t-1}{T-1}(\beta_T - \beta_1)

    Ho et al. 2020, sec. 4 (T=1000, 1e-4 to 0.02). Chapters 1, 2, 6.
    """
    T = check_int("T", T, 1)
    check_range("beta_start", beta_start, 0.0, 1.0, low_open=True)
    check_range("beta_end", beta_end, 0.0, 1.0, low_open=True)
    betas = torch.linspace(beta_start, beta_end, T, dtype=torch.float64)
    return Schedule(betas, name="linear")


def cosine_alpha_bar(t, T: int, s: float = 0.008) -> torch.Tensor:
    r"""The cosine schedule's :math:`\bar\alpha(t) = f(t)/f(0)` for (real) ``t`` in [0, T].

    .. math:: f(t) = \cos^2\!\left(\frac{t/T + s}{1+s}\cdot\frac{\pi}{2}\right)

    Nichol & Dhariwal 2021, eq. 17. Chapter 6.
    """
    t = torch.as_tensor(t, dtype=torch.float64)
    f = lambda u: torch.cos((u / T + s) / (1 + s) * math.pi / 2) ** 2  # noqa: E731
    return f(t) / f(torch.zeros((), dtype=torch.float64))


def cosine_schedule(T: int = 1000, s: float = 0.008, max_beta: float = 0.999) -> Schedule:
    r"""The cosine schedule: betas from ratios of :func:`cosine_alpha_bar`, clipped at ``max_beta``.

    .. math:: \beta_t = \min\!\left(1 - \frac{\bar\alpha(t)}{\bar\alpha(t-1)},\ 0.999\right)

    The clip keeps :math:`\beta_T < 1` (otherwise :math:`\bar\alpha_T = 0` exactly and the last
    step is singular). Nichol & Dhariwal 2021, sec. 3.2. Chapter 6.
    """
    T = check_int("T", T, 1)
    check_range("s", s, 0.0, None)
    check_range("max_beta", max_beta, 0.0, 1.0, low_open=True)
    ab = cosine_alpha_bar(torch.arange(T + 1, dtype=torch.float64), T, s)
    betas = torch.clamp(1.0 - ab[1:] / ab[:-1], max=max_beta)
    return Schedule(betas, name="cosine")


def respace(schedule: Schedule, timesteps) -> Schedule:
    r"""The schedule that visits only the steps ``timesteps`` of ``schedule``.

    The kept steps keep their :math:`\bar\alpha`; the new betas are ratios of consecutive kept
    values, so that the respaced chain has exactly the parent's marginals at the kept steps:

    .. math:: \beta'_i = 1 - \bar\alpha_{\tau_i} / \bar\alpha_{\tau_{i-1}}, \qquad \bar\alpha_{\tau_0-}=1

    Song et al. 2021 (DDIM), sec. 4.2; Nichol & Dhariwal 2021, sec. 4. Chapter 3.

    Parameters
    ----------
    timesteps : sequence of int
        Indices into ``schedule``; strictly increasing or strictly decreasing (a sampler's
        order). The result is ordered increasingly, like every schedule.
    """
    ts = torch.as_tensor(timesteps).flatten()
    if ts.numel() > 1 and bool((ts[1:] > ts[:-1]).all()):
        ts = ts.flip(0)
    ts = check_timesteps(ts, schedule.T, "timesteps").flip(0)
    ab = schedule.alpha_bar[ts]
    ab_prev = torch.cat([torch.ones(1, dtype=torch.float64), ab[:-1]])
    betas = 1.0 - ab / ab_prev
    return Schedule(betas, original_t=schedule.original_t[ts], name=f"{schedule.name}[{ts.numel()} steps]")


def uniform_timesteps(T: int, S: int) -> torch.Tensor:
    r"""``S`` evenly spaced indices of a ``T``-step schedule, in sampling (decreasing) order.

    :math:`\tau_i = \lfloor iT/S \rfloor`, i = 0..S-1 (the DDIM paper's "linear" selection,
    Song et al. 2021, appendix D.2). Chapter 3.
    """
    T = check_int("T", T, 1)
    S = check_int("S", S, 1, T)
    return (torch.arange(S, dtype=torch.long) * T // S).flip(0)


def quadratic_timesteps(T: int, S: int) -> torch.Tensor:
    r"""``S`` quadratically spaced indices, dense near the data, in decreasing order.

    :math:`\tau_i = \lfloor (i\,\sqrt{0.8T}/(S-1))^2 \rfloor` (Song et al. 2021, appendix D.2,
    used there for CIFAR-10). Raises when ``S`` is so large that two indices coincide.
    """
    T = check_int("T", T, 1)
    S = check_int("S", S, 1, T)
    ts = _quadratic_increasing(T, S)
    if not bool((ts[1:] > ts[:-1]).all()):
        s_max = next(k for k in range(S - 1, 0, -1) if _quadratic_ok(T, k))
        raise ValueError(
            f"S={S} is too many steps for quadratic spacing of T={T} (indices would repeat); "
            f"use at most {s_max} steps or uniform spacing"
        )
    return ts.flip(0)


def random_timesteps(T: int, S: int, *, generator: torch.Generator | None = None) -> torch.Tensor:
    r"""``S`` distinct indices of a ``T``-step schedule drawn at random, in decreasing order.

    DDIM's subsequence :math:`\tau` need not be evenly spaced: any increasing
    :math:`\tau_1 < \dots < \tau_S` keeps the marginals (Song et al. 2021, sec. 4.2; the note
    ``000_*.txt`` draws it at random). The ends are fixed so that a sampler runs over the whole
    chain: index ``T-1`` (the noisiest step, where :math:`x_T \sim N(0, I)` is the right start) and
    index 0 (the least noisy step, from which the last update lands on the data); the other
    ``S-2`` indices are drawn uniformly without replacement from ``1..T-2``. ``S = 1`` gives
    ``[T-1]`` (one jump from pure noise to data). Chapter 3.

    Parameters
    ----------
    T : int, >= 1
        Length of the parent schedule.
    S : int, in [1, T]
        Number of indices.
    generator : torch.Generator, optional
        Source of the random draw (CPU); the same seed gives the same subsequence.

    Returns
    -------
    torch.Tensor
        LongTensor [S], strictly decreasing, ``[T-1, ..., 0]`` when ``S >= 2``.
    """
    T = check_int("T", T, 1)
    S = check_int("S", S, 1, T)
    if generator is not None and not isinstance(generator, torch.Generator):
        raise ValueError(f"generator must be a torch.Generator or None, got {type(generator).__name__}")
    if S == 1:
        return torch.tensor([T - 1], dtype=torch.long)
    inner = torch.randperm(T - 2, generator=generator)[: S - 2] + 1 if S > 2 else torch.zeros(0, dtype=torch.long)
    ts = torch.cat([torch.tensor([0, T - 1], dtype=torch.long), inner])
    return ts.sort(descending=True).values


def _quadratic_increasing(T: int, S: int) -> torch.Tensor:
    if S == 1:
        return torch.zeros(1, dtype=torch.long)
    return (torch.linspace(0, math.sqrt(0.8 * T), S, dtype=torch.float64) ** 2).floor().long()


def _quadratic_ok(T: int, S: int) -> bool:
    ts = _quadratic_increasing(T, S)
    return bool((ts[1:] > ts[:-1]).all())


def make_timesteps(T: int, S: int, spacing: str = "uniform") -> torch.Tensor:
    """Timesteps for a sampler: ``spacing`` is ``"uniform"`` or ``"quadratic"``.

    The two selections of Song et al. 2021 (DDIM), appendix D.2; see :func:`uniform_timesteps`
    and :func:`quadratic_timesteps`. Chapter 3.
    """
    if spacing == "uniform":
        return uniform_timesteps(T, S)
    if spacing == "quadratic":
        return quadratic_timesteps(T, S)
    raise ValueError(f"spacing must be 'uniform' or 'quadratic', got {spacing!r}")


SCHEDULES = {"linear": linear_schedule, "cosine": cosine_schedule}  # the schedules a config may name


def make_schedule(name: str, T: int = 1000) -> Schedule:
    """The schedule called ``name`` with ``T`` steps: ``"linear"`` (Ho et al. 2020, sec. 4) or ``"cosine"``
    (Nichol & Dhariwal 2021, eq. 17), :data:`SCHEDULES`; how a training config and a checkpoint's
    ``config.json`` name their schedule."""
    if name not in SCHEDULES:
        raise ValueError(f"schedule must be one of {sorted(SCHEDULES)}, got {name!r}")
    return SCHEDULES[name](T)

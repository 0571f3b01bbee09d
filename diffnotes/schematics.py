r"""Schematic diagrams: the pictures a lecturer draws on the board, drawn by tested functions.

Each public function returns a :class:`Schematic`, a pair ``(fig, alt)`` of a matplotlib
``Figure`` and its alternative text, so that a chapter shows it with

    course.show_figure(*schematics.ddim_graph(T=6, tau=(6, 4, 2, 0)))

``alt`` is written from the arguments (how many nodes, which steps are skipped, how far each
solver lands from the exact end point), so it stays true when the arguments change. The numbers a
figure is drawn from are in ``Schematic.data``, and every drawn node and arrow carries a ``gid``
(``"node"``, ``"forward"``, ``"reverse"``, ...), so tests can count what is drawn.

====================================  ==========================================================  ========
function                              what it teaches                                             lessons
====================================  ==========================================================  ========
:func:`forward_reverse_chain`         the fixed forward chain :math:`q` and the learned reverse    1, 2
                                      chain :math:`p_\theta` on the same nodes
:func:`ddim_graph`                    DDPM's Markov graph, DDIM's non-Markovian graph (every       3
                                      :math:`x_{t-1}` also hangs on :math:`x_0`), sampling that
                                      skips steps along a subsequence :math:`\tau`
:func:`ode_step_comparison`           one Euler step against one Heun step on a curved             5, 9
                                      probability-flow trajectory, with its exact solution
:func:`guidance_field`                unconditional, class and classifier-free-guided score        8
                                      fields on a labelled Gaussian mixture
:func:`frechet_picture`               what FID measures, in 2-D: two point clouds, their fitted    7
                                      Gaussians, and the distance split into a mean term and a
                                      covariance term
====================================  ==========================================================  ========

The figures are built on ``matplotlib.figure.Figure`` directly (not pyplot), so making one has no
global side effect and works headless.
"""
from __future__ import annotations

import math

import numpy as np
import torch

from ._checks import check_finite, check_int, check_range

__all__ = ["Schematic", "forward_reverse_chain", "ddim_graph", "ode_step_comparison", "guidance_field",
           "frechet_picture"]

# colours: forward (fixed) process, reverse (learned) process, faded, accent
_FWD = "#1f5fa8"
_REV = "#c0392b"
_FADE = "#b0b0b0"
_INK = "#222222"
_GREEN = "#1e8449"


class Schematic(tuple):
    """``(fig, alt)``, with the numbers the figure was drawn from in :attr:`data`.

    Unpacks like a pair (``fig, alt = schematic``; ``course.show_figure(*schematic)``).
    """

    def __new__(cls, fig, alt: str, data: dict):
        self = super().__new__(cls, (fig, alt))
        self.data = data
        return self

    @property
    def fig(self):
        """The matplotlib ``Figure``."""
        return self[0]

    @property
    def alt(self) -> str:
        """The alternative text: what the figure shows, written from its arguments."""
        return self[1]


# --------------------------------------------------------------------------- drawing helpers
def _new_axes(width: float, height: float, nrows: int = 1):
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height), dpi=100)
    axes = fig.subplots(nrows, 1, squeeze=False)[:, 0]
    for ax in axes:
        ax.set_aspect("equal")
        ax.axis("off")
    return fig, list(axes)


def _node(ax, xy, label, *, r=0.36, faded=False, fontsize=15, index=None):
    """A node (circle) at ``xy``; faded nodes (steps skipped) have ``gid="skipped_node"``."""
    from matplotlib.patches import Circle

    edge = _FADE if faded else _INK
    ax.add_patch(Circle(xy, r, facecolor="white", edgecolor=edge, lw=1.2 if faded else 1.8,
                        ls="--" if faded else "-", gid="skipped_node" if faded else "node", zorder=3,
                        label=None if index is None else str(index)))
    ax.text(xy[0], xy[1], label, ha="center", va="center", fontsize=fontsize,
            color=edge, zorder=4, gid="node_label")


def _arrow(ax, start, end, *, color, gid, rad=0.0, r=0.36, ls="-", lw=1.8, shrink_extra=2.0, label=None):
    """An arrow between two nodes of radius ``r``; ``label`` ("a->b", the node indices) names its ends."""
    from matplotlib.patches import FancyArrowPatch

    pts = r * _points_per_unit(ax) + shrink_extra
    a = FancyArrowPatch(start, end, connectionstyle=f"arc3,rad={rad}", arrowstyle="-|>",
                        mutation_scale=16, color=color, lw=lw, ls=ls, shrinkA=pts, shrinkB=pts,
                        gid=gid, zorder=2, label=label)
    ax.add_patch(a)
    return a


def _points_per_unit(ax) -> float:
    """Points per data unit on the x axis (the axes have equal aspect)."""
    fig = ax.figure
    x0, x1 = ax.get_xlim()
    width_in = ax.get_position().width * fig.get_figwidth()
    return 72 * width_in / (x1 - x0)


def _fit_axes(fig, ax, xlim, ylim):
    """Give ``ax`` the data limits and make the axes box match them (equal aspect, no slack)."""
    ax.set_xlim(*xlim)
    ax.set_ylim(*ylim)
    ax.set_position([0.0, 0.0, 1.0, 1.0])
    w = xlim[1] - xlim[0]
    h = ylim[1] - ylim[0]
    fig.set_size_inches(fig.get_figwidth(), fig.get_figwidth() * h / w)


def _x(k) -> str:
    return rf"\mathbf{{x}}_{{{k}}}"


def _as_images(images, n: int):
    t = torch.as_tensor(images).detach().cpu()
    if t.ndim != 4 or t.shape[0] != n or t.shape[1] not in (1, 3):
        raise ValueError(f"images must have shape [{n}, 3, H, W] (one image per drawn node, T_shown={n}), "
                         f"got {tuple(t.shape)}")
    if t.dtype == torch.uint8:
        return t.permute(0, 2, 3, 1).numpy()
    check_finite("images", t.float())
    t = ((t.float().clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8)
    return t.permute(0, 2, 3, 1).numpy()


def _join(words) -> str:
    words = list(words)
    if len(words) <= 2:
        return " and ".join(words)
    return ", ".join(words[:-1]) + " and " + words[-1]


# --------------------------------------------------------------------------- lessons 1-2
def _bare_axes(ax, lo, hi) -> None:
    """Equal-aspect axes on the box [lo, hi] with no ticks and light grey spines (a diagram, not a plot)."""
    ax.set_aspect("equal")
    ax.set_xlim(lo[0], hi[0])
    ax.set_ylim(lo[1], hi[1])
    ax.set_xticks([])
    ax.set_yticks([])
    for side in ax.spines.values():
        side.set_color("#cccccc")


def forward_reverse_chain(T_shown: int | None = None, *, T: int | None = None, steps=None,
                          images=None) -> Schematic:
    r"""The diffusion chain: the forward process :math:`q` one way, the reverse process :math:`p_\theta` the other.

    Draws ``T_shown`` nodes, by default :math:`x_0, x_1, \dots, x_{T_\text{shown}-2}` and
    :math:`x_T`, or the nodes :math:`x_s` for ``s`` in ``steps``. Between neighbouring nodes an arrow
    to the right is one forward step :math:`q(x_t\mid x_{t-1}) = N(\sqrt{1-\beta_t}\,x_{t-1}, \beta_t I)`
    (fixed, adds noise) and an arrow to the left one reverse step :math:`p_\theta(x_{t-1}\mid x_t)`
    (learned, removes it). Where nodes are more than one step apart, dashed arrows and dots stand
    for the steps left out. It teaches that both processes live on the same variables and that
    sampling walks the chain backwards, one step at a time. Lessons 1 and 2.

    Parameters
    ----------
    T_shown : int, optional
        Number of nodes drawn, at least 2 (default 4, or ``len(steps)``).
    T : int or None
        Length of the chain. ``None`` (default) labels the last node :math:`x_T`; an integer labels
        it with its index, and draws the last pair as one step when ``T == T_shown - 1``.
    steps : sequence of int, optional
        The steps drawn instead, strictly increasing from 0, for example ``(0, 100, 300, 1000)``
        to show an image noised to those steps.
    images : tensor ``[T_shown, 3, H, W]`` in [-1, 1] (or uint8), optional
        One picture per drawn node (for example one image noised to each step), shown under it.

    Returns
    -------
    Schematic
        ``(fig, alt)``; ``data`` holds ``labels`` (the node indices as strings), ``gaps`` (for each
        neighbouring pair, whether steps are left out between them) and ``n_forward``/``n_reverse``
        (arrows drawn each way).

    Examples
    --------
    A CIFAR-10 image ``x0`` (``[1, 3, 32, 32]`` in [-1, 1]) noised along the linear schedule ``sch``::

        ts = (0, 100, 300, 999)
        imgs = torch.cat([x0] + [forward.q_sample(x0, sch.alpha_bar[t]) for t in ts[1:]])
        course.show_figure(*schematics.forward_reverse_chain(steps=ts, images=imgs))
    """
    if steps is not None:
        try:
            st = [check_int("steps", v, 0) for v in steps]
        except (TypeError, ValueError):
            raise ValueError(f"steps must be a sequence of integers, got {steps!r}") from None
        if len(st) < 2 or st[0] != 0 or any(b <= a for a, b in zip(st, st[1:])):
            raise ValueError(f"steps must be at least two strictly increasing integers starting at 0, got {st}")
        if T_shown is not None and check_int("T_shown", T_shown, 2) != len(st):
            raise ValueError(f"T_shown={T_shown} does not match the {len(st)} entries of steps")
        if T is not None and T != st[-1]:
            raise ValueError(f"T={T} does not match the last entry of steps ({st[-1]})")
        T_shown = len(st)
        idx = [str(s) for s in st]
        gaps = [b - a > 1 for a, b in zip(st, st[1:])]
    else:
        T_shown = check_int("T_shown", 4 if T_shown is None else T_shown, 2)
        if T is not None:
            T = check_int("T", T, T_shown - 1)
        idx = [str(k) for k in range(T_shown - 1)] + ["T" if T is None else str(T)]
        gaps = [False] * (T_shown - 2) + [T is None or T > T_shown - 1]
    pix = None if images is None else _as_images(images, T_shown)

    dx = 2.9
    xs = [k * dx for k in range(T_shown)]
    thumbs = pix is not None
    ylim = (-3.6 if thumbs else -1.9, 1.85)
    xlim = (-1.4, max(xs[-1] + 1.4, 8.4))  # room for the captions when few nodes are drawn
    width = 0.95 * (xlim[1] - xlim[0])
    fig, (ax,) = _new_axes(width, width * (ylim[1] - ylim[0]) / (xlim[1] - xlim[0]))
    _fit_axes(fig, ax, xlim, ylim)
    for k, x in enumerate(xs):
        _node(ax, (x, 0.0), f"${_x(idx[k])}$", index=idx[k])
    n_fwd = n_rev = 0
    for k in range(T_shown - 1):
        a, b = (xs[k], 0.0), (xs[k + 1], 0.0)
        ls = (0, (4, 3)) if gaps[k] else "-"
        _arrow(ax, a, b, color=_FWD, gid="forward", rad=-0.45, ls=ls, label=f"{idx[k]}->{idx[k + 1]}")
        _arrow(ax, b, a, color=_REV, gid="reverse", rad=-0.45, ls=ls, label=f"{idx[k + 1]}->{idx[k]}")
        n_fwd += 1
        n_rev += 1
        mid = 0.5 * (a[0] + b[0])
        if gaps[k]:
            ax.text(mid, 0.05, r"$\cdots$", ha="center", va="center", fontsize=20, color=_INK)
            if idx[k + 1].isdigit():
                n = int(idx[k + 1]) - int(idx[k])
                ax.text(mid, -0.22, f"{n} steps", ha="center", va="top", fontsize=10, color="#606060")
            continue
        lo, hi = _x(idx[k]), _x(idx[k + 1])
        ax.text(mid, 0.82, rf"$q({hi}\mid {lo})$", ha="center", va="bottom", fontsize=12.5,
                color=_FWD, gid="forward_label")
        ax.text(mid, -0.82, rf"$p_\theta({lo}\mid {hi})$", ha="center", va="top", fontsize=12.5,
                color=_REV, gid="reverse_label")
    ax.text(xlim[0] + 0.1, 1.6, rf"forward process $q({_x('t')}\mid {_x('t-1')})$: fixed, adds noise" + "  \u2192",
            ha="left", va="center", fontsize=12, color=_FWD)
    ax.text(xlim[1] - 0.1, -1.62 if not thumbs else -3.35,
            "\u2190  " + rf"reverse process $p_\theta({_x('t-1')}\mid {_x('t')})$: learned, removes noise",
            ha="right", va="center", fontsize=12, color=_REV)
    if thumbs:
        size = 1.25
        for k, x in enumerate(xs):
            inset = ax.inset_axes([x - size / 2, -1.55 - size, size, size], transform=ax.transData)
            inset.imshow(pix[k].squeeze(-1) if pix.shape[-1] == 1 else pix[k],
                         cmap="gray" if pix.shape[-1] == 1 else None, interpolation="nearest")
            inset.set_xticks([])
            inset.set_yticks([])
            inset.set_gid("thumbnail")
    else:
        ax.text(xs[0], -0.55, "data", ha="center", va="top", fontsize=11, color=_INK)
        ax.text(xs[-1], -0.55, "noise", ha="center", va="top", fontsize=11, color=_INK)

    names = [f"x_{i}" for i in idx]
    alt = (f"Diagram of the diffusion chain with {T_shown} nodes, {_join(names)}, from data on the left "
           f"to noise on the right. ")
    pairs = [f"{names[k]} and {names[k + 1]}" for k, g in enumerate(gaps) if g]
    if pairs:
        alt += f"Dots between {'; '.join(pairs)} stand for the steps not drawn. "
    alt += (f"{n_fwd} arrows to the right are the fixed forward process q(x_t | x_(t-1)), which adds a little "
            f"Gaussian noise at each step; {n_rev} arrows to the left are the learned reverse process "
            f"p_theta(x_(t-1) | x_t), which removes it, one step at a time.")
    if thumbs:
        alt += " Under each node is a picture of an image at that step."
    return Schematic(fig, alt, {"labels": idx, "gaps": gaps, "n_forward": n_fwd, "n_reverse": n_rev})


# --------------------------------------------------------------------------- lesson 3
def _check_tau(tau, T: int) -> list[int]:
    try:
        t = [int(v) for v in tau]
    except (TypeError, ValueError):
        raise ValueError(f"tau must be a sequence of integer timesteps, got {tau!r}") from None
    if any(float(v) != int(v) for v in tau):
        raise ValueError(f"tau must hold integer timesteps, got {list(tau)!r}")
    if len(t) < 2:
        raise ValueError(f"tau must hold at least two timesteps (from T to 0), got {t}")
    if any(b >= a for a, b in zip(t, t[1:])):
        raise ValueError(f"tau must be strictly decreasing (sampling runs from noise to data), got {t}")
    if t[0] != T or t[-1] != 0:
        raise ValueError(f"tau must start at T={T} and end at 0 (the path runs from x_T to x_0), got {t}")
    return t


def ddim_graph(T: int = 6, tau=(6, 4, 2, 0)) -> Schematic:
    r"""DDPM's Markov chain, DDIM's non-Markovian graph, and sampling that skips steps.

    Three rows on the same nodes :math:`x_0, \dots, x_T` (data on the left):

    1. DDPM's forward process, a Markov chain: each :math:`x_t` depends only on :math:`x_{t-1}`
       (:math:`T` arrows :math:`q(x_t\mid x_{t-1})`).
    2. DDIM's forward process :math:`q_\sigma` (Song et al. 2021, eq. 7), written the way it is
       defined: :math:`x_T` from :math:`x_0`, then each :math:`x_{t-1}` from :math:`x_t` *and*
       :math:`x_0`, :math:`q_\sigma(x_{t-1}\mid x_t, x_0)`. It is not Markov (every node hangs on
       :math:`x_0`), yet each marginal :math:`q_\sigma(x_t\mid x_0)` equals DDPM's, so a network
       trained for DDPM serves it. :math:`2T - 1` arrows: :math:`T` from :math:`x_0`, :math:`T-1`
       along the chain.
    3. Sampling on the subsequence ``tau``: the sampler jumps
       :math:`x_{\tau_i}\to x_{\tau_{i+1}}`; the nodes not in ``tau`` are skipped (drawn faded)
       and the unit steps of the full chain are shown dotted beneath.

    It teaches why DDIM can skip steps: the objective only fixes the marginals, and a
    non-Markovian process with the same marginals exists for every subsequence. Lesson 3.

    Parameters
    ----------
    T : int
        Length of the chain drawn, 2 to 12.
    tau : sequence of int
        Strictly decreasing timesteps from ``T`` to ``0`` (both included): the sampling path.

    Returns
    -------
    Schematic
        ``(fig, alt)``; ``data`` holds ``tau``, ``skipped`` (timesteps not visited) and the number
        of arrows per row: ``n_markov``, ``n_from_x0``, ``n_chain``, ``n_jumps``.
    """
    T = check_int("T", T, 2, 12)
    tau = _check_tau(tau, T)
    skipped = [t for t in range(T, -1, -1) if t not in tau]

    dx = 1.75
    xs = [t * dx for t in range(T + 1)]
    rows_y = (0.0, -4.3, -8.4)  # DDPM, DDIM forward, sampling
    xlim = (-2.4, max(xs[-1] + 1.0, 11.0))  # room for the row titles when T is small
    ylim = (rows_y[2] - 1.7, 1.6)
    width = 0.82 * (xlim[1] - xlim[0])
    fig, (ax,) = _new_axes(width, width * (ylim[1] - ylim[0]) / (xlim[1] - xlim[0]))
    _fit_axes(fig, ax, xlim, ylim)
    r = 0.34
    title = dict(ha="left", va="bottom", fontsize=12.5, color=_INK, fontweight="bold")

    # row 1: DDPM
    y = rows_y[0]
    ax.text(xlim[0] + 0.1, y + 0.95, "DDPM forward process: a Markov chain", **title)
    for t in range(T + 1):
        _node(ax, (xs[t], y), f"${_x(t)}$", r=r, fontsize=13, index=t)
    for t in range(1, T + 1):
        _arrow(ax, (xs[t - 1], y), (xs[t], y), color=_FWD, gid="markov", r=r, label=f"{t - 1}->{t}")
    ax.text(0.5 * (xs[0] + xs[1]), y - 0.45, rf"$q({_x('t')}\mid {_x('t-1')})$", ha="left", va="top",
            fontsize=11.5, color=_FWD)

    # row 2: DDIM's non-Markovian forward process
    y = rows_y[1]
    ax.text(xlim[0] + 0.1, y + 2.75, r"DDIM forward process $q_\sigma$: not Markov, every node also depends on $\mathbf{x}_0$",
            **title)
    for t in range(T + 1):
        _node(ax, (xs[t], y), f"${_x(t)}$", r=r, fontsize=13, index=t)
    for t in range(1, T + 1):  # from x_0 to every x_t (arcs above)
        _arrow(ax, (xs[0], y), (xs[t], y), color=_GREEN, gid="from_x0", r=r, label=f"0->{t}",
               rad=-min(0.5, 0.9 / math.sqrt(t)) if t > 1 else 0.0, lw=1.4)
    for t in range(T, 1, -1):  # x_t -> x_{t-1} (below)
        _arrow(ax, (xs[t], y), (xs[t - 1], y), color=_FWD, gid="chain", r=r, rad=-0.5, label=f"{t}->{t - 1}")
    ax.text(xlim[0] + 0.1, y - 0.85,
            rf"each ${_x('t-1')} \sim q_\sigma({_x('t-1')}\mid {_x('t')}, {_x(0)})$: one arrow in from ${_x('t')}$, "
            rf"one from ${_x(0)}$", ha="left", va="top", fontsize=11.5, color=_INK)
    peak = min(0.5, 0.9 / math.sqrt(T)) * (xs[T] - xs[0]) / 2
    ax.text(0.5 * (xs[0] + xs[T]), y + peak + 0.08, rf"$q_\sigma({_x(T)}\mid {_x(0)})$", ha="center",
            va="bottom", fontsize=11.5, color=_GREEN)

    # row 3: sampling along tau
    y = rows_y[2]
    tau_txt = ", ".join(str(t) for t in tau)
    ax.text(xlim[0] + 0.1, y + 1.75, rf"Sampling on the subsequence $\tau = ({tau_txt})$: "
            f"{len(tau) - 1} step{'s' if len(tau) > 2 else ''} instead of {T}", **title)
    for t in range(T + 1):
        _node(ax, (xs[t], y), f"${_x(t)}$", r=r, fontsize=13, faded=t not in tau, index=t)
    for t in range(T, 0, -1):  # the full chain, dotted, below
        _arrow(ax, (xs[t], y), (xs[t - 1], y), color=_FADE, gid="full_step", r=r, rad=-0.55, label=f"{t}->{t - 1}",
               ls=(0, (1.5, 2.5)), lw=1.3)
    for a, b in zip(tau, tau[1:]):
        rad = 0.45 if a - b > 1 else 0.6
        _arrow(ax, (xs[a], y), (xs[b], y), color=_REV, gid="jump", r=r, rad=rad, lw=2.2, label=f"{a}->{b}")
    a, b = tau[0], tau[1]
    ax.text(0.5 * (xs[a] + xs[b]), y + (0.45 if a - b > 1 else 0.6) * (a - b) * dx / 2 + 0.08,
            rf"$p_\theta({_x(b)}\mid {_x(a)})$", ha="center", va="bottom", fontsize=11.5, color=_REV)
    ax.text(xlim[0] + 0.1, y - 1.45, f"dotted: the {T} unit steps of DDPM's sampler", ha="left", va="bottom",
            fontsize=10.5, color="#808080")

    alt = (f"Three rows of nodes x_0 to x_{T}. Top: DDPM's forward process, a Markov chain of {T} arrows "
           f"x_(t-1) to x_t. Middle: DDIM's non-Markovian forward process, with {T} arrows from x_0 to every "
           f"other node and {T - 1} arrows x_t to x_(t-1), so each x_(t-1) depends on both x_t and x_0 "
           f"through q_sigma(x_(t-1) | x_t, x_0). Bottom: sampling on the subsequence tau = ({tau_txt}), "
           f"{len(tau) - 1} jump{'s' if len(tau) > 2 else ''} from x_{T} to x_0")
    if skipped:
        alt += f" that skip x_{', x_'.join(str(t) for t in skipped)} (drawn faded)"
    alt += f", over the {T} dotted unit steps of the full chain."
    return Schematic(fig, alt, {"tau": tau, "skipped": skipped, "n_markov": T, "n_from_x0": T,
                                "n_chain": T - 1, "n_jumps": len(tau) - 1})


# --------------------------------------------------------------------------- lessons 5, 9
def _spiral_matrix(decay: float, omega: float) -> torch.Tensor:
    return torch.tensor([[-decay, -omega], [omega, -decay]], dtype=torch.float64)


def _spiral_exact(x0: torch.Tensor, t, decay: float, omega: float) -> torch.Tensor:
    """The closed-form solution exp(tA) x0 = exp(-decay t) R(omega t) x0, at the times ``t`` (``[n]``)."""
    t = torch.as_tensor(t, dtype=torch.float64).reshape(-1)
    c, s = torch.cos(omega * t), torch.sin(omega * t)
    rot = torch.stack([c * x0[0] - s * x0[1], s * x0[0] + c * x0[1]], 1)
    return torch.exp(-decay * t)[:, None] * rot


def ode_step_comparison(*, n_steps: int = 1, t_end: float = 0.8, x_start=(2.0, 0.0), omega: float = 1.0,
                        decay: float = 0.3) -> Schematic:
    r"""Euler against Heun (second order) on a curved 2-D ODE trajectory with an exact solution.

    The ODE is the linear spiral :math:`dx/dt = Ax` with :math:`A = \begin{pmatrix}-a & -\omega\\
    \omega & -a\end{pmatrix}` (``decay`` :math:`a`, ``omega`` :math:`\omega`): its trajectories turn
    at rate :math:`\omega` while they shrink at rate :math:`a`, and its solution is known exactly,
    :math:`x(t) = e^{-at}R(\omega t)\,x(0)` with :math:`R` the rotation. It stands in for the curved
    trajectory of a probability-flow ODE, which lessons 5 and 9 solve with the same two steps (lesson
    9 as EDM's Heun sampler, Karras et al. 2022, Algorithm 1). From ``x_start`` at :math:`t = 0` to
    ``t_end`` in ``n_steps`` equal steps :math:`h`, with :math:`f(x) = Ax`:

    * Euler: :math:`x' = x + h\,d`, with :math:`d = f(x)` the slope at the start;
    * Heun: :math:`x' = x + h\,(d + d')/2`, with :math:`d' = f(x + h\,d)` the slope at Euler's end point.

    With one step the figure draws the three arrows from the start (Euler's step along :math:`d`,
    the step along :math:`d'`, Heun's step along their average), over the faint vector field
    :math:`f`. It teaches that Euler follows the tangent and leaves a curved path, while Heun
    corrects the slope with one more evaluation: when :math:`h` halves, Euler's error halves
    (order 1) and Heun's falls fourfold (order 2). Lessons 5 and 9.

    Parameters
    ----------
    n_steps : int
        Steps of each solver, 1 to 64 (1: one large step, the board picture).
    t_end : float
        Where the trajectory ends, ``t_end > 0``; the angle it turns through is ``omega * t_end``
        radians.
    x_start : sequence of 2 floats
        The starting point, not the origin.
    omega : float
        Turning rate, ``omega > 0`` (the trajectory must bend).
    decay : float
        Shrinking rate, ``decay >= 0``.

    Returns
    -------
    Schematic
        ``(fig, alt)``; ``data`` holds ``times`` (``[n_steps + 1]``), ``exact`` (the exact solution
        at those times), ``euler`` and ``heun`` (the solvers' points, ``[n_steps + 1, 2]``),
        ``exact_curve`` (``[400, 2]``, the trajectory drawn) and ``errors``
        (``{"euler": ..., "heun": ...}``, the Euclidean distances of their end points from the exact one).
    """
    n_steps = check_int("n_steps", n_steps, 1, 64)
    check_range("t_end", t_end, 0.0, None, low_open=True)
    check_range("omega", omega, 0.0, None, low_open=True)
    check_range("decay", decay, 0.0, None)
    x0 = torch.as_tensor(x_start, dtype=torch.float64).flatten()
    if x0.numel() != 2:
        raise ValueError(f"x_start must be a point in the plane (2 numbers), got {x0.tolist()}")
    check_finite("x_start", x0)
    if float(torch.linalg.norm(x0)) == 0.0:
        raise ValueError("x_start must not be the origin (the fixed point of the spiral, where nothing moves)")
    t_end, omega, decay = float(t_end), float(omega), float(decay)
    A = _spiral_matrix(decay, omega)

    def f(x):
        return A @ x

    times = torch.linspace(0.0, t_end, n_steps + 1, dtype=torch.float64)
    h = t_end / n_steps
    euler, heun = [x0], [x0]
    for _ in range(n_steps):
        euler.append(euler[-1] + h * f(euler[-1]))
        d = f(heun[-1])
        d2 = f(heun[-1] + h * d)
        heun.append(heun[-1] + h * 0.5 * (d + d2))
    euler, heun = torch.stack(euler), torch.stack(heun)
    exact = _spiral_exact(x0, times, decay, omega)
    curve = _spiral_exact(x0, torch.linspace(0.0, t_end, 400, dtype=torch.float64), decay, omega)
    err_e = float(torch.linalg.norm(euler[-1] - exact[-1]))
    err_h = float(torch.linalg.norm(heun[-1] - exact[-1]))

    # ---- figure
    from matplotlib.figure import Figure
    from matplotlib.patches import FancyArrowPatch

    e, hn, cv = euler.numpy(), heun.numpy(), curve.numpy()
    pts = np.concatenate([cv, e, hn, np.zeros((1, 2))])
    probe_len = 0.1 * float(np.ptp(pts, axis=0).max())
    if n_steps == 1:  # the slope d' drawn where it is evaluated, at Euler's point
        d2_dir = f(euler[1]).numpy()
        probe = probe_len * d2_dir / max(float(np.linalg.norm(d2_dir)), 1e-12)
        pts = np.concatenate([pts, (e[1] + probe)[None]])
    pad = 0.12 * float(np.ptp(pts, axis=0).max())
    lo, hi = pts.min(0) - pad, pts.max(0) + pad
    lo[1] -= 1.5 * pad  # room for the legend below
    span = hi - lo
    fig = Figure(figsize=(7.2, 7.2 * span[1] / span[0] + 0.5), dpi=100)
    ax = fig.subplots()
    _bare_axes(ax, lo, hi)
    gx, gy = np.meshgrid(np.linspace(lo[0], hi[0], 13), np.linspace(lo[1], hi[1], 13))
    G = np.stack([gx.ravel(), gy.ravel()], 1) @ A.numpy().T
    ax.quiver(gx.ravel(), gy.ravel(), G[:, 0], G[:, 1], color="#d5d5d5", angles="xy", width=0.003, gid="field")
    more = _spiral_exact(x0, torch.linspace(t_end, t_end + 2 * math.pi / omega, 300, dtype=torch.float64),
                         decay, omega).numpy()
    ax.plot(more[:, 0], more[:, 1], color=_INK, lw=1.0, alpha=0.25, ls=(0, (3, 3)))
    ax.plot(cv[:, 0], cv[:, 1], color=_INK, lw=2.4, gid="exact", label="exact solution")
    steps_word = f"{n_steps} step{'s' if n_steps > 1 else ''}"
    ax.plot(e[:, 0], e[:, 1], "-o" if n_steps > 1 else "o", color=_REV, lw=1.6, ms=6, gid="euler",
            label=f"Euler, {steps_word}: error {err_e:.2g}")
    ax.plot(hn[:, 0], hn[:, 1], "-o" if n_steps > 1 else "o", color=_GREEN, lw=1.6, ms=6, gid="heun",
            label=f"Heun, {steps_word}: error {err_h:.2g}")
    ax.plot(*cv[-1], marker="*", ms=17, color=_INK, ls="none", gid="exact_end", zorder=5)
    ax.plot(*x0.numpy(), marker="o", ms=7, color=_INK, ls="none", zorder=5)
    off = 0.035 * span.max()
    if n_steps == 1:
        d = f(x0)
        d2 = f(x0 + h * d)
        a0 = x0.numpy()
        arrows = ((h * d, _REV, "-", "euler_step"), (h * d2, "#777777", (0, (4, 3)), "step_along_d2"),
                  (h * 0.5 * (d + d2), _GREEN, "-", "heun_step"))
        for vec, color, ls, gid in arrows:
            ax.add_patch(FancyArrowPatch(a0, a0 + vec.numpy(), arrowstyle="-|>", mutation_scale=18, color=color,
                                         lw=2.0, ls=ls, shrinkA=0, shrinkB=4, gid=gid, zorder=4))
        ax.add_patch(FancyArrowPatch(e[1], e[1] + probe, arrowstyle="-|>", mutation_scale=14, color="#777777",
                                     lw=1.8, shrinkA=0, shrinkB=0, gid="slope_at_euler_point", zorder=4))
        ax.text(e[1][0] + off, e[1][1], "Euler: step along $d$,\nthe slope at the start", color=_REV,
                fontsize=11, ha="left", va="center")
        tip = a0 + (h * d2).numpy()
        ax.text(tip[0], tip[1] - off, "step along $d'$, the slope\nat Euler's point", color="#555555",
                fontsize=11, ha="center", va="top")
        ax.text(hn[1][0] - off, hn[1][1] - off, "Heun: along $(d + d')/2$", color=_GREEN, fontsize=11,
                ha="right", va="top")
    ax.text(x0[0].item() + off, x0[1].item(), "start", fontsize=11, ha="left", va="center")
    if n_steps == 1:
        ax.text(cv[-1][0] + 0.7 * off, cv[-1][1] + 0.7 * off, "exact end", fontsize=11, ha="left", va="bottom")
    else:  # on the inner side of the curve: Euler's points drift outwards
        u = -cv[-1] / max(float(np.linalg.norm(cv[-1])), 1e-12)
        ax.text(cv[-1][0] + off * u[0], cv[-1][1] + off * u[1], "exact end", fontsize=11,
                ha="right" if u[0] < 0 else "left", va="top" if u[1] < 0 else "bottom")
    ax.legend(loc="lower left", fontsize=10.5, framealpha=0.92, edgecolor="none")
    ax.set_title(rf"$d\mathbf{{x}}/dt = A\mathbf{{x}}$, a spiral: Euler and Heun from $t = 0$ to ${t_end:g}$",
                 fontsize=12)
    fig.tight_layout()

    turn = math.degrees(omega * t_end)
    alt = (f"A curved trajectory of a 2-D ODE whose field (faint arrows) spirals towards the origin: the exact "
           f"solution from the start point bends through {turn:.0f} degrees to its end point (a star) at "
           f"t = {t_end:g}. With {steps_word} of size {h:.2g}, Euler's method (red) lands {err_e:.2g} away from the "
           f"exact end point and Heun's method (green) {err_h:.2g} away.")
    if n_steps == 1:
        alt += (" Three arrows leave the start: Euler's step along the slope d at the start, which follows the "
                "tangent off the curve; a dashed step along the slope d' found at Euler's end point; and Heun's "
                "step along their average, which lands nearer the curve.")
    return Schematic(fig, alt, {"times": times.numpy(), "exact": exact.numpy(), "euler": e, "heun": hn,
                                "exact_curve": cv, "errors": {"euler": err_e, "heun": err_h}})


# --------------------------------------------------------------------------- lesson 8
def _default_mixture():
    from .oracles import GaussianMixture

    return GaussianMixture([0.3, 0.3, 0.4], [[-2.0, 0.0], [2.0, 0.0], [0.0, 2.5]],
                           [0.25 * torch.eye(2, dtype=torch.float64)] * 3)


def guidance_field(mixture=None, y: int = 0, w: float = 3.0, *, alpha: float = 0.8, sigma: float = 0.6,
                   n_grid: int = 15, extent=None) -> Schematic:
    r"""The score fields of classifier-free guidance on a labelled 2-D Gaussian mixture.

    Three panels on the same grid of points :math:`x_t`, at the noise level
    :math:`x_t = \alpha x_0 + \sigma z`:

    1. the unconditional score :math:`s_u = \nabla\log p_t(x_t)`, over the contours of
       :math:`p_t`;
    2. the class score :math:`s_c = \nabla\log p_t(x_t\mid y)`, over the contours of the class
       density :math:`p_t(x_t\mid y)`;
    3. the guided field :math:`(1+w)\,s_c - w\,s_u = s_c + w\,\nabla\log p_t(y\mid x_t)`
       (Ho & Salimans 2022, eq. 6 in score form), over the same class contours.

    The scores are exact (:class:`diffnotes.guidance.LabelledOracle`: class = mixture
    component). Arrows have their true directions and relative lengths within a panel; each panel
    has its own arrow scale, given by its key. It teaches that guidance adds :math:`w` times the
    classifier's gradient: the guided field points away from the other classes, more strongly the
    larger :math:`w`, which is why guided samples gather on the far side of their class. Lesson 8.

    Parameters
    ----------
    mixture : diffnotes.oracles.GaussianMixture or diffnotes.guidance.LabelledOracle, optional
        2-D labelled data (default: lesson 8's mixture, three classes at (-2, 0), (2, 0), (0, 2.5)
        with variance 0.25).
    y : int
        The class guided towards.
    w : float
        Guidance weight, ``w >= 0`` (``w = 0``: the class score itself).
    alpha, sigma : float
        Mean coefficient and noise std of :math:`x_t` (``alpha > 0``, ``sigma > 0``).
    n_grid : int
        Arrows per side of the grid, 4 to 40.
    extent : (xmin, xmax, ymin, ymax), optional
        The plotted window (default: the scaled class means with a margin).

    Returns
    -------
    Schematic
        ``(fig, alt)``; ``data`` holds ``points`` ``[n_grid**2, 2]`` and the three fields there,
        ``unconditional``, ``conditional`` and ``guided`` (numpy arrays, the values plotted).
    """
    from .guidance import LabelledOracle
    from .oracles import GaussianMixture

    if mixture is None:
        mixture = _default_mixture()
    if isinstance(mixture, GaussianMixture):
        lab = LabelledOracle.from_mixture(mixture)
    elif isinstance(mixture, LabelledOracle):
        lab = mixture
    else:
        raise ValueError(f"mixture must be a GaussianMixture or a LabelledOracle, got {type(mixture).__name__}")
    if tuple(lab.unconditional.event_shape) != (2,):
        raise ValueError(f"mixture must hold 2-D data to be drawn in the plane, got event shape "
                         f"{tuple(lab.unconditional.event_shape)}")
    y = check_int("y", y, 0, lab.num_classes - 1)
    check_range("w", w, 0.0, None)
    check_range("alpha", alpha, 0.0, None, low_open=True)
    check_range("sigma", sigma, 0.0, None, low_open=True)
    n_grid = check_int("n_grid", n_grid, 4, 40)
    if extent is None:
        means = torch.stack([c.mean for c in lab.conditionals]) * alpha
        lo, hi = means.min(0).values - 1.6, means.max(0).values + 1.6
        extent = (float(lo[0]), float(hi[0]), float(lo[1]), float(hi[1]))
    extent = tuple(float(v) for v in extent)
    if len(extent) != 4 or not (extent[0] < extent[1] and extent[2] < extent[3]):
        raise ValueError(f"extent must be (xmin, xmax, ymin, ymax) with xmin < xmax and ymin < ymax, got {extent}")

    gx = torch.linspace(extent[0], extent[1], n_grid, dtype=torch.float64)
    gy = torch.linspace(extent[2], extent[3], n_grid, dtype=torch.float64)
    X, Y = torch.meshgrid(gx, gy, indexing="xy")
    pts = torch.stack([X.flatten(), Y.flatten()], 1)
    s_u = lab.unconditional.score(pts, alpha, sigma)
    s_c = lab.conditionals[y].score(pts, alpha, sigma)
    guided = (1 + w) * s_c - w * s_u

    fx = torch.linspace(extent[0], extent[1], 120, dtype=torch.float64)
    fy = torch.linspace(extent[2], extent[3], 120, dtype=torch.float64)
    FX, FY = torch.meshgrid(fx, fy, indexing="xy")
    fine = torch.stack([FX.flatten(), FY.flatten()], 1)
    dens_u = lab.unconditional.log_prob_t(fine, alpha, sigma).exp().reshape(FX.shape).numpy()
    dens_c = lab.conditionals[y].log_prob_t(fine, alpha, sigma).exp().reshape(FX.shape).numpy()

    from matplotlib.figure import Figure

    fig = Figure(figsize=(13.5, 4.9), dpi=100)
    axes = fig.subplots(1, 3)
    titles = (r"unconditional score $\nabla\log p_t(\mathbf{x})$",
              rf"class score $\nabla\log p_t(\mathbf{{x}}\mid y={y})$",
              rf"guided, $w = {w:g}$: $(1+w)\,\nabla\log p_t(\mathbf{{x}}\mid y) - w\,\nabla\log p_t(\mathbf{{x}})$")
    fields = (s_u, s_c, guided)
    colors = ("#555555", _FWD, _REV)
    P = pts.numpy()
    class_means = [(alpha * c.mean).numpy() for c in lab.conditionals]
    for k, ax in enumerate(axes):
        dens = dens_u if k == 0 else dens_c
        ax.contour(FX.numpy(), FY.numpy(), dens, levels=6, colors="#9ab" if k else "#aaaaaa", linewidths=0.9)
        F = fields[k].numpy()
        mag = np.linalg.norm(F, axis=1)
        q = ax.quiver(P[:, 0], P[:, 1], F[:, 0], F[:, 1], color=colors[k], angles="xy", pivot="tail",
                      width=0.006, gid=("unconditional", "conditional", "guided")[k])
        ref = float(10 ** np.floor(np.log10(max(np.median(mag), 1e-12))))
        ref = ref * (5 if np.median(mag) / ref >= 5 else 2 if np.median(mag) / ref >= 2 else 1)
        ax.quiverkey(q, 0.80, 1.015, ref, f"length {ref:g}", labelpos="W", coordinates="axes", fontproperties={"size": 9.5})
        for j, m in enumerate(class_means):
            bold = j == y
            ax.text(m[0], m[1], f"y={j}", ha="center", va="center", fontsize=11 if bold else 10,
                    fontweight="bold" if bold else "normal", color=_INK if bold else "#777777",
                    bbox=dict(boxstyle="round,pad=0.2", fc="white", ec=_INK if bold else "#bbbbbb", alpha=0.85),
                    zorder=5)
        ax.set_xlim(extent[0] - 0.3, extent[1] + 0.3)
        ax.set_ylim(extent[2] - 0.3, extent[3] + 0.3)
        ax.set_aspect("equal")
        ax.set_xticks([])
        ax.set_yticks([])
        ax.set_title(titles[k], fontsize=11 if k < 2 else 10.5, pad=18)
    fig.tight_layout()

    alt = (f"Three quiver plots on the same {n_grid} by {n_grid} grid around a mixture of {lab.num_classes} "
           f"Gaussian classes (labelled y=0 to y={lab.num_classes - 1}), at noise level alpha = {alpha:g}, "
           f"sigma = {sigma:g}. Left: the unconditional score, over contours of the noisy mixture, pointing "
           f"towards the nearest class. Middle: the score of class y={y}, over contours of that class's density, "
           f"pointing towards that class. Right: the guided field, (1+w) times the class score minus w times the "
           f"unconditional score with w = {w:g}, over the same contours")
    ratio = None
    if w > 0 and lab.class_probs is not None:
        post = lab.log_class_posterior(pts, alpha, sigma)
        elsewhere = post.argmax(1) != y  # points that another class explains better
        if bool(elsewhere.any()):
            g_len = np.median(torch.linalg.norm(guided[elsewhere], dim=1).numpy())
            c_len = np.median(torch.linalg.norm(s_c[elsewhere], dim=1).numpy())
            ratio = float(g_len / c_len)
    if ratio is not None:
        alt += (f"; where another class is the more likely one, it pushes towards class y={y} with arrows "
                f"{ratio:.1f} times as long as the class score's (medians)")
    elif w == 0:
        alt += "; with w = 0 it is the class score itself"
    alt += ". Each panel has its own arrow scale, given by its key."
    return Schematic(fig, alt, {"points": P, "unconditional": s_u.numpy(), "conditional": s_c.numpy(),
                                "guided": guided.numpy(), "extent": extent, "length_ratio": ratio})


# --------------------------------------------------------------------------- lesson 7
def _check_gaussian_2d(name: str, mean, cov):
    m = torch.as_tensor(mean, dtype=torch.float64).flatten()
    c = torch.as_tensor(cov, dtype=torch.float64)
    if m.numel() != 2:
        raise ValueError(f"{name} mean must be a point in the plane (2 numbers), got {m.tolist()}")
    if tuple(c.shape) != (2, 2):
        raise ValueError(f"{name} covariance must be a 2 x 2 matrix, got shape {tuple(c.shape)}")
    check_finite(f"{name} mean", m)
    check_finite(f"{name} covariance", c)
    if not torch.allclose(c, c.T, rtol=0.0, atol=1e-12 * max(1.0, float(c.abs().max()))):
        raise ValueError(f"{name} covariance must be symmetric, got {c.tolist()}")
    if float(torch.linalg.eigvalsh(c).min()) <= 0.0:
        raise ValueError(f"{name} covariance must be positive definite, got {c.tolist()}")
    return m, c


def _ellipse_2sigma(mean: np.ndarray, cov: np.ndarray):
    """(width, height, angle in degrees) of the ellipse {x: (x-mean)^T cov^-1 (x-mean) = 4}."""
    w, v = np.linalg.eigh(cov)
    angle = math.degrees(math.atan2(v[1, 1], v[0, 1]))  # direction of the larger axis
    return 2 * 2 * math.sqrt(w[1]), 2 * 2 * math.sqrt(w[0]), angle


def frechet_picture(mean_real=(0.0, 0.0), cov_real=((1.0, 0.5), (0.5, 0.6)), mean_gen=(1.1, 0.5),
                    cov_gen=((0.25, -0.1), (-0.1, 1.6)), *, n: int = 300, seed: int = 0) -> Schematic:
    r"""What FID measures, drawn in 2-D: two clouds of features, their fitted Gaussians, and the distance.

    Draws ``n`` points from :math:`N(\mu_\text{real}, \Sigma_\text{real})` (standing for the
    features of real images) and ``n`` from :math:`N(\mu_\text{gen}, \Sigma_\text{gen})` (features
    of generated images), with a fixed ``torch.Generator`` in float64. From each cloud it fits a
    Gaussian as FID does (sample mean :math:`\mu_i`, unbiased sample covariance :math:`S_i`, by
    :func:`diffnotes.fid.feature_statistics`) and draws its mean and its 2-sigma ellipse
    :math:`\{x: (x-\mu_i)^\top S_i^{-1}(x-\mu_i) = 4\}`. The Fréchet distance of the two fitted
    Gaussians is stated split in two:

    .. math::

        d^2 = \underbrace{\lVert\mu_1-\mu_2\rVert^2}_{\text{mean term}}
            + \underbrace{\operatorname{tr}\big(S_1 + S_2 - 2(S_1S_2)^{1/2}\big)}_{\text{covariance term}},

    the total by :func:`diffnotes.fid.frechet_distance` and the covariance term as the distance of
    the two fitted Gaussians moved onto a common mean (the same function with :math:`\mu_2 = \mu_1`).
    It teaches that FID sees only a mean and a covariance per set: a shift of the cloud and a change
    of its shape both cost. Lesson 7.

    Parameters
    ----------
    mean_real, cov_real, mean_gen, cov_gen
        The two Gaussians the clouds are drawn from (2-vectors, symmetric positive-definite 2 x 2).
    n : int
        Points per cloud, 10 to 20 000.
    seed : int
        Seed of the generator that draws both clouds.

    Returns
    -------
    Schematic
        ``(fig, alt)``; ``data`` holds the clouds ``real`` and ``generated`` (``[n, 2]``), their
        statistics ``mu_real``, ``S_real``, ``mu_gen``, ``S_gen``, and ``mean_term``, ``cov_term``
        and ``fid`` (``fid = mean_term + cov_term`` up to round-off).
    """
    from . import fid as _fid

    m1, c1 = _check_gaussian_2d("real", mean_real, cov_real)
    m2, c2 = _check_gaussian_2d("generated", mean_gen, cov_gen)
    n = check_int("n", n, 10, 20_000)
    seed = check_int("seed", seed, 0)
    g = torch.Generator().manual_seed(seed)
    real = m1 + torch.randn(n, 2, generator=g, dtype=torch.float64) @ torch.linalg.cholesky(c1).T
    gen = m2 + torch.randn(n, 2, generator=g, dtype=torch.float64) @ torch.linalg.cholesky(c2).T
    mu1, S1 = _fid.feature_statistics(real.numpy())
    mu2, S2 = _fid.feature_statistics(gen.numpy())
    mean_term = float(np.sum((mu1 - mu2) ** 2))
    cov_term = _fid.frechet_distance(mu1, S1, mu1, S2)  # same mean: only the covariance term is left
    total = _fid.frechet_distance(mu1, S1, mu2, S2)

    from matplotlib.figure import Figure
    from matplotlib.patches import Ellipse, FancyArrowPatch

    R, G = real.numpy(), gen.numpy()
    ells = [_ellipse_2sigma(mu1, S1), _ellipse_2sigma(mu2, S2)]
    pts = np.concatenate([R, G])
    lo, hi = pts.min(0), pts.max(0)
    pad = 0.08 * float((hi - lo).max())
    lo, hi = lo - pad, hi + pad
    span = hi - lo
    ax_w = 5.4  # inches for the clouds; the text column to their right is 4.6 inches
    ax_h = ax_w * span[1] / span[0]
    fig_h = max(ax_h + 0.6, 4.4)
    fig = Figure(figsize=(ax_w + 4.8, fig_h), dpi=100)
    ax = fig.add_axes([0.1 / (ax_w + 4.8), 0.1 / fig_h, ax_w / (ax_w + 4.8), ax_h / fig_h])
    _bare_axes(ax, lo, hi)
    for P, mu, (w, h, ang), color, who in ((R, mu1, ells[0], _FWD, "real"), (G, mu2, ells[1], _REV, "generated")):
        ax.plot(P[:, 0], P[:, 1], "o", ms=2.6, alpha=0.35, color=color, gid=f"points_{who}",
                label=f"features of {who} images")
        ax.add_patch(Ellipse(tuple(mu), w, h, angle=ang, fill=False, lw=2.2, color=color,
                             gid=f"ellipse_{who}", zorder=4))
        ax.plot(*mu, marker="X", ms=12, color=color, mec="white", mew=1.2, ls="none", gid=f"mean_{who}",
                zorder=5)
    ax.add_patch(FancyArrowPatch(tuple(mu1), tuple(mu2), arrowstyle="<|-|>", mutation_scale=14, color=_INK,
                                 lw=1.8, shrinkA=6, shrinkB=6, gid="mean_gap", zorder=6))
    ax.legend(loc="upper left", fontsize=9.5, framealpha=0.9, edgecolor="none", markerscale=2.5)
    ax.set_title("the Gaussians FID fits: mean (cross) and 2-sigma ellipse", fontsize=10.5)

    share = 100.0 * mean_term / total if total > 0 else float("nan")
    lines = [
        (r"$d^2 = \Vert\mu_1-\mu_2\Vert^2 + \mathrm{tr}\,(S_1+S_2-2(S_1S_2)^{1/2})$", _INK, 12),
        ("", _INK, 6),
        ("mean term (the black arrow, squared)", _INK, 10.5),
        (rf"$\Vert\mu_1-\mu_2\Vert^2 = {mean_term:.2f}$", _INK, 13),
        ("", _INK, 6),
        ("covariance term (the ellipses' shapes)", _INK, 10.5),
        (rf"$\mathrm{{tr}}\,(S_1+S_2-2(S_1S_2)^{{1/2}}) = {cov_term:.2f}$", _INK, 13),
        ("", _INK, 6),
        (rf"Fréchet distance $d^2 = {total:.2f}$", _INK, 13),
        (f"({share:.0f} % from the means, {100 - share:.0f} % from the shapes)", "#555555", 10.5),
        ("", _INK, 6),
        (f"{n} points per cloud; statistics as FID", "#777777", 9.5),
        ("computes them (sample mean, unbiased S)", "#777777", 9.5),
    ]
    x_text = (ax_w + 0.35) / (ax_w + 4.8)
    y = 1.0 - 0.5 / fig_h
    for text, color, size in lines:  # one line per entry, spaced in inches so the column fits any height
        if text:
            fig.text(x_text, y, text, ha="left", va="top", fontsize=size, color=color, gid="fd_text")
        y -= (1.9 * size / 72 if text else 0.12) / fig_h
    alt = (f"Two clouds of {n} points in the plane: features of real images (blue) and of generated images "
           f"(red), each with the Gaussian FID fits to it drawn as its mean (a cross) and its 2-sigma ellipse. "
           f"The means are ({mu1[0]:.2f}, {mu1[1]:.2f}) and ({mu2[0]:.2f}, {mu2[1]:.2f}), joined by an arrow. "
           f"The Fréchet distance d^2 = {total:.2f} splits into the mean term |mu_1 - mu_2|^2 = {mean_term:.2f} "
           f"and the covariance term tr(S_1 + S_2 - 2 (S_1 S_2)^(1/2)) = {cov_term:.2f}, "
           f"{share:.0f} % and {100 - share:.0f} % of it.")
    return Schematic(fig, alt, {"real": R, "generated": G, "mu_real": mu1, "S_real": S1, "mu_gen": mu2,
                                "S_gen": S2, "mean_term": mean_term, "cov_term": cov_term, "fid": total})

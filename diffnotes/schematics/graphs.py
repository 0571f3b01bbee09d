"""Node-and-arrow schematics: the forward and reverse chains (lessons 1, 2) and DDIM's graph (lesson 3)."""
from __future__ import annotations

import math

from .._checks import check_int
from .base import FADE, FWD, GREEN, INK, REV, Schematic, arrow, as_images, fit_axes, join_words, new_axes, node, x_label

__all__ = ["forward_reverse_chain", "ddim_graph"]


# --------------------------------------------------------------------------- lessons 1-2
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
    pix = None if images is None else as_images(images, T_shown)

    dx = 2.9
    xs = [k * dx for k in range(T_shown)]
    thumbs = pix is not None
    ylim = (-3.6 if thumbs else -1.9, 1.85)
    xlim = (-1.4, max(xs[-1] + 1.4, 8.4))  # room for the captions when few nodes are drawn
    width = 0.95 * (xlim[1] - xlim[0])
    fig, (ax,) = new_axes(width, width * (ylim[1] - ylim[0]) / (xlim[1] - xlim[0]))
    fit_axes(fig, ax, xlim, ylim)
    for k, x in enumerate(xs):
        node(ax, (x, 0.0), f"${x_label(idx[k])}$", index=idx[k])
    n_fwd = n_rev = 0
    for k in range(T_shown - 1):
        a, b = (xs[k], 0.0), (xs[k + 1], 0.0)
        ls = (0, (4, 3)) if gaps[k] else "-"
        arrow(ax, a, b, color=FWD, gid="forward", rad=-0.45, ls=ls, label=f"{idx[k]}->{idx[k + 1]}")
        arrow(ax, b, a, color=REV, gid="reverse", rad=-0.45, ls=ls, label=f"{idx[k + 1]}->{idx[k]}")
        n_fwd += 1
        n_rev += 1
        mid = 0.5 * (a[0] + b[0])
        if gaps[k]:
            ax.text(mid, 0.05, r"$\cdots$", ha="center", va="center", fontsize=20, color=INK)
            if idx[k + 1].isdigit():
                n = int(idx[k + 1]) - int(idx[k])
                ax.text(mid, -0.22, f"{n} steps", ha="center", va="top", fontsize=10, color="#606060")
            continue
        lo, hi = x_label(idx[k]), x_label(idx[k + 1])
        ax.text(mid, 0.82, rf"$q({hi}\mid {lo})$", ha="center", va="bottom", fontsize=12.5,
                color=FWD, gid="forward_label")
        ax.text(mid, -0.82, rf"$p_\theta({lo}\mid {hi})$", ha="center", va="top", fontsize=12.5,
                color=REV, gid="reverse_label")
    ax.text(xlim[0] + 0.1, 1.6, rf"forward process $q({x_label('t')}\mid {x_label('t-1')})$: fixed, adds noise" + "  \u2192",
            ha="left", va="center", fontsize=12, color=FWD)
    ax.text(xlim[1] - 0.1, -1.62 if not thumbs else -3.35,
            "\u2190  " + rf"reverse process $p_\theta({x_label('t-1')}\mid {x_label('t')})$: learned, removes noise",
            ha="right", va="center", fontsize=12, color=REV)
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
        ax.text(xs[0], -0.55, "data", ha="center", va="top", fontsize=11, color=INK)
        ax.text(xs[-1], -0.55, "noise", ha="center", va="top", fontsize=11, color=INK)

    names = [f"x_{i}" for i in idx]
    alt = (f"Diagram of the diffusion chain with {T_shown} nodes, {join_words(names)}, from data on the left "
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
    fig, (ax,) = new_axes(width, width * (ylim[1] - ylim[0]) / (xlim[1] - xlim[0]))
    fit_axes(fig, ax, xlim, ylim)
    r = 0.34
    title = dict(ha="left", va="bottom", fontsize=12.5, color=INK, fontweight="bold")

    # row 1: DDPM
    y = rows_y[0]
    ax.text(xlim[0] + 0.1, y + 0.95, "DDPM forward process: a Markov chain", **title)
    for t in range(T + 1):
        node(ax, (xs[t], y), f"${x_label(t)}$", r=r, fontsize=13, index=t)
    for t in range(1, T + 1):
        arrow(ax, (xs[t - 1], y), (xs[t], y), color=FWD, gid="markov", r=r, label=f"{t - 1}->{t}")
    ax.text(0.5 * (xs[0] + xs[1]), y - 0.45, rf"$q({x_label('t')}\mid {x_label('t-1')})$", ha="left", va="top",
            fontsize=11.5, color=FWD)

    # row 2: DDIM's non-Markovian forward process
    y = rows_y[1]
    ax.text(xlim[0] + 0.1, y + 2.75, r"DDIM forward process $q_\sigma$: not Markov, every node also depends on $\mathbf{x}_0$",
            **title)
    for t in range(T + 1):
        node(ax, (xs[t], y), f"${x_label(t)}$", r=r, fontsize=13, index=t)
    for t in range(1, T + 1):  # from x_0 to every x_t (arcs above)
        arrow(ax, (xs[0], y), (xs[t], y), color=GREEN, gid="from_x0", r=r, label=f"0->{t}",
               rad=-min(0.5, 0.9 / math.sqrt(t)) if t > 1 else 0.0, lw=1.4)
    for t in range(T, 1, -1):  # x_t -> x_{t-1} (below)
        arrow(ax, (xs[t], y), (xs[t - 1], y), color=FWD, gid="chain", r=r, rad=-0.5, label=f"{t}->{t - 1}")
    ax.text(xlim[0] + 0.1, y - 0.85,
            rf"each ${x_label('t-1')} \sim q_\sigma({x_label('t-1')}\mid {x_label('t')}, {x_label(0)})$: one arrow in from ${x_label('t')}$, "
            rf"one from ${x_label(0)}$", ha="left", va="top", fontsize=11.5, color=INK)
    peak = min(0.5, 0.9 / math.sqrt(T)) * (xs[T] - xs[0]) / 2
    ax.text(0.5 * (xs[0] + xs[T]), y + peak + 0.08, rf"$q_\sigma({x_label(T)}\mid {x_label(0)})$", ha="center",
            va="bottom", fontsize=11.5, color=GREEN)

    # row 3: sampling along tau
    y = rows_y[2]
    tau_txt = ", ".join(str(t) for t in tau)
    ax.text(xlim[0] + 0.1, y + 1.75, rf"Sampling on the subsequence $\tau = ({tau_txt})$: "
            f"{len(tau) - 1} step{'s' if len(tau) > 2 else ''} instead of {T}", **title)
    for t in range(T + 1):
        node(ax, (xs[t], y), f"${x_label(t)}$", r=r, fontsize=13, faded=t not in tau, index=t)
    for t in range(T, 0, -1):  # the full chain, dotted, below
        arrow(ax, (xs[t], y), (xs[t - 1], y), color=FADE, gid="full_step", r=r, rad=-0.55, label=f"{t}->{t - 1}",
               ls=(0, (1.5, 2.5)), lw=1.3)
    for a, b in zip(tau, tau[1:]):
        rad = 0.45 if a - b > 1 else 0.6
        arrow(ax, (xs[a], y), (xs[b], y), color=REV, gid="jump", r=r, rad=rad, lw=2.2, label=f"{a}->{b}")
    a, b = tau[0], tau[1]
    ax.text(0.5 * (xs[a] + xs[b]), y + (0.45 if a - b > 1 else 0.6) * (a - b) * dx / 2 + 0.08,
            rf"$p_\theta({x_label(b)}\mid {x_label(a)})$", ha="center", va="bottom", fontsize=11.5, color=REV)
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

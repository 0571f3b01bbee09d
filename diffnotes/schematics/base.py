"""The frame every schematic shares: :class:`Schematic` (a figure with its alternative text and its
numbers), the colours, and the drawing primitives (axes, nodes, arrows) of :mod:`diffnotes.schematics`."""
from __future__ import annotations

import torch

from .._checks import check_finite

__all__ = ["Schematic", "FWD", "REV", "FADE", "INK", "GREEN", "new_axes", "node", "arrow", "points_per_unit",
           "fit_axes", "bare_axes", "x_label", "as_images", "join_words"]

# colours: forward (fixed) process, reverse (learned) process, faded, ink, accent
FWD = "#1f5fa8"
REV = "#c0392b"
FADE = "#b0b0b0"
INK = "#222222"
GREEN = "#1e8449"


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
def new_axes(width: float, height: float, nrows: int = 1):
    """A ``Figure`` (not pyplot) with ``nrows`` axes of equal aspect and no frame: ``(fig, [ax, ...])``."""
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height), dpi=100)
    axes = fig.subplots(nrows, 1, squeeze=False)[:, 0]
    for ax in axes:
        ax.set_aspect("equal")
        ax.axis("off")
    return fig, list(axes)


def node(ax, xy, label, *, r=0.36, faded=False, fontsize=15, index=None):
    """A node (circle) at ``xy``; faded nodes (steps skipped) have ``gid="skipped_node"``."""
    from matplotlib.patches import Circle

    edge = FADE if faded else INK
    ax.add_patch(Circle(xy, r, facecolor="white", edgecolor=edge, lw=1.2 if faded else 1.8,
                        ls="--" if faded else "-", gid="skipped_node" if faded else "node", zorder=3,
                        label=None if index is None else str(index)))
    ax.text(xy[0], xy[1], label, ha="center", va="center", fontsize=fontsize,
            color=edge, zorder=4, gid="node_label")


def arrow(ax, start, end, *, color, gid, rad=0.0, r=0.36, ls="-", lw=1.8, shrink_extra=2.0, label=None):
    """An arrow between two nodes of radius ``r``; ``label`` ("a->b", the node indices) names its ends."""
    from matplotlib.patches import FancyArrowPatch

    pts = r * points_per_unit(ax) + shrink_extra
    a = FancyArrowPatch(start, end, connectionstyle=f"arc3,rad={rad}", arrowstyle="-|>",
                        mutation_scale=16, color=color, lw=lw, ls=ls, shrinkA=pts, shrinkB=pts,
                        gid=gid, zorder=2, label=label)
    ax.add_patch(a)
    return a


def points_per_unit(ax) -> float:
    """Points per data unit on the x axis (the axes have equal aspect)."""
    fig = ax.figure
    x0, x1 = ax.get_xlim()
    width_in = ax.get_position().width * fig.get_figwidth()
    return 72 * width_in / (x1 - x0)


def fit_axes(fig, ax, xlim, ylim):
    """Give ``ax`` the data limits and make the axes box match them (equal aspect, no slack)."""
    ax.set_xlim(*xlim)
    ax.set_ylim(*ylim)
    ax.set_position([0.0, 0.0, 1.0, 1.0])
    w = xlim[1] - xlim[0]
    h = ylim[1] - ylim[0]
    fig.set_size_inches(fig.get_figwidth(), fig.get_figwidth() * h / w)


def x_label(k) -> str:
    r"""The LaTeX name of node ``k``, :math:`\mathbf{x}_k`."""
    return rf"\mathbf{{x}}_{{{k}}}"


def as_images(images, n: int):
    """``n`` images ``[n, C, H, W]`` (uint8, or floats in [-1, 1]) as uint8 ``[n, H, W, C]`` for ``imshow``."""
    t = torch.as_tensor(images).detach().cpu()
    if t.ndim != 4 or t.shape[0] != n or t.shape[1] not in (1, 3):
        raise ValueError(f"images must have shape [{n}, 3, H, W] (one image per drawn node, T_shown={n}), "
                         f"got {tuple(t.shape)}")
    if t.dtype == torch.uint8:
        return t.permute(0, 2, 3, 1).numpy()
    check_finite("images", t.float())
    t = ((t.float().clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8)
    return t.permute(0, 2, 3, 1).numpy()


def join_words(words) -> str:
    """``a``, ``a and b``, ``a, b and c``: a list of words in a sentence of the alt text."""
    words = list(words)
    if len(words) <= 2:
        return " and ".join(words)
    return ", ".join(words[:-1]) + " and " + words[-1]


def bare_axes(ax, lo, hi) -> None:
    """Equal-aspect axes on the box [lo, hi] with no ticks and light grey spines (a diagram, not a plot)."""
    ax.set_aspect("equal")
    ax.set_xlim(lo[0], hi[0])
    ax.set_ylim(lo[1], hi[1])
    ax.set_xticks([])
    ax.set_yticks([])
    for side in ax.spines.values():
        side.set_color("#cccccc")

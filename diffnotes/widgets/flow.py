r"""The flow explorer of chapter 10: Euler or Heun on :math:`dx/dt = v(x, t)`, with the number of steps and the time
grid as controls, against the exact end of the flow."""
from __future__ import annotations

import ipywidgets as widgets
import numpy as np
import torch

from .._util import CountingModel
from .. import flow_matching as fm
from .base import Explorer, check_reference, new_figure, slider_kw

FLOW_STEPS = (1, 2, 3, 4, 6, 8, 12, 16, 24, 32, 64)
GRIDS = ("uniform", "fine near the data", "fine near the noise")
SOLVERS = {"Euler": fm.sample_euler, "Heun": fm.sample_heun}


def flow_grid(n: int, kind: str) -> torch.Tensor:
    r"""``n`` steps from :math:`t = 1` (noise) to :math:`t = 0` (data), float64 ``[n + 1]``, decreasing.

    ``"uniform"``: :math:`t_i = 1 - i/n` (:func:`diffnotes.flow_matching.time_grid`); ``"fine near the data"``:
    :math:`t_i = (1 - i/n)^2`, steps shrinking towards :math:`t = 0`; ``"fine near the noise"``:
    :math:`t_i = 1 - (i/n)^2`, steps shrinking towards :math:`t = 1`.
    """
    if not isinstance(n, int) or n < 1:
        raise ValueError(f"n must be an integer >= 1, got {n!r}")
    if kind not in GRIDS:
        raise ValueError(f"kind must be one of {GRIDS}, got {kind!r}")
    u = torch.linspace(0.0, 1.0, n + 1, dtype=torch.float64)
    if kind == "uniform":
        return fm.time_grid(n)
    return (1.0 - u) ** 2 if kind == "fine near the data" else 1.0 - u**2


class FlowExplorer(Explorer):
    r"""A flow-matching sampler from fixed noise points: steps, time grid and solver, against the exact flow.

    Runs :func:`diffnotes.flow_matching.sample_euler` or :func:`~diffnotes.flow_matching.sample_heun` on
    :math:`dx/dt = v(x, t)` from the points ``x_1`` at :math:`t = 1` down to :math:`t = 0`, on the grid
    :func:`flow_grid`, and measures the mean distance of the ends to the exact ends
    :math:`\mathrm{ODE}(x_1)` (Heun on 200 uniform steps, computed once). Lipman et al. 2023; Liu et al. 2023
    (straight paths need few steps). Chapter 10.

    Parameters
    ----------
    velocity : callable
        ``velocity(x, t) -> v`` with ``t`` a tensor ``[B]`` (e.g. ``flow_matching.velocity_model(oracle)``).
    x_1 : Tensor [B, 2]
        The fixed starting points (noise) in the plane.
    reference : Tensor [N, 2], optional
        Data points drawn in grey.

    Controls: ``steps`` (:data:`FLOW_STEPS`), ``grid`` (:data:`GRIDS`), ``solver`` (Euler, Heun).
    """

    def __init__(self, velocity, x_1, *, reference=None, steps=4, grid="uniform", solver="Euler"):
        super().__init__()
        x_1 = torch.as_tensor(x_1)
        if x_1.ndim != 2 or x_1.shape[1] != 2 or not x_1.is_floating_point():
            raise ValueError(f"x_1 must be float points [B, 2] in the plane, got {x_1.dtype} {tuple(x_1.shape)}")
        if steps not in FLOW_STEPS:
            raise ValueError(f"steps must be one of {FLOW_STEPS}, got {steps!r}")
        if grid not in GRIDS or solver not in SOLVERS:
            raise ValueError(f"grid must be one of {GRIDS} and solver one of {tuple(SOLVERS)}, got {grid!r}, {solver!r}")
        self.velocity, self.x_1 = velocity, x_1
        self.reference = check_reference(reference)
        with torch.no_grad():
            self.exact_end = fm.sample_heun(velocity, x_1, fm.time_grid(200))
        self.steps = widgets.SelectionSlider(options=list(FLOW_STEPS), value=steps, **slider_kw("steps"))
        self.grid = widgets.Dropdown(options=list(GRIDS), value=grid, description="time grid")
        self.solver = widgets.Dropdown(options=list(SOLVERS), value=solver, description="solver")
        self._watch(self.steps, self.grid, self.solver)

    def compute(self) -> dict:
        """Run the solver with the current controls. Returns ``paths`` (float ``[steps + 1, B, 2]``), ``ends``,
        ``grid`` (the times), ``nfe`` (velocity calls), ``error`` (None) and ``mean_error`` (mean distance of
        the ends to the exact ends)."""
        n, kind, solver = int(self.steps.value), self.grid.value, self.solver.value
        grid = flow_grid(n, kind)
        counter = CountingModel(self.velocity)
        states = [self.x_1]
        with torch.no_grad():
            ends = SOLVERS[solver](counter, self.x_1, grid, callback=lambda s: states.append(s.x_next))
        mean_error = float((ends - self.exact_end).norm(dim=1).mean())
        return dict(steps=n, grid_kind=kind, solver=solver, grid=grid, paths=torch.stack(states), ends=ends,
                    nfe=counter.calls, mean_error=mean_error, error=None)

    def summary(self, result: dict) -> str:
        return (f"{result['solver']}, {result['steps']} steps ({result['grid_kind']}), {result['nfe']} velocity calls: "
                f"mean distance to the exact end {result['mean_error']:.3f}")

    def figure(self, result: dict):
        """The paths from the noise points, their ends, and the exact ends."""
        fig = new_figure((6.2, 5.2))
        ax = fig.subplots()
        if self.reference is not None:
            ax.scatter(self.reference[:, 0], self.reference[:, 1], s=3, c="0.85", label="data")
        paths = result["paths"].double().numpy()
        for b in range(paths.shape[1]):
            ax.plot(paths[:, b, 0], paths[:, b, 1], lw=0.8, alpha=0.6, c="C0")
        ax.scatter(*self.x_1.double().numpy().T, s=10, c="C0", marker="x", label="x_1 (noise)")
        ax.scatter(*self.exact_end.double().numpy().T, s=30, facecolors="none", edgecolors="k", label="exact end")
        ax.scatter(*np.asarray(result["ends"].double()).T, s=12, c="C3", label="sampler's end")
        ax.set_aspect("equal", adjustable="datalim")
        ax.legend(fontsize=8, loc="lower right")
        ax.set_title(f"{result['solver']}, {result['steps']} steps, {result['grid_kind']}: "
                     f"mean error {result['mean_error']:.3f}", fontsize=10)
        return fig

r"""The shared machinery of the explorers: controls, one recomputation per change, the text line and the
figure (:class:`Explorer`), and the helpers every explorer uses (step choices, the fixed starting noise,
drawing samples as an image grid or a scatter). See :mod:`diffnotes.widgets` for how an explorer works.
"""
from __future__ import annotations

import html
import io
import math
import time

import ipywidgets as widgets
import numpy as np
import torch

from .._checks import check_batch, check_finite, check_int
from ..data import make_grid, to_uint8
from ..schedules import Schedule

#: Log-spaced step counts offered by the step / NFE sliders (filtered to ``<= T``).
STEP_CHOICES = (1, 2, 5, 10, 20, 50, 100, 200, 500, 1000)


# ---------------------------------------------------------------------------------------------
# helpers
# ---------------------------------------------------------------------------------------------
def step_choices(T: int) -> list[int]:
    """The values of :data:`STEP_CHOICES` that are ``<= T``, with ``T`` itself appended if missing.

    Every value is a valid number of steps of a ``T``-step schedule (``uniform_timesteps(T, S)``
    accepts ``1 <= S <= T``). Used by the step and NFE sliders.
    """
    T = check_int("T", T, 1)
    out = [s for s in STEP_CHOICES if s <= T]
    if out[-1] != T:
        out.append(T)
    return out


def image_grid(x, nrow: int | None = None, *, padding: int = 2, pad_value: int = 255) -> np.ndarray:
    r"""Images in :math:`[-1, 1]` as one ``H x W x 3`` uint8 array for ``imshow``.

    ``x``: float tensor ``[N, C, H, W]`` or ``[C, H, W]`` with ``C`` = 1 or 3. Pixels are
    quantised by :func:`diffnotes.data.to_uint8` (values outside :math:`[-1, 1]` saturate) and
    tiled by :func:`diffnotes.data.make_grid`, ``nrow`` per row (default: a square-ish grid);
    one channel is repeated to three. Used by every image figure.
    """
    x = torch.as_tensor(x)
    if x.ndim == 3:
        x = x[None]
    if x.ndim != 4 or x.shape[1] not in (1, 3) or x.shape[0] == 0:
        raise ValueError(
            f"x must be images of shape [N, C, H, W] (or [C, H, W]) with C = 1 or 3 and N >= 1, "
            f"got shape {tuple(x.shape)}"
        )
    n = x.shape[0]
    nrow = math.ceil(math.sqrt(n)) if nrow is None else check_int("nrow", nrow, 1)
    grid = make_grid(to_uint8(x.detach().cpu()), nrow, padding=padding, pad_value=pad_value)
    if grid.shape[0] == 1:
        grid = np.repeat(grid, 3, axis=0)
    return np.ascontiguousarray(grid.transpose(1, 2, 0))


def synthetic_image(size: int = 64) -> torch.Tensor:
    r"""A smooth colour gradient with a disc and a square, float32 ``[3, size, size]`` in :math:`[-1, 1]`.

    Stands in for a photograph when no data set is at hand (the ScheduleExplorer default): the
    gradient shows how fast low frequencies drown in noise, the sharp edges how fast high
    frequencies do. Chapter 1.
    """
    size = check_int("size", size, 8)
    u = torch.linspace(0.0, 1.0, size, dtype=torch.float64)
    yy, xx = torch.meshgrid(u, u, indexing="ij")
    img = torch.stack([xx, yy, 1.0 - 0.5 * (xx + yy)])  # red to the right, green downwards
    disc = (xx - 0.35) ** 2 + (yy - 0.4) ** 2 < 0.2**2
    img[:, disc] = torch.tensor([1.0, 0.9, 0.1], dtype=torch.float64)[:, None]  # yellow disc
    square = (xx > 0.55) & (xx < 0.85) & (yy > 0.55) & (yy < 0.85)
    img[:, square] = torch.tensor([0.1, 0.1, 0.6], dtype=torch.float64)[:, None]  # dark blue square
    return (2.0 * img - 1.0).to(torch.float32)


def model_device(model) -> torch.device:
    """The device of ``model``'s parameters (the CPU for a function or an oracle)."""
    try:
        return next(model.parameters()).device
    except (AttributeError, StopIteration, TypeError):
        return torch.device("cpu")


def resolve_schedule(model, schedule) -> Schedule:
    """The explorer's schedule: ``schedule``, else ``model.schedule``; ``ValueError`` if neither is one."""
    if schedule is None:
        schedule = getattr(model, "schedule", None)
    if not isinstance(schedule, Schedule):
        raise ValueError(
            f"schedule must be a diffnotes.schedules.Schedule (or the model must carry one as "
            f"model.schedule), got {type(schedule).__name__}"
        )
    return schedule


def starting_noise(model, x_T, shape, n_images, seed) -> torch.Tensor:
    """The fixed :math:`x_T` of an explorer: ``x_T`` (its first ``n_images``) or drawn from ``seed``."""
    if x_T is None:
        if shape is None:
            raise ValueError("pass x_T (a tensor [B, ...]) or shape (e.g. (3, 32, 32) or (2,)) to draw it")
        n = check_int("n_images", 16 if n_images is None else n_images, 1)
        gen = torch.Generator().manual_seed(int(seed))
        x_T = torch.randn((n, *tuple(shape)), generator=gen, dtype=torch.float32).to(model_device(model))
    else:
        if shape is not None and tuple(x_T.shape[1:]) != tuple(shape):
            raise ValueError(f"shape {tuple(shape)} does not match x_T of shape {tuple(x_T.shape)}")
        check_batch("x_T", x_T)
        check_finite("x_T", x_T)
        if n_images is not None:
            n = check_int("n_images", n_images, 1, x_T.shape[0])
            x_T = x_T[:n]
    x_T = x_T.detach()
    data_kind(x_T)
    return x_T


def data_kind(x) -> str:
    """``"image"`` for [B, C, H, W] with C in (1, 3), ``"points"`` for [B, D] with D >= 2."""
    if x.ndim == 4 and x.shape[1] in (1, 3):
        return "image"
    if x.ndim == 2 and x.shape[1] >= 2:
        return "points"
    raise ValueError(
        f"x_T must hold images [B, C, H, W] with C = 1 or 3 or points [B, D] with D >= 2, "
        f"got shape {tuple(x.shape)}"
    )


def figure_png(fig) -> bytes:
    """Render a matplotlib ``Figure`` to PNG bytes with the Agg canvas (no pyplot, no backend)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    buf = io.BytesIO()
    FigureCanvasAgg(fig).print_png(buf)
    return buf.getvalue()


def new_figure(figsize):
    """A matplotlib ``Figure`` of ``figsize`` inches, not registered with pyplot (drawn with Agg)."""
    from matplotlib.figure import Figure

    return Figure(figsize=figsize, dpi=100, layout="constrained")


def draw_samples(ax, samples, *, title, reference=None, highlight=None):
    """Sample grid (images) or scatter (points) on ``ax``."""
    if data_kind(samples) == "image":
        ax.imshow(image_grid(samples))
        ax.set_axis_off()
    else:
        pts = samples.detach().cpu().double().numpy()
        if reference is not None:
            ref = torch.as_tensor(reference).detach().cpu().double().numpy()
            ax.scatter(ref[:, 0], ref[:, 1], s=4, c="0.8", label="data")
        ax.scatter(pts[:, 0], pts[:, 1], s=10, c="C0", label="samples")
        if highlight is not None:
            ax.scatter(pts[highlight, 0], pts[highlight, 1], s=60, facecolors="none", edgecolors="C3")
        ax.set_aspect("equal", adjustable="datalim")
        if reference is not None:
            ax.legend(loc="upper right", fontsize=8)
    ax.set_title(title, fontsize=10)


def check_reference(reference):
    """Reference data drawn beside the samples, as a CPU tensor, or ``None``; ``ValueError`` if it is not
    images or points."""
    if reference is None:
        return None
    ref = torch.as_tensor(reference).detach().cpu()
    if ref.ndim != 2 or ref.shape[1] < 2:
        raise ValueError(f"reference must be points of shape [N, D] with D >= 2, got {tuple(ref.shape)}")
    return ref


# ---------------------------------------------------------------------------------------------
# the shared machinery
# ---------------------------------------------------------------------------------------------
class Explorer:
    """Controls, one recomputation per change, and the UI (text line + figure).

    Subclasses create their controls, call :meth:`_watch` on them, and implement
    :meth:`compute`, :meth:`figure` and :meth:`summary`.
    """

    def __init__(self):
        self.last_result = None
        self.last_error = None
        self._ui = None
        self._syncing = False
        self._controls: list = []
        self._view_controls: list = []
        self._results: dict = {}   # control values (and seed) -> result, see refresh
        self._message = widgets.HTML(value="")
        self._image = widgets.Image(format="png", layout=widgets.Layout(max_width="100%"))

    def _watch(self, *controls, view_only=False):
        for c in controls:
            c.observe(self._on_change, names="value")
            (self._view_controls if view_only else self._controls).append(c)

    def _sync_controls(self) -> None:
        """Adjust dependent controls (ranges, enabled state) to the current values."""

    def _on_change(self, change) -> None:
        if self._syncing:  # a change made by _sync_controls itself
            return
        self._syncing = True
        try:
            self._sync_controls()
        finally:
            self._syncing = False
        if self._ui is None:
            return
        if change.get("owner") in self._view_controls and self.last_result is not None:
            self._render(self.last_result)
        else:
            self.refresh()

    # -- to be provided ------------------------------------------------------------------
    def compute(self) -> dict:  # pragma: no cover - abstract
        raise NotImplementedError

    def figure(self, result: dict):  # pragma: no cover - abstract
        raise NotImplementedError

    def summary(self, result: dict) -> str:  # pragma: no cover - abstract
        raise NotImplementedError

    # -- UI --------------------------------------------------------------------------------
    _CACHE_SIZE = 48

    def _cache_key(self) -> tuple:
        """What the computation depends on: the values of the controls (view-only ones excluded) and
        the seed."""
        return (getattr(self, "seed", None), *(c.value for c in self._controls))

    def _busy_text(self) -> str:
        return "computing " + ", ".join(f"{c.description.strip()} = {c.value}" for c in self._controls
                                        if getattr(c, "description", "")) + " ..."

    def refresh(self) -> dict | None:
        """Recompute from the controls and redraw the figure (if the UI was built).

        A setting computed before is taken from a cache (the explorers are deterministic: every
        random draw is seeded), so moving a slider back is instant. While a new setting computes,
        the text line says so (the figure keeps the previous setting until the new one is drawn).
        """
        key = self._cache_key()
        cache = self._results
        if key in cache:
            result = dict(cache[key], cached=True)
        else:
            if self._ui is not None:
                self._message.value = f'<span style="color:#8a5a00">&#9203; {html.escape(self._busy_text())}</span>'
            start = time.perf_counter()
            try:
                result = self.compute()
            except Exception as exc:  # shown, not swallowed: widget callbacks have nowhere else to report
                self._show_error(exc)
                return None
            result.setdefault("seconds", time.perf_counter() - start)
            result.setdefault("cached", False)
            if not result.get("error"):
                if len(cache) >= self._CACHE_SIZE:
                    cache.pop(next(iter(cache)))
                cache[key] = result
        self.last_result = result
        self._render(result)
        return result

    def _render(self, result: dict) -> None:
        try:
            if result.get("error"):
                self._message.value = (
                    f'<span style="color:#b00020">{html.escape(result["error"])}</span>'
                )
                self._image.layout.display = "none"
                return
            self._image.value = figure_png(self.figure(result))
            self._image.layout.display = None
            where = " (from the cache)" if result.get("cached") else (
                f" (computed in {result['seconds']:.2f} s)" if "seconds" in result else "")
            self._message.value = html.escape(self.summary(result) + where)
            self.last_error = None
        except Exception as exc:
            self._show_error(exc)

    def _show_error(self, exc: Exception) -> None:
        self.last_error = exc
        self._message.value = (
            f'<span style="color:#b00020">{html.escape(type(exc).__name__)}: {html.escape(str(exc))}</span>'
        )
        self._image.layout.display = "none"

    def show(self) -> widgets.Widget:
        """Build the interface (controls, text line, figure) and draw it once; returns the widget."""
        if self._ui is None:
            controls = widgets.HBox(
                [widgets.VBox(self._controls[: (len(self._controls) + 1) // 2]),
                 widgets.VBox(self._controls[(len(self._controls) + 1) // 2:] + self._view_controls)]
            )
            self._ui = widgets.VBox([controls, self._message, self._image])
            self.refresh()
        return self._ui

    def _ipython_display_(self):
        from IPython.display import display

        display(self.show())


def steps_text(result: dict) -> str:
    """How the steps of a sampler explorer's result read: "N steps for a budget of B" or "adaptive steps"."""
    if result["steps"] is None:  # an adaptive solver
        return f"adaptive steps, tol = {result['tol']:.0e}"
    return f"{result['steps']} steps for a budget of {result['nfe_budget']}"


def slider_kw(description):
    """The keyword arguments every explorer control shares: its label, throttled updates."""
    return dict(description=description, continuous_update=False, style={"description_width": "initial"})


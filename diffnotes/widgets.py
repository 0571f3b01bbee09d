r"""Interactive explorers for the chapters: eta and steps of DDIM, noise schedules, samplers.

Each explorer is a class whose state lives in its ipywidgets controls (sliders, dropdowns),
created by the constructor, so a test can set ``explorer.eta.value = 0.5`` and check the
result of the pure method :meth:`compute` without a browser. The user interface is built only
by :meth:`show` (or by displaying the explorer in a notebook): the controls, a line of text
(the NFE used, or why a combination of settings cannot run) and the figure, drawn with
matplotlib's Agg renderer into an ``ipywidgets.Image``. Every slider is throttled
(``continuous_update=False``) and one change of a control triggers exactly one recomputation.

No reachable control value raises: slider ranges only hold valid values (steps 1..T,
:math:`\eta \in [0, 1]`, ...). A combination that has no meaning (quadratic spacing with more
steps than distinct indices) makes :meth:`compute` return a result whose ``error`` holds the
message, which the interface shows in place of the figure.

=======================  =====================================================  ========
class                    explores                                               chapter
=======================  =====================================================  ========
:class:`EtaExplorer`     DDIM's :math:`\eta` and the number of steps, from one  3
                         fixed :math:`x_T`; the trajectory of :math:`\hat x_0`
:class:`ScheduleExplorer` linear / cosine / respaced :math:`\bar\alpha_t`, SNR,  1, 3, 6
                         and :math:`q(x_t \mid x_0)` of an image
:class:`SamplerExplorer` DDPM, DDIM and the SDE / ODE samplers at equal NFE      5
=======================  =====================================================  ========

Models are the discrete ``model(x_t, t) -> eps_hat`` of every sampler (an oracle's
``eps_model(schedule)``, or ``diffnotes.pretrained()``); data are images ``[B, C, H, W]`` in
:math:`[-1, 1]` (``C`` = 1 or 3) or points ``[B, D]`` (drawn as a scatter of the first two
coordinates).
"""
from __future__ import annotations

import html
import io
import math
import time

import ipywidgets as widgets
import numpy as np
import torch

from . import adapters
from ._checks import check_batch, check_finite, check_int, check_range
from ._util import CountingModel
from .data import make_grid, to_uint8
from .forward import q_sample
from .samplers import sample_ddim, sample_ddpm
from .schedules import Schedule, cosine_schedule, linear_schedule, make_timesteps, respace, uniform_timesteps

__all__ = [
    "STEP_CHOICES",
    "SAMPLERS",
    "step_choices",
    "image_grid",
    "synthetic_image",
    "CountingModel",
    "EtaExplorer",
    "ScheduleExplorer",
    "SamplerExplorer",
]

#: Log-spaced step counts offered by the step / NFE sliders (filtered to ``<= T``).
STEP_CHOICES = (1, 2, 5, 10, 20, 50, 100, 200, 500, 1000)

#: The samplers of :class:`SamplerExplorer`, in the order of its dropdown.
SAMPLERS = (
    "DDPM",
    "DDIM",
    "Euler-Maruyama",
    "predictor-corrector",
    "PF-ODE Euler",
    "PF-ODE Heun",
    "PF-ODE RK45",
    "DPM-Solver++ 2M",
    "Heun (EDM)",
    "Analytic-DPM",
)

# Model calls per step of the fixed-step samplers (PC: one predictor and one corrector call).
_NFE_PER_STEP = {
    "DDPM": 1,
    "DDIM": 1,
    "Euler-Maruyama": 1,
    "predictor-corrector": 2,
    "PF-ODE Euler": 1,
    "PF-ODE Heun": 2,
    "DPM-Solver++ 2M": 1,
    "Heun (EDM)": 2,      # 2 per step but none saved on the last: steps = (NFE + 1) // 2 (see steps_for)
    "Analytic-DPM": 1,
}

# samplers that run on the discrete model's timesteps (the others integrate the matched VP SDE / ODE)
_DISCRETE = ("DDPM", "DDIM", "DPM-Solver++ 2M", "Heun (EDM)", "Analytic-DPM")

_TOLERANCES = (("1e-1", 1e-1), ("1e-2", 1e-2), ("1e-3", 1e-3), ("1e-4", 1e-4), ("1e-5", 1e-5))


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


def _model_device(model) -> torch.device:
    try:
        return next(model.parameters()).device
    except (AttributeError, StopIteration, TypeError):
        return torch.device("cpu")


def _resolve_schedule(model, schedule) -> Schedule:
    if schedule is None:
        schedule = getattr(model, "schedule", None)
    if not isinstance(schedule, Schedule):
        raise ValueError(
            f"schedule must be a diffnotes.schedules.Schedule (or the model must carry one as "
            f"model.schedule), got {type(schedule).__name__}"
        )
    return schedule


def _starting_noise(model, x_T, shape, n_images, seed) -> torch.Tensor:
    """The fixed :math:`x_T` of an explorer: ``x_T`` (its first ``n_images``) or drawn from ``seed``."""
    if x_T is None:
        if shape is None:
            raise ValueError("pass x_T (a tensor [B, ...]) or shape (e.g. (3, 32, 32) or (2,)) to draw it")
        n = check_int("n_images", 16 if n_images is None else n_images, 1)
        gen = torch.Generator().manual_seed(int(seed))
        x_T = torch.randn((n, *tuple(shape)), generator=gen, dtype=torch.float32).to(_model_device(model))
    else:
        if shape is not None and tuple(x_T.shape[1:]) != tuple(shape):
            raise ValueError(f"shape {tuple(shape)} does not match x_T of shape {tuple(x_T.shape)}")
        check_batch("x_T", x_T)
        check_finite("x_T", x_T)
        if n_images is not None:
            n = check_int("n_images", n_images, 1, x_T.shape[0])
            x_T = x_T[:n]
    x_T = x_T.detach()
    _data_kind(x_T)
    return x_T


def _data_kind(x) -> str:
    """``"image"`` for [B, C, H, W] with C in (1, 3), ``"points"`` for [B, D] with D >= 2."""
    if x.ndim == 4 and x.shape[1] in (1, 3):
        return "image"
    if x.ndim == 2 and x.shape[1] >= 2:
        return "points"
    raise ValueError(
        f"x_T must hold images [B, C, H, W] with C = 1 or 3 or points [B, D] with D >= 2, "
        f"got shape {tuple(x.shape)}"
    )


def _figure_png(fig) -> bytes:
    """Render a matplotlib ``Figure`` to PNG bytes with the Agg canvas (no pyplot, no backend)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    buf = io.BytesIO()
    FigureCanvasAgg(fig).print_png(buf)
    return buf.getvalue()


def _new_figure(figsize):
    from matplotlib.figure import Figure

    return Figure(figsize=figsize, dpi=100, layout="constrained")


def _draw_samples(ax, samples, *, title, reference=None, highlight=None):
    """Sample grid (images) or scatter (points) on ``ax``."""
    if _data_kind(samples) == "image":
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


def _check_reference(reference):
    if reference is None:
        return None
    ref = torch.as_tensor(reference).detach().cpu()
    if ref.ndim != 2 or ref.shape[1] < 2:
        raise ValueError(f"reference must be points of shape [N, D] with D >= 2, got {tuple(ref.shape)}")
    return ref


# ---------------------------------------------------------------------------------------------
# the shared machinery
# ---------------------------------------------------------------------------------------------
class _Explorer:
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
            self._image.value = _figure_png(self.figure(result))
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


def _steps_text(result: dict) -> str:
    if result["sampler"] == "PF-ODE RK45":
        return f"adaptive steps, tol = {result['tol']:.0e}"
    return f"{result['steps']} steps for a budget of {result['nfe_budget']}"


def _slider_kw(description):
    return dict(description=description, continuous_update=False, style={"description_width": "initial"})


# ---------------------------------------------------------------------------------------------
# 1. eta and steps of DDIM
# ---------------------------------------------------------------------------------------------
class EtaExplorer(_Explorer):
    r"""DDIM from one fixed :math:`x_T`: the effect of :math:`\eta` and of the number of steps.

    .. math:: x_{\tau_{i-1}} = \sqrt{\bar\alpha_{\tau_{i-1}}}\,\hat x_0
              + \sqrt{1-\bar\alpha_{\tau_{i-1}}-\sigma_{\tau_i}^2(\eta)}\,\hat\epsilon + \sigma_{\tau_i}(\eta)\,z

    With :math:`\eta = 0` the map :math:`x_T \mapsto x_0` is deterministic (the samples do not
    depend on ``seed``); with :math:`\eta = 1` each step is DDPM's posterior. The figure shows the
    samples and, for one of them, the prediction :math:`\hat x_0` at a few of the steps.
    Song et al. 2021 (DDIM), eq. 12 and 16, sec. 4.2 and 5.1. Chapter 3.

    Parameters
    ----------
    model : callable
        ``model(x_t, t) -> eps_hat`` (e.g. ``oracle.eps_model(schedule)`` or
        ``diffnotes.pretrained()``).
    schedule : Schedule, optional
        The schedule the model was trained on; default ``model.schedule``.
    x_T : Tensor [B, ...], optional
        The fixed starting noise: images ``[B, C, H, W]`` or points ``[B, D]``.
    n_images : int, optional
        Use the first ``n_images`` of ``x_T``, or draw that many (default 16) when ``x_T`` is None.
    shape : tuple, optional
        Shape of one sample, to draw ``x_T`` from ``seed`` when it is not given.
    seed : int
        Seeds ``x_T`` (when drawn) and the noise of the steps; the same seed gives the same
        samples on every :meth:`compute`.
    clip_x0 : float, optional
        Passed to :func:`~diffnotes.samplers.sample_ddim` (off by default).
    reference : Tensor [N, D], optional
        Data points drawn in grey behind a 2-D scatter.

    Controls: ``eta`` (0..1), ``steps`` (:func:`step_choices` of T), ``spacing`` (uniform /
    quadratic), ``track`` (which sample's :math:`\hat x_0` trajectory is drawn; redraws only).
    """

    def __init__(self, model, schedule=None, *, x_T=None, n_images=None, shape=None, seed=0,
                 clip_x0=None, reference=None, eta=0.0, steps=50, spacing="uniform"):
        super().__init__()
        self.model = model
        self.schedule = _resolve_schedule(model, schedule)
        self.seed = int(seed)
        self.x_T = _starting_noise(model, x_T, shape, n_images, seed)
        self.clip_x0 = clip_x0
        self.reference = _check_reference(reference)
        check_range("eta", eta, 0.0, 1.0)
        choices = step_choices(self.schedule.T)
        steps = max([s for s in choices if s <= steps] or [choices[0]])
        if spacing not in ("uniform", "quadratic"):
            raise ValueError(f"spacing must be 'uniform' or 'quadratic', got {spacing!r}")
        self.eta = widgets.FloatSlider(value=eta, min=0.0, max=1.0, step=0.05, readout_format=".2f",
                                       **_slider_kw("eta"))
        self.steps = widgets.SelectionSlider(options=choices, value=steps, **_slider_kw("steps S"))
        self.spacing = widgets.Dropdown(options=["uniform", "quadratic"], value=spacing, description="spacing")
        self.track = widgets.IntSlider(value=0, min=0, max=self.x_T.shape[0] - 1,
                                       **_slider_kw("x0_hat of sample"))
        self._watch(self.eta, self.steps, self.spacing)
        self._watch(self.track, view_only=True)

    def compute(self) -> dict:
        r"""Run DDIM with the current controls; record :math:`\hat x_0` at every step.

        Returns
        -------
        dict
            ``samples`` (Tensor, shape of ``x_T``, on the CPU), ``x0_trajectory`` (list with one
            Tensor shaped like ``samples`` per step, :math:`\hat x_0` of every sample),
            ``timesteps`` (the decreasing :math:`\tau`), ``nfe`` (model calls), ``eta``, ``steps``,
            ``spacing`` and ``error`` (None, or the message when the combination is not valid;
            then ``samples`` and ``timesteps`` are None).
        """
        eta, S, spacing = float(self.eta.value), int(self.steps.value), self.spacing.value
        out = dict(eta=eta, steps=S, spacing=spacing, samples=None, x0_trajectory=[], timesteps=None,
                   nfe=0, error=None)
        try:
            ts = make_timesteps(self.schedule.T, S, spacing)
        except ValueError as exc:  # quadratic spacing with more steps than distinct indices
            out["error"] = str(exc)
            return out
        counter = CountingModel(self.model)
        trajectory = []
        generator = torch.Generator().manual_seed(self.seed)
        with torch.no_grad():
            x0 = sample_ddim(counter, self.x_T, ts, schedule=self.schedule, eta=eta, clip_x0=self.clip_x0,
                             generator=generator,
                             callback=lambda info: trajectory.append(info["x0_hat"].detach().cpu()))
        out.update(samples=x0.detach().cpu(), x0_trajectory=trajectory, timesteps=ts, nfe=counter.calls)
        return out

    def summary(self, result: dict) -> str:
        return (f"eta = {result['eta']:.2f}, {result['steps']} steps ({result['spacing']} spacing), "
                f"NFE = {result['nfe']}, seed = {self.seed}")

    def figure(self, result: dict):
        """Samples (top or left) and the :math:`\\hat x_0` trajectory of sample ``track``."""
        k = min(int(self.track.value), result["samples"].shape[0] - 1)
        traj, ts = result["x0_trajectory"], result["timesteps"]
        title = f"DDIM, eta = {result['eta']:.2f}, {result['steps']} steps ({result['spacing']})"
        if _data_kind(result["samples"]) == "image":
            fig = _new_figure((9, 7))
            ax_top, ax_strip = fig.subplots(2, 1, height_ratios=[3, 1])
            _draw_samples(ax_top, result["samples"], title=title)
            n_show = min(8, len(traj))
            picks = sorted({int(round(j)) for j in np.linspace(0, len(traj) - 1, n_show)})
            strip = torch.stack([traj[j][k] for j in picks])
            ax_strip.imshow(image_grid(strip, nrow=len(picks)))
            h, w = strip.shape[-2:]
            ax_strip.set_xticks([2 + j * (w + 2) + w / 2 for j in range(len(picks))])
            ax_strip.set_xticklabels([f"t={int(ts[j])}" for j in picks], fontsize=8)
            ax_strip.set_yticks([])
            ax_strip.set_title(f"x0_hat of sample {k} over the steps", fontsize=10)
            return fig
        fig = _new_figure((10, 4.5))
        ax_s, ax_t = fig.subplots(1, 2)
        _draw_samples(ax_s, result["samples"], title=title, reference=self.reference, highlight=k)
        path = torch.stack(traj).double().numpy()  # [steps, B, D]
        if self.reference is not None:
            ax_t.scatter(self.reference[:, 0], self.reference[:, 1], s=4, c="0.85")
        for b in range(path.shape[1]):
            ax_t.plot(path[:, b, 0], path[:, b, 1], lw=0.6, alpha=0.35, c="C0")
        sc = ax_t.scatter(path[:, k, 0], path[:, k, 1], c=np.arange(path.shape[0]), cmap="viridis", s=18,
                          zorder=3)
        ax_t.plot(path[:, k, 0], path[:, k, 1], c="C3", lw=1.2, zorder=2)
        fig.colorbar(sc, ax=ax_t, label="step i")
        ax_t.set_aspect("equal", adjustable="datalim")
        ax_t.set_title(f"x0_hat over the steps (sample {k} in red)", fontsize=10)
        return fig


# ---------------------------------------------------------------------------------------------
# 2. schedules
# ---------------------------------------------------------------------------------------------
class ScheduleExplorer(_Explorer):
    r"""Linear, cosine and respaced schedules: :math:`\bar\alpha_t`, the SNR and a noised image.

    .. math:: x_t = \sqrt{\bar\alpha_t}\,x_0 + \sqrt{1-\bar\alpha_t}\,\epsilon,\qquad
              \mathrm{SNR}(t) = \frac{\bar\alpha_t}{1-\bar\alpha_t}

    with one fixed :math:`\epsilon`, so moving ``t`` only changes the mix. Ho et al. 2020, eq. 4;
    Nichol & Dhariwal 2021, eq. 17 (cosine); Song et al. 2021, sec. 4.2 (respacing);
    Kingma et al. 2021, eq. 2 (SNR). Chapters 1, 3 and 6.

    Parameters
    ----------
    image : Tensor [C, H, W] or [1, C, H, W], optional
        In :math:`[-1, 1]`, ``C`` = 1 or 3 (bytes: convert with :func:`diffnotes.data.to_float`).
        Default: :func:`synthetic_image`, named so in the figure.
    T : int
        Length of the linear and cosine schedules (1000 as in the papers).
    seed : int
        Seeds the fixed noise :math:`\epsilon`.

    Controls: ``kind`` (linear / cosine / respaced), for ``respaced`` the ``base`` schedule,
    ``steps`` and ``spacing``, and ``t`` (an index into the current schedule; for a respaced
    schedule ``0..steps-1``, plotted at its original index).
    """

    def __init__(self, image=None, *, T=1000, seed=0, kind="linear", t=None):
        super().__init__()
        self.synthetic = image is None
        if image is None:
            image = synthetic_image()
        image = torch.as_tensor(image)
        if image.ndim == 4 and image.shape[0] == 1:
            image = image[0]
        if image.ndim != 3 or image.shape[0] not in (1, 3) or not image.dtype.is_floating_point:
            raise ValueError(
                f"image must be a float tensor [C, H, W] (or [1, C, H, W]) with C = 1 or 3 in [-1, 1], "
                f"got {image.dtype} of shape {tuple(image.shape)}"
            )
        check_range("image", image, -1.0, 1.0)
        self.image = image.detach().cpu()
        self.noise = torch.randn(self.image.shape, generator=torch.Generator().manual_seed(int(seed)),
                                 dtype=self.image.dtype)
        T = check_int("T", T, 2)
        self._parents = {"linear": linear_schedule(T), "cosine": cosine_schedule(T)}
        if kind not in ("linear", "cosine", "respaced"):
            raise ValueError(f"kind must be 'linear', 'cosine' or 'respaced', got {kind!r}")
        choices = step_choices(T)
        self.kind = widgets.Dropdown(options=["linear", "cosine", "respaced"], value=kind, description="schedule")
        self.base = widgets.Dropdown(options=["linear", "cosine"], value="linear", description="respace")
        self.steps = widgets.SelectionSlider(options=choices, value=max(s for s in choices if s <= 50),
                                             **_slider_kw("steps S"))
        self.spacing = widgets.Dropdown(options=["uniform", "quadratic"], value="uniform", description="spacing")
        self.t = widgets.IntSlider(value=T // 4 if t is None else check_int("t", t, 0, T - 1), min=0,
                                   max=T - 1, **_slider_kw("t"))
        self._watch(self.kind, self.base, self.steps, self.spacing, self.t)
        self._key = None  # the schedule the t slider is set up for
        self._target = int(self.t.value)  # original index t points at (kept across schedules)
        self._syncing = True
        try:
            self._sync_controls()
        finally:
            self._syncing = False

    def current_schedule(self) -> tuple[Schedule, Schedule]:
        """``(schedule, parent)`` for the controls; raises ValueError for an invalid respacing."""
        if self.kind.value != "respaced":
            s = self._parents[self.kind.value]
            return s, s
        parent = self._parents[self.base.value]
        ts = make_timesteps(parent.T, int(self.steps.value), self.spacing.value)
        return respace(parent, ts), parent

    def _schedule_key(self):
        return (self.kind.value, self.base.value, int(self.steps.value), self.spacing.value)

    def _sync_controls(self) -> None:
        respaced = self.kind.value == "respaced"
        for c in (self.base, self.steps, self.spacing):
            c.disabled = not respaced
        try:
            sched, _ = self.current_schedule()
        except ValueError:
            return  # compute() reports it; t stays as it is
        key = self._schedule_key()
        t = min(int(self.t.value), sched.T - 1)
        if key == self._key:  # the user moved t: remember where it points in the parent
            self._target = int(sched.original_t[t])
            return
        # A new schedule: put t on the kept step nearest to the original index it pointed at,
        # changing the bounds in the order that keeps value <= max at all times.
        self._key = key
        new_t = int((sched.original_t - self._target).abs().argmin())
        if sched.T - 1 >= self.t.max:
            self.t.max = sched.T - 1
            self.t.value = new_t
        else:
            self.t.value = new_t
            self.t.max = sched.T - 1

    def compute(self) -> dict:
        r"""The current schedule's curves, the values at ``t`` and the noised image.

        Returns
        -------
        dict
            ``schedule`` and ``parent`` (Schedule), ``t`` (index into ``schedule``),
            ``t_original`` (the parent's index), ``original_t`` (parent index of every step),
            ``alpha_bar`` and ``snr_db`` (float64 curves of ``schedule``), ``alpha_bar_t`` and
            ``snr_db_t`` (floats), ``x_0`` and ``x_t`` (images ``[C, H, W]``), ``error`` (None or
            the message for an invalid respacing, with the other entries None).
        """
        out = dict(schedule=None, parent=None, t=int(self.t.value), t_original=None, original_t=None,
                   alpha_bar=None, snr_db=None, alpha_bar_t=None, snr_db_t=None, x_0=self.image, x_t=None,
                   error=None)
        try:
            sched, parent = self.current_schedule()
        except ValueError as exc:
            out["error"] = str(exc)
            return out
        t = int(self.t.value)
        if t > sched.T - 1:  # only reachable if the controls were not synchronised
            out["error"] = f"t={t} is outside the schedule's steps 0..{sched.T - 1}"
            return out
        ab = sched.alpha_bar
        ab_t = ab[t]
        out.update(schedule=sched, parent=parent, t_original=int(sched.original_t[t]),
                   original_t=sched.original_t, alpha_bar=ab, snr_db=sched.snr_db,
                   alpha_bar_t=float(ab_t), snr_db_t=float(sched.snr_db[t]),
                   x_t=q_sample(self.image[None], ab_t, eps=self.noise[None])[0])
        return out

    def summary(self, result: dict) -> str:
        return (f"{result['schedule'].name}: t = {result['t']} (original index {result['t_original']}), "
                f"alpha_bar_t = {result['alpha_bar_t']:.4g}, SNR = {result['snr_db_t']:.1f} dB")

    def figure(self, result: dict):
        """alpha_bar and SNR (dB) against the original index, with a marker at t; the noised image."""
        fig = _new_figure((12, 3.8))
        ax_ab, ax_snr, ax_img = fig.subplots(1, 3, width_ratios=[1, 1, 1.1])
        sched, parent = result["schedule"], result["parent"]
        x_par = np.arange(parent.T)
        x_cur = result["original_t"].numpy()
        respaced = sched is not parent
        for ax, cur, par, val, label in (
            (ax_ab, result["alpha_bar"], parent.alpha_bar, result["alpha_bar_t"], "alpha_bar_t"),
            (ax_snr, result["snr_db"], parent.snr_db, result["snr_db_t"], "SNR (dB)"),
        ):
            if respaced:
                ax.plot(x_par, par.numpy(), c="0.75", lw=1, label=parent.name)
                ax.plot(x_cur, cur.numpy(), "o-", ms=3, lw=1, c="C0", label=sched.name)
                ax.legend(fontsize=8)
            else:
                ax.plot(x_cur, cur.numpy(), c="C0", lw=1.5)
            ax.plot([result["t_original"]], [val], "o", c="C3", ms=8, zorder=3)
            ax.set_xlabel("t (original index)")
            ax.set_ylabel(label)
            ax.grid(alpha=0.3)
        ax_ab.set_title(f"{sched.name}: alpha_bar_t = {result['alpha_bar_t']:.4g}", fontsize=10)
        ax_snr.set_title(f"SNR = {result['snr_db_t']:.1f} dB", fontsize=10)
        ax_img.imshow(image_grid(torch.stack([result["x_0"], result["x_t"]]), nrow=2))
        ax_img.set_axis_off()
        what = "synthetic image" if self.synthetic else "image"
        ax_img.set_title(f"x_0 ({what})  |  x_t ~ q(x_t | x_0)\nt = {result['t']}", fontsize=10)
        return fig


# ---------------------------------------------------------------------------------------------
# 3. samplers at equal NFE
# ---------------------------------------------------------------------------------------------
class SamplerExplorer(_Explorer):
    r"""DDPM, DDIM and the SDE / probability-flow ODE samplers from the same :math:`x_T`, by NFE.

    The discrete model is turned into a VP score model by
    :func:`diffnotes.sde.eps_model_as_score`,
    :math:`s_\theta(x, t) = -\hat\epsilon_\theta(x, i(t))/\sqrt{1-\bar\alpha_{i(t)}}`, so every
    sampler uses the same network. The NFE slider sets the budget; each fixed-step sampler gets
    ``max(1, NFE // k)`` steps, ``k`` its model calls per step (Heun: 2, predictor-corrector with
    one corrector step: 2, the others 1), and the NFE shown is the number of model calls counted
    during the run. The adaptive RK45 solver chooses its own steps: its budget is set by the
    tolerance ``tol`` (rtol = atol) instead, and the NFE slider is disabled.
    Ho et al. 2020, Alg. 2; Song et al. 2021 (DDIM), eq. 12; Song et al. 2021b, eq. 6, 13, Alg. 1-5,
    sec. 4.3; Karras et al. 2022, Alg. 1 (Heun). Chapter 9 adds the fast samplers of
    :mod:`diffnotes.fast_samplers` on the model's own timesteps: DPM-Solver++ 2M (Lu et al. 2022),
    Heun in EDM's variables (``2*steps - 1`` calls) and Analytic-DPM (Bao et al. 2022), whose
    variance needs :math:`\Gamma_n = E\lVert\hat\epsilon\rVert^2/d`: it is estimated once per set of
    timesteps from ``reference`` (so Analytic-DPM needs ``reference`` data). Chapter 5.

    Parameters
    ----------
    model, schedule, x_T, n_images, shape, seed, reference : as in :class:`EtaExplorer`.
    sde : VPSDE, optional
        The SDE of the continuous samplers. Default: the VP SDE matched to ``schedule``
        (:math:`\beta(0) = T\beta_1` and :math:`m(1)^2 = \bar\alpha_T`; 0.1 and about 20.1 for the
        DDPM linear schedule). Starting points are ``x_T * sde.prior_std``.
    t_end : float
        Last time of the continuous samplers (1e-3 as in Song et al. 2021b).
    snr : float
        Target signal-to-noise ratio of the predictor-corrector's Langevin step.

    Controls: ``sampler``, ``nfe`` (:func:`step_choices` of T), ``eta`` (DDIM only), ``tol``
    (RK45 only).
    """

    def __init__(self, model, schedule=None, *, x_T=None, n_images=None, shape=None, seed=0, sde=None,
                 t_end=1e-3, snr=0.16, reference=None, sampler="DDIM", nfe=50, eta=0.0):
        from . import sde as sde_mod

        super().__init__()
        self.model = model
        self.schedule = _resolve_schedule(model, schedule)
        self.seed = int(seed)
        self.x_T = _starting_noise(model, x_T, shape, n_images, seed)
        self.sde = adapters.vp_sde_for(self.schedule) if sde is None else sde
        sde_mod.eps_model_as_score(model, self.sde, self.schedule)  # validates the SDE (VP only)
        check_range("t_end", t_end, 0.0, self.sde.T, low_open=True, high_open=True)
        check_range("snr", snr, 0.0, None, low_open=True)
        self.t_end, self.snr = float(t_end), float(snr)
        self.reference = _check_reference(reference)
        if sampler not in SAMPLERS:
            raise ValueError(f"sampler must be one of {SAMPLERS}, got {sampler!r}")
        check_range("eta", eta, 0.0, 1.0)
        choices = step_choices(self.schedule.T)
        nfe = max([s for s in choices if s <= nfe] or [choices[0]])
        self.sampler = widgets.Dropdown(options=list(SAMPLERS), value=sampler, description="sampler")
        self.nfe = widgets.SelectionSlider(options=choices, value=nfe, **_slider_kw("NFE budget"))
        self.eta = widgets.FloatSlider(value=eta, min=0.0, max=1.0, step=0.05, readout_format=".2f",
                                       **_slider_kw("eta (DDIM)"))
        self.tol = widgets.SelectionSlider(options=_TOLERANCES, value=1e-3, **_slider_kw("tol (RK45)"))
        self._gammas: dict = {}   # (reference, timesteps) -> Analytic-DPM's Gamma, see _gamma
        self._watch(self.sampler, self.nfe, self.eta, self.tol)
        self._sync_controls()

    def _sync_controls(self) -> None:
        name = self.sampler.value
        self.eta.disabled = name != "DDIM"
        self.tol.disabled = name != "PF-ODE RK45"
        self.nfe.disabled = name == "PF-ODE RK45"

    def steps_for(self, sampler: str, nfe: int) -> int:
        """Number of steps a fixed-step ``sampler`` gets for the budget ``nfe``: ``max(1, nfe // k)``."""
        if sampler not in _NFE_PER_STEP:
            raise ValueError(f"sampler must be one of {tuple(_NFE_PER_STEP)}, got {sampler!r}")
        if sampler == "Heun (EDM)":          # 2 * steps - 1 calls (no correction onto the data)
            return max(1, (int(nfe) + 1) // 2)
        return max(1, int(nfe) // _NFE_PER_STEP[sampler])

    def compute(self) -> dict:
        """Run the chosen sampler from ``x_T`` with the seed's generator, counting model calls.

        Returns
        -------
        dict
            ``samples`` (Tensor on the CPU, shape of ``x_T``), ``nfe`` (model calls counted),
            ``nfe_budget`` (the slider; None for RK45), ``steps`` (None for RK45, which picks its
            own), ``sampler``, ``eta``, ``tol``, ``timesteps`` (discrete indices or the continuous
            time grid; RK45: its start and end), ``info`` (RK45's solver info, else None) and
            ``error`` (None, or the solver's failure message).
        """
        from . import sde as sde_mod

        name = self.sampler.value
        budget = None if name == "PF-ODE RK45" else int(self.nfe.value)
        out = dict(sampler=name, nfe_budget=budget, eta=float(self.eta.value), tol=float(self.tol.value),
                   samples=None, nfe=0, steps=None, timesteps=None, info=None, error=None)
        counter = CountingModel(self.model)
        generator = torch.Generator().manual_seed(self.seed)
        T = self.schedule.T
        with torch.no_grad():
            if name in _DISCRETE:   # the model's own timesteps, evenly spaced
                from . import fast_samplers as fs

                steps = self.steps_for(name, budget)
                ts = uniform_timesteps(T, steps)
                if name == "DDPM":
                    x = sample_ddpm(counter, self.x_T, ts, schedule=self.schedule, generator=generator)
                elif name == "DDIM":
                    x = sample_ddim(counter, self.x_T, ts, schedule=self.schedule, eta=out["eta"],
                                    generator=generator)
                elif name == "DPM-Solver++ 2M":
                    x = fs.sample_dpmpp_2m(counter, self.x_T, ts, schedule=self.schedule)
                elif name == "Heun (EDM)":
                    x = fs.sample_heun(counter, self.x_T, ts, schedule=self.schedule)
                else:
                    if self.reference is None:
                        out["error"] = ("Analytic-DPM estimates its variance from data: create the explorer "
                                        "with reference=<data samples> to use it")
                        return out
                    x = fs.sample_analytic_dpm(counter, self.x_T, ts, schedule=self.schedule, gamma=self._gamma(ts),
                                               generator=generator)
                out.update(steps=steps, timesteps=ts)
            else:
                score = sde_mod.eps_model_as_score(counter, self.sde, self.schedule)
                x_start = self.x_T * self.sde.prior_std
                if name == "PF-ODE RK45":
                    try:
                        x, info = sde_mod.sample_ode_adaptive(
                            score, x_start, (self.sde.T, self.t_end), sde=self.sde, rtol=out["tol"],
                            atol=out["tol"], return_info=True)
                    except RuntimeError as exc:  # solve_ivp gave up
                        out.update(error=str(exc), nfe=counter.calls)
                        return out
                    # steps=None: the solver picks its steps (info["t"] holds the reported times only)
                    out.update(steps=None, timesteps=torch.as_tensor(info["t"]), info=info)
                else:
                    steps = self.steps_for(name, budget)
                    grid = sde_mod.time_grid(steps, self.sde.T, self.t_end)
                    kw = dict(sde=self.sde)
                    if name == "Euler-Maruyama":
                        x = sde_mod.sample_euler_maruyama(score, x_start, grid, generator=generator, **kw)
                    elif name == "predictor-corrector":
                        # batch-averaged Langevin step sizes: per-sample norms distort low-dimensional
                        # data (see sde.sample_pc); the explorer needs no per-image seeding
                        x = sde_mod.sample_pc(score, x_start, grid, snr=self.snr, n_corrector=1,
                                              norm="batch", generator=generator, **kw)
                    elif name == "PF-ODE Euler":
                        x = sde_mod.sample_ode_euler(score, x_start, grid, **kw)
                    else:
                        x = sde_mod.sample_ode_heun(score, x_start, grid, **kw)
                    out.update(steps=steps, timesteps=grid)
        out.update(samples=x.detach().cpu(), nfe=counter.calls)
        return out

    def _gamma(self, ts) -> torch.Tensor:
        """Analytic-DPM's Gamma at ``ts`` from the reference data (cached per set of timesteps; its
        model calls are not counted in the sampler's NFE)."""
        from . import fast_samplers as fs

        key = (id(self.reference), *(int(t) for t in ts))
        cache = self._gammas
        if key not in cache:
            x0 = self.reference.to(self.x_T.dtype)
            cache[key] = fs.estimate_gamma(self.model, x0, ts, schedule=self.schedule,
                                           generator=torch.Generator().manual_seed(self.seed + 1))
        return cache[key]

    def summary(self, result: dict) -> str:
        name = result["sampler"]
        extra = f", eta = {result['eta']:.2f}" if name == "DDIM" else ""
        return f"{name}: NFE = {result['nfe']} ({_steps_text(result)}{extra}), seed = {self.seed}"

    def figure(self, result: dict):
        """The samples, titled with the sampler and the NFE actually used."""
        fig = _new_figure((6, 6) if _data_kind(result["samples"]) == "image" else (5.5, 5))
        ax = fig.subplots()
        _draw_samples(ax, result["samples"], reference=self.reference,
                      title=f"{result['sampler']}: NFE = {result['nfe']} ({_steps_text(result)})")
        return fig

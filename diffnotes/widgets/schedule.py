r"""The schedule explorer of chapters 1, 3 and 6: linear, cosine and respaced schedules."""
from __future__ import annotations


import ipywidgets as widgets
import numpy as np
import torch

from .._checks import check_int, check_range
from ..forward import q_sample
from ..schedules import Schedule, cosine_schedule, linear_schedule, make_timesteps, respace
from .base import image_grid, synthetic_image
from .base import (Explorer, new_figure,
                   slider_kw, step_choices)


# ---------------------------------------------------------------------------------------------
# 2. schedules
# ---------------------------------------------------------------------------------------------
class ScheduleExplorer(Explorer):
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
                                             **slider_kw("steps S"))
        self.spacing = widgets.Dropdown(options=["uniform", "quadratic"], value="uniform", description="spacing")
        self.t = widgets.IntSlider(value=T // 4 if t is None else check_int("t", t, 0, T - 1), min=0,
                                   max=T - 1, **slider_kw("t"))
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
        fig = new_figure((12, 3.8))
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

r"""The eta explorer of chapter 3: DDIM's eta and number of steps from one fixed x_T."""
from __future__ import annotations


import ipywidgets as widgets
import numpy as np
import torch

from .._checks import check_range
from .._util import CountingModel
from ..samplers import sample_ddim
from ..schedules import make_timesteps
from .base import image_grid
from .base import (Explorer, check_reference, data_kind, draw_samples, new_figure,
                   resolve_schedule, slider_kw, starting_noise, step_choices)


# ---------------------------------------------------------------------------------------------
# 1. eta and steps of DDIM
# ---------------------------------------------------------------------------------------------
class EtaExplorer(Explorer):
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
        self.schedule = resolve_schedule(model, schedule)
        self.seed = int(seed)
        self.x_T = starting_noise(model, x_T, shape, n_images, seed)
        self.clip_x0 = clip_x0
        self.reference = check_reference(reference)
        check_range("eta", eta, 0.0, 1.0)
        choices = step_choices(self.schedule.T)
        steps = max([s for s in choices if s <= steps] or [choices[0]])
        if spacing not in ("uniform", "quadratic"):
            raise ValueError(f"spacing must be 'uniform' or 'quadratic', got {spacing!r}")
        self.eta = widgets.FloatSlider(value=eta, min=0.0, max=1.0, step=0.05, readout_format=".2f",
                                       **slider_kw("eta"))
        self.steps = widgets.SelectionSlider(options=choices, value=steps, **slider_kw("steps S"))
        self.spacing = widgets.Dropdown(options=["uniform", "quadratic"], value=spacing, description="spacing")
        self.track = widgets.IntSlider(value=0, min=0, max=self.x_T.shape[0] - 1,
                                       **slider_kw("x0_hat of sample"))
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
                             callback=lambda info: trajectory.append(info.x0_hat.detach().cpu()))
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
        if data_kind(result["samples"]) == "image":
            fig = new_figure((9, 7))
            ax_top, ax_strip = fig.subplots(2, 1, height_ratios=[3, 1])
            draw_samples(ax_top, result["samples"], title=title)
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
        fig = new_figure((10, 4.5))
        ax_s, ax_t = fig.subplots(1, 2)
        draw_samples(ax_s, result["samples"], title=title, reference=self.reference, highlight=k)
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

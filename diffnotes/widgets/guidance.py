r"""The guidance explorer of chapter 8: class and classifier-free guidance weight on the real model.

Built like the other explorers of :mod:`diffnotes.widgets` (state in ipywidgets controls, a pure
:meth:`GuidanceExplorer.compute` that a test can call without a browser, one recomputation per
change). Each setting is computed once and cached, so moving back to a setting is instant; while
a new setting is computed the text line says so.
"""
from __future__ import annotations

import ipywidgets as widgets
import torch

from .._checks import check_int, check_range
from ..data import CIFAR10_CLASSES
from ..guidance import cfg_model
from ..samplers import sample_ddim
from ..schedules import uniform_timesteps
from .base import Explorer, draw_samples, new_figure, resolve_schedule, slider_kw, starting_noise

__all__ = ["GuidanceExplorer", "W_CHOICES"]

#: Guidance weights offered by the slider (Ho & Salimans 2022 sweep w from 0 to 4).
W_CHOICES = (0.0, 0.5, 1.0, 2.0, 3.0, 5.0, 8.0)


class GuidanceExplorer(Explorer):
    r"""DDIM samples of one class with classifier-free guidance weight :math:`w`, from a fixed :math:`x_T`.

    .. math:: \tilde\epsilon = (1+w)\,\epsilon_\theta(x_t, y) - w\,\epsilon_\theta(x_t)

    Ho & Salimans 2022, eq. 6; :func:`diffnotes.guidance.cfg_model`. Chapter 8.

    Parameters
    ----------
    model : callable
        A class-conditional ``model(x_t, t, y)`` (``y=None``: no label), e.g.
        ``checkpoints.load_model()``, with ``.schedule`` unless ``schedule`` is given.
    n_images : int
        Images per setting (default 6; each costs about 2 x steps network calls).
    seed : int
        Seeds :math:`x_T`; the same images are redrawn for every class and weight, so the effect of
        the controls is seen on the same noise.
    class_names : sequence of str
        Names of the labels 0..K-1 (default the CIFAR-10 classes).

    Controls: ``label`` (class), ``w`` (:data:`W_CHOICES`), ``steps`` (DDIM steps: 5, 10, 20, 50).
    """

    def __init__(self, model, schedule=None, *, n_images: int = 6, seed: int = 0, shape=(3, 32, 32),
                 class_names=CIFAR10_CLASSES, label: int = 3, w: float = 2.0, steps: int = 10):
        super().__init__()
        self.model = model
        self.schedule = resolve_schedule(model, schedule)
        self.x_T = starting_noise(model, None, shape, check_int("n_images", n_images, 1), seed)
        names = list(class_names)
        check_int("label", label, 0, len(names) - 1)
        check_range("w", w, 0.0, None)
        if w not in W_CHOICES:
            raise ValueError(f"w must be one of {W_CHOICES}, got {w!r}")
        self.label = widgets.Dropdown(options=[(n, i) for i, n in enumerate(names)], value=label, description="class")
        self.w = widgets.SelectionSlider(options=list(W_CHOICES), value=w, **slider_kw("guidance w"))
        step_opts = [s for s in (5, 10, 20, 50) if s <= self.schedule.T]
        if steps not in step_opts:
            raise ValueError(f"steps must be one of {step_opts}, got {steps!r}")
        self.steps = widgets.SelectionSlider(options=step_opts, value=steps, **slider_kw("DDIM steps"))
        self.class_names = names
        self._watch(self.label, self.w, self.steps)

    def compute(self) -> dict:
        """Samples for the current controls (the explorer's ``refresh`` caches each setting).

        Returns ``dict(samples, label, w, steps, nfe, error=None)``; ``samples`` is a CPU tensor
        shaped like ``x_T``, ``nfe`` the network calls per image.
        """
        y, w, S = int(self.label.value), float(self.w.value), int(self.steps.value)
        with torch.no_grad():
            x0 = sample_ddim(cfg_model(self.model, y, w), self.x_T, uniform_timesteps(self.schedule.T, S),
                             schedule=self.schedule, eta=0.0)
        nfe = S if w == 0 else 2 * S
        return dict(samples=x0.detach().cpu().clamp(-1, 1), label=y, w=w, steps=S, nfe=nfe, error=None)

    def _busy_text(self) -> str:
        return f"computing {self.class_names[int(self.label.value)]}, w = {float(self.w.value):g}, {int(self.steps.value)} steps"

    def summary(self, result: dict) -> str:
        return (f"class {result['label']} ({self.class_names[result['label']]}), w = {result['w']:g}: "
                f"{result['steps']} DDIM steps, {result['nfe']} network calls per image")

    def figure(self, result: dict):
        fig = new_figure((1.3 * result["samples"].shape[0] + 0.5, 2.0))
        ax = fig.subplots()
        draw_samples(ax, result["samples"],
                      title=f"{self.class_names[result['label']]}, w = {result['w']:g}")
        return fig

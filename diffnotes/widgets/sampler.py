r"""The sampler explorer of chapters 5 and 9: every sampler of :data:`diffnotes.generate.SAMPLERS` from one
fixed :math:`x_T`, at a budget of network calls."""
from __future__ import annotations

import ipywidgets as widgets
import torch

from .. import adapters
from .. import fast_samplers as fs
from .. import sde as sde_mod
from .._checks import check_range
from .._util import CountingModel
from ..generate import SAMPLERS, run_sampler
from ..schedules import uniform_timesteps
from .base import (Explorer, check_reference, data_kind, draw_samples, new_figure, resolve_schedule, slider_kw,
                   starting_noise, step_choices, steps_text)

_TOLERANCES = (("1e-1", 1e-1), ("1e-2", 1e-2), ("1e-3", 1e-3), ("1e-4", 1e-4), ("1e-5", 1e-5))


# ---------------------------------------------------------------------------------------------
# 3. samplers at equal NFE
# ---------------------------------------------------------------------------------------------
class SamplerExplorer(Explorer):
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

    Controls: ``sampler`` (a name of :data:`diffnotes.generate.SAMPLERS`, shown by its label), ``nfe``
    (:func:`step_choices` of T), ``eta`` (DDIM only), ``tol`` (RK45 only). Every sampler runs through
    :func:`diffnotes.generate.run_sampler`, the dispatch the command line uses; the discrete ones on
    uniformly spaced timesteps.
    """

    def __init__(self, model, schedule=None, *, x_T=None, n_images=None, shape=None, seed=0, sde=None,
                 t_end=1e-3, snr=0.16, reference=None, sampler="ddim", nfe=50, eta=0.0):
        super().__init__()
        self.model = model
        self.schedule = resolve_schedule(model, schedule)
        self.seed = int(seed)
        self.x_T = starting_noise(model, x_T, shape, n_images, seed)
        self.sde = adapters.vp_sde_for(self.schedule) if sde is None else sde
        sde_mod.eps_model_as_score(model, self.sde, self.schedule)  # validates the SDE (VP only)
        check_range("t_end", t_end, 0.0, self.sde.T, low_open=True, high_open=True)
        check_range("snr", snr, 0.0, None, low_open=True)
        self.t_end, self.snr = float(t_end), float(snr)
        self.reference = check_reference(reference)
        names = tuple(n for n, s in SAMPLERS.items() if s.kind != "flow")  # the flow samplers need a velocity model
        if sampler not in names:
            raise ValueError(f"sampler must be one of {names}, got {sampler!r}")
        check_range("eta", eta, 0.0, 1.0)
        choices = step_choices(self.schedule.T)
        nfe = max([s for s in choices if s <= nfe] or [choices[0]])
        self.sampler = widgets.Dropdown(options=[(SAMPLERS[n].label, n) for n in names], value=sampler,
                                        description="sampler")
        self.nfe = widgets.SelectionSlider(options=choices, value=nfe, **slider_kw("NFE budget"))
        self.eta = widgets.FloatSlider(value=eta, min=0.0, max=1.0, step=0.05, readout_format=".2f",
                                       **slider_kw("eta (DDIM)"))
        self.tol = widgets.SelectionSlider(options=_TOLERANCES, value=1e-3, **slider_kw("tol (RK45)"))
        self._gammas: dict = {}   # (reference, timesteps) -> Analytic-DPM's Gamma, see _gamma
        self._watch(self.sampler, self.nfe, self.eta, self.tol)
        self._sync_controls()

    def _sync_controls(self) -> None:
        name = self.sampler.value
        self.eta.disabled = name != "ddim"
        self.tol.disabled = SAMPLERS[name].kind != "adaptive"
        self.nfe.disabled = SAMPLERS[name].kind == "adaptive"

    def steps_for(self, sampler: str, nfe: int) -> int:
        """Number of steps a fixed-step ``sampler`` gets for the budget ``nfe``
        (:meth:`diffnotes.generate.SamplerInfo.steps_for`: ``max(1, nfe // k)``, Heun ``(nfe + 1) // 2``)."""
        if sampler not in SAMPLERS or SAMPLERS[sampler].kind in ("adaptive", "flow"):
            raise ValueError(f"sampler must be one of the fixed-step samplers "
                             f"{tuple(n for n, s in SAMPLERS.items() if s.kind not in ('adaptive', 'flow'))}, got {sampler!r}")
        return SAMPLERS[sampler].steps_for(nfe)

    def compute(self) -> dict:
        """Run the chosen sampler from ``x_T`` with the seed's generator, counting model calls.

        Returns
        -------
        dict
            ``samples`` (Tensor on the CPU, shape of ``x_T``), ``nfe`` (model calls counted),
            ``nfe_budget`` (the slider; None for RK45), ``steps`` (None for RK45, which picks its
            own), ``sampler`` (its name), ``label`` (how it is printed), ``eta``, ``tol``, ``timesteps``
            (discrete indices or the continuous time grid; RK45: the times it reports), ``info`` (RK45's
            solver info, else None) and ``error`` (None, or why it could not run).
        """
        name = self.sampler.value
        spec = SAMPLERS[name]
        budget = None if spec.kind == "adaptive" else int(self.nfe.value)
        out = dict(sampler=name, label=spec.label, nfe_budget=budget, eta=float(self.eta.value),
                   tol=float(self.tol.value), samples=None, nfe=0, steps=None, timesteps=None, info=None, error=None)
        counter = CountingModel(self.model)
        generator = torch.Generator().manual_seed(self.seed)
        common = dict(schedule=self.schedule, sde=self.sde, generator=generator, eta=out["eta"], snr=self.snr,
                      n_corrector=1, t_end=self.t_end, rtol=out["tol"], atol=out["tol"], return_info=True,
                      # batch-averaged Langevin step sizes: per-sample norms distort low-dimensional data
                      # (see sde.sample_pc); the explorer needs no per-image seeding
                      pc_norm="batch")
        with torch.no_grad():
            if spec.kind == "discrete":   # the model's own timesteps, evenly spaced
                steps = self.steps_for(name, budget)
                ts = uniform_timesteps(self.schedule.T, steps)
                if spec.needs_gamma and self.reference is None:
                    out["error"] = ("Analytic-DPM estimates its variance from data: create the explorer "
                                    "with reference=<data samples> to use it")
                    return out
                gamma = self._gamma(ts) if spec.needs_gamma else None
                x, _ = run_sampler(name, counter, self.x_T, timesteps=ts, gamma=gamma, **common)
                out.update(steps=steps, timesteps=ts)
            else:
                x_start = self.x_T * self.sde.prior_std
                if spec.kind == "adaptive":
                    try:
                        x, info = run_sampler(name, counter, x_start, **common)
                    except RuntimeError as exc:  # solve_ivp gave up
                        out.update(error=str(exc), nfe=counter.calls)
                        return out
                    # steps=None: the solver picks its steps (info["t"] holds the reported times only)
                    out.update(steps=None, timesteps=torch.as_tensor(info["t"]), info=info)
                else:
                    steps = self.steps_for(name, budget)
                    x, _ = run_sampler(name, counter, x_start, steps=steps, **common)
                    out.update(steps=steps, timesteps=sde_mod.time_grid(steps, self.sde.T, self.t_end))
        out.update(samples=x.detach().cpu(), nfe=counter.calls)
        return out

    def _gamma(self, ts) -> torch.Tensor:
        """Analytic-DPM's Gamma at ``ts`` from the reference data (cached per set of timesteps; its
        model calls are not counted in the sampler's NFE)."""
        key = (id(self.reference), *(int(t) for t in ts))
        cache = self._gammas
        if key not in cache:
            x0 = self.reference.to(self.x_T.dtype)
            cache[key] = fs.estimate_gamma(self.model, x0, ts, schedule=self.schedule,
                                           generator=torch.Generator().manual_seed(self.seed + 1))
        return cache[key]

    def summary(self, result: dict) -> str:
        extra = f", eta = {result['eta']:.2f}" if result["sampler"] == "ddim" else ""
        return f"{result['label']}: NFE = {result['nfe']} ({steps_text(result)}{extra}), seed = {self.seed}"

    def figure(self, result: dict):
        """The samples, titled with the sampler and the NFE actually used."""
        fig = new_figure((6, 6) if data_kind(result["samples"]) == "image" else (5.5, 5))
        ax = fig.subplots()
        draw_samples(ax, result["samples"], reference=self.reference,
                     title=f"{result['label']}: NFE = {result['nfe']} ({steps_text(result)})")
        return fig

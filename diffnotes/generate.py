r"""Sampling a trained model: the one registry of samplers, and images drawn reproducibly.

* :data:`SAMPLERS` -- every sampler the course teaches, by one name each (``"ddim"``, ``"dpmpp2m"``, ...):
  how it is printed, where it runs (the schedule's own timesteps, a time grid of the VP SDE, an
  adaptive solver, or the flow times of a velocity model), whether it draws noise, how many network calls a step costs, and its defaults. The
  command line (``sample`` / ``fid --sampler``), the sampler explorer (:class:`diffnotes.widgets.SamplerExplorer`)
  and the measurement scripts all name samplers this way;
* :func:`run_sampler` -- the one dispatch from a name to the function of :mod:`diffnotes.samplers`,
  :mod:`diffnotes.fast_samplers` or :mod:`diffnotes.sde` that implements it;
* :func:`sampler_timesteps` -- the timesteps a discrete sampler visits (uniform, quadratic, or EDM's
  :math:`\rho = 7` spacing);
* :func:`sample_images` -- ``n`` images as bytes, image k from seed ``seed + k`` whatever the batch;
* :func:`training_gamma` -- Analytic-DPM's :math:`\Gamma` of a CIFAR-10 model, from training images;
* :class:`Labelled` -- a class-conditional model with its labels fixed, called as ``net(x, t)``.

Seeding
-------
Image k of a run with seed ``s`` (``--seed s`` on the command line) depends only on ``s + k``: its :math:`x_T` is drawn from
``torch.Generator().manual_seed(s + k)`` and every later noise draw of that image (the
:math:`z` of each DDPM / DDIM / Euler-Maruyama / predictor-corrector step) continues the same
generator (:class:`diffnotes._util.PerSampleGenerator`). So ``--n 10 --batch-size 3`` and ``--n 4
--batch-size 4`` give the same first four images, and ``--seed 5 --n 1`` reproduces image 5 of
``--seed 0``. Generators live on the CPU, so the noise is the same on every device. What can
still differ between batch sizes is floating-point round-off of the batched network (about
1e-6 in float32, which after rounding to bytes flips an occasional pixel by one level; use
``--dtype float64`` for bit-identical images). Exceptions: ``ode_rk45`` integrates each batch
as one ODE with shared adaptive step sizes, so its images depend on the batch up to the
solver tolerance (``--rtol``, ``--atol``); ``pc --pc-norm batch`` sizes the Langevin steps by
norms averaged over the batch.

The continuous samplers integrate the VP SDE of the model's schedule, :func:`vp_sde_for` (the one bridge
of :mod:`diffnotes.adapters`). Chapters 3, 5, 7 and 9; ``python -m diffnotes sample``.
"""
from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np
import torch

from . import adapters
from . import fast_samplers as fs
from . import flow_matching as fm
from . import flow_net
from . import samplers as S
from . import sde as D
from ._checks import check_int, check_range
from ._util import CountingModel, PerSampleGenerator, carry_trained_attrs
from .data import load_cifar10, to_float, to_uint8
from .forward import eps_from_score, x0_from_eps
from .schedules import make_timesteps, uniform_timesteps

__all__ = [
    "SamplerInfo",
    "SAMPLERS",
    "SPACINGS",
    "run_sampler",
    "sampler_timesteps",
    "sample_images",
    "training_gamma",
    "vp_sde_for",
    "Labelled",
]


@dataclass(frozen=True)
class SamplerInfo:
    """One sampler of the registry.

    ``kind``: ``"discrete"`` (runs on the schedule's timesteps), ``"sde"`` (a uniform time grid of the VP
    SDE), ``"adaptive"`` (an ODE solver that picks its own steps) or ``"flow"`` (a uniform grid of flow
    times from 1 to 0, for a velocity model, :class:`diffnotes.flow_net.VelocityNet`). ``stochastic``: draws noise after
    :math:`x_T` (``None``: DDIM, which does when :math:`\\eta > 0`). ``nfe_per_step``: network calls per
    step (the Heun samplers save one on their last step, into ``t = 0``: ``euler_last``; see :meth:`nfe`). ``default_steps``: steps when none are
    given (``None``: all T, or adaptive). ``spacing``: the default spacing of a discrete sampler's
    timesteps. ``needs_gamma``: Analytic-DPM needs :math:`\\Gamma` estimated from data (:func:`training_gamma`).
    """

    name: str
    label: str
    kind: str
    stochastic: bool | None
    nfe_per_step: int
    default_steps: int | None
    spacing: str
    paper: str
    needs_gamma: bool = False
    euler_last: bool = False

    def nfe(self, steps: int) -> int:
        """Network calls of ``steps`` steps (PC with one corrector step); one fewer where the last step is an
        Euler step (``euler_last``: the Heun samplers, ``2 * steps - 1``)."""
        return self.nfe_per_step * int(steps) - int(self.euler_last)

    def timesteps(self, schedule, steps: int | None = None, spacing: str | None = None) -> torch.Tensor:
        """The timesteps this discrete sampler visits on ``schedule``: ``steps`` of them (default: its own, or
        all T) spaced by ``spacing`` (default: its own), :func:`sampler_timesteps`."""
        if self.kind != "discrete":
            raise ValueError(f"sampler {self.name!r} runs on a time grid, not on the schedule's timesteps")
        return sampler_timesteps(schedule.T, steps or self.default_steps or schedule.T, spacing or self.spacing,
                                 schedule=schedule)

    def steps_for(self, nfe: int) -> int:
        """The most steps whose calls fit the budget ``nfe`` (at least one)."""
        return max(1, (int(nfe) + int(self.euler_last)) // self.nfe_per_step)


SAMPLERS: dict[str, SamplerInfo] = {s.name: s for s in (
    SamplerInfo("ddpm", "DDPM", "discrete", True, 1, None, "uniform", "Ho et al. 2020, Alg. 2"),
    SamplerInfo("ddim", "DDIM", "discrete", None, 1, 100, "uniform", "Song et al. 2021a, eq. 12"),
    SamplerInfo("dpmpp2m", "DPM-Solver++ 2M", "discrete", False, 1, 20, "karras", "Lu et al. 2022, Alg. 2"),
    SamplerInfo("heun", "Heun (EDM)", "discrete", False, 2, 10, "karras", "Karras et al. 2022, Alg. 1",
                euler_last=True),
    SamplerInfo("analytic", "Analytic-DPM", "discrete", True, 1, 25, "uniform", "Bao et al. 2022, eq. 7",
                needs_gamma=True),
    SamplerInfo("euler_maruyama", "Euler-Maruyama", "sde", True, 1, 1000, "uniform", "Song et al. 2021b, eq. 6"),
    SamplerInfo("pc", "predictor-corrector", "sde", True, 2, 1000, "uniform", "Song et al. 2021b, Alg. 1-5"),
    SamplerInfo("ode_euler", "PF-ODE Euler", "sde", False, 1, 100, "uniform", "Song et al. 2021b, eq. 13"),
    SamplerInfo("ode_heun", "PF-ODE Heun", "sde", False, 2, 100, "uniform", "Song et al. 2021b, eq. 13"),
    SamplerInfo("ode_rk45", "PF-ODE RK45", "adaptive", False, 1, None, "uniform", "Song et al. 2021b, eq. 13"),
    SamplerInfo("flow_euler", "Euler (flow)", "flow", False, 1, 32, "uniform", "Liu et al. 2023, sec. 2"),
    SamplerInfo("flow_heun", "Heun (flow)", "flow", False, 2, 16, "uniform", "Karras et al. 2022, Alg. 1",
                euler_last=True),
)}

#: Spacings of a discrete sampler's timesteps: :func:`diffnotes.schedules.make_timesteps`' two, and
#: "karras", EDM's rho = 7 spacing (:func:`diffnotes.fast_samplers.karras_timesteps`) from the same first step.
SPACINGS = ("uniform", "quadratic", "karras")


def _info(name: str) -> SamplerInfo:
    if name not in SAMPLERS:
        raise ValueError(f"sampler must be one of {tuple(SAMPLERS)}, got {name!r}")
    return SAMPLERS[name]


def vp_sde_for(schedule):
    """The VP SDE of :func:`diffnotes.adapters.vp_sde_for` (the one bridge, shared with the sampler
    explorer), for a model trained with a linear schedule; ``ValueError`` for any other, since only a
    linear schedule has that SDE as its limit."""
    if not adapters.is_linear(schedule):
        raise ValueError(
            f"the continuous samplers ({', '.join(n for n, s in SAMPLERS.items() if s.kind != 'discrete')}) "
            f"need a model trained with a linear beta schedule (its limit is the VP SDE), got schedule "
            f"{schedule.name!r}; use a discrete sampler ({', '.join(n for n, s in SAMPLERS.items() if s.kind == 'discrete')})"
        )
    return adapters.vp_sde_for(schedule)


def sampler_timesteps(T: int, steps: int, spacing: str = "uniform", *, schedule=None) -> torch.Tensor:
    """The ``steps`` timesteps (decreasing indices into a schedule of ``T`` steps) a discrete sampler
    visits: ``"uniform"`` / ``"quadratic"`` (:func:`diffnotes.schedules.make_timesteps`) or ``"karras"``
    (EDM's rho = 7 spacing between the uniform grid's first step and 0; needs ``schedule``)."""
    if spacing not in SPACINGS:
        raise ValueError(f"spacing must be one of {SPACINGS}, got {spacing!r}")
    if spacing != "karras":
        return make_timesteps(T, steps, spacing)
    if schedule is None:
        raise ValueError("spacing 'karras' needs the schedule (its noise levels set the spacing)")
    return fs.karras_timesteps(schedule, steps, t_max=int(uniform_timesteps(T, steps)[0]))


def run_sampler(name: str, model, x_T: torch.Tensor, *, schedule, timesteps=None, steps: int | None = None,
                sde=None, generator=None, eta: float = 0.0, clip_x0: float | None = None, gamma=None,
                snr: float = 0.16, n_corrector: int = 1, pc_norm: str = "sample", t_end: float = 1e-3,
                rtol: float = 1e-5, atol: float = 1e-5, return_info: bool = False):
    """Run the sampler ``name`` of :data:`SAMPLERS` from ``x_T``: the one dispatch.

    Discrete samplers visit ``timesteps`` (:func:`sampler_timesteps`) of ``schedule`` with the noise
    model ``model(x, t)``; ``eta`` and ``clip_x0`` are DDIM's / DDPM's, ``gamma`` Analytic-DPM's
    :math:`\\Gamma` at ``timesteps``. The others wrap ``model`` as a score
    (:func:`diffnotes.sde.eps_model_as_score`) and integrate ``sde`` from ``sde.T`` to ``t_end``: on
    :func:`diffnotes.sde.time_grid` of ``steps`` steps, or adaptively (``ode_rk45``: ``rtol``, ``atol``).
    ``snr``, ``n_corrector`` and ``pc_norm`` are the predictor-corrector's. The flow samplers run
    :func:`diffnotes.flow_matching.sample_euler` / ``sample_heun`` with a velocity model on
    :func:`diffnotes.flow_matching.time_grid` of ``steps`` steps. Returns the samples, and with
    ``return_info`` also the adaptive solver's info (``None`` for the others).
    """
    info = _info(name)
    out_info = None
    if info.kind == "flow":  # a velocity model, model(x, t) with flow time t, on the uniform grid
        if steps is None:
            raise ValueError(f"sampler {name!r} needs steps")
        solver = fm.sample_euler if name == "flow_euler" else fm.sample_heun
        x = solver(model, x_T, fm.time_grid(steps))
        return (x, out_info) if return_info else x
    if info.kind == "discrete":
        if timesteps is None:
            raise ValueError(f"sampler {name!r} runs on timesteps: pass timesteps=sampler_timesteps(...)")
        if name == "ddpm":
            x = S.sample_ddpm(model, x_T, timesteps, schedule=schedule, clip_x0=clip_x0, generator=generator)
        elif name == "ddim":
            x = S.sample_ddim(model, x_T, timesteps, schedule=schedule, eta=eta, clip_x0=clip_x0, generator=generator)
        elif name == "dpmpp2m":
            x = fs.sample_dpmpp_2m(model, x_T, timesteps, schedule=schedule)
        elif name == "heun":
            x = fs.sample_heun(model, x_T, timesteps, schedule=schedule)
        else:
            if gamma is None:
                raise ValueError("Analytic-DPM needs gamma, its Gamma at each timestep estimated from data "
                                 "(training_gamma, or fast_samplers.estimate_gamma)")
            x = fs.sample_analytic_dpm(model, x_T, timesteps, schedule=schedule, gamma=gamma, generator=generator)
        return (x, out_info) if return_info else x
    if sde is None:
        raise ValueError(f"sampler {name!r} integrates an SDE / ODE: pass sde=vp_sde_for(schedule)")
    score = D.eps_model_as_score(model, sde, schedule)
    if name == "ode_rk45":
        x, out_info = D.sample_ode_adaptive(score, x_T, (sde.T, t_end), sde=sde, rtol=rtol, atol=atol,
                                            return_info=True)
        return (x, out_info) if return_info else x
    if steps is None:
        raise ValueError(f"sampler {name!r} needs steps")
    grid = D.time_grid(steps, sde.T, t_end)
    if name == "euler_maruyama":
        x = D.sample_euler_maruyama(score, x_T, grid, sde=sde, generator=generator)
    elif name == "pc":
        x = D.sample_pc(score, x_T, grid, sde=sde, snr=snr, n_corrector=n_corrector, norm=pc_norm, generator=generator)
    elif name == "ode_euler":
        x = D.sample_ode_euler(score, x_T, grid, sde=sde)
    else:
        x = D.sample_ode_heun(score, x_T, grid, sde=sde)
    return (x, out_info) if return_info else x


def training_gamma(model, timesteps, *, schedule=None, n: int = 1000, seed: int = 0, root=None) -> torch.Tensor:
    r"""Analytic-DPM's :math:`\Gamma_n` of a CIFAR-10 model at ``timesteps``, estimated on the first ``n``
    training images with one noise draw each from ``torch.Generator().manual_seed(seed)``
    (:func:`diffnotes.fast_samplers.estimate_gamma`, Bao et al. 2022, eq. 8).

    The estimate recorded with the shipped model's measurements (``scripts/model_card/fid_rows.py``,
    ``scripts/fast_samplers/bits_per_dim.py``) and used by ``sample --sampler analytic``. The images come
    from :func:`diffnotes.data.load_cifar10` (``root``, else ``$DIFFNOTES_CIFAR10``; never downloaded).
    ``schedule`` defaults to ``model.schedule``. Float64 ``[len(timesteps)]``."""
    images, _ = load_cifar10(root, split="train", download=False)
    if not 1 <= n <= images.shape[0]:
        raise ValueError(f"n must be between 1 and {images.shape[0]} (the training images), got {n}")
    x0 = to_float(torch.from_numpy(np.ascontiguousarray(images[:n])))
    with torch.no_grad():
        return fs.estimate_gamma(model, x0, timesteps, schedule=schedule or model.schedule,
                                 batch_size=250, generator=torch.Generator().manual_seed(seed))


class Labelled(torch.nn.Module):
    """``model`` with its class labels fixed: called as ``net(x, t)``, it returns ``model(x, t, y)``;
    it keeps the trained-model attributes (:func:`diffnotes._util.carry_trained_attrs`)."""

    def __init__(self, model, y: torch.Tensor):
        super().__init__()
        self.model, self.y = model, y
        carry_trained_attrs(model, self)

    def forward(self, x, t):
        return self.model(x, t, self.y)


def _image_shape(model) -> tuple:
    """(C, H, W) of the images a loaded model was trained on (``config.json``'s model kwargs)."""
    kwargs = (getattr(model, "config", None) or {}).get("model", {}).get("kwargs", {})
    c = int(kwargs.get("in_channels", 3))
    s = int(kwargs.get("image_size", 32))
    return (c, s, s)


def _denoise(score_model, x, sde, t_end: float):
    """Tweedie's estimate of x_0 at ``t_end``: one more network call (Song et al. 2021b, app. G)."""
    t = torch.full((x.shape[0],), float(t_end), dtype=x.dtype, device=x.device)
    m, _ = sde.marginal_coefs(float(t_end))
    alpha_bar = m**2
    return x0_from_eps(x, eps_from_score(score_model(x, t), alpha_bar), alpha_bar)


def sample_images(model, n: int, *, sampler: str = "ddim", steps: int | None = None, eta: float = 0.0,
                  spacing: str | None = None, seed: int = 0, batch_size: int = 256, device=None,
                  dtype: torch.dtype = torch.float32, clip_x0: float | None = None, t_end: float = 1e-3,
                  snr: float = 0.16, n_corrector: int = 1, pc_norm: str = "sample", rtol: float = 1e-5,
                  atol: float = 1e-5, denoise: bool = True, gamma=None, progress: bool = True,
                  info: dict | None = None, label: int | str | None = None) -> torch.Tensor:
    r"""Draw ``n`` images from ``model`` (with ``.schedule``) as ``uint8 [n, C, H, W]`` on the CPU.

    Image k starts from :math:`x_T \sim N(0, I)` drawn from ``torch.Generator().manual_seed(seed + k)``
    and takes all its later noise from that generator (:class:`diffnotes._util.PerSampleGenerator`), so
    it does not depend on ``n`` or ``batch_size`` (up to the round-off of the batched network; ``ode_rk45``
    shares its adaptive steps across a batch, and ``pc_norm="batch"`` its Langevin step sizes). The result
    is quantised with :func:`diffnotes.data.to_uint8`. The model is moved to ``device`` and ``dtype`` and
    set to eval mode in place (as ``nn.Module.to`` does). A latent model
    (:class:`diffnotes.autoencoder.LatentDiffusion`) samples latents and decodes them before quantising. A
    velocity model (:class:`diffnotes.flow_net.VelocityNet`) is sampled by the flow samplers only
    (``flow_euler``, ``flow_heun``: from :math:`x_1 \sim N(0, I)` at ``t = 1`` to ``t = 0``), and a noise model
    by all the others.

    Parameters
    ----------
    sampler : str
        A name of :data:`SAMPLERS` (:func:`run_sampler`). Discrete samplers run on ``steps`` timesteps
        of the model's schedule chosen by ``spacing`` (default: the sampler's, :func:`sampler_timesteps`);
        the others integrate the VP SDE of the schedule (:func:`vp_sde_for`) from ``t = 1`` to ``t_end``,
        and with ``denoise`` their result is the Tweedie estimate :math:`\hat x_0` at ``t_end``.
    steps : int, optional
        Default: the sampler's (``ddpm``: all T steps). Not used by ``ode_rk45``.
    eta, clip_x0
        DDIM's :math:`\eta` (``ddim`` only); clamp :math:`\hat x_0` to ``[-clip_x0, clip_x0]`` inside each
        ``ddpm`` / ``ddim`` step.
    snr, n_corrector, pc_norm
        ``pc`` options (:func:`diffnotes.sde.sample_pc`). ``pc_norm="sample"`` (default) sizes each
        image's Langevin step by its own norms, which keeps image k independent of its batch.
    gamma : tensor, optional
        ``analytic``: :math:`\Gamma` at the timesteps (:func:`training_gamma`); required.
    info : dict, optional
        Filled with ``steps`` (used), ``nfe`` (network calls per batch, mean), ``seconds`` and ``spacing``.
    label : int, "cycle" or None
        For a class-conditional network: every image of class ``label``; ``"cycle"``: image k of class
        ``(seed + k) % num_classes``; ``None``: no label (the network's unconditional model).
    """
    spec = _info(sampler)
    n = check_int("n", n, 1)
    batch_size = check_int("batch_size", batch_size, 1)
    seed = check_int("seed", seed, 0, 2**63 - n)
    if getattr(model, "schedule", None) is None:
        raise ValueError(f"this model ({type(model).__name__}) has no noise schedule, so it is not a diffusion model to sample from; "
                         f"load a diffusion model (for latent diffusion: the latent model, e.g. 'cifar10-ldm')")
    schedule = model.schedule
    num_classes = int(getattr(model, "num_classes", 0) or 0)
    if label is not None:
        if not num_classes:
            raise ValueError(f"label={label!r} needs a class-conditional model; this one is unconditional")
        if label != "cycle" and not (isinstance(label, int) and 0 <= label < num_classes):
            raise ValueError(f"label must be a class in 0..{num_classes - 1}, 'cycle' or None, got {label!r}")
    is_flow = isinstance(model, flow_net.VelocityNet)
    if is_flow != (spec.kind == "flow"):
        flow_names = ", ".join(k for k, v in SAMPLERS.items() if v.kind == "flow")
        if is_flow:
            raise ValueError(f"this is a velocity model (trained with objective='flow'): sample it with {flow_names}, "
                             f"not {sampler!r}")
        raise ValueError(f"sampler {sampler!r} integrates a velocity model (trained with objective='flow', e.g. "
                         f"'cifar10-flow'); this one predicts noise: use a sampler of "
                         f"{', '.join(k for k, v in SAMPLERS.items() if v.kind != 'flow')}")
    sde = vp_sde_for(schedule) if spec.kind in ("sde", "adaptive") else None
    if spec.kind == "adaptive":
        if steps is not None:
            raise ValueError(f"steps does not apply to sampler {sampler!r} (adaptive); set rtol/atol instead")
    else:
        if steps is None:
            steps = spec.default_steps or schedule.T
        steps = check_int("steps", steps, 1, schedule.T if spec.kind == "discrete" else None)
    if eta != 0.0 and sampler != "ddim":
        raise ValueError(f"eta applies only to sampler 'ddim', got eta={eta} with sampler {sampler!r}")
    check_range("eta", eta, 0.0, None)
    if spacing is not None and spacing not in SPACINGS:
        raise ValueError(f"spacing must be one of {SPACINGS}, got {spacing!r}")
    if spacing not in (None, "uniform") and spec.kind != "discrete":
        raise ValueError(f"spacing={spacing!r} applies only to the discrete samplers; {sampler!r} uses a uniform "
                         f"time grid")
    if clip_x0 is not None and sampler not in ("ddpm", "ddim"):
        raise ValueError(f"clip_x0 applies only to ddpm and ddim, got sampler {sampler!r}")
    if gamma is not None and not spec.needs_gamma:
        raise ValueError(f"gamma applies only to sampler 'analytic', got sampler {sampler!r}")
    if sde is not None:
        check_range("t_end", t_end, 0.0, sde.T, low_open=True, high_open=True)
    spacing = spacing or spec.spacing
    ts = None
    if spec.kind == "discrete":  # fail on bad (steps, spacing) or a missing gamma before any work
        ts = spec.timesteps(schedule, steps, spacing)
        if spec.needs_gamma and (gamma is None or torch.as_tensor(gamma).numel() != len(ts)):
            raise ValueError(f"sampler {sampler!r} needs gamma with one value per timestep ({len(ts)}): "
                             f"training_gamma(model, sampler_timesteps(...))")
    device = torch.device(device) if device is not None else next(model.parameters()).device
    model = model.to(device=device, dtype=dtype).eval()
    # samplers that must draw noise after x_T (ddpm/ddim add none at their last step, onto x_0)
    stochastic = (spec.stochastic or (sampler == "ddim" and eta > 0)) and (spec.kind != "discrete" or steps >= 2)

    from tqdm.auto import tqdm

    desc = f"sample {sampler}" + (f" ({steps} steps)" if steps is not None else "")
    out, nfes = [], []
    t0 = time.perf_counter()
    with torch.no_grad():
        for start in tqdm(range(0, n, batch_size), desc=desc, unit="batch", disable=not progress, dynamic_ncols=True):
            b = min(batch_size, n - start)
            gen = PerSampleGenerator(range(seed + start, seed + start + b))
            x_T = gen.randn(_image_shape(model), dtype=dtype, device=device)
            net = model
            if label is not None:
                ks = torch.arange(seed + start, seed + start + b, device=device)
                net = Labelled(model, ks % num_classes if label == "cycle" else torch.full_like(ks, label))
            counter = CountingModel(net)
            x = run_sampler(sampler, counter, x_T, schedule=schedule, timesteps=ts, steps=steps, sde=sde,
                            generator=gen, eta=float(eta), clip_x0=clip_x0, gamma=gamma, snr=snr,
                            n_corrector=n_corrector, pc_norm=pc_norm, t_end=t_end, rtol=rtol, atol=atol)
            if sde is not None and denoise:
                x = _denoise(D.eps_model_as_score(counter, sde, schedule), x, sde, t_end)
            if stochastic and gen.draws < 2:
                raise RuntimeError(
                    f"sampler {sampler!r} drew no noise through diffnotes' randn_like, so per-sample "
                    f"seeding could not be applied; please report this"
                )
            if hasattr(model, "decode_latents"):  # a latent model: back to images (diffnotes.autoencoder)
                x = model.decode_latents(x)
            out.append(to_uint8(x).cpu())
            nfes.append(counter.calls)
    if info is not None:
        info.update(steps=steps, nfe=float(np.mean(nfes)), seconds=time.perf_counter() - t0,
                    spacing=spacing if spec.kind == "discrete" else None)
    return torch.cat(out)

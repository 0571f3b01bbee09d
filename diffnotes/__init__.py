"""diffnotes: the mathematics of diffusion models as small, tested functions.

Modules (one idea each; see CONTRIBUTING.md for the layout and the notation table):

* the mathematics: :mod:`diffnotes.schedules` (beta / alpha_bar schedules, respacing),
  :mod:`diffnotes.forward` (q(x_t | x_{t-1}), q(x_t | x_0), the posterior, parameterisations),
  :mod:`diffnotes.losses` (L_simple and its weightings, denoising score matching, the hybrid loss),
  :mod:`diffnotes.likelihood` (the VLB and the discretised decoder), :mod:`diffnotes.samplers` (DDPM,
  DDIM, inversion), :mod:`diffnotes.fast_samplers` (exponential integrator, DPM-Solver++ 2M, Heun,
  Analytic-DPM), :mod:`diffnotes.sde` (VP / sub-VP / VE SDEs and their solvers),
  :mod:`diffnotes.score_matching` (DSM at a real t, annealed Langevin), :mod:`diffnotes.flow_matching`
  (straight paths, velocities, reflow), :mod:`diffnotes.guidance` (conditional scores, classifier and
  classifier-free guidance), :mod:`diffnotes.oracles` (data with exact scores),
  :mod:`diffnotes.adapters` (the VP SDE of a discrete schedule), :mod:`diffnotes.derive` (SymPy
  derivations and ``check_against``);
* the real model: :mod:`diffnotes.unet`, :mod:`diffnotes.classifier`, :mod:`diffnotes.data`,
  :mod:`diffnotes.recipe` (hyper-parameters, learning-rate and EMA schedules), :mod:`diffnotes.train`
  (the loop), :mod:`diffnotes.checkpoints` (files, the one loader, shipped models),
  :mod:`diffnotes.generate` (the sampler registry, ``sample_images``), :mod:`diffnotes.fid`,
  :mod:`diffnotes.records` (measurement records), :mod:`diffnotes.bench`, :mod:`diffnotes.cli`,
  :mod:`diffnotes.autoencoder` (the KL autoencoder, its ELBO, the latent pipeline) and :mod:`diffnotes.latent`
  (training it, the latents of a dataset, the latent model's export), :mod:`diffnotes.flow_net` (the U-Net as a
  velocity network, trained with ``objective="flow"``);
* the lessons: :mod:`diffnotes.course` (fast mode, check tables, figures), :mod:`diffnotes.exercises`,
  :mod:`diffnotes.schematics` (board diagrams), :mod:`diffnotes.widgets` (the explorers).

Submodules are imported on first use, so ``import diffnotes`` stays cheap.
"""
from __future__ import annotations

import importlib

__version__ = "0.1.0"

_SUBMODULES = (
    "schedules", "forward", "losses", "likelihood", "samplers", "fast_samplers", "sde", "score_matching",
    "flow_matching", "guidance", "oracles", "adapters", "derive", "unet", "classifier", "data", "recipe",
    "train", "checkpoints", "generate", "fid", "records", "bench", "cli", "course", "exercises", "schematics",
    "widgets", "autoencoder", "latent", "flow_net",
)

__all__ = list(_SUBMODULES) + ["pretrained", "__version__"]


def __getattr__(name):
    if name in _SUBMODULES:
        return importlib.import_module(f"diffnotes.{name}")
    raise AttributeError(f"module 'diffnotes' has no attribute {name!r}")


def pretrained(name: str | None = None, **kwargs):
    """A trained model: the name of a shipped one (see ``diffnotes/pretrained/MODEL_CARD.md``; by default
    ``"cifar10-cpu-3"``, the class-conditional U-Net trained on a 2-core CPU), a run folder or a
    ``.safetensors`` file. The package's front door to :func:`diffnotes.checkpoints.load_model` (the one
    loader; ``ema``, ``device`` and ``bf16`` pass through).

    Returns an ``nn.Module`` in eval mode, called as ``model(x_t, t) -> eps_hat`` (or
    ``model(x_t, t, y)`` with class labels ``y``, ``y = model.null_class`` for "no label"), with
    ``.schedule`` and ``.config`` attached (the trained-model contract of :mod:`diffnotes.checkpoints`).
    """
    from .checkpoints import load_model

    return load_model(name, **kwargs)

"""diffnotes: the mathematics of diffusion models as small, tested functions.

Modules (one idea each; see CONTRIBUTING.md for the notation table):

* :mod:`diffnotes.schedules` -- beta / alpha_bar schedules and respacing
* :mod:`diffnotes.forward`   -- q(x_t | x_{t-1}), q(x_t | x_0), the posterior, parameterisations
* :mod:`diffnotes.losses`    -- L_simple, VLB terms, denoising score matching, hybrid loss
* :mod:`diffnotes.samplers`  -- DDPM, DDIM (any eta, any subsequence), inversion, slerp
* :mod:`diffnotes.sde`       -- VP / sub-VP / VE SDEs, reverse SDE, probability-flow ODE, solvers
* :mod:`diffnotes.fast_samplers` -- DDIM as an exponential integrator, DPM-Solver++ 2M, Heun (EDM),
  Analytic-DPM
* :mod:`diffnotes.oracles`   -- data with exact scores: Gaussian, mixture, finite point set
* :mod:`diffnotes.derive`    -- SymPy derivations and ``check_against``
* :mod:`diffnotes.guidance`, :mod:`diffnotes.classifier` -- conditional scores, classifier and
  classifier-free guidance, the noise-conditional classifier (explorer: :mod:`diffnotes.guidance_widget`)
* :mod:`diffnotes.unet`, :mod:`diffnotes.data`, :mod:`diffnotes.train`, :mod:`diffnotes.fid`
  -- the real CIFAR-10 model: network, data, training, evaluation

Submodules are imported on first use, so ``import diffnotes`` stays cheap.
"""
from __future__ import annotations

import importlib

__version__ = "0.1.0"

_SUBMODULES = (
    "schedules", "forward", "losses", "samplers", "sde", "fast_samplers", "oracles", "derive",
    "unet", "data", "train", "fid", "widgets", "cli",
    "guidance", "classifier", "guidance_widget",
)

__all__ = list(_SUBMODULES) + ["pretrained", "__version__"]


def __getattr__(name):
    if name in _SUBMODULES:
        return importlib.import_module(f"diffnotes.{name}")
    raise AttributeError(f"module 'diffnotes' has no attribute {name!r}")


def pretrained(name: str | None = None, **kwargs):
    """The shipped trained model ``name`` (see ``diffnotes/pretrained/MODEL_CARD.md``); by default
    ``"cifar10-cpu-3"``, the class-conditional U-Net trained on a 2-core CPU.

    Returns an ``nn.Module`` in eval mode, called as ``model(x_t, t) -> eps_hat`` (or
    ``model(x_t, t, y)`` with class labels ``y``, ``y = model.null_class`` for "no label"), with
    ``.schedule`` and ``.config`` attached.
    """
    from .train import DEFAULT_MODEL
    from .train import pretrained as _pretrained

    return _pretrained(name or DEFAULT_MODEL, **kwargs)

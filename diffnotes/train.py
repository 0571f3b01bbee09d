r"""Training a DDPM: Algorithm 1 of Ho et al. 2020, with EMA, checkpoints, exact resume and DDP.

The pieces, each small and testable on its own:

* :class:`TrainConfig` -- every hyper-parameter of a run (defaults: Ho et al. 2020, appendix B),
  saved as JSON next to the weights;
* :func:`warmup_lr`, :func:`ema_decay_at` and :class:`EMA` -- the learning-rate warm-up and the
  exponential moving average of the weights (the weights that are sampled from);
* recipe options (issue M; the defaults are the original recipe): the loss weighting and the
  distribution of ``t`` (:mod:`diffnotes.losses`: Min-SNR-gamma, EDM, log-normal log-SNR), a
  learning rate that decays to zero (:func:`lr_decay_factor`, :func:`scheduled_lr`) and EDM2's
  power-function EMA whose length is a fraction of the images seen (:func:`power_ema_gamma`,
  :func:`power_ema_decay`);
* the lineage of a run (:func:`lineage_totals`): every stage it continues through ``init_from``,
  with steps, batch, images and seconds, and the totals, in ``config.json`` and shipped models;
* :func:`train_step` -- one gradient step of Algorithm 1;
* :func:`train` -- the loop: data, logging to ``metrics.jsonl``, atomic checkpoints, exact
  resume, graceful stop (Ctrl-C or a time budget), multi-GPU with ``torchrun``;
* :func:`load_checkpoint`, :func:`export_bf16` and :func:`pretrained` -- getting a trained
  model back, shipping it, and loading the shipped one.

A run directory ``out_dir`` holds::

    model.safetensors   raw weights (float32)              } what load_checkpoint reads
    ema.safetensors     EMA weights (float32)              }
    config.json         train config, model constructor arguments, schedule, step, lineage
    state.pt            everything needed to resume exactly: step, model, EMA, optimizer,
                        RNG states (torch CPU/CUDA and the noise generator of every rank),
                        data-loader position, elapsed time
    metrics.jsonl       one JSON line per log interval: step, loss, lr, img_per_s, time

Every file is written to a temporary file in the same folder and renamed over the old one
(``os.replace``), so a killed run never leaves a half-written file and loses at most the
steps since the last checkpoint. ``state.pt`` is self-contained (it repeats the weights), so
resuming never depends on several files having been replaced together.

Chapter 2 (training a DDPM on CIFAR-10) and the ``python -m diffnotes train`` command.
"""
from __future__ import annotations

import contextlib
import dataclasses
import inspect
import json
import math
import os
import re
import signal
import threading
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import torch
import torch.distributed as dist
from safetensors.torch import load as _st_load
from safetensors.torch import save as _st_save
from torch import nn

from ._checks import check_batch, check_int, check_range
from ._util import atomic_write, randn_like, use_bf16
from .data import ImageLoader, load_cifar10
from .forward import q_sample
from .losses import l_simple, sample_t_log_normal, timestep_loss_weights
from .schedules import Schedule, cosine_schedule, linear_schedule
from .unet import PRESETS, ToyMLP, UNet, load_weights

__all__ = [
    "TrainConfig",
    "make_schedule",
    "warmup_lr",
    "lr_decay_factor",
    "scheduled_lr",
    "ema_decay_at",
    "power_ema_gamma",
    "power_ema_sigma_rel",
    "power_ema_decay",
    "lineage_totals",
    "EMA",
    "train_step",
    "TrainResult",
    "train",
    "build_model",
    "save_checkpoint",
    "load_checkpoint",
    "export_bf16",
    "pretrained",
    "PRETRAINED_DIR",
    "DEFAULT_MODEL",
    "CheckpointDamagedError",
]

CHECKPOINT_FORMAT = "diffnotes-checkpoint/1"
DEFAULT_MODEL = "cifar10-cpu-3"  # what pretrained() returns: the class-conditional "cpu" preset, stage 3
PRETRAINED_DIR = Path(__file__).resolve().parent / "pretrained"
_SCHEDULES = {"linear": linear_schedule, "cosine": cosine_schedule}
_MODEL_CLASSES = {"UNet": UNet, "ToyMLP": ToyMLP}
_UNET_ARGS = set(inspect.signature(UNet.__init__).parameters) - {"self"}
_SIGMA_REL_MAX = 1.0 / math.sqrt(12.0)  # power-function EMA: sigma_rel at gamma = 0 (a plain running mean)
NOT_RECORDED = "not recorded"  # a lineage figure that no record holds


# ======================================================================================
# configuration
# ======================================================================================
@dataclass
class TrainConfig:
    """Hyper-parameters of a training run (defaults: Ho et al. 2020, appendix B, CIFAR-10).

    Validated on construction and by :meth:`from_dict`; a bad value raises ``ValueError``
    naming every bad field.

    Attributes
    ----------
    preset : str
        U-Net preset from :data:`diffnotes.unet.PRESETS` (``"tiny"``, ``"small"``, ``"ddpm"``).
    schedule : str
        ``"linear"`` (Ho et al.) or ``"cosine"`` (Nichol & Dhariwal).
    T : int
        Number of diffusion steps (1000).
    lr : float
        Peak Adam learning rate (2e-4).
    warmup_steps : int
        Linear learning-rate warm-up length (5000); 0 disables it.
    batch_size : int
        Global batch size, split evenly across DDP ranks (128).
    grad_clip : float or None
        Clip the global gradient norm at this value (1.0); ``None`` disables clipping.
    ema_decay : float
        EMA decay (0.9999).
    ema_warmup : bool
        Use the warm-up decay ``min(ema_decay, (1+step)/(10+step))`` (see :func:`ema_decay_at`)
        so that early checkpoints' EMA weights are already usable.
    dropout : float or None
        Override the preset's dropout (``None`` keeps it; the paper uses 0.1 on CIFAR-10).
    hflip : bool
        Random horizontal flips (the paper's only augmentation).
    unet : dict
        Further :func:`~diffnotes.unet.make_unet` overrides, e.g. ``{"ch": 96}``.
    total_steps : int
        Train until this many optimizer steps in total (the paper: 800k).
    ckpt_every, log_every : int
        Checkpoint / log interval in steps.
    seed : int
        Seeds the initial weights, the data order and all noise.
    out_dir : str
        Run directory.
    data_root : str or None
        Where CIFAR-10 is (see :func:`diffnotes.data.find_cifar10`) when no images are given.
    compile : bool
        ``torch.compile`` the model.
    bf16 : bool
        bfloat16 autocast for the forward pass, on CUDA and on a CPU with native bf16
        (:func:`diffnotes._util.cpu_has_bf16`); ignored on other CPUs.
    channels_last : bool
        channels-last memory format (where ``bf16`` would be used).
    label_dropout : float
        For a class-conditional network (``num_classes > 0``): the probability that a
        training label is replaced by "no label" (0.1, Ho & Salimans 2022); ignored otherwise.
    init_from : str or None
        Start from these weights with a fresh optimizer: a run folder (its raw weights start
        the model and its EMA weights the average), a ``.safetensors`` file, or the name of a
        shipped model. An unconditional checkpoint may start a class-conditional network
        (:func:`diffnotes.unet.load_weights`). Ignored when resuming a run's own state.
        The source's lineage (its stages, images and seconds) is carried into this run's.
    loss_weighting : str
        ``"l_simple"`` (Ho et al. 2020), ``"min_snr"`` (Min-SNR-gamma, Hang et al. 2023) or
        ``"edm"`` (Karras et al. 2022's weight for an eps-prediction network); see
        :func:`diffnotes.losses.timestep_loss_weights`.
    min_snr_gamma : float
        gamma of the Min-SNR weight min(SNR, gamma)/SNR (5.0); used with loss_weighting "min_snr".
    edm_sigma_data : float
        sigma_data of the EDM weight 1 + 1/(sigma_data^2 SNR) (0.5); used with loss_weighting "edm".
    t_sampling : str
        ``"uniform"`` over the T steps (Ho et al.) or ``"log_normal"``: log-SNR drawn from
        N(t_logsnr_mean, t_logsnr_std^2) and mapped to the nearest step
        (:func:`diffnotes.losses.sample_t_log_normal`).
    t_logsnr_mean, t_logsnr_std : float
        Mean and standard deviation of the log-SNR with t_sampling "log_normal" (2.4 and 2.4:
        EDM's ln sigma ~ N(-1.2, 1.2^2), as log-SNR = -2 ln sigma).
    lr_schedule : str
        ``"constant"`` after the warm-up, or ``"cosine"`` / ``"linear"`` decay to zero at
        ``total_steps`` over its last ``lr_decay_fraction`` (:func:`lr_decay_factor`). A decaying
        schedule depends on total_steps, which then may not change on resume.
    lr_decay_fraction : float
        The fraction of total_steps over which the learning rate decays (1.0: all of them).
    ema_length : float or None
        ``None`` keeps the EMA with the fixed ema_decay (and ema_warmup). A number sets EDM2's
        power-function EMA (Karras et al. 2024) whose averaging profile has this standard deviation
        as a fraction of the images seen, across every init_from stage (sigma_rel, e.g. 0.05-0.15;
        :func:`power_ema_decay`); ema_decay and ema_warmup are then not used.
    """

    preset: str = "small"
    schedule: str = "linear"
    T: int = 1000
    lr: float = 2e-4
    warmup_steps: int = 5000
    batch_size: int = 128
    grad_clip: float | None = 1.0
    ema_decay: float = 0.9999
    ema_warmup: bool = True
    dropout: float | None = None
    hflip: bool = True
    unet: dict = field(default_factory=dict)
    total_steps: int = 800_000
    ckpt_every: int = 5000
    log_every: int = 100
    seed: int = 0
    out_dir: str = "runs/cifar10"
    data_root: str | None = None
    compile: bool = False
    bf16: bool = True
    channels_last: bool = True
    label_dropout: float = 0.1
    init_from: str | None = None
    loss_weighting: str = "l_simple"
    min_snr_gamma: float = 5.0
    edm_sigma_data: float = 0.5
    t_sampling: str = "uniform"
    t_logsnr_mean: float = 2.4
    t_logsnr_std: float = 2.4
    lr_schedule: str = "constant"
    lr_decay_fraction: float = 1.0
    ema_length: float | None = None

    # fields that change the training trajectory: they must not change on resume (and total_steps
    # where the learning rate decays)
    TRAJECTORY_FIELDS = (
        "preset", "schedule", "T", "lr", "warmup_steps", "batch_size", "grad_clip", "ema_decay",
        "ema_warmup", "dropout", "hflip", "unet", "seed", "label_dropout", "init_from",
        "loss_weighting", "min_snr_gamma", "edm_sigma_data", "t_sampling", "t_logsnr_mean", "t_logsnr_std",
        "lr_schedule", "lr_decay_fraction", "ema_length",
    )
    # the allowed values of the fields that are a choice among names
    CHOICES = {
        "loss_weighting": ("l_simple", "min_snr", "edm"),
        "t_sampling": ("uniform", "log_normal"),
        "lr_schedule": ("constant", "cosine", "linear"),
    }

    def __post_init__(self):
        self.validate()

    def validate(self) -> None:
        """Check and normalise every field; raise one ``ValueError`` naming all bad fields."""
        errors = []

        def integer(name, low, high=None):
            v = getattr(self, name)
            ok = (isinstance(v, int) and not isinstance(v, bool)) or (isinstance(v, float) and v.is_integer())
            if not ok or v < low or (high is not None and v > high):
                errors.append(f"{name} must be an integer in [{low}, {high if high is not None else 'inf'}], got {v!r}")
            else:
                setattr(self, name, int(v))

        def real(name, low, high, *, low_open=False, high_open=False, optional=False):
            v = getattr(self, name)
            if optional and v is None:
                return
            ok = isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)
            if ok:
                ok = (v > low if low_open else v >= low) and (
                    high is None or (v < high if high_open else v <= high))
            if not ok:
                lb, hb = "(" if low_open else "[", ")" if high_open else "]"
                hi = "inf" if high is None else high
                extra = " or None" if optional else ""
                errors.append(f"{name} must be a number in {lb}{low}, {hi}{hb}{extra}, got {v!r}")
            else:
                setattr(self, name, float(v))

        def boolean(name):
            v = getattr(self, name)
            if not isinstance(v, bool):
                errors.append(f"{name} must be True or False, got {v!r}")

        def choice(name, allowed):
            v = getattr(self, name)
            if v not in allowed:
                errors.append(f"{name} must be one of {sorted(allowed)}, got {v!r}")

        choice("preset", PRESETS)
        choice("schedule", _SCHEDULES)
        integer("T", 1)
        real("lr", 0.0, None, low_open=True)
        integer("warmup_steps", 0)
        integer("batch_size", 1)
        real("grad_clip", 0.0, None, low_open=True, optional=True)
        real("ema_decay", 0.0, 1.0)
        boolean("ema_warmup")
        real("dropout", 0.0, 1.0, high_open=True, optional=True)
        boolean("hflip")
        if not isinstance(self.unet, dict):
            errors.append(f"unet must be a dict of make_unet overrides, got {self.unet!r}")
        else:
            bad = sorted(set(self.unet) - (_UNET_ARGS - {"dropout"}))
            if bad:
                errors.append(
                    f"unet has unknown keys {bad}; allowed: {sorted(_UNET_ARGS - {'dropout'})} "
                    f"(set dropout with the dropout field)"
                )
            else:
                self.unet = {k: tuple(v) if isinstance(v, list) else v for k, v in self.unet.items()}
        integer("total_steps", 0)
        integer("ckpt_every", 1)
        integer("log_every", 1)
        integer("seed", 0, 2**63 - 1)
        if isinstance(self.out_dir, os.PathLike):
            self.out_dir = os.fspath(self.out_dir)
        if not isinstance(self.out_dir, str) or not self.out_dir:
            errors.append(f"out_dir must be a non-empty path, got {self.out_dir!r}")
        if isinstance(self.data_root, os.PathLike):
            self.data_root = os.fspath(self.data_root)
        if self.data_root is not None and not isinstance(self.data_root, str):
            errors.append(f"data_root must be a path or None, got {self.data_root!r}")
        for name in ("compile", "bf16", "channels_last"):
            boolean(name)
        real("label_dropout", 0.0, 1.0)
        if isinstance(self.init_from, os.PathLike):
            self.init_from = os.fspath(self.init_from)
        if self.init_from is not None and (not isinstance(self.init_from, str) or not self.init_from):
            errors.append(f"init_from must be a run folder, a .safetensors file or a shipped model's name, "
                          f"got {self.init_from!r}")
        for name, allowed in self.CHOICES.items():
            choice(name, allowed)
        real("min_snr_gamma", 0.0, None, low_open=True)
        real("edm_sigma_data", 0.0, None, low_open=True)
        real("t_logsnr_mean", -math.inf, None)
        real("t_logsnr_std", 0.0, None, low_open=True)
        real("lr_decay_fraction", 0.0, 1.0, low_open=True)
        real("ema_length", 0.0, _SIGMA_REL_MAX, low_open=True, optional=True)
        if errors:
            raise ValueError("invalid TrainConfig: " + "; ".join(errors))

    def to_dict(self) -> dict:
        """A JSON-serialisable dict (tuples become lists); inverse of :meth:`from_dict`."""
        d = dataclasses.asdict(self)
        d["unet"] = {k: list(v) if isinstance(v, tuple) else v for k, v in self.unet.items()}
        return d

    @classmethod
    def from_dict(cls, d: dict) -> "TrainConfig":
        """Build and validate a config from a dict; unknown keys raise ``ValueError`` naming them."""
        if not isinstance(d, dict):
            raise ValueError(f"a TrainConfig must be built from a dict, got {type(d).__name__}")
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(d) - names)
        if unknown:
            raise ValueError(f"unknown TrainConfig fields {unknown}; known fields: {sorted(names)}")
        return cls(**d)

    def model_kwargs(self, image_shape: tuple | None = None) -> dict:
        """Constructor arguments of the :class:`~diffnotes.unet.UNet`: the preset, then the
        image's channels and size (``image_shape = (C, H, W)``), then ``unet``, then ``dropout``."""
        kwargs = dict(PRESETS[self.preset])
        if image_shape is not None:
            kwargs["in_channels"] = int(image_shape[0])
            kwargs["image_size"] = int(image_shape[1])
        kwargs.update(self.unet)
        if self.dropout is not None:
            kwargs["dropout"] = self.dropout
        return kwargs


def make_schedule(name: str, T: int = 1000) -> Schedule:
    """The schedule called ``name`` (``"linear"`` or ``"cosine"``) with ``T`` steps."""
    if name not in _SCHEDULES:
        raise ValueError(f"schedule must be one of {sorted(_SCHEDULES)}, got {name!r}")
    return _SCHEDULES[name](T)


# ======================================================================================
# learning rate and EMA
# ======================================================================================
def warmup_lr(step: int, lr: float, warmup_steps: int) -> float:
    r"""Learning rate of optimizer step ``step`` (0-based) under a linear warm-up.

    .. math:: \eta_s = \eta\,\min\!\left(1,\ \frac{s+1}{S_\text{warmup}}\right)

    (constant :math:`\eta` when ``warmup_steps`` is 0). Ho et al. 2020, appendix B (5000
    warm-up steps); the ``+1`` makes the first step a real one. Chapter 2.
    """
    if step < 0:
        raise ValueError(f"step must be >= 0, got {step}")
    if warmup_steps <= 0:
        return float(lr)
    return float(lr) * min(1.0, (step + 1) / warmup_steps)


def ema_decay_at(step: int, decay: float, warmup: bool = True) -> float:
    r"""Effective EMA decay for the update that follows optimizer step ``step`` (0-based).

    .. math:: d_s = \min\!\left(d,\ \frac{1+s}{10+s}\right)

    With a fixed :math:`d=0.9999` the average would still be 90 % the random initialisation
    after 1000 steps; the warm-up ramps :math:`d_s` from 0.1 up to :math:`d` so that the EMA
    of an early checkpoint already tracks the trained weights (the same rule as TensorFlow's
    ``ExponentialMovingAverage(num_updates=...)``, used in Ho et al.'s code). Without warm-up
    :math:`d_s = d`. Chapter 2.
    """
    if step < 0:
        raise ValueError(f"step must be >= 0, got {step}")
    if not warmup:
        return float(decay)
    return min(float(decay), (1.0 + step) / (10.0 + step))


def lr_decay_factor(step: int, total_steps: int, kind: str = "constant", fraction: float = 1.0) -> float:
    r"""Factor of the learning rate of optimizer step ``step`` (0-based) under a schedule that decays to zero.

    With :math:`S` = ``total_steps``, :math:`D = \max(1, \operatorname{round}(fS))` decay steps
    (:math:`f` = ``fraction``) starting at :math:`S_0 = S - D` and :math:`u = (s - S_0)/D`:

    .. math::
        m(s) = 1 \ (s \le S_0), \qquad
        m_\text{linear}(s) = 1 - u, \qquad
        m_\text{cosine}(s) = \tfrac12\,(1 + \cos \pi u) \qquad (S_0 \le s \le S),

    and :math:`m(s) = 0` for :math:`s \ge S`. The first step of the decay has the full rate and the
    last one (:math:`s = S-1`) the small rate :math:`m(S-1) > 0`; the rate reaches zero at
    :math:`s = S`, where training ends. ``"constant"`` is :math:`m = 1`. Cosine decay: Loshchilov &
    Hutter 2017 (SGDR, one cycle without restart); a constant rate, then a decay over the last part
    ("warmup-stable-decay"): Hu et al. 2024 (MiniCPM), Hägele et al. 2024.
    """
    if step < 0:
        raise ValueError(f"step must be >= 0, got {step}")
    if total_steps < 0:
        raise ValueError(f"total_steps must be >= 0, got {total_steps}")
    if kind not in TrainConfig.CHOICES["lr_schedule"]:
        raise ValueError(f"kind must be one of {list(TrainConfig.CHOICES['lr_schedule'])}, got {kind!r}")
    check_range("fraction", fraction, 0.0, 1.0, low_open=True)
    if kind == "constant":
        return 1.0
    if step >= total_steps:
        return 0.0
    decay = max(1, round(fraction * total_steps))
    u = (step - (total_steps - decay)) / decay
    if u <= 0:
        return 1.0
    return 1.0 - u if kind == "linear" else 0.5 * (1.0 + math.cos(math.pi * u))


def scheduled_lr(step: int, lr: float, warmup_steps: int, total_steps: int, kind: str = "constant",
                 fraction: float = 1.0) -> float:
    r"""Learning rate of optimizer step ``step``: the warm-up times the decay,
    :math:`\eta_s = \eta\,\min(1, (s+1)/S_\text{warmup})\,m(s)` (:func:`warmup_lr`,
    :func:`lr_decay_factor`). With ``kind="constant"`` it is :func:`warmup_lr`, value for value."""
    base = warmup_lr(step, lr, warmup_steps)
    if kind == "constant":
        lr_decay_factor(step, total_steps, kind, fraction)  # validates the arguments
        return base
    return base * lr_decay_factor(step, total_steps, kind, fraction)


def power_ema_sigma_rel(gamma: float) -> float:
    r"""Relative standard deviation of the power-function EMA profile with exponent ``gamma``.

    .. math:: \sigma_\text{rel} = \frac{\sqrt{\gamma+1}}{(\gamma+2)\sqrt{\gamma+3}}

    The averaging weights of EDM2's EMA are :math:`\propto \tau^\gamma` for :math:`0 < \tau \le t`;
    as a density on :math:`\tau/t \in (0, 1]` that is :math:`(\gamma+1)x^\gamma`, whose standard
    deviation is this (Karras et al. 2024, "Analyzing and Improving the Training Dynamics of
    Diffusion Models", EDM2: its power-function EMA profile).
    """
    check_range("gamma", gamma, 0.0, None)
    g = float(gamma)
    return math.sqrt(g + 1.0) / ((g + 2.0) * math.sqrt(g + 3.0))


def power_ema_gamma(sigma_rel: float) -> float:
    r"""The exponent :math:`\gamma \ge 0` of the power-function EMA with relative length ``sigma_rel``.

    Inverts :func:`power_ema_sigma_rel`: :math:`\sigma_\text{rel}^2 (\gamma+2)^2(\gamma+3) = \gamma+1`,
    i.e. the largest real root of

    .. math:: \gamma^3 + 7\gamma^2 + (16 - \sigma_\text{rel}^{-2})\,\gamma + (12 - \sigma_\text{rel}^{-2}) = 0

    (the cubic of Karras et al. 2024, EDM2; :math:`\sigma_\text{rel} = 0.10` gives :math:`\gamma \approx 6.94`).
    ``sigma_rel`` must lie in :math:`(0, 1/\sqrt{12}]`; :math:`1/\sqrt{12}` is :math:`\gamma = 0`, the plain mean.
    """
    check_range("sigma_rel", sigma_rel, 0.0, _SIGMA_REL_MAX + 1e-12, low_open=True)
    import numpy as np

    k = float(sigma_rel) ** -2
    roots = np.roots([1.0, 7.0, 16.0 - k, 12.0 - k])
    gamma = max(float(r.real) for r in roots if abs(r.imag) < 1e-9)
    return max(gamma, 0.0)


def power_ema_decay(images_seen: float, batch_size: int, gamma: float) -> float:
    r"""Decay of EDM2's power-function EMA for the update after a step that brings the images seen to ``images_seen``.

    .. math:: \beta = \left(1 - \frac{B}{n}\right)^{\gamma+1}, \qquad n = \text{images seen}, \ B = \text{batch}

    Karras et al. 2024 (EDM2): :math:`\beta_\gamma(t) = (1 - 1/t)^{\gamma+1}` with :math:`t = n/B` the
    training step; updating :math:`\hat\theta \leftarrow \beta\hat\theta + (1-\beta)\theta` with it
    averages the weights seen so far with weights :math:`\propto \tau^\gamma`, a profile whose width
    is the fixed fraction :math:`\sigma_\text{rel}` (:func:`power_ema_sigma_rel`) of the images seen,
    however long the run. The first update (:math:`n = B`) has :math:`\beta = 0`. For large :math:`n`,
    :math:`\beta \approx 1 - (\gamma+1)B/n`: the rule "decay = 1 - batch / (fraction x images seen)"
    with fraction :math:`1/(\gamma+1)`. In :func:`train`, :math:`n` counts the images of every
    ``init_from`` stage before the run too (its lineage), so a continued run keeps averaging over the
    same fraction of the network's whole training.
    """
    batch_size = check_int("batch_size", batch_size, 1)
    check_range("images_seen", images_seen, float(batch_size), None)
    check_range("gamma", gamma, 0.0, None)
    return (1.0 - batch_size / float(images_seen)) ** (float(gamma) + 1.0)


class EMA:
    r"""Exponential moving average of a model's weights, :math:`\bar\theta \leftarrow d_s\bar\theta + (1-d_s)\theta`.

    Samples are drawn with the averaged weights (Ho et al. 2020, appendix B, decay 0.9999).
    The average is kept as a dict ``shadow`` (name -> tensor, like a ``state_dict``); non-float
    entries are copied. Chapter 2.

    Parameters
    ----------
    model : nn.Module
        The model whose weights are averaged; the average starts at its current weights.
    decay : float
        :math:`d` in [0, 1].
    warmup : bool
        Use :func:`ema_decay_at`'s warm-up.
    power_gamma : float, optional
        Use EDM2's power-function EMA with this exponent instead (:func:`power_ema_decay`):
        the update after step ``s`` has the decay of ``images_before + (s + 1) * batch_size``
        images seen; ``decay`` and ``warmup`` are then not used.
    batch_size, images_before : int
        With ``power_gamma``: images per step, and images seen before step 0 (earlier stages).
    """

    def __init__(self, model: nn.Module, decay: float = 0.9999, warmup: bool = True, *,
                 power_gamma: float | None = None, batch_size: int = 1, images_before: int = 0):
        check_range("decay", decay, 0.0, 1.0)
        if power_gamma is not None:
            check_range("power_gamma", power_gamma, 0.0, None)
        self.decay = float(decay)
        self.warmup = bool(warmup)
        self.power_gamma = None if power_gamma is None else float(power_gamma)
        self.batch_size = check_int("batch_size", batch_size, 1)
        self.images_before = check_int("images_before", images_before, 0)
        self.shadow = {k: v.detach().clone() for k, v in model.state_dict().items()}

    def decay_at(self, step: int) -> float:
        """The decay used by the update after optimizer step ``step`` (see :func:`ema_decay_at`,
        or :func:`power_ema_decay` with ``power_gamma``)."""
        if self.power_gamma is not None:
            if step < 0:
                raise ValueError(f"step must be >= 0, got {step}")
            return power_ema_decay(self.images_before + (step + 1) * self.batch_size, self.batch_size,
                                   self.power_gamma)
        return ema_decay_at(step, self.decay, self.warmup)

    @torch.no_grad()
    def update(self, model: nn.Module, step: int) -> float:
        """Move the average towards ``model``'s weights after optimizer step ``step``; returns the decay."""
        d = self.decay_at(step)
        current = model.state_dict()
        if set(current) != set(self.shadow):
            raise ValueError("model's state_dict keys differ from the EMA's (a different architecture?)")
        avg, new = [], []
        for k, s in self.shadow.items():
            if s.dtype.is_floating_point:
                avg.append(s)
                new.append(current[k].detach())
            else:
                s.copy_(current[k])
        if avg:
            torch._foreach_lerp_(avg, new, 1.0 - d)
        return d

    def copy_to(self, model: nn.Module) -> nn.Module:
        """Load the averaged weights into ``model`` (in place); returns it."""
        model.load_state_dict(self.shadow)
        return model

    def state_dict(self) -> dict:
        """The averaged weights, a ``{name: tensor}`` dict like ``model.state_dict()``."""
        return dict(self.shadow)

    def load_state_dict(self, state: dict) -> None:
        """Replace the averaged weights (keys must match)."""
        if set(state) != set(self.shadow):
            missing, extra = sorted(set(self.shadow) - set(state)), sorted(set(state) - set(self.shadow))
            raise ValueError(f"EMA state keys do not match the model: missing {missing[:5]}, unexpected {extra[:5]}")
        for k, v in state.items():
            self.shadow[k].copy_(v)


# ======================================================================================
# one step of Algorithm 1
# ======================================================================================
def _params(optimizer: torch.optim.Optimizer) -> list:
    return [p for g in optimizer.param_groups for p in g["params"]]


def train_step(model: nn.Module, x_0: torch.Tensor, schedule: Schedule, optimizer: torch.optim.Optimizer,
               *, lr: float | None = None, grad_clip: float | None = None,
               generator: torch.Generator | None = None, bf16: bool = False,
               y: torch.Tensor | None = None, p_uncond: float = 0.0, t_sampling: str = "uniform",
               logsnr_mean: float = 2.4, logsnr_std: float = 2.4,
               loss_weights: torch.Tensor | None = None) -> torch.Tensor:
    r"""One gradient step of DDPM training (Ho et al. 2020, Algorithm 1).

    .. math::
        t \sim \mathcal U\{1..T\},\quad \epsilon \sim N(0, I),\quad
        \theta \leftarrow \theta - \eta\,\nabla_\theta
        \big\lVert \epsilon - \epsilon_\theta(\sqrt{\bar\alpha_t}\,x_0 + \sqrt{1-\bar\alpha_t}\,\epsilon,\ t)\big\rVert^2

    (:math:`t` is drawn as a 0-based index in ``0..T-1``; the squared error is averaged over
    pixels and batch, :func:`diffnotes.losses.l_simple`). ``t`` then ``eps`` are drawn from
    ``generator`` (on its device), :math:`x_t` comes from :func:`diffnotes.forward.q_sample`.
    Chapter 2.

    Parameters
    ----------
    model : nn.Module
        ``model(x_t, t) -> eps_hat`` (may be DDP-wrapped or compiled).
    x_0 : torch.Tensor, shape [B, ...]
        Clean training data.
    schedule : Schedule
        Supplies :math:`\bar\alpha_t` and ``T``.
    optimizer : torch.optim.Optimizer
        Over the model's parameters.
    lr : float, optional
        Learning rate for this step (set on every parameter group), e.g. from :func:`warmup_lr`.
    grad_clip : float, optional
        Clip the global gradient norm to this value before the step (1.0 in the paper).
    generator : torch.Generator, optional
        Source of ``t`` and ``eps``.
    bf16 : bool
        Run the forward pass under bfloat16 autocast (the loss is computed in float32).
    y : torch.Tensor, shape [B], optional
        Class labels, for a class-conditional network (``model(x_t, t, y)``).
    p_uncond : float
        With ``y``: each label is replaced by the network's "no label" class with this
        probability (drawn from ``generator`` after ``eps``), so that the network also learns
        the unconditional model that classifier-free guidance needs (Ho & Salimans 2022,
        Algorithm 1; they use 0.1 or 0.2).
    t_sampling : {"uniform", "log_normal"}
        How ``t`` is drawn: uniformly (Algorithm 1), or with log-SNR ~ N(``logsnr_mean``,
        ``logsnr_std``\ :sup:`2`) mapped to the nearest step (:func:`diffnotes.losses.sample_t_log_normal`).
    loss_weights : torch.Tensor, shape [T], optional
        Weight :math:`w_t` of each step's squared error (:func:`diffnotes.losses.timestep_loss_weights`):
        the loss is :math:`\frac1B\sum_b w_{t_b}\lVert\epsilon_b-\hat\epsilon_b\rVert^2/D`
        (:func:`diffnotes.losses.weighted_l_simple`). ``None``: L_simple.

    Returns
    -------
    torch.Tensor
        The (detached, 0-d) loss of this batch; not synchronised to the host.
    """
    check_batch("x_0", x_0)
    if grad_clip is not None:
        check_range("grad_clip", grad_clip, 0.0, None, low_open=True)
    if t_sampling not in TrainConfig.CHOICES["t_sampling"]:
        raise ValueError(f"t_sampling must be one of {list(TrainConfig.CHOICES['t_sampling'])}, got {t_sampling!r}")
    if loss_weights is not None and tuple(loss_weights.shape) != (schedule.T,):
        raise ValueError(f"loss_weights must have shape [T] = [{schedule.T}], got {tuple(loss_weights.shape)}")
    gen_device = generator.device if generator is not None else x_0.device
    B = x_0.shape[0]
    # Algorithm 1, line 3: t ~ Uniform({1, ..., T})  (0-based indices here), or the log-normal log-SNR
    if t_sampling == "uniform":
        t = torch.randint(0, schedule.T, (B,), generator=generator, device=gen_device)
    else:
        t = sample_t_log_normal(schedule, B, mean=logsnr_mean, std=logsnr_std, generator=generator)
    # line 4: eps ~ N(0, I)
    eps = randn_like(x_0, generator)
    alpha_bar_t = schedule.alpha_bar.to(dtype=x_0.dtype).to(gen_device)[t]
    x_t = q_sample(x_0, alpha_bar_t, eps=eps)
    if y is not None:  # classifier-free guidance training: c <- "no label" with probability p_uncond
        check_range("p_uncond", p_uncond, 0.0, 1.0)
        drop = torch.rand(B, generator=generator, device=gen_device) < p_uncond
        y = torch.where(drop.to(y.device), torch.full_like(y, _unwrap(model).null_class), y)
    # line 5: gradient step on || eps - eps_theta(x_t, t) ||^2
    if lr is not None:
        for group in optimizer.param_groups:
            group["lr"] = lr
    with torch.autocast(device_type=x_0.device.type, dtype=torch.bfloat16, enabled=bool(bf16)):
        eps_hat = model(x_t, t.to(x_0.device)) if y is None else model(x_t, t.to(x_0.device), y)
    if loss_weights is None:
        loss = l_simple(eps_hat.to(eps.dtype), eps)
    else:
        # weighted_l_simple without its per-call check of the weights (a host sync on a GPU)
        w = loss_weights.to(device=eps.device, dtype=eps.dtype)[t.to(eps.device)]
        loss = (w * l_simple(eps_hat.to(eps.dtype), eps, reduction="none")).mean()
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    if grad_clip is not None:
        torch.nn.utils.clip_grad_norm_(_params(optimizer), grad_clip)
    optimizer.step()
    return loss.detach()


# ======================================================================================
# files: atomic writes, checkpoints
# ======================================================================================
def _cpu_tensors(state: dict, dtype: torch.dtype | None = None) -> dict:
    out = {}
    for k, v in state.items():
        v = v.detach().to("cpu")
        if dtype is not None and v.dtype.is_floating_point:
            v = v.to(dtype)
        out[k] = v.contiguous()
    return out


def _write_safetensors(path, tensors: dict, metadata: dict | None = None) -> Path:
    data = _st_save(_cpu_tensors(tensors), metadata={k: str(v) for k, v in (metadata or {}).items()})
    return atomic_write(path, lambda f: f.write(data))


def _write_json(path, obj) -> Path:
    data = (json.dumps(obj, indent=2, sort_keys=True) + "\n").encode()
    return atomic_write(path, lambda f: f.write(data))


def _write_torch(path, obj) -> Path:
    return atomic_write(path, lambda f: torch.save(obj, f))


class CheckpointDamagedError(RuntimeError):
    """A checkpoint file exists but cannot be read (truncated, overwritten, not a checkpoint)."""


def _read_safetensors(path: Path, what_to_do: str = "") -> dict:
    """The tensors of a .safetensors file; a damaged file raises :class:`CheckpointDamagedError`
    naming it, with ``what_to_do``."""
    try:
        return _st_load(Path(path).read_bytes())
    except Exception as err:  # safetensors raises its own SafetensorError, or OSError
        raise CheckpointDamagedError(
            f"{path} is damaged and cannot be read ({type(err).__name__}: {err}); it is truncated or not a "
            f"safetensors file. {what_to_do or 'Copy or export it again.'}"
        ) from None


def _repair_hint(weights: Path) -> str:
    run = weights.parent
    if (run / "state.pt").exists():
        return (f"The run's state.pt holds the same weights: `python -m diffnotes train --out {run} --resume` "
                f"rewrites the damaged file from it as it starts (then trains on; Ctrl-C stops it).")
    return "Copy or export it again from where it came from."


def _load_state(path: Path) -> dict:
    """A run's ``state.pt``; a damaged one raises :class:`CheckpointDamagedError` that says how to go
    back to the previous checkpoint, ``state.prev.pt``."""
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # torch raises RuntimeError, EOFError, pickle.UnpicklingError, ...
        prev = path.with_name("state.prev.pt")
        hint = (f"The checkpoint before it is {prev}: `mv {prev} {path}` and resume again to go back one "
                f"checkpoint interval." if prev.exists() else
                "No earlier checkpoint (state.prev.pt) is there: start the run again, or use "
                "--init-from with its ema.safetensors to keep the trained weights.")
        raise CheckpointDamagedError(
            f"{path} is damaged and cannot be read ({type(err).__name__}: {str(err).strip()[:200]}). {hint}"
        ) from None


def _keep_previous(path: Path) -> None:
    """Keep the file at ``path`` as ``<stem>.prev<suffix>`` before it is replaced, so that a damaged
    checkpoint costs one interval, not the run. ``path`` stays in place throughout (a hard link,
    or a copy where links are not possible), so a kill at any moment leaves a readable file."""
    if not path.exists():
        return
    prev = path.with_name(f"{path.stem}.prev{path.suffix}")
    tmp = path.with_name(f".{prev.name}.{os.getpid()}.tmp")
    with contextlib.suppress(FileNotFoundError):
        tmp.unlink()
    try:
        os.link(path, tmp)
    except OSError:
        import shutil

        shutil.copy2(path, tmp)
    os.replace(tmp, prev)


def _unwrap(model: nn.Module) -> nn.Module:
    """The plain module inside DDP and/or torch.compile wrappers."""
    while True:
        if isinstance(model, nn.parallel.DistributedDataParallel):
            model = model.module
        elif hasattr(model, "_orig_mod"):
            model = model._orig_mod
        else:
            return model


def _model_spec(model: nn.Module) -> dict:
    model = _unwrap(model)
    name = type(model).__name__
    if name not in _MODEL_CLASSES or not hasattr(model, "arch"):
        raise ValueError(f"model must be a diffnotes UNet or ToyMLP, got {name}")
    kwargs = {k: list(v) if isinstance(v, tuple) else v for k, v in model.arch.items()}
    return {"class": name, "kwargs": kwargs}


def build_model(spec: dict) -> nn.Module:
    """Build the network described by ``spec = {"class": "UNet"|"ToyMLP", "kwargs": {...}}``
    (the ``"model"`` entry of a checkpoint's ``config.json``)."""
    if not isinstance(spec, dict) or spec.get("class") not in _MODEL_CLASSES:
        raise ValueError(f"model spec must name a class in {sorted(_MODEL_CLASSES)}, got {spec!r}")
    kwargs = {k: tuple(v) if isinstance(v, list) else v for k, v in spec.get("kwargs", {}).items()}
    return _MODEL_CLASSES[spec["class"]](**kwargs)


def _schedule_spec(schedule: Schedule) -> dict:
    """``{"name", "T"}`` when :func:`make_schedule` rebuilds ``schedule`` exactly, else also its betas."""
    spec = {"name": schedule.name, "T": schedule.T}
    if schedule.name in _SCHEDULES and torch.equal(make_schedule(schedule.name, schedule.T).betas, schedule.betas):
        return spec
    return dict(spec, betas=schedule.betas.tolist())


# ======================================================================================
# lineage: the stages of training behind a checkpoint
# ======================================================================================
_LINEAGE_FIGURES = ("steps", "batch_size", "images", "seconds", "device")


def _number(v) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


def _stage_record(name, init_from, steps, batch_size, seconds, device, ranks=1) -> dict:
    """One stage of a lineage; a figure that is not known is :data:`NOT_RECORDED`."""
    steps_ok, batch_ok = _number(steps), _number(batch_size)
    return {
        "name": name, "init_from": init_from,
        "steps": int(steps) if steps_ok else NOT_RECORDED,
        "batch_size": int(batch_size) if batch_ok else NOT_RECORDED,
        "images": int(steps) * int(batch_size) if steps_ok and batch_ok else NOT_RECORDED,
        "seconds": round(float(seconds), 1) if _number(seconds) else NOT_RECORDED,
        "device": device if device in ("cpu", "cuda", "mps") else NOT_RECORDED,
        "ranks": int(ranks) if _number(ranks) else NOT_RECORDED,
    }


def lineage_totals(stages: list) -> dict:
    r"""A lineage: the stages (oldest first) and their totals.

    .. math:: N_\text{images} = \sum_k S_k B_k, \qquad
              H = \frac{1}{3600}\sum_k \text{seconds}_k, \qquad
              H_\text{cpu} = \frac{1}{3600}\sum_{k:\ \text{device}_k = \text{cpu}} \text{seconds}_k

    with :math:`S_k` the optimizer steps and :math:`B_k` the batch of stage :math:`k`. Each stage
    is a dict with ``name`` (its run folder, ``out_dir``), ``init_from`` (what it started from),
    ``steps``, ``batch_size``, ``images``, ``seconds`` (the training loop's wall time, summed over
    resumes), ``device`` and ``ranks``. Seconds are wall-clock time of the whole machine, so "CPU
    hours" are hours of a (2-core) CPU, not core-hours. A figure no record holds is the string
    ``"not recorded"``: it is left out of the sums, and ``not_recorded`` lists it, so that a total
    is never silently short. Returns ``{"stages", "images", "seconds", "hours", "cpu_hours"}`` and,
    where a figure is missing, ``"not_recorded"``.
    """
    if not isinstance(stages, list) or not all(isinstance(st, dict) for st in stages):
        raise ValueError(f"stages must be a list of dicts, got {stages!r}")
    images = seconds = cpu_seconds = 0
    missing = []
    for k, st in enumerate(stages, 1):
        for key in _LINEAGE_FIGURES:
            if st.get(key, NOT_RECORDED) == NOT_RECORDED:
                missing.append(f"{key} of stage {k} ({st.get('name')})")
        if _number(st.get("images")):
            images += int(st["images"])
        if _number(st.get("seconds")):
            seconds += float(st["seconds"])
            if st.get("device") == "cpu":
                cpu_seconds += float(st["seconds"])
    out = {"stages": [dict(st) for st in stages], "images": int(images), "seconds": round(seconds, 1),
           "hours": round(seconds / 3600.0, 3), "cpu_hours": round(cpu_seconds / 3600.0, 3)}
    if missing:
        out["not_recorded"] = missing
    return out


def _source_config(source: str) -> dict | None:
    """The checkpoint config of what ``init_from=source`` names (found as :func:`_init_weights` finds
    its weights), or ``None`` when there is none."""
    path = Path(source).expanduser()
    if path.is_dir():
        candidates = [path / "config.json"]
    elif path.suffix == ".safetensors":
        candidates = [path.with_suffix(".json"), path.parent / "config.json"]
    elif re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._-]*", source):
        candidates = [PRETRAINED_DIR / f"{source}.json"]
    else:
        candidates = []
    for c in candidates:
        if c.is_file():
            try:
                config = json.loads(c.read_text())
            except ValueError:
                return None
            return config if isinstance(config, dict) else None
    return None


def _parent_stages(init_from: str | None) -> list:
    """The stages before a run started with ``init_from``: the source's lineage if it has one; else
    the source's own stage from its config (its time not recorded) after one entry for whatever it
    came from; else one entry naming the source with every figure not recorded."""
    if init_from is None:
        return []
    config = _source_config(init_from)
    if config is None:
        return [_stage_record(init_from, NOT_RECORDED, None, None, None, None, None)]
    lineage = config.get("lineage")
    if isinstance(lineage, dict) and isinstance(lineage.get("stages"), list):
        return [dict(st) for st in lineage["stages"]]
    train_cfg = config.get("train") or {}
    before = train_cfg.get("init_from")
    stages = [] if before is None else [_stage_record(before, NOT_RECORDED, None, None, None, None, None)]
    stages.append(_stage_record(train_cfg.get("out_dir", init_from), before, config.get("step"),
                                train_cfg.get("batch_size"), None, None, None))
    return stages


def _images_of(stages: list) -> int:
    return lineage_totals(stages)["images"]


def _run_lineage(out_dir: Path, config: dict) -> dict | None:
    """The lineage of a run folder whose ``config.json`` was written before lineages were recorded:
    its ``init_from``'s stages, then its own (seconds, device and ranks from ``state.pt`` when that
    is at the same step)."""
    train_cfg = config.get("train")
    if not isinstance(train_cfg, dict):
        return None
    seconds = device = ranks = None
    state_path = out_dir / "state.pt"
    if state_path.is_file():
        with contextlib.suppress(Exception):
            state = torch.load(state_path, map_location="cpu", weights_only=True)
            if int(state.get("step", -1)) == int(config.get("step", -2)):
                seconds = state.get("elapsed")
                rngs = state.get("rng") or []
                ranks = len(rngs) or None
                device = ("cuda" if "cuda" in rngs[0] else "cpu") if rngs else None
    stage = _stage_record(train_cfg.get("out_dir", str(out_dir)), train_cfg.get("init_from"), config.get("step"),
                          train_cfg.get("batch_size"), seconds, device, ranks)
    return lineage_totals(_parent_stages(train_cfg.get("init_from")) + [stage])


def _checkpoint_config(model, config: TrainConfig | None, schedule: Schedule, step: int,
                       lineage: dict | None = None) -> dict:
    out = {
        "format": CHECKPOINT_FORMAT,
        "step": int(step),
        "model": _model_spec(model),
        "schedule": _schedule_spec(schedule),
        "train": config.to_dict() if config is not None else None,
    }
    if lineage is not None:
        out["lineage"] = lineage
    return out


def save_checkpoint(out_dir, *, model: nn.Module, ema: EMA | None, schedule: Schedule, step: int,
                    config: TrainConfig | None = None, resume_state: dict | None = None,
                    lineage: dict | None = None) -> Path:
    """Write ``model.safetensors``, ``ema.safetensors``, ``config.json`` (and ``state.pt`` if
    ``resume_state`` is given) into ``out_dir``, each file atomically. ``lineage``
    (:func:`lineage_totals`) goes into ``config.json``. Returns ``out_dir``."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    raw = _unwrap(model)
    config_json = _checkpoint_config(raw, config, schedule, step, lineage)  # validates before writing anything
    meta = {"step": step, "format": CHECKPOINT_FORMAT}
    _write_safetensors(out_dir / "model.safetensors", raw.state_dict(), meta)
    if ema is not None:
        _write_safetensors(out_dir / "ema.safetensors", ema.state_dict(), meta)
    _write_json(out_dir / "config.json", config_json)
    if resume_state is not None:
        _keep_previous(out_dir / "state.pt")
        _write_torch(out_dir / "state.pt", resume_state)
    return out_dir


def _attach(model: nn.Module, config: dict) -> nn.Module:
    sched = config.get("schedule") or {"name": "linear", "T": 1000}
    model.config = config
    if "betas" in sched:
        model.schedule = Schedule(torch.tensor(sched["betas"], dtype=torch.float64), name=sched["name"])
    else:
        model.schedule = make_schedule(sched["name"], sched["T"])
    return model


def _read_config(path: Path) -> dict:
    try:
        config = json.loads(path.read_text())
    except FileNotFoundError:
        raise FileNotFoundError(f"no checkpoint config at {path}") from None
    if not isinstance(config, dict) or "model" not in config:
        raise ValueError(f"{path} is not a diffnotes checkpoint config (no 'model' entry)")
    return config


def load_checkpoint(path, *, ema: bool = True, device="cpu") -> nn.Module:
    """Load a trained model in eval mode, with ``.config`` (dict) and ``.schedule`` attached.

    Parameters
    ----------
    path : str or Path
        A run directory (reads ``ema.safetensors`` or ``model.safetensors`` and ``config.json``)
        or a ``.safetensors`` file (its config is the ``.json`` of the same name if present,
        else ``config.json`` beside it). bfloat16 weights are converted to float32.
    ema : bool
        For a run directory: load the EMA weights (default) or the raw ones.
    device : str or torch.device
    """
    path = Path(path)
    if path.is_dir():
        weights = path / ("ema.safetensors" if ema else "model.safetensors")
        cfg_path = path / "config.json"
    else:
        weights = path
        cfg_path = path.with_suffix(".json")
        if not cfg_path.exists():
            cfg_path = path.parent / "config.json"
    if not weights.exists():
        raise FileNotFoundError(f"no weights at {weights}")
    config = _read_config(cfg_path)
    model = build_model(config["model"])
    state = _read_safetensors(weights, _repair_hint(weights))
    state = {k: v.float() if v.is_floating_point() else v for k, v in state.items()}
    model.load_state_dict(state)
    return _attach(model.to(device).eval(), config)


def export_bf16(out_dir, dest_path, *, ema: bool = True) -> Path:
    """Write a run's (EMA) weights in bfloat16 to ``dest_path`` (.safetensors) and its config
    beside it (same name, ``.json``): the format of the shipped pretrained models. Returns
    ``dest_path``.

    The config keeps the run's lineage (:func:`lineage_totals`). A run recorded before lineages
    were (no ``lineage`` in its ``config.json``) gets one here: the stages of its ``init_from`` (a
    shipped model's ``.json``, a run folder's ``config.json``) and its own, with its seconds from
    ``state.pt``."""
    out_dir, dest_path = Path(out_dir), Path(dest_path)
    if dest_path.suffix != ".safetensors":
        raise ValueError(f"dest_path must end in .safetensors, got {dest_path}")
    weights = out_dir / ("ema.safetensors" if ema else "model.safetensors")
    if not weights.exists():
        raise FileNotFoundError(f"no weights at {weights}")
    config = _read_config(out_dir / "config.json")
    config = dict(config, dtype="bfloat16", weights="ema" if ema else "raw")
    if "lineage" not in config:
        lineage = _run_lineage(out_dir, config)
        if lineage is not None:
            config["lineage"] = lineage
    state = _cpu_tensors(_read_safetensors(weights, _repair_hint(weights)), torch.bfloat16)
    data = _st_save(state, metadata={"step": str(config.get("step")), "format": CHECKPOINT_FORMAT})
    atomic_write(dest_path, lambda f: f.write(data))
    _write_json(dest_path.with_suffix(".json"), config)
    return dest_path


def pretrained(name: str = DEFAULT_MODEL, *, root=None, device="cpu") -> nn.Module:
    """A shipped trained model: ``<root>/<name>.safetensors`` (bf16) + ``<name>.json``.

    Returns the network in eval mode and float32, called as ``model(x_t, t) -> eps_hat``, with
    ``.schedule`` and ``.config`` attached. ``root`` defaults to ``diffnotes/pretrained``.
    Raises ``FileNotFoundError`` listing the available names when ``name`` is not there.
    """
    root = Path(root) if root is not None else PRETRAINED_DIR
    if not isinstance(name, str) or not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._-]*", name):
        raise ValueError(f"name must be a plain model name such as {DEFAULT_MODEL!r}, got {name!r}")
    weights, cfg = root / f"{name}.safetensors", root / f"{name}.json"
    if not (weights.exists() and cfg.exists()):
        available = sorted(p.stem for p in root.glob("*.safetensors") if p.with_suffix(".json").exists()) \
            if root.is_dir() else []
        raise FileNotFoundError(
            f"no pretrained model {name!r} in {root} (looked for {weights.name} and {cfg.name}); "
            f"available: {', '.join(available) if available else 'none'}"
        )
    return load_checkpoint(weights, device=device)


# ======================================================================================
# the training loop
# ======================================================================================
@dataclass
class TrainResult:
    """What :func:`train` returns: the raw model, its EMA, and why the loop stopped."""

    model: nn.Module
    ema: EMA
    schedule: Schedule
    config: TrainConfig
    step: int
    stop_reason: str  # "done", "max_seconds" or "interrupted"
    loss: float | None
    out_dir: Path
    lineage: dict | None = None

    def ema_model(self) -> nn.Module:
        """A copy of the model holding the EMA weights, in eval mode, with ``.config``/``.schedule``."""
        import copy

        m = copy.deepcopy(self.model)
        self.ema.copy_to(m)
        return _attach(m.eval(), _checkpoint_config(m, self.config, self.schedule, self.step, self.lineage))


def _derive_seed(seed: int, rank: int, stream: int) -> int:
    """Independent-looking seeds per (rank, stream) from one run seed."""
    return (seed * 0x9E3779B97F4A7C15 + rank * 0xBF58476D1CE4E5B9 + stream * 0x94D049BB133111EB) % 2**63


class _Dist:
    """Rank/world bookkeeping; starts the process group when launched by torchrun (WORLD_SIZE > 1)."""

    def __init__(self, device: torch.device):
        self.world = int(os.environ.get("WORLD_SIZE", "1"))
        self.created = False
        if self.world > 1 and not dist.is_initialized():
            dist.init_process_group("nccl" if device.type == "cuda" else "gloo", init_method="env://")
            self.created = True
        self.active = self.world > 1
        self.rank = dist.get_rank() if self.active else 0
        if self.active and dist.get_world_size() != self.world:
            raise RuntimeError(f"WORLD_SIZE={self.world} but the process group has {dist.get_world_size()} ranks")
        self.device = device

    def any(self, *flags: bool) -> tuple:
        """For each flag: True on every rank if it is True on any rank."""
        if not self.active:
            return tuple(bool(f) for f in flags)
        t = torch.tensor([1.0 if f else 0.0 for f in flags], device=self.device)
        dist.all_reduce(t, op=dist.ReduceOp.MAX)
        return tuple(bool(v > 0) for v in t.tolist())

    def mean(self, value: torch.Tensor) -> torch.Tensor:
        if not self.active:
            return value
        value = value.clone()
        dist.all_reduce(value, op=dist.ReduceOp.SUM)
        return value / self.world

    def gather(self, obj) -> list:
        if not self.active:
            return [obj]
        out = [None] * self.world
        dist.all_gather_object(out, obj)
        return out

    def close(self):
        if self.created and dist.is_initialized():
            dist.destroy_process_group()


def _pick_device(device) -> torch.device:
    """The given device, else CUDA if available, else the CPU; a bare "cuda" becomes cuda:LOCAL_RANK."""
    device = torch.device(device) if device is not None else (
        torch.device("cuda") if torch.cuda.is_available() else torch.device("cpu"))
    if device.type == "cuda" and device.index is None:
        device = torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")))
    return device


class _StopFlag:
    """Turns the first Ctrl-C (SIGINT) into a request to stop after the current step.

    A second Ctrl-C raises ``KeyboardInterrupt`` at once (no checkpoint: the state could be
    half-updated). Only installable from the main thread; elsewhere it does nothing.
    """

    def __init__(self):
        self.requested = False
        self._previous = None

    def _handler(self, signum, frame):
        if self.requested:
            raise KeyboardInterrupt
        self.requested = True

    def __enter__(self):
        if threading.current_thread() is threading.main_thread():
            self._previous = signal.signal(signal.SIGINT, self._handler)
        return self

    def __exit__(self, *exc):
        if self._previous is not None:
            signal.signal(signal.SIGINT, self._previous)


def _rng_state(generator: torch.Generator, device: torch.device) -> dict:
    state = {"torch": torch.get_rng_state(), "noise": generator.get_state()}
    if device.type == "cuda":
        state["cuda"] = torch.cuda.get_rng_state(device)
    return state


def _set_rng_state(state: dict, generator: torch.Generator, device: torch.device) -> None:
    torch.set_rng_state(state["torch"])
    generator.set_state(state["noise"])
    if device.type == "cuda" and "cuda" in state:
        torch.cuda.set_rng_state(state["cuda"], device)


def _as_images(images, config: TrainConfig, labels=None):
    """``(images, labels)``: a uint8 [N, C, H, W] tensor (labels: int [N] or None), or a loader with
    next_batch/state_dict/load_state_dict (labels: None; a loader gives its own)."""
    if images is None:
        images, cifar_labels = load_cifar10(config.data_root, split="train")
        labels = cifar_labels if labels is None else labels
    if all(hasattr(images, a) for a in ("next_batch", "state_dict", "load_state_dict")):
        return images, None
    images = torch.as_tensor(images)
    if images.dtype != torch.uint8 or images.ndim != 4:
        raise ValueError(
            f"images must be a uint8 tensor of shape [N, C, H, W] (bytes 0..255), got "
            f"{images.dtype} of shape {tuple(images.shape)}"
        )
    return images, (torch.as_tensor(labels) if labels is not None else None)


def _init_weights(source: str) -> tuple[dict, dict]:
    """``(raw, ema)`` weight dicts (float32) that ``init_from=source`` starts a run from."""
    path = Path(source).expanduser()
    if path.is_dir():
        raw, ema = path / "model.safetensors", path / "ema.safetensors"
        files = [raw if raw.exists() else ema, ema if ema.exists() else raw]  # either may stand in for the other
    elif path.suffix == ".safetensors":
        files = [path, path]
    elif re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._-]*", source) and (PRETRAINED_DIR / f"{source}.safetensors").exists():
        files = [PRETRAINED_DIR / f"{source}.safetensors"] * 2
    else:
        raise FileNotFoundError(f"init_from={source!r} is neither a run folder, a .safetensors file nor a shipped "
                                f"model in {PRETRAINED_DIR}")
    for f in files:
        if not f.exists():
            raise FileNotFoundError(f"init_from={source!r}: no weights at {f}")
    raw, ema = (_read_safetensors(f, _repair_hint(f)) for f in files)
    return ({k: v.float() if v.is_floating_point() else v for k, v in d.items()} for d in (raw, ema))


def _rewrite_damaged_weights(out_dir: Path, model, ema, schedule, step: int, cfg, lineage=None) -> None:
    """On resume: rewrite ``model.safetensors`` / ``ema.safetensors`` from ``state.pt`` where they are
    missing or damaged (``state.pt`` holds the same weights)."""
    for name in ("model.safetensors", "ema.safetensors"):
        path = out_dir / name
        try:
            _read_safetensors(path)
        except (CheckpointDamagedError, FileNotFoundError):
            warnings.warn(f"{path} was missing or damaged: rewritten from state.pt (step {step})")
            save_checkpoint(out_dir, model=model, ema=ema, schedule=schedule, step=step, config=cfg,
                            lineage=lineage)
            return


def _lineage(cfg: TrainConfig, parent: list, step: int, seconds: float, device: torch.device, world: int) -> dict:
    """This run's lineage: the stages before it, then itself at ``step`` after ``seconds`` of training."""
    here = _stage_record(cfg.out_dir, cfg.init_from, step, cfg.batch_size, seconds, device.type, world)
    return lineage_totals(list(parent) + [here])


def _trim_metrics(path: Path, step: int) -> None:
    """Drop log lines written after the checkpoint a run resumes from."""
    if not path.exists():
        return
    keep = []
    for line in path.read_text().splitlines():
        with contextlib.suppress(ValueError):
            if json.loads(line).get("step", 0) <= step:
                keep.append(line)
    data = ("\n".join(keep) + "\n" if keep else "").encode()
    atomic_write(path, lambda f: f.write(data))


def train(config: TrainConfig | dict, images=None, *, resume: bool = False, progress: bool = True,
          max_seconds: float | None = None, device=None, labels=None) -> TrainResult:
    """Train a DDPM U-Net with Algorithm 1 of Ho et al. 2020; see the module docstring for files.

    Parameters
    ----------
    config : TrainConfig or dict
    images : uint8 tensor/array [N, C, H, W], or a loader, optional
        The training images (bytes; converted to [-1, 1] batch by batch by
        :class:`diffnotes.data.ImageLoader`), or a ready loader with ``next_batch()``,
        ``state_dict()`` and ``load_state_dict()`` yielding global batches. Default: the
        CIFAR-10 training set (:func:`diffnotes.data.load_cifar10` with ``config.data_root``).
        A class-conditional network (``num_classes > 0``) also needs the labels: a loader then
        has ``next_labeled_batch()``.
    labels : int tensor/array [N], optional
        Class labels of ``images`` (the CIFAR-10 labels by default), for a class-conditional network.
    resume : bool
        Continue the run in ``config.out_dir`` exactly where its last checkpoint stopped (same
        weights, optimizer, EMA, data order and random numbers: N steps in one go give bitwise
        the same weights on the CPU as k steps, a stop, and N-k more). Starts a new run if
        there is no checkpoint yet. Without ``resume`` an existing run is never overwritten.
    progress : bool
        Show a tqdm bar with the loss and images per second.
    max_seconds : float, optional
        Stop (and checkpoint) after this much wall time.
    device : str or torch.device, optional
        Default: ``cuda:LOCAL_RANK`` if available, else the CPU.

    Returns
    -------
    TrainResult
        ``.model`` (raw weights), ``.ema``, ``.step``, ``.stop_reason`` ("done",
        "max_seconds" or "interrupted"), ``.loss`` (last logged), ``.ema_model()``.

    Notes
    -----
    Checkpoints are written every ``ckpt_every`` steps and when the loop ends: at
    ``total_steps``, at ``max_seconds``, or after the first Ctrl-C (which stops cleanly after
    the current step; a second Ctrl-C aborts without saving). An exception aborts without
    saving, so the last checkpoint is never replaced by a broken state.

    Under ``torchrun --nproc_per_node=K`` (``WORLD_SIZE`` > 1) the process group is started
    (NCCL on CUDA, gloo on the CPU), the model is wrapped in ``DistributedDataParallel``, every
    rank trains on its own ``batch_size/K`` slice of each global batch with its own noise, and
    only rank 0 writes files.
    """
    cfg = config if isinstance(config, TrainConfig) else TrainConfig.from_dict(config)
    cfg = TrainConfig.from_dict(cfg.to_dict())  # re-validate a config mutated after construction
    if max_seconds is not None:
        check_range("max_seconds", max_seconds, 0.0, None)
    device = _pick_device(device)
    if device.type == "cuda":
        torch.cuda.set_device(device)
        torch.backends.cudnn.benchmark = True
    ctx = _Dist(device)
    try:
        # training seeds torch's global generator (dropout); the caller's state is restored after
        with torch.random.fork_rng(devices=[device.index] if device.type == "cuda" else []):
            return _train(cfg, images, labels, ctx, resume=resume, progress=progress, max_seconds=max_seconds)
    finally:
        ctx.close()


def _train(cfg: TrainConfig, images, labels, ctx: _Dist, *, resume: bool, progress: bool,
           max_seconds: float | None) -> TrainResult:
    device, rank, world = ctx.device, ctx.rank, ctx.world
    out_dir = Path(cfg.out_dir)
    state_path = out_dir / "state.pt"
    metrics_path = out_dir / "metrics.jsonl"
    cuda = device.type == "cuda"
    bf16 = use_bf16(device, cfg.bf16)
    channels_last = use_bf16(device, cfg.channels_last)
    if cfg.batch_size % world:
        raise ValueError(f"batch_size={cfg.batch_size} must be divisible by the number of ranks ({world})")
    if state_path.exists() and not resume:
        raise FileExistsError(
            f"{out_dir} already holds a run (state.pt); pass resume=True to continue it, or choose another out_dir"
        )
    prev_path = out_dir / "state.prev.pt"
    if resume and not state_path.exists() and prev_path.exists():
        raise CheckpointDamagedError(f"{state_path} is missing but {prev_path} is there: `mv {prev_path} "
                                     f"{state_path}` to resume from the previous checkpoint")
    fresh = not (resume and state_path.exists())
    num_classes = cfg.model_kwargs().get("num_classes", 0)
    conditional = num_classes > 0

    # --- data ----------------------------------------------------------------------
    data, labels = _as_images(images, cfg, labels)
    if isinstance(data, torch.Tensor):
        image_shape = tuple(data.shape[1:])
        num_images = data.shape[0]
        if conditional and labels is None:
            raise ValueError("this network is class-conditional (num_classes > 0): pass labels=... with the images")
        if conditional and labels.numel() and not (0 <= int(labels.min()) and int(labels.max()) < num_classes):
            raise ValueError(f"labels must lie in 0..{num_classes - 1}, got values from {int(labels.min())} to "
                             f"{int(labels.max())}")
        loader = ImageLoader(data, cfg.batch_size, seed=cfg.seed, flip=cfg.hflip, device=device,
                             labels=labels if conditional else None)
    else:
        if conditional and not hasattr(data, "next_labeled_batch"):
            raise ValueError("this network is class-conditional (num_classes > 0): the loader must have "
                             "next_labeled_batch() -> (x, y)")
        loader, num_images = data, None
        image_shape = None
    schedule = make_schedule(cfg.schedule, cfg.T)
    loss_weights = None if cfg.loss_weighting == "l_simple" else timestep_loss_weights(
        schedule, cfg.loss_weighting, gamma=cfg.min_snr_gamma, sigma_data=cfg.edm_sigma_data).to(device)
    if cfg.loss_weighting == "edm" and cfg.t_sampling == "uniform" and rank == 0:
        warnings.warn(f"loss_weighting='edm' with t_sampling='uniform': the EDM weight of an eps-prediction network "
                      f"grows like 1/SNR, to {float(loss_weights.max()):.3g} at the last step, and dominates the loss; "
                      f"EDM pairs it with t_sampling='log_normal'", stacklevel=3)
    # the stages before this run (its lineage); a resumed run takes them from its state below
    parent = _parent_stages(cfg.init_from) if fresh else []
    ema_kwargs = dict(power_gamma=power_ema_gamma(cfg.ema_length) if cfg.ema_length is not None else None,
                      batch_size=cfg.batch_size)

    # --- model, EMA, optimizer (identical initial weights on every rank) -------------
    torch.manual_seed(cfg.seed)
    if image_shape is None:  # a loader: look at one batch, then rewind
        probe = loader.state_dict()
        first = loader.next_batch()
        loader.load_state_dict(probe)
        if first.ndim != 4 or first.shape[0] != cfg.batch_size:
            raise ValueError(f"the loader must yield batches of shape [batch_size={cfg.batch_size}, C, H, W], "
                             f"got {tuple(first.shape)}")
        image_shape = tuple(first.shape[1:])
    model = UNet(**cfg.model_kwargs(image_shape)).to(device)
    if channels_last:
        model = model.to(memory_format=torch.channels_last)
    if cfg.init_from is not None and fresh:  # weights from elsewhere, a fresh optimizer
        raw_state, ema_state = _init_weights(cfg.init_from)
        try:
            load_weights(model, ema_state)
            ema = EMA(model, cfg.ema_decay, cfg.ema_warmup, images_before=_images_of(parent), **ema_kwargs)
            load_weights(model, raw_state)
        except ValueError as err:
            raise ValueError(f"init_from={cfg.init_from!r}: {err}") from None
    else:
        ema = EMA(model, cfg.ema_decay, cfg.ema_warmup, images_before=_images_of(parent), **ema_kwargs)
    optimizer = torch.optim.Adam(model.parameters(), lr=cfg.lr)
    # dropout uses torch's global generator, t and eps a dedicated one; both differ per rank
    torch.manual_seed(_derive_seed(cfg.seed, rank, 1))
    generator = torch.Generator(device=device).manual_seed(_derive_seed(cfg.seed, rank, 2))
    step, elapsed = 0, 0.0

    # --- resume ----------------------------------------------------------------------
    if not fresh:
        state = _load_state(state_path)
        saved = TrainConfig.from_dict(state["config"])
        changed = [f for f in TrainConfig.TRAJECTORY_FIELDS if getattr(saved, f) != getattr(cfg, f)]
        if cfg.lr_schedule != "constant" and saved.total_steps != cfg.total_steps:
            changed.append("total_steps")  # the learning rate decays to zero at total_steps
        if changed:
            raise ValueError(
                "cannot resume exactly: these config fields differ from the saved run: "
                + ", ".join(f"{f} (saved {getattr(saved, f)!r}, now {getattr(cfg, f)!r})" for f in changed)
            )
        if num_images is not None and state.get("num_images") not in (None, num_images):
            raise ValueError(f"cannot resume: the run was trained on {state['num_images']} images, got {num_images}")
        model.load_state_dict(state["model"])
        ema.load_state_dict(state["ema"])
        optimizer.load_state_dict(state["optimizer"])
        loader.load_state_dict(state["data"])
        step, elapsed = int(state["step"]), float(state.get("elapsed", 0.0))
        # a state saved before lineages were recorded: look the stages up again from init_from
        parent = state["lineage_parent"] if "lineage_parent" in state else _parent_stages(cfg.init_from)
        ema.images_before = _images_of(parent)
        rngs = state["rng"]
        if len(rngs) == world:
            _set_rng_state(rngs[rank], generator, device)
        else:
            warnings.warn(f"resuming a {len(rngs)}-rank run on {world} ranks: the random numbers are "
                          f"re-seeded, so the run continues correctly but not bitwise as before")
            torch.manual_seed(_derive_seed(cfg.seed + step, rank, 1))
            generator.manual_seed(_derive_seed(cfg.seed + step, rank, 2))
        if rank == 0:
            _trim_metrics(metrics_path, step)
            _rewrite_damaged_weights(out_dir, model, ema, schedule, step, cfg,
                                     lineage=_lineage(cfg, parent, step, elapsed, device, world))
    elif rank == 0:  # the config first, so that a run killed before its first checkpoint resumes with it
        _write_json(out_dir / "config.json", _checkpoint_config(model, cfg, schedule, step,
                                                                _lineage(cfg, parent, step, elapsed, device, world)))
        _trim_metrics(metrics_path, step)  # a new run: no log lines of a run that died before a checkpoint

    net: nn.Module = model
    if ctx.active:
        net = nn.parallel.DistributedDataParallel(model, device_ids=[device.index] if cuda else None)
    if cfg.compile:
        net = torch.compile(net)
    model.train()

    local = cfg.batch_size // world
    t_start = time.perf_counter()

    def lr_at(s: int) -> float:
        return scheduled_lr(s, cfg.lr, cfg.warmup_steps, cfg.total_steps, cfg.lr_schedule, cfg.lr_decay_fraction)

    def total_time() -> float:
        return elapsed + (time.perf_counter() - t_start)

    lineage_now = _lineage(cfg, parent, step, elapsed, device, world)  # as on disk; save() updates it

    def save():
        nonlocal lineage_now
        rngs = ctx.gather(_rng_state(generator, device))
        if rank != 0:
            return
        resume_state = {
            "step": step, "elapsed": total_time(), "config": cfg.to_dict(), "num_images": num_images,
            "model": _cpu_tensors(model.state_dict()), "ema": _cpu_tensors(ema.state_dict()),
            "optimizer": optimizer.state_dict(), "rng": rngs, "data": loader.state_dict(),
            "world_size": world, "lineage_parent": parent,
        }
        lineage_now = _lineage(cfg, parent, step, resume_state["elapsed"], device, world)
        save_checkpoint(out_dir, model=model, ema=ema, schedule=schedule, step=step, config=cfg,
                        resume_state=resume_state, lineage=lineage_now)

    # --- loop ------------------------------------------------------------------------
    from tqdm.auto import tqdm

    bar = tqdm(total=cfg.total_steps, initial=step, disable=not (progress and rank == 0),
               desc="train", dynamic_ncols=True)
    t_log, step_log = t_start, step
    loss_sum = torch.zeros((), device=device)
    last_loss, reason = None, "done"
    last_saved = step if (resume and state_path.exists()) else None

    def log():
        nonlocal t_log, step_log, loss_sum, last_loss
        n = step - step_log
        if n == 0:
            return
        mean_loss = float(ctx.mean(loss_sum / n))  # synchronises with the device
        now = time.perf_counter()
        if not math.isfinite(mean_loss):
            raise FloatingPointError(f"training loss is {mean_loss} at step {step}; stopping without a checkpoint")
        rate = n * cfg.batch_size / max(now - t_log, 1e-9)
        last_loss = mean_loss
        if rank == 0:
            row = {"step": step, "loss": mean_loss, "lr": lr_at(step - 1),
                   "img_per_s": rate, "time": total_time()}
            out_dir.mkdir(parents=True, exist_ok=True)
            with open(metrics_path, "a") as f:
                f.write(json.dumps(row) + "\n")
            bar.set_postfix(loss=f"{mean_loss:.4f}", img_s=f"{rate:.0f}")
        t_log, step_log = now, step
        loss_sum = torch.zeros((), device=device)

    try:
        with _StopFlag() as stop:
            while step < cfg.total_steps:
                over_time = max_seconds is not None and time.perf_counter() - t_start >= max_seconds
                interrupted, over_time = ctx.any(stop.requested, over_time)
                if interrupted or over_time:
                    reason = "interrupted" if interrupted else "max_seconds"
                    break
                x_0, y = loader.next_labeled_batch() if conditional else (loader.next_batch(), None)
                if ctx.active:
                    x_0 = x_0[rank * local:(rank + 1) * local]
                    y = y[rank * local:(rank + 1) * local] if y is not None else None
                x_0 = x_0.to(device, non_blocking=True)
                y = y.to(device) if y is not None else None
                if channels_last:
                    x_0 = x_0.contiguous(memory_format=torch.channels_last)
                loss = train_step(net, x_0, schedule, optimizer, lr=lr_at(step), grad_clip=cfg.grad_clip,
                                  generator=generator, bf16=bf16, y=y, p_uncond=cfg.label_dropout,
                                  t_sampling=cfg.t_sampling, logsnr_mean=cfg.t_logsnr_mean,
                                  logsnr_std=cfg.t_logsnr_std, loss_weights=loss_weights)
                ema.update(model, step)
                step += 1
                loss_sum += loss
                bar.update(1)
                if step % cfg.log_every == 0:
                    log()
                if step % cfg.ckpt_every == 0:
                    save()
                    last_saved = step
            log()
            if last_saved != step:
                save()
    finally:
        bar.close()
    model.eval()
    if channels_last:  # hand back the network in the ordinary memory format
        model = model.to(memory_format=torch.contiguous_format)
    return TrainResult(model=model, ema=ema, schedule=schedule, config=cfg, step=step,
                       stop_reason=reason, loss=last_loss, out_dir=out_dir,
                       lineage=lineage_now)

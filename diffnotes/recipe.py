r"""The recipe of a training run: its hyper-parameters, and the schedules they set.

* :class:`TrainConfig` -- every hyper-parameter of a run (defaults: Ho et al. 2020, appendix B),
  validated, saved as JSON next to the weights;
* the learning rate: :func:`warmup_lr` (linear warm-up), :func:`lr_decay_factor` and
  :func:`scheduled_lr` (cosine or linear decay to zero over the last part of the run);
* the exponential moving average of the weights (the weights that are sampled from):
  :func:`ema_decay_at` (a fixed decay with its warm-up) and EDM2's power-function EMA whose length is a
  fraction of the images seen (:func:`power_ema_gamma`, :func:`power_ema_sigma_rel`,
  :func:`power_ema_decay`), both kept by :class:`EMA`.

The loss weighting and the distribution of ``t`` that a config chooses live with the objectives
(:mod:`diffnotes.losses`); the loop that uses all of this is :mod:`diffnotes.train`. Chapter 2 and
issue M's recipe options.
"""
from __future__ import annotations

import dataclasses
import inspect
import math
import os
import re
from dataclasses import dataclass, field

import torch
from torch import nn

from ._checks import check_int, check_range
from .schedules import SCHEDULES
from .unet import PRESETS, UNet

__all__ = [
    "TrainConfig",
    "warmup_lr",
    "lr_decay_factor",
    "scheduled_lr",
    "ema_decay_at",
    "power_ema_gamma",
    "power_ema_sigma_rel",
    "power_ema_decay",
    "EMA",
]

_UNET_ARGS = set(inspect.signature(UNet.__init__).parameters) - {"self"}
_SIGMA_REL_MAX = 1.0 / math.sqrt(12.0)  # power-function EMA: sigma_rel at gamma = 0 (a plain running mean)


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
    objective : str
        ``"eps"``: predict the noise (Ho et al. 2020). ``"flow"``: predict the velocity of the straight
        path with the flow-matching loss (Lipman et al. 2023; :func:`diffnotes.train.train_step`), on which
        loss_weighting must stay "l_simple" and t_sampling "uniform"; the trained model is loaded as a
        :class:`diffnotes.flow_net.VelocityNet` and sampled with ``flow_euler`` / ``flow_heun``.
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
    objective: str = "eps"

    # fields that change the training trajectory: they must not change on resume (and total_steps
    # where the learning rate decays)
    TRAJECTORY_FIELDS = (
        "preset", "schedule", "T", "lr", "warmup_steps", "batch_size", "grad_clip", "ema_decay",
        "ema_warmup", "dropout", "hflip", "unet", "seed", "label_dropout", "init_from",
        "loss_weighting", "min_snr_gamma", "edm_sigma_data", "t_sampling", "t_logsnr_mean", "t_logsnr_std",
        "lr_schedule", "lr_decay_fraction", "ema_length", "objective",
    )
    # the allowed values of the fields that are a choice among names
    CHOICES = {
        "loss_weighting": ("l_simple", "min_snr", "edm"),
        "t_sampling": ("uniform", "log_normal"),
        "lr_schedule": ("constant", "cosine", "linear"),
        "objective": ("eps", "flow"),
    }

    @classmethod
    def field_docs(cls) -> dict:
        """``{field: description}`` from the numpydoc ``Attributes`` section of this docstring, as plain text (the
        command line's help of each flag)."""
        doc = (cls.__doc__ or "").splitlines()
        out, names, text, inside = {}, [], [], False
        for line in doc:
            if line.strip() == "Attributes":
                inside = True
                continue
            if not inside or set(line.strip()) == {"-"}:
                continue
            m = re.match(r"^    (\w+(?:, \w+)*) :", line)
            if m:
                for nm in names:
                    out[nm] = " ".join(text)
                names, text = m.group(1).split(", "), []
            elif line.startswith("        ") and names:
                text.append(line.strip())
            elif line.strip() and not line.startswith("    "):
                break
        for nm in names:
            out[nm] = " ".join(text)
        # reStructuredText to plain text: :func:`~a.b` -> a.b, ``x`` -> x
        return {k: re.sub(r":\w+:`~?([^`]+)`", r"\1", v).replace("``", "") for k, v in out.items()}

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
        choice("schedule", SCHEDULES)
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
        if self.objective == "flow" and (self.loss_weighting != "l_simple" or self.t_sampling != "uniform"):
            errors.append(f"objective 'flow' draws t ~ U(0, 1) with equal weights: it needs loss_weighting "
                          f"'l_simple' and t_sampling 'uniform', got {self.loss_weighting!r} and {self.t_sampling!r}")
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

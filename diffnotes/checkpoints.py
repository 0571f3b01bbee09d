r"""Checkpoints: writing a run's files, reading a trained model back, shipping it, and its lineage.

A run directory ``out_dir`` holds::

    model.safetensors   raw weights (float32)              } what load_checkpoint reads
    ema.safetensors     EMA weights (float32)              }
    config.json         train config, model constructor arguments, schedule, step, lineage
    state.pt            everything needed to resume exactly (written by diffnotes.train)
    metrics.jsonl       one JSON line per log interval (written by diffnotes.train)

Every file is written to a temporary file in the same folder and renamed over the old one
(``os.replace``), so a killed run never leaves a half-written file.

**The trained-model contract.** Every loader here returns the network itself (a
:class:`~diffnotes.unet.UNet` or :class:`~diffnotes.unet.ToyMLP`) in eval mode, called as
``model(x_t, t) -> eps_hat`` (``model(x_t, t, y)`` for a class-conditional one), with the attributes
named in :data:`diffnotes._util.TRAINED_MODEL_ATTRS` pinned on it by :func:`attach`: ``.schedule``
(the :class:`~diffnotes.schedules.Schedule` it was trained with), ``.config`` (its ``config.json``),
``.arch`` (constructor arguments) and ``.num_classes``. A wrapper that stands in for such a model
(:class:`~diffnotes.unet.BF16Autocast`, :class:`diffnotes.generate.Labelled`) copies them with
:func:`diffnotes._util.carry_trained_attrs`, so a sampler can read ``model.schedule`` from any of them.
Two kinds of model come wrapped, with the same attributes: a latent model (its config names an autoencoder)
as a :class:`~diffnotes.autoencoder.LatentDiffusion`, and a velocity model (trained with ``objective="flow"``)
as a :class:`~diffnotes.flow_net.VelocityNet`, called as ``model(x_t, t) -> v`` with flow time ``t``.

* :func:`load_model` -- the one loader: a run folder, a ``.safetensors`` file or a shipped model's name;
* :func:`load_checkpoint` (a path) and :func:`pretrained` (a shipped name), the two cases it dispatches to;
* :func:`save_checkpoint`, :func:`export_weights` -- writing a run's checkpoint, shipping its EMA weights;
* :func:`lineage_totals` -- every stage a checkpoint continues through ``init_from``, with steps,
  batch, images and seconds, and the totals, kept in ``config.json`` and in shipped models.
"""
from __future__ import annotations

import contextlib
import json
import math
import os
import re
from pathlib import Path

import torch
from safetensors.torch import load as _st_load
from safetensors.torch import save as _st_save
from torch import nn

from ._util import atomic_write
from .autoencoder import AutoencoderKL, LatentDiffusion
from .flow_net import VelocityNet
from .recipe import EMA, TrainConfig
from .schedules import SCHEDULES, Schedule, make_schedule
from .unet import ToyMLP, UNet, fast_inference

__all__ = [
    "load_model",
    "load_checkpoint",
    "pretrained",
    "attach",
    "build_model",
    "save_checkpoint",
    "export_weights",
    "lineage_totals",
    "init_weights",
    "PRETRAINED_DIR",
    "DEFAULT_MODEL",
    "NOT_RECORDED",
    "CheckpointDamagedError",
    "objective_of",
]

CHECKPOINT_FORMAT = "diffnotes-checkpoint/1"
DEFAULT_MODEL = "cifar10-cpu-3"  # what pretrained() returns: the class-conditional "cpu" preset, stage 3
PRETRAINED_DIR = Path(__file__).resolve().parent / "pretrained"
_MODEL_CLASSES = {"UNet": UNet, "ToyMLP": ToyMLP, "AutoencoderKL": AutoencoderKL}
NOT_RECORDED = "not recorded"  # a lineage figure that no record holds
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")  # a shipped model's name


# ======================================================================================
# files: atomic writes
# ======================================================================================
def cpu_tensors(state: dict, dtype: torch.dtype | None = None) -> dict:
    """A copy of the tensors of ``state`` on the CPU, contiguous, floating ones cast to ``dtype`` if given
    (what is written to a file)."""
    out = {}
    for k, v in state.items():
        v = v.detach().to("cpu")
        if dtype is not None and v.dtype.is_floating_point:
            v = v.to(dtype)
        out[k] = v.contiguous()
    return out


def write_safetensors(path, tensors: dict, metadata: dict | None = None) -> Path:
    """Write ``tensors`` to ``path`` as safetensors (``metadata`` as strings), atomically."""
    data = _st_save(cpu_tensors(tensors), metadata={k: str(v) for k, v in (metadata or {}).items()})
    return atomic_write(path, lambda f: f.write(data))


def write_json(path, obj) -> Path:
    """Write ``obj`` to ``path`` as JSON (indent 2, sorted keys: the format of ``config.json``), atomically."""
    data = (json.dumps(obj, indent=2, sort_keys=True) + "\n").encode()
    return atomic_write(path, lambda f: f.write(data))


def write_torch(path, obj) -> Path:
    """Write ``obj`` to ``path`` with ``torch.save`` (``state.pt``), atomically."""
    return atomic_write(path, lambda f: torch.save(obj, f))


class CheckpointDamagedError(RuntimeError):
    """A checkpoint file exists but cannot be read (truncated, overwritten, not a checkpoint)."""


def read_safetensors(path: Path, what_to_do: str = "") -> dict:
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


def load_state(path: Path) -> dict:
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


def unwrap(model: nn.Module) -> nn.Module:
    """The plain module inside DDP and/or torch.compile wrappers."""
    while True:
        if isinstance(model, nn.parallel.DistributedDataParallel):
            model = model.module
        elif hasattr(model, "_orig_mod"):
            model = model._orig_mod
        else:
            return model


def model_spec(model: nn.Module) -> dict:
    """``{"class", "kwargs"}`` of a network (the ``"model"`` entry of ``config.json``; :func:`build_model`
    builds it back)."""
    model = unwrap(model)
    name = type(model).__name__
    if name not in _MODEL_CLASSES or not hasattr(model, "arch"):
        raise ValueError(f"model must be a diffnotes {', '.join(list(_MODEL_CLASSES)[:-1])} or {list(_MODEL_CLASSES)[-1]}, "
                         f"got {name}")
    kwargs = {k: list(v) if isinstance(v, tuple) else v for k, v in model.arch.items()}
    return {"class": name, "kwargs": kwargs}


def build_model(spec: dict) -> nn.Module:
    """Build the network described by ``spec = {"class": "UNet"|"ToyMLP", "kwargs": {...}}``
    (the ``"model"`` entry of a checkpoint's ``config.json``)."""
    if not isinstance(spec, dict) or spec.get("class") not in _MODEL_CLASSES:
        raise ValueError(f"model spec must name a class in {sorted(_MODEL_CLASSES)}, got {spec!r}")
    kwargs = {k: tuple(v) if isinstance(v, list) else v for k, v in spec.get("kwargs", {}).items()}
    return _MODEL_CLASSES[spec["class"]](**kwargs)


def schedule_spec(schedule: Schedule) -> dict:
    """``{"name", "T"}`` when :func:`make_schedule` rebuilds ``schedule`` exactly, else also its betas."""
    spec = {"name": schedule.name, "T": schedule.T}
    if schedule.name in SCHEDULES and torch.equal(make_schedule(schedule.name, schedule.T).betas, schedule.betas):
        return spec
    return dict(spec, betas=schedule.betas.tolist())


# ======================================================================================
# lineage: the stages of training behind a checkpoint
# ======================================================================================
_LINEAGE_FIGURES = ("steps", "batch_size", "images", "seconds", "device")


def _number(v) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


def stage_record(name, init_from, steps, batch_size, seconds, device, ranks=1) -> dict:
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


def source_config(source: str) -> dict | None:
    """The checkpoint config of what ``init_from=source`` names (found as :func:`init_weights` finds
    its weights), or ``None`` when there is none."""
    path = Path(source).expanduser()
    if path.is_dir():
        candidates = [path / "config.json"]
    elif path.suffix == ".safetensors":
        candidates = [path.with_suffix(".json"), path.parent / "config.json"]
    elif _NAME.fullmatch(source):
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


def parent_stages(init_from: str | None) -> list:
    """The stages before a run started with ``init_from``: the source's lineage if it has one; else
    the source's own stage from its config (its time not recorded) after one entry for whatever it
    came from; else one entry naming the source with every figure not recorded."""
    if init_from is None:
        return []
    config = source_config(init_from)
    if config is None:
        return [stage_record(init_from, NOT_RECORDED, None, None, None, None, None)]
    lineage = config.get("lineage")
    if isinstance(lineage, dict) and isinstance(lineage.get("stages"), list):
        return [dict(st) for st in lineage["stages"]]
    train_cfg = config.get("train") or {}
    before = train_cfg.get("init_from")
    stages = [] if before is None else [stage_record(before, NOT_RECORDED, None, None, None, None, None)]
    stages.append(stage_record(train_cfg.get("out_dir", init_from), before, config.get("step"),
                                train_cfg.get("batch_size"), None, None, None))
    return stages


def images_of(stages: list) -> int:
    """The images seen in a list of lineage stages (:func:`lineage_totals`)."""
    return lineage_totals(stages)["images"]


def run_lineage(out_dir: Path, config: dict) -> dict | None:
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
    stage = stage_record(train_cfg.get("out_dir", str(out_dir)), train_cfg.get("init_from"), config.get("step"),
                          train_cfg.get("batch_size"), seconds, device, ranks)
    return lineage_totals(parent_stages(train_cfg.get("init_from")) + [stage])


def checkpoint_config(model, config: TrainConfig | None, schedule: Schedule, step: int,
                       lineage: dict | None = None) -> dict:
    """The ``config.json`` of a checkpoint: format, step, model spec, schedule, train config, lineage."""
    out = {
        "format": CHECKPOINT_FORMAT,
        "step": int(step),
        "model": model_spec(model),
        "schedule": schedule_spec(schedule),
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
    raw = unwrap(model)
    config_json = checkpoint_config(raw, config, schedule, step, lineage)  # validates before writing anything
    meta = {"step": step, "format": CHECKPOINT_FORMAT}
    write_safetensors(out_dir / "model.safetensors", raw.state_dict(), meta)
    if ema is not None:
        write_safetensors(out_dir / "ema.safetensors", ema.state_dict(), meta)
    write_json(out_dir / "config.json", config_json)
    if resume_state is not None:
        _keep_previous(out_dir / "state.pt")
        write_torch(out_dir / "state.pt", resume_state)
    return out_dir


def attach(model: nn.Module, config: dict) -> nn.Module:
    """Pin the trained-model contract onto ``model`` (module docstring): ``.config`` and the ``.schedule`` its
    config names (rebuilt by :func:`diffnotes.schedules.make_schedule`, or from the stored betas). Returns ``model``."""
    model.config = config
    if isinstance(model, AutoencoderKL):  # no noise schedule: an autoencoder (diffnotes.latent)
        return model
    sched = config.get("schedule") or {"name": "linear", "T": 1000}
    if "betas" in sched:
        model.schedule = Schedule(torch.tensor(sched["betas"], dtype=torch.float64), name=sched["name"])
    else:
        model.schedule = make_schedule(sched["name"], sched["T"])
    return model


def read_config(path: Path) -> dict:
    """The checkpoint config at ``path``; ``FileNotFoundError`` / ``ValueError`` saying what is wrong."""
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
    config = None
    if path.is_dir():
        cfg_path = path / "config.json"
        config = read_config(cfg_path) if cfg_path.exists() else None
        has_ema = config is None or config.get("ema") is not False  # an autoencoder run has none
        weights = path / ("ema.safetensors" if ema and has_ema else "model.safetensors")
    else:
        weights = path
        cfg_path = path.with_suffix(".json")
        if not cfg_path.exists():
            cfg_path = path.parent / "config.json"
    if not weights.exists():
        raise FileNotFoundError(f"no weights at {weights}")
    config = config if config is not None else read_config(cfg_path)
    model = build_model(config["model"])
    state = read_safetensors(weights, _repair_hint(weights))
    state = {k: v.float() if v.is_floating_point() else v for k, v in state.items()}
    model.load_state_dict(state)
    model = attach(model.to(device).eval(), config)
    if "latent" in config:  # a latent network: decode with its autoencoder (diffnotes.latent)
        model = _with_autoencoder(model, config["latent"], path.parent if path.is_file() else PRETRAINED_DIR, device)
    if objective_of(config) == "flow":  # a velocity network: called as model(x, t) with flow time t
        model = VelocityNet(model, model.schedule)
    return model


def objective_of(config: dict) -> str:
    """What a checkpoint's network predicts: ``"eps"`` (the noise) or ``"flow"`` (the velocity of the straight
    path, :mod:`diffnotes.flow_matching`), from its training config (``"eps"`` when it has none)."""
    train_cfg = config.get("train") if isinstance(config, dict) else None
    return str(train_cfg.get("objective", "eps")) if isinstance(train_cfg, dict) else "eps"


def _with_autoencoder(unet: nn.Module, latent: dict, root: Path, device) -> LatentDiffusion:
    """``unet`` wrapped with the autoencoder its config names (a name looked up in ``root``, then among the
    shipped models, then as a path) and its latent scale."""
    name = str(latent.get("autoencoder"))
    for candidate in (root / f"{name}.safetensors", PRETRAINED_DIR / f"{name}.safetensors", Path(name)):
        if candidate.exists():
            return LatentDiffusion(unet, load_checkpoint(candidate, device=device), float(latent["scale_factor"]))
    raise FileNotFoundError(f"this latent model decodes with autoencoder {name!r}, which is neither a file nor in "
                            f"{root} or {PRETRAINED_DIR}")


EXPORT_DTYPES = {"bfloat16": torch.bfloat16, "float32": torch.float32}


def export_weights(out_dir, dest_path, *, ema: bool = True, dtype: str = "float32") -> Path:
    """Write a run's (EMA) weights to ``dest_path`` (.safetensors) in ``dtype`` and its config beside it
    (same name, ``.json``): the format of the shipped pretrained models. Returns ``dest_path``.

    ``dtype`` is ``"float32"`` (the weights as trained) or ``"bfloat16"`` (half the size). Rounding the
    weights to bf16 is not free: the FID of 2 000 DDIM-50 samples of ``cifar10-cpu-4`` and
    ``cifar10-cpu-5`` rose by 2.1 and 2.5 (MODEL_CARD.md), so models are shipped in float32 from stage 5
    on. The config records the dtype and keeps the run's lineage (:func:`lineage_totals`). A run recorded
    before lineages were (no ``lineage`` in its ``config.json``) gets one here: the stages of its
    ``init_from`` (a shipped model's ``.json``, a run folder's ``config.json``) and its own, with its
    seconds from ``state.pt``."""
    out_dir, dest_path = Path(out_dir), Path(dest_path)
    if dest_path.suffix != ".safetensors":
        raise ValueError(f"dest_path must end in .safetensors, got {dest_path}")
    if dtype not in EXPORT_DTYPES:
        raise ValueError(f"dtype must be one of {sorted(EXPORT_DTYPES)}, got {dtype!r}")
    weights = out_dir / ("ema.safetensors" if ema else "model.safetensors")
    if not weights.exists():
        raise FileNotFoundError(f"no weights at {weights}")
    config = read_config(out_dir / "config.json")
    config = dict(config, dtype=dtype, weights="ema" if ema else "raw")
    if "lineage" not in config:
        lineage = run_lineage(out_dir, config)
        if lineage is not None:
            config["lineage"] = lineage
    state = cpu_tensors(read_safetensors(weights, _repair_hint(weights)), EXPORT_DTYPES[dtype])
    data = _st_save(state, metadata={"step": str(config.get("step")), "format": CHECKPOINT_FORMAT})
    atomic_write(dest_path, lambda f: f.write(data))
    write_json(dest_path.with_suffix(".json"), config)
    return dest_path


def pretrained(name: str = DEFAULT_MODEL, *, root=None, device="cpu") -> nn.Module:
    """A shipped trained model: ``<root>/<name>.safetensors`` (float32 or bf16) + ``<name>.json``.

    Returns the network in eval mode and float32, called as ``model(x_t, t) -> eps_hat``, with
    ``.schedule`` and ``.config`` attached. ``root`` defaults to ``diffnotes/pretrained``.
    Raises ``FileNotFoundError`` listing the available names when ``name`` is not there.
    """
    root = Path(root) if root is not None else PRETRAINED_DIR
    if not isinstance(name, str) or not _NAME.fullmatch(name):
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

def init_weights(source: str) -> tuple[dict, dict]:
    """``(raw, ema)`` weight dicts (float32) that ``init_from=source`` starts a run from."""
    path = Path(source).expanduser()
    if path.is_dir():
        raw, ema = path / "model.safetensors", path / "ema.safetensors"
        files = [raw if raw.exists() else ema, ema if ema.exists() else raw]  # either may stand in for the other
    elif path.suffix == ".safetensors":
        files = [path, path]
    elif _NAME.fullmatch(source) and (PRETRAINED_DIR / f"{source}.safetensors").exists():
        files = [PRETRAINED_DIR / f"{source}.safetensors"] * 2
    else:
        raise FileNotFoundError(f"init_from={source!r} is neither a run folder, a .safetensors file nor a shipped "
                                f"model in {PRETRAINED_DIR}")
    for f in files:
        if not f.exists():
            raise FileNotFoundError(f"init_from={source!r}: no weights at {f}")
    raw, ema = (read_safetensors(f, _repair_hint(f)) for f in files)
    return ({k: v.float() if v.is_floating_point() else v for k, v in d.items()} for d in (raw, ema))


# ======================================================================================
# the one loader
# ======================================================================================
def load_model(source: str | os.PathLike | None = None, *, ema: bool = True, device="cpu",
               bf16: bool | None = False) -> nn.Module:
    """A trained model, from wherever it is: the one loader of the package, the command line, the
    scripts and the chapters.

    Parameters
    ----------
    source : str, Path or None
        A run folder (``config.json`` with ``ema.safetensors`` / ``model.safetensors``), a
        ``.safetensors`` file (its ``.json`` beside it), or the name of a shipped model in
        :data:`PRETRAINED_DIR`; default :data:`DEFAULT_MODEL`. An existing path goes to
        :func:`load_checkpoint`, a plain name to :func:`pretrained`.
    ema : bool
        For a run folder: its EMA weights (default) or the raw ones.
    device : str or torch.device
    bf16 : bool or None
        Run the network under bf16 autocast (True), in float32 (False, the default), or as fast as
        the device allows (None: :func:`diffnotes.unet.fast_inference`).

    Returns the network with the trained-model contract (module docstring). Raises
    ``FileNotFoundError`` saying what was looked for when ``source`` is neither.
    """
    source = DEFAULT_MODEL if source is None else source
    path = Path(source).expanduser()
    if path.exists():
        model = load_checkpoint(path, ema=ema, device=device)
    elif os.sep in str(source) or "/" in str(source) or str(source).endswith((".safetensors", ".json")):
        raise FileNotFoundError(f"checkpoint {str(source)!r} does not exist (expected a run folder with "
                                f"config.json and ema.safetensors, or a .safetensors file)")
    else:
        try:
            model = pretrained(str(source), device=device)
        except (FileNotFoundError, ValueError) as err:
            raise FileNotFoundError(f"checkpoint {str(source)!r} is neither an existing path nor a shipped "
                                    f"model: {err}") from None
    if bf16 is False or isinstance(model, AutoencoderKL):
        return model
    if isinstance(model, (LatentDiffusion, VelocityNet)):  # the U-Net inside runs fast (a decoder stays float32)
        model.unet = fast_inference(model.unet, bf16)
        return model
    return fast_inference(model, bf16)

r"""Training for latent diffusion: the autoencoder's loop, the latents of a dataset, the latent model's export.

* :func:`train_autoencoder` minimises :func:`diffnotes.autoencoder.negative_elbo` with Adam on shuffled,
  mirrored CIFAR-10 batches (:class:`diffnotes.data.ImageLoader`), writing ``model.safetensors``,
  ``config.json``, ``state.pt`` and ``metrics.jsonl`` like :func:`diffnotes.train.train` (atomic checkpoints,
  exact resume, a stop at ``max_seconds`` or Ctrl-C that keeps the work).
* :func:`encode_dataset` gives :math:`\mu_\phi(x)` of every image and of its mirror image, so that the latent
  model's loader can flip as the pixel model's does.
* :func:`latent_loader` feeds those latents, scaled by :func:`diffnotes.autoencoder.latent_scale_factor`, to
  :func:`diffnotes.train.train`, which trains the latent U-Net with the pixel model's very loop.
* :func:`export_latent_diffusion` ships the latent network with the name of its autoencoder and the scale, so
  that ``diffnotes.pretrained(name)`` returns a :class:`diffnotes.autoencoder.LatentDiffusion`.

Chapter 11; the commands are in ``diffnotes/pretrained/LATENT_CARD.md``.
"""
from __future__ import annotations

import json
import time
from pathlib import Path

import torch

from ._checks import check_int, check_range
from ._util import use_bf16
from .autoencoder import AutoencoderKL, negative_elbo, psnr
from .checkpoints import (CHECKPOINT_FORMAT, export_weights, lineage_totals, load_state, model_spec, read_config,
                          stage_record, write_json, write_safetensors, write_torch)
from .data import ImageLoader, load_cifar10, to_float

__all__ = ["train_autoencoder", "encode_dataset", "latent_loader", "export_latent_diffusion"]


def _save(out_dir: Path, model, optimizer, loader, generator, step: int, elapsed: float, train_cfg: dict,
          parent: list) -> None:
    stage = stage_record(str(out_dir), train_cfg.get("init_from"), step, train_cfg["batch_size"], elapsed,
                         "cpu" if next(model.parameters()).device.type == "cpu" else "cuda")
    config = {"format": CHECKPOINT_FORMAT, "kind": "autoencoder", "ema": False, "step": int(step),
              "model": model_spec(model), "train": train_cfg, "lineage": lineage_totals(parent + [stage])}
    write_safetensors(out_dir / "model.safetensors", {k: v.detach().cpu().contiguous()
                                                      for k, v in model.state_dict().items()})
    write_torch(out_dir / "state.pt", {"model": model.state_dict(), "optimizer": optimizer.state_dict(),
                                       "step": step, "loader": loader.state_dict(),
                                       "generator": generator.get_state(), "elapsed": elapsed, "parent": parent})
    write_json(out_dir / "config.json", config)


def train_autoencoder(out_dir, images=None, *, steps: int, batch_size: int = 64, lr: float = 2e-4,
                      sigma_x: float = 0.1, seed: int = 0, data_root=None, model_kwargs: dict | None = None,
                      ckpt_every: int = 250, log_every: int = 50, max_seconds: float | None = None,
                      resume: bool = False, progress: bool = True, bf16: bool | None = None,
                      device="cpu") -> AutoencoderKL:
    r"""Train an :class:`~diffnotes.autoencoder.AutoencoderKL` on the negative ELBO, per pixel value, with Adam.

    Parameters
    ----------
    out_dir : str or Path
        The run folder. An existing run is continued with ``resume=True`` and never overwritten without it.
    images : uint8 [N, 3, 32, 32], optional
        Default: the CIFAR-10 training images in ``data_root`` (:func:`diffnotes.data.load_cifar10`).
    steps : int
        Train until this many optimizer steps in total.
    sigma_x : float
        The decoder's standard deviation :math:`\sigma_x` in :math:`[-1, 1]` pixel units: it sets the weight
        of the distortion against the KL (a smaller one, a sharper and less regular latent).
    max_seconds : float, optional
        Stop (and checkpoint) after this much wall time; Ctrl-C stops after the current step and saves.
    bf16 : bool or None
        bf16 autocast for the forward pass (None: where the CPU computes bf16 natively).

    Returns the network (float32, eval mode) at the last step, with ``.config`` attached.
    """
    out_dir = Path(out_dir)
    steps = check_int("steps", steps, 1)
    batch_size = check_int("batch_size", batch_size, 1)
    check_range("lr", lr, 0.0, None, low_open=True)
    check_range("sigma_x", sigma_x, 0.0, None, low_open=True)
    seed = check_int("seed", seed, 0)
    ckpt_every = check_int("ckpt_every", ckpt_every, 1)
    log_every = check_int("log_every", log_every, 1)
    if max_seconds is not None:
        check_range("max_seconds", max_seconds, 0.0, None)
    if (out_dir / "state.pt").exists() and not resume:
        raise FileExistsError(f"{out_dir} already holds a run: pass resume=True to continue it, or choose a new "
                              f"out_dir")
    given = json.loads(json.dumps({"batch_size": batch_size, "lr": lr, "sigma_x": sigma_x, "seed": seed,
                                   "model_kwargs": dict(model_kwargs or {})}))
    if resume and (out_dir / "state.pt").exists():  # a run continues with its own settings, before any long work
        saved = read_config(out_dir / "config.json")["train"]
        differ = [f"{k}={v!r} (the run has {saved.get(k)!r})" for k, v in given.items() if saved.get(k) != v]
        if differ:
            raise ValueError(f"resume=True continues the run in {out_dir} with its own settings, and these differ: "
                             f"{', '.join(differ)}; pass the run's values, or start a new out_dir")
    if images is None:
        images, _ = load_cifar10(data_root, split="train")
    images = torch.as_tensor(images)
    if images.dtype != torch.uint8 or images.ndim != 4:
        raise ValueError(f"images must be uint8 [N, C, H, W], got {images.dtype} {tuple(images.shape)}")
    device = torch.device(device)
    train_cfg = dict(given, steps=steps, init_from=None, out_dir=str(out_dir))

    torch.manual_seed(seed)
    model = AutoencoderKL(**(model_kwargs or {})).to(device)
    optimizer = torch.optim.Adam(model.parameters(), lr=lr)
    loader = ImageLoader(images, batch_size, seed=seed, flip=True, device=device)
    generator = torch.Generator(device=device).manual_seed(seed + 1)
    step, elapsed, parent = 0, 0.0, []
    if resume and (out_dir / "state.pt").exists():
        state = load_state(out_dir / "state.pt")
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        loader.load_state_dict(state["loader"])
        generator.set_state(state["generator"])
        step, elapsed, parent = int(state["step"]), float(state["elapsed"]), list(state.get("parent", []))
    out_dir.mkdir(parents=True, exist_ok=True)
    autocast = use_bf16(device, bf16 is not False)
    d = images[0].numel()

    from tqdm.auto import tqdm

    bar = tqdm(total=steps, initial=step, desc="autoencoder", disable=not progress, dynamic_ncols=True)
    start, sums, n_log, reason = time.perf_counter() - elapsed, {}, 0, "done"
    model.train()
    try:
        while step < steps:
            if max_seconds is not None and time.perf_counter() - start >= max_seconds:
                reason = "max_seconds"
                break
            x = loader.next_batch()
            with torch.autocast(device.type, dtype=torch.bfloat16, enabled=autocast):
                x_hat, mu, logvar = model(x, generator=generator)
            terms = negative_elbo(x, x_hat.float(), mu.float(), logvar.float(), sigma_x=sigma_x)
            loss = terms["nelbo"].mean() / d  # nats per pixel value
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            step += 1
            bar.update(1)
            with torch.no_grad():
                for k, v in (("loss", loss), ("rate", terms["rate"].mean() / d),
                             ("psnr", psnr(x, x_hat.float().clamp(-1, 1)).mean())):
                    sums[k] = sums.get(k, 0.0) + float(v)
            n_log += 1
            if step % log_every == 0 or step == steps:
                row = {"step": step, **{k: v / n_log for k, v in sums.items()},
                       "seconds": round(time.perf_counter() - start, 1)}
                with open(out_dir / "metrics.jsonl", "a") as f:
                    f.write(json.dumps(row) + "\n")
                bar.set_postfix(loss=f"{row['loss']:.4f}", psnr=f"{row['psnr']:.2f}")
                sums, n_log = {}, 0
            if step % ckpt_every == 0:
                _save(out_dir, model, optimizer, loader, generator, step, time.perf_counter() - start, train_cfg,
                      parent)
    except KeyboardInterrupt:
        reason = "interrupted"
    bar.close()
    _save(out_dir, model, optimizer, loader, generator, step, time.perf_counter() - start, train_cfg, parent)
    model.eval().config = read_config(out_dir / "config.json")
    model.stop_reason = reason
    return model


@torch.no_grad()
def encode_dataset(autoencoder: AutoencoderKL, images, *, batch_size: int = 500,
                   progress: bool = True) -> tuple[torch.Tensor, torch.Tensor]:
    r"""The posterior means :math:`\mu_\phi(x)` of ``images`` (uint8 ``[N, 3, H, W]``) and of their mirror images,
    two float32 tensors ``[N, latent_channels, H/f, W/f]`` on the CPU (float32 network, eval mode)."""
    images = torch.as_tensor(images)
    if images.dtype != torch.uint8 or images.ndim != 4:
        raise ValueError(f"images must be uint8 [N, C, H, W], got {images.dtype} {tuple(images.shape)}")
    batch_size = check_int("batch_size", batch_size, 1)
    from tqdm.auto import tqdm

    autoencoder = autoencoder.eval()
    device = next(autoencoder.parameters()).device
    mus, mirrored = [], []
    for i in tqdm(range(0, len(images), batch_size), desc="encode", disable=not progress):
        x = to_float(images[i:i + batch_size]).to(device)
        mus.append(autoencoder.encode(x)[0].float().cpu())
        mirrored.append(autoencoder.encode(x.flip(-1))[0].float().cpu())
    return torch.cat(mus), torch.cat(mirrored)


def latent_loader(latents: torch.Tensor, mirrored: torch.Tensor, scale_factor: float, batch_size: int, *,
                  seed: int, device=None) -> ImageLoader:
    r"""A resumable loader of scaled latents :math:`s\,\mu_\phi(x)` for :func:`diffnotes.train.train`: each epoch
    in a new order, each latent replaced by its mirror image's with probability 1/2 (the pixel model's
    augmentation, done in image space)."""
    check_range("scale_factor", scale_factor, 0.0, None, low_open=True)
    return ImageLoader(latents * scale_factor, batch_size, seed=seed, device=device,
                       mirrored=mirrored * scale_factor)


def export_latent_diffusion(run_dir, dest_path, *, autoencoder: str, scale_factor: float) -> Path:
    r"""Export a latent U-Net run (:func:`diffnotes.checkpoints.export_weights`, float32 EMA weights) and record
    in its ``.json`` the autoencoder it decodes with (a shipped name, looked up beside it) and the scale
    :math:`s`; :func:`diffnotes.checkpoints.load_model` then returns a
    :class:`~diffnotes.autoencoder.LatentDiffusion`."""
    check_range("scale_factor", scale_factor, 0.0, None, low_open=True)
    dest = export_weights(run_dir, dest_path)
    cfg_path = Path(dest).with_suffix(".json")
    config = json.loads(cfg_path.read_text())
    config["latent"] = {"autoencoder": str(autoencoder), "scale_factor": float(scale_factor)}
    write_json(cfg_path, config)
    return dest

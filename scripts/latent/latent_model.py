"""Train (or resume) chapter 11's diffusion model in the latent space of the KL autoencoder, and export it.

    .venv/bin/python scripts/latent/latent_model.py --autoencoder cifar10-ae --out runs/cifar10-ldm \
        --max-seconds 2700 [--resume] [--export cifar10-ldm]

The first run encodes the CIFAR-10 training images and their mirror images (posterior means, float32) and
keeps them with the scale factor s in ``<out>/latents.pt``; the U-Net then trains on s * mu with
:func:`diffnotes.train.train`, the pixel model's loop (L_simple, linear schedule, EMA). ``--export NAME``
writes ``diffnotes/pretrained/NAME.safetensors`` and ``.json`` (float32 EMA weights) naming the autoencoder.
Needs $DIFFNOTES_CIFAR10 for the first run.
"""
from __future__ import annotations

import argparse
from pathlib import Path

import torch

from diffnotes.autoencoder import latent_scale_factor
from diffnotes.checkpoints import PRETRAINED_DIR, load_model
from diffnotes.data import load_cifar10
from diffnotes.latent import encode_dataset, export_latent_diffusion, latent_loader
from diffnotes.recipe import TrainConfig
from diffnotes.train import train

UNET = {"ch": 64, "ch_mult": [1, 2], "num_res_blocks": 2, "attn_resolutions": [4], "num_groups": 8}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--autoencoder", default="cifar10-ae", help="a shipped name or an autoencoder run folder")
    ap.add_argument("--out", default="runs/cifar10-ldm")
    ap.add_argument("--total-steps", type=int, default=100_000)
    ap.add_argument("--batch-size", type=int, default=64)
    ap.add_argument("--lr", type=float, default=2e-4)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--max-seconds", type=float, default=None)
    ap.add_argument("--resume", action="store_true")
    ap.add_argument("--export", metavar="NAME", default=None)
    ap.add_argument("--no-progress", action="store_true")
    args = ap.parse_args()

    out = Path(args.out)
    cache = out / "latents.pt"
    if cache.exists():
        saved = torch.load(cache, weights_only=True)
        mu, mirrored, s = saved["mu"], saved["mirrored"], float(saved["scale_factor"])
    else:
        ae = load_model(args.autoencoder)
        images, _ = load_cifar10(split="train")
        mu, mirrored = encode_dataset(ae, images, progress=not args.no_progress)
        s = latent_scale_factor(mu)
        out.mkdir(parents=True, exist_ok=True)
        torch.save({"mu": mu, "mirrored": mirrored, "scale_factor": s, "autoencoder": args.autoencoder}, cache)
    print(f"{len(mu)} latents {tuple(mu.shape[1:])}, std {1 / s:.4f} -> scale factor s = {s:.4f}")

    cfg = TrainConfig(preset="tiny", unet=UNET, dropout=0.0, lr=args.lr, warmup_steps=500,
                      batch_size=args.batch_size, ema_decay=0.9995, ema_warmup=True, hflip=False,
                      total_steps=args.total_steps, ckpt_every=250, log_every=50, seed=args.seed, out_dir=str(out),
                      bf16=True, channels_last=True)
    loader = latent_loader(mu, mirrored, s, args.batch_size, seed=args.seed)
    result = train(cfg, loader, resume=args.resume, max_seconds=args.max_seconds, progress=not args.no_progress)
    print(f"stopped at step {result.step} ({result.stop_reason})")
    if args.export:
        dest = export_latent_diffusion(out, PRETRAINED_DIR / f"{args.export}.safetensors",
                                       autoencoder=args.autoencoder, scale_factor=s)
        print(f"exported {dest}")


if __name__ == "__main__":
    main()

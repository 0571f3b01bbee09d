"""Train (or resume) the KL autoencoder of chapter 11 on the CIFAR-10 training images and export it.

    DIFFNOTES_CIFAR10=<stand-in>/cifar-10-batches-py .venv/bin/python scripts/latent/autoencoder.py \
        --out runs/cifar10-ae --steps 20000 --max-seconds 1500 [--resume] [--export cifar10-ae]

Defaults are the shipped model's settings (diffnotes/pretrained/LATENT_CARD.md). ``--export NAME`` writes
``diffnotes/pretrained/NAME.safetensors`` and ``.json`` from the run's last checkpoint.
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

from diffnotes.checkpoints import PRETRAINED_DIR, export_weights
from diffnotes.latent import train_autoencoder

MODEL = {"ch": 32, "ch_mult": [1, 2, 4], "num_groups": 8, "latent_channels": 4}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", default="runs/cifar10-ae")
    ap.add_argument("--steps", type=int, default=20000)
    ap.add_argument("--batch-size", type=int, default=64)
    ap.add_argument("--lr", type=float, default=5e-4)
    ap.add_argument("--sigma-x", type=float, default=0.05)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--max-seconds", type=float, default=None)
    ap.add_argument("--resume", action="store_true")
    ap.add_argument("--export", metavar="NAME", default=None)
    ap.add_argument("--no-progress", action="store_true")
    args = ap.parse_args()
    model = train_autoencoder(args.out, steps=args.steps, batch_size=args.batch_size, lr=args.lr,
                              sigma_x=args.sigma_x, seed=args.seed, model_kwargs=MODEL, resume=args.resume,
                              max_seconds=args.max_seconds, progress=not args.no_progress)
    print(f"stopped at step {model.config['step']} ({model.stop_reason}); run in {args.out}")
    if args.export:
        dest = export_weights(args.out, PRETRAINED_DIR / f"{args.export}.safetensors", ema=False)
        print(f"exported {dest} ({json.loads(Path(dest).with_suffix('.json').read_text())['lineage']['images']} images)")


if __name__ == "__main__":
    main()

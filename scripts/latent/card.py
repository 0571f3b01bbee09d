"""Measurements of chapter 11's latent pipeline for LATENT_CARD.md, written to
``diffnotes/pretrained/fid/<ldm>-latent.json`` (:func:`diffnotes.records.write_record`, kind ``"latent"``).

* ``--part recon``: the autoencoder on the first ``--n`` CIFAR-10 test images: PSNR of the reconstructions
  D(mu(x)), the rate KL(q(z|x) || N(0, I)) in nats per pixel value, and the FID of the reconstructions against
  the 2 000-image training reference of the pixel model's rows (``scripts/model_card/fid_rows.py``): the floor
  that samples decoded by this autoencoder cannot go below on average.
* ``--part speed``: images per second of one training step (batch 64, bf16 autocast where the CPU has it)
  for the pixel model (preset ``cpu``), the autoencoder and the latent U-Net, and of DDIM-50 sampling
  (pixel model; latent model plus decoding), each the median of ``--repeats`` timed runs after a warm-up.
  Run it alone on the machine: the figures are wall-clock.

The FID of the latent model's samples is a row of ``fid_rows.py`` (``--ckpt cifar10-ldm --rows ddim_50``).

    DIFFNOTES_CIFAR10=<stand-in>/cifar-10-batches-py .venv/bin/python scripts/latent/card.py --part recon
    .venv/bin/python scripts/latent/card.py --part speed
"""
from __future__ import annotations

import argparse
import platform
import statistics
import time

import numpy as np
import torch

from diffnotes import data, fid, records
from diffnotes.autoencoder import gaussian_kl, psnr
from diffnotes.checkpoints import load_model
from diffnotes.generate import sample_images
from diffnotes.unet import BF16Autocast, fast_inference, make_unet


def recon(ae_name: str, n: int) -> dict:
    images, _ = data.load_cifar10(split="test")
    x_u8 = torch.from_numpy(np.ascontiguousarray(images[:n]))
    ae = load_model(ae_name)
    rec, ps, rates = [], [], []
    t0 = time.perf_counter()
    with torch.no_grad():
        for i in range(0, n, 250):
            x = data.to_float(x_u8[i:i + 250])
            mu, logvar = ae.encode(x)
            x_hat = ae.decode(mu)
            rec.append(data.to_uint8(x_hat))
            ps.append(psnr(data.to_float(rec[-1]), x))  # of the quantised images, as saved and as FID sees them
            rates.append(gaussian_kl(mu, logvar) / x[0].numel())
    seconds = time.perf_counter() - t0
    feats = fid.inception_features(torch.cat(rec), progress=True)
    ps, rates = torch.cat(ps).double(), torch.cat(rates).double()
    return {"n": n, "psnr_db": float(ps.mean()), "psnr_se": float(ps.std() / n**0.5),
            "rate_nats_per_dim": float(rates.mean()), "round_trip_seconds": round(seconds, 1),
            **records.fid_scores(feats, records.reference_2k())}


def _train_rate(model, shape, repeats: int, bf16: bool) -> float:
    opt = torch.optim.Adam(model.parameters(), lr=1e-4)
    x = torch.randn(64, *shape)
    rates = []
    for k in range(repeats + 2):
        t0 = time.perf_counter()
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            if hasattr(model, "encode"):
                out = model(x)[0]
            else:
                out = model(x, torch.randint(0, 1000, (64,)))
        loss = (out.float() - x).pow(2).mean()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        if k >= 2:
            rates.append(64 / (time.perf_counter() - t0))
    return statistics.median(rates)


def speed(ae_name: str, ldm_name: str, pixel_name: str, repeats: int) -> dict:
    bf16 = isinstance(fast_inference(torch.nn.Linear(1, 1), None), BF16Autocast)  # as load_model(bf16=None) decides
    ldm = load_model(ldm_name)
    out = {"bf16": bf16, "batch": 64}
    pixel = make_unet("cpu").train()
    ae = load_model(ae_name).train()
    unet = ldm.unet.train()
    out["train_img_s"] = {"pixel (preset cpu)": _train_rate(pixel, (3, 32, 32), repeats, bf16),
                          "autoencoder": _train_rate(ae, (3, 32, 32), repeats, bf16),
                          "latent U-Net": _train_rate(unet, (4, 8, 8), repeats, bf16)}
    sampling = {}
    for label, name in (("pixel", pixel_name), ("latent (with decoding)", ldm_name)):
        model = load_model(name, bf16=None)
        sample_images(model, 64, steps=50, progress=False)  # warm-up
        info: dict = {}
        sample_images(model, 256, steps=50, progress=False, info=info, batch_size=256)
        sampling[label] = 256 / info["seconds"]
    out["ddim50_img_s"] = sampling
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--part", choices=("recon", "speed"), required=True)
    ap.add_argument("--ae", default="cifar10-ae")
    ap.add_argument("--ldm", default="cifar10-ldm")
    ap.add_argument("--pixel", default="cifar10-cpu-5", help="the pixel model timed for sampling")
    ap.add_argument("--n", type=int, default=2000)
    ap.add_argument("--repeats", type=int, default=10)
    args = ap.parse_args()
    record = records.measurements("latent", args.ldm) or {}
    record.update(cpu=records.cpu_name(), torch=torch.__version__, python=platform.python_version())
    if args.part == "recon":
        record["reconstruction"] = dict(recon(args.ae, args.n), autoencoder=args.ae)
    else:
        record["speed"] = speed(args.ae, args.ldm, args.pixel, args.repeats)
    path = records.write_record("latent", args.ldm, record)
    print(path)
    print({k: v for k, v in record.items() if k in ("reconstruction", "speed")})


if __name__ == "__main__":
    main()

"""The model card's headline FID: 10 000 DDIM samples (eta 0, 50 steps) against the statistics of all
50 000 training images of the CIFAR-10 folder in $DIFFNOTES_CIFAR10, and the real-data floor at that size
(the 10 000 test images against the same statistics).

This is the protocol of published CIFAR-10 FIDs, except that they use 50 000 samples. On the 2-core CPU it
is the most expensive measurement of the course, about two and a half hours, nearly all of it Inception
(about 10 images/s). So the work is cut into chunks of 1 000 images, and each chunk's samples and Inception
features are saved as soon as they are done -- a model's samples under ``runs/eval/headline/<ckpt>/``, the
real images' features, which serve every model, under ``runs/eval/headline/real/`` -- so a run that is stopped
(Ctrl-C, a lost session) goes on from the last finished chunk when started again. The order is
samples, their features, training images, test images, so the headline figure is ready before the floor.
``--reference-only`` computes the real images' features alone (no model), for example while a model is
still training.

Image k is drawn from seed k exactly as ``python -m diffnotes fid`` and ``fid_rows.py`` draw it, so the
first 2 000 samples are the ``ddim_50`` row of ``fid_rows.py``; the script checks that their FID against
that script's 2 000-image reference matches the recorded row. The result goes to
``diffnotes/pretrained/fid/<ckpt>-headline.json`` (read by ``diffnotes.records.measurements("headline")``).
A model without a ``ddim_50`` row gets one from these first 2 000 samples, marked with its source.
Run from the repository root:

    DIFFNOTES_CIFAR10=<stand-in>/cifar-10-batches-py .venv/bin/python scripts/model_card/headline.py \
        [--ckpt cifar10-cpu-3] [--n 10000] [--reference-only]
"""
from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

import numpy as np
import torch

import fid_rows  # this script's folder is on the import path
from diffnotes import data, fid, records
from diffnotes.checkpoints import DEFAULT_MODEL, load_model
from diffnotes.generate import sample_images

ROOT = Path(__file__).resolve().parents[2]

CHUNK = 1000


def log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", flush=True)


def chunked_features(name: str, folder: Path, n: int, images_of, seconds: dict) -> np.ndarray:
    """Inception features of ``n`` images, ``CHUNK`` at a time; ``images_of(start, stop)`` gives uint8 images.
    Finished chunks are read back from ``folder``; the time of the chunks computed now adds to ``seconds``."""
    folder.mkdir(parents=True, exist_ok=True)
    out = []
    for start in range(0, n, CHUNK):
        stop = min(start + CHUNK, n)
        path = folder / f"features_{name}_{start:05d}_{stop:05d}.npy"
        if not path.is_file():
            images = images_of(start, stop)
            t0 = time.perf_counter()
            f = fid.inception_features(images, progress=False).astype(np.float32)
            tmp = path.with_suffix(".tmp.npy")
            np.save(tmp, f)
            os.replace(tmp, path)
            seconds[name] = seconds.get(name, 0.0) + time.perf_counter() - t0
            log(f"{name}: features of images {start}..{stop - 1} ({time.perf_counter() - t0:.0f} s)")
        out.append(np.load(path).astype(np.float64))
    return np.concatenate(out)


def write_every_25th_reference(train: torch.Tensor, f_train: np.ndarray) -> None:
    """Write fid_rows.py's cached reference (the statistics of every 25th training image) from features already
    computed here, with the identity fid.reference_statistics checks before it reuses a cache."""
    u = train[::25]
    mu, sigma = fid.feature_statistics(f_train[::25])
    fid.save_statistics(records.REF_2K, mu, sigma, n=len(u), **fid.reference_identity(u))
    log(f"wrote {records.REF_2K.relative_to(ROOT)} from these features")


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--ckpt", default=DEFAULT_MODEL)
    p.add_argument("--n", type=int, default=10000, help="samples and test images (default 10 000)")
    p.add_argument("--reference-only", action="store_true",
                   help="only the Inception features of the 50 000 training and --n test images (no model)")
    args = p.parse_args()
    if args.n < CHUNK or args.n % CHUNK:
        p.error(f"--n must be a positive multiple of {CHUNK}, got {args.n}")
    torch.set_num_threads(2)
    real = ROOT / "runs/eval/headline/real"
    train = torch.from_numpy(data.load_cifar10(split="train")[0])  # fails now, not after hours, without the data
    test = torch.from_numpy(data.load_cifar10(split="test")[0][:args.n])
    if args.reference_only:
        for split, images in (("train", train), ("test", test)):
            f = chunked_features(split, real, len(images), lambda a, b, u=images: u[a:b], {})
            log(f"{split}: features of {len(f)} images ready in {real.relative_to(ROOT)}")
        return
    name = Path(args.ckpt).name
    work = ROOT / "runs/eval/headline" / name
    record = records.measurements("headline", name) or {}
    seconds = record.get("seconds", {})

    def save(**fields):
        record.update(fields, seconds={k: round(v, 1) for k, v in seconds.items()})
        records.write_record("headline", name, record)

    record.update(model=name, sampler="ddim", eta=0.0, steps=50, n=args.n,
                  protocol=(f"{args.n} samples (image k from seed k, bf16 autocast) and the first {args.n} test "
                            f"images, each against the statistics of all 50 000 training images; method eigh"),
                  command=f"python scripts/model_card/headline.py --ckpt {name} --n {args.n}",
                  torch=torch.__version__, cpu=records.cpu_name())

    model = load_model(args.ckpt, bf16=None)

    def samples_of(start, stop):  # the chunk's samples are kept too, so that only Inception is redone
        path = work / f"images_samples_{start:05d}_{stop:05d}.npy"
        if not path.is_file():
            t0 = time.perf_counter()
            u = sample_images(model, stop - start, sampler="ddim", steps=50, seed=start, batch_size=250,
                              progress=False).numpy()
            np.save(path.with_suffix(".tmp.npy"), u)
            os.replace(path.with_suffix(".tmp.npy"), path)
            seconds["sampling"] = seconds.get("sampling", 0.0) + time.perf_counter() - t0
            log(f"sampled images {start}..{stop - 1} ({time.perf_counter() - t0:.0f} s)")
        return torch.from_numpy(np.load(path))

    work.mkdir(parents=True, exist_ok=True)
    f_samples = chunked_features("samples", work, args.n, samples_of, seconds)
    save()
    f_train = chunked_features("train", real, len(train), lambda a, b: train[a:b], seconds)
    mu_r, sigma_r = fid.feature_statistics(f_train)
    fid.save_statistics(work / "train50k.stats.npz", mu_r, sigma_r, n=len(train))
    if not records.REF_2K.is_file():  # fid_rows.py's reference is every 25th of these images: no need to redo it
        write_every_25th_reference(train, f_train)

    # the first 2 000 samples are fid_rows.py's ddim_50 row: the same FID against its reference
    rows = (records.measurements("fid", name) or {}).get("rows", {})
    if "ddim_50" not in rows:  # the row from these very draws (no sampling twice), marked as such
        kind, opts = fid_rows.ROWS["ddim_50"]
        row = {"kind": kind, **opts, "nfe": fid_rows.nfe_of(kind, opts), "n": 2000,
               **records.fid_scores(f_samples[:2000], records.reference_2k()),
               "source": "the first 2 000 samples of scripts/model_card/headline.py (the same draws)"}
        fid_rows.write_row(records.record_path("fid", name), name, "ddim_50", row, 2000)
        log(f"wrote the ddim_50 row of {name} from the first 2 000 samples: FID {row['fid']:.2f}")
    elif "source" not in rows["ddim_50"] and rows["ddim_50"]["n"] <= args.n:
        mu2k, sigma2k = fid.feature_statistics(f_train[::25])  # fid_rows.py's reference: every 25th image
        mu, sigma = fid.feature_statistics(f_samples[:rows["ddim_50"]["n"]])
        again = fid.frechet_distance(mu, sigma, mu2k, sigma2k, method="eigh")
        log(f"check: the first {rows['ddim_50']['n']} samples against the 2 000-image reference: FID {again:.3f}, "
            f"recorded by fid_rows.py {rows['ddim_50']['fid']:.3f}")
        save(check_ddim_50_row={"fid_again": again, "fid_recorded": rows["ddim_50"]["fid"]})

    def score(f):
        mu, sigma = fid.feature_statistics(f)
        return fid.frechet_distance(mu, sigma, mu_r, sigma_r, method="eigh")

    headline = score(f_samples)
    log(f"HEADLINE: DDIM-50, {args.n} samples vs {len(train)} train: FID {headline:.2f}")
    save(n_train=len(train), fid=headline, fid_first2000=score(f_samples[:2000]))

    f_test = chunked_features("test", real, args.n, lambda a, b: test[a:b], seconds)
    floor = score(f_test)
    log(f"floor: {args.n} test images vs {len(train)} train: FID {floor:.2f}")
    save(floor=floor, floor_first2000=score(f_test[:2000]))


if __name__ == "__main__":
    main()

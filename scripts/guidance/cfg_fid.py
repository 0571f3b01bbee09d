"""Classifier-free guidance on the shipped model: FID and classifier accuracy against the weight w.

For each w: N images with DDIM (eta 0), --steps steps (default 10), image k of class k mod 10 from the noise of
seed k; FID against the cached statistics of 2 000 training images (runs/eval/ref2k_train.npz, the
model card's protocol, made by scripts/model_card/make_refs.py) with --method eigh; top-1 accuracy
of the shipped noise-conditional classifier (at t = 0) on the samples. --n 2 000 (the default) is the
model card's FID protocol; each row then also records the FID of its first and of its second 1 000
samples (diffnotes.records.fid_scores's halves: their gap is the noise of FID at N = 1 000). Rows at
other N (the earlier 1 000) are kept beside them. Writes runs/guidance/cfg_fid.json and the samples
runs/guidance/cfg_w<w>_n<N>.npz. Run from the repository root, in the background (about 4 minutes per w
at N = 2 000 on an idle 2-core CPU):

    nice -n 10 .venv/bin/python scripts/guidance/cfg_fid.py --w 0 3 1 > runs/guidance/cfg_fid.log 2>&1 &
"""
import argparse
import json
import time
from pathlib import Path

import numpy as np
import torch

from diffnotes import course, fid, records
from diffnotes.checkpoints import load_model
from diffnotes.classifier import load_classifier
from diffnotes.data import to_uint8
from diffnotes.guidance import cfg_model
from diffnotes.samplers import sample_ddim
from diffnotes.schedules import uniform_timesteps


OUT = Path("runs/guidance")


def samples_path(w, n):
    return OUT / f"cfg_w{w:g}_n{n}.npz"


def samples_for(model, w, n, steps, batch):
    ts = uniform_timesteps(model.schedule.T, steps)
    out = []
    for start in range(0, n, batch):
        k = torch.arange(start, min(n, start + batch))
        x_T = torch.stack([torch.randn(3, 32, 32, generator=torch.Generator().manual_seed(int(i))) for i in k])
        with torch.no_grad():
            x0 = sample_ddim(cfg_model(model, k % 10, w), x_T, ts, schedule=model.schedule, eta=0.0)
        out.append(to_uint8(x0))
    return torch.cat(out), torch.arange(n) % 10


@torch.no_grad()
def accuracy(classifier, u, labels):
    x = u.float() / 127.5 - 1
    pred = torch.cat([classifier(x[i:i + 500], 0).argmax(1) for i in range(0, len(x), 500)])
    acc = float((pred == labels).float().mean())
    return acc, (acc * (1 - acc) / len(x)) ** 0.5


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--w", type=float, nargs="+", default=[0.0, 1.0, 3.0])
    p.add_argument("--n", type=int, default=2000)
    p.add_argument("--steps", type=int, default=10)
    p.add_argument("--batch", type=int, default=125)
    p.add_argument("--ref", default="runs/eval/ref2k_train.npz")
    p.add_argument("--acc-only", action="store_true", help="only (re)compute the accuracy of the saved samples")
    args = p.parse_args()
    torch.set_num_threads(2)
    OUT.mkdir(parents=True, exist_ok=True)
    path = OUT / "cfg_fid.json"
    if not args.acc_only:
        model = load_model(bf16=None)
        ref_images = torch.from_numpy(np.load(args.ref)["images"])
        ref = fid.reference_statistics(ref_images, Path(args.ref).with_suffix(".stats.npz"), progress=False)
    rows = json.loads(path.read_text())["rows"] if path.is_file() else []
    for w in [] if args.acc_only else args.w:
        t0 = time.time()
        u, labels = samples_for(model, w, args.n, args.steps, args.batch)
        t1 = time.time()
        np.savez_compressed(samples_path(w, args.n), images=u.numpy(), labels=labels.numpy())
        f = records.fid_scores(fid.inception_features(u, progress=False).astype(np.float64), ref)
        t2 = time.time()
        row = dict(w=w, n=args.n, steps=args.steps, sampler="ddim eta 0", **{k: round(v, 2) for k, v in f.items()},
                   contrast=round(float(course.contrast(u).mean()), 4), sample_s=round(t1 - t0), fid_s=round(t2 - t1))
        rows = [r for r in rows if not (r["w"] == w and r["n"] == args.n and r["steps"] == args.steps)] + [row]
        records.write_json(path, dict(protocol=__doc__.splitlines()[0], rows=rows))
        print(row, flush=True)
    # the classifier's top-1 accuracy on every saved sample set (the classifier may be trained meanwhile)
    classifier = load_classifier()
    for r in rows:
        if not samples_path(r["w"], r["n"]).is_file():
            continue
        d = np.load(samples_path(r["w"], r["n"]))
        r["acc"], r["acc_se"] = (round(v, 4) for v in accuracy(classifier, torch.from_numpy(d["images"]),
                                                               torch.from_numpy(d["labels"])))
        print(r, flush=True)
    records.write_json(path, dict(protocol=__doc__.splitlines()[0], rows=rows))


if __name__ == "__main__":
    main()

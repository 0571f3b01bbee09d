"""Train the noise-conditional CIFAR-10 classifier of chapter 8 and ship it.

Writes diffnotes/pretrained/cifar10-classifier.{safetensors,json} (the json holds the training
config, the training log and the accuracy against t on test images) and runs/guidance/classifier.json.
Run from the repository root, in the background on the 2-core CPU (a few minutes):

    DIFFNOTES_CIFAR10=/tmp/cifar/cifar-10-batches-py nice -n 10 .venv/bin/python \
        scripts/guidance/train_classifier.py > runs/guidance/train_classifier.log 2>&1 &
"""
import argparse
import json
import time
import warnings
from pathlib import Path

import torch

from diffnotes import data
from diffnotes.classifier import ClassifierConfig, load_classifier, accuracy_by_t, config_dict, save_classifier, train_classifier
from diffnotes.schedules import linear_schedule
from diffnotes.checkpoints import PRETRAINED_DIR

T_GRID = (0, 100, 200, 300, 400, 500, 600, 700, 800, 900, 999)


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--steps", type=int, default=1200)
    p.add_argument("--max-seconds", type=float, default=2400)
    p.add_argument("--n-test", type=int, default=2000, help="test images for the accuracy against t")
    p.add_argument("--out", default=str(PRETRAINED_DIR))
    p.add_argument("--init", default=None, help="continue from this classifier (.safetensors or shipped name)")
    p.add_argument("--lr", type=float, default=2e-3)
    p.add_argument("--ch", type=int, default=16)
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=2, help="torch threads (1 is faster on a CPU shared with other jobs)")
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", data.DataWarning)
        x_tr, y_tr = data.load_cifar10(split="train")
        x_te, y_te = data.load_cifar10(split="test")
    schedule = linear_schedule(1000)
    cfg = ClassifierConfig(steps=args.steps, max_seconds=args.max_seconds, lr=args.lr, seed=args.seed,
                           ch=args.ch, batch_size=args.batch_size)
    init = load_classifier(args.init) if args.init else None
    previous = init.meta if init is not None else None
    t0 = time.time()
    model, history = train_classifier(torch.from_numpy(x_tr), torch.from_numpy(y_tr), schedule, cfg, model=init)
    if init is not None:
        model.train(False)
    train_s = time.time() - t0
    acc = accuracy_by_t(model, torch.from_numpy(x_te[:args.n_test]), torch.from_numpy(y_te[:args.n_test]),
                        schedule, T_GRID, seed=0)
    for row in acc:
        print(f"t (code index) {row['t']:4d}: accuracy {row['acc']:.3f} +- {row['se']:.3f}")
    params = sum(p.numel() for p in model.parameters())
    meta = dict(config=config_dict(cfg), history=history, train_seconds=round(train_s, 1), params=params,
                accuracy_by_t=acc, continued_from=previous and dict(config=previous["config"],
                history=previous["history"], train_seconds=previous["train_seconds"]), data="CIFAR-10 JPEG stand-in, train split; accuracy on the first "
                f"{args.n_test} test images", schedule="linear, T=1000")
    save_classifier(model, args.out, **meta)
    Path("runs/guidance").mkdir(parents=True, exist_ok=True)
    Path("runs/guidance/classifier.json").write_text(json.dumps(meta, indent=1))
    print(f"{params} parameters, trained {train_s:.0f} s; saved to {args.out}")


if __name__ == "__main__":
    main()

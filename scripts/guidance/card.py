"""Write diffnotes/pretrained/CLASSIFIER_CARD.md from the classifier's json (written by
train_classifier.py) and runs/guidance/cfg_fid.json (written by cfg_fid.py). Run from the repository root:

    python scripts/guidance/card.py
"""
import json
from pathlib import Path

from diffnotes.classifier import CLASSIFIER_NAME
from diffnotes.course import fid_with_halves
from diffnotes.checkpoints import DEFAULT_MODEL, PRETRAINED_DIR


def main():
    meta = json.loads((PRETRAINED_DIR / f"{CLASSIFIER_NAME}.json").read_text())
    cfg, hist = meta["config"], meta["history"]
    acc = meta["accuracy_by_t"]
    cfg_rows = json.loads(Path("runs/guidance/cfg_fid.json").read_text())["rows"]
    size = (PRETRAINED_DIR / f"{CLASSIFIER_NAME}.safetensors").stat().st_size
    weights = " ".join(f"{r['w']:g}" for r in cfg_rows)
    lines = [
        f"# Card: `{CLASSIFIER_NAME}` (noise-conditional CIFAR-10 classifier, chapter 8)", "",
        "`diffnotes.classifier.load_classifier()` loads `cifar10-classifier.safetensors` (float32, "
        f"{size / 1e6:.2f} MB) and `cifar10-classifier.json` (width, training config and log, accuracy by t) and returns a "
        "`NoisyClassifier` in eval mode: `clf(x_t, t) -> logits [B, 10]`, `clf.grad_log_prob(x_t, t, y)` for classifier "
        "guidance; `t` is the code index 0..999 of the linear schedule (T = 1000) of the shipped diffusion model.", "",
        "## Model and training", "",
        "| | |", "|---|---|",
        f"| network | 3 blocks (conv-GroupNorm-SiLU x2, 2x2 average pool) of widths {cfg['ch']}, {2 * cfg['ch']}, "
        f"{4 * cfg['ch']}; sinusoidal time embedding added in each block; global average pool, linear; "
        f"{meta['params']:,} parameters |".replace(",", " "),
        f"| data | {meta['data']} |",
        "| objective | cross-entropy on x_t = sqrt(alpha_bar_t) x_0 + sqrt(1 - alpha_bar_t) eps, t uniform in 0..999, "
        "random horizontal flips |",
        f"| optimiser | AdamW lr {cfg['lr']:g} (cosine decay over {cfg['steps']} steps), weight decay "
        f"{cfg['weight_decay']:g}, batch {cfg['batch_size']}, seed {cfg['seed']} |",
        f"| training | {hist[-1]['step']} steps in {meta['train_seconds']:.0f} s of wall time on the shared 2-core CPU "
        f"(final running train loss {hist[-1]['loss']:.3f}, accuracy {hist[-1]['acc']:.3f}) |", "",
        "Command (from the repository root, in the background):", "",
        "```bash",
        "DIFFNOTES_CIFAR10=<stand-in>/cifar-10-batches-py nice -n 10 python scripts/guidance/train_classifier.py "
        "--max-seconds 2400",
        "```", "",
        f"## Accuracy against t ({acc[0]['n']} test images)", "",
        "| code index t | " + " | ".join(str(r["t"]) for r in acc) + " |",
        "|---|" + "---|" * len(acc),
        "| top-1 accuracy | " + " | ".join(f"{r['acc']:.3f}" for r in acc) + " |",
        "| standard error | " + " | ".join(f"{r['se']:.3f}" for r in acc) + " |", "",
        f"## Classifier-free guidance on `{DEFAULT_MODEL}`: FID and accuracy against w", "",
        "Measured by `scripts/guidance/cfg_fid.py` (DDIM eta 0, image k of class k mod 10 from the noise of seed k; "
        "FID of N samples against the cached statistics of 2 000 training images `runs/eval/ref2k_train.npz`, "
        "`--method eigh`, bf16, as in MODEL_CARD.md). FID at these N is strongly biased upwards, so only "
        "differences between rows of the same N mean something. Rows of 2 000 samples also give the FID of their "
        "first and second 1 000 (in brackets): their gap is the noise of FID at N = 1 000. Accuracy: this classifier "
        "at t = 0 on the samples (its standard error from N).", "",
        "```bash",
        f"python scripts/model_card/make_refs.py && python scripts/guidance/cfg_fid.py --w {weights} "
        f"--n {max(r['n'] for r in cfg_rows)}   # runs/guidance/cfg_fid.json",
        "```", "",
        "| w | N | steps | FID (N vs 2 000 train; first / second 1 000) | classifier accuracy | pixel contrast | sampling time |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in sorted(cfg_rows, key=lambda r: (r["n"], r["w"])):
        a = f"{r['acc']:.3f} +- {r['acc_se']:.3f}" if "acc" in r else "not measured"
        lines.append(f"| {r['w']:g} | {r['n']} | {r['steps']} | {fid_with_halves(r)} | {a} | {r['contrast']:.3f} | {r['sample_s']} s |")
    lines += ["", "The rows as json (read by chapter 8):", "", "<!-- cfg_fid.json -->", "```json",
              json.dumps(dict(rows=sorted(cfg_rows, key=lambda r: (r["n"], r["w"]))), indent=1), "```", ""]
    (PRETRAINED_DIR / "CLASSIFIER_CARD.md").write_text("\n".join(lines))
    print("\n".join(lines))


if __name__ == "__main__":
    main()

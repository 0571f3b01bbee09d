"""The measurement records of the shipped models: one writer, one reader.

Measurements that take CPU hours (FID of thousands of samples, bits/dim) are made by the scripts in
``scripts/model_card`` and ``scripts/fast_samplers``, written here as JSON beside the weights
(:data:`RECORDS_DIR`, ``<model>.json`` for the FID rows, ``<model>-<kind>.json`` for the others) with
:func:`write_record`, and read by the chapters and the model card with :func:`measurements`, which never
measures anything. Also here: the protocol shared by every 2 000-sample FID row (:func:`reference_2k`,
:func:`fid_scores`) and the tables the card and the chapters print.
"""
from __future__ import annotations

import json
import os
import platform
from pathlib import Path

import numpy as np
import torch

from . import data, fid
from ._util import atomic_write
from .checkpoints import DEFAULT_MODEL, PRETRAINED_DIR

__all__ = ["RECORDS_DIR", "REF_2K", "KINDS", "record_path", "measurements", "write_json", "write_record", "reference_2k",
           "fid_scores", "cpu_name", "fid_half_gap", "fid_with_halves", "fid_tables", "headline_table"]

RECORDS_DIR = PRETRAINED_DIR / "fid"
#: the cached Inception statistics of every 25th CIFAR-10 training image (2 000): the reference of every
#: 2 000-sample FID row (outside the package: it is rebuilt from the data, never shipped)
REF_2K = Path(__file__).resolve().parents[1] / "runs" / "eval" / "ref2k_train.stats.npz"
KINDS = ("fid", "bpd", "headline", "latent")


def record_path(kind: str = "fid", name: str | None = None) -> Path:
    """Where the ``kind`` record of model ``name`` (default :data:`DEFAULT_MODEL`) lives."""
    if kind not in KINDS:
        raise ValueError(f"kind must be one of {KINDS}, got {kind!r}")
    return RECORDS_DIR / (f"{Path(name or DEFAULT_MODEL).name}" + ("" if kind == "fid" else f"-{kind}") + ".json")


def write_json(path, obj) -> Path:
    """Write a measurement as JSON (indent 1) to ``path``, atomically: a killed run leaves the old file whole.
    The one JSON writer of the measurement scripts."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    text = (json.dumps(obj, indent=1) + "\n").encode()
    return atomic_write(path, lambda f: f.write(text))


def write_record(kind: str, name: str, record: dict) -> Path:
    """Write the ``kind`` record of model ``name`` where :func:`measurements` reads it (:func:`write_json`)."""
    return write_json(record_path(kind, name), record)


def reference_2k(root=None) -> dict:
    """The reference of the 2 000-sample FID rows: Inception statistics of every 25th CIFAR-10 training image
    (``root``, else ``$DIFFNOTES_CIFAR10``), cached in :data:`REF_2K`."""
    train, _ = data.load_cifar10(root, split="train")
    REF_2K.parent.mkdir(parents=True, exist_ok=True)
    return fid.reference_statistics(torch.from_numpy(train[::25]), REF_2K, progress=False)


def fid_scores(feats: np.ndarray, ref: dict) -> dict:
    """FID of all samples' Inception features, and of the first and the second 1 000 (their spread shows the
    noise of FID at N = 1 000): ``fid``, ``fid_first1000``, ``fid_second1000`` (method eigh)."""
    out = {}
    for key, f in (("fid", feats), ("fid_first1000", feats[:1000]), ("fid_second1000", feats[1000:2000])):
        if len(f) >= 2:
            mu, sigma = fid.feature_statistics(f)
            out[key] = fid.frechet_distance(mu, sigma, ref["mu"], ref["sigma"], method="eigh")
    return out


def cpu_name() -> str:
    """The CPU's model name (recorded with every measurement: bf16 results differ between CPUs)."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or os.uname().machine


def measurements(kind: str = "fid", name: str | None = None) -> dict | None:
    """What was measured on a shipped model (default :data:`diffnotes.checkpoints.DEFAULT_MODEL`), as recorded
    in :data:`RECORDS_DIR` by :func:`write_record`: ``kind="fid"`` the FID rows of
    ``scripts/model_card/fid_rows.py``, ``"bpd"`` the bits/dim of ``scripts/fast_samplers/bits_per_dim.py``,
    ``"headline"`` the FID of 10 000 samples against the 50 000 training images of
    ``scripts/model_card/headline.py``, ``"latent"`` the autoencoder's reconstructions and the speeds of
    ``scripts/latent/card.py`` (chapter 11). ``None`` when that was not measured."""
    if kind not in KINDS:
        raise ValueError(f"kind must be one of {KINDS}, got {kind!r}")
    path = record_path(kind, name)
    return json.loads(path.read_text(encoding="utf-8")) if path.is_file() else None


def fid_half_gap(name: str | None = None) -> float:
    """The noise of FID at N = 1 000, as recorded: the largest gap between the FID of the first and of the
    second 1 000 samples of one row of :func:`measurements` (a difference between two rows smaller than this
    is not evidence). Chapters 8 and 9."""
    rows = (measurements("fid", name) or {}).get("rows", {}).values()
    gaps = [abs(r["fid_first1000"] - r["fid_second1000"]) for r in rows if "fid_second1000" in r]
    if not gaps:
        raise ValueError(f"no FID row of {name or 'the default model'} has both halves recorded")
    return max(gaps)


def fid_with_halves(row: dict) -> str:
    """One recorded FID row as text: its FID, and in brackets the FID of its first and second 1 000 samples
    where both are recorded (``"59.2 (70.6 / 72.6)"``; just ``"59.2"`` otherwise)."""
    halves = f" ({row['fid_first1000']:.1f} / {row['fid_second1000']:.1f})" if "fid_second1000" in row else ""
    return f"{row['fid']:.1f}{halves}"


_FID_MAIN = [
    ("ddim_10", "DDIM, eta 0, 10 steps"), ("ddim_20", "DDIM, eta 0, 20 steps"), ("ddim_50", "DDIM, eta 0, 50 steps"),
    ("ddim_100", "DDIM, eta 0, 100 steps"), ("ddpm_100", "DDPM (beta_tilde), 100 respaced steps"),
    ("ode_heun_50", "PF-ODE (VP SDE), Heun, 50 steps, t from 1 to 1e-3"),
    ("ddim_50_cond", "DDIM, eta 0, 50 steps, labels 0..9 in turn"),
    ("real_test", "real test images of the stand-in (the floor at this N)"),
]
_FID_SAMPLERS = [("DDIM (even in t)", "ddim_{}"), ("DPM-Solver++ 2M (rho = 7)", "dpmpp2m_{}_rho7"),
                 ("Heun, EDM (rho = 7)", "heun_{}_rho7")]


def fid_tables(name: str | None = None) -> list[str]:
    """The FID of a shipped model as two Markdown tables, from :func:`measurements`: the model card's main
    table (samplers, labels, the real-data floor; with wall times) and FID against NFE for chapter 9's
    samplers. A row not measured reads "not measured". ``[]`` when nothing was measured."""
    res = measurements("fid", name)
    if res is None:
        return []
    rows = res["rows"]
    n = max(r["n"] for r in rows.values())

    def fid(r):
        return "not measured" if r is None else f"**{r['fid']:.1f}** ({r['fid_first1000']:.1f})"

    main = [f"| samples | NFE | FID ({n:,} vs 2 000 train; first 1 000 in brackets) | wall time on the CPU |".replace(",", " "),
            "|---|---|---|---|"]
    for key, label in _FID_MAIN:
        r = rows.get(key)
        nfe = "-" if r is None or r["nfe"] is None else r["nfe"]
        wall = "-" if r is None else f"{r['seconds']:.0f} s ({r['sample_seconds']:.0f} s of it sampling)"
        main.append(f"| {label} | {nfe} | {fid(r)} | {wall} |")
    nfe_rows = ["| NFE | " + " | ".join(f"FID: {s}" for s, _ in _FID_SAMPLERS) + " |", "|---|---|---|---|"]
    for nfe, heun in ((5, 5), (10, 9), (20, 19), (50, 49)):  # Heun's NFE is odd: 2 x steps - 1
        cells = [fid(rows.get(pattern.format(heun if s.startswith("Heun") else nfe))) for s, pattern in _FID_SAMPLERS]
        nfe_rows.append(f"| {nfe} (Heun {heun}) | " + " | ".join(cells) + " |")
    return ["\n".join(main), "\n".join(nfe_rows)]


def headline_table(name: str | None = None) -> str | None:
    """The model card's headline FID as a Markdown table, from :func:`measurements` ``("headline")``: DDIM
    (eta 0, 50 steps) with all its samples and with the first 2 000, the real test images as the floor at
    both sizes, all against the statistics of the whole training set, with the wall time of each part.
    ``None`` when it was not measured; a part not measured yet reads "not measured"."""
    res = measurements("headline", name)
    if res is None:
        return None
    n, n_ref, sec = res["n"], res.get("n_train"), res.get("seconds", {})

    def num(k):
        return f"{k:,}".replace(",", " ")

    def cell(key, bold=False):
        return "not measured" if key not in res else (f"**{res[key]:.1f}**" if bold else f"{res[key]:.1f}")

    def minutes(sampling, inception):  # keys of the recorded seconds
        parts = [f"{sec[k] / 60:.0f} min {what}" for k, what in ((sampling, "sampling"), (inception, "Inception"))
                 if k in sec]
        return " + ".join(parts) or "-"

    against = f"{num(n_ref)} training images" if n_ref else "the training images"
    rows = [f"| images | N | FID against {against} | wall time on the CPU |", "|---|---|---|---|",
            f"| DDIM, eta 0, {res['steps']} steps | {num(n)} | {cell('fid', True)} | {minutes('sampling', 'samples')} |",
            f"| the first 2 000 of them | 2 000 | {cell('fid_first2000')} | (included) |",
            f"| real test images (the floor) | {num(n)} | {cell('floor', True)} | {minutes(None, 'test')} |",
            f"| the first 2 000 of them | 2 000 | {cell('floor_first2000')} | (included) |"]
    if "train" in sec:
        rows.append(f"| reference: Inception statistics of the training images | {num(n_ref or 0)} | - | "
                    f"{sec['train'] / 60:.0f} min Inception |")
    return "\n".join(rows)

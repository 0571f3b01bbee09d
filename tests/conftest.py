"""Shared pytest set-up.

Tests use small tensors, for which torch's intra-op thread pool costs more than it gives
(on a 2-core CI machine two threads fight over each tiny op), so run them single-threaded.
"""
import torch

torch.set_num_threads(1)

# Property tests draw the same examples on every run (no flaky CI); run with
# `--hypothesis-profile=explore` to search with fresh random examples.
from hypothesis import settings  # noqa: E402

settings.register_profile("repeatable", derandomize=True)
settings.register_profile("explore", derandomize=False)
settings.load_profile("repeatable")


# ---------------------------------------------------------------------------------------------
# small shared helpers of the mathematical tests (``from conftest import gen, images8``)
# ---------------------------------------------------------------------------------------------
def gen(seed=0):
    """A CPU generator seeded with ``seed``."""
    return torch.Generator().manual_seed(seed)


def images8(B=4, shape=(3, 4, 4), seed=0):
    """Random 8-bit data scaled to [-1, 1], float64 (what the likelihood and loss tests score)."""
    k = torch.randint(0, 256, (B,) + shape, generator=gen(seed))
    return k.to(torch.float64) / 127.5 - 1.0


# ---------------------------------------------------------------------------------------------
# shared fakes: a CIFAR-10 folder and a tiny stand-in for Inception (used by the data, fid, cli
# and course tests; import the helpers with ``from conftest import ...``)
# ---------------------------------------------------------------------------------------------
import pickle  # noqa: E402
import warnings  # noqa: E402

import numpy as np  # noqa: E402
import pytest  # noqa: E402

from diffnotes import data, fid  # noqa: E402

FAKE_CIFAR_PER_BATCH = 6  # images per fake batch file: 30 training and 6 test images


def fake_cifar_row(k: int) -> np.ndarray:
    """Row k (global image index) of the fake data: byte b holds (b + 7k) % 256."""
    return ((np.arange(3072) + 7 * k) % 256).astype(np.uint8)


def make_fake_cifar(parent, *, names=None, n=FAKE_CIFAR_PER_BATCH, protocol=2):
    """A ``cifar-10-batches-py`` folder under ``parent`` in the official layout (pickled dicts with
    ``data`` [n, 3072] uint8 rows from :func:`fake_cifar_row`, labels ``k % 10``, and ``batches.meta``);
    ``names`` picks the batch files (default: all six). Returns the folder."""
    folder = parent / "cifar-10-batches-py"
    folder.mkdir(parents=True, exist_ok=True)
    names = names or [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]
    for b, name in enumerate(names):
        ks = range(b * n, (b + 1) * n)
        d = {"batch_label": name, "data": np.stack([fake_cifar_row(k) for k in ks]),
             "labels": [k % 10 for k in ks], "filenames": [f"{k}.png" for k in ks]}
        with open(folder / name, "wb") as f:
            pickle.dump(d, f, protocol=protocol)
    with open(folder / "batches.meta", "wb") as f:
        pickle.dump({"label_names": list(data.CIFAR10_CLASSES)}, f)
    return folder


class TinyInception(torch.nn.Module):
    """A stand-in for Inception: [B, 3, 299, 299] -> [B, dim], a fixed function of 4x4 region means.

    It checks that it is given Inception's input (299 x 299, values in [-1, 127/128])."""

    def __init__(self, dim=fid.FEATURE_DIM):
        super().__init__()
        g = torch.Generator().manual_seed(0)
        self.register_buffer("w", torch.randn(48, dim, generator=g) / 7)

    def forward(self, x):
        assert x.shape[1:] == (3, 299, 299)
        assert float(x.min()) >= -1.0 - 1e-6 and float(x.max()) <= 127 / 128 + 1e-6
        p = torch.nn.functional.adaptive_avg_pool2d(x, 4).flatten(1)  # [B, 48]
        return torch.relu(p @ self.w)


@pytest.fixture
def tiny_extractor(tmp_path, monkeypatch):
    """A TorchScript file of :class:`TinyInception` (64 features keep the algebra fast), used as the
    'Inception' file through $DIFFNOTES_INCEPTION; returns its path."""
    path = tmp_path / "tiny_inception.pt"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # torch.jit.script, torch >= 2.10
        torch.jit.script(TinyInception(dim=64)).save(str(path))
    monkeypatch.setenv("DIFFNOTES_INCEPTION", str(path))
    return path

"""Tests for diffnotes.classifier: the noise-conditional classifier, its gradient, training and I/O."""
from __future__ import annotations

import torch

from diffnotes import classifier as C
from diffnotes.schedules import linear_schedule
from diffnotes.checkpoints import PRETRAINED_DIR


def _gen(seed):
    return torch.Generator().manual_seed(seed)


def test_shapes_and_log_prob_normalised():
    torch.manual_seed(0)
    m = C.NoisyClassifier(ch=8).eval()
    x = torch.randn(3, 3, 32, 32, generator=_gen(0))
    logits = m(x, torch.tensor([0, 500, 999]))
    assert logits.shape == (3, 10)
    lp = torch.stack([m.log_prob(x, 10, y) for y in range(10)], 1)
    torch.testing.assert_close(lp.exp().sum(1), torch.ones(3))


def test_grad_log_prob_matches_finite_difference():
    torch.manual_seed(1)
    m = C.NoisyClassifier(ch=8).double().eval()
    x = torch.randn(1, 3, 32, 32, generator=_gen(1), dtype=torch.float64)
    g = m.grad_log_prob(x, 300, 4)
    d = torch.randn(x.shape, generator=_gen(2), dtype=torch.float64)
    h = 1e-5
    fd = (m.log_prob(x + h * d, 300, 4) - m.log_prob(x - h * d, 300, 4)) / (2 * h)
    torch.testing.assert_close((g * d).sum(), fd[0], rtol=1e-6, atol=1e-8)


def test_training_learns_a_separable_task():
    # class = which half of the image is bright: learnable in a few steps even with noise at small t
    n = 256
    y = torch.randint(0, 2, (n,), generator=_gen(3))
    img = torch.full((n, 3, 32, 32), 40, dtype=torch.uint8)
    img[y == 0, :, :, :16] = 220
    img[y == 1, :, :, 16:] = 220
    cfg = C.ClassifierConfig(ch=8, steps=60, batch_size=32, lr=3e-3, flip=False, max_seconds=60)
    model, hist = C.train_classifier(img, y, linear_schedule(1000), cfg, log=lambda s: None, log_every=20)
    assert hist[-1]["loss"] < hist[0]["loss"]
    acc = C.accuracy_by_t(model, img[:128], y[:128], linear_schedule(1000), [0], seed=0)[0]
    assert acc["acc"] > 0.9 and acc["n"] == 128


def test_save_load_roundtrip(tmp_path):
    torch.manual_seed(2)
    m = C.NoisyClassifier(ch=8).eval()
    path = C.save_classifier(m, tmp_path, "c", note="x")
    m2 = C.load_classifier(path)
    x = torch.randn(2, 3, 32, 32, generator=_gen(4))
    torch.testing.assert_close(m2(x, 7), m(x, 7))
    assert m2.meta == {"note": "x"}


def test_shipped_classifier_beats_chance_on_clean_inputs():
    if not (PRETRAINED_DIR / f"{C.CLASSIFIER_NAME}.safetensors").is_file():
        import pytest
        pytest.skip("the classifier is not shipped in this checkout")
    m = C.load_classifier()
    acc = {r["t"]: r for r in m.meta["accuracy_by_t"]}
    assert acc[0]["acc"] > 0.1 + 4 * acc[0]["se"]          # better than chance at t = 0
    assert acc[0]["acc"] > acc[999]["acc"]                 # and better on clean than on pure noise

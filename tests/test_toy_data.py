"""Tests for the 2-D toy sets of tests/toy_data.py: geometry, balance, reproducibility, validation."""
import math

import numpy as np
import pytest
import torch

import toy_data


def _close(a, b, rtol=1e-7, atol=1e-12):
    np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=rtol, atol=atol)


def test_two_moons_geometry_and_balance():
    n = 4000
    x, lab = toy_data.two_moons(n, noise=0.0, generator=torch.Generator().manual_seed(0), return_labels=True)
    assert x.shape == (n, 2) and x.dtype == torch.float64
    up, lo = x[lab == 0], x[lab == 1]
    _close((up + torch.tensor([0.5, 0.25])).norm(dim=1), torch.ones(len(up), dtype=torch.float64))
    _close((lo - torch.tensor([0.5, 0.25])).norm(dim=1), torch.ones(len(lo), dtype=torch.float64))
    assert (up[:, 1] >= -0.25 - 1e-12).all() and (lo[:, 1] <= 0.25 + 1e-12).all()
    # moon label ~ Bernoulli(1/2): SE = sqrt(n/4); mean 0 by symmetry, per-coordinate std <= 1.2,
    # so the sample mean has SE <= 1.2/sqrt(n) = 0.019; allow 4 SE
    assert abs(len(up) - n / 2) < 4 * math.sqrt(n / 4)
    assert x.mean(0).abs().max() < 4 * 1.2 / math.sqrt(n)


def test_swiss_roll_lies_on_its_spiral():
    x = toy_data.swiss_roll(500, noise=0.0, generator=torch.Generator().manual_seed(1))
    s = 5 * x.norm(dim=1)  # radius is s / 5
    assert (s >= 1.5 * math.pi - 1e-9).all() and (s <= 4.5 * math.pi + 1e-9).all()
    ang = torch.atan2(x[:, 1], x[:, 0])
    d = torch.remainder(ang - s, 2 * math.pi)
    assert torch.minimum(d, 2 * math.pi - d).max() < 1e-9


def test_checkerboard_support_and_uniform_cells():
    n = 8000
    x = toy_data.checkerboard(n, generator=torch.Generator().manual_seed(2))
    assert x.min() >= -2 and x.max() <= 2
    cell = torch.floor(x + 2).long()  # side 1 for the default 4x4 board
    assert ((cell[:, 0] + cell[:, 1]) % 2 == 0).all()
    counts = torch.bincount(cell[:, 0] * 4 + cell[:, 1], minlength=16)
    dark = counts[counts > 0]
    assert len(dark) == 8
    # each count ~ Binomial(n, 1/8): SE = sqrt(n * 1/8 * 7/8) = 29.6; allow 4 SE
    assert (dark - n / 8).abs().max() < 4 * math.sqrt(n * 7 / 64)


def test_toy_sets_are_reproducible_and_validate():
    for f in (toy_data.two_moons, toy_data.swiss_roll, toy_data.checkerboard):
        a = f(10, generator=torch.Generator().manual_seed(5))
        b = f(10, generator=torch.Generator().manual_seed(5))
        assert torch.equal(a, b)
        with pytest.raises(ValueError, match="n must be an integer"):
            f(0)
    with pytest.raises(ValueError, match="noise must lie in"):
        toy_data.two_moons(5, noise=-0.1)

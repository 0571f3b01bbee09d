r"""2-D toy data sets for the tests (two moons, a swiss roll, a checkerboard): samplers of known shape.

They moved here from ``diffnotes.data`` (issue K): no chapter uses them. Each returns ``n`` i.i.d.
points, float ``[n, 2]``, drawn from ``generator``.
"""
from __future__ import annotations

import math

import torch

from diffnotes._checks import check_int, check_range


def _n(n) -> int:
    return check_int("n", n, 1)


def two_moons(n: int, *, noise: float = 0.05, generator: torch.Generator | None = None,
              dtype: torch.dtype = torch.float64, return_labels: bool = False):
    r"""``n`` i.i.d. points from two interleaved half circles, float ``[n, 2]``.

    Each point picks a moon with probability 1/2 and an angle :math:`\theta \sim U[0, \pi]`:
    upper moon :math:`(\cos\theta - \tfrac12,\ \sin\theta - \tfrac14)`, lower moon
    :math:`(\tfrac12 - \cos\theta,\ \tfrac14 - \sin\theta)` (the usual two-moons shape, centred
    at the origin, as scikit-learn's ``make_moons``), plus isotropic Gaussian noise of std
    ``noise``.
    """
    n = _n(n)
    check_range("noise", noise, 0.0)
    moon = torch.randint(0, 2, (n,), generator=generator)
    theta = torch.rand(n, generator=generator, dtype=torch.float64) * math.pi
    upper = torch.stack([theta.cos() - 0.5, theta.sin() - 0.25], 1)
    x = torch.where(moon[:, None] == 0, upper, -upper)
    x = x + noise * torch.randn(n, 2, generator=generator, dtype=torch.float64)
    x = x.to(dtype)
    return (x, moon) if return_labels else x


def swiss_roll(n: int, *, noise: float = 0.05, generator: torch.Generator | None = None,
               dtype: torch.dtype = torch.float64):
    r"""``n`` i.i.d. points on a 2-D spiral, float ``[n, 2]``.

    :math:`s \sim U[1.5\pi, 4.5\pi]`, :math:`x = (s\cos s,\ s\sin s)/5` plus Gaussian noise of
    std ``noise`` (the factor 1/5 brings the spiral to about :math:`[-3, 3]^2`); a 2-D toy common
    since Grathwohl et al. 2019 (FFJORD).
    """
    n = _n(n)
    check_range("noise", noise, 0.0)
    s = 1.5 * math.pi + 3 * math.pi * torch.rand(n, generator=generator, dtype=torch.float64)
    x = torch.stack([s * s.cos(), s * s.sin()], 1) / 5
    x = x + noise * torch.randn(n, 2, generator=generator, dtype=torch.float64)
    return x.to(dtype)


def checkerboard(n: int, *, squares: int = 4, generator: torch.Generator | None = None,
                 dtype: torch.dtype = torch.float64):
    r"""``n`` points uniform on the dark squares of a checkerboard on :math:`[-2, 2]^2`, ``[n, 2]``.

    The board has ``squares`` x ``squares`` cells of side :math:`4/\text{squares}`; cell
    :math:`(i, j)` (column i, row j, from the lower left) is dark when :math:`i + j` is even.
    Each point picks one of the dark cells uniformly, then a uniform position inside it. The
    density is :math:`2/16 = 1/8` on the dark cells (for ``squares=4``) and 0 elsewhere
    (the checkerboard toy of Grathwohl et al. 2019).
    """
    n = _n(n)
    k = check_int("squares", squares, 2)
    dark = torch.tensor([(i, j) for i in range(k) for j in range(k) if (i + j) % 2 == 0])
    cell = dark[torch.randint(0, len(dark), (n,), generator=generator)]
    u = torch.rand(n, 2, generator=generator, dtype=torch.float64)
    side = 4.0 / k
    return ((cell + u) * side - 2.0).to(dtype)

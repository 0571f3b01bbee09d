r"""The course's symbols and the expectation algebra of independent standard normals.

:func:`paper_symbols` names the SymPy symbols like the code (CONTRIBUTING.md notation table);
:func:`sample_point` is a point of the schedule domain, where :func:`diffnotes.derive.prove_zero`
reads off the sign of each factor under a square root; :func:`gaussian_expectation` takes
expectations over independent standard normal noises, the computation behind every Gaussian
derivation of the course (chapters 1 to 4 and 7).
"""
from __future__ import annotations

import functools
from types import SimpleNamespace
from typing import Sequence

import sympy as sp

__all__ = ["paper_symbols", "sample_point", "gaussian_expectation"]


@functools.lru_cache(maxsize=None)
def paper_symbols() -> SimpleNamespace:
    r"""The SymPy symbols of the course, named like the code (CONTRIBUTING.md notation table).

    Schedule quantities are positive reals (``alpha_t``, ``beta_t``, ``alpha_bar_t``,
    ``alpha_bar_prev``, ``sigma``, and the Gaussian stds ``s_1``, ``s_2``); ``eta`` is
    non-negative; samples and noises (``x_0``, ``x_t``, ``x_prev``, ``eps``, ``eps_prev``,
    ``eps_hat``), the DDIM unknowns ``k``, ``m`` and the means ``mu_1``, ``mu_2`` are real.
    Symbols are compared by name and assumptions, so these equal any symbol made the same way.

    Example: ``S = paper_symbols(); S.alpha_bar_t``.
    """
    pos = dict(positive=True)
    real = dict(real=True)
    names_pos = ("alpha_t", "beta_t", "alpha_bar_t", "alpha_bar_prev", "sigma", "s_1", "s_2")
    names_real = ("x_0", "x_t", "x_prev", "eps", "eps_prev", "eps_hat", "k", "m", "mu_1", "mu_2")
    ns = {n: sp.Symbol(n, **pos) for n in names_pos}
    ns.update({n: sp.Symbol(n, **real) for n in names_real})
    ns["eta"] = sp.Symbol("eta", nonnegative=True)
    return SimpleNamespace(**ns)


def sample_point() -> dict:
    """A point inside the domain 0 < alpha_bar_t < alpha_bar_prev < 1, sigma^2 < 1 - alpha_bar_prev,
    used only to read off the sign of each factor under a square root (see :func:`diffnotes.derive.prove_zero`)."""
    S = paper_symbols()
    R = sp.Rational
    return {
        S.alpha_bar_t: R(3, 10), S.alpha_bar_prev: R(1, 2), S.alpha_t: R(3, 5), S.beta_t: R(2, 5),
        S.sigma: R(1, 5), S.eta: R(1, 2), S.s_1: R(1, 3), S.s_2: R(3, 4),
    }


def gaussian_expectation(expr, noises: Sequence[sp.Symbol]) -> sp.Expr:
    r"""Expectation of ``expr`` over independent standard normal ``noises``.

    ``expr`` must be a polynomial in the noises (its coefficients may be anything). Each monomial
    is replaced by the product of the moments

    .. math:: E[\epsilon^{k}] = (k-1)!! \text{ for even } k,\qquad 0 \text{ for odd } k.

    This is the "expectation algebra" behind every Gaussian computation of the course: means and
    variances of sums of independent Gaussians (chapter 1), the DDIM marginals (chapter 3), the
    Gaussian KL (chapter 4).
    """
    noises = tuple(noises)
    if not noises:
        return sp.sympify(expr)
    poly = sp.Poly(sp.expand(expr), *noises)
    total = sp.Integer(0)
    for powers, coef in poly.terms():
        moment = sp.Integer(1)
        for k in powers:
            moment *= 0 if k % 2 else sp.factorial2(k - 1)
        total += coef * moment
    return sp.expand(total)

r"""The course's formulas derived in SymPy, and a checker that compares them with the torch code.

Each derivation is a function that *computes* a result from its premises (Bayes' rule, matching
moments, composing Gaussian steps, ...) and proves it equal to the closed form printed in the paper.
It returns a :class:`Derivation`: the intermediate steps to show in a chapter, the result, the
published form, and the residual ``result - expected``, which is exactly ``0`` when the identity is
proven. A chapter shows and asserts in two lines::

    d = derive.ddim_coefficients()
    d            # renders the steps in Jupyter
    assert d.holds()

:func:`check_against` then closes the loop between the algebra and the code: it evaluates a SymPy
expression and a torch function at random points of a stated domain and raises ``AssertionError``
when they disagree.

One idea per submodule:

* :mod:`diffnotes.derive.algebra`  -- the course's symbols (:func:`paper_symbols`), a point of the
  domain (:func:`sample_point`), expectations over standard normals (:func:`gaussian_expectation`)
* :mod:`diffnotes.derive.engine`   -- the proof engine: :func:`prove_zero`, the :class:`Derivation`
  record and :func:`prove_derivation`, which builds one and proves its residuals zero
* :mod:`diffnotes.derive.display`  -- LaTeX: :func:`paper_latex`, :func:`latex_text`, :func:`show_aligned`
* :mod:`diffnotes.derive.numeric`  -- :func:`check_against` and its :class:`CheckReport`
* :mod:`diffnotes.derive.chapters` -- the chapters' derivations (chapters 1, 2, 3, 4 and 8)

Every public name is available here as ``derive.NAME`` (and ``from diffnotes.derive import NAME``).
The name is looked up in its submodule each time it is read, as :mod:`diffnotes` does for its
submodules: a change to ``diffnotes.derive.algebra.gaussian_expectation`` (the mutation tests patch
it there) is what ``derive.gaussian_expectation`` returns in a chapter.
"""
from __future__ import annotations

import importlib

# public name -> the submodule that defines it
_HOMES = {
    "paper_symbols": "algebra",
    "sample_point": "algebra",
    "gaussian_expectation": "algebra",
    "Derivation": "engine",
    "prove_derivation": "engine",
    "prove_zero": "engine",
    "paper_latex": "display",
    "latex_text": "display",
    "show_aligned": "display",
    "CheckReport": "numeric",
    "check_against": "numeric",
    "forward_marginal_by_induction": "chapters",
    "forward_marginal_n_steps": "chapters",
    "posterior_by_completing_square": "chapters",
    "ddim_coefficients": "chapters",
    "ddim_sigma_eta": "chapters",
    "ddim_sigma_eta1_is_beta_tilde": "chapters",
    "ddim_noise_matching_ddpm": "chapters",
    "ddim_as_euler_ode": "chapters",
    "gaussian_kl": "chapters",
    "guidance_from_bayes": "chapters",
    "tilted_gaussian_by_completing_square": "chapters",
}

__all__ = list(_HOMES)


def __getattr__(name):
    home = _HOMES.get(name)
    if home is None:
        raise AttributeError(f"module 'diffnotes.derive' has no attribute {name!r}")
    return getattr(importlib.import_module(f"diffnotes.derive.{home}"), name)


def __dir__():
    return sorted(set(globals()) | set(_HOMES))

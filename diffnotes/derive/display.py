r"""LaTeX for the course's derivations: SymPy expressions in the paper's symbols, step labels, aligned blocks.

:func:`paper_latex` typesets an expression with the code names of :func:`diffnotes.derive.paper_symbols`
written as the paper's symbols (``alpha_bar_prev`` as :math:`\bar\alpha_{t-1}`); :func:`latex_text`
turns a plain-text step label into math-mode LaTeX; :func:`show_aligned` displays rows as one
``aligned`` block, the way a chapter shows a derivation it builds itself. The rendering of a
:class:`diffnotes.derive.Derivation` (its ``to_latex`` and ``summary_latex``) is built from these.
"""
from __future__ import annotations

import re
from typing import Mapping

import sympy as sp

__all__ = ["paper_latex", "latex_text", "show_aligned"]

# Code name -> LaTeX, so that steps print as in the papers (CONTRIBUTING.md notation table).
_LATEX_NAMES = {
    "alpha_t": r"\alpha_t",
    "beta_t": r"\beta_t",
    "alpha_bar_t": r"\bar\alpha_t",
    "alpha_bar_prev": r"\bar\alpha_{t-1}",
    "sigma": r"\sigma_t",
    "eta": r"\eta",
    "x_0": "x_0",
    "x_t": "x_t",
    "x_prev": "x_{t-1}",
    "eps": r"\epsilon",
    "eps_prev": r"\epsilon'",
    "eps_hat": r"\hat\epsilon",
    "k": "k",
    "m": "m",
    "mu_1": r"\mu_1",
    "mu_2": r"\mu_2",
    "s_1": r"s_1",
    "s_2": r"s_2",
}


def paper_latex(expr) -> str:
    """The LaTeX of a SymPy expression, the course's code names (``alpha_bar_t``, ``x_prev``, ``eps_hat``,
    ...) typeset as the paper's symbols (CONTRIBUTING.md notation table); other symbols as SymPy prints them."""
    names = {s: _LATEX_NAMES[s.name] for s in getattr(expr, "free_symbols", ()) if s.name in _LATEX_NAMES}
    return sp.latex(expr, symbol_names=names)


# Code names in labels -> LaTeX (longest first, so alpha_bar wins over alpha).
_LABEL_NAMES = (
    ("alpha_bar", r"\bar\alpha"), ("beta_tilde", r"\tilde\beta_t"), ("alpha", r"\alpha"),
    ("beta", r"\beta"), ("sigma", r"\sigma"), ("eps", r"\epsilon"), ("eta", r"\eta"), ("mu", r"\mu"),
)
_LABEL_WORDS = {name for name, _ in _LABEL_NAMES} | {"sqrt", "log", "coef"}


def _label_math(token: str) -> str | None:
    """The LaTeX of one label token that is a formula (``x_{t-1}^2``, ``sqrt(alpha_bar_{t-1})``),
    or None when it is a plain word (then it stays text)."""
    if token.count("{") != token.count("}"):
        return None
    words = re.findall(r"[A-Za-z]+", re.sub(r"alpha_bar|beta_tilde", "alpha", token))
    if not words or not all(len(w) == 1 or w in _LABEL_WORDS for w in words):
        return None
    if not ("_" in token or "^" in token or any(w in _LABEL_WORDS for w in words)):
        return None
    out = token
    out = re.sub(r"sqrt\(([^()]*)\)", r"\\sqrt{\1}", out)
    for name, tex in _LABEL_NAMES:
        out = re.sub(rf"(?<![A-Za-z\\]){name}(?![A-Za-z])", lambda _m, tex=tex: tex + " ", out)
    out = re.sub(r"(?<![A-Za-z\\])coef(?=\()", r"\\operatorname{coef}", out)
    out = re.sub(r"(?<![A-Za-z\\])log(?![A-Za-z])", r"\\log ", out)
    return re.sub(r" (?=[_^(){},\[\]])", "", out).strip()


def latex_text(label: str) -> str:
    r"""A plain-text step label as LaTeX (math mode): words in ``\text{...}``, formulas as math.

    ``"coefficient of x_{t-1}^2"`` becomes ``\text{coefficient of }x_{t-1}^2``: the exponent is
    typeset as an exponent (in ``\text{}`` a ``^`` is an error in LaTeX and KaTeX, and used to be
    dropped here, which printed "x_{t-1} 2"). A token counts as a formula when it has a ``_`` or
    ``^`` (or names a Greek code symbol such as ``alpha_bar`` or ``eps``) and its letters are
    single-letter symbols or known code names; code names become the paper's symbols. Anything
    else is text, with LaTeX's special characters escaped.
    """
    def text(chunk: str) -> str:
        for char in "\\{}_&%$#":
            chunk = chunk.replace(char, "\\" + char if char != "\\" else r"\backslash ")
        chunk = chunk.replace("^", r"\^{}")
        return rf"\text{{{chunk}}}"

    pieces, pending = [], ""
    for part in re.split(r"(\s+)", label):
        tex = _label_math(part) if part.strip() else None
        if tex is None:
            pending += part
            continue
        if pending:
            pieces.append(text(pending))
            pending = ""
        if pieces and not pieces[-1].startswith(r"\text"):
            pieces.append(r"\ ")
        pieces.append(tex)
    if pending:
        pieces.append(text(pending))
    return "".join(pieces)


def show_aligned(*rows, names: Mapping | None = None, sep: str = r": &\quad ") -> None:
    r"""Display rows as one LaTeX ``aligned`` block: how a chapter shows a derivation it builds itself,
    ending with the residuals that SymPy proved to be zero.

    A row is a LaTeX string (``"a &= b"``, used as it is) or a pair ``(label, expr)`` written
    ``label + sep + latex(expr)``; ``expr`` is a SymPy expression (typeset with ``names``, a
    symbol -> LaTeX map, or the paper's names of :func:`paper_symbols`) or a LaTeX string.
    """
    from IPython.display import Math, display

    def tex(e):
        if isinstance(e, str):
            return e
        return sp.latex(e, symbol_names=dict(names)) if names is not None else paper_latex(e)

    lines = [r if isinstance(r, str) else f"{r[0]}{sep}{tex(r[1])}" for r in rows]
    display(Math(r"\begin{aligned}" + r"\\ ".join(lines) + r"\end{aligned}"))

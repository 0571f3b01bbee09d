r"""Conditional generation: the conditional score, classifier guidance, classifier-free guidance.

Bayes' rule for the noisy marginals, :math:`p(x_t\mid y) = p(y\mid x_t)\,p(x_t)/p(y)`, gives the
conditional score as the unconditional one plus the gradient of a classifier, and the two
guidance methods differ only in where that gradient comes from:

========================  ============================================================  =======================
code                      equation                                                      source
========================  ============================================================  =======================
:func:`conditional_score` :math:`\nabla\log p(x_t\mid y) = \nabla\log p(x_t) + \nabla\log p(y\mid x_t)`  Song et al. 2021b, eq. 49
:func:`classifier_eps`    :math:`\hat\epsilon - s\sqrt{1-\bar\alpha_t}\,\nabla\log p_\phi(y\mid x_t)`  Dhariwal & Nichol 2021, eq. 14
:func:`cfg_eps`           :math:`(1+w)\,\epsilon(x_t, y) - w\,\epsilon(x_t)`                            Ho & Salimans 2022, eq. 6
:func:`tilted_gaussian`   mean and variance of :math:`N(m_c, v_c)^{1+w}/N(m_u, v_u)^{w}`            chapter 8
========================  ============================================================  =======================

Guided *models* (:func:`cfg_model`, :func:`classifier_guided_model`) wrap a network so that every
sampler of :mod:`diffnotes.samplers` runs them unchanged: they are ``model(x_t, t) -> eps``.
:class:`LabelledOracle` gives exact conditional noise predictions and the exact class posterior
:math:`p(y\mid x_t)` for data whose classes are known distributions (a Gaussian mixture with one
class per component), so guidance can be checked against closed forms. The SymPy derivations live
in :mod:`diffnotes.derive`: :func:`~diffnotes.derive.guidance_from_bayes` and
:func:`~diffnotes.derive.tilted_gaussian_by_completing_square`.

Chapter 8.
"""
from __future__ import annotations

import torch

from ._checks import check_range
from ._util import append_dims, batch_t

__all__ = [
    "conditional_score",
    "classifier_eps",
    "cfg_eps",
    "tilted_gaussian",
    "cfg_model",
    "classifier_guided_model",
    "LabelledOracle",
]


# --------------------------------------------------------------------------- the equations
def conditional_score(score, grad_log_p_y):
    r"""The conditional score by Bayes' rule, :math:`\nabla\log p(x_t\mid y) = \nabla\log p(x_t) + \nabla\log p(y\mid x_t)`.

    :math:`\log p(y)` does not depend on :math:`x_t`, so it drops out of the gradient. Song et al.
    2021b, eq. 49 (controllable generation); Dhariwal & Nichol 2021, sec. 4.1. Chapter 8.
    """
    return score + grad_log_p_y


def classifier_eps(eps_hat, grad_log_p_y, alpha_bar_t, scale):
    r"""Classifier guidance in noise-prediction form.

    .. math:: \hat\epsilon_s(x_t, y) = \hat\epsilon(x_t) - s\,\sqrt{1-\bar\alpha_t}\;\nabla_{x_t}\log p_\phi(y\mid x_t)

    Dhariwal & Nichol 2021, eq. 14 and Algorithm 2 (scale :math:`s`; :math:`s = 1` is the exact
    conditional model when the classifier is exact). ``alpha_bar_t`` is a number or a tensor
    ``[B]``. Chapter 8.
    """
    check_range("scale", scale, 0.0, None)
    check_range("alpha_bar_t", alpha_bar_t, 0.0, 1.0, low_open=True, high_open=True)
    s_t = torch.sqrt(1 - append_dims(alpha_bar_t, eps_hat))
    return eps_hat - scale * s_t.to(eps_hat.dtype) * grad_log_p_y


def cfg_eps(eps_cond, eps_uncond, w):
    r"""Classifier-free guidance: :math:`\tilde\epsilon = (1+w)\,\epsilon(x_t, y) - w\,\epsilon(x_t)`.

    Ho & Salimans 2022, eq. 6 (their :math:`w`; :math:`w = 0` is the conditional model). Others
    write the same combination as :math:`\epsilon(x_t) + \gamma(\epsilon(x_t, y) - \epsilon(x_t))`
    with :math:`\gamma = 1 + w`. Chapter 8.
    """
    check_range("w", w, 0.0, None)
    return (1 + w) * eps_cond - w * eps_uncond


def tilted_gaussian(mean_c, var_c, mean_u, var_u, w):
    r"""Mean and variance of the tilted density :math:`N(m_c, v_c)^{1+w} / N(m_u, v_u)^{w}` (normalised).

    .. math:: \frac{1}{v_w} = \frac{1+w}{v_c} - \frac{w}{v_u}, \qquad
              m_w = v_w\Big(\frac{(1+w)\,m_c}{v_c} - \frac{w\,m_u}{v_u}\Big)

    Per coordinate for isotropic (or diagonal) Gaussians; proven in
    :func:`diffnotes.derive.tilted_gaussian_by_completing_square`. With :math:`v_c = v_u` it is a shift,
    :math:`m_w = m_c + w(m_c - m_u)`. Raises ``ValueError`` when :math:`1/v_w \le 0` (the tilt is not
    normalisable). Chapter 8.
    """
    check_range("w", w, 0.0, None)
    for name, v in (("var_c", var_c), ("var_u", var_u)):
        check_range(name, v, 0.0, None, low_open=True)
    mean_c, var_c, mean_u, var_u = (torch.as_tensor(v, dtype=torch.float64) for v in (mean_c, var_c, mean_u, var_u))
    precision = (1 + w) / var_c - w / var_u
    if bool((precision <= 0).any()):
        raise ValueError(f"w={w} is too large for var_c={var_c.tolist()} > var_u={var_u.tolist()}: the tilted "
                         f"density is not normalisable (1/v_w = {precision.min().item():.3g} <= 0)")
    var = 1 / precision
    return var * ((1 + w) * mean_c / var_c - w * mean_u / var_u), var


# --------------------------------------------------------------------------- guided models
def _as_labels(y, x):
    y = torch.as_tensor(y, device=x.device)
    return (y.expand(x.shape[0]) if y.ndim == 0 else y).long()


def cfg_model(model, y, w):
    r"""``model(x_t, t) -> eps`` of classifier-free guidance (:func:`cfg_eps`) for a conditional ``model``.

    ``model(x_t, t, y)`` is a noise predictor that takes labels, ``y=None`` meaning "no label"
    (the shipped U-Net, or :meth:`LabelledOracle.eps_model`). ``y`` is one label or ``[B]``.
    With ``w == 0`` only the conditional prediction is computed (one network call per step);
    otherwise a network with a ``null_class`` gets one call on the doubled batch. Ho & Salimans
    2022, Algorithm 2. Chapter 8.
    """
    check_range("w", w, 0.0, None)

    def guided(x_t, t):
        yy = _as_labels(y, x_t)
        if w == 0:
            return model(x_t, t, yy)
        null = getattr(model, "null_class", None)
        if null is not None:
            t2 = batch_t(t, x_t).repeat(2)
            both = model(torch.cat([x_t, x_t]), t2, torch.cat([yy, torch.full_like(yy, null)]))
            eps_c, eps_u = both.chunk(2)
        else:
            eps_c, eps_u = model(x_t, t, yy), model(x_t, t, None)
        return cfg_eps(eps_c, eps_u, w)

    return guided


def classifier_guided_model(model, classifier, y, scale, schedule):
    r"""``model(x_t, t) -> eps`` of classifier guidance (:func:`classifier_eps`).

    ``model(x_t, t)`` is the unconditional noise predictor; ``classifier`` has
    ``grad_log_prob(x_t, t, y)`` (:class:`diffnotes.classifier.NoisyClassifier`, or
    :meth:`LabelledOracle.classifier`), evaluated at the same ``t``; ``schedule`` gives
    :math:`\bar\alpha_t` at the original index ``t`` the samplers pass. Dhariwal & Nichol 2021,
    Algorithm 2. Chapter 8.
    """
    check_range("scale", scale, 0.0, None)
    alpha_bar = schedule.alpha_bar

    def guided(x_t, t):
        tt = batch_t(t, x_t)
        eps = model(x_t, tt)
        if scale == 0:
            return eps
        g = classifier.grad_log_prob(x_t, tt, _as_labels(y, x_t)).to(eps.dtype)
        return classifier_eps(eps, g, alpha_bar[tt.cpu()].to(x_t.device), scale)

    return guided


# --------------------------------------------------------------------------- exact oracle
class LabelledOracle:
    r"""Labelled data with exact conditional and unconditional noise predictions.

    ``unconditional`` and each of ``conditionals`` are :class:`diffnotes.oracles.Oracle` objects
    (the law of :math:`x_0` and of :math:`x_0 \mid y`). When the unconditional law is the mixture
    :math:`\sum_y \pi_y\,p(x_0\mid y)` (``class_probs`` = :math:`\pi`; :meth:`from_mixture` sets it),
    the class posterior is exact by Bayes' rule:

    .. math:: p(y\mid x_t) = \frac{\pi_y\, p_t(x_t\mid y)}{\sum_k \pi_k\, p_t(x_t\mid k)}

    (Bishop 2006, eq. 9.13, with the noised components). Chapter 8.
    """

    def __init__(self, unconditional, conditionals, class_probs=None):
        self.unconditional = unconditional
        self.conditionals = list(conditionals)
        if not self.conditionals:
            raise ValueError("conditionals must hold at least one oracle, got none")
        self.class_probs = None if class_probs is None else torch.as_tensor(class_probs, dtype=torch.float64)
        if self.class_probs is not None and self.class_probs.numel() != len(self.conditionals):
            raise ValueError(f"class_probs must have {len(self.conditionals)} entries, got {self.class_probs.numel()}")

    @classmethod
    def from_mixture(cls, mixture):
        """A :class:`diffnotes.oracles.GaussianMixture` whose class is its component."""
        return cls(mixture, mixture.components, mixture.weights)

    @property
    def num_classes(self) -> int:
        return len(self.conditionals)

    def _check_y(self, y, x):
        y = _as_labels(y, x)
        if y.numel() and (int(y.min()) < 0 or int(y.max()) >= self.num_classes):
            raise ValueError(f"y must lie in 0..{self.num_classes - 1}, got values {y.unique().tolist()[:8]}")
        return y

    def conditional_eps(self, x_t, alpha, sigma, y) -> torch.Tensor:
        r"""Exact :math:`E[\epsilon \mid x_t, y]`, the noise prediction of :math:`p_t(x_t \mid y)`."""
        y = self._check_y(y, x_t)
        out = torch.empty_like(x_t)
        a, s = (torch.as_tensor(v, dtype=torch.float64).expand(x_t.shape[0]) for v in (alpha, sigma))
        for k in y.unique().tolist():
            m = y == k
            out[m] = self.conditionals[k].eps(x_t[m], a[m.cpu()], s[m.cpu()])
        return out

    def log_class_posterior(self, x_t, alpha, sigma) -> torch.Tensor:
        r""":math:`\log p(y \mid x_t)` for every class, ``[B, K]`` (needs ``class_probs``)."""
        if self.class_probs is None:
            raise ValueError("class_probs is None: p(y | x_t) needs the class probabilities of a mixture")
        logp = torch.stack([c.log_prob_t(x_t.double(), alpha, sigma) for c in self.conditionals], 1)
        return torch.log_softmax(logp + self.class_probs.log().to(x_t.device), dim=1).to(x_t.dtype)

    def grad_log_class_posterior(self, x_t, alpha, sigma, y) -> torch.Tensor:
        r"""Exact :math:`\nabla_{x_t}\log p(y\mid x_t) = \nabla\log p_t(x_t\mid y) - \nabla\log p_t(x_t)`."""
        y = self._check_y(y, x_t)
        s = torch.as_tensor(sigma, dtype=torch.float64)
        eps_c = self.conditional_eps(x_t, alpha, sigma, y)
        eps_u = self.unconditional.eps(x_t, alpha, sigma)
        return (-(eps_c - eps_u) / append_dims(s, x_t)).to(x_t.dtype)

    def eps_model(self, schedule):
        """``model(x_t, t, y=None) -> eps`` on ``schedule`` (``y=None``: the unconditional law)."""
        ab = schedule.alpha_bar

        def model(x_t, t, y=None):
            a_b = ab[batch_t(t, x_t).cpu()]
            a, s = a_b.sqrt(), (1 - a_b).sqrt()
            if y is None:
                return self.unconditional.eps(x_t, a, s)
            return self.conditional_eps(x_t, a, s, y)

        return model

    def classifier(self, schedule):
        """An exact classifier with ``grad_log_prob(x_t, t, y)`` (for :func:`classifier_guided_model`)."""
        ab = schedule.alpha_bar
        oracle = self

        class _Exact:
            def grad_log_prob(self, x_t, t, y):
                a_b = ab[batch_t(t, x_t).cpu()]
                return oracle.grad_log_class_posterior(x_t, a_b.sqrt(), (1 - a_b).sqrt(), y)

        return _Exact()

r"""Data distributions whose noisy marginals, scores and denoisers are known in closed form.

If :math:`x_t = a\,x_0 + s\,z` with :math:`z \sim N(0, I)` (``a`` = mean coefficient, ``s`` = noise
std: :math:`a=\sqrt{\bar\alpha_t}, s=\sqrt{1-\bar\alpha_t}` for DDPM, ``a=1`` for VE), then

* a Gaussian :math:`N(\mu, \Sigma)` stays Gaussian: :math:`p_t = N(a\mu,\ a^2\Sigma + s^2 I)`;
* a mixture stays a mixture of the noised components, with the same weights;
* a finite point set becomes a mixture of isotropic Gaussians :math:`N(a y_j, s^2 I)`.

So the exact score :math:`\nabla\log p_t`, the exact denoiser :math:`E[x_0 \mid x_t]` (Tweedie:
:math:`E[x_0\mid x_t] = (x_t + s^2\nabla\log p_t(x_t))/a`) and the exact noise prediction are
available at every t. :meth:`Oracle.eps_model` and :meth:`Oracle.score_model` wrap them as the
``model`` callables that every sampler takes, so samplers can be tested against ground truth.

Chapters 2, 3, 5 (and all sampler tests).
"""
from __future__ import annotations

import math

import torch

from ._checks import check_finite, check_int, check_range
from ._util import batch_t

__all__ = ["Oracle", "Gaussian", "GaussianMixture", "PointSet"]

_LOG_2PI = math.log(2 * math.pi)


def _as_f64(v) -> torch.Tensor:
    """A (possibly nested list of tensors) as one float64 CPU tensor."""
    if isinstance(v, (list, tuple)) and len(v) and isinstance(v[0], torch.Tensor):
        v = torch.stack([torch.as_tensor(e, dtype=torch.float64) for e in v])
    return torch.as_tensor(v, dtype=torch.float64).cpu()


def _coef(name, c, x):
    """Per-sample coefficient as float64 of shape [B, 1] (a scalar or shape [B] accepted)."""
    c = torch.as_tensor(c, dtype=torch.float64, device=x.device)
    if c.ndim == 0:
        c = c.expand(x.shape[0])
    if c.ndim != 1 or c.shape[0] not in (1, x.shape[0]):
        raise ValueError(
            f"{name} must be a scalar or have shape [B] with B={x.shape[0]}, got shape {tuple(c.shape)}"
        )
    return c.reshape(-1, 1)


class Oracle:
    r"""A data distribution with exact noisy marginals :math:`p_t`, the law of :math:`a x_0 + s z`.

    Subclasses implement the log density and the denoiser :math:`E[x_0 \mid x_t]` on flat float64
    data; the score and the noise prediction follow from Tweedie's formula (Efron 2011, sec. 2),
    the identity behind denoising score matching (Vincent 2011).
    All public methods take ``x_t`` of shape ``[B, *event_shape]`` and return results in its
    dtype and device; ``alpha`` and ``sigma`` are scalars or tensors of shape ``[B]``.
    Chapters 2, 3, 5.
    """

    event_shape: tuple

    # -- to be provided by subclasses (x flat [B, D] float64, a and s [B, 1]) ----
    def _log_prob(self, x, a, s):  # pragma: no cover - abstract
        raise NotImplementedError

    def _denoise(self, x, a, s):  # pragma: no cover - abstract
        raise NotImplementedError

    def sample(self, n: int, generator=None) -> torch.Tensor:  # pragma: no cover - abstract
        """``n`` draws from the data distribution, float64 ``[n, *event_shape]``."""
        raise NotImplementedError

    # -- public API ------------------------------------------------------------
    @property
    def dim(self) -> int:
        """Number of scalar dimensions of one sample, the product of ``event_shape``."""
        return int(math.prod(self.event_shape))

    def _flat(self, x):
        if x.ndim < 1 or tuple(x.shape[1:]) != tuple(self.event_shape):
            raise ValueError(
                f"x must have shape [B, {', '.join(map(str, self.event_shape))}] for this oracle, "
                f"got {tuple(x.shape)}"
            )
        return x.reshape(x.shape[0], -1).to(torch.float64)

    def _prep(self, x, alpha, sigma):
        check_range("alpha", alpha, 0.0, None, low_open=True)
        check_range("sigma", sigma, 0.0, None)
        xf = self._flat(x)
        return xf, _coef("alpha", alpha, xf), _coef("sigma", sigma, xf)

    def log_prob_t(self, x_t, alpha, sigma) -> torch.Tensor:
        r"""Log density of :math:`p_t`, the law of :math:`a x_0 + s z`, at ``x_t``. Shape ``[B]``."""
        xf, a, s = self._prep(x_t, alpha, sigma)
        return self._log_prob(xf, a, s).to(x_t.dtype)

    def denoise(self, x_t, alpha, sigma) -> torch.Tensor:
        r"""The exact denoiser (posterior mean) :math:`E[x_0 \mid x_t]`."""
        xf, a, s = self._prep(x_t, alpha, sigma)
        return self._denoise(xf, a, s).reshape(x_t.shape).to(x_t.dtype)

    def score(self, x_t, alpha, sigma) -> torch.Tensor:
        r"""The exact score, by Tweedie's formula :math:`\nabla\log p_t = (a\,E[x_0\mid x_t] - x_t)/s^2`."""
        xf, a, s = self._prep(x_t, alpha, sigma)
        check_range("sigma", sigma, 0.0, None, low_open=True)
        sc = (a * self._denoise(xf, a, s) - xf) / s**2
        return sc.reshape(x_t.shape).to(x_t.dtype)

    def eps(self, x_t, alpha, sigma) -> torch.Tensor:
        r"""The exact noise prediction :math:`E[z \mid x_t] = (x_t - a\,E[x_0\mid x_t])/s`."""
        xf, a, s = self._prep(x_t, alpha, sigma)
        check_range("sigma", sigma, 0.0, None, low_open=True)
        e = (xf - a * self._denoise(xf, a, s)) / s
        return e.reshape(x_t.shape).to(x_t.dtype)

    def eps_model(self, schedule):
        r"""A discrete-time ``model(x_t, t) -> eps_hat`` for ``schedule`` (t = LongTensor [B]).

        Uses :math:`a = \sqrt{\bar\alpha_t}`, :math:`s = \sqrt{1-\bar\alpha_t}`. Like every model,
        it is called with *original* timestep indices, so for a respaced schedule ``t`` must be one
        of ``schedule.original_t`` (the steps the respaced schedule kept).
        """
        alpha_bar = schedule.alpha_bar
        original_t = schedule.original_t

        def model(x_t, t):
            t = batch_t(t, x_t).cpu().contiguous()
            pos = torch.searchsorted(original_t, t).clamp_max(original_t.numel() - 1)
            if not bool((original_t[pos] == t).all()):
                raise ValueError(
                    f"t must hold original timestep indices of the schedule (its original_t, from "
                    f"{int(original_t[0])} to {int(original_t[-1])}), got {t.unique().tolist()[:8]}"
                )
            ab = alpha_bar[pos].to(x_t.device)
            return self.eps(x_t, ab.sqrt(), (1 - ab).sqrt())

        return model

    def score_model(self, sde):
        """A continuous-time ``model(x_t, t) -> score`` for an SDE with ``sde.marginal_coefs(t)``.

        ``t`` is a float (or float tensor of shape ``[B]``) and ``sde.marginal_coefs(t)`` returns
        the mean coefficient and std of :math:`x_t` given :math:`x_0`.
        """

        def model(x_t, t):
            t = torch.as_tensor(t, dtype=torch.float64, device=x_t.device)
            if t.ndim == 0:
                t = t.expand(x_t.shape[0])
            a, s = sde.marginal_coefs(t)
            return self.score(x_t, a, s)

        return model


def _sym_eig(cov):
    lam, U = torch.linalg.eigh(cov)
    if bool((lam <= 0).any()):
        raise ValueError(
            f"covariance must be symmetric positive definite, its smallest eigenvalue is {lam.min().item():.3g}"
        )
    return lam, U


class Gaussian(Oracle):
    r"""Data :math:`x_0 \sim N(\mu, \Sigma)`.

    Then :math:`p_t = N(a\mu, a^2\Sigma + s^2 I)` and the exact denoiser is Gaussian conditioning
    (Bishop 2006, sec. 2.3.3):

    .. math:: E[x_0\mid x_t] = \mu + a\Sigma(a^2\Sigma + s^2I)^{-1}(x_t - a\mu)

    Parameters: ``mean`` of shape [D], ``cov`` symmetric positive definite [D, D]. Chapters 2, 5.
    """

    def __init__(self, mean, cov):
        self.mean = torch.as_tensor(mean, dtype=torch.float64).flatten()
        check_finite("mean", self.mean)
        D = self.mean.numel()
        cov = torch.as_tensor(cov, dtype=torch.float64)
        check_finite("cov", cov)
        if cov.shape != (D, D):
            raise ValueError(f"cov must have shape ({D}, {D}) to match mean, got {tuple(cov.shape)}")
        if not torch.allclose(cov, cov.T):
            asym = (cov - cov.T).abs().max().item()
            raise ValueError(f"cov must be symmetric, got max |cov - cov.T| = {asym:.3g}")
        self.cov = cov
        self.event_shape = (D,)
        self._lam, self._U = _sym_eig(cov)

    @property
    def covariance(self) -> torch.Tensor:
        r"""The data covariance :math:`\Sigma`, float64 ``[D, D]``."""
        return self.cov

    def _parts(self, x, a, s, mean, lam, U):
        mean, lam, U = mean.to(x.device), lam.to(x.device), U.to(x.device)
        var = a**2 * lam + s**2  # [B, D] eigenvalues of a^2 Sigma + s^2 I
        proj = (x - a * mean) @ U  # [B, D]
        return mean, lam, U, var, proj

    def _log_prob(self, x, a, s):
        _, _, _, var, proj = self._parts(x, a, s, self.mean, self._lam, self._U)
        return -0.5 * ((proj**2 / var).sum(1) + torch.log(var).sum(1) + x.shape[1] * _LOG_2PI)

    def _denoise(self, x, a, s):
        mean, lam, U, var, proj = self._parts(x, a, s, self.mean, self._lam, self._U)
        return mean + (a * lam / var * proj) @ U.T

    def sample(self, n: int, generator=None) -> torch.Tensor:
        """``n`` draws from the data distribution, float64 ``[n, D]``."""
        n = check_int("n", n, 0)
        z = torch.randn(n, self.dim, generator=generator, dtype=torch.float64)
        return self.mean + (z * self._lam.sqrt()) @ self._U.T


class GaussianMixture(Oracle):
    r"""Data :math:`x_0 \sim \sum_k w_k N(\mu_k, \Sigma_k)`.

    The noised marginal is :math:`\sum_k w_k N(a\mu_k, a^2\Sigma_k + s^2 I)`; the denoiser is the
    responsibility-weighted average of the components' Gaussian denoisers,
    :math:`E[x_0\mid x_t] = \sum_k p(k\mid x_t)\,E_k[x_0\mid x_t]` (responsibilities as in
    Bishop 2006, eq. 9.13; each :math:`E_k` by sec. 2.3.3).

    Parameters: ``weights`` [K] positive summing to 1, ``means`` [K, D], ``covs`` [K, D, D].
    Chapters 3, 5.
    """

    def __init__(self, weights, means, covs):
        w = _as_f64(weights).flatten()
        means = _as_f64(means)
        covs = _as_f64(covs)
        K = w.numel()
        if means.ndim != 2 or means.shape[0] != K:
            raise ValueError(f"means must have shape ({K}, D) to match {K} weights, got {tuple(means.shape)}")
        D = means.shape[1]
        if covs.shape != (K, D, D):
            raise ValueError(f"covs must have shape ({K}, {D}, {D}), got {tuple(covs.shape)}")
        if bool((w <= 0).any()) or abs(w.sum().item() - 1) > 1e-9:
            raise ValueError(f"weights must be positive and sum to 1, got {w.tolist()}")
        self.weights, self.means, self.covs = w, means, covs
        self.components = [Gaussian(means[k], covs[k]) for k in range(K)]
        self.event_shape = (D,)

    @property
    def mean(self) -> torch.Tensor:
        r"""The data mean :math:`\sum_k w_k \mu_k`, float64 ``[D]``."""
        return (self.weights[:, None] * self.means).sum(0)

    @property
    def covariance(self) -> torch.Tensor:
        r"""The data covariance :math:`\sum_k w_k (\Sigma_k + (\mu_k-\mu)(\mu_k-\mu)^T)`, ``[D, D]``."""
        m = self.mean
        d = self.means - m
        return (self.weights[:, None, None] * (self.covs + d[:, :, None] * d[:, None, :])).sum(0)

    def responsibilities(self, x_t, alpha, sigma) -> torch.Tensor:
        r"""Posterior component probabilities :math:`p(k \mid x_t)`, shape ``[B, K]``."""
        xf, a, s = self._prep(x_t, alpha, sigma)
        return self._resp(xf, a, s).to(x_t.dtype)

    def _comp_logp(self, x, a, s):
        logw = self.weights.log().to(x.device)
        return torch.stack([c._log_prob(x, a, s) for c in self.components], 1) + logw

    def _resp(self, x, a, s):
        return torch.softmax(self._comp_logp(x, a, s), dim=1)

    def _log_prob(self, x, a, s):
        return torch.logsumexp(self._comp_logp(x, a, s), dim=1)

    def _denoise(self, x, a, s):
        r = self._resp(x, a, s)
        d = torch.stack([c._denoise(x, a, s) for c in self.components], 1)  # [B, K, D]
        return (r[:, :, None] * d).sum(1)

    def _nearest(self, x) -> torch.Tensor:
        x = torch.as_tensor(x)
        if x.ndim != 2 or x.shape[1] != self.event_shape[0] or x.shape[0] == 0:
            raise ValueError(f"x must be samples [N, {self.event_shape[0]}] with N >= 1, got {tuple(x.shape)}")
        return torch.cdist(x.to(torch.float64), self.means.to(x.device))

    def weight_error(self, x) -> float:
        r"""How far samples ``x`` [N, D] are from the mixture weights: :math:`\max_k |\hat w_k - w_k|`,
        with :math:`\hat w_k` the fraction of samples whose nearest component mean is :math:`\mu_k`.

        A sampler error measure for well-separated components (chapters 6, 7); exact samples score
        about :math:`\sqrt{w(1-w)/N}`.
        """
        k = self._nearest(x).argmin(1).cpu()
        return (torch.bincount(k, minlength=len(self.weights)).double() / len(k) - self.weights).abs().max().item()

    def spread(self, x) -> float:
        r"""The RMS distance of samples ``x`` [N, D] to their nearest component mean,
        :math:`\big(\tfrac1N\sum_i \min_k\lVert x_i-\mu_k\rVert^2\big)^{1/2}`: how wide the sampled
        clusters are. Divide by the spread of exact samples for a ratio (1 is right; chapters 6, 7)."""
        return (self._nearest(x).min(1).values ** 2).mean().sqrt().item()

    def sample(self, n: int, generator=None, return_labels: bool = False):
        """``n`` draws, float64 ``[n, D]`` (and the component labels with ``return_labels``)."""
        n = check_int("n", n, 0)
        k = torch.multinomial(self.weights, n, replacement=True, generator=generator)
        z = torch.randn(n, self.event_shape[0], generator=generator, dtype=torch.float64)
        x = torch.empty(n, self.event_shape[0], dtype=torch.float64)
        for j, c in enumerate(self.components):
            m = k == j
            x[m] = c.mean + (z[m] * c._lam.sqrt()) @ c._U.T
        return (x, k) if return_labels else x


class PointSet(Oracle):
    r"""Data uniform (or weighted) over a finite set of points :math:`\{y_j\}` of any shape.

    :math:`p_t = \sum_j w_j N(a y_j, s^2 I)`, so :math:`E[x_0\mid x_t] = \sum_j p(j\mid x_t)\,y_j`
    with :math:`p(j \mid x_t) \propto w_j \exp(-\lVert x_t - a y_j\rVert^2 / 2s^2)`. This is the
    optimal denoiser of a training set, the one a model that memorises would learn (the "ideal
    denoiser" of Karras et al. 2022, appendix B.3).

    Parameters: ``points`` [N, ...] (any event shape, e.g. images), optional ``weights`` [N].
    Chapters 3, 7.
    """

    def __init__(self, points, weights=None):
        pts = torch.as_tensor(points, dtype=torch.float64)
        if pts.ndim < 2 or pts.shape[0] == 0:
            raise ValueError(f"points must have shape [N, ...] with N >= 1, got {tuple(pts.shape)}")
        check_finite("points", pts)
        self.points = pts
        self.event_shape = tuple(pts.shape[1:])
        self._flat_pts = pts.reshape(pts.shape[0], -1)
        if weights is None:
            weights = torch.full((pts.shape[0],), 1.0 / pts.shape[0], dtype=torch.float64)
        w = torch.as_tensor(weights, dtype=torch.float64).flatten()
        if w.numel() != pts.shape[0] or bool((w <= 0).any()) or abs(w.sum().item() - 1) > 1e-9:
            raise ValueError(
                f"weights must be {pts.shape[0]} positive numbers summing to 1, got "
                f"{w.numel()} numbers with min {w.min().item():.3g} and sum {w.sum().item():.6g}"
            )
        self.weights = w

    @property
    def mean(self) -> torch.Tensor:
        r"""The data mean :math:`\sum_j w_j y_j`, float64 of shape ``event_shape``."""
        return (self.weights[:, None] * self._flat_pts).sum(0).reshape(self.event_shape)

    @property
    def covariance(self) -> torch.Tensor:
        """The covariance of the flattened points, float64 ``[D, D]`` with D = ``dim``."""
        d = self._flat_pts - self.mean.flatten()
        return (self.weights[:, None, None] * d[:, :, None] * d[:, None, :]).sum(0)

    def _logits(self, x, a, s):
        y = self._flat_pts.to(x.device)
        d2 = (x**2).sum(1, keepdim=True) - 2 * a * (x @ y.T) + a**2 * (y**2).sum(1)[None]
        return -0.5 * d2.clamp_min(0) / s**2 + self.weights.log().to(x.device)

    def _log_prob(self, x, a, s):
        if bool((s <= 0).any()):
            raise ValueError(
                f"sigma must lie in (0, inf) for a point set (its data density is not a function), "
                f"got min sigma {s.min().item()!r}"
            )
        D = x.shape[1]
        return torch.logsumexp(self._logits(x, a, s), 1) - D * torch.log(s[:, 0]) - 0.5 * D * _LOG_2PI

    def _denoise(self, x, a, s):
        if bool((s <= 0).any()):
            raise ValueError(
                f"sigma must lie in (0, inf) for a point set (its denoiser at sigma=0 is not defined "
                f"off the points), got min sigma {s.min().item()!r}"
            )
        r = torch.softmax(self._logits(x, a, s), dim=1)
        return r @ self._flat_pts.to(x.device)

    def nearest(self, x) -> torch.Tensor:
        """Index of the nearest point to each row of ``x`` (to measure memorisation)."""
        xf = self._flat(x)
        return torch.cdist(xf, self._flat_pts.to(xf.device)).argmin(1)

    def sample(self, n: int, generator=None) -> torch.Tensor:
        """``n`` draws (with replacement), float64 ``[n, ...]``."""
        n = check_int("n", n, 0)
        j = torch.multinomial(self.weights, n, replacement=True, generator=generator)
        return self.points[j]

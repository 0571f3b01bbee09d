"""Tests for diffnotes.oracles: exact scores and denoisers checked against independent computations."""
from __future__ import annotations

import math

import pytest
import torch
from torch.distributions import MultivariateNormal

from diffnotes.oracles import Gaussian, GaussianMixture, Oracle, PointSet
from diffnotes.schedules import linear_schedule, respace, uniform_timesteps


def _gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


F64 = torch.float64


def gaussian2():
    return Gaussian([0.5, -1.0], [[1.0, 0.6], [0.6, 2.0]])


def mixture2():
    return GaussianMixture(
        [0.2, 0.5, 0.3],
        [[-2.0, 0.0], [1.0, 1.0], [0.5, -2.0]],
        [[[0.3, 0.1], [0.1, 0.2]], [[0.5, 0.0], [0.0, 0.5]], [[1.0, -0.4], [-0.4, 0.4]]],
    )


def points2():
    return PointSet([[0.0, 0.0], [1.0, 2.0], [-1.5, 0.5], [2.0, -1.0], [0.3, 0.3]],
                    weights=[0.1, 0.2, 0.3, 0.25, 0.15])


def points_img():
    return PointSet(torch.randn(6, 1, 2, 3, generator=_gen(11), dtype=F64))


ORACLES = {"gaussian": gaussian2, "mixture": mixture2, "points": points2, "points-img": points_img}

# (alpha, sigma): VP-like at several noise levels, VE-like (alpha = 1), and per-sample [B] tensors
COEFS = {
    "vp-low": (math.sqrt(0.95), math.sqrt(0.05)),
    "vp-mid": (math.sqrt(0.5), math.sqrt(0.5)),
    "vp-high": (math.sqrt(0.01), math.sqrt(0.99)),
    "ve": (1.0, 3.0),
    "per-sample": (torch.tensor([0.99, 0.7, 0.3, 0.1, 1.0, 0.8], dtype=F64),
                   torch.tensor([0.14, 0.7, 0.95, 0.99, 0.5, 0.2], dtype=F64)),
}


def _x(oracle, n=6, seed=0, dtype=F64):
    return (2 * torch.randn((n,) + tuple(oracle.event_shape), generator=_gen(seed), dtype=F64)).to(dtype)


def _col(c, n):
    """A coefficient as float64 [n, 1]."""
    c = torch.as_tensor(c, dtype=F64)
    return (c.expand(n) if c.ndim == 0 else c).reshape(-1, 1)


# --- score and denoiser ---------------------------------------------------------------------------


@pytest.mark.parametrize("name", list(ORACLES))
@pytest.mark.parametrize("coef", list(COEFS))
def test_score_is_autograd_gradient_of_log_prob(name, coef):
    o = ORACLES[name]()
    a, s = COEFS[coef]
    x = _x(o).requires_grad_(True)
    (grad,) = torch.autograd.grad(o.log_prob_t(x, a, s).sum(), x)
    torch.testing.assert_close(o.score(x.detach(), a, s), grad, rtol=1e-9, atol=1e-10)


@pytest.mark.parametrize("name", list(ORACLES))
@pytest.mark.parametrize("coef", list(COEFS))
def test_eps_and_denoiser_reconstruct_x_t(name, coef):
    """x_t = a E[x_0|x_t] + s E[eps|x_t] (linearity of the posterior mean), and score = -eps/s."""
    o = ORACLES[name]()
    a, s = COEFS[coef]
    x = _x(o, seed=1)
    shape = (-1,) + (1,) * (x.ndim - 1)
    a_, s_ = torch.as_tensor(a, dtype=F64), torch.as_tensor(s, dtype=F64)
    a_ = a_.reshape(shape) if a_.ndim else a_
    s_ = s_.reshape(shape) if s_.ndim else s_
    torch.testing.assert_close(a_ * o.denoise(x, a, s) + s_ * o.eps(x, a, s), x, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(o.score(x, a, s), -o.eps(x, a, s) / s_, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("coef", list(COEFS))
def test_gaussian_denoiser_closed_form(coef):
    """E[x_0|x_t] = mu + a Sigma (a^2 Sigma + s^2 I)^{-1} (x_t - a mu), solved directly."""
    o = gaussian2()
    a, s = COEFS[coef]
    x = _x(o, seed=2)
    mu, Sig = o.mean, o.covariance
    A, S = _col(a, 6), _col(s, 6)
    for i in range(6):
        K = A[i] ** 2 * Sig + S[i] ** 2 * torch.eye(2, dtype=F64)
        ref = mu + A[i] * Sig @ torch.linalg.solve(K, x[i] - A[i] * mu)
        torch.testing.assert_close(o.denoise(x[i:i + 1], A[i], S[i])[0], ref, rtol=1e-12, atol=1e-12)
        torch.testing.assert_close(o.denoise(x, a, s)[i], ref, rtol=1e-12, atol=1e-12)
        lp = MultivariateNormal(A[i] * mu, K).log_prob(x[i])
        torch.testing.assert_close(o.log_prob_t(x, a, s)[i], lp, rtol=1e-12, atol=1e-12)


def test_gaussian_without_noise():
    o = gaussian2()
    x = _x(o, seed=3)
    torch.testing.assert_close(o.denoise(x, 0.5, 0.0), x / 0.5, rtol=1e-12, atol=1e-12)
    lp = MultivariateNormal(0.5 * o.mean, 0.25 * o.covariance).log_prob(x)
    torch.testing.assert_close(o.log_prob_t(x, 0.5, 0.0), lp, rtol=1e-12, atol=1e-12)


def _mixture_brute_force(o, x, a, s):
    """Bayes over components with MultivariateNormal densities and per-component linear solves."""
    D = x.shape[1]
    logp, means = [], []
    for w, mu, Sig in zip(o.weights, o.means, o.covs):
        K = a**2 * Sig + s**2 * torch.eye(D, dtype=F64)
        logp.append(math.log(w) + MultivariateNormal(a * mu, K).log_prob(x))
        means.append(mu + (a * Sig @ torch.linalg.solve(K, (x - a * mu).T)).T)
    logp = torch.stack(logp, 1)
    r = torch.softmax(logp, 1)
    return torch.logsumexp(logp, 1), r, (r[:, :, None] * torch.stack(means, 1)).sum(1)


@pytest.mark.parametrize("coef", ["vp-low", "vp-mid", "vp-high", "ve"])
def test_mixture_denoiser_brute_force(coef):
    o = mixture2()
    a, s = COEFS[coef]
    x = _x(o, n=8, seed=4)
    lp, r, d = _mixture_brute_force(o, x, a, s)
    torch.testing.assert_close(o.log_prob_t(x, a, s), lp, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(o.responsibilities(x, a, s), r, rtol=1e-10, atol=1e-12)
    torch.testing.assert_close(o.denoise(x, a, s), d, rtol=1e-10, atol=1e-12)


def test_mixture_denoiser_is_monte_carlo_posterior_mean():
    """Self-normalised importance sampling with the prior as proposal:
    E[x_0|x_t] ~ sum_i w_i x0_i / sum_i w_i,  w_i = N(x_t; a x0_i, s^2 I),  x0_i ~ p_data.
    Standard error by the delta method, SE^2 = sum_i w_i^2 (x0_i - est)^2 / (sum_i w_i)^2; check 5 SE."""
    o = mixture2()
    a, s = 0.8, 0.6
    x0 = o.sample(40000, generator=_gen(5))
    x_t = torch.tensor([[0.0, 0.0], [-1.5, 0.2], [1.0, -1.0]], dtype=F64)
    exact = o.denoise(x_t, a, s)
    for j in range(x_t.shape[0]):
        logw = -((x_t[j] - a * x0) ** 2).sum(1) / (2 * s**2)
        w = torch.softmax(logw, 0)  # normalised weights
        est = (w[:, None] * x0).sum(0)
        se = ((w[:, None] ** 2) * (x0 - est) ** 2).sum(0).sqrt()
        assert bool(((est - exact[j]).abs() < 5 * se + 1e-12).all()), (j, est, exact[j], se)
        assert float(se.max()) < 0.05  # the check has power: the SE is small


@pytest.mark.parametrize("name", ["points", "points-img"])
@pytest.mark.parametrize("coef", list(COEFS))
def test_point_set_denoiser_brute_force(name, coef):
    """p(j|x_t) ∝ w_j N(x_t; a y_j, s^2 I) with the distances computed directly (no expansion)."""
    o = ORACLES[name]()
    a, s = COEFS[coef]
    x = _x(o, seed=6)
    xf = x.reshape(6, -1)
    y = o.points.reshape(o.points.shape[0], -1)
    A, S = _col(a, 6), _col(s, 6)
    D = xf.shape[1]
    d2 = ((xf[:, None, :] - A[:, :, None] * y[None]) ** 2).sum(-1)  # [B, N]
    logp = torch.log(o.weights)[None] - d2 / (2 * S**2) - D * torch.log(S) - 0.5 * D * math.log(2 * math.pi)
    post = torch.softmax(logp, 1)
    torch.testing.assert_close(o.log_prob_t(x, a, s), torch.logsumexp(logp, 1), rtol=1e-10, atol=1e-10)
    torch.testing.assert_close(o.denoise(x, a, s), (post @ y).reshape(x.shape), rtol=1e-10, atol=1e-10)


def test_point_set_small_noise_denoises_to_nearest_point():
    o = points2()
    x = o.points + 0.01 * torch.randn(o.points.shape, generator=_gen(7), dtype=F64)
    torch.testing.assert_close(o.denoise(x, 1.0, 0.05), o.points, rtol=0, atol=1e-6)
    assert o.nearest(x).tolist() == list(range(5))
    # large noise: the denoiser tends to the data mean
    torch.testing.assert_close(o.denoise(x, 1e-3, 1.0), o.mean.expand(5, 2), rtol=0, atol=1e-2)


# --- densities integrate to one -----------------------------------------------------------------


def _trapz_1d(o, a, s, n=4001):
    L = 4.0 + 10.0 * s  # the data lie in [-2, 3]; 10 noise standard deviations beyond
    g = torch.linspace(-L, L, n, dtype=F64)[:, None]
    return torch.trapezoid(o.log_prob_t(g, a, s).exp(), g[:, 0]).item()


@pytest.mark.parametrize(
    "oracle",
    [Gaussian([0.3], [[0.8]]), GaussianMixture([0.3, 0.7], [[-1.0], [2.0]], [[[0.2]], [[0.5]]]),
     PointSet([[-1.0], [0.5], [3.0]])],
    ids=["gaussian", "mixture", "points"],
)
@pytest.mark.parametrize("coef", ["vp-low", "vp-high", "ve"])
def test_log_prob_integrates_to_one_1d(oracle, coef):
    a, s = COEFS[coef]
    # trapezoid error ~ h^2 f''/12 with h <= 0.017 and widths >= 0.22: well below 1e-6
    assert _trapz_1d(oracle, a, s) == pytest.approx(1.0, abs=1e-6)


@pytest.mark.parametrize("name", ["gaussian", "mixture", "points"])
def test_log_prob_integrates_to_one_2d(name):
    o = ORACLES[name]()
    a, s = math.sqrt(0.7), math.sqrt(0.3)
    g = torch.linspace(-9.0, 9.0, 361, dtype=F64)
    X, Y = torch.meshgrid(g, g, indexing="ij")
    p = o.log_prob_t(torch.stack([X.flatten(), Y.flatten()], 1), a, s).exp().reshape(361, 361)
    total = torch.trapezoid(torch.trapezoid(p, g, dim=1), g).item()
    assert total == pytest.approx(1.0, abs=1e-4)  # grid step 0.05 against widths >= 0.55


# --- samples, means, covariances, weights ----------------------------------------------------------


def _check_sample_moments(x, mean, cov, k=5.0):
    """Sample mean within k SE (SE_i = sqrt(cov_ii / N)); sample covariance within k SE, with the
    SE of each entry estimated from the samples: SE_ij = sd((x_i - m_i)(x_j - m_j)) / sqrt(N)."""
    N = x.shape[0]
    m = x.mean(0)
    se_m = (torch.diagonal(cov) / N).sqrt()
    assert bool(((m - mean).abs() < k * se_m).all()), (m, mean, se_m)
    d = x - m
    prod = d[:, :, None] * d[:, None, :]
    c = prod.mean(0) * N / (N - 1)
    se_c = prod.std(0) / math.sqrt(N)
    assert bool(((c - cov).abs() < k * se_c).all()), (c, cov, se_c)


def test_gaussian_samples_have_stated_moments():
    o = gaussian2()
    x = o.sample(20000, generator=_gen(8))
    assert x.shape == (20000, 2) and x.dtype == F64
    _check_sample_moments(x, o.mean, o.covariance)
    # reproducible with the same generator
    torch.testing.assert_close(o.sample(5, generator=_gen(1)), o.sample(5, generator=_gen(1)), rtol=0, atol=0)


def test_mixture_samples_weights_and_moments():
    o = mixture2()
    N = 30000
    x, k = o.sample(N, generator=_gen(9), return_labels=True)
    # label frequencies: binomial SE sqrt(w (1 - w) / N), 5 SE
    freq = torch.bincount(k, minlength=3).to(F64) / N
    se = (o.weights * (1 - o.weights) / N).sqrt()
    assert bool(((freq - o.weights).abs() < 5 * se).all()), (freq, o.weights)
    # each labelled group comes from its component
    for j in range(3):
        _check_sample_moments(x[k == j], o.means[j], o.covs[j])
    # overall moments match the mixture's mean and covariance properties
    _check_sample_moments(x, o.mean, o.covariance)
    # the properties against the law of total variance, computed independently
    mu = sum(w * m for w, m in zip(o.weights, o.means))
    cov = sum(w * (C + torch.outer(m - mu, m - mu)) for w, m, C in zip(o.weights, o.means, o.covs))
    torch.testing.assert_close(o.mean, mu)
    torch.testing.assert_close(o.covariance, cov)


def test_point_set_samples_weights_and_moments():
    o = points2()
    N = 20000
    x = o.sample(N, generator=_gen(10))
    idx = o.nearest(x)
    torch.testing.assert_close(x, o.points[idx], rtol=0, atol=0)  # samples are the points themselves
    freq = torch.bincount(idx, minlength=5).to(F64) / N
    se = (o.weights * (1 - o.weights) / N).sqrt()
    assert bool(((freq - o.weights).abs() < 5 * se).all()), (freq, o.weights)
    w = o.weights
    mu = (w[:, None] * o.points).sum(0)
    cov = torch.cov(o.points.T, aweights=w, correction=0)
    torch.testing.assert_close(o.mean, mu)
    torch.testing.assert_close(o.covariance, cov)
    _check_sample_moments(x, o.mean, o.covariance)
    img = points_img()
    assert img.mean.shape == (1, 2, 3) and img.covariance.shape == (6, 6) and img.dim == 6
    assert img.sample(4, generator=_gen(0)).shape == (4, 1, 2, 3)


# --- adapters --------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["gaussian", "mixture", "points-img"])
def test_eps_model_uses_schedule_alpha_bar(name):
    o = ORACLES[name]()
    sched = linear_schedule(1000)
    model = o.eps_model(sched)
    x = _x(o, seed=12)
    ab = sched.alpha_bar
    t = torch.tensor([0, 1, 10, 500, 998, 999])
    out = model(x, t)
    ref = o.eps(x, ab[t].sqrt(), (1 - ab[t]).sqrt())
    torch.testing.assert_close(out, ref, rtol=0, atol=0)
    # an int timestep is broadcast to the batch
    torch.testing.assert_close(model(x, 250), o.eps(x, ab[250].sqrt(), (1 - ab[250]).sqrt()), rtol=0, atol=0)
    # the identity x_t = sqrt(ab) E[x_0|x_t] + sqrt(1-ab) E[eps|x_t] with the schedule's coefficients
    a, s = ab[t].sqrt(), (1 - ab[t]).sqrt()
    shape = (-1,) + (1,) * (x.ndim - 1)
    torch.testing.assert_close(a.reshape(shape) * o.denoise(x, a, s) + s.reshape(shape) * out, x)


def test_eps_model_respaced_schedule_takes_original_indices():
    o = gaussian2()
    parent = linear_schedule(1000)
    r = respace(parent, uniform_timesteps(1000, 10))  # keeps 0, 100, ..., 900
    x = _x(o, seed=13)
    t = torch.tensor([900, 800, 0, 100, 500, 900])
    torch.testing.assert_close(o.eps_model(r)(x, t), o.eps_model(parent)(x, t), rtol=0, atol=1e-12)
    with pytest.raises(ValueError, match=r"t must hold original timestep indices .* got \[5\]"):
        o.eps_model(r)(x, 5)
    with pytest.raises(ValueError, match="t must hold original timestep indices"):
        o.eps_model(parent)(x, 1000)


class _StubVP:
    """A stand-in for a VP SDE: only marginal_coefs(t) -> (mean_coef, std) is needed."""

    def marginal_coefs(self, t):
        log_mean = -0.25 * t**2 * 19.9 - 0.5 * t * 0.1
        return torch.exp(log_mean), torch.sqrt(1 - torch.exp(2 * log_mean))


@pytest.mark.parametrize("name", ["gaussian", "mixture", "points"])
def test_score_model_uses_marginal_coefs(name):
    o = ORACLES[name]()
    sde = _StubVP()
    model = o.score_model(sde)
    x = _x(o, seed=14)
    t = torch.tensor([1e-3, 0.1, 0.3, 0.5, 0.9, 1.0], dtype=F64)
    a, s = sde.marginal_coefs(t)
    torch.testing.assert_close(model(x, t), o.score(x, a, s), rtol=0, atol=0)
    a5, s5 = sde.marginal_coefs(torch.tensor(0.5, dtype=F64))
    torch.testing.assert_close(model(x, 0.5), o.score(x, a5, s5), rtol=0, atol=0)


# --- dtype ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", list(ORACLES))
def test_dtype_follows_input(name):
    o = ORACLES[name]()
    x = _x(o, seed=15, dtype=torch.float32)
    a, s = torch.tensor([0.9] * 6), torch.tensor([0.4] * 6)  # float32 coefficients
    for f in (o.denoise, o.score, o.eps, o.log_prob_t):
        out = f(x, a, s)
        assert out.dtype == torch.float32
        ref = f(x.double(), a.double(), s.double())
        torch.testing.assert_close(out.double(), ref, rtol=1e-5, atol=1e-5)
    assert o.eps_model(linear_schedule(10))(x, 3).dtype == torch.float32


# --- validation ---------------------------------------------------------------------------------------


def test_validation_errors():
    with pytest.raises(ValueError, match=r"cov must have shape \(2, 2\) to match mean"):
        Gaussian([0.0, 0.0], [[1.0]])
    with pytest.raises(ValueError, match="cov must be symmetric"):
        Gaussian([0.0, 0.0], [[1.0, 0.5], [0.0, 1.0]])
    with pytest.raises(ValueError, match="covariance must be symmetric positive definite"):
        Gaussian([0.0, 0.0], [[1.0, 2.0], [2.0, 1.0]])
    with pytest.raises(ValueError, match="mean must be finite"):
        Gaussian([0.0, float("nan")], torch.eye(2))
    with pytest.raises(ValueError, match=r"weights must be positive and sum to 1, got \[0.5, 0.6\]"):
        GaussianMixture([0.5, 0.6], [[0.0], [1.0]], [[[1.0]], [[1.0]]])
    with pytest.raises(ValueError, match=r"weights must be positive"):
        GaussianMixture([1.5, -0.5], [[0.0], [1.0]], [[[1.0]], [[1.0]]])
    with pytest.raises(ValueError, match=r"means must have shape \(2, D\) to match 2 weights"):
        GaussianMixture([0.5, 0.5], [[0.0], [1.0], [2.0]], [[[1.0]], [[1.0]]])
    with pytest.raises(ValueError, match=r"covs must have shape \(2, 1, 1\)"):
        GaussianMixture([0.5, 0.5], [[0.0], [1.0]], [[[1.0]]])
    with pytest.raises(ValueError, match=r"points must have shape \[N, ...\] with N >= 1"):
        PointSet(torch.zeros(0, 2))
    with pytest.raises(ValueError, match=r"points must have shape \[N, ...\]"):
        PointSet([1.0, 2.0])
    with pytest.raises(ValueError, match="weights must be 2 positive numbers summing to 1"):
        PointSet([[0.0], [1.0]], weights=[0.3, 0.3])
    with pytest.raises(ValueError, match="points must be finite"):
        PointSet([[0.0], [float("inf")]])

    o = gaussian2()
    x = torch.zeros(3, 2, dtype=F64)
    with pytest.raises(ValueError, match=r"x must have shape \[B, 2\] for this oracle, got \(3, 3\)"):
        o.score(torch.zeros(3, 3), 1.0, 1.0)
    with pytest.raises(ValueError, match=r"alpha must lie in \(0.0, inf\), got 0.0"):
        o.denoise(x, 0.0, 1.0)
    with pytest.raises(ValueError, match=r"sigma must lie in \[0.0, inf\), got -1.0"):
        o.denoise(x, 1.0, -1.0)
    with pytest.raises(ValueError, match=r"sigma must lie in \(0.0, inf\), got 0.0"):
        o.score(x, 1.0, 0.0)
    with pytest.raises(ValueError, match=r"sigma must lie in \(0.0, inf\), got 0.0"):
        o.eps(x, 1.0, 0.0)
    with pytest.raises(ValueError, match="alpha must be finite"):
        o.log_prob_t(x, float("nan"), 1.0)
    with pytest.raises(ValueError, match=r"alpha must be a scalar or have shape \[B\] with B=3, got shape \(2,\)"):
        o.denoise(x, torch.tensor([1.0, 1.0]), 1.0)
    with pytest.raises(ValueError, match=r"n must be an integer in \[0, inf\], got -1"):
        o.sample(-1)
    p = points2()
    with pytest.raises(ValueError, match=r"sigma must lie in \(0, inf\) for a point set"):
        p.log_prob_t(x, 1.0, 0.0)
    with pytest.raises(ValueError, match=r"sigma must lie in \(0, inf\) for a point set"):
        p.denoise(x, 1.0, 0.0)


def test_base_class_is_abstract():
    with pytest.raises(NotImplementedError):
        Oracle().sample(3)


def test_mixture_weight_error_and_spread_of_samples():
    """weight_error and spread against values worked out by hand for points placed at known distances."""
    mix = GaussianMixture([0.5, 0.5], [[0.0, 0.0], [10.0, 0.0]], 0.01 * torch.eye(2, dtype=torch.float64).expand(2, 2, 2))
    x = torch.tensor([[0.0, 3.0], [0.0, -4.0], [1.0, 0.0], [10.0, 0.0]], dtype=torch.float64)
    # nearest means: 0, 0, 0, 1 -> weights 0.75 / 0.25, error 0.25; squared distances 9, 16, 1, 0 -> RMS sqrt(26/4)
    assert mix.weight_error(x) == pytest.approx(0.25, abs=1e-15)
    assert mix.spread(x) == pytest.approx(math.sqrt(26 / 4), rel=1e-14)
    exact = mix.sample(40_000, generator=torch.Generator().manual_seed(0))
    assert mix.weight_error(exact) < 4 * 0.5 / math.sqrt(40_000)
    assert mix.spread(exact) == pytest.approx(0.1 * math.sqrt(2), rel=0.02)  # E||z||^2 = 2 * 0.01
    with pytest.raises(ValueError, match=r"x must be samples \[N, 2\]"):
        mix.spread(torch.zeros(3, 3))

"""Tests of diffnotes.fast_samplers: properties against oracles first, then input validation."""
import math

import pytest
import torch

from diffnotes import fast_samplers as F
from diffnotes import oracles, samplers
from diffnotes.schedules import cosine_schedule, linear_schedule, uniform_timesteps

MEAN = torch.tensor([0.5, -0.3], dtype=torch.float64)
# eigenvalues 0.5 and 0.25, axes rotated by 45 degrees
COV = torch.tensor([[0.375, 0.125], [0.125, 0.375]], dtype=torch.float64)


def _batch(n, d=2, seed=0):
    return torch.randn(n, d, dtype=torch.float64, generator=torch.Generator().manual_seed(seed))


def _start(schedule, t, n=128):
    """A batch from the exact marginal q(x_t) of the Gaussian oracle at code index t."""
    ab = schedule.alpha_bar[t]
    lam, U = torch.linalg.eigh(COV)
    return ab.sqrt() * MEAN + ((_batch(n) @ U) * torch.sqrt(ab * lam + 1 - ab)) @ U.T


# ------------------------------------------------------------------ DDIM as an exponential integrator
@pytest.mark.parametrize("ab_s,ab_t", [(0.01, 0.02), (0.3, 0.9), (0.9, 0.9999), (0.5, 1.0), (1e-4, 1.0)])
def test_exp_integrator_step_is_ddim(ab_s, ab_t):
    x, eps = _batch(16, 5, 1), _batch(16, 5, 2)
    got = F.exp_integrator_step(x, eps, ab_s, ab_t)
    ref = samplers.ddim_step(x, eps, ab_s, ab_t, sigma_t=0.0)
    torch.testing.assert_close(got, ref, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("schedule", [linear_schedule(), cosine_schedule()], ids=["linear", "cosine"])
def test_sample_ddim_exp_equals_sample_ddim(schedule):
    model = oracles.Gaussian(MEAN, COV).eps_model(schedule)
    x = _batch(64)
    ts = uniform_timesteps(schedule.T, 7)
    got = F.sample_ddim_exp(model, x, ts, schedule=schedule)
    ref = samplers.sample_ddim(model, x, ts, schedule=schedule, eta=0.0)
    torch.testing.assert_close(got, ref, rtol=1e-10, atol=1e-10)


def test_log_snr_and_edm_sigma():
    ab = torch.tensor([1e-4, 0.2, 0.5, 0.99], dtype=torch.float64)
    torch.testing.assert_close(torch.exp(-F.log_snr(ab)), F.edm_sigma(ab))
    assert float(F.log_snr(0.5)) == 0.0
    assert math.isinf(float(F.log_snr(1.0))) and float(F.edm_sigma(1.0)) == 0.0


# ------------------------------------------------------------------ DPM-Solver++ 2M and Heun, one step
def test_dpmpp_first_step_is_ddim():
    # without a previous x0_hat the step is first order: DDIM written in x0_hat
    x, eps = _batch(8, 3, 3), _batch(8, 3, 4)
    x0 = (x - math.sqrt(1 - 0.3) * eps) / math.sqrt(0.3)
    got = F.dpmpp_2m_step(x, x0, None, None, 0.3, 0.6)
    torch.testing.assert_close(got, samplers.ddim_step(x, eps, 0.3, 0.6), rtol=1e-12, atol=1e-12)


def test_dpmpp_correction_weights():
    # D = (1 + 1/(2r)) x0 - 1/(2r) x0_last: with x0 = 1 and x0_last = 0 the step sees D = 1 + 1/(2r)
    x = torch.zeros(1, 1, dtype=torch.float64)
    one, zero = torch.ones_like(x), torch.zeros_like(x)
    ab_last, ab_s, ab_t = 0.2, 0.4, 0.7
    lam = [float(F.log_snr(a)) for a in (ab_last, ab_s, ab_t)]
    r = (lam[1] - lam[0]) / (lam[2] - lam[1])
    got = F.dpmpp_2m_step(x, one, zero, ab_last, ab_s, ab_t)
    coef = -math.sqrt(ab_t) * math.expm1(-(lam[2] - lam[1]))  # -alpha_t (e^{-h} - 1)
    assert float(got) == pytest.approx(coef * (1 + 1 / (2 * r)), rel=1e-12)


def test_dpmpp_last_step_returns_x0_hat():
    x, x0, x0_last = _batch(4, 3, 5), _batch(4, 3, 6), _batch(4, 3, 7)
    torch.testing.assert_close(F.dpmpp_2m_step(x, x0, x0_last, 0.5, 0.9, 1.0), x0)


def test_heun_euler_part_is_ddim():
    x, eps = _batch(8, 3, 8), _batch(8, 3, 9)
    got, nfe = F.heun_step(x, eps, 0.2, 0.5)  # no eps_fn: Euler only
    assert nfe == 0
    torch.testing.assert_close(got, samplers.ddim_step(x, eps, 0.2, 0.5), rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("steps", [1, 2, 5, 10])
def test_heun_nfe(steps):
    sch = linear_schedule()
    base = oracles.Gaussian(MEAN, COV).eps_model(sch)
    calls = []
    model = lambda x, t: calls.append(1) or base(x, t)  # noqa: E731
    F.sample_heun(model, _batch(4), uniform_timesteps(sch.T, steps), schedule=sch)
    assert len(calls) == F.heun_nfe(steps) == 2 * steps - 1


@pytest.mark.parametrize("sampler", [F.sample_ddim_exp, F.sample_dpmpp_2m])
def test_one_call_per_step(sampler):
    sch = linear_schedule()
    base = oracles.Gaussian(MEAN, COV).eps_model(sch)
    calls = []
    model = lambda x, t: calls.append(1) or base(x, t)  # noqa: E731
    sampler(model, _batch(4), uniform_timesteps(sch.T, 6), schedule=sch)
    assert len(calls) == 6


# ------------------------------------------------------------------ order of convergence on the oracle
def test_gaussian_flow_map_against_fine_solve():
    # the closed form against Heun with 800 steps (error ~1e-6, far below the 1e-4 tolerance)
    sch = cosine_schedule()
    x = _start(sch, 700, 32)
    model = oracles.Gaussian(MEAN, COV).eps_model(sch)
    seen = {}
    F.sample_heun(model, x, torch.arange(700, -1, -1), schedule=sch,
                  callback=lambda d: seen.__setitem__("x", d.x))
    exact = F.gaussian_flow_map(x, MEAN, COV, sch.alpha_bar[700], sch.alpha_bar[0])
    assert float((seen["x"] - exact).abs().max()) < 1e-4
    # and it moves samples of q_s to the covariance of q_t
    big = _start(sch, 700, 20000)
    moved = F.gaussian_flow_map(big, MEAN, COV, sch.alpha_bar[700], sch.alpha_bar[0])
    ab0 = sch.alpha_bar[0]
    torch.testing.assert_close(torch.cov(moved.T), ab0 * COV + (1 - ab0) * torch.eye(2, dtype=torch.float64),
                               rtol=0.05, atol=0.01)


STEPS = (8, 16, 32, 64)


@pytest.mark.parametrize("sampler,order", [(F.sample_ddim_exp, 1), (F.sample_dpmpp_2m, 2), (F.sample_heun, 2)],
                         ids=["ddim", "dpmpp_2m", "heun"])
def test_order_of_convergence(sampler, order):
    # From code index 700 of the cosine schedule (sigma_EDM ~ 2) to index 0; see convergence_errors
    # for why the error is read at the last grid point. A wrong coefficient in a second-order
    # method drops its slope to ~1, far outside the 0.2 tolerance.
    sch = cosine_schedule()
    model = oracles.Gaussian(MEAN, COV).eps_model(sch)
    errs = F.convergence_errors(sampler, model, _start(sch, 700), MEAN, COV, schedule=sch, steps=STEPS, start=700)
    p = F.fit_order(STEPS, errs)
    assert abs(p - order) < 0.2, (p, errs)
    assert errs[-1] < errs[0]


def test_fit_order_exact_power_law():
    assert F.fit_order([8, 16, 32], [1.0, 0.25, 0.0625]) == pytest.approx(2.0)


# ------------------------------------------------------------------ Analytic-DPM
def _optimal_variance_gaussian(ab, abp, cov):
    """E tr Cov[x_{n-1} | x_n] / d for Gaussian data, from Gaussian conditioning (independent of Gamma)."""
    d = cov.shape[0]
    beta = 1 - ab / abp
    beta_tilde = (1 - abp) / (1 - ab) * beta
    k = math.sqrt(abp) * beta / (1 - ab)  # weight of x0 in the posterior mean
    A = ab * cov + (1 - ab) * torch.eye(d, dtype=torch.float64)
    cov_x0 = cov - ab * cov @ torch.linalg.solve(A, cov)  # Cov[x0 | x_n]
    return beta_tilde + k**2 * torch.trace(cov_x0) / d


def _exact_gamma(ab, cov):
    d = cov.shape[0]
    A = ab * cov + (1 - ab) * torch.eye(d, dtype=torch.float64)
    return (1 - ab) * torch.trace(torch.linalg.inv(A)) / d  # E||E[eps|x]||^2 / d


@pytest.mark.parametrize("t,t_prev", [(999, 899), (500, 400), (100, 50), (10, 0), (600, 0)])
def test_analytic_variance_is_the_gaussian_optimum(t, t_prev):
    sch = linear_schedule()
    ab, abp = float(sch.alpha_bar[t]), float(sch.alpha_bar[t_prev])
    got = F.analytic_dpm_variance(ab, abp, _exact_gamma(ab, COV))
    ref = _optimal_variance_gaussian(ab, abp, COV)
    assert float(got) == pytest.approx(float(ref), rel=1e-10)


def test_analytic_variance_limits():
    sch = linear_schedule()
    ab, abp = float(sch.alpha_bar[500]), float(sch.alpha_bar[400])
    beta = 1 - ab / abp
    beta_tilde = (1 - abp) / (1 - ab) * beta
    # data a point mass at 0: eps_hat = x / sigma, Gamma = 1, and the optimum is beta_tilde
    assert float(F.analytic_dpm_variance(ab, abp, 1.0)) == pytest.approx(beta_tilde, rel=1e-12)
    # data N(0, I): Gamma = 1 - ab, and the optimum is beta (Ho et al. 2020, sec. 3.2)
    assert float(F.analytic_dpm_variance(ab, abp, 1 - ab)) == pytest.approx(beta, rel=1e-10)


def test_estimate_gamma_monte_carlo():
    sch = linear_schedule()
    g = oracles.Gaussian(MEAN, COV)
    ts = [999, 700, 300, 50, 0]
    gen = torch.Generator().manual_seed(0)
    est = F.estimate_gamma(g.eps_model(sch), g.sample(20000, generator=gen), ts, schedule=sch, generator=gen)
    ref = torch.stack([_exact_gamma(float(sch.alpha_bar[t]), COV) for t in ts])
    # relative std of the mean of ||eps_hat||^2/d is below 1/sqrt(20000) = 0.7 %: 3 % is > 4 std
    torch.testing.assert_close(est, ref, rtol=0.03, atol=0)


def test_analytic_sampler_keeps_the_marginal_when_skipping():
    # Isotropic Gaussian data: q(x_{n-1} | x_n) is Gaussian with a variance that does not depend on
    # x_n, so Analytic-DPM's kernel is exact and the marginal at every grid point is kept, also on
    # a 10-step subsequence. DDPM's beta_tilde / beta miss it by 56 % / 39 % at the last grid point.
    sch = linear_schedule()
    c = 0.25
    model = oracles.Gaussian(MEAN, c * torch.eye(2, dtype=torch.float64)).eps_model(sch)
    ts = uniform_timesteps(sch.T, 10)
    ab = sch.alpha_bar[ts]
    gamma = (1 - ab) / (ab * c + 1 - ab)
    gen = torch.Generator().manual_seed(0)
    x = ab[0].sqrt() * MEAN + torch.sqrt(ab[0] * c + 1 - ab[0]) * torch.randn(20000, 2, dtype=torch.float64,
                                                                              generator=gen)
    seen = []
    F.sample_analytic_dpm(model, x, ts, schedule=sch, gamma=gamma, generator=gen,
                          callback=lambda d: seen.append(d.x))
    for i in (5, 9):
        ratio = float(seen[i].var(0).mean() / (ab[i] * c + 1 - ab[i]))
        assert abs(ratio - 1) < 0.04, (i, ratio)  # sampling std of the variance ~0.7 %


def test_analytic_step_last_step_is_mean():
    x, eps = _batch(4, 3, 1), _batch(4, 3, 2)
    got = F.analytic_dpm_step(x, eps, 0.9, 1.0, 0.5)
    torch.testing.assert_close(got, samplers.ddpm_step(x, eps, 0.9, 1.0))


def test_pixel_variance_cap_moves_a_pixel_by_c_bins_on_average():
    # E|sigma z| = sigma sqrt(2/pi): at the cap of c bins (2/255 wide in [-1, 1]) the mean absolute noise is c bins,
    # checked by Monte Carlo (1e6 draws: relative SE of the mean |z| is 0.08 %)
    z = torch.randn(1_000_000, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    for c in (1, 2, 0.5):
        cap = F.pixel_variance_cap(c)
        mean_abs = float((math.sqrt(cap) * z).abs().mean())
        assert abs(mean_abs / (c * 2 / 255) - 1) < 0.004, (c, mean_abs)
    assert F.pixel_variance_cap(1, levels=2, data_range=1.0) == pytest.approx(math.pi / 2, rel=1e-15)
    for bad in (0, -1, float("nan")):
        with pytest.raises(ValueError, match="pixels must be a positive number"):
            F.pixel_variance_cap(bad)


def test_analytic_sampler_clips_only_the_last_noisy_step():
    # clip_pixels caps the variance of the step into timesteps[-1] and of no other step: with the same noise
    # draws, every step before it is the same, and that step's noise is the same z scaled by the capped std
    sch = linear_schedule()
    model = oracles.Gaussian(MEAN, COV).eps_model(sch)
    ts = uniform_timesteps(sch.T, 5)
    gamma = torch.full((5,), 0.2, dtype=torch.float64)
    x = _batch(64, 2, 3)
    runs = {}
    for clip in (None, 2):
        seen = []
        out = F.sample_analytic_dpm(model, x, ts, schedule=sch, gamma=gamma, generator=torch.Generator().manual_seed(1),
                                    clip_pixels=clip, callback=seen.append)
        runs[clip] = (out, seen)
    free, capped = runs[None][1], runs[2][1]
    cap = F.pixel_variance_cap(2)
    assert free[-2].noise_std**2 > 10 * cap and capped[-2].noise_std**2 == pytest.approx(cap, rel=1e-12)
    for i in range(3):
        assert capped[i].noise_std == free[i].noise_std
        torch.testing.assert_close(capped[i].x_next, free[i].x_next, rtol=0, atol=0)
    mean = samplers.ddpm_step(free[-2].x, free[-2].eps_hat, free[-2].alpha_bar_t, free[-2].alpha_bar_next,
                              variance="beta", noise=torch.zeros_like(x))
    z_free = (free[-2].x_next - mean) / free[-2].noise_std
    z_capped = (capped[-2].x_next - mean) / math.sqrt(cap)
    torch.testing.assert_close(z_capped, z_free, rtol=1e-9, atol=1e-9)
    assert capped[-1].noise_std == free[-1].noise_std == 0.0  # the decoder step: mean only in both


# ------------------------------------------------------------------ validation
def test_errors():
    sch = linear_schedule()
    model = oracles.Gaussian(MEAN, COV).eps_model(sch)
    x = _batch(4)
    with pytest.raises(ValueError, match="timesteps"):
        F.sample_dpmpp_2m(model, x, [10, 20], schedule=sch)
    with pytest.raises(ValueError, match="gamma must hold one value per timestep"):
        F.sample_analytic_dpm(model, x, [20, 10], schedule=sch, gamma=[0.5])
    with pytest.raises(ValueError, match="gamma"):
        F.analytic_dpm_variance(0.5, 0.6, -0.1)
    with pytest.raises(ValueError, match="lambda2"):
        F.analytic_dpm_variance(0.5, 0.6, 0.5, lambda2=0.9)
    with pytest.raises(ValueError, match="alpha_bar_t must not exceed alpha_bar_prev"):
        F.exp_integrator_step(x, x, 0.6, 0.5)
    with pytest.raises(ValueError, match="alpha_bar_last must be below"):
        F.dpmpp_2m_step(x, x, x, 0.5, 0.5, 0.6)
    with pytest.raises(ValueError, match="timesteps must be indices"):
        F.estimate_gamma(model, x, [1000], schedule=sch)
    with pytest.raises(ValueError, match="steps"):
        F.heun_nfe(0)
    with pytest.raises(ValueError, match="eps_hat"):
        F.exp_integrator_step(x, x[:, :1], 0.5, 0.6)
    with pytest.raises(ValueError, match="callback"):
        F.sample_heun(model, x, [5, 0], schedule=sch, callback=3)
    with pytest.raises(ValueError, match="steps and errors"):
        F.fit_order([8], [1.0])


def test_karras_timesteps_follow_the_rho_spacing():
    sched = linear_schedule(1000)
    for S in (1, 2, 5, 10, 50, 1000):
        ts = F.karras_timesteps(sched, S)
        assert ts.dtype == torch.long and ts.numel() == S and int(ts[0]) == 999
        assert bool((ts[1:] < ts[:-1]).all()) and (S == 1 or int(ts[-1]) == 0)
    # at few steps the indices are the nearest ones to the rho = 7 noise levels (EDM eq. 5)
    ts = F.karras_timesteps(sched, 5, t_max=800)
    sig = F.edm_sigma(sched.alpha_bar[ts])
    s_max, s_min = F.edm_sigma(sched.alpha_bar[800]), F.edm_sigma(sched.alpha_bar[0])
    ramp = torch.linspace(0, 1, 5, dtype=torch.float64)
    target = (s_max ** (1 / 7) + ramp * (s_min ** (1 / 7) - s_max ** (1 / 7))) ** 7
    assert torch.allclose(sig.log(), target.log(), atol=0.02)
    # denser near the data than the uniform grid: more of its steps below sigma_EDM = 1
    uniform = torch.linspace(800, 0, 10).round().long()
    n_low = lambda t: int((F.edm_sigma(sched.alpha_bar[t]) < 1).sum())  # noqa: E731
    assert n_low(F.karras_timesteps(sched, 10, t_max=800)) > n_low(uniform)
    with pytest.raises(ValueError, match="t_max"):
        F.karras_timesteps(sched, 10, t_max=5)
    with pytest.raises(ValueError, match="rho"):
        F.karras_timesteps(sched, 10, rho=0.0)
    with pytest.raises(ValueError, match="steps"):
        F.karras_timesteps(sched, 1001)


def _respaced_point_set(steps=10, n=4000):
    """8-bit points (the bound needs 8-bit data), a 10-step respaced linear schedule, the exact model."""
    from diffnotes.schedules import respace

    grid = torch.arange(256, dtype=torch.float64) / 127.5 - 1.0
    pts = grid[torch.tensor([[20, 200, 90], [230, 40, 128], [128, 128, 10], [60, 250, 170]])]
    data = oracles.PointSet(pts)
    sch = respace(linear_schedule(1000), uniform_timesteps(1000, steps))
    x0 = data.sample(n, generator=torch.Generator().manual_seed(1))
    return data, sch, data.eps_model(sch), x0


def test_vlb_takes_a_variance_per_step_and_analytic_dpm_lowers_the_bound():
    """likelihood.vlb with sigma^2 given per step: the fixed choices' values give their bounds exactly; and
    Analytic-DPM's sigma*^2 (Bao et al. 2022, Theorem 1: with the exact Gamma it minimises each KL term
    over sigma^2, the mean fixed) gives a lower bound than beta and beta_tilde on the same x_t draws."""
    from diffnotes import likelihood as L

    data, sch, model, x0 = _respaced_point_set()
    bt = sch.beta_tilde.clone()
    bt[0] = bt[1]  # the decoder's variance of the fixed choices (see likelihood.fixed_log_variances)
    beta = sch.betas.clone()
    beta[0] = bt[1]

    def bound(variance):
        return L.vlb(model, x0, schedule=sch, variance=variance, unit="nats",
                     generator=torch.Generator().manual_seed(2))

    for name, values in (("beta_tilde", bt), ("beta", beta)):
        assert torch.allclose(bound(values)["total"], bound(name)["total"], rtol=1e-12, atol=0)
    gamma = F.estimate_gamma(model, data.sample(20000, generator=torch.Generator().manual_seed(3)),
                             torch.arange(sch.T), schedule=sch, generator=torch.Generator().manual_seed(4))
    ab = sch.alpha_bar
    ab_prev = torch.cat([torch.ones(1, dtype=torch.float64), ab[:-1]])
    star = F.analytic_dpm_variance(ab, ab_prev, gamma)
    star[0] = bt[1]  # the same decoder for all three: the theorem is about the steps n >= 2
    kl_star = bound(star)["terms"][:, 1:].sum(1)
    for name in ("beta_tilde", "beta"):
        diff = kl_star - bound(name)["terms"][:, 1:].sum(1)  # paired: the same x_t in both
        se = diff.std().item() / math.sqrt(diff.numel())
        assert diff.mean().item() < -5 * se, (name, diff.mean().item(), se)
    with pytest.raises(ValueError, match="one per step"):
        L.vlb(model, x0, schedule=sch, variance=star[1:])
    with pytest.raises(ValueError, match="positive, finite"):
        L.vlb(model, x0, schedule=sch, variance=torch.zeros(sch.T))

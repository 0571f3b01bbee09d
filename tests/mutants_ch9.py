"""Mutants for chapter 9 (fast samplers, Analytic-DPM): the package functions its checks rest on."""
import math

import torch

from mutation_harness import Mutant

NB = "09_fast_samplers"
APP = "appendix/09_fast_samplers_appendix"                             # measurements and Monte-Carlo checks
SETUP = ("c9a00003",)
DDIM_EQ = SETUP + ("c9a00013",)                                        # exp. integrator == ddim_step
TWO_M = SETUP + ("c9a00011", "c9a00013", "c9a00021", "c9a00025")       # 2M weights vs SymPy
HEUN_NFE = TWO_M + ("c9a00031",)                                       # Heun's Euler part, NFE = 2S - 1
ORDERS = SETUP + ("c9a00013", "c9a00041")                              # fitted orders on the oracle
MARGINAL = SETUP + ("c9a00013", "c9a00055")                            # Analytic-DPM keeps the marginal
APP_SETUP = ("a9a00001",)
ANALYTIC = APP_SETUP + ("c9a00053",)                                   # sigma*^2 and Gamma vs the oracle (appendix)
GRIDS = APP_SETUP + ("a9a00005", "518c768d", "7684a71a", "4ac5208b")   # the two grids on the shipped model (appendix)
CAP = APP_SETUP + ("a9a00005", "c9a00065", "a9a00009", "c07aa550", "c170746a", "b509eea6")  # the 2-bin cap's FID


def _no_limit_at_data(f):
    # forgets the h = inf limit on the step onto the data: sigma_t (e^h - 1) taken as 0 there
    def exp_integrator_step(x_s, eps_hat, alpha_bar_s, alpha_bar_t):
        if float(alpha_bar_t) >= 1.0:
            return x_s / math.sqrt(float(alpha_bar_s))
        return f(x_s, eps_hat, alpha_bar_s, alpha_bar_t)
    return exp_integrator_step


def _weight_one_over_r(f):
    # D = (1 + 1/r) x0 - (1/r) x0_last: the Taylor weight without the 1/2
    from diffnotes.fast_samplers import log_snr

    def dpmpp_2m_step(x_s, x0_hat, x0_hat_last, alpha_bar_last, alpha_bar_s, alpha_bar_t):
        if x0_hat_last is None or float(alpha_bar_t) >= 1.0:
            return f(x_s, x0_hat, x0_hat_last, alpha_bar_last, alpha_bar_s, alpha_bar_t)
        l_last, l_s, l_t = (float(log_snr(a)) for a in (alpha_bar_last, alpha_bar_s, alpha_bar_t))
        c = 1 / ((l_s - l_last) / (l_t - l_s))
        D = (1 + c) * x0_hat - c * x0_hat_last
        return f(x_s, D, None, None, alpha_bar_s, alpha_bar_t)
    return dpmpp_2m_step


def _corrector_slope_only(f):
    # the correction uses the slope at the predicted point alone instead of the average
    def heun_step(x_s, eps_hat, alpha_bar_s, alpha_bar_t, eps_fn=None):
        bad = None if eps_fn is None else (lambda y: 2 * eps_fn(y) - eps_hat)
        return f(x_s, eps_hat, alpha_bar_s, alpha_bar_t, bad)
    return heun_step


def _no_correction(f):
    # Euler only (DDIM): the correction is never taken
    return lambda x_s, eps_hat, alpha_bar_s, alpha_bar_t, eps_fn=None: f(x_s, eps_hat, alpha_bar_s, alpha_bar_t, None)


def _variance_without_lambda2(f):
    # sigma*^2 without its lambda_n^2 = beta_tilde term
    def analytic_dpm_variance(alpha_bar_t, alpha_bar_prev, gamma, lambda2=None):
        ab, abp = torch.as_tensor(alpha_bar_t, dtype=torch.float64), torch.as_tensor(alpha_bar_prev, dtype=torch.float64)
        beta_tilde = (1 - abp) / (1 - ab) * (1 - ab / abp)
        return f(alpha_bar_t, alpha_bar_prev, gamma, lambda2) - beta_tilde
    return analytic_dpm_variance


def _gamma_without_d(f):
    # E||eps_hat||^2 not divided by the dimension d
    return lambda model, x_0, timesteps, **kw: f(model, x_0, timesteps, **kw) * x_0[0].numel()


def _step_with_beta_tilde(f):
    # the Analytic-DPM step ignores sigma*^2 and draws with DDPM's beta_tilde
    def analytic_dpm_step(x_t, eps_hat, alpha_bar_t, alpha_bar_prev, gamma, *, generator=None, noise=None,
                          max_variance=None):
        from diffnotes import samplers
        return samplers.ddpm_step(x_t, eps_hat, alpha_bar_t, alpha_bar_prev, generator=generator, noise=noise)
    return analytic_dpm_step


def _ddim_every_other_step(f):
    # DDIM that drops every other timestep of its grid (half the steps it was asked for)
    def sample_ddim_exp(model, x, timesteps, **kw):
        ts = [int(t) for t in timesteps]
        return f(model, x, ts[::2] if ts[-1] == ts[::2][-1] else ts[::2] + ts[-1:], **kw)
    return sample_ddim_exp


def _half_gap_doubled(f):
    # the noise of FID counted twice: the largest gap between two halves, doubled
    return lambda name=None: 2 * f(name)


MUTANTS = [
    Mutant("ch9 exp_integrator_step: no limit at the data", NB, DDIM_EQ, "fast_samplers.exp_integrator_step",
           _no_limit_at_data),
    Mutant("ch9 dpmpp_2m_step: weight 1/r instead of 1/(2r)", NB, TWO_M, "fast_samplers.dpmpp_2m_step",
           _weight_one_over_r),
    Mutant("ch9 dpmpp_2m_step: weight 1/r, seen by the order", NB, ORDERS, "fast_samplers.dpmpp_2m_step",
           _weight_one_over_r),
    Mutant("ch9 heun_step: corrector uses one slope", NB, ORDERS, "fast_samplers.heun_step", _corrector_slope_only),
    Mutant("ch9 heun_step: no correction", NB, HEUN_NFE, "fast_samplers.heun_step", _no_correction),
    Mutant("ch9 analytic_dpm_variance: lambda^2 dropped", APP, ANALYTIC, "fast_samplers.analytic_dpm_variance",
           _variance_without_lambda2),
    Mutant("ch9 estimate_gamma: no 1/d", APP, ANALYTIC, "fast_samplers.estimate_gamma", _gamma_without_d),
    Mutant("ch9 analytic_dpm_step: beta_tilde variance", NB, MARGINAL, "fast_samplers.analytic_dpm_step",
           _step_with_beta_tilde),
    Mutant("ch9 sample_ddim_exp: every other timestep (Heun no longer the worst on rho = 7)", APP, GRIDS,
           "fast_samplers.sample_ddim_exp", _ddim_every_other_step),
    Mutant("ch9 fid_half_gap: doubled (the cap no longer loses to beta_tilde by more than the noise)", APP, CAP,
           "records.fid_half_gap", _half_gap_doubled),
]

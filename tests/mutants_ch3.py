"""Mutants for chapter 3 (DDIM): each breaks one function the chapter checks."""
import torch

from mutation_harness import Mutant

NB = "03_ddim"
# the lesson: its setup (imports, helpers, the shipped model) and the cells that hold the derivations
SETUP = ("212b0f5b",)
MARGINALS = "a8886496"             # section 1: the derivation of (k, m), d_km, and section 1's check table
D_SIGMA = "d335ac7e"               # section 2: eq. 16, sigma^2 = beta_tilde, ddim_sigma checked numerically
# the appendix: the same setup, then the lesson's derivation objects (d_km, d_sigma, gamma_t, covariances) and
# one check table per part
NB_APP = "appendix/03_ddim_appendix"
A_SETUP = ("a3a00002", "a3a00004")
A_MIXTURE = "a3a00011"             # the 2-D mixture oracle of part 4
# part 3: the 1-D data, the fits, the oracle's optimum, and Theorem 1 measured (J against L_gamma, nine models)
THEOREM_1 = ("4ef5a92c", "64394939", "8176bdc2", "1d3b65e3", "f208cf2f", "bea8338b")

def _f64(v):
    return torch.as_tensor(v, dtype=torch.float64)


def _sigma_without_outer_sqrt(f):
    def ddim_sigma(alpha_bar_t, alpha_bar_prev, eta):
        ab, abp = _f64(alpha_bar_t), _f64(alpha_bar_prev)
        return f(alpha_bar_t, alpha_bar_prev, eta) * torch.sqrt((1 - abp) / (1 - ab))  # ratio not square-rooted
    return ddim_sigma


def _sigma_eta_squared(f):
    def ddim_sigma(alpha_bar_t, alpha_bar_prev, eta):
        return f(alpha_bar_t, alpha_bar_prev, eta) * eta  # eta^2 sqrt(beta_tilde)
    return ddim_sigma


def _ddim_step(room_with_sigma=True, x0_sqrt=True):
    def mutate(f):
        from diffnotes._util import append_dims
        from diffnotes.forward import x0_from_eps

        def ddim_step(x_t, eps_hat, alpha_bar_t, alpha_bar_prev, *, sigma_t=0.0, generator=None, noise=None,
                      clip_x0=None):
            abp, sig = _f64(alpha_bar_prev), _f64(sigma_t)
            x0_hat = x0_from_eps(x_t, eps_hat, alpha_bar_t)
            room = 1 - abp - sig ** 2 if room_with_sigma else 1 - abp + 0 * sig
            c0 = torch.sqrt(abp) if x0_sqrt else abp
            out = append_dims(c0, x_t) * x0_hat + append_dims(torch.sqrt(room.clamp_min(0)), x_t) * eps_hat
            if bool((sig > 0).any()):
                z = noise if noise is not None else torch.randn(x_t.shape, generator=generator, dtype=x_t.dtype)
                out = out + append_dims(sig, x_t) * z
            return out
        return ddim_step
    return mutate


def _ddim_update_half_noise(f):
    def _ddim_update(x_t, eps_hat, alpha_bar_t, alpha_bar_prev, sigma_t, generator, noise, clip_x0):
        return f(x_t, eps_hat, alpha_bar_t, alpha_bar_prev, 0.5 * _f64(sigma_t), generator, noise, clip_x0)
    return _ddim_update


def _ddpm_step_beta(f):
    def ddpm_step(x_t, eps_hat, alpha_bar_t, alpha_bar_prev, *, variance="beta_tilde", generator=None, noise=None,
                  clip_x0=None):
        return f(x_t, eps_hat, alpha_bar_t, alpha_bar_prev, variance="beta", generator=generator, noise=noise,
                 clip_x0=clip_x0)
    return ddpm_step


def _respace_without_ratio(f):
    def respace(schedule, timesteps):
        from diffnotes.schedules import Schedule
        good = f(schedule, timesteps)
        return Schedule(1 - good.alpha_bar, original_t=good.original_t, name=good.name)  # betas = 1 - ab, no ratio
    return respace


def _eps_from_x0_sign(f):
    def eps_from_x0(x_t, x_0, alpha_bar_t):
        return -f(x_t, x_0, alpha_bar_t)
    return eps_from_x0


def _expectation_variance_two(f):
    def gaussian_expectation(expr, noises):
        import sympy as sp
        scaled = {n: sp.sqrt(2) * n for n in noises}  # every noise with variance 2 instead of 1
        return f(sp.sympify(expr).subs(scaled, simultaneous=True), noises)
    return gaussian_expectation


def _slerp_weights_swapped(f):
    def slerp(x0, x1, alpha):
        a = torch.as_tensor(alpha, dtype=x0.dtype)
        return f(x0, x1, 1 - a)  # runs from x1 to x0: the same midpoint, every other alpha mirrored
    return slerp


MUTANTS = [
    Mutant("ch3 ddim_sigma: (1-ab_prev)/(1-ab) not square-rooted", NB, (*SETUP, D_SIGMA),
           "samplers.ddim_sigma", _sigma_without_outer_sqrt, "ddim_sigma with (1-abp)/(1-ab) outside the root"),
    Mutant("ch3 ddim_sigma: eta squared", NB, (*SETUP, D_SIGMA),
           "samplers.ddim_sigma", _sigma_eta_squared, "ddim_sigma proportional to eta^2"),
    Mutant("ch3 ddim_step: direction term forgets sigma^2", NB, (*SETUP, MARGINALS, "74c01a9d"),
           "samplers.ddim_step", _ddim_step(room_with_sigma=False),
           "sqrt(1-abp) eps_hat instead of sqrt(1-abp-sigma^2)"),
    Mutant("ch3 ddim_step: x0 weight abar_prev without sqrt", NB, (*SETUP, MARGINALS, "74c01a9d"),
           "samplers.ddim_step", _ddim_step(x0_sqrt=False), "abp x0_hat instead of sqrt(abp) x0_hat"),
    Mutant("ch3 ddim_step on a random tau: direction term forgets sigma^2", NB_APP, (*A_SETUP, "aeefeede"),
           "samplers.ddim_step", _ddim_step(room_with_sigma=False), "the exact random-tau check must catch it"),
    Mutant("ch3 sample_ddim: half the noise", NB_APP, (*A_SETUP, "6767466c"),
           "samplers._ddim_update", _ddim_update_half_noise, "DDIM update adds sigma/2 z"),
    Mutant("ch3 ddpm_step: beta instead of beta_tilde", NB_APP, (*A_SETUP, "6767466c"),
           "samplers.ddpm_step", _ddpm_step_beta, "ddpm_step ignores variance='beta_tilde'"),
    Mutant("ch3 respace: betas 1 - abar instead of ratios", NB_APP, (*A_SETUP, A_MIXTURE, "902a026d"),
           "schedules.respace", _respace_without_ratio, "respaced betas without the ratio of alpha_bars"),
    Mutant("ch3 eps_from_x0: sign flipped (perfect model on random tau)", NB_APP, (*A_SETUP, "aeefeede"),
           "forward.eps_from_x0", _eps_from_x0_sign, "the perfect model's noise with the wrong sign"),
    Mutant("ch3 ddim_step: half the noise (Theorem 1 measured: J = L_gamma + C)", NB_APP, (*A_SETUP, *THEOREM_1),
           "samplers._ddim_update", _ddim_update_half_noise, "x_{t-1} drawn with sigma/2: J - L_gamma is no longer C"),
    Mutant("ch3 gaussian_expectation: noise variance 2 (one eps for both draws, 000_*.txt)", NB,
           (*SETUP, MARGINALS), "derive.algebra.gaussian_expectation", _expectation_variance_two,
           "E[eps^2] = 2: the one-eps variance is no longer (m sqrt(1-abar_t) + sigma)^2"),
    Mutant("ch3 slerp: weights swapped (the note's cos/sin formula on orthogonal pairs)", NB_APP,
           (*A_SETUP, "ca3e3967"), "samplers.slerp", _slerp_weights_swapped,
           "slerp(x0, x1, 1 - alpha): the midpoint checks pass, the comparison with z0 cos + z1 sin must not"),
]

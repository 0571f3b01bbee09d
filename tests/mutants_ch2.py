"""Mutants for chapter 2 (DDPM): each breaks one function the chapter checks."""
import math

import torch

from mutation_harness import Mutant

NB = "02_ddpm"
SETUP = "7a8e124b"
POSTERIOR = (SETUP, "19ace5ee")  # derive the posterior, check the package against it (lesson section 1)
# the checks that verify rather than teach live in the chapter's appendix notebook
NB_APP = "appendix/02_ddpm_appendix"
APP_SETUP = "a2a00001"  # the lesson's imports and schedules, and the section tables
APP_POSTERIOR = (APP_SETUP, "419053ba", "af360a09", "49824711")  # Gaussian conditioning and the Monte Carlo fits


def _ct_without_sqrt(f):
    def posterior_mean_coefs(alpha_bar_t, alpha_bar_prev, beta_t):
        c0, ct = f(alpha_bar_t, alpha_bar_prev, beta_t)
        b = torch.as_tensor(beta_t, dtype=torch.float64)
        return c0, ct * torch.sqrt(1 - b)  # (1 - beta) instead of sqrt(1 - beta) = sqrt(alpha_t)
    return posterior_mean_coefs


def _c0_index_shift(f):
    def posterior_mean_coefs(alpha_bar_t, alpha_bar_prev, beta_t):
        c0, ct = f(alpha_bar_t, alpha_bar_prev, beta_t)
        ab, abp = (torch.as_tensor(v, dtype=torch.float64) for v in (alpha_bar_t, alpha_bar_prev))
        return c0 * torch.sqrt(ab / abp), ct  # sqrt(alpha_bar_t) where sqrt(alpha_bar_{t-1}) belongs
    return posterior_mean_coefs


def _variance_is_beta(f):
    def posterior_variance(alpha_bar_t, alpha_bar_prev, beta_t):
        return torch.as_tensor(beta_t, dtype=torch.float64) + 0 * f(alpha_bar_t, alpha_bar_prev, beta_t)
    return posterior_variance


def _x0_from_eps_without_sqrt(f):
    def x0_from_eps(x_t, eps, alpha_bar_t):
        ab = torch.as_tensor(alpha_bar_t, dtype=x_t.dtype)
        return f(x_t, eps, alpha_bar_t) * torch.sqrt(ab) / ab  # divides by ab instead of sqrt(ab)
    return x0_from_eps


def _ddpm_variances_swapped(f):
    def _ddpm_update(x_t, eps_hat, ab, abp, variance, generator, noise, clip_x0):
        other = "beta" if variance == "beta_tilde" else "beta_tilde"
        return f(x_t, eps_hat, ab, abp, other, generator, noise, clip_x0)
    return _ddpm_update


def _decoder_scale(f):
    def decoder_nll(x_0, *, model_mean, model_log_variance, unit="bpd"):
        # decoder std 1.5 x too large (e.g. beta_1 used where beta_tilde_2 belongs)
        return f(x_0, model_mean=model_mean, model_log_variance=model_log_variance + 2 * math.log(1.5), unit=unit)
    return decoder_nll


MUTANTS = [
    Mutant("ch2 posterior_mean_coefs: c_t with (1-beta)", NB, POSTERIOR,
           "forward.posterior_mean_coefs", _ct_without_sqrt, "c_t = (1-beta)(1-ab_prev)/(1-ab)"),
    Mutant("ch2 posterior_mean_coefs: c_0 with alpha_bar_t", NB, POSTERIOR,
           "forward.posterior_mean_coefs", _c0_index_shift, "c_0 = sqrt(ab_t) beta / (1-ab_t)"),
    Mutant("ch2 posterior_variance: beta instead of beta_tilde", NB, POSTERIOR,
           "forward.posterior_variance", _variance_is_beta, "posterior_variance returns beta_t"),
    # the same three, caught by the appendix's second and third routes (Gaussian conditioning, Monte Carlo)
    Mutant("ch2 appendix posterior_mean_coefs: c_t with (1-beta)", NB_APP, APP_POSTERIOR,
           "forward.posterior_mean_coefs", _ct_without_sqrt, "c_t = (1-beta)(1-ab_prev)/(1-ab)"),
    Mutant("ch2 appendix posterior_mean_coefs: c_0 with alpha_bar_t", NB_APP, APP_POSTERIOR,
           "forward.posterior_mean_coefs", _c0_index_shift, "c_0 = sqrt(ab_t) beta / (1-ab_t)"),
    Mutant("ch2 appendix posterior_variance: beta instead of beta_tilde", NB_APP, APP_POSTERIOR,
           "forward.posterior_variance", _variance_is_beta, "posterior_variance returns beta_t"),
    Mutant("ch2 x0_from_eps: divides by alpha_bar", NB_APP, (APP_SETUP, "e3354b39", "529e5b5e"),
           "forward.x0_from_eps", _x0_from_eps_without_sqrt, "x0_from_eps divides by ab instead of sqrt(ab)"),
    Mutant("ch2 sample_ddpm: the two variances swapped", NB_APP, (APP_SETUP, "d4a247a6", "8f51d3a6", "e4c7a1f9", "d1b7e3a5"),
           "samplers._ddpm_update", _ddpm_variances_swapped, "DDPM step uses beta for beta_tilde and back"),
    Mutant("ch2 appendix sample_ddpm: variances swapped, against Algorithm 2 written out", NB_APP, (APP_SETUP, "26a5cc3f"),
           "samplers._ddpm_update", _ddpm_variances_swapped, "DDPM step uses beta for beta_tilde and back"),
    Mutant("ch2 decoder_nll: std 1.5x too large", NB_APP, (APP_SETUP, "eb09d3b6", "a7feaed7"),
           "likelihood.decoder_nll", _decoder_scale, "discretised decoder with a wrong scale"),
]

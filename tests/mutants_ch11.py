"""Mutants for chapter 11 (latent diffusion): each breaks one function of diffnotes.autoencoder that the chapter
checks, with a slip a reader could make."""
import math

import torch

from mutation_harness import Mutant

NB = "11_latent_diffusion"
SETUP = "c11000002"                       # imports, the shipped autoencoder and latent model
ELBO = ("c11000008", "c11000010")         # section 1: SymPy, then the package against torch.distributions / MC


def _kl_without_minus_one(f):
    def gaussian_kl(mu, logvar):
        return f(mu, logvar) + 0.5 * mu[0].numel()  # (mu^2 + s^2 - log s^2) / 2: the -1 forgotten
    return gaussian_kl


def _kl_with_sigma_for_variance(f):
    def gaussian_kl(mu, logvar):
        # sigma where sigma^2 belongs: (mu^2 + s - 1 - log s^2) / 2
        return f(mu, logvar) + 0.5 * (torch.exp(0.5 * logvar) - torch.exp(logvar)).flatten(1).sum(1)
    return gaussian_kl


def _distortion_without_half(f):
    def negative_elbo(x, x_hat, mu, logvar, *, sigma_x):
        out = dict(f(x, x_hat, mu, logvar, sigma_x=sigma_x))
        extra = (x - x_hat).pow(2).flatten(1).sum(1) / (2 * sigma_x**2)  # ||x - x_hat||^2 / sigma_x^2
        out["distortion"] = out["distortion"] + extra
        out["nelbo"] = out["nelbo"] + extra
        return out
    return negative_elbo


def _log_term_with_sigma(f):
    def negative_elbo(x, x_hat, mu, logvar, *, sigma_x):
        out = dict(f(x, x_hat, mu, logvar, sigma_x=sigma_x))
        d = x[0].numel()
        extra = -0.5 * d * math.log(sigma_x)  # log(2 pi sigma_x) where log(2 pi sigma_x^2) belongs
        out["distortion"] = out["distortion"] + extra
        out["nelbo"] = out["nelbo"] + extra
        return out
    return negative_elbo


def _m(name, cells, target, mutate, what):
    return Mutant(f"ch11 (11_latent) {name}", NB, (SETUP, *cells), f"autoencoder.{target}", mutate, what)


MUTANTS = [
    _m("gaussian_kl: no -1", ELBO, "gaussian_kl", _kl_without_minus_one, "(mu^2 + s^2 - log s^2) / 2"),
    _m("gaussian_kl: sigma for sigma^2", ELBO, "gaussian_kl", _kl_with_sigma_for_variance, "mu^2 + s - 1 - log s^2"),
    _m("negative_elbo: no 1/2", ELBO, "negative_elbo", _distortion_without_half, "||x - x_hat||^2 / sigma_x^2"),
    _m("negative_elbo: log sigma_x", ELBO, "negative_elbo", _log_term_with_sigma, "log(2 pi sigma_x)"),
]

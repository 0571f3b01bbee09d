"""Mutants for chapter 7 (evaluation: the Frechet distance and the TF1 resize)."""
import numpy as np

from mutation_harness import Mutant

NB = "07_evaluation"
SETUP = ("a7a00001",)   # the appendix's setup: imports, the helper show_aligned, one CheckTable per part
# the checks of the code against closed forms, the resize by hand and the Monte-Carlo table live in the appendix
NB_APP = "appendix/07_evaluation_appendix"
# fid.frechet_distance against closed forms (1-D and commuting 2-D, non-commuting 2-D, 64-D)
FRECHET = (*SETUP, "f087c334", "67141724", "4f4e4007")
# mean FD of two same-Gaussian samples against 2d/N + d(d+1)/(2(N-1)): a7a00007 simulates (as the lesson's
# e9f10b33), f6fa22c7 checks feature_statistics, 344a85ab checks the prediction
BIAS = (*SETUP, "a7a00007", "f6fa22c7", "344a85ab")
# fid.resize_bilinear_tf1 against the TF1 rule by hand
RESIZE = (*SETUP, "ab85bd0e", "0e9b9953")


def _fd_sqrt_dropped(f):
    def frechet_distance(mu1, sigma1, mu2, sigma2, *, method="sqrtm", eps=1e-6):
        m1, m2, s1, s2 = (np.asarray(a, dtype=np.float64) for a in (mu1, mu2, sigma1, sigma2))
        d = m1 - m2
        return float(d @ d + np.trace(s1) + np.trace(s2) - 2.0 * np.trace(s1 @ s2))  # tr(S1 S2), no square root
    return frechet_distance


def _fd_mean_sign(f):
    def frechet_distance(mu1, sigma1, mu2, sigma2, *, method="sqrtm", eps=1e-6):
        d = np.asarray(mu1, dtype=np.float64) - np.asarray(mu2, dtype=np.float64)
        return f(mu1, sigma1, mu2, sigma2, method=method, eps=eps) - 2.0 * float(d @ d)  # -|mu1 - mu2|^2
    return frechet_distance


def _fd_cross_factor(f):
    def frechet_distance(mu1, sigma1, mu2, sigma2, *, method="sqrtm", eps=1e-6):
        from diffnotes.fid import trace_sqrt_product
        return f(mu1, sigma1, mu2, sigma2, method=method, eps=eps) + trace_sqrt_product(
            np.asarray(sigma1, dtype=np.float64), np.asarray(sigma2, dtype=np.float64), method=method, eps=eps)
    return frechet_distance  # - tr(...) instead of - 2 tr(...)


def _trace_eigh_no_sqrt(f):
    def trace_sqrt_product(sigma1, sigma2, *, method="sqrtm", **kw):
        if method != "eigh":
            return f(sigma1, sigma2, method=method, **kw)
        from diffnotes.fid import _psd_sqrt
        s1, s2 = np.asarray(sigma1, dtype=np.float64), np.asarray(sigma2, dtype=np.float64)
        r1 = _psd_sqrt(s1, "sigma1", 1e-6)
        return float(np.clip(np.linalg.eigvalsh(r1 @ s2 @ r1), 0.0, None).sum())  # eigenvalues, not their roots
    return trace_sqrt_product


def _stats_biased_cov(f):
    def feature_statistics(features):
        mu, sigma = f(features)
        n = np.asarray(features).shape[0]
        return mu, sigma * (n - 1) / n  # 1/N instead of 1/(N-1)
    return feature_statistics


def _resize_half_pixel(f):
    def resize_bilinear_tf1(x, size=299):
        import torch.nn.functional as F
        return F.interpolate(x, size=(size, size), mode="bilinear", align_corners=False)  # half-pixel centres
    return resize_bilinear_tf1


# the lesson's two claims on the recorded FID rows (note 003's "DDIM needs only 5-20 steps, slightly worse")
RECORDED = ("083e5bdf", "09432df7")


def _recorded_fid(replace):
    """``records.measurements`` whose FID rows have ``replace`` = {row: row whose FID it takes}."""
    def mutate(f):
        def measurements(kind="fid", name=None):
            out = f(kind, name)
            if kind == "fid" and out is not None:
                out = {**out, "rows": {k: dict(v) for k, v in out["rows"].items()}}
                for row, source in replace.items():
                    out["rows"][row]["fid"] = out["rows"][source]["fid"]
            return out
        return measurements
    return mutate


MUTANTS = [
    Mutant("ch7 frechet_distance: sqrt dropped", NB_APP, FRECHET, "fid.frechet_distance", _fd_sqrt_dropped),
    Mutant("ch7 frechet_distance: sign of the mean term", NB_APP, FRECHET, "fid.frechet_distance", _fd_mean_sign),
    Mutant("ch7 frechet_distance: cross term factor 1", NB_APP, FRECHET, "fid.frechet_distance", _fd_cross_factor),
    Mutant("ch7 trace_sqrt_product(eigh): no sqrt", NB_APP, FRECHET, "fid.trace_sqrt_product", _trace_eigh_no_sqrt),
    Mutant("ch7 feature_statistics: biased covariance", NB_APP, BIAS, "fid.feature_statistics", _stats_biased_cov),
    Mutant("ch7 resize_bilinear_tf1: half-pixel centres", NB_APP, RESIZE, "fid.resize_bilinear_tf1", _resize_half_pixel),
    Mutant("ch7 recorded FID: DDIM-5 read as DDIM-20", NB, RECORDED, "records.measurements",
           _recorded_fid({"ddim_5": "ddim_20"})),
    Mutant("ch7 recorded FID: DDIM-20 read as DDIM-10", NB, RECORDED, "records.measurements",
           _recorded_fid({"ddim_20": "ddim_10"})),
]

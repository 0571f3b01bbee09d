"""Tests for diffnotes.data: CIFAR-10 reading/downloading (on fake files), the loader, eight_gaussians.

No network and no CIFAR-10: batch files are tiny fakes written to tmp_path, and downloads are
served by a local HTTP server on 127.0.0.1 (with HTTP Range support that can be switched off).
"""
from __future__ import annotations

import hashlib
import http.server
import io
import math
import os
import pickle
import tarfile
import threading
import urllib.error
import urllib.request
import warnings

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from diffnotes import data
from diffnotes.oracles import GaussianMixture

from conftest import FAKE_CIFAR_PER_BATCH as N_PER_BATCH, fake_cifar_row as _row, make_fake_cifar


def _close(a, b, rtol=1e-7, atol=1e-12):
    """assert_allclose for tensors (torch.testing's first call costs ~2 s of imports)."""
    np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=rtol, atol=atol)


# ---------------------------------------------------------------------------------------------
# fake cifar-10-batches-py (make_fake_cifar, in conftest.py)
# ---------------------------------------------------------------------------------------------
@pytest.fixture(autouse=True)
def _isolated_env(monkeypatch, tmp_path):
    """No test sees the user's cache or CIFAR-10, and none may reach the network."""
    monkeypatch.delenv("DIFFNOTES_CIFAR10", raising=False)
    monkeypatch.setenv("DIFFNOTES_DATA", str(tmp_path / "cache"))


def _data_warnings(rec):
    return [w for w in rec if issubclass(w.category, data.DataWarning)]


def test_read_folder_pixels_are_channel_major(tmp_path):
    folder = make_fake_cifar(tmp_path)
    with pytest.warns(data.DataWarning):
        x, y = data.load_cifar10(folder)
    assert x.shape == (5 * N_PER_BATCH, 3, 32, 32) and x.dtype == np.uint8
    assert y.shape == (5 * N_PER_BATCH,) and y.dtype == np.int64
    # image k, channel c, row i, column j is byte c*1024 + i*32 + j of row k
    k, c, i, j = np.meshgrid(np.arange(len(x)), np.arange(3), np.arange(32), np.arange(32), indexing="ij")
    np.testing.assert_array_equal(x, ((c * 1024 + i * 32 + j + 7 * k) % 256).astype(np.uint8))
    assert x[2, 1, 3, 4] == (1024 + 3 * 32 + 4 + 14) % 256  # one pixel by hand
    np.testing.assert_array_equal(y, np.arange(len(x)) % 10)  # batch 1 first, file order kept


@pytest.mark.parametrize("protocol", [0, 2, 4, 5])
def test_read_any_pickle_protocol(tmp_path, protocol):
    folder = make_fake_cifar(tmp_path, names=["test_batch"], protocol=protocol)
    with pytest.warns(data.DataWarning):
        x, y = data.load_cifar10(folder, split="test")
    np.testing.assert_array_equal(x[1].reshape(-1), _row(1))


def test_read_test_split(tmp_path):
    folder = make_fake_cifar(tmp_path)
    with pytest.warns(data.DataWarning):
        x, y = data.load_cifar10(folder, split="test")
    assert x.shape == (N_PER_BATCH, 3, 32, 32)
    np.testing.assert_array_equal(x[0].reshape(-1), _row(5 * N_PER_BATCH))


@pytest.mark.parametrize("how", ["arg-folder", "arg-parent", "env-folder", "env-parent", "cache"])
def test_folder_found_by_argument_env_var_or_cache(tmp_path, monkeypatch, how):
    parent = tmp_path / "cache" if how == "cache" else tmp_path / "somewhere"
    folder = make_fake_cifar(parent)
    root = None
    if how.startswith("arg"):
        root = folder if how == "arg-folder" else parent
    elif how.startswith("env"):
        monkeypatch.setenv("DIFFNOTES_CIFAR10", str(folder if how == "env-folder" else parent))
    assert data.find_cifar10(root) == folder
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", data.DataWarning)
        x, _ = data.load_cifar10(root)
    assert x.shape[0] == 5 * N_PER_BATCH


def test_md5_warning_fires_once_and_names_the_problem(tmp_path):
    folder = make_fake_cifar(tmp_path)
    with warnings.catch_warnings(record=True) as rec:
        warnings.simplefilter("always")
        data.load_cifar10(folder)
        data.load_cifar10(folder)
        data.load_cifar10(folder, split="test")
    dw = _data_warnings(rec)
    assert len(dw) == 1
    msg = str(dw[0].message)
    assert "md5" in msg and "data_batch_1" in msg and "NOT comparable" in msg and str(folder) in msg


def test_no_warning_when_md5_sums_match(tmp_path, monkeypatch):
    folder = make_fake_cifar(tmp_path)
    sums = {n: hashlib.md5((folder / n).read_bytes()).hexdigest() for n in data.CIFAR10_FILES_MD5}
    monkeypatch.setattr(data, "CIFAR10_FILES_MD5", sums)
    assert data.verify_cifar10(folder) == {n: True for n in sums}
    with warnings.catch_warnings():
        warnings.simplefilter("error", data.DataWarning)
        data.load_cifar10(folder)


def test_verify_reports_each_file(tmp_path):
    folder = make_fake_cifar(tmp_path, names=["data_batch_1", "test_batch"])
    assert data.verify_cifar10(folder) == {"data_batch_1": False, "test_batch": False}


def test_missing_batch_file_is_reported(tmp_path):
    folder = make_fake_cifar(tmp_path, names=[f"data_batch_{i}" for i in range(1, 6)])  # train only
    with pytest.raises(data.DataNotFoundError, match="test_batch"):
        data.load_cifar10(folder, split="test")


def test_bad_split_and_bad_batch_contents(tmp_path):
    folder = make_fake_cifar(tmp_path)
    with pytest.raises(ValueError, match="split must be one of"):
        data.load_cifar10(folder, split="val")
    with open(folder / "data_batch_3", "wb") as f:
        pickle.dump({"data": np.zeros((2, 100), np.uint8), "labels": [0, 1]}, f)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", data.DataWarning)
        with pytest.raises(ValueError, match=r"'data' must be uint8 of shape \(n, 3072\)"):
            data.load_cifar10(folder)


class _Evil:
    def __reduce__(self):
        return (os.getcwd, ())  # harmless, but a pickle that calls a function


def test_batch_file_cannot_run_code(tmp_path):
    folder = make_fake_cifar(tmp_path)
    with open(folder / "data_batch_2", "wb") as f:
        pickle.dump({"data": _Evil(), "labels": []}, f)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", data.DataWarning)
        with pytest.raises(pickle.UnpicklingError, match="refusing to load"):
            data.load_cifar10(folder)


def test_not_found_says_where_to_put_the_files_and_never_downloads(tmp_path, monkeypatch):
    def no_network(*a, **k):  # pragma: no cover - must not be called
        raise AssertionError("download attempted without download=True")

    monkeypatch.setattr(urllib.request, "urlopen", no_network)
    with pytest.raises(data.DataNotFoundError) as exc:
        data.load_cifar10()
    msg = str(exc.value)
    assert str(tmp_path / "cache" / "cifar-10-batches-py") in msg
    assert "DIFFNOTES_CIFAR10" in msg and data.CIFAR10_URL in msg and "download=True" in msg


def test_env_var_pointing_nowhere_is_reported(tmp_path, monkeypatch):
    make_fake_cifar(tmp_path / "cache")  # present in the cache, but the variable wins
    monkeypatch.setenv("DIFFNOTES_CIFAR10", str(tmp_path / "typo"))
    with pytest.raises(data.DataNotFoundError, match=r"\$DIFFNOTES_CIFAR10: .*typo"):
        data.find_cifar10()


# ---------------------------------------------------------------------------------------------
# downloading: a local server with optional Range support
# ---------------------------------------------------------------------------------------------
class _Server:
    def __init__(self):
        self.files: dict[str, bytes] = {}
        self.honor_range = True
        self.cut_after = None  # send only this many body bytes, then drop the connection
        self.requests: list[dict] = []  # {"path", "range", "sent"}
        server = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def log_message(self, *a):
                pass

            def do_GET(self):
                body = server.files.get(self.path)
                rng = self.headers.get("Range")
                rec = {"path": self.path, "range": rng, "sent": 0}
                server.requests.append(rec)
                if body is None:
                    self.send_error(404)
                    return
                start = 0
                if rng and server.honor_range:
                    start = int(rng.removeprefix("bytes=").split("-")[0])
                    if start >= len(body):
                        self.send_response(416)
                        self.send_header("Content-Range", f"bytes */{len(body)}")
                        self.send_header("Content-Length", "0")
                        self.end_headers()
                        return
                    self.send_response(206)
                    self.send_header("Content-Range", f"bytes {start}-{len(body) - 1}/{len(body)}")
                else:
                    self.send_response(200)
                self.send_header("Content-Length", str(len(body) - start))
                self.end_headers()
                chunk = body[start:] if server.cut_after is None else body[start:start + server.cut_after]
                # recorded before writing: the client may finish reading (and the test assert)
                # before this thread runs again after the write
                rec["sent"] = len(chunk)
                self.wfile.write(chunk)
                self.close_connection = True

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.httpd.serve_forever, args=(0.05,), daemon=True)
        self.thread.start()

    def url(self, path):
        return f"http://127.0.0.1:{self.httpd.server_address[1]}{path}"


@pytest.fixture
def server():
    s = _Server()
    yield s
    s.httpd.shutdown()
    s.httpd.server_close()


def _md5(b: bytes) -> str:
    return hashlib.md5(b).hexdigest()


PAYLOAD = bytes(range(256)) * 40  # 10 240 bytes


def test_download_and_verify(tmp_path, server):
    server.files["/f.bin"] = PAYLOAD
    out = data.download_url(server.url("/f.bin"), tmp_path / "f.bin", md5=_md5(PAYLOAD),
                            progress=False, chunk_size=1000)
    assert out.read_bytes() == PAYLOAD and not (tmp_path / "f.bin.part").exists()
    assert [r["range"] for r in server.requests] == [None]
    # already there with the right md5: nothing is fetched
    data.download_url(server.url("/f.bin"), out, md5=_md5(PAYLOAD), progress=False)
    assert len(server.requests) == 1


def test_resume_with_range_request(tmp_path, server):
    server.files["/f.bin"] = PAYLOAD
    (tmp_path / "f.bin.part").write_bytes(PAYLOAD[:3000])
    out = data.download_url(server.url("/f.bin"), tmp_path / "f.bin", md5=_md5(PAYLOAD), progress=False)
    assert out.read_bytes() == PAYLOAD
    assert server.requests == [{"path": "/f.bin", "range": "bytes=3000-", "sent": len(PAYLOAD) - 3000}]


def test_interrupted_download_resumes_on_the_next_call(tmp_path, server):
    server.files["/f.bin"] = PAYLOAD
    server.cut_after = 4000  # the connection drops after 4000 bytes
    with pytest.raises(data.DataNotFoundError, match="next call resumes"):
        data.download_url(server.url("/f.bin"), tmp_path / "f.bin", md5=_md5(PAYLOAD), progress=False,
                          chunk_size=1000)
    assert (tmp_path / "f.bin.part").read_bytes() == PAYLOAD[:4000] and not (tmp_path / "f.bin").exists()
    server.cut_after = None
    out = data.download_url(server.url("/f.bin"), tmp_path / "f.bin", md5=_md5(PAYLOAD), progress=False)
    assert out.read_bytes() == PAYLOAD
    assert [(r["range"], r["sent"]) for r in server.requests] == [(None, 4000), ("bytes=4000-", len(PAYLOAD) - 4000)]


def test_server_ignoring_range_restarts_from_scratch(tmp_path, server):
    server.files["/f.bin"] = PAYLOAD
    server.honor_range = False
    (tmp_path / "f.bin.part").write_bytes(PAYLOAD[:3000])
    out = data.download_url(server.url("/f.bin"), tmp_path / "f.bin", md5=_md5(PAYLOAD), progress=False)
    assert out.read_bytes() == PAYLOAD  # not PAYLOAD[:3000] + PAYLOAD
    assert len(server.requests) == 1 and server.requests[0]["sent"] == len(PAYLOAD)


def test_complete_part_file_gets_416_and_is_accepted(tmp_path, server):
    server.files["/f.bin"] = PAYLOAD
    (tmp_path / "f.bin.part").write_bytes(PAYLOAD)
    out = data.download_url(server.url("/f.bin"), tmp_path / "f.bin", md5=_md5(PAYLOAD), progress=False)
    assert out.read_bytes() == PAYLOAD and server.requests[0]["sent"] == 0


def test_corrupt_partial_file_is_deleted_and_downloaded_again(tmp_path, server):
    server.files["/f.bin"] = PAYLOAD
    (tmp_path / "f.bin.part").write_bytes(b"\xff" * 3000)  # wrong bytes: resuming gives a bad md5
    with pytest.warns(data.DataWarning, match="downloading again from scratch"):
        out = data.download_url(server.url("/f.bin"), tmp_path / "f.bin", md5=_md5(PAYLOAD),
                                progress=False)
    assert out.read_bytes() == PAYLOAD
    assert [r["range"] for r in server.requests] == ["bytes=3000-", None]


def test_wrong_md5_twice_raises_and_leaves_nothing(tmp_path, server):
    server.files["/f.bin"] = PAYLOAD
    with pytest.warns(data.DataWarning):
        with pytest.raises(data.DataNotFoundError, match="md5"):
            data.download_url(server.url("/f.bin"), tmp_path / "f.bin", md5="0" * 32, progress=False)
    assert sorted(os.listdir(tmp_path)) == []
    assert len(server.requests) == 2


def test_existing_file_with_wrong_md5_is_replaced(tmp_path, server):
    server.files["/f.bin"] = PAYLOAD
    (tmp_path / "f.bin").write_bytes(b"old")
    with pytest.warns(data.DataWarning, match="deleting it"):
        out = data.download_url(server.url("/f.bin"), tmp_path / "f.bin", md5=_md5(PAYLOAD),
                                progress=False)
    assert out.read_bytes() == PAYLOAD


def _fake_archive(tmp_path) -> bytes:
    src = tmp_path / "src"
    make_fake_cifar(src)
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        tar.add(src / "cifar-10-batches-py", arcname="cifar-10-batches-py")
    return buf.getvalue()


def test_load_with_download_true_end_to_end(tmp_path, server, monkeypatch):
    archive = _fake_archive(tmp_path)
    server.files["/cifar.tgz"] = archive
    monkeypatch.setattr(data, "CIFAR10_URL", server.url("/cifar.tgz"))
    monkeypatch.setattr(data, "CIFAR10_MD5", _md5(archive))
    with pytest.raises(data.DataNotFoundError):  # no implicit download
        data.load_cifar10()
    assert server.requests == []
    with pytest.warns(data.DataWarning):
        x, y = data.load_cifar10(download=True, progress=False)
    assert x.shape == (5 * N_PER_BATCH, 3, 32, 32)
    np.testing.assert_array_equal(x[3].reshape(-1), _row(3))
    cache = tmp_path / "cache"
    assert (cache / "cifar-10-batches-py" / "test_batch").is_file()
    assert not any(p.name.startswith(".extract") for p in cache.iterdir())
    data.load_cifar10(download=True)  # found now: no second request
    assert len(server.requests) == 1


def test_no_network_error_says_where_to_put_the_files(tmp_path, monkeypatch):
    def offline(*a, **k):
        raise urllib.error.URLError("[Errno -3] Temporary failure in name resolution")

    monkeypatch.setattr(urllib.request, "urlopen", offline)
    with pytest.raises(data.DataNotFoundError) as exc:
        data.load_cifar10(download=True, progress=False)
    msg = str(exc.value)
    cache = tmp_path / "cache"
    assert "name resolution" in msg
    assert str(cache / "cifar-10-batches-py") in msg and str(cache / "cifar-10-python.tar.gz") in msg
    assert "DIFFNOTES_CIFAR10" in msg and data.CIFAR10_URL in msg


def test_archive_placed_by_hand_is_used_offline(tmp_path, monkeypatch):
    archive = _fake_archive(tmp_path)
    cache = tmp_path / "cache"
    cache.mkdir()
    (cache / "cifar-10-python.tar.gz").write_bytes(archive)
    monkeypatch.setattr(data, "CIFAR10_MD5", _md5(archive))
    monkeypatch.setattr(urllib.request, "urlopen", lambda *a, **k: pytest.fail("went online"))
    with pytest.warns(data.DataWarning):
        x, _ = data.load_cifar10(download=True, progress=False)
    assert x.shape[0] == 5 * N_PER_BATCH


@pytest.mark.parametrize("kind", ["dotdot", "absolute", "symlink"])
def test_extract_refuses_path_traversal(tmp_path, kind):
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        info = tarfile.TarInfo("ok/file.txt")
        info.size = 2
        tar.addfile(info, io.BytesIO(b"hi"))
        if kind == "symlink":
            bad = tarfile.TarInfo("ok/link")
            bad.type, bad.linkname = tarfile.SYMTYPE, "/etc/passwd"
            tar.addfile(bad)
        else:
            bad = tarfile.TarInfo("../evil.txt" if kind == "dotdot" else str(tmp_path / "evil.txt"))
            bad.size = 4
            tar.addfile(bad, io.BytesIO(b"evil"))
    arc = tmp_path / "a.tgz"
    arc.write_bytes(buf.getvalue())
    dest = tmp_path / "dest"
    with pytest.raises(ValueError, match="refusing to extract"):
        data.extract_tar(arc, dest)
    assert not (tmp_path / "evil.txt").exists() and list(dest.iterdir()) == []


# ---------------------------------------------------------------------------------------------
# pixels and the loader
# ---------------------------------------------------------------------------------------------
def test_to_float_to_uint8_roundtrip_exact():
    u = torch.arange(256, dtype=torch.uint8)
    x = data.to_float(u)
    assert x.dtype == torch.float32 and x.min() == -1 and x.max() == 1
    assert torch.equal(data.to_uint8(x), u)
    assert torch.equal(data.to_uint8(data.to_float(u, torch.float64)), u)
    assert torch.equal(data.to_uint8(data.to_float(u, torch.bfloat16)), u)


def test_to_uint8_quantises_and_rejects_nan():
    x = torch.tensor([-3.0, -1.0, -0.999, 0.0, 0.999, 1.0, 1.5])
    # 127.5 * (x + 1): -255, 0, 0.1275, 127.5, 254.87, 255, 318.75 -> round, clamp to [0, 255]
    assert data.to_uint8(x).tolist() == [0, 0, 0, 128, 255, 255, 255]
    with pytest.raises(ValueError, match="x must be finite"):
        data.to_uint8(torch.tensor([0.0, float("nan")]))
    with pytest.raises(ValueError, match="floating-point"):
        data.to_uint8(torch.tensor([1, 2]))
    with pytest.raises(ValueError, match="u must have dtype uint8"):
        data.to_float(torch.tensor([1.0]))


def _unique_images(n):
    """n images [1, 1, 2] with distinct (a, b), a != b, no image the mirror of another."""
    k = np.arange(n)
    a = k % 256
    b = (a + 1 + k // 256) % 256  # b - a in 1..16 (mod 256), mirrors have 240..255
    assert n <= 256 * 16
    return torch.from_numpy(np.stack([a, b], 1).astype(np.uint8).reshape(n, 1, 1, 2))


def _identify(batch, images):
    """For each output, (index of its source image, whether it was mirrored)."""
    u = data.to_uint8(batch).reshape(-1, 2).tolist()
    table = {tuple(r): i for i, r in enumerate(images.reshape(-1, 2).tolist())}
    out = []
    for a, b in u:
        if (a, b) in table:
            out.append((table[(a, b)], False))
        else:
            out.append((table[(b, a)], True))  # KeyError if neither: the loader invented pixels
    return out


def test_loader_epoch_is_a_permutation_with_fair_exact_flips():
    n, bs = 4000, 500
    images = _unique_images(n)
    loader = data.ImageLoader(images, bs, seed=3)
    seen, flips = [], 0
    for x in loader:
        assert x.shape == (bs, 1, 1, 2) and x.dtype == torch.float32
        assert x.min() >= -1 and x.max() <= 1
        for i, f in _identify(x, images):
            seen.append(i)
            flips += f
    assert sorted(seen) == list(range(n))  # each image exactly once per epoch
    # flips ~ Binomial(n, 1/2): standard error sqrt(n/4) = 31.6; allow 4 SE
    assert abs(flips - n / 2) < 4 * math.sqrt(n / 4)
    assert len(loader) == n // bs and loader.state_dict()["epoch"] == 0


def test_loader_flip_is_exact_mirror_on_real_shaped_images():
    g = torch.Generator().manual_seed(0)
    images = torch.randint(0, 256, (16, 3, 8, 8), dtype=torch.uint8, generator=g)
    loader = data.ImageLoader(images, 16, seed=1)
    x = next(iter(loader))
    ref = data.to_float(images)
    n_flipped = 0
    for xi in x:
        match = [k for k in range(16) if torch.equal(xi, ref[k])]
        mirror = [k for k in range(16) if torch.equal(xi, ref[k].flip(-1))]
        assert len(match) + len(mirror) == 1
        n_flipped += len(mirror)
    assert 0 < n_flipped < 16  # P(all or none flipped) = 2 * 2^-16 for this pinned seed's draw
    noflip = data.ImageLoader(images, 16, seed=1, flip=False)
    assert all(any(torch.equal(xi, r) for r in ref) for xi in next(iter(noflip)))


def _take(loader, k):
    return [loader.next_batch() for _ in range(k)]


def test_loader_reproducible_from_generator():
    images = _unique_images(50)
    a = data.ImageLoader(images, 8, generator=torch.Generator().manual_seed(7))
    b = data.ImageLoader(images, 8, generator=torch.Generator().manual_seed(7))
    c = data.ImageLoader(images, 8, generator=torch.Generator().manual_seed(8))
    xa, xb, xc = _take(a, 9), _take(b, 9), _take(c, 9)
    assert all(torch.equal(p, q) for p, q in zip(xa, xb))
    assert not all(torch.equal(p, q) for p, q in zip(xa, xc))
    assert a.state_dict()["seed"] == b.state_dict()["seed"]


def test_loader_resume_continues_the_same_sequence():
    images = _unique_images(50)  # 6 batches of 8 per epoch (2 dropped)
    ref = data.ImageLoader(images, 8, seed=11)
    full = _take(ref, 20)  # crosses three epoch boundaries
    run = data.ImageLoader(images, 8, seed=11)
    _take(run, 7)
    state = run.state_dict()
    assert state == {"seed": 11, "epoch": 1, "position": 8}
    resumed = data.ImageLoader(images, 8, seed=999)
    resumed.load_state_dict(state)
    rest = _take(resumed, 13)
    assert all(torch.equal(p, q) for p, q in zip(full[7:], rest))
    # epochs differ in order (not the same permutation every epoch)
    assert not torch.equal(full[0], full[6])


def test_loader_iteration_protocol_and_drop_last():
    images = _unique_images(10)
    loader = data.ImageLoader(images, 4, seed=0, drop_last=False)
    sizes = [x.shape[0] for x in loader]
    assert sizes == [4, 4, 2] and len(loader) == 3
    ep1 = [i for x in loader for i, _ in _identify(x, images)]  # the next epoch
    assert sorted(ep1) == list(range(10)) and loader.epoch == 1
    with pytest.raises(ValueError, match="batch_size must be an integer in"):
        data.ImageLoader(images, 11)
    with pytest.raises(ValueError, match=r"images must be a uint8 \(or float\) tensor"):
        data.ImageLoader(images.int(), 2)   # float images (latents) are taken as they are; integers are not bytes
    with pytest.raises(ValueError, match="either seed or generator"):
        data.ImageLoader(images, 2, seed=1, generator=torch.Generator())


# ---------------------------------------------------------------------------------------------
# the 2-D oracle of chapter 2
# ---------------------------------------------------------------------------------------------
def test_eight_gaussians_is_an_exact_oracle():
    gm = data.eight_gaussians(radius=2.0, std=0.1)
    assert isinstance(gm, GaussianMixture)
    _close(gm.means.norm(dim=1), torch.full((8,), 2.0, dtype=torch.float64))
    _close(gm.mean, torch.zeros(2, dtype=torch.float64), atol=1e-12, rtol=0)
    # covariance: r^2 E[(cos a, sin a)(cos a, sin a)^T] + std^2 I = (r^2 / 2 + std^2) I
    _close(gm.covariance, (2.0 + 0.01) * torch.eye(2, dtype=torch.float64))
    with pytest.raises(ValueError, match="std must lie in"):
        data.eight_gaussians(std=0.0)


@settings(deadline=None, max_examples=20)
@given(r=st.floats(0.1, 10.0), s=st.floats(0.01, 2.0))
def test_eight_gaussians_covariance_property(r, s):
    gm = data.eight_gaussians(radius=r, std=s)
    _close(gm.covariance, (r * r / 2 + s * s) * torch.eye(2, dtype=torch.float64))


# ---------------------------------------------------------------------------------------------
# saving
# ---------------------------------------------------------------------------------------------
def test_make_grid_layout_exact():
    imgs = torch.stack([torch.full((3, 2, 3), 10 * (k + 1), dtype=torch.uint8) for k in range(5)])
    g = data.make_grid(imgs, nrow=2, padding=1, pad_value=255)
    assert g.shape == (3, 3 * (2 + 1) + 1, 2 * (3 + 1) + 1) and g.dtype == np.uint8
    for k in range(5):
        r, c = divmod(k, 2)
        assert (g[:, 1 + 3 * r:3 + 3 * r, 1 + 4 * c:4 + 4 * c] == 10 * (k + 1)).all()
    assert (g[:, 0, :] == 255).all() and (g[:, :, 0] == 255).all()
    assert (g[:, 7:9, 5:8] == 255).all()  # the empty sixth slot


def test_save_grid_png_and_npz_roundtrip(tmp_path):
    from PIL import Image

    imgs = torch.randint(0, 256, (6, 3, 4, 4), dtype=torch.uint8, generator=torch.Generator().manual_seed(0))
    p = data.save_grid_png(imgs, tmp_path / "sub" / "grid.png", nrow=3)
    back = np.asarray(Image.open(p))
    np.testing.assert_array_equal(back, data.make_grid(imgs, 3).transpose(1, 2, 0))
    q = data.save_npz(tmp_path / "s.npz", imgs, labels=np.arange(6))
    z = np.load(q)
    np.testing.assert_array_equal(z["images"], imgs.numpy())
    np.testing.assert_array_equal(z["labels"], np.arange(6))
    assert sorted(os.listdir(tmp_path)) == ["s.npz", "sub"]  # no temporary files left
    with pytest.raises(ValueError, match="to_uint8"):
        data.save_grid_png(imgs.float(), tmp_path / "g.png")


def test_image_loader_labels_follow_their_images():
    """next_labeled_batch gives the same image sequence as next_batch, each with its own label."""
    images = torch.arange(10, dtype=torch.uint8).reshape(10, 1, 1, 1).expand(10, 3, 2, 2).contiguous() * 20
    labels = torch.arange(10) % 4
    a = data.ImageLoader(images, 3, seed=1, flip=False, labels=labels)
    b = data.ImageLoader(images, 3, seed=1, flip=False)
    for _ in range(7):  # across epoch boundaries
        x, y = a.next_labeled_batch()
        assert torch.equal(x, b.next_batch())
        index = torch.round((x[:, 0, 0, 0] + 1) * 127.5 / 20).long()  # which image each row is
        assert torch.equal(y, labels[index])
    with pytest.raises(ValueError, match="no labels"):
        b.next_labeled_batch()
    with pytest.raises(ValueError, match="one per image"):
        data.ImageLoader(images, 3, labels=labels[:5])

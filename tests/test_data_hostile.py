"""Hostile files and arguments for ``refreg.data`` and ``refreg.mnist`` (audit findings F09-F11).

A damaged MNIST-5k CSV or MNIST IDX file, and every loader argument that is NaN, infinite, negative, of the
wrong type or huge, raises ``ValueError``/``TypeError`` naming the file or argument, the value and what was
expected, before any large allocation.
"""

from __future__ import annotations

import functools
import gzip
import math
import sys
import tracemalloc
import zlib

import numpy as np
import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from refreg import data, mnist

# ------------------------------------------------------------------------------------------- MNIST-5k CSV
_PACKAGE = "refreg_fake_mnist5k"
_ZEROS = ",".join(["0"] * 784)


def _rows() -> list[str]:
    """A well-formed stand-in for the CSV: 5,000 blank images, 500 of each class."""
    return [f"{_ZEROS},{i % 10}" for i in range(5000)]


def _csv(rows: list[str]) -> bytes:
    return gzip.compress(("\n".join(rows) + "\n").encode(), 1)


@pytest.fixture
def fake_mnist5k(tmp_path, monkeypatch):
    """Point ``mnist5k()`` at ``m.csv.gz`` in a throwaway package; returns a function writing its bytes."""
    (tmp_path / _PACKAGE).mkdir()
    (tmp_path / _PACKAGE / "__init__.py").write_text("")
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.delitem(sys.modules, _PACKAGE, raising=False)
    monkeypatch.setattr(mnist, "MNIST5K_RESOURCE", (_PACKAGE, "m.csv.gz"))

    def write(payload: bytes) -> None:
        (tmp_path / _PACKAGE / "m.csv.gz").write_bytes(payload)
        mnist._mnist5k_raw.cache_clear()

    yield write
    mnist._mnist5k_raw.cache_clear()  # the next caller reads the real file again


def _edit(row: int, column: int, value: str) -> bytes:
    rows = _rows()
    fields = rows[row].split(",")
    fields[column] = value
    rows[row] = ",".join(fields)
    return _csv(rows)


def _drop(row: int, column: int) -> bytes:
    rows = _rows()
    fields = rows[row].split(",")
    del fields[column]
    rows[row] = ",".join(fields)
    return _csv(rows)


@functools.cache
def _full() -> bytes:
    return _csv(_rows())


# payloads are built when a case runs, not when the module is collected
DAMAGED_CSV = {
    "truncated gzip": (
        lambda: _full()[: len(_full()) // 2],
        r"not a readable gzip file \(EOFError",
    ),
    "not gzip": (lambda: b"not gzip at all", r"not a readable gzip file \(BadGzipFile"),
    "corrupt deflate stream": (
        lambda: _full()[:20] + bytes(range(256)) * 4,
        "not a readable gzip file",
    ),
    "pixel 999": (
        lambda: _edit(7, 1, "999"),
        r"row 8, column 2: pixel 999, expected an integer 0\.\.255",
    ),
    "label 42": (lambda: _edit(7, 784, "42"), r"row 8: label 42, expected a digit 0\.\.9"),
    "label changed to another class": (
        lambda: _edit(7, 784, "8"),
        r"\[500, 500, 500, 500, 500, 500, 500, 499, 501, 500\] images of classes 0\.\.9, "
        "expected 500 of each",
    ),
    "negative pixel": (
        lambda: _edit(7, 1, "-1"),
        r"has the byte b'-' on line 8, expected only digits",
    ),
    "float pixel": (lambda: _edit(7, 1, "1.5"), r"has the byte b'\.' on line 8"),
    "text": (lambda: _edit(7, 1, "abc"), r"has the byte b'a' on line 8"),
    "non-ASCII": (
        lambda: _csv([*_rows()[:7], "é", *_rows()[8:]]),
        r"has the byte b'\\xc3' on line 8",
    ),
    "empty field": (lambda: _edit(7, 1, ""), r"row 8, column 2: '', expected an integer 0\.\.255"),
    "huge number": (
        lambda: _edit(7, 1, "9" * 30),
        r"row 8, column 2: '9{20}', expected an integer",
    ),
    "short row": (
        lambda: _drop(7, 1),
        r"row 8 has 784 values, expected 785 \(784 pixels, then the label\)",
    ),
    "every row short": (
        lambda: _csv([r.split(",", 1)[1] for r in _rows()]),
        r"has 784 values per row, expected 785",
    ),
    "4,999 rows": (lambda: _csv(_rows()[:-1]), r"has 4999 rows, expected 5000 \(one per image\)"),
    "empty": (lambda: gzip.compress(b""), r"has 0 rows, expected 5000"),
}


@pytest.mark.parametrize("case", sorted(DAMAGED_CSV))
def test_a_damaged_mnist5k_csv_is_a_value_error_naming_file_and_place(fake_mnist5k, case):
    payload, match = DAMAGED_CSV[case]
    fake_mnist5k(payload())
    with pytest.raises(ValueError, match=rf"m\.csv\.gz'.*{match}"):
        mnist.mnist5k()


def test_the_stand_in_csv_itself_loads(fake_mnist5k):
    fake_mnist5k(_full())
    ds = mnist.mnist5k(normalize=False)
    assert ds.x_train.shape == (3500, 784) and ds.x_train.max() == 0.0


def test_mnist5k_decompresses_at_most_its_cap(fake_mnist5k):
    comp = zlib.compressobj(1, zlib.DEFLATED, 31)  # wbits 31: gzip container
    chunk = b"7" * 2**20
    fake_mnist5k(b"".join([comp.compress(chunk) for _ in range(128)] + [comp.flush()]))
    tracemalloc.start()
    try:
        with pytest.raises(ValueError, match=r"decompresses to more than 33554432 bytes"):
            mnist.mnist5k()
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 2 * 2**25  # the old reader inflated all 128 MiB (and decoded it again)


# ------------------------------------------------------------------------------------------- MNIST IDX
def _idx(path, array: np.ndarray) -> None:
    magic = 2051 if array.ndim == 3 else 2049
    header = magic.to_bytes(4, "big") + b"".join(int(s).to_bytes(4, "big") for s in array.shape)
    path.write_bytes(header + array.astype(np.uint8).tobytes())


def _fake_mnist(folder, train_images=None, train_labels=None, test_images=None, test_labels=None):
    arrays = {
        "train_images": np.zeros((4, 28, 28)) if train_images is None else train_images,
        "train_labels": np.array([0, 1, 2, 3]) if train_labels is None else train_labels,
        "test_images": np.zeros((2, 28, 28)) if test_images is None else test_images,
        "test_labels": np.array([4, 9]) if test_labels is None else test_labels,
    }
    for key, stem in mnist.MNIST_FILES.items():
        _idx(folder / stem, arrays[key])


@given(
    split=st.sampled_from(["train", "test"]),
    where=st.integers(0, 1),
    label=st.integers(10, 255),
)
@example(split="train", where=0, label=200)  # the audit's file: returned unchanged before the fix
def test_mnist_labels_outside_0_to_9_are_a_value_error(tmp_path_factory, split, where, label):
    folder = tmp_path_factory.mktemp("mnist")
    labels = np.array([0, 1, 2, 3]) if split == "train" else np.array([4, 9])
    labels[where] = label
    _fake_mnist(folder, **{f"{split}_labels": labels})
    stem = mnist.MNIST_FILES[f"{split}_labels"]
    with pytest.raises(
        ValueError, match=rf"{stem}' has label {label} at index {where} .*expected digits 0\.\.9"
    ):
        mnist.mnist(folder)


@given(
    split=st.sampled_from(["train", "test"]),
    height=st.integers(1, 40),
    width=st.integers(1, 40),
)
@example(split="test", height=20, width=20)  # the audit's file: x_test (n, 400) next to (n, 784)
def test_mnist_images_other_than_28x28_are_a_value_error(tmp_path_factory, split, height, width):
    if (height, width) == (28, 28):
        return
    folder = tmp_path_factory.mktemp("mnist")
    n = 4 if split == "train" else 2
    _fake_mnist(folder, **{f"{split}_images": np.zeros((n, height, width))})
    stem = mnist.MNIST_FILES[f"{split}_images"]
    with pytest.raises(
        ValueError, match=rf"{stem}' holds images of {height}×{width} pixels, expected 28×28"
    ):
        mnist.mnist(folder)


def test_read_idx_of_a_directory_is_a_value_error_naming_it(tmp_path):
    with pytest.raises(
        ValueError, match=rf"path '{tmp_path}' is a directory, expected an IDX file"
    ):
        mnist.read_idx(tmp_path)
    (tmp_path / "x.gz").mkdir()
    with pytest.raises(ValueError, match=r"x\.gz' is a directory"):
        mnist.read_idx(tmp_path / "x.gz")


@pytest.mark.parametrize("bad", [None, 3, [b"x"]], ids=repr)
def test_paths_of_a_wrong_type_are_a_type_error_naming_path(bad):
    with pytest.raises(TypeError, match=r"path must be a str or os\.PathLike"):
        mnist.read_idx(bad)
    with pytest.raises(TypeError, match=r"path must be a str or os\.PathLike"):
        mnist.mnist(bad)


# ------------------------------------------------------------------------------------------- arguments
@given(n_x=st.integers(1, 40), n_y=st.integers(1, 40))
def test_subset_needs_one_row_of_x_per_label(n_x, n_y):
    x, y = np.zeros((n_x, 2)), np.arange(n_y) % 2
    if n_x == n_y:
        if n_y >= 2:
            assert data.subset(x, y, 1)[0].shape == (2, 2)
        return
    with pytest.raises(
        ValueError, match=rf"x has {n_x} rows, y has {n_y} labels"
    ):  # was IndexError, or a silent pick of the first rows
        data.subset(x, y, 1)


def test_subset_labels_must_be_a_1d_integer_array():
    with pytest.raises(TypeError, match="y must hold integer class labels, got dtype float64"):
        data.subset(np.zeros((4, 2)), np.array([0.0, 0.0, np.nan, np.nan]), 1)
    with pytest.raises(ValueError, match=r"y must be a 1-d array of labels, got shape \(2, 2\)"):
        data.subset(np.zeros((4, 2)), np.zeros((2, 2), int), 1)
    for x in (None, [[0.0], [1.0]]):
        with pytest.raises(TypeError, match="x must be an array with one row per label"):
            data.subset(x, np.zeros(2, int), 1)


def test_with_validation_needs_a_dataset():
    ds = data.Dataset(np.zeros((10, 2)), np.arange(10), np.zeros((3, 2)), np.arange(3))
    with pytest.raises(TypeError, match=r"ds must be a refreg\.data\.Dataset .*got tuple"):
        data.with_validation((1, 2, 3, 4), 5)  # was AttributeError
    split = data.with_validation(ds, 2)
    with pytest.raises(
        TypeError, match="got TrainValTest"
    ):  # its validation split would be dropped
        data.with_validation(split, 2)
    with pytest.raises(ValueError, match=r"ds\.x_train has shape \(10, 2\) and ds\.y_train \(9,\)"):
        data.with_validation(ds._replace(y_train=np.arange(9)), 2)
    with pytest.raises(
        TypeError, match=r"ds\.y_train must be an array with one row per sample, got list"
    ):
        data.with_validation(ds._replace(y_train=list(range(10))), 2)


@given(p=st.integers(407, 10**12))
@example(p=20_000)  # the audit's call: MemoryError for 116 TiB before the fix
def test_modular_addition_bounds_p_before_allocating(p):
    with pytest.raises(ValueError, match=rf"p={p}.*more than MAX_GENERATED_BYTES=1073741824"):
        data.modular_addition(p=p)


def test_modular_addition_bound_is_exact(monkeypatch):
    monkeypatch.setattr(data, "MAX_GENERATED_BYTES", 16 * 7**3)  # x of p=7 fits exactly
    assert data.modular_addition(p=7).x_train.shape[1] == 14
    with pytest.raises(ValueError, match=r"x of shape \(64, 16\) float64 would take 8192 bytes"):
        data.modular_addition(p=8)


@given(
    noise=st.one_of(
        st.just(math.nan),
        st.sampled_from([math.inf, -math.inf, -0.5, -1e-300, np.float64("nan")]),
        st.floats(max_value=-1e-300),
        st.floats(min_value=1e308, allow_infinity=True).filter(math.isinf),
    )
)
@example(noise=float("nan"))  # the audit's call: all-NaN targets before the fix
def test_teacher_student_noise_must_be_finite_and_nonnegative(noise):
    gen = np.random.default_rng(0)
    before = gen.bit_generator.state
    with pytest.raises(ValueError, match=r"noise must be finite and >= 0, got"):
        data.teacher_student(4, 4, noise=noise, rng=gen)
    assert gen.bit_generator.state == before  # nothing drawn


@pytest.mark.parametrize("noise", [True, "0.1", None, [0.1], 1j, np.array(0.1)], ids=repr)
def test_teacher_student_noise_must_be_a_real_number(noise):
    with pytest.raises(TypeError, match="noise must be a real number"):
        data.teacher_student(4, 4, noise=noise)


@pytest.mark.parametrize(
    "kwargs",
    [
        {"n_train": 10**12},
        {"n_test": 2**40},
        {"sizes": (10**5, 10**5, 1)},
        {"sizes": (8, 2**31, 1), "n_train": 1, "n_test": 1},
    ],
    ids=repr,
)
def test_teacher_student_sizes_are_bounded_before_allocating(kwargs):
    with pytest.raises(ValueError, match="more than MAX_GENERATED_BYTES"):
        data.teacher_student(**kwargs)


def test_minibatches_bounds_n_and_checks_drop_last():
    with pytest.raises(ValueError, match=r"minibatches\(n=1000000000000\).*MAX_GENERATED_BYTES"):
        next(data.minibatches(10**12, 10, rng=0))
    with pytest.raises(TypeError, match="drop_last must be a bool, got str 'yes'"):
        next(data.minibatches(10, 3, rng=0, drop_last="yes"))


def test_flags_must_be_bools():
    with pytest.raises(TypeError, match="normalize must be a bool, got str 'no'"):
        mnist.mnist5k(normalize="no")  # "no" is truthy: it used to standardize
    with pytest.raises(TypeError, match="normalize must be a bool, got NoneType"):
        mnist.mnist("/nonexistent", normalize=None)
    pytest.importorskip("sklearn")
    with pytest.raises(TypeError, match="standardize must be a bool, got int 0"):
        data.digits(standardize=0)

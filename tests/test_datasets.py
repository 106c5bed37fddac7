"""golden.datasets: the IDX reader, MNIST from its four files (mnist:DIR, MNIST's own split) and
CIFAR-shaped .npz files, through the library and `mlsnn train` / `mlsnn export`."""

import gzip
import json
import os
import struct

import numpy as np
import pytest

from flows import cli
from golden.datasets import (MNIST_FILES, _dataset_path, dataset_spec, load_dataset,
                             load_mnist_dataset, read_idx)
from golden.errors import MlsnnError
from golden.train import load_checkpoint

N_TRAIN, N_TEST = 20, 10
EXPECTED = ", ".join(MNIST_FILES)
#: The IDX spec's type codes, big-endian (spelt out here, independently of the reader's table).
TYPES = {0x08: ">u1", 0x09: ">i1", 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}


def idx_bytes(arr, code=0x08):
    """``arr`` in the IDX format, written here field by field (not through the reader)."""
    arr = np.asarray(arr)
    head = bytes([0, 0, code, arr.ndim]) + struct.pack(f">{arr.ndim}I", *arr.shape)
    return head + arr.astype(TYPES[code]).tobytes()


def write(path, data, gz=False):
    with (gzip.open if gz else open)(path, "wb") as f:
        f.write(data)
    return path


def mnist_arrays(seed=0):
    rng = np.random.default_rng(seed)
    x_tr = rng.integers(0, 256, (N_TRAIN, 28, 28), dtype=np.uint8)
    x_tr[0, 0, 0] = 255                         # the largest pixel sets in_bits and the scale
    y_tr = rng.permutation(np.arange(N_TRAIN) % 10).astype(np.uint8)
    x_te = rng.integers(0, 256, (N_TEST, 28, 28), dtype=np.uint8)
    y_te = rng.integers(0, 10, N_TEST, dtype=np.uint8)
    return x_tr, y_tr, x_te, y_te


def write_mnist(directory, arrays, gz=False, names=MNIST_FILES):
    os.makedirs(directory, exist_ok=True)
    for name, arr in zip(names, arrays):
        write(os.path.join(directory, name + (".gz" if gz else "")), idx_bytes(arr), gz)
    return str(directory)


def run_cli(capsys, argv):
    try:
        rc = cli.main([str(a) for a in argv])
    except SystemExit as e:
        rc = e.code
    out, err = capsys.readouterr()
    return rc, out, err


# -- the IDX reader --------------------------------------------------------------------------

@pytest.mark.parametrize("code", sorted(TYPES))
def test_read_idx_every_type(tmp_path, code):
    dtype = np.dtype(TYPES[code]).newbyteorder("=")
    info = np.finfo(dtype) if dtype.kind == "f" else np.iinfo(dtype)
    arr = np.array([[info.min, 0, 1], [7, -1 if dtype.kind != "u" else 200, info.max]],
                   dtype=dtype)
    got = read_idx(write(tmp_path / "a.idx", idx_bytes(arr, code)))
    assert got.dtype == dtype and got.shape == (2, 3)
    assert np.array_equal(got, arr)


def test_read_idx_gzip_whatever_the_name(tmp_path):
    arr = np.arange(24, dtype=np.int16).reshape(2, 3, 4) - 5
    got = read_idx(write(tmp_path / "plain-name", idx_bytes(arr, 0x0B), gz=True))
    assert got.dtype == np.int16 and np.array_equal(got, arr)


@pytest.mark.parametrize("data, message", [
    (b"\x00\x00", "truncated IDX file: 2 bytes, less than the 4-byte magic"),
    (b"\x01\x00\x08\x01\x00\x00\x00\x01\x07",
     "not an IDX file: its magic starts 0x01 0x00, not 0x00 0x00"),
    (b"\x00\x00\x0a\x01\x00\x00\x00\x01\x07",
     "unknown IDX type code 0x0a (expected one of 0x08, 0x09, 0x0b, 0x0c, 0x0d, 0x0e)"),
    (b"\x00\x00\x08\x03\x00\x00\x00\x02\x00\x00",
     "truncated IDX header: 3 dimensions need 16 bytes, the file has 10"),
    (b"\x00\x00\x08\x02\x00\x00\x00\x02\x00\x00\x00\x03\x01\x02\x03\x04\x05",
     "the IDX header says 2 x 3 uint8 (6 bytes of data), but the file has 5 bytes after the "
     "header"),
    (b"\x00\x00\x0c\x01\x00\x00\x00\x01\x00\x00\x00\x01\x00",
     "the IDX header says 1 int32 (4 bytes of data), but the file has 5 bytes after the header"),
    (b"\x1f\x8b\x08\x00garbage", "cannot read"),
])
def test_read_idx_errors(tmp_path, data, message):
    path = write(tmp_path / "bad-idx1-ubyte", data)
    with pytest.raises(MlsnnError) as e:
        read_idx(path)
    text = str(e.value)
    assert "\n" not in text
    if message == "cannot read":
        assert text.startswith(f"cannot read {path}: ")
    else:
        assert text == f"{path}: {message}"


# -- MNIST ------------------------------------------------------------------------------------

@pytest.mark.parametrize("gz", [False, True], ids=["plain", "gz"])
def test_load_mnist(tmp_path, gz):
    arrays = mnist_arrays()
    d = write_mnist(tmp_path / "mnist", arrays, gz)
    ds = load_dataset(f"mnist:{d}")
    x_tr, y_tr, x_te, y_te = arrays
    assert ds.name == "mnist" and ds.split_seed == 0
    assert ds.x_train.shape == (N_TRAIN, 1, 28, 28) and ds.x_test.shape == (N_TEST, 1, 28, 28)
    assert ds.x_train.dtype == np.int64 and ds.y_train.dtype == np.int64
    assert np.array_equal(ds.x_train[:, 0], x_tr) and np.array_equal(ds.y_train, y_tr)
    assert np.array_equal(ds.x_test[:, 0], x_te) and np.array_equal(ds.y_test, y_te)
    assert ds.input_shape == (1, 28, 28) and ds.num_classes == 10
    assert ds.in_bits == 8 and ds.input_scale == 1 / 256
    # the split is MNIST's own: the same with any split seed
    assert np.array_equal(load_dataset(f"mnist:{d}", split_seed=3).y_test, y_te)
    assert _dataset_path(f"mnist:{d}") == os.path.abspath(d)
    assert dataset_spec("mnist", os.path.abspath(d)) == f"mnist:{os.path.abspath(d)}"


def test_load_mnist_dotted_names(tmp_path):
    arrays = mnist_arrays(1)
    d = write_mnist(tmp_path / "m", arrays,
                    names=[n.replace("-idx", ".idx") for n in MNIST_FILES])
    ds = load_mnist_dataset(d)
    assert np.array_equal(ds.x_test[:, 0], arrays[2]) and np.array_equal(ds.y_train, arrays[1])


def test_dataset_spec_tells_a_numpy_directory_called_mnist(tmp_path):
    d = tmp_path / "mnist"
    d.mkdir()
    np.save(d / "x.npy", np.zeros((4, 3), np.uint8))
    assert dataset_spec("mnist", str(d)) == str(d)
    assert dataset_spec("my.npz", "/data/my.npz") == "/data/my.npz"
    assert dataset_spec("digits", "") == "digits"


def _bad(arrays, i, value):
    arrays = list(arrays)
    arrays[i] = value
    return arrays


@pytest.mark.parametrize("case", ["images-2d", "labels-2d", "count", "negative", "test-shape",
                                  "one-class", "truncated"])
def test_load_mnist_bad_files(tmp_path, case):
    arrays = mnist_arrays()
    d = str(tmp_path / "m")
    files = [os.path.join(d, n) for n in MNIST_FILES]
    if case == "images-2d":
        write_mnist(d, _bad(arrays, 0, arrays[0].reshape(N_TRAIN, 784)))
        message = f"{files[0]}: images must be 3-D [images, rows, columns], not 2-D (20, 784)"
    elif case == "labels-2d":
        write_mnist(d, _bad(arrays, 3, arrays[3].reshape(N_TEST, 1)))
        message = f"{files[3]}: labels must be 1-D [labels], not 2-D (10, 1)"
    elif case == "count":
        write_mnist(d, _bad(arrays, 1, arrays[1][:-1]))
        message = f"{files[1]} has 19 labels, but {files[0]} has 20 images"
    elif case == "negative":
        write_mnist(d, arrays)
        write(files[3], idx_bytes(np.array([-1] + [1] * (N_TEST - 1)), 0x09))
        message = (f"{files[3]} must be non-negative (unsigned integer labels), but its minimum "
                   f"is -1")
    elif case == "test-shape":
        write_mnist(d, _bad(arrays, 2, arrays[2][:, :14]))
        message = f"{files[2]} has samples of shape (1, 14, 28), but {files[0]} has (1, 28, 28)"
    elif case == "one-class":
        write_mnist(d, _bad(arrays, 1, np.full(N_TRAIN, 3)))
        message = f"{files[1]} must hold at least two classes, not 1"
    else:
        write_mnist(d, arrays)
        write(files[2], idx_bytes(arrays[2])[:-1])
        message = (f"{files[2]}: the IDX header says 10 x 28 x 28 uint8 (7840 bytes of data), "
                   f"but the file has 7839 bytes after the header")
    with pytest.raises(MlsnnError) as e:
        load_dataset(f"mnist:{d}")
    assert str(e.value) == message


def test_load_mnist_missing(tmp_path):
    d = str(tmp_path / "m")
    with pytest.raises(MlsnnError) as e:
        load_dataset(f"mnist:{d}")
    assert str(e.value) == f"MNIST directory {d} does not exist"
    write(tmp_path / "file", b"")
    with pytest.raises(MlsnnError) as e:
        load_dataset(f"mnist:{tmp_path / 'file'}")
    assert str(e.value) == f"MNIST directory {tmp_path / 'file'} is not a directory"
    write_mnist(d, mnist_arrays())
    os.remove(os.path.join(d, MNIST_FILES[1]))
    os.remove(os.path.join(d, MNIST_FILES[3]))
    with pytest.raises(MlsnnError) as e:
        load_dataset(f"mnist:{d}")
    assert str(e.value) == (f"MNIST directory {d} lacks train-labels-idx1-ubyte, "
                            f"t10k-labels-idx1-ubyte (it needs {EXPECTED}, each may end in .gz)")
    with pytest.raises(MlsnnError) as e:
        load_dataset("mnist:")
    assert str(e.value) == "dataset mnist: needs a directory: mnist:DIR"


# -- the command line: train and export round trip ---------------------------------------------

def test_cli_train_export_mnist(tmp_path, capsys):
    arrays = mnist_arrays()
    d = write_mnist(tmp_path / "mnist", arrays, gz=True)
    rc, out, err = run_cli(capsys, ["train", "--dataset", f"mnist:{d}", "--epochs", "1",
                                    "--hidden", "8", "-o", tmp_path / "m.pt", "--json"])
    assert rc == 0, err
    doc = json.loads(out)
    assert doc["n_train"] == N_TRAIN and doc["n_test"] == N_TEST
    cfg = load_checkpoint(tmp_path / "m.pt").config
    assert cfg.dataset == "mnist" and cfg.dataset_path == os.path.abspath(d)
    assert tuple(cfg.input_shape) == (1, 28, 28) and cfg.in_bits == 8
    rc, out, err = run_cli(capsys, ["export", tmp_path / "m.pt", "-o", tmp_path / "net",
                                    "--json"])
    assert rc == 0, err
    assert json.loads(out)["n_test"] == N_TEST
    inputs = np.load(tmp_path / "net" / "inputs.npz")
    assert np.array_equal(inputs["x"][:, 0], arrays[2]) and np.array_equal(inputs["y"], arrays[3])
    # a bad mnist:DIR is one error line
    rc, out, err = run_cli(capsys, ["train", "--dataset", f"mnist:{tmp_path / 'none'}",
                                    "-o", tmp_path / "n.pt"])
    assert rc not in (0, None) and "Traceback" not in err
    assert err.strip().splitlines() == [
        f"mlsnn train: error: MNIST directory {tmp_path / 'none'} does not exist"]


def test_cli_train_export_cifar_shaped_npz(tmp_path, capsys):
    rng = np.random.default_rng(2)
    x = rng.integers(0, 256, (40, 3, 32, 32), dtype=np.uint8)
    y = np.arange(40) % 4
    np.savez(tmp_path / "cifar.npz", x=x, y=y)
    rc, out, err = run_cli(capsys, ["train", "--arch", "cnn", "--dataset", tmp_path / "cifar.npz",
                                    "--epochs", "1", "--channels", "2", "--hidden", "8",
                                    "-o", tmp_path / "c.pt", "--json"])
    assert rc == 0, err
    doc = json.loads(out)
    assert doc["n_train"] == 30 and doc["n_test"] == 10
    cfg = load_checkpoint(tmp_path / "c.pt").config
    assert tuple(cfg.input_shape) == (3, 32, 32) and cfg.num_classes == 4 and cfg.in_bits == 8
    assert cfg.dataset == "cifar.npz"
    rc, out, err = run_cli(capsys, ["export", tmp_path / "c.pt", "-o", tmp_path / "net",
                                    "--json"])
    assert rc == 0, err
    assert np.load(tmp_path / "net" / "inputs.npz")["x"].shape == (10, 3, 32, 32)

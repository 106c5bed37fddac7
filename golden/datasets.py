"""Classification datasets of unsigned integer inputs, split into train and test.

:func:`load_dataset` takes a spec:

- ``"digits"``: scikit-learn's 8×8 digits, offline;
- ``"mnist:DIR"``: the four MNIST IDX files in ``DIR`` (plain or gzip-compressed), with MNIST's
  own train/test split (60,000 / 10,000), read by :func:`read_idx`;
- a path: a user's ``.npz`` file with arrays ``x`` and ``y`` or a directory with ``x.npy`` and
  ``y.npy`` (e.g. CIFAR-10 as ``x`` ``[n, 3, 32, 32]`` uint8), split stratified.

The spec is recorded in a checkpoint (``ModelConfig.dataset`` and ``dataset_path``, see
:func:`dataset_spec`) so that ``mlsnn export`` can reload the same test split.
"""

from __future__ import annotations

import gzip
import math
import os
import zipfile
import zlib
from dataclasses import dataclass

import numpy as np

from .errors import MlsnnError

__all__ = [
    "Dataset", "dataset_from_arrays", "dataset_from_split", "load_digits_dataset",
    "load_numpy_dataset", "read_idx", "load_mnist_dataset", "load_dataset", "dataset_spec",
]

MAX_IN_BITS = 16
MNIST_PREFIX = "mnist:"
MNIST_FILES = ("train-images-idx3-ubyte", "train-labels-idx1-ubyte", "t10k-images-idx3-ubyte",
               "t10k-labels-idx1-ubyte")
# IDX type codes (the third magic byte); every multi-byte type is big-endian.
IDX_TYPES = {0x08: np.dtype(">u1"), 0x09: np.dtype(">i1"), 0x0B: np.dtype(">i2"),
             0x0C: np.dtype(">i4"), 0x0D: np.dtype(">f4"), 0x0E: np.dtype(">f8")}


@dataclass(frozen=True, eq=False)
class Dataset:
    """A classification dataset of unsigned integer inputs, split into train and test.

    Members
    -------
    name : str
    x_train, x_test : numpy.ndarray
        Raw integer inputs (int64) ``[n, *input_shape]``.
    y_train, y_test : numpy.ndarray
        Labels (int64) in ``0..num_classes-1``.
    input_shape : tuple
        ``(F,)`` or ``(C, H, W)``.
    num_classes : int
    input_scale : float
        Float value of one input unit: ``2**-ceil(log2(max input))`` (1/16 for digits), so the
        largest input is at most 1.0.
    in_bits : int
        Bits of the largest input value.
    split_seed : int
    """

    name: str
    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    input_shape: tuple
    num_classes: int
    input_scale: float
    in_bits: int
    split_seed: int


def dataset_from_arrays(x, y, *, name="arrays", split_seed=0, test_fraction=0.25):
    """Validate ``x``, ``y`` and split them (stratified, ``split_seed``) into a :class:`Dataset`.

    ``x`` is ``[samples, features]``, ``[samples, height, width]`` (one channel) or
    ``[samples, channels, height, width]`` of non-negative integers (integer dtype or whole
    floats) below ``2**16``; ``y`` is ``[samples]`` of non-negative integer labels.

    Raises
    ------
    MlsnnError
        On bad shapes or values, naming the array.
    """
    from sklearn.model_selection import train_test_split

    x, y = _check_pair(x, y, "x", "y")
    n = x.shape[0]
    classes = np.unique(y)
    if len(classes) < 2:
        raise MlsnnError(f"y must hold at least two classes, not {len(classes)}")
    counts = np.bincount(y)
    rare = [int(c) for c in classes if counts[c] < 2]
    if rare:
        raise MlsnnError(f"every class needs at least two samples for a stratified split; "
                         f"class(es) {rare} have one")
    try:
        x_tr, x_te, y_tr, y_te = train_test_split(x, y, test_size=test_fraction, stratify=y,
                                                  random_state=split_seed)
    except ValueError as e:
        raise MlsnnError(f"cannot split {n} samples into train and test: {e}") from None
    return _dataset(name, x_tr, y_tr, x_te, y_te, split_seed)


def _check_pair(x, y, xname, yname):
    """``x``, ``y`` as int64 (``x`` with a channel axis if it is ``[n, h, w]``), after checking
    their shapes and values; errors name the arrays ``xname`` and ``yname``."""
    x, y = np.asarray(x), np.asarray(y)
    if x.ndim not in (2, 3, 4) or x.shape[0] == 0 or 0 in x.shape:
        raise MlsnnError(f"{xname} must have shape [samples, features], [samples, height, width] "
                         f"or [samples, channels, height, width], not {x.shape}")
    n = x.shape[0]
    if y.ndim != 1 or y.shape[0] != n:
        raise MlsnnError(f"{yname} must have shape [samples] = ({n},) to match {xname}, not "
                         f"{y.shape}")
    for arr, what, kind in ((x, xname, "inputs"), (y, yname, "labels")):
        if np.issubdtype(arr.dtype, np.floating):
            if not np.all(np.isfinite(arr)) or not np.all(arr == np.round(arr)):
                raise MlsnnError(f"{what} must hold whole numbers (unsigned integer {kind}), but "
                                 f"has fractions")
        elif not np.issubdtype(arr.dtype, np.integer) or arr.dtype == np.bool_:
            raise MlsnnError(f"{what} must hold integers, not {arr.dtype}")
        if arr.min() < 0:
            raise MlsnnError(f"{what} must be non-negative (unsigned integer {kind}), but its "
                             f"minimum is {arr.min()}")
    x, y = x.astype(np.int64), y.astype(np.int64)
    xmax = int(x.max())
    if xmax >= 1 << MAX_IN_BITS:
        raise MlsnnError(f"{xname} values must be below 2**{MAX_IN_BITS}, but the maximum is "
                         f"{xmax}")
    if x.ndim == 3:
        x = x[:, None]
    return x, y


def _dataset(name, x_train, y_train, x_test, y_test, split_seed):
    """A :class:`Dataset` of checked int64 arrays; the scale and in_bits come from the largest
    input of both splits."""
    xmax = max(int(x_train.max()), int(x_test.max()), 1)
    return Dataset(name=name, x_train=x_train, y_train=y_train, x_test=x_test, y_test=y_test,
                   input_shape=tuple(int(s) for s in x_train.shape[1:]),
                   num_classes=int(max(y_train.max(), y_test.max())) + 1,
                   input_scale=2.0 ** -math.ceil(math.log2(xmax)),
                   in_bits=xmax.bit_length(), split_seed=split_seed)


def dataset_from_split(x_train, y_train, x_test, y_test, *, name="arrays",
                       names=("x_train", "y_train", "x_test", "y_test")):
    """A :class:`Dataset` with a given train/test split (no shuffling; ``split_seed`` 0).

    The arrays take the shapes and values of :func:`dataset_from_arrays`; both inputs have the
    same sample shape, and the train labels hold at least two classes.

    Parameters
    ----------
    names : tuple of 4 str
        What error messages call the four arrays (e.g. the files they come from).

    Raises
    ------
    MlsnnError
        On bad shapes or values, naming the array.
    """
    x_train, y_train = _check_pair(x_train, y_train, names[0], names[1])
    x_test, y_test = _check_pair(x_test, y_test, names[2], names[3])
    if x_train.shape[1:] != x_test.shape[1:]:
        raise MlsnnError(f"{names[2]} has samples of shape {x_test.shape[1:]}, but {names[0]} "
                         f"has {x_train.shape[1:]}")
    classes = len(np.unique(y_train))
    if classes < 2:
        raise MlsnnError(f"{names[1]} must hold at least two classes, not {classes}")
    return _dataset(name, x_train, y_train, x_test, y_test, 0)


def load_digits_dataset(split_seed=0):
    """scikit-learn's digits (1,797 8×8 images, pixels 0..16), as ``[n, 1, 8, 8]``, 25 % test."""
    from sklearn.datasets import load_digits

    d = load_digits()
    return dataset_from_arrays(d.images.astype(np.int64), d.target, name="digits",
                               split_seed=split_seed)


def load_numpy_dataset(path, split_seed=0):
    """A user dataset: an ``.npz`` file with arrays ``x`` and ``y``, or a directory holding
    ``x.npy`` and ``y.npy`` (see :func:`dataset_from_arrays` for the shapes).

    Raises
    ------
    MlsnnError
        On a missing array or bad shapes. FileNotFoundError if ``path`` does not exist.
    """
    path = os.fspath(path)
    if os.path.isdir(path):
        arrays = {}
        for key in ("x", "y"):
            f = os.path.join(path, f"{key}.npy")
            if not os.path.isfile(f):
                raise MlsnnError(f"dataset directory {path} has no {key}.npy")
            try:
                arrays[key] = np.load(f, allow_pickle=False)
            except ValueError as e:
                raise MlsnnError(f"cannot read {f}: {e}") from None
    elif path.endswith(".npz"):
        if not os.path.exists(path):
            raise FileNotFoundError(2, "No such file or directory", path)
        try:
            # Opened here, not by numpy, which leaks the file when the archive is malformed.
            with open(path, "rb") as fh, np.load(fh, allow_pickle=False) as f:
                missing = [k for k in ("x", "y") if k not in f.files]
                if missing:
                    raise MlsnnError(f"{path} must hold arrays 'x' and 'y'; it lacks "
                                     f"{' and '.join(repr(k) for k in missing)} (it has "
                                     f"{', '.join(repr(k) for k in f.files) or 'none'})")
                arrays = {"x": f["x"], "y": f["y"]}
        except (ValueError, EOFError, zipfile.BadZipFile) as e:
            raise MlsnnError(f"cannot read {path}: not a readable .npz file ({e})") from None
    elif not os.path.exists(path):
        raise FileNotFoundError(2, "No such file or directory", path)
    else:
        raise MlsnnError(f"dataset {path} must be 'digits', mnist:DIR, an .npz file with arrays "
                         f"x and y, or a directory with x.npy and y.npy")
    name = os.path.basename(os.path.normpath(path))
    return dataset_from_arrays(arrays["x"], arrays["y"], name=name, split_seed=split_seed)


def read_idx(path):
    """One IDX file as a numpy array (native byte order), gzip-compressed or not.

    IDX (the format of MNIST): the magic ``0x00 0x00 <type> <ndims>``, then ``ndims`` big-endian
    uint32 sizes, then the data, big-endian, row-major. Type codes: 0x08 uint8, 0x09 int8,
    0x0B int16, 0x0C int32, 0x0D float32, 0x0E float64. A file starting with the gzip magic
    (``1f 8b``) is decompressed first, whatever its name.

    Raises
    ------
    MlsnnError
        Naming ``path``: unreadable, not gzip or IDX, an unknown type code, or data whose size
        does not match the header.
    """
    path = os.fspath(path)
    try:
        with open(path, "rb") as f:
            raw = f.read()
        if raw[:2] == b"\x1f\x8b":
            raw = gzip.decompress(raw)
    except (OSError, EOFError, zlib.error) as e:
        raise MlsnnError(f"cannot read {path}: {getattr(e, 'strerror', None) or e}") from None
    if len(raw) < 4:
        raise MlsnnError(f"{path}: truncated IDX file: {len(raw)} bytes, less than the 4-byte "
                         f"magic")
    if raw[0] != 0 or raw[1] != 0:
        raise MlsnnError(f"{path}: not an IDX file: its magic starts 0x{raw[0]:02x} "
                         f"0x{raw[1]:02x}, not 0x00 0x00")
    code, ndims = raw[2], raw[3]
    if code not in IDX_TYPES:
        raise MlsnnError(f"{path}: unknown IDX type code 0x{code:02x} (expected one of "
                         f"{', '.join(f'0x{c:02x}' for c in IDX_TYPES)})")
    head = 4 + 4 * ndims
    if len(raw) < head:
        raise MlsnnError(f"{path}: truncated IDX header: {ndims} dimensions need {head} bytes, "
                         f"the file has {len(raw)}")
    dims = tuple(int(d) for d in np.frombuffer(raw, ">u4", ndims, 4))
    dtype = IDX_TYPES[code]
    count = math.prod(dims)
    if len(raw) - head != count * dtype.itemsize:
        raise MlsnnError(f"{path}: the IDX header says {' x '.join(map(str, dims)) or 'a scalar'} "
                         f"{dtype.newbyteorder('=').name} ({count * dtype.itemsize} bytes of "
                         f"data), but the file has {len(raw) - head} bytes after the header")
    return np.frombuffer(raw, dtype, count, head).reshape(dims).astype(dtype.newbyteorder("="))


def _mnist_file(directory, base):
    """The path of MNIST file ``base`` in ``directory``: plain, ``.gz``, or with a dot before
    ``idx`` (``train-images.idx3-ubyte``), else ``None``."""
    dotted = base.replace("-idx", ".idx")
    for name in (base, base + ".gz", dotted, dotted + ".gz"):
        if os.path.isfile(os.path.join(directory, name)):
            return os.path.join(directory, name)
    return None


def load_mnist_dataset(directory):
    """MNIST from its four IDX files in ``directory``, with MNIST's own train/test split.

    ``directory`` holds ``train-images-idx3-ubyte``, ``train-labels-idx1-ubyte``,
    ``t10k-images-idx3-ubyte`` and ``t10k-labels-idx1-ubyte`` (each may be ``.gz``, or spelt
    ``train-images.idx3-ubyte``). Images ``[n, rows, columns]`` become ``[n, 1, rows, columns]``
    (pixels 0..255: ``in_bits`` 8, ``input_scale`` 1/256); labels are non-negative integers. The
    dataset is called ``"mnist"``; its ``split_seed`` is 0 (the split is fixed).

    Raises
    ------
    MlsnnError
        Naming the directory or file: a missing directory or file, a malformed IDX file
        (:func:`read_idx`), images that are not 3-D, labels that are not 1-D, or label and image
        counts that differ.
    """
    directory = os.fspath(directory)
    if not os.path.isdir(directory):
        what = "is not a directory" if os.path.exists(directory) else "does not exist"
        raise MlsnnError(f"MNIST directory {directory} {what}")
    paths = [_mnist_file(directory, base) for base in MNIST_FILES]
    missing = [base for base, p in zip(MNIST_FILES, paths) if p is None]
    if missing:
        raise MlsnnError(f"MNIST directory {directory} lacks {', '.join(missing)} (it needs "
                         f"{', '.join(MNIST_FILES)}, each may end in .gz)")
    arrays = []
    for i in (0, 2):
        images, labels = read_idx(paths[i]), read_idx(paths[i + 1])
        if images.ndim != 3:
            raise MlsnnError(f"{paths[i]}: images must be 3-D [images, rows, columns], not "
                             f"{images.ndim}-D {images.shape}")
        if labels.ndim != 1:
            raise MlsnnError(f"{paths[i + 1]}: labels must be 1-D [labels], not "
                             f"{labels.ndim}-D {labels.shape}")
        if len(labels) != len(images):
            raise MlsnnError(f"{paths[i + 1]} has {len(labels)} labels, but {paths[i]} has "
                             f"{len(images)} images")
        arrays += [images, labels]
    return dataset_from_split(*arrays, name="mnist", names=tuple(paths))


def load_dataset(spec="digits", split_seed=0):
    """``"digits"``, ``"mnist:DIR"`` (:func:`load_mnist_dataset`, which ignores
    ``split_seed``), a path (see :func:`load_numpy_dataset`), or a :class:`Dataset` as is."""
    if isinstance(spec, Dataset):
        return spec
    if spec == "digits":
        return load_digits_dataset(split_seed)
    if isinstance(spec, str) and spec.startswith(MNIST_PREFIX):
        if not spec[len(MNIST_PREFIX):]:
            raise MlsnnError("dataset mnist: needs a directory: mnist:DIR")
        return load_mnist_dataset(spec[len(MNIST_PREFIX):])
    if isinstance(spec, (str, os.PathLike)):
        return load_numpy_dataset(spec, split_seed)
    raise MlsnnError(f"dataset must be 'digits', 'mnist:DIR', a path or a Dataset, not "
                     f"{spec!r}")


def _dataset_path(spec):
    """The absolute path of a user dataset given by path (the directory of ``mnist:DIR``), else
    ``""``."""
    if isinstance(spec, str) and spec.startswith(MNIST_PREFIX):
        return os.path.abspath(spec[len(MNIST_PREFIX):])
    if isinstance(spec, (str, os.PathLike)) and spec != "digits":
        return os.path.abspath(os.fspath(spec))
    return ""


def dataset_spec(name, path):
    """The :func:`load_dataset` spec of a dataset recorded as ``name`` and ``path`` (a
    checkpoint's ``ModelConfig.dataset`` and ``dataset_path``): ``"digits"``, ``"mnist:PATH"``
    or ``PATH``.

    A directory of x.npy and y.npy that is itself called ``mnist`` is also recorded as ``mnist``;
    it is told apart by its x.npy.
    """
    if not path:
        return name
    if name == "mnist" and os.path.isdir(path) and not (
            os.path.basename(path) == "mnist" and os.path.isfile(os.path.join(path, "x.npy"))):
        return MNIST_PREFIX + path
    return path

"""Classification datasets of unsigned integer inputs, split into train and test.

``"digits"`` (scikit-learn's 8×8 digits), a user's ``.npz`` file with arrays ``x`` and ``y`` or a
directory with ``x.npy`` and ``y.npy``. :func:`load_dataset` takes any of these specs; the chosen
spec is recorded in a checkpoint (``ModelConfig.dataset`` and ``dataset_path``) so that
``mlsnn export`` can reload the same test split.
"""

from __future__ import annotations

import math
import os
import zipfile
from dataclasses import dataclass

import numpy as np

from .errors import MlsnnError

__all__ = [
    "Dataset", "dataset_from_arrays", "load_digits_dataset", "load_numpy_dataset", "load_dataset",
]

MAX_IN_BITS = 16


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

    x, y = np.asarray(x), np.asarray(y)
    if x.ndim not in (2, 3, 4) or x.shape[0] == 0 or 0 in x.shape:
        raise MlsnnError(f"x must have shape [samples, features], [samples, height, width] or "
                         f"[samples, channels, height, width], not {x.shape}")
    n = x.shape[0]
    if y.ndim != 1 or y.shape[0] != n:
        raise MlsnnError(f"y must have shape [samples] = ({n},) to match x, not {y.shape}")
    for arr, what in ((x, "x"), (y, "y")):
        if np.issubdtype(arr.dtype, np.floating):
            if not np.all(np.isfinite(arr)) or not np.all(arr == np.round(arr)):
                raise MlsnnError(f"{what} must hold whole numbers (unsigned integer "
                                 f"{'inputs' if what == 'x' else 'labels'}), but has fractions")
        elif not np.issubdtype(arr.dtype, np.integer) or arr.dtype == np.bool_:
            raise MlsnnError(f"{what} must hold integers, not {arr.dtype}")
        if arr.min() < 0:
            raise MlsnnError(f"{what} must be non-negative (unsigned integer "
                             f"{'inputs' if what == 'x' else 'labels'}), but its minimum is "
                             f"{arr.min()}")
    x, y = x.astype(np.int64), y.astype(np.int64)
    xmax = int(x.max())
    if xmax >= 1 << MAX_IN_BITS:
        raise MlsnnError(f"x values must be below 2**{MAX_IN_BITS}, but the maximum is {xmax}")
    if x.ndim == 3:
        x = x[:, None]
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
    return Dataset(name=name, x_train=x_tr, y_train=y_tr, x_test=x_te, y_test=y_te,
                   input_shape=tuple(int(s) for s in x.shape[1:]),
                   num_classes=int(y.max()) + 1,
                   input_scale=2.0 ** -math.ceil(math.log2(max(xmax, 1))),
                   in_bits=max(xmax, 1).bit_length(), split_seed=split_seed)


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
        raise MlsnnError(f"dataset {path} must be 'digits', an .npz file with arrays x and y, "
                         f"or a directory with x.npy and y.npy")
    name = os.path.basename(os.path.normpath(path))
    return dataset_from_arrays(arrays["x"], arrays["y"], name=name, split_seed=split_seed)


def load_dataset(spec="digits", split_seed=0):
    """``"digits"``, a path (see :func:`load_numpy_dataset`), or a :class:`Dataset` as is."""
    if isinstance(spec, Dataset):
        return spec
    if spec == "digits":
        return load_digits_dataset(split_seed)
    if isinstance(spec, (str, os.PathLike)):
        return load_numpy_dataset(spec, split_seed)
    raise MlsnnError(f"dataset must be 'digits', a path or a Dataset, not {spec!r}")


def _dataset_path(spec):
    """The absolute path of a user dataset given by path, else ``""``."""
    if isinstance(spec, (str, os.PathLike)) and spec != "digits":
        return os.path.abspath(os.fspath(spec))
    return ""

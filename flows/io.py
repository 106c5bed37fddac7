"""File helpers shared by the CLI commands: loading an IR and an inputs file with one-line
errors."""

import os

import numpy as np

from golden import ir
from golden.errors import MlsnnError


def load_network(path):
    """Load ``network.json`` (or a directory holding it); every failure is an MlsnnError."""
    if not os.path.exists(path):
        raise MlsnnError(f"network file not found: {path}")
    return ir.load(path)


def load_inputs(path, net=None, key="x"):
    """Load inputs ``[B, *shape]`` from an ``.npz`` (key ``x``) or ``.npy`` file, validated
    against ``net`` when given (shape, integers, range)."""
    if not os.path.exists(path):
        raise MlsnnError(f"inputs file not found: {path}")
    try:
        data = np.load(path, allow_pickle=False)
    except (ValueError, OSError, EOFError) as e:
        raise MlsnnError(f"{path}: not a readable .npz/.npy file ({e})") from None
    if isinstance(data, np.lib.npyio.NpzFile):
        with data:
            if key not in data.files:
                raise MlsnnError(f"{path}: no array '{key}' in the file (found: "
                                 f"{', '.join(data.files) or 'nothing'})")
            x = data[key]
    else:
        x = data
    if net is not None:
        x = net.check_inputs(x)
    return x


def save_inputs(path, x):
    np.savez(path, x=np.asarray(x))

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
    import zipfile
    # The file is opened here, not by numpy: numpy leaks it when the archive is malformed.
    with open(path, "rb") as f:
        try:
            data = np.load(f, allow_pickle=False)
            if isinstance(data, np.lib.npyio.NpzFile):
                with data:
                    if key not in data.files:
                        raise MlsnnError(f"{path}: no array '{key}' in the file (found: "
                                         f"{', '.join(data.files) or 'nothing'})")
                    x = data[key]
            else:
                x = data
        except (ValueError, OSError, EOFError, zipfile.BadZipFile) as e:
            raise MlsnnError(f"{path}: not a readable .npz/.npy file ({e})") from None
    if net is not None:
        x = net.check_inputs(x)
    if x.ndim == 0 or x.shape[0] == 0:
        raise MlsnnError(f"{path}: array '{key}' holds no images (shape {tuple(x.shape)})")
    return x


def save_inputs(path, x):
    np.savez(path, x=np.asarray(x))


#: Upper bound of every FIFO depth option (a deeper event FIFO is a typing error, and would
#: make elaboration and simulation crawl).
MAX_FIFO_DEPTH = 65536


def check_fifo_depth(depth, option="--fifo-depth"):
    """``None`` or an integer in ``[1, MAX_FIFO_DEPTH]``; else an MlsnnError naming ``option``."""
    if depth is not None and depth < 1:
        raise MlsnnError(f"{option} must be at least 1, not {depth}")
    if depth is not None and depth > MAX_FIFO_DEPTH:
        raise MlsnnError(f"{option} must be at most {MAX_FIFO_DEPTH}, not {depth}")
    return depth


def check_number(value, option, *, minimum=None, maximum=None, min_open=False,
                 max_open=False):
    """``None`` or a finite number within the bounds, else an MlsnnError naming ``option``."""
    if value is None:
        return None
    import math
    lo = "-inf" if minimum is None else f"{minimum:g}"
    hi = "inf" if maximum is None else f"{maximum:g}"
    span = f"{'(' if min_open or minimum is None else '['}{lo}, {hi}" \
           f"{')' if max_open or maximum is None else ']'}"
    ok = math.isfinite(value)
    if ok and minimum is not None:
        ok = value > minimum if min_open else value >= minimum
    if ok and maximum is not None:
        ok = value < maximum if max_open else value <= maximum
    if not ok:
        raise MlsnnError(f"{option} must be a finite number in {span}, not {value:g}")
    return value


def check_seed(seed, option="--seed", *, bits=63):
    """A seed in ``[0, 2**bits - 1]``."""
    if not 0 <= seed < (1 << bits):
        raise MlsnnError(f"{option} must be in [0, 2**{bits} - 1], not {seed}")
    return seed


def _first_missing(path):
    """The outermost ancestor of ``path`` (itself included) that does not exist, or None."""
    path = os.path.abspath(path)
    top = None
    while not os.path.lexists(path):
        top = path
        parent = os.path.dirname(path)
        if parent == path:
            break
        path = parent
    return top


def check_output_dir(path, option="-o"):
    """Make sure that ``path`` is (or can be made) a writable directory, before any long work.

    Nothing is left behind: a directory created for the probe is removed again.
    """
    import shutil
    import tempfile
    if os.path.lexists(path) and not os.path.isdir(path):
        raise MlsnnError(f"{option} {path}: exists and is not a directory")
    created = _first_missing(path)
    try:
        os.makedirs(path, exist_ok=True)
        fd, probe = tempfile.mkstemp(prefix=".mlsnn-probe-", dir=path)
        os.close(fd)
        os.remove(probe)
    except OSError as e:
        raise MlsnnError(f"{option} {path}: cannot write into this directory "
                         f"({e.strerror or e})") from None
    finally:
        if created is not None and os.path.isdir(created):
            shutil.rmtree(created, ignore_errors=True)
    return path


def check_output_file(path, option="-o", *, make_parents=False):
    """Make sure that the file ``path`` can be written, before any long work.

    An existing regular file must be writable (it is not touched); a new one is created,
    written and flushed to the disk (so that a full device fails here), then removed. A path that
    exists but is not a regular file (a directory, a device such as /dev/full) is refused. With
    ``make_parents``, missing parent directories are allowed (the command creates them); the
    probe creates and removes them.
    """
    import shutil
    if os.path.isdir(path):
        raise MlsnnError(f"{option} {path}: is a directory, not a file")
    if os.path.lexists(path):
        if not os.path.isfile(path):
            raise MlsnnError(f"{option} {path}: not a regular file")
        if not os.access(path, os.W_OK):
            raise MlsnnError(f"{option} {path}: permission denied")
        return path
    parent = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(parent) and not make_parents:
        raise MlsnnError(f"{option} {path}: directory {parent} does not exist")
    created = _first_missing(parent)
    try:
        os.makedirs(parent, exist_ok=True)
        with open(path, "xb") as f:
            f.write(b"\0" * 4096)
            f.flush()
            os.fsync(f.fileno())
    except OSError as e:
        raise MlsnnError(f"{option} {path}: cannot write this file ({e.strerror or e})") \
            from None
    finally:
        if os.path.isfile(path):
            os.remove(path)
        if created is not None and os.path.isdir(created):
            shutil.rmtree(created, ignore_errors=True)
    return path


PIXELS_HELP = ("pixels per beat of the accelerator's pixels port, 1..n_in (default 1): an image "
               "loads in ceil(n_in/P) beats and each beat costs max(1, its non-zero pixels) "
               "cycles, so P = n_in makes an empty image cost only its EOTs (docs/hw-interfaces.md)")


def add_pixels_argument(parser):
    """The ``--pixels-per-beat`` option of the hardware commands."""
    parser.add_argument("--pixels-per-beat", type=int, default=1, metavar="P", help=PIXELS_HELP)


def check_pixels_per_beat(net, p):
    """``--pixels-per-beat`` for ``net``: 1 … n_in, else one :class:`MlsnnError` line."""
    n = net.input.size
    if not 1 <= p <= n:
        raise MlsnnError(f"--pixels-per-beat must be in 1..{n} (the input size), not {p}")
    return p


LANES_HELP = ("synaptic updates per cycle per layer (docs/lanes.md): L for every dense and "
              "conv2d layer (and every barrier join L suits: a power of two dividing its "
              "neurons), or LAYER=L[,LAYER=L...]; L must divide the layer's outputs (default: "
              "the IR's)")
FIRE_LANES_HELP = ("fire units per layer (docs/lanes.md, 'Fire lanes'): F for every layer whose "
                   "lanes F divides, or LAYER=F[,LAYER=F...]; each word of L lanes is swept as "
                   "L/F groups (default: the IR's, else F = L)")


def add_lanes_argument(parser):
    """The ``--lanes`` and ``--fire-lanes`` options of the hardware commands."""
    parser.add_argument("--lanes", default=None, metavar="L|LAYER=L,...", help=LANES_HELP)
    parser.add_argument("--fire-lanes", default=None, metavar="F|LAYER=F,...",
                        help=FIRE_LANES_HELP)


def _parse_plan(option, letter, text):
    """An int, or ``{layer: int}``, from ``--lanes`` / ``--fire-lanes`` text (``letter`` names
    the value in the messages). Every bad value is one :class:`MlsnnError` line."""
    text = text.strip()
    if "=" not in text:
        try:
            value = int(text)
        except ValueError:
            raise MlsnnError(f"{option} must be an integer or LAYER={letter} pairs, not "
                             f"{text!r}") from None
        if value < 1:
            raise MlsnnError(f"{option} must be >= 1, not {value}")
        return value
    plan = {}
    for item in text.split(","):
        name, _, value = item.partition("=")
        name = name.strip()
        try:
            value = int(value)
        except ValueError:
            raise MlsnnError(f"{option}: {item.strip()!r} is not LAYER={letter} with an "
                             f"integer {letter}") from None
        if not name or value < 1:
            raise MlsnnError(f"{option}: {item.strip()!r} is not LAYER={letter} with "
                             f"{letter} >= 1")
        plan[name] = value
    return plan


def apply_lanes(net, text, fire_text=None):
    """``net`` with the lanes of a ``--lanes`` value, then the fire units of a
    ``--fire-lanes`` value (``None``: unchanged). Every bad value is one :class:`MlsnnError`
    line."""
    if text is not None:
        plan = _parse_plan("--lanes", "L", text)
        if isinstance(plan, int):
            plan = {layer.name: plan for layer in net.layers if layer.kind == "dense"}
        net = net.with_lanes(plan)
    if fire_text is not None:
        net = net.with_fire_lanes(_parse_plan("--fire-lanes", "F", fire_text))
    return net

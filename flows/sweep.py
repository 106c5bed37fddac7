"""Design-space sweeps behind ``mlsnn sweep`` (docs/sweep.md).

A :class:`Grid` is the cartesian product of a few parameters: ``lanes`` (every dense layer, or
``lanes.<layer>``), ``fire_lanes``, ``levels`` N, ``timesteps`` T, ``w_bits``, and the hardware
variant (``discharge``, ``synapse``, ``pixels_per_beat``, ``weights``). A :class:`Sweep` turns
every grid point
into its own :class:`golden.ir.Network`, from an IR (:func:`derive_ir`: the rules below) or
from a trained model (:class:`ModelSource`: re-exported by :func:`golden.export.export` with
the point's N, T and W_BITS), and measures it (:func:`evaluate_point`):

- cycles per inference: the cycle model ``golden.cycles.network_cycles`` when it can be imported,
  else the RTL (:func:`cycles`); ``rtl_check`` points also run the RTL and compare;
- LUT / FF / BRAM / DSP and Fmax of the network top (:func:`flows.synth.synthesize_network`);
- energy per inference: the Lemaire model priced on the golden counters
  (:func:`golden.energy.compare.ir_report`, the ``exact`` source: the RTL's counters equal them);
- accuracy: golden predictions against the labels, when there are labels.

Points run in this process or on a ``dask.distributed`` cluster (:func:`flows.regress.
dask_client`). Every finished point is cached in ``DIR/points/<key>.json`` (``key``: a hash of
the point's network, inputs, hardware variant and measurement options), so an interrupted
sweep keeps what it finished and a rerun computes only the rest.

Rules on a bare IR (no float model to re-export from)
-----------------------------------------------------
``levels=N``
    every layer with levels but the readout gets N; θ stays, so a spike keeps its value and the
    downstream weights their meaning: only the clip level N·θ moves (a trained model instead
    keeps V_th and gets θ = V_th/N).
``timesteps=T``
    the network's T (direct encoding presents the same input at every timestep).
``w_bits=B``
    every dense/conv2d layer is requantized by shifting by d = B − W_BITS bits: weights,
    biases, v0 and the threshold of a spiking layer are multiplied by 2^d (exact for d ≥ 0:
    the same spikes and predictions, readout potentials × 2^d; ``b_bits`` grows by d), or
    divided by 2^−d and rounded half up (weights clipped to ±(2^(B−1) − 1), θ at least 1);
    a forced ``potential_width`` moves by d bits too.
``lanes=L``, ``lanes.<layer>=L``
    every dense layer (as ``--lanes L``), or that layer (dense or conv2d); L must divide the
    layer's outputs.
``fire_lanes=F``
    at most F fire units per layer (docs/lanes.md, "Fire lanes"): every dense/conv2d layer gets
    the largest divisor of its lanes not above F (so every point is valid; lanes 1 stays 1).
"""

from __future__ import annotations

import csv
import dataclasses
import hashlib
import itertools
import json
import os
import time
from dataclasses import dataclass
from typing import Optional

import numpy as np

from golden.errors import MlsnnError

__all__ = ["PARAMS", "Grid", "parse_grid", "label", "requantize", "with_levels", "derive_ir",
           "ModelSource", "SweepOptions", "Point", "cycles", "cycle_model_available",
           "evaluate_point", "pareto", "Sweep", "format_row", "COLUMNS"]

#: The parameters a grid may sweep, in the order rows show them.
PARAMS = ("lanes", "fire_lanes", "levels", "timesteps", "w_bits", "discharge", "synapse",
          "pixels_per_beat", "weights")

#: Integer parameters: (minimum, maximum or None).
_RANGES = {"lanes": (1, None), "fire_lanes": (1, None), "levels": (1, 255),
           "timesteps": (1, 1024), "w_bits": (2, 16), "pixels_per_beat": (1, None)}

#: Choice parameters, first the default.
CHOICES = {"discharge": ("parallel", "serial"), "synapse": ("mul", "serial"),
           "weights": ("rom", "block")}

#: Bump when a row's meaning changes: older cache files are then ignored.
CACHE_VERSION = 3

#: Columns of results.csv (and the keys of every row of results.json).
COLUMNS = ("index", "point", *PARAMS, "status", "message", "images", "cycles",
           "cycles_total", "cycles_source", "luts", "ffs", "brams", "dsps", "fmax_mhz",
           "clock_mhz", "time_us", "energy_nj", "accuracy", "rtl_cycles_total",
           "rtl_cycles_equal", "rtl_status", "pareto", "cached", "seconds", "key")


# -- the grid --------------------------------------------------------------------------------

@dataclass(frozen=True)
class Grid:
    """Values of some :data:`PARAMS`; its points are their cartesian product (the first axis
    varies slowest).

    Members
    -------
    axes : tuple of ``(name, values)``, in the order given.
    """

    axes: tuple = ()

    def points(self):
        """Every point as ``{name: value}`` (one empty point for an empty grid)."""
        names = [n for n, _ in self.axes]
        return [dict(zip(names, combo))
                for combo in itertools.product(*(v for _, v in self.axes))]

    def to_json(self):
        return {n: list(v) for n, v in self.axes}

    def __len__(self):
        return len(self.points())


def _is_layer_lanes(name):
    """``lanes.<layer>``: the lanes of one layer."""
    return name.startswith("lanes.") and name[6:].replace("_", "").isalnum()


def _value(name, text):
    if _is_layer_lanes(name):
        name = "lanes"
    if name in CHOICES:
        if text not in CHOICES[name]:
            raise MlsnnError(f"--grid {name}: {text!r} is not one of "
                             f"{', '.join(CHOICES[name])}")
        return text
    try:
        v = int(text)
    except ValueError:
        raise MlsnnError(f"--grid {name}: {text!r} is not an integer") from None
    lo, hi = _RANGES[name]
    if v < lo or (hi is not None and v > hi):
        span = f">= {lo}" if hi is None else f"in {lo}..{hi}"
        raise MlsnnError(f"--grid {name}: values must be {span}, not {v}")
    return v


def parse_grid(texts):
    """A :class:`Grid` from ``--grid`` values: each ``NAME=V1,V2`` or several joined by ``;``
    (``--grid lanes=1,2 --grid levels=1,4`` = ``--grid "lanes=1,2;levels=1,4"``). ``-`` in a
    name reads as ``_`` (``w-bits``); ``lanes.<layer>`` is an axis of one layer's lanes (over
    ``lanes``, which sets every dense layer). Every bad item is one :class:`MlsnnError`
    line."""
    axes, seen = [], set()
    for text in texts or ():
        for item in str(text).split(";"):
            item = item.strip()
            if not item:
                continue
            name, eq, values = item.partition("=")
            name = name.strip()
            if not name.startswith("lanes."):
                name = name.replace("-", "_")
            if not eq or not name:
                raise MlsnnError(f"--grid must be NAME=V1,V2[;NAME=...], not {item!r}")
            if name not in PARAMS and not _is_layer_lanes(name):
                raise MlsnnError(f"--grid: unknown parameter {name!r} (parameters: "
                                 f"{', '.join(PARAMS)}, lanes.LAYER)")
            if name in seen:
                raise MlsnnError(f"--grid: parameter {name!r} is given twice")
            vals = [v.strip() for v in values.split(",") if v.strip()]
            if not vals:
                raise MlsnnError(f"--grid {name}: no values (NAME=V1,V2,...)")
            parsed = tuple(_value(name, v) for v in vals)
            if len(set(parsed)) != len(parsed):
                raise MlsnnError(f"--grid {name}: a value is repeated in {values.strip()!r}")
            seen.add(name)
            axes.append((name, parsed))
    return Grid(tuple(axes))


def label(params):
    """``"lanes=2 levels=4"`` (the grid parameters of a point), ``"base"`` for none."""
    return " ".join(f"{k}={v}" for k, v in params.items()) or "base"


# -- networks of the points ------------------------------------------------------------------

def _round_shift(a, k):
    """``a / 2**k`` rounded half up (integers or int64 arrays)."""
    return (a + (1 << (k - 1))) >> k


def requantize(net, w_bits):
    """``net`` with every dense/conv2d layer at ``w_bits`` (module docstring: the shift rule).

    Raises
    ------
    MlsnnError
        When the shifted layer is not valid (e.g. a bias that no longer fits), naming it.
    """
    layers = []
    for layer in net.layers:
        if not hasattr(layer, "w_bits") or layer.w_bits == w_bits:
            layers.append(layer)
            continue
        d = w_bits - layer.w_bits
        w = layer.weight.astype(np.int64)
        b = layer.bias.astype(np.int64)
        th, v0, b_bits = layer.threshold, layer.v0, layer.b_bits
        if d > 0:
            w, b, v0 = w << d, b << d, v0 << d
            th = th if layer.readout else th << d
            b_bits = min(32, b_bits + d)
        else:
            wmax = (1 << (w_bits - 1)) - 1
            w = np.clip(_round_shift(w, -d), -wmax, wmax)
            b, v0 = _round_shift(b, -d), _round_shift(v0, -d)
            th = th if layer.readout else max(1, _round_shift(th, -d))
        pw = layer.potential_width
        if pw is not None:
            pw = min(64, max(2, pw + d))
        layers.append(dataclasses.replace(layer, weight=w, bias=b, threshold=int(th),
                                          v0=int(v0), w_bits=w_bits, b_bits=b_bits,
                                          potential_width=pw))
    return net.replace(layers=tuple(layers))


def with_levels(net, levels):
    """``net`` with N = ``levels`` on every layer that has levels but the readout (θ kept)."""
    layers = tuple(dataclasses.replace(layer, levels=levels)
                   if hasattr(layer, "levels") and not layer.readout else layer
                   for layer in net.layers)
    return net.replace(layers=layers)


def _apply_lanes(net, params):
    """``lanes`` on every dense layer, then ``lanes.<layer>`` on that layer
    (:meth:`golden.ir.Network.with_lanes` checks them)."""
    plan = {}
    if "lanes" in params:
        plan = {layer.name: params["lanes"] for layer in net.layers if layer.kind == "dense"}
    plan.update({k[6:]: v for k, v in params.items() if _is_layer_lanes(k)})
    if plan:
        net = net.with_lanes(plan)
    if "fire_lanes" in params:
        net = net.with_fire_lanes_at_most(params["fire_lanes"])
    return net


def derive_ir(net, params):
    """The network of grid point ``params`` from the IR ``net`` (W_BITS, then N, T, lanes)."""
    if "w_bits" in params:
        net = requantize(net, params["w_bits"])
    if "levels" in params:
        net = with_levels(net, params["levels"])
    if "timesteps" in params:
        net = net.replace(timesteps=params["timesteps"])
    return _apply_lanes(net, params)


class ModelSource:
    """A trained checkpoint (``mlsnn train``) whose points are re-exported.

    Per point the float model gets the point's N (every neuron, V_th kept: θ = V_th/N) and T,
    and :func:`golden.export.export` quantizes it at the point's W_BITS (default 8, as
    ``mlsnn export``); ``lanes`` then applies as on an IR. The model is not retrained.
    """

    def __init__(self, path):
        from golden.train import load_checkpoint
        self.path = path
        self.model = load_checkpoint(path)
        self.config = self.model.config
        self._levels = {name: n.levels for name, n in self.model.neurons.items()}

    def network(self, params):
        from golden.export import export
        levels = params.get("levels")
        self.model.config = dataclasses.replace(
            self.config, timesteps=params.get("timesteps", self.config.timesteps),
            levels=levels or self.config.levels)
        for name, neuron in self.model.neurons.items():
            neuron.levels = levels or self._levels[name]
        try:
            net, _ = export(self.model, w_bits=params.get("w_bits", 8))
        finally:
            self.model.config = self.config
            for name, neuron in self.model.neurons.items():
                neuron.levels = self._levels[name]
        return _apply_lanes(net, params)

    def test_split(self, dataset=None):
        """``(x, y)``: the test split of ``dataset`` or of the model's own dataset (as
        ``mlsnn export`` evaluates)."""
        from flows.commands.export import _dataset
        data = _dataset(self.config, dataset)
        return data.x_test.reshape((-1,) + tuple(self.config.input_shape)), data.y_test


def _hw(params):
    return {k: params.get(k, CHOICES[k][0] if k in CHOICES else 1)
            for k in ("discharge", "synapse", "pixels_per_beat", "weights")}


def _sim(hw):
    """The options of ``hw`` that the cycles and the RTL depend on (``weights`` only changes
    the synthesis)."""
    return {k: v for k, v in hw.items() if k != "weights"}


def _uniform(values):
    """One value, ``"a/b"`` for layers that differ, None for no layer."""
    vals = sorted(set(int(v) for v in values))
    if not vals:
        return None
    return vals[0] if len(vals) == 1 else "/".join(map(str, vals))


def effective_params(net, params):
    """Every parameter of :data:`PARAMS` as the point's network and hardware have it."""
    return {
        "lanes": _uniform(l.lanes for l in net.layers if l.kind == "dense"),
        "fire_lanes": _uniform(l.fire for l in net.layers if l.kind == "dense"),
        "levels": _uniform(l.levels for l in net.layers
                           if hasattr(l, "levels") and not l.readout),
        "timesteps": net.timesteps,
        "w_bits": _uniform(l.w_bits for l in net.layers if hasattr(l, "w_bits")),
        **_hw(params),
    }


# -- measuring one point ---------------------------------------------------------------------

@dataclass(frozen=True)
class SweepOptions:
    """How every point is measured (part of the cache key).

    Members
    -------
    synth : bool
        Synthesize and place the network top (LUT/FF/BRAM/DSP, Fmax); False: none of them, and
        the time per inference at the nominal clock.
    target : str
        Synthesis target (:data:`flows.synth.TARGETS`).
    freq_mhz : float or None
        nextpnr's clock goal, and the nominal clock without synthesis (default: the target's).
    seed : int
        nextpnr placement seed.
    """

    synth: bool = True
    target: str = "ice40-up5k"
    freq_mhz: Optional[float] = None
    seed: int = 1

    def nominal_mhz(self):
        from flows.synth import get_target
        return float(self.freq_mhz or get_target(self.target).freq_mhz)


@dataclass(frozen=True, eq=False)
class Point:
    """One grid point, ready to measure.

    Members
    -------
    index : int (grid order); params : the grid values; net : its network; rtl : also run the
    RTL; key : the cache key.
    """

    index: int
    params: dict
    net: object
    rtl: bool = False
    key: str = ""

    @property
    def label(self):
        return label(self.params)


def cycle_model_available():
    """Can ``golden.cycles.network_cycles`` be imported?"""
    try:
        from golden.cycles import network_cycles  # noqa: F401
    except ImportError:
        return False
    return True


def cycles(net, x, *, pixels_per_beat=1, discharge="parallel", synapse="mul"):
    """Clock cycles of every image ``[B]`` and where they come from: ``(cycles, "model",
    None)`` from the cycle model when it can be imported, else ``(cycles, "rtl", rtl)`` from
    the RTL (:func:`sim.amaranth_run.run_network`, whose result is returned too)."""
    opts = dict(pixels_per_beat=pixels_per_beat, discharge=discharge, synapse=synapse)
    if cycle_model_available():
        from golden.cycles import network_cycles
        c = np.asarray(network_cycles(net, x, **opts).cycles, dtype=np.int64).reshape(-1)
        return c, "model", None
    from sim.amaranth_run import run_network
    rtl = run_network(net, x, **opts)
    return np.asarray(rtl.cycles, dtype=np.int64).reshape(-1), "rtl", rtl


def _energy_nj(net, x, res):
    from flows.commands.energy import _hw_fifo_depth
    from golden.energy.compare import ir_report
    rep = ir_report(net, x, result=res, fifo_depth=_hw_fifo_depth())
    return float(rep["total"]["energy_nJ"]["exact"]["total"])


def _synth(net, hw, options):
    from flows.synth import synthesize_network
    rep = synthesize_network(net, options.target, cores=False, place=True,
                             discharge=hw["discharge"], synapse=hw["synapse"],
                             pixels_per_beat=hw["pixels_per_beat"], freq_mhz=options.freq_mhz,
                             seed=options.seed, parallel=1, weights=hw["weights"])
    t = rep.top
    return {"luts": t.lut_sites, "ffs": t.ffs, "brams": t.brams, "dsps": t.dsps,
            "fmax_mhz": None if t.fmax_mhz is None else round(float(t.fmax_mhz), 2)}


def evaluate_point(point, x, y, options, *, worker_threads=None, synth=None):
    """Measure ``point`` on inputs ``x`` (labels ``y`` or None): a row of :data:`COLUMNS`
    (without ``pareto``, ``cached``). ``synth``: the synthesis function (default: the network
    top through :func:`flows.synth.synthesize_network`). A user error of the point (e.g. a
    design too large for the device) gives ``status`` ``"error"`` and the line in
    ``message``; any other exception is raised."""
    t0 = time.monotonic()
    if worker_threads is not None:
        import torch
        torch.set_num_threads(worker_threads)
    from golden.reference import run as golden_run
    net = point.net
    hw = _hw(point.params)
    row = {c: None for c in COLUMNS if c not in ("pareto", "cached")}
    row.update(index=point.index, point=point.label, key=point.key, status="ok", message="",
               images=int(x.shape[0]), **effective_params(net, point.params))
    try:
        res = golden_run(net, x)
        cyc, source, rtl = cycles(net, x, **_sim(hw))
        row.update(cycles=round(float(cyc.mean()), 3), cycles_total=int(cyc.sum()),
                   cycles_source=source, energy_nj=_energy_nj(net, x, res))
        if y is not None:
            row["accuracy"] = float((res.predictions == y).mean())
        if point.rtl:
            row.update(_rtl_check(net, x, res, cyc, rtl, hw))
        if options.synth:
            row.update((synth or _synth)(net, hw, options))
        row["clock_mhz"] = row["fmax_mhz"] or options.nominal_mhz()
        row["time_us"] = row["cycles"] / row["clock_mhz"]
    except MlsnnError as e:
        row.update(status="error", message=str(e))
    row["seconds"] = round(time.monotonic() - t0, 3)
    return row


def _rtl_check(net, x, res, cyc, rtl, hw):
    """The RTL's cycles and verdict against the golden model (the RTL run reused when the
    cycles already came from it)."""
    from sim.scoreboard import verdict
    if rtl is None:
        from sim.amaranth_run import run_network
        rtl = run_network(net, x, **_sim(hw))
        rc = np.asarray(rtl.cycles, dtype=np.int64).reshape(-1)
    else:
        rc = cyc
    return {"rtl_cycles_total": int(rc.sum()),
            "rtl_cycles_equal": bool(np.array_equal(rc, cyc)),
            "rtl_status": verdict(net, res, rtl, x).status}


def _error_row(point, message):
    row = {c: None for c in COLUMNS if c not in ("pareto", "cached")}
    row.update(index=point.index, point=point.label, key=point.key, status="error",
               message=message, **effective_params(point.net, point.params))
    return row


def _safe(evaluate, point, x, y, options, **kw):
    """``evaluate`` with a crash turned into an error row (the sweep goes on)."""
    try:
        return evaluate(point, x, y, options, **kw)
    except Exception as e:
        return _error_row(point, f"{type(e).__name__}: {e}")


# -- the sweep -------------------------------------------------------------------------------

def _jsonable(o):
    if isinstance(o, np.generic):
        return o.item()
    if isinstance(o, np.ndarray):
        return o.tolist()
    raise TypeError(f"not JSON serialisable: {type(o).__name__}")


def _key(net, x, y, params, options, rtl):
    h = hashlib.sha256()
    doc = {"version": CACHE_VERSION, "network": net.to_json(), "hw": _hw(params),
           "options": dataclasses.asdict(options), "rtl": bool(rtl),
           "cycle_model": cycle_model_available()}
    h.update(json.dumps(doc, sort_keys=True, default=_jsonable).encode())
    for name, arr in sorted(net.arrays().items()):
        h.update(name.encode())
        h.update(np.ascontiguousarray(arr, dtype=np.int64).tobytes())
    for arr in (x, y):
        if arr is not None:
            a = np.ascontiguousarray(arr, dtype=np.int64)
            h.update(repr(a.shape).encode())
            h.update(a.tobytes())
    return h.hexdigest()[:24]


def pareto(rows, x="time_us", y="luts"):
    """Flags: is each row (of status ok, with both values) on the Pareto front minimising
    ``x`` and ``y`` (no other row as good in both and better in one)?"""
    pts = [(r[x], r[y]) if r.get("status") == "ok" and r.get(x) is not None
           and r.get(y) is not None else None for r in rows]
    out = []
    for p in pts:
        out.append(p is not None and not any(
            q is not None and q[0] <= p[0] and q[1] <= p[1] and q != p for q in pts))
    return out


def format_energy(nj):
    if nj is None:
        return "-"
    for unit, scale in (("mJ", 1e6), ("µJ", 1e3)):
        if abs(nj) >= scale:
            return f"{nj / scale:.3g} {unit}"
    return f"{nj:.3g} nJ"


def format_row(row):
    """``"412 cycles, 1,830 LUT, 48.1 MHz, 1.2 µJ, accuracy 93.3 %"`` (or the error)."""
    if row["status"] != "ok":
        return f"error: {row['message']}"
    c = row["cycles"]
    parts = [f"{c:,.0f} cycles" if float(c).is_integer() else f"{c:,.1f} cycles"]
    if row.get("luts") is not None:
        parts.append(f"{row['luts']:,} LUT")
    if row.get("fmax_mhz") is not None:
        parts.append(f"{row['fmax_mhz']:.1f} MHz")
    parts.append(format_energy(row["energy_nj"]))
    if row.get("accuracy") is not None:
        parts.append(f"accuracy {100 * row['accuracy']:.1f} %")
    if row.get("rtl_status") is not None:
        if row["cycles_source"] == "rtl":
            parts.append(f"RTL {row['rtl_status']} (cycles from the RTL: no cycle model)")
        else:
            same = "==" if row["rtl_cycles_equal"] else "!="
            parts.append(f"RTL {row['rtl_status']}, cycles model {same} RTL "
                         f"({row['rtl_cycles_total']:,} in all)")
    return ", ".join(parts)


class Sweep:
    """The points of a grid on one network source and one batch of inputs.

    Parameters
    ----------
    source : golden.ir.Network or ModelSource
    grid : Grid
    x : array ``[B, *input_shape]``; y : labels ``[B]`` or None
    options : SweepOptions
    rtl_check : int
        Also run the RTL on the first ``rtl_check`` points (grid order).
    meta : dict
        Extra fields of results.json (where the network came from).

    Raises
    ------
    MlsnnError
        A point whose network is not valid or cannot be built by the hardware, inputs that do
        not fit the network, labels that do not fit the inputs: ``grid point <label>: ...``.
    """

    def __init__(self, source, grid, x, y=None, *, options=SweepOptions(), rtl_check=0,
                 meta=None):
        from flows.io import check_pixels_per_beat
        from hw.network import check_supported
        self.grid, self.options, self.meta = grid, options, dict(meta or {})
        self.points = []
        for k, params in enumerate(grid.points()):
            try:
                net = source.network(params) if isinstance(source, ModelSource) \
                    else derive_ir(source, params)
                check_supported(net)
                check_pixels_per_beat(net, _hw(params)["pixels_per_beat"])
            except MlsnnError as e:
                raise MlsnnError(f"grid point {label(params)}: {e}") from None
            self.points.append(Point(k, params, net, rtl=k < rtl_check))
        net0 = self.points[0].net
        self.x = net0.check_inputs(x)
        self.y = None
        if y is not None:
            y = np.asarray(y)
            if y.shape != (self.x.shape[0],) or y.dtype.kind not in "iu":
                raise MlsnnError(f"labels 'y' must be {self.x.shape[0]} integers (one per "
                                 f"image), not an array of shape {tuple(y.shape)} and type "
                                 f"{y.dtype}")
            self.y = y.astype(np.int64)
        self.points = [dataclasses.replace(p, key=_key(p.net, self.x, self.y, p.params,
                                                       options, p.rtl)) for p in self.points]

    def __len__(self):
        return len(self.points)

    # -- cache -------------------------------------------------------------------------------
    @staticmethod
    def cache_path(out_dir, key):
        return os.path.join(out_dir, "points", f"{key}.json")

    def _cached(self, out_dir, point):
        path = self.cache_path(out_dir, point.key)
        try:
            with open(path) as f:
                row = json.load(f)
        except (OSError, ValueError):
            return None         # absent, or cut short by a crash: computed again
        if not isinstance(row, dict) or row.get("key") != point.key or row.get("status") != "ok":
            return None
        row.update(index=point.index, point=point.label)
        return row

    def _store(self, out_dir, row):
        path = self.cache_path(out_dir, row["key"])
        os.makedirs(os.path.dirname(path), exist_ok=True)
        tmp = f"{path}.{os.getpid()}.tmp"
        with open(tmp, "w") as f:
            json.dump({k: v for k, v in row.items() if k not in ("pareto", "cached")}, f,
                      indent=1, default=_jsonable)
            f.write("\n")
        os.replace(tmp, path)       # a Ctrl-C never leaves half a file under the key

    # -- running -----------------------------------------------------------------------------
    def run(self, out_dir, *, jobs=1, scheduler=None, progress=None, evaluate=None):
        """Measure every point not cached in ``out_dir``; write results.json, results.csv and
        pareto.png there (also when interrupted: then with the points finished so far and
        ``"complete": false``). Returns the rows in grid order.

        ``jobs == 1`` and no ``scheduler``: in this process; otherwise on a Dask cluster
        (:func:`flows.regress.dask_client`). ``progress(k, total, row)`` after each point
        (cached ones first, ``row["cached"]`` true). ``evaluate``: the function measuring a
        point (default :func:`evaluate_point`; a module-level function on a cluster).
        """
        evaluate = evaluate or evaluate_point
        total = len(self.points)
        rows = {}

        def finish(row, cached):
            row["cached"] = cached
            rows[row["index"]] = row
            if not cached and row["status"] == "ok":
                self._store(out_dir, row)
            if progress:
                progress(len(rows), total, row)

        complete = False
        try:
            todo = []
            for p in self.points:
                row = self._cached(out_dir, p)
                if row is None:
                    todo.append(p)
                else:
                    finish(row, True)
            if todo and jobs == 1 and scheduler is None:
                for p in todo:
                    finish(_safe(evaluate, p, self.x, self.y, self.options), False)
            elif todo:
                self._run_dask(todo, evaluate, jobs, scheduler, finish)
            complete = True
        finally:
            done = [rows[k] for k in sorted(rows)]
            self.write(out_dir, done, complete=complete)
        return done

    def _run_dask(self, todo, evaluate, jobs, scheduler, finish):
        from flows.regress import _dask, dask_client
        distributed = _dask()
        with dask_client(jobs, scheduler) as client:
            xf, yf = client.scatter([self.x, self.y], broadcast=True)
            futs = {client.submit(_safe, evaluate, p, xf, yf, self.options, worker_threads=1,
                                  pure=False, key=f"mlsnn-sweep-{p.key}-{os.getpid()}"): p
                    for p in todo}
            for fut in distributed.as_completed(futs):
                p = futs[fut]
                try:
                    row = fut.result()
                except Exception as e:      # the worker died, or the task could not run
                    row = _error_row(p, f"the Dask task failed: {type(e).__name__}: {e}")
                finish(row, False)

    # -- outputs -----------------------------------------------------------------------------
    def axes(self, rows):
        """The Pareto axes: µs per inference and LUTs, or energy when nothing was
        synthesized."""
        ok = [r for r in rows if r["status"] == "ok"]
        has_luts = bool(ok) and all(r.get("luts") is not None for r in ok)
        return ("time_us", "luts" if has_luts else "energy_nj")

    def document(self, rows, *, complete=True):
        """results.json: the sweep's description and its rows."""
        return {"schema": "mlsnn-sweep", "version": CACHE_VERSION, **self.meta,
                "grid": self.grid.to_json(), "options": dataclasses.asdict(self.options),
                "images": int(self.x.shape[0]), "labels": self.y is not None,
                "cycle_model": cycle_model_available(), "points": len(self.points),
                "finished": len(rows), "complete": complete,
                "pareto_axes": list(self.axes(rows)), "rows": rows}

    def write(self, out_dir, rows, *, complete=True):
        """Write results.json, results.csv and (with a measured point) pareto.png."""
        os.makedirs(out_dir, exist_ok=True)
        ax = self.axes(rows)
        for r, flag in zip(rows, pareto(rows, *ax)):
            r["pareto"] = flag
        rows = [{c: r.get(c) for c in COLUMNS} for r in rows]
        with open(os.path.join(out_dir, "results.json"), "w") as f:
            json.dump(self.document(rows, complete=complete), f, indent=1, default=_jsonable)
            f.write("\n")
        with open(os.path.join(out_dir, "results.csv"), "w", newline="") as f:
            w = csv.writer(f)
            w.writerow(COLUMNS)
            for r in rows:
                w.writerow(["" if r[c] is None else r[c] for c in COLUMNS])
        if any(r["status"] == "ok" for r in rows):
            plot(rows, os.path.join(out_dir, "pareto.png"), ax)


def plot(rows, path, axes=("time_us", "luts")):
    """Scatter of ``axes`` (x: µs per inference, y: LUTs or energy), colour = energy per
    inference, the Pareto front ringed and joined."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    names = {"time_us": "µs per inference", "luts": "LUT4 (network top)",
             "energy_nj": "energy per inference (nJ)"}
    ok = [r for r in rows if r["status"] == "ok"]
    xs = [r[axes[0]] for r in ok]
    ys = [r[axes[1]] for r in ok]
    es = [r["energy_nj"] for r in ok]
    fig, ax = plt.subplots(figsize=(7.5, 5.0))
    sc = ax.scatter(xs, ys, c=es, cmap="viridis", s=40, zorder=2)
    fig.colorbar(sc, ax=ax).set_label(names["energy_nj"])
    front = sorted((r[axes[0]], r[axes[1]]) for r in ok if r.get("pareto"))
    if front:
        fx, fy = zip(*front)
        ax.plot(fx, fy, color="tab:red", lw=1, drawstyle="steps-post", zorder=1)
        ax.scatter(fx, fy, s=120, facecolors="none", edgecolors="tab:red", lw=1.5, zorder=3,
                   label="Pareto-optimal")
        ax.legend(loc="best")
    if len(ok) <= 40:
        # Points that (nearly) coincide, e.g. fire lanes that change no cycle, get their
        # labels stacked instead of printed over each other.
        span = [max(v) - min(v) or 1.0 for v in (xs, ys)]
        placed = []
        for r, xv, yv in zip(ok, xs, ys):
            near = sum(1 for px, py in placed
                       if abs(px - xv) < 0.02 * span[0] and abs(py - yv) < 0.02 * span[1])
            placed.append((xv, yv))
            right = xv - min(xs) > 0.6 * span[0]        # label to the left of the point
            ax.annotate(r["point"], (xv, yv), fontsize=7, xytext=(-4 if right else 4,
                                                                  3 - 9 * near),
                        textcoords="offset points", ha="right" if right else "left")
    ax.set_xlabel(names[axes[0]])
    ax.set_ylabel(names[axes[1]])
    ax.grid(alpha=0.3)
    ax.set_title(f"mlsnn sweep: {len(ok)} point(s)")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)

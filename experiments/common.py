"""Shared machinery of the experiment scripts: cached training, golden and RTL measurement,
Lemaire energy, output files.

Every experiment trains float models on scikit-learn digits (:func:`golden.train.train`), exports
them to the integer IR (:func:`golden.export.export`), runs the integer golden model on the whole
test set (:func:`golden.reference.run`: exact counters of SPEC §5) and, when the hardware supports
the network, runs a subset of the test images through the RTL in the Amaranth simulator
(:func:`sim.amaranth_run.run_network`) and checks that every event, readout potential, prediction
and counter equals the golden model (:func:`sim.scoreboard.compare`). Energies come from the
Lemaire et al. model (:func:`golden.energy.ir_report`) fed with the exact counts (full test set)
and with the measured counts (RTL subset).

Checkpoints and RTL runs are cached under ``out/experiments/<experiment>/`` (keyed by every
parameter that changes them, and by a hash of the IR for RTL runs), so reruns are fast.
"""

from __future__ import annotations

import gc
import hashlib
import json
import os
import sys
import time
import warnings

import numpy as np
import torch

from golden.errors import MlsnnError
from golden.export import export
from golden.reference import run
from golden.train import load_checkpoint, load_dataset, save_checkpoint, train

__all__ = ["ROOT", "OUT", "ACCESS", "HW_FIFO_DEPTH", "Progress", "cache_dir", "train_cached",
           "golden_eval", "rtl_measure", "energy_summary", "write_json", "md_table", "fmt"]

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
OUT = os.path.join(ROOT, "out", "experiments")
#: Memory-access counters reported per inference (SPEC §5).
ACCESS = ("w_rd", "p_rd", "p_wr", "b_rd", "ev_in", "ev_out")
#: Depth of the event FIFOs of ``hw.network.NetworkTop(fifo_depth=None)``; event accesses are
#: priced at this depth, as ``mlsnn energy --ir`` does.
HW_FIFO_DEPTH = 16
#: Bump to invalidate every cached checkpoint and RTL run.
CACHE_VERSION = 1


class Progress:
    """One line per step on stderr, with the elapsed time."""

    def __init__(self, name, *, quiet=False):
        self.name = name
        self.quiet = quiet
        self.start = time.monotonic()

    def __call__(self, msg):
        if not self.quiet:
            print(f"[{self.name} {time.monotonic() - self.start:6.1f}s] {msg}", file=sys.stderr,
                  flush=True)


def cache_dir(experiment, root=None):
    path = os.path.join(root or OUT, experiment)
    os.makedirs(path, exist_ok=True)
    return path


def _key(params):
    text = json.dumps({"v": CACHE_VERSION, **params}, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:10]


def train_cached(cache, *, data, retrain=False, log=None, **params):
    """Train ``golden.train.train(dataset=data, **params)`` or load the cached checkpoint.

    Returns ``(model, metrics)``; ``metrics`` holds ``test_accuracy``, ``train_accuracy``,
    ``loss``, ``seconds`` (of the original training) and ``cached``.
    """
    p = dict(params)
    name = (f"{p['arch']}-T{p['timesteps']}-N{p['levels']}-e{p['epochs']}-s{p['seed']}-"
            f"{_key({**p, 'dataset': data.name, 'split': data.split_seed})}.pt")
    path = os.path.join(cache, name)
    if os.path.exists(path) and not retrain:
        model = load_checkpoint(path)
        doc = torch.load(path, map_location="cpu", weights_only=True)
        metrics = dict(doc.get("metrics", {}), cached=True)
        if log:
            log(f"loaded {name} (float test accuracy {metrics.get('test_accuracy', 0):.3f})")
        return model, metrics
    model, metrics = train(dataset=data, **p)
    save_checkpoint(model, path, metrics=metrics)
    if log:
        log(f"trained {name} in {metrics['seconds']:.1f}s (float test accuracy "
            f"{metrics['test_accuracy']:.3f})")
    out = {k: v for k, v in metrics.items() if isinstance(v, (int, float))}
    return model, dict(out, cached=False)


def golden_eval(net, x, y):
    """Integer golden model on ``x``: accuracy, predictions and mean counters per layer.

    Returns ``(result, summary)``; ``summary`` has ``accuracy``, ``images`` and ``layers``
    ``{name: {counter: mean per inference}}`` (every SPEC §5 counter).
    """
    res = run(net, x)
    layers = {l.name: {c: float(v.mean()) for c, v in res.counters[l.name].items()}
              for l in net.layers}
    return res, {"accuracy": float(np.mean(res.predictions == y)), "images": int(len(y)),
                 "layers": layers}


def net_hash(net):
    h = hashlib.sha256(json.dumps(net.to_json(), sort_keys=True).encode())
    for k, v in sorted(net.arrays().items()):
        h.update(k.encode())
        h.update(np.ascontiguousarray(v, dtype=np.int64).tobytes())
    return h.hexdigest()[:16]


def rtl_top(net):
    """``(top, "")`` with a :class:`hw.network.NetworkTop` of ``net`` (monitor ports on), or
    ``(None, why)`` when the hardware does not support the network yet."""
    try:
        from amaranth.hdl import UnusedElaboratable
        from hw.network import NetworkTop
    except ImportError as e:                 # the hardware package is not importable at all
        return None, f"hw.network cannot be imported ({e})"
    with warnings.catch_warnings():
        # A constructor that refuses the network leaves half-built components behind; they
        # are garbage, not a design error.
        warnings.simplefilter("ignore", UnusedElaboratable)
        try:
            return NetworkTop(net, monitor=True), ""
        except MlsnnError as e:
            why = str(e)
        gc.collect()
    return None, why


def rtl_measure(net, x, *, cache, log=None, seed=0, fresh=False):
    """Run ``x`` through the RTL (Amaranth simulator) and compare with the golden model.

    Returns a JSON-ready dict: ``status`` ``"ok"`` (every event, potential, prediction and
    counter equals the golden model), ``"mismatch"`` (with the first differences) or
    ``"unsupported"`` (with the reason; nothing simulated); for ``ok``/``mismatch`` also
    ``images``, ``seconds``, ``cycles`` (mean per image), ``layers`` ``{name: {counter: mean
    per inference}}`` measured by the hardware counters, and ``summary`` (the
    ``mlsnn simulate --json``-style totals, for :func:`golden.energy.ir_report`).
    """
    from sim.amaranth_run import run_network
    from sim.scoreboard import compare, summary

    x = np.asarray(x)
    key = _key({"net": net_hash(net), "x": hashlib.sha256(x.astype(np.int64).tobytes())
                .hexdigest()[:16], "seed": seed})
    path = os.path.join(cache, f"rtl-{net.name}-{len(x)}img-{key}.json")
    if os.path.exists(path) and not fresh:
        with open(path) as f:
            doc = json.load(f)
        if log:
            log(f"RTL {net.name}: cached run of {doc['images']} images ({doc['status']})")
        return doc
    top, why = rtl_top(net)
    if top is None:
        return {"status": "unsupported", "reason": why, "images": 0}
    golden = run(net, x)
    t0 = time.monotonic()
    step = max(1, len(x) // 4)

    def progress(b, n):
        if log and b < n and b % step == 0:
            log(f"RTL {net.name}: image {b + 1}/{n}")

    rtl = run_network(net, x, seed=seed, progress=progress, top=top)
    seconds = time.monotonic() - t0
    msgs = compare(net, golden, rtl)
    B = len(x)
    doc = {
        "status": "ok" if not msgs else "mismatch",
        "images": B, "seconds": seconds,
        "cycles": float(np.mean(rtl.cycles)),
        "mismatches": msgs[:20],
        "layers": {l.name: {c: float(np.mean(v)) for c, v in rtl.counters[l.name].items()}
                   for l in net.layers},
        "summary": summary(net, rtl),
    }
    doc["summary"]["match"] = not msgs
    with open(path, "w") as f:
        json.dump(doc, f)
    if log:
        verdict = "all events and counters equal the golden model" if not msgs \
            else "MISMATCH: " + msgs[0]
        log(f"RTL {net.name}: {B} images in {seconds:.0f}s, {verdict}")
    return doc


def energy_summary(net, x, result, *, measured=None):
    """Lemaire energy per inference (nJ) of ``net`` on ``x``: the Table-3 breakdown.

    Returns ``{"exact": {term: nJ}, "analytic": {...}, ["measured": {...}], "ann": {...},
    "layers_exact_total": {layer: nJ}, "measured_equals_exact": bool|None}``. ``exact`` uses
    the golden counters, ``analytic`` the paper's formulas (borders ignored) fed with the exact
    activity, ``measured`` the RTL counters; ``total`` counts a multi-level event as N ACC
    (the paper's worst case), ``total_sum_z`` as Σz ACC.
    """
    from golden.energy import ir_report

    rep = ir_report(net, x, measured=measured, fifo_depth=HW_FIFO_DEPTH, result=result)
    out = {s: dict(rep["total"]["energy_nJ"][s]) for s in rep["sources"]}
    out["ann"] = dict(rep["ann"]["total"]["energy_nJ"])
    out["layers_exact_total"] = {l["name"]: l["energy_nJ"]["exact"]["total"]
                                 for l in rep["layers"]}
    out["measured_equals_exact"] = rep["measured"]["equals_exact"] if measured else None
    return out


def export_net(model, w_bits=8):
    net, _ = export(model, w_bits=w_bits)
    return net


def spiking_layers(net):
    """Names of the layers that emit events (neuron layers and joins; not the readout)."""
    return [l.name for l in net.layers if not l.readout]


def neuron_layers(net):
    """Names of the layers with neurons that fire (conv/dense and barrier joins)."""
    return [l.name for l in net.layers
            if not l.readout and not l.passthrough]


def write_json(path, doc):
    os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
    with open(path, "w") as f:
        json.dump(doc, f, indent=1, default=_default)
        f.write("\n")


def _default(o):
    if isinstance(o, np.generic):
        return o.item()
    if isinstance(o, np.ndarray):
        return o.tolist()
    raise TypeError(f"not JSON serialisable: {type(o).__name__}")


def rtl_word(run):
    """One-word status of a run's RTL check for the tables."""
    s = run["rtl"]
    if s["status"] == "ok":
        return f"{s['images']} img: equal"
    if s["status"] == "mismatch":
        return f"{s['images']} img: MISMATCH"
    if s["status"] == "unsupported":
        return "unsupported"
    return "-"


def fmt(v, digits=3):
    """Compact number: integers as is, large numbers with thousands separators."""
    if v is None:
        return "-"
    if isinstance(v, str):
        return v
    a = abs(v)
    if a >= 1e6:
        return f"{v:.3g}"
    if a >= 100:
        return f"{v:,.0f}"
    if a >= 1:
        return f"{v:.{max(0, digits - 1)}f}" if not float(v).is_integer() else f"{int(v)}"
    if a == 0:
        return "0"
    return f"{v:.{digits}f}"


def md_table(headers, rows):
    """A GitHub Markdown table (first column left-aligned, the others right-aligned)."""
    out = ["| " + " | ".join(headers) + " |",
           "|" + "|".join([":---"] + ["---:"] * (len(headers) - 1)) + "|"]
    out += ["| " + " | ".join(str(c) for c in r) + " |" for r in rows]
    return "\n".join(out)


def text_table(headers, rows):
    """A plain-text table for the terminal."""
    cells = [[str(h) for h in headers]] + [[str(c) for c in r] for r in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(headers))]
    lines = []
    for k, r in enumerate(cells):
        lines.append("  ".join(c.ljust(w) if i == 0 else c.rjust(w)
                               for i, (c, w) in enumerate(zip(r, widths))))
        if k == 0:
            lines.append("  ".join("-" * w for w in widths))
    return "\n".join(lines)


def load_data(dataset="digits"):
    return load_dataset(dataset)

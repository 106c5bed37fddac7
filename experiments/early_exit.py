"""Input-aware early exit (seed 004 §3.3, docs/early-exit.md) on scikit-learn digits.

Trains a small multi-level MLP (T = 4, N = 2) on 2/3 of the training split, exports it to the
integer IR, fits alpha_t on the remaining third (images the weights have not seen: on its own
training images the network is 100 % accurate at every timestep, which tells the fit nothing)
under several average-timestep budgets Γ (:func:`golden.early_exit.fit_alpha`),
and reports on the whole test split, from the bit-exact golden model: accuracy, average
timesteps, the timestep histogram and the Lemaire energy per inference from the exact counters
(:func:`golden.energy.ir_report`, "exact" source: the exited images' counters, exit sweep
included) and the latency: cycles per inference from the cycle model
(:func:`golden.cycles.network_cycles`, docs/cycles.md § Early exit; mean over the test images)
and µs at the clocks docs/synthesis.md quotes for the demo network. Baselines: the same network
at a fixed T' = 1 .. T (every image stops after T'), both as the plain network (no exit gate)
and with the exit gate on but α that never exits (the timestep-major gate alone: no overlap of
timesteps). The RTL (Amaranth simulator) runs a subset of the test images of one budget and must
equal the golden model in every event, potential, prediction, timestep count and counter, and
the cycle model in its cycles (per inference and every core's ``cycles`` counter, summed over
the subset).

Run from the repository root::

    python -m experiments.early_exit   # ~5 min (2 trainings, RTL), ~1.5 min cached

Outputs (``--out``, default ``experiments/results``): ``early_exit.json`` and ``.md``.
"""

from __future__ import annotations

if __package__ in (None, ""):          # run as a file: make the repository importable
    import os as _os
    import sys as _sys
    _sys.path.insert(0, _os.path.dirname(_os.path.dirname(_os.path.abspath(__file__))))
    __package__ = "experiments"

import argparse
import os
import sys

import numpy as np

from experiments import common
from experiments.common import fmt, md_table, text_table
from golden.cycles import network_cycles
from golden.datasets import dataset_from_split
from golden.early_exit import evaluate, fit_alpha
from golden.errors import MlsnnError
from golden.ir import MAX_ALPHA

NAME = "early_exit"
#: The multi-level model of the issue (T = 4, N = 2) and a binary one with T = 8 whose accuracy
#: still grows with t (where the budget matters).
MODELS = (dict(arch="mlp", timesteps=4, levels=2, epochs=20, seed=0, hidden=64),
          dict(arch="mlp", timesteps=8, levels=1, epochs=20, seed=0, hidden=64))
BUDGETS = (1.25, 1.5, 2.0, 2.5, 3.0)
RTL_IMAGES = 12
RTL_BUDGET = 2.0
#: Clocks (MHz) for µs per inference: the demo network's top, seed 1 (docs/synthesis.md, "Digits
#: MLP — the demo's network"). These networks (64 hidden, the exit gate) were not synthesized;
#: the clocks give the scale.
CLOCKS_MHZ = {"ice40-up5k": 52.7, "ecp5-85f": 171.7}


def _energy(net, x, res):
    return common.energy_summary(net, x, res)["exact"]["total"]


def _latency(net, x, res):
    """Cycle-model latency of ``net`` on ``x`` (``res`` its golden run): mean, min, max cycles
    per inference and µs at :data:`CLOCKS_MHZ`."""
    c = network_cycles(net, x, golden=res).cycles
    mean = float(np.mean(c))
    return {"cycles": mean, "cycles_min": int(c.min()), "cycles_max": int(c.max()),
            "us": {k: mean / f for k, f in CLOCKS_MHZ.items()}}


def _never_exits(net):
    """``net`` with the exit gate on and α that never exits (every image runs T)."""
    return net.replace(early_exit={"confidence": "margin",
                                   "alpha": [MAX_ALPHA] * (net.timesteps - 1)})


def _rtl_cycles(net, x, rtl):
    """The cycle model against the RTL subset: cycles per inference and every core's
    ``cycles`` counter, summed over the images, must be equal."""
    rep = network_cycles(net, x)
    model = {"total": int(rep.cycles.sum()),
             **{n: int(v.sum()) for n, v in rep.layers.items()}}
    meas = {"total": rtl["summary"]["cycles"],
            **{l["name"]: l["counters"]["cycles"] for l in rtl["summary"]["layers"]}}
    if model != meas:
        raise MlsnnError(f"{net.name}: cycle model {model} differs from the RTL {meas} "
                         f"(cycles summed over {len(x)} images)")
    return {"cycles_model": model["total"] / len(x), "cycles_rtl": meas["total"] / len(x),
            "cycles_equal": True}


def _model_rows(model_params, full, cache, log, rtl_on):
    """Train (cached), export, fit and evaluate one model; returns its JSON section."""
    n_fit = len(full.y_train) // 3
    data = dataset_from_split(full.x_train[n_fit:], full.y_train[n_fit:], full.x_test,
                              full.y_test, name="digits-train-2/3")
    model, metrics = common.train_cached(cache, data=data, log=log, **model_params)
    net = common.export_net(model)
    shape = (-1,) + tuple(net.input.shape)
    x_tr = net.check_inputs(full.x_train[:n_fit].reshape(shape))      # fits alpha
    x_te = net.check_inputs(full.x_test.reshape(shape))
    y_tr, y_te = full.y_train[:n_fit], full.y_test
    T = net.timesteps
    rows = []
    for t in range(1, T + 1):
        fixed = net.replace(timesteps=t)
        res, gold = common.golden_eval(fixed, x_te, y_te)
        rows.append({"mode": f"fixed T={t}", "budget": None, "alpha": None, "gate": False,
                     "accuracy": gold["accuracy"], "avg_timesteps": float(t),
                     "histogram": None, "energy_nJ": _energy(fixed, x_te, res),
                     **_latency(fixed, x_te, res)})
        log(f"{net.name} fixed T={t}: accuracy {gold['accuracy']:.4f}, "
            f"{rows[-1]['cycles']:.1f} cycles")
    for t in range(1, T + 1):
        gated = _never_exits(net.replace(timesteps=t))
        res, gold = common.golden_eval(gated, x_te, y_te)
        if not (res.timesteps == t).all():
            raise MlsnnError(f"{net.name}: an image exited with alpha = never at T={t}")
        rows.append({"mode": f"fixed T={t}, gate on (never exits)", "budget": None,
                     "alpha": list(gated.early_exit.alpha), "gate": True,
                     "accuracy": gold["accuracy"], "avg_timesteps": float(t),
                     "histogram": None, "energy_nJ": _energy(gated, x_te, res),
                     **_latency(gated, x_te, res)})
        log(f"{net.name} fixed T={t}, gate on: {rows[-1]['cycles']:.1f} cycles")
    for budget in [b for b in BUDGETS if b < T]:
        alpha, info = fit_alpha(net, x_tr, y_tr, budget=budget)
        ee = net.replace(early_exit={"confidence": "margin", "alpha": alpha})
        res, gold = common.golden_eval(ee, x_te, y_te)
        ev = evaluate(ee, x_te, y_te, result=res)
        rows.append({"mode": f"early exit, budget {budget:g}", "budget": budget,
                     "alpha": alpha, "gate": True, "fit_accuracy": info["accuracy"],
                     "fit_avg_timesteps": info["avg_timesteps"],
                     "accuracy": ev["accuracy"], "avg_timesteps": ev["avg_timesteps"],
                     "histogram": ev["timesteps_histogram"],
                     "energy_nJ": _energy(ee, x_te, res), **_latency(ee, x_te, res)})
        log(f"{net.name} budget {budget}: alpha {alpha}, test accuracy {ev['accuracy']:.4f}, "
            f"average timesteps {ev['avg_timesteps']:.3f}, {rows[-1]['cycles']:.1f} cycles")
    rtl = {"status": "skipped"}
    if rtl_on:
        alpha, _ = fit_alpha(net, x_tr, y_tr, budget=RTL_BUDGET)
        ee = net.replace(early_exit={"confidence": "margin", "alpha": alpha})
        doc = common.rtl_measure(ee, x_te[:RTL_IMAGES], cache=cache, log=log)
        rtl = {k: doc[k] for k in ("status", "images", "mismatches", "reason") if k in doc}
        rtl["budget"] = RTL_BUDGET
        if doc["status"] == "ok":
            rtl.update(_rtl_cycles(ee, x_te[:RTL_IMAGES], doc))
    return {"model": model_params, "network": net.name,
            "float_test_accuracy": metrics.get("test_accuracy"),
            "test_images": int(len(y_te)), "fit_images": int(len(y_tr)),
            "train_images": int(len(data.y_train)), "rows": rows, "rtl": rtl}


HEADERS = ["mode", "alpha (max: never)", "test accuracy", "avg timesteps", "histogram t=1..T",
           "energy nJ/inference", "vs fixed T", "cycles/inference",
           *(f"µs {k} ({f:g} MHz)" for k, f in CLOCKS_MHZ.items()), "cycles vs fixed T"]


def _table(sec):
    T = sec["model"]["timesteps"]
    base = sec["rows"][T - 1]          # the plain network at its own T
    return [[r["mode"], "-" if r["alpha"] is None else " ".join(
                 "max" if a == MAX_ALPHA else str(a) for a in r["alpha"]) or "-",
             fmt(r["accuracy"], 4), fmt(r["avg_timesteps"], 3),
             "-" if r["histogram"] is None else " ".join(map(str, r["histogram"])),
             fmt(r["energy_nJ"], 4), fmt(r["energy_nJ"] / base["energy_nJ"], 3),
             fmt(r["cycles"], 4), *(fmt(r["us"][k], 3) for k in CLOCKS_MHZ),
             fmt(r["cycles"] / base["cycles"], 3)] for r in sec["rows"]]


def _rtl_line(sec):
    rtl = sec["rtl"]
    line = (f"RTL (Amaranth simulator), budget {RTL_BUDGET:g}, first {rtl.get('images')} test "
            f"images: {rtl['status']}")
    if rtl["status"] == "ok":
        line += (" (every event, readout potential, prediction, timestep count and SPEC §5 "
                 "counter equals the golden model)")
    if rtl.get("cycles_equal"):
        line += (f"; cycles per inference: RTL {fmt(rtl['cycles_rtl'], 4)}, cycle model "
                 f"{fmt(rtl['cycles_model'], 4)} (equal, and so is every core's cycles "
                 f"counter, summed over the images)")
    return line


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default=os.path.join(common.ROOT, "experiments", "results"))
    ap.add_argument("--no-rtl", action="store_true", help="skip the RTL subsets")
    ap.add_argument("--quiet", action="store_true")
    args = ap.parse_args(argv)
    log = common.Progress(NAME, quiet=args.quiet)
    cache = common.cache_dir(NAME)
    full = common.load_data("digits")
    try:
        sections = [_model_rows(p, full, cache, log, not args.no_rtl) for p in MODELS]
    except MlsnnError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    os.makedirs(args.out, exist_ok=True)
    common.write_json(os.path.join(args.out, f"{NAME}.json"), {"models": sections})
    md = ["# Early exit on digits\n",
          "Fixed T rows: the plain network (no exit gate); \"gate on (never exits)\": the same "
          "network with the exit gate and alpha = max (never exit), which runs timestep-major. "
          "Cycles: cycle model (docs/cycles.md), mean over the test images; µs at the demo "
          "network's clocks (docs/synthesis.md). \"vs fixed T\": against the plain network at "
          "its own T.\n"]
    for sec in sections:
        md.append(f"## {sec['network']}: {sec['model']}\n\nTrained on {sec['train_images']} "
                  f"images (float test accuracy {fmt(sec['float_test_accuracy'], 4)}); alpha "
                  f"fitted on {sec['fit_images']} held-out training images; "
                  f"{sec['test_images']} test images.\n\n"
                  + md_table(HEADERS, _table(sec)) + f"\n\n{_rtl_line(sec)}\n")
        print(text_table(HEADERS, _table(sec)))
        print(_rtl_line(sec))
    with open(os.path.join(args.out, f"{NAME}.md"), "w") as f:
        f.write("\n".join(md))
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""IF vs LIF on digits: accuracy and energy per inference at T = 1, 4, 8 (issue 16 §1).

For the ``mlp`` and the ``cnn`` on scikit-learn digits, :func:`golden.train.train` trains, at
every T in {1, 4, 8} and for several seeds, the IF network (leak k = 0) and the LIF networks
with the integer leak k ∈ {1, 2, 3} (β = 1 − 2^−k = 0.5, 0.75, 0.875) on every dense and conv2d
spiking layer (docs/leak.md). Each is exported to the integer IR (:func:`golden.export.export`)
and measured on the whole test split with the integer golden model:

- float and integer test accuracy;
- events per image (output events of every spiking layer, one event whatever its value) and
  memory accesses per image (w_rd + p_rd + p_wr + b_rd + ev_in + ev_out, SPEC §5, summed over
  the layers);
- energy per inference, Lemaire model on the golden counters
  (:func:`golden.energy.ir_report`, the hardware's FIFO depth), the leak priced: (T − 1)·N_out
  shift-subtracts (one ACC each) per leaky layer, term ``leak`` (docs/energy.md). The golden
  counters are the RTL's: ``tests/test_leak.py`` checks every counter, event and potential of
  leaky networks on the Amaranth simulator and on Icarus; this script also runs the first test
  images of some networks through the RTL (``--rtl-images``) and prices the measured counters.

At T = 1 the leak never acts (it applies after the fire of t < T only, and the potential is
cleared at t = T): the float training, the integer net and all its results are those of the IF
net; the script checks it (``t1_same_as_if``).

Run from the repository root::

    python -m experiments.leak              # ~6 min on 2 busy cores (72 trainings)
    python -m experiments.leak --quick      # seconds: a tiny mlp, T = 1, 4, k = 0, 2
    python -m experiments.leak --replot     # seconds: the plot again from leak.json

Outputs (``--out``, default ``experiments/results``): ``leak.json`` and ``leak.md``; the plot
(``--png``, default ``docs/img/leak.png``); checkpoints and RTL runs are cached in
``out/experiments/leak/``.
"""

from __future__ import annotations

if __package__ in (None, ""):          # run as a file: make the repository importable
    import os as _os
    import sys as _sys
    _sys.path.insert(0, _os.path.dirname(_os.path.dirname(_os.path.abspath(__file__))))
    __package__ = "experiments"

import argparse
import json
import os
import sys

import numpy as np
import torch

from experiments import common
from experiments.common import ACCESS, fmt, md_table, text_table
from golden.errors import MlsnnError

NAME = "leak"
TIMESTEPS = (1, 4, 8)
LEAKS = (0, 1, 2, 3)
SEEDS = (0, 1, 2)
LEVELS = 4
EPOCHS = 20
ARCH_KWARGS = {"mlp": dict(hidden=64), "cnn": dict(channels=8, hidden=64)}
#: Test images run on the RTL per network of the first seed at T > 1 (the cnn at T = 8 takes
#: 30-70 s per image in the Amaranth simulator, hence none by default).
RTL_IMAGES = {"mlp": 2, "cnn": 0}
QUICK = dict(archs=("mlp",), timesteps=(1, 4), leaks=(0, 2), seeds=(0,), epochs=2,
             test_images=60, arch_kwargs={"mlp": dict(hidden=16)}, rtl_images={"mlp": 1})
ENERGY_TERMS = ("memory", "synaptic", "addressing", "leak", "total")


def beta(k):
    return 1.0 - 2.0 ** -k if k else 1.0


def leak_acc_expected(net):
    """(T − 1)·N_out summed over the leaky layers: the shift-subtracts of one inference."""
    return (net.timesteps - 1) * sum(net.info(l.name).n_out for l in net.layers
                                     if getattr(l, "leak", 0))


def _same_results(a, b):
    """Two golden runs give the same integers: predictions, readout, events, counters."""
    if not (np.array_equal(a.predictions, b.predictions)
            and np.array_equal(a.readout, b.readout)):
        return False
    if a.events.keys() != b.events.keys() or a.counters.keys() != b.counters.keys():
        return False
    return all(np.array_equal(a.events[n], b.events[n]) for n in a.events) and all(
        np.array_equal(a.counters[n][c], b.counters[n][c])
        for n in a.counters for c in a.counters[n])


def _same_arrays(a, b):
    x, y = a.arrays(), b.arrays()
    return x.keys() == y.keys() and all(np.array_equal(x[k], y[k]) for k in x)


def _measure(net, x, y, res):
    """Golden activity and energy of ``net`` on ``x`` (``res`` = its golden run)."""
    from golden.energy import ir_report

    rep = ir_report(net, x, fifo_depth=common.HW_FIFO_DEPTH, result=res)
    B = len(y)
    names = common.spiking_layers(net)
    acc = {c: sum(res.totals(l.name)[c] for l in net.layers) / B for c in ACCESS}
    e = rep["total"]["energy_nJ"]["exact"]
    return {
        "int_accuracy": float(np.mean(res.predictions == y)),
        "events": sum(res.totals(n)["ev_out"] for n in names) / B,
        "events_per_layer": {n: res.totals(n)["ev_out"] / B for n in names},
        "accesses": acc, "accesses_total": sum(acc.values()),
        "energy_nJ": {k: e[k] for k in ("memory", "synaptic", "addressing", "leak", "total",
                                         "total_sum_z", "total_hw")},
        "energy_ann_nJ": rep["ann"]["total"]["energy_nJ"]["total"],
        "leak_acc": rep["total"]["ops"]["exact"]["acc_leak"],
        "leak_acc_expected": leak_acc_expected(net),
    }


def _rtl(net, x, y, *, cache, log, seed, fresh):
    """Run ``x`` on the RTL and price the measured counters (the leak included)."""
    from golden.energy import ir_report
    from golden.reference import run

    doc = common.rtl_measure(net, x, cache=cache, log=log, seed=seed, fresh=fresh)
    out = {"status": doc["status"], "images": doc.get("images", 0)}
    if doc["status"] == "unsupported":
        out["reason"] = doc["reason"]
        return out
    res = run(net, x)
    rep = ir_report(net, x, measured=doc["summary"], fifo_depth=common.HW_FIFO_DEPTH,
                    result=res)
    tot = rep["total"]
    out.update(
        equals_exact=bool(doc["status"] == "ok" and rep["measured_equals_exact"]),
        mismatches=doc.get("mismatches", [])[:5] + rep["measured"]["mismatches"][:5],
        energy_measured_nJ=tot["energy_nJ"]["measured"]["total"],
        energy_exact_nJ=tot["energy_nJ"]["exact"]["total"],
        leak_measured_nJ=tot["energy_nJ"]["measured"]["leak"],
        leak_acc_measured=tot["ops"]["measured"]["acc_leak"],
        accesses_measured={c: sum(doc["layers"][l.name][c] for l in net.layers)
                           for c in ACCESS},
        accuracy=float(np.mean(res.predictions == y)))
    return out


def run_experiment(*, archs=("mlp", "cnn"), timesteps=TIMESTEPS, leaks=LEAKS, seeds=SEEDS,
                   levels=LEVELS, epochs=EPOCHS, lr=1e-2, test_images=None, arch_kwargs=None,
                   rtl_images=None, cache=None, retrain=False, log=None, w_bits=8):
    """Train, export, measure every (arch, T, k, seed); return the JSON-ready results.

    Parameters
    ----------
    archs : ``"mlp"``, ``"cnn"``
    timesteps : T values
    leaks : k values; must hold 0 (the IF reference)
    seeds : training seeds (the split is fixed)
    levels, epochs, lr, w_bits : training and export
    test_images : int or None
        Use only the first test images (quick runs); default the whole test split.
    arch_kwargs : {arch: dict} model sizes (default :data:`ARCH_KWARGS`)
    rtl_images : {arch: int} images run on the RTL for the first seed at T > 1 (0: none)
    cache : checkpoint and RTL cache directory (default ``out/experiments/leak``)
    """
    from golden.reference import run

    if 0 not in leaks:
        raise MlsnnError("leaks must include 0, the IF reference")
    arch_kwargs = arch_kwargs or ARCH_KWARGS
    unknown = [a for a in archs if a not in arch_kwargs]
    if unknown:
        raise MlsnnError(f"arch must be one of {', '.join(arch_kwargs)}, not {unknown[0]!r}")
    log = log or common.Progress(NAME)
    cache = common.cache_dir(NAME) if cache is None else cache
    os.makedirs(cache, exist_ok=True)
    rtl_images = dict(RTL_IMAGES if rtl_images is None else rtl_images)
    data = common.load_data("digits")
    n = test_images or len(data.y_test)
    x, y = data.x_test[:n], data.y_test[:n]
    leaks = (0,) + tuple(k for k in leaks if k != 0)       # IF first: the T = 1 reference
    runs = []
    for arch in archs:
        for T in timesteps:
            for seed in seeds:
                ref = None
                for k in leaks:
                    tag = f"{arch} T={T} k={k} seed={seed}"
                    model, metrics = common.train_cached(
                        cache, data=data, retrain=retrain,
                        log=lambda m, t=tag: log(f"{t}: {m}"), arch=arch, timesteps=T,
                        levels=levels, epochs=epochs, seed=seed, lr=lr, leak=k,
                        **arch_kwargs[arch])
                    net = common.export_net(model, w_bits)
                    res = run(net, x)
                    entry = {"arch": arch, "T": T, "leak": k, "beta": beta(k), "seed": seed,
                             "float_accuracy": float(np.mean(model.predict(x).numpy() == y)),
                             "leaky_layers": {l.name: l.leak for l in net.layers
                                              if getattr(l, "leak", 0)},
                             **_measure(net, x, y, res)}
                    if k == 0:
                        ref = (net, res)
                    elif T == 1:
                        entry["t1_same_as_if"] = bool(_same_arrays(net, ref[0])
                                                      and _same_results(res, ref[1]))
                    n_rtl = int(rtl_images.get(arch, 0))
                    if n_rtl and T > 1 and seed == seeds[0]:
                        entry["rtl"] = _rtl(net, x[:n_rtl], y[:n_rtl], cache=cache, log=log,
                                            seed=seed, fresh=retrain)
                    log(f"{tag}: integer {100 * entry['int_accuracy']:.2f} %, "
                        f"{entry['events']:.1f} events, {entry['energy_nJ']['total']:.2f} nJ "
                        f"(leak {entry['energy_nJ']['leak']:.4f})")
                    runs.append(entry)
    return {
        "experiment": NAME,
        "settings": {"dataset": "digits", "test_images": int(len(y)), "epochs": epochs,
                     "lr": lr, "levels": levels, "w_bits": w_bits, "archs": list(archs),
                     "arch_kwargs": {a: arch_kwargs[a] for a in archs},
                     "timesteps": list(timesteps), "leaks": list(leaks), "seeds": list(seeds),
                     "rtl_images": rtl_images, "fifo_depth": common.HW_FIFO_DEPTH,
                     "energy_model": "Lemaire et al. (golden.energy.ir_report), 45 nm, nJ per "
                                     "inference, golden counters; a multi-level event as N "
                                     "ACC; leak (T-1)*N_out ACC per leaky layer"},
        "runs": runs,
        "summary": summarize(runs),
    }


def _ms(values):
    """Mean and sample standard deviation (None for one value)."""
    v = np.asarray(values, dtype=float)
    return float(v.mean()), float(v.std(ddof=1)) if len(v) > 1 else None


def summarize(runs):
    """Per (arch, T, k): mean ± std over the seeds, and the paired differences to IF."""
    groups = {}
    for r in runs:
        groups.setdefault((r["arch"], r["T"], r["leak"]), []).append(r)
    out = []
    for (arch, T, k), rs in groups.items():
        base = {r["seed"]: r for r in groups[(arch, T, 0)]}
        pairs = [(r, base[r["seed"]]) for r in rs if r["seed"] in base]
        s = {"arch": arch, "T": T, "leak": k, "beta": beta(k), "seeds": [r["seed"] for r in rs]}
        for key, get in (("int_accuracy", lambda r: r["int_accuracy"]),
                         ("float_accuracy", lambda r: r["float_accuracy"]),
                         ("events", lambda r: r["events"]),
                         ("accesses", lambda r: r["accesses_total"]),
                         ("energy_nJ", lambda r: r["energy_nJ"]["total"]),
                         ("leak_nJ", lambda r: r["energy_nJ"]["leak"])):
            s[key] = _ms([get(r) for r in rs])
        s["d_accuracy_vs_if"] = _ms([a["int_accuracy"] - b["int_accuracy"] for a, b in pairs])
        s["energy_vs_if"] = _ms([a["energy_nJ"]["total"] / b["energy_nJ"]["total"]
                                 for a, b in pairs])
        s["leak_acc"] = rs[0]["leak_acc"]
        s["leak_acc_is_analytic"] = all(r["leak_acc"] == r["leak_acc_expected"] for r in rs)
        if T == 1 and k:
            s["t1_same_as_if"] = all(r["t1_same_as_if"] for r in rs)
        rtl = [r["rtl"] for r in rs if "rtl" in r]
        if rtl:
            s["rtl"] = {"images": rtl[0]["images"], "status": rtl[0]["status"],
                        "equals_exact": rtl[0].get("equals_exact")}
        out.append(s)
    return out


# -- reports ------------------------------------------------------------------------------------

def _pm(ms, scale=1.0, digits=2):
    m, s = ms
    if s is None:
        return f"{scale * m:.{digits}f}"
    return f"{scale * m:.{digits}f} ± {scale * s:.{digits}f}"


def _rtl_word(s):
    r = s.get("rtl")
    if not r:
        return "-"
    if r["status"] == "unsupported":
        return "unsupported"
    return f"{r['images']} img: {'equal' if r['equals_exact'] else 'MISMATCH'}"


HEADERS = ("arch", "T", "k (β)", "int acc %", "Δacc vs IF (pts)", "float acc %", "events/img",
           "mem. accesses/img", "E nJ/inf", "E/E_IF", "leak nJ (ACC)", "T=1 = IF", "RTL")


def _cells(s):
    same = {True: "identical", False: "DIFFERS"}.get(s.get("t1_same_as_if"), "-")
    return (s["arch"], s["T"], f"{s['leak']} ({s['beta']:g})" if s["leak"] else "0 (IF)",
            _pm(s["int_accuracy"], 100),
            _pm(s["d_accuracy_vs_if"], 100) if s["leak"] else "-",
            _pm(s["float_accuracy"], 100), _pm(s["events"], digits=1),
            _pm(s["accesses"], digits=0), _pm(s["energy_nJ"], digits=2),
            _pm(s["energy_vs_if"], digits=3) if s["leak"] else "-",
            f"{s['leak_nJ'][0]:.4f} ({fmt(s['leak_acc'])})", same, _rtl_word(s))


def _settings_line(result):
    s = result["settings"]
    return (f"digits, {s['test_images']} test images, N = {s['levels']}, {s['epochs']} epochs, "
            f"seeds {s['seeds']} (mean ± sample std over seeds), w_bits {s['w_bits']}, "
            f"models {s['arch_kwargs']}; energy: {s['energy_model']}")


def to_text(result):
    return "\n".join([_settings_line(result), "",
                      text_table(HEADERS, [_cells(s) for s in result["summary"]])])


def to_markdown(result, png=None):
    out = ["# IF vs LIF on digits", "", _settings_line(result) + ".", ""]
    if png:
        out += [f"![IF vs LIF]({png})", ""]
    out += [md_table(HEADERS, [_cells(s) for s in result["summary"]]), ""]
    return "\n".join(out)


def plot(result, path):
    """Accuracy vs energy, one panel per (arch, T): IF and each leak k, mean ± std."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    s = result["settings"]
    archs, steps = s["archs"], s["timesteps"]
    fig, axes = plt.subplots(len(archs), len(steps), figsize=(4.6 * len(steps),
                                                              3.9 * len(archs)), squeeze=False)
    colors = {0: "black", 1: "tab:red", 2: "tab:orange", 3: "tab:blue", 4: "tab:green"}
    for row, arch in zip(axes, archs):
        for ax, T in zip(row, steps):
            rs = sorted((r for r in result["summary"] if (r["arch"], r["T"]) == (arch, T)),
                        key=lambda r: r["leak"])
            for r in rs:
                k = r["leak"]
                ax.errorbar(r["energy_nJ"][0], 100 * r["int_accuracy"][0],
                            xerr=r["energy_nJ"][1] or 0.0,
                            yerr=100 * (r["int_accuracy"][1] or 0.0),
                            marker="s" if k == 0 else "o", ms=8 if k == 0 else 6,
                            color=colors.get(k, "tab:purple"), capsize=3, ls="none",
                            label="IF (k = 0)" if k == 0 else f"LIF k = {k} (β = {beta(k):g})")
            title = f"{arch}, T = {T}"
            if T == 1 and all(r.get("t1_same_as_if", True) for r in rs):
                title += ": every k = IF (identical)"
            ax.set_title(title, fontsize=10)
            ax.grid(alpha=0.3)
            ax.ticklabel_format(axis="x", style="plain", useOffset=False)
            # Every panel has its own scales, so every panel names both of its axes.
            ax.set_xlabel("energy per inference [nJ]")
            ax.set_ylabel("integer test accuracy [%]")
        row[-1].legend(fontsize=8, loc="best")
    fig.suptitle(f"IF vs LIF on digits, N = {s['levels']}: mean ± std over seeds {s['seeds']}, "
                 f"{s['epochs']} epochs, {s['test_images']} test images (1 image = "
                 f"{100 / s['test_images']:.2f} %); energy: Lemaire model on the golden (= RTL) "
                 "counters, leak priced", fontsize=10)
    fig.tight_layout()
    os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
    fig.savefig(path, dpi=100)
    plt.close(fig)


def write_outputs(result, out_dir, png):
    os.makedirs(out_dir, exist_ok=True)
    base = os.path.join(out_dir, NAME)
    common.write_json(base + ".json", result)
    plot(result, png)
    rel = os.path.relpath(png, out_dir)
    with open(base + ".md", "w") as f:
        f.write(to_markdown(result, png=rel) + "\n")
    return {"json": base + ".json", "md": base + ".md", "png": png}


def replot(out_dir, png):
    """Draw the plot again from ``leak.json`` in ``out_dir`` (nothing is trained or run)."""
    path = os.path.join(out_dir, NAME + ".json")
    try:
        with open(path) as f:
            result = json.load(f)
    except (OSError, ValueError) as e:
        raise MlsnnError(f"cannot read {path}: {e}")
    if not isinstance(result, dict) or result.get("experiment") != NAME:
        raise MlsnnError(f"{path} is not a result of experiments/{NAME}.py")
    plot(result, png)
    return png


def _ints(text):
    try:
        return tuple(int(v) for v in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected integers like 1,4,8, not {text!r}")


def _per_arch(text):
    out = {}
    for part in text.split(","):
        k, sep, v = part.partition("=")
        if not sep or not v.strip().isdigit():
            raise argparse.ArgumentTypeError(f"expected e.g. mlp=2,cnn=0, not {text!r}")
        out[k.strip()] = int(v)
    return out


def main(argv=None):
    p = argparse.ArgumentParser(prog=f"python -m experiments.{NAME}",
                                description=__doc__.split("\n\n")[0])
    p.add_argument("--quick", action="store_true",
                   help="tiny mlp, T = 1,4, k = 0,2, one seed, 2 epochs (for tests)")
    p.add_argument("--archs", default="mlp,cnn")
    p.add_argument("--timesteps", type=_ints, default=TIMESTEPS)
    p.add_argument("--leaks", type=_ints, default=LEAKS)
    p.add_argument("--seeds", type=_ints, default=SEEDS)
    p.add_argument("--levels", type=int, default=LEVELS)
    p.add_argument("--epochs", type=int, default=EPOCHS)
    p.add_argument("--rtl-images", type=_per_arch, default=dict(RTL_IMAGES),
                   help="test images run on the RTL per network of the first seed at T > 1, "
                        "e.g. mlp=2,cnn=0")
    p.add_argument("--out", default=None,
                   help="directory of leak.json and leak.md (default experiments/results; "
                        "with --quick the cache directory, so that the results stay)")
    p.add_argument("--png", default=None,
                   help="the plot (default docs/img/leak.png; with --quick in --out)")
    p.add_argument("--cache", default=None, help="checkpoint/RTL cache directory")
    p.add_argument("--retrain", action="store_true", help="ignore cached checkpoints and RTL runs")
    p.add_argument("--threads", type=int, default=1, help="torch threads (default 1)")
    p.add_argument("--replot", action="store_true",
                   help="only draw the plot again from leak.json in --out")
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    if args.quick:
        kw = dict(QUICK)
        out = args.out or os.path.join(args.cache or common.cache_dir(NAME), "quick")
        png = args.png or os.path.join(out, NAME + ".png")
    else:
        kw = dict(archs=tuple(a.strip() for a in args.archs.split(",")),
                  timesteps=args.timesteps, leaks=args.leaks, seeds=args.seeds,
                  epochs=args.epochs, rtl_images=args.rtl_images)
        out = args.out or os.path.join(common.ROOT, "experiments", "results")
        png = args.png or os.path.join(common.ROOT, "docs", "img", NAME + ".png")
    if args.replot:
        try:
            print(f"written: {replot(out, png)}")
        except MlsnnError as e:
            print(f"error: {e}", file=sys.stderr)
            return 2
        return 0
    try:
        result = run_experiment(levels=args.levels, cache=args.cache, retrain=args.retrain,
                                **kw)
    except MlsnnError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    files = write_outputs(result, out, png)
    print(to_text(result))
    print(f"\nwritten: {', '.join(files.values())}")
    bad = [s for s in result["summary"]
           if s.get("t1_same_as_if") is False or not s["leak_acc_is_analytic"]
           or (s.get("rtl") or {}).get("equals_exact") is False]
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())

"""SEW-ResNet vs Sparse-ResNet: accuracy and events per join (seed 000 §4.3–4.4, §6.4–6.5).

In a SEW-ResNet block (Fig. 3b) the join adds the events of the direct and the residual path and
passes both streams on: the next layer receives every event of both (the spike avalanche, Fig.
4). In a Sparse-ResNet block (Fig. 3d) a barrier multi-level neuron after the sum re-encodes
them. This script trains both on scikit-learn digits at T = 1 and N ∈ {1, 2, 4, 8}, with a
miniature ResNet of the same structure as ResNet18's first stages: stem conv, two identity
blocks (joins sum0, sum1, where the avalanche builds up) and one downsampling block (stride-2
conv, 1×1 stride-2 spiking shortcut, join sum2), then the readout. Per configuration it
reports the float and integer-golden accuracy (mean over seeds), the events on the direct path,
the residual path and after every join (Fig. 10), the total activity (Fig. 11) and the Lemaire
energy.

Event counts are exact (integer golden model, whole test set). The RTL is tried on a subset of
the test images (first seed) and, when the hardware supports residual joins, its counters are
checked equal to the golden ones and reported; otherwise the output says so.

Run from the repository root::

    python -m experiments.sew_vs_sparse     # ~8 min idle, ~16 min on a busy machine (training)

Outputs (``--out``, default ``experiments/results``): ``sew_vs_sparse.json``, ``.md``, ``.png``;
checkpoints and RTL runs are cached in ``out/experiments/``.
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
import torch

from experiments import common
from experiments.common import fmt, md_table, rtl_word, text_table
from golden.ir import Join

NAME = "sew_vs_sparse"
ARCHS = ("sew-resnet", "sparse-resnet")
LABEL = {"sew-resnet": "SEW", "sparse-resnet": "Sparse"}
LEVELS = (1, 2, 4, 8)
MODEL = dict(channels=8, blocks=3, block_strides=(1, 1, 2))
SEEDS = (0, 1, 2)
RTL_IMAGES = 3


def _measure(net, layers):
    """Per-join and total activity from per-layer mean counters ``layers``."""
    joins = []
    for i, l in enumerate(x for x in net.layers if isinstance(x, Join)):
        direct, resid = l.inputs
        joins.append({"name": l.name, "sum": f"sum{i}", "mode": l.mode,
                      "direct_from": direct, "residual_from": resid,
                      "direct": layers[direct]["ev_out"], "residual": layers[resid]["ev_out"],
                      "out": layers[l.name]["ev_out"]})
    out_layers = [l for l in net.layers if not l.readout]
    totals = {
        # Every layer's output stream, SEW sums included: the events transferred from one
        # layer to the next (seed 000 §6.4, Fig. 10-11).
        "events": sum(layers[l.name]["ev_out"] for l in out_layers),
        # Events emitted by neurons (conv layers, barriers); a SEW join has none.
        "neuron_events": sum(layers[l.name]["ev_out"] for l in out_layers
                             if not l.passthrough),
        # Events consumed by the cores that do work (conv, barrier, readout; pixels included).
        "events_in": sum(layers[l.name]["ev_in"] for l in net.layers
                         if not l.passthrough),
        # Events into the layers with weights (conv, dense readout): each costs a weight and
        # potential read and a potential write per target.
        "events_in_weighted": sum(layers[l.name]["ev_in"] for l in net.layers
                                  if "weight" in l.arrays),
        "syn_updates": sum(layers[l.name]["syn_updates"] for l in net.layers),
    }
    for c in ("w_rd", "p_rd", "p_wr", "b_rd"):
        totals[c] = sum(layers[l.name][c] for l in net.layers)
    return joins, totals


def _mean(values):
    """Element-wise mean of equally shaped nested dicts/lists of numbers (strings kept)."""
    first = values[0]
    if isinstance(first, dict):
        return {k: _mean([v[k] for v in values]) for k in first}
    if isinstance(first, list):
        return [_mean([v[i] for v in values]) for i in range(len(first))]
    if isinstance(first, (int, float)) and not isinstance(first, bool):
        return float(np.mean(values))
    return first


def run_experiment(*, archs=ARCHS, levels=LEVELS, seeds=SEEDS, epochs=15, rtl_images=RTL_IMAGES,
                   test_images=None, model=None, lr=1e-2, cache=None, retrain=False, log=None,
                   w_bits=8):
    """Train, export, measure; return the JSON-ready results.

    Parameters
    ----------
    archs : ``"sew-resnet"``, ``"sparse-resnet"``
    levels : N values (T = 1)
    seeds : training seeds; accuracies and activities are averaged over them
    epochs, lr : training
    rtl_images : test images run through the RTL per configuration (first seed; 0: none)
    test_images : use only the first test images (tiny runs); default all 450
    model : model sizes (default :data:`MODEL`)
    cache : directory of checkpoints and RTL runs (default ``out/experiments/<NAME>``)
    """
    log = log or common.Progress(NAME)
    cache = common.cache_dir(NAME) if cache is None else cache
    os.makedirs(cache, exist_ok=True)
    model_kw = dict(MODEL if model is None else model)
    data = common.load_data("digits")
    x_test, y_test = data.x_test, data.y_test
    if test_images:
        x_test, y_test = x_test[:test_images], y_test[:test_images]
    runs = []
    for N in levels:
        for arch in archs:
            per_seed = []
            rtl = {"status": "skipped", "images": 0}
            for k, seed in enumerate(seeds):
                tag = f"{LABEL[arch]} N={N} seed {seed}"
                m, metrics = common.train_cached(
                    cache, data=data, retrain=retrain, log=lambda s, t=tag: log(f"{t}: {s}"),
                    arch=arch, timesteps=1, levels=N, epochs=epochs, seed=seed, lr=lr, **model_kw)
                float_acc = float(np.mean(m.predict(x_test).numpy() == y_test))
                net = common.export_net(m, w_bits)
                res, gold = common.golden_eval(net, x_test, y_test)
                joins, totals = _measure(net, gold["layers"])
                energy = common.energy_summary(net, x_test, res)
                per_seed.append({"seed": seed, "float_accuracy": float_acc,
                                 "int_accuracy": gold["accuracy"], "layers": gold["layers"],
                                 "joins": joins, "totals": totals, "energy_nJ": energy})
                log(f"{tag}: float {float_acc:.3f}, integer {gold['accuracy']:.3f}, "
                    f"{totals['events']:.0f} events/inference, joins "
                    f"{', '.join(fmt(j['out']) for j in joins)}")
                if k == 0 and rtl_images:
                    xs = x_test[:rtl_images]
                    rtl = common.rtl_measure(net, xs, cache=cache, log=log, seed=seed,
                                             fresh=retrain)
                    if rtl["status"] in ("ok", "mismatch"):
                        _, gold_s = common.golden_eval(net, xs, y_test[:rtl_images])
                        rtl["joins"], rtl["totals"] = _measure(net, rtl["layers"])
                        rtl["golden_totals_same_images"] = _measure(net, gold_s["layers"])[1]
                    else:
                        log(f"{tag}: RTL not run: {rtl['reason']}")
            mean = _mean([{k: v for k, v in s.items() if k != "seed"} for s in per_seed])
            runs.append({"arch": arch, "label": LABEL[arch], "T": 1, "N": N,
                         "layer_names": [l.name for l in net.layers if not l.readout],
                         **mean,
                         "float_accuracy_seeds": [s["float_accuracy"] for s in per_seed],
                         "int_accuracy_seeds": [s["int_accuracy"] for s in per_seed],
                         "events_seeds": [s["totals"]["events"] for s in per_seed],
                         "totals_seeds": [s["totals"] for s in per_seed],
                         "join_out_seeds": [[j["out"] for j in s["joins"]] for s in per_seed],
                         "rtl": rtl})
    result = {
        "experiment": NAME,
        "settings": {"dataset": "digits", "test_images": int(len(y_test)), "epochs": epochs,
                     "seeds": list(seeds), "lr": lr, "w_bits": w_bits, "timesteps": 1,
                     "levels": list(levels), "model": {**model_kw,
                                                       "block_strides": list(
                                                           model_kw.get("block_strides", ()))},
                     "rtl_images": rtl_images, "fifo_depth": common.HW_FIFO_DEPTH},
        "runs": runs,
        "comparison": _compare(runs, archs, levels),
    }
    return result


def _find(runs, arch, N):
    for r in runs:
        if r["arch"] == arch and r["N"] == N:
            return r
    raise KeyError((arch, N))


def _compare(runs, archs, levels):
    if set(archs) != set(ARCHS):
        return []
    out = []
    for N in levels:
        sew, sp = _find(runs, "sew-resnet", N), _find(runs, "sparse-resnet", N)
        e = {"N": N}
        for key in ("events", "neuron_events", "events_in", "events_in_weighted",
                    "syn_updates"):
            a, b = sew["totals"][key], sp["totals"][key]
            e[f"{key}_reduction"] = (a - b) / a if a else None
        a, b = sew["energy_nJ"]["exact"]["total"], sp["energy_nJ"]["exact"]["total"]
        e["energy_reduction"] = (a - b) / a if a else None
        e["float_accuracy_gap"] = sew["float_accuracy"] - sp["float_accuracy"]
        e["int_accuracy_gap"] = sew["int_accuracy"] - sp["int_accuracy"]
        e["join_reduction"] = [
            {"sum": js["sum"], "sew": js["out"], "sparse": jp["out"],
             "reduction": (js["out"] - jp["out"]) / js["out"] if js["out"] else None}
            for js, jp in zip(sew["joins"], sp["joins"])]
        out.append(e)
    return out


# -- reports ------------------------------------------------------------------------------------

def _pm(values, scale=100.0):
    v = np.asarray(values) * scale
    return f"{v.mean():.1f} ± {v.std():.1f}" if len(v) > 1 else f"{v.mean():.1f}"


def _pct(v, digits=1, sign=False):
    if v is None:
        return "-"
    return f"{100 * v:{'+' if sign else ''}.{digits}f}"


def tables(result):
    runs = result["runs"]
    t = {}
    rows = []
    for r in runs:
        tot = r["totals"]
        rows.append([r["label"], r["N"], _pm(r["float_accuracy_seeds"]),
                     _pm(r["int_accuracy_seeds"]), fmt(tot["events"]), fmt(tot["neuron_events"]),
                     fmt(tot["events_in"]), fmt(tot["events_in_weighted"]),
                     fmt(tot["syn_updates"]),
                     fmt(r["energy_nJ"]["exact"]["total"]), rtl_word(r)])
    t["summary"] = (["net", "N", "float acc %", "int acc %", "events (all layer outputs)",
                     "neuron events", "events into cores", "events into conv/dense",
                     "synaptic updates", "energy nJ",
                     "RTL"], rows)
    rows = []
    for c in result["comparison"]:
        rows.append([c["N"]] + [_pct(c[k]) for k in (
            "events_reduction", "neuron_events_reduction", "events_in_reduction",
            "events_in_weighted_reduction", "syn_updates_reduction", "energy_reduction")]
            + [" / ".join(_pct(j["reduction"], 0) for j in c["join_reduction"]),
               _pct(c["float_accuracy_gap"], sign=True), _pct(c["int_accuracy_gap"], sign=True)])
    if rows:
        joins = " / ".join(j["sum"] for j in result["comparison"][0]["join_reduction"])
        t["reduction"] = (["N", "events %", "neuron events %", "events into cores %",
                           "events into conv/dense %", "syn. updates %", "energy %",
                           f"join outputs % ({joins})",
                           "float acc SEW−Sparse", "int acc SEW−Sparse"], rows)
    rows = []
    for r in runs:
        for j in r["joins"]:
            rows.append([r["label"], r["N"], f"{j['sum']} ({j['name']})", j["residual_from"],
                         fmt(j["direct"]), fmt(j["residual"]), fmt(j["out"])])
    t["joins"] = (["net", "N", "join", "residual from", "direct path events",
                   "residual path events", "events after the join"], rows)
    names = runs[0]["layer_names"]
    rows = [[r["label"], r["N"]] + [fmt(r["layers"][n]["ev_out"]) for n in names] for r in runs]
    t["layers"] = (["net", "N"] + names, rows)
    rows = []
    for r in runs:
        s = r["rtl"]
        if s.get("status") in ("ok", "mismatch"):
            m, g = s["totals"], s["golden_totals_same_images"]
            rows.append([r["label"], r["N"], s["images"], fmt(m["events"]),
                         fmt(m["syn_updates"]), fmt(s["cycles"]),
                         "yes" if m == g and s["status"] == "ok" else "NO"])
    t["rtl"] = (["net", "N", "images", "events", "synaptic updates", "cycles", "= golden"], rows)
    return t


TITLES = {
    "summary": "Accuracy (mean ± sd over seeds) and activity per inference (golden model, all "
               "test images, mean over seeds)",
    "reduction": "Sparse-ResNet vs SEW-ResNet: reduction of activity and energy "
                 "(positive = Sparse lower), accuracy gap (percentage points)",
    "joins": "Events per inference at every join (cf. Fig. 10)",
    "layers": "Events emitted per inference, layer by layer (SEW joins: both streams)",
    "rtl": "RTL-measured (Amaranth simulator, first seed, first test images)",
}


def _settings_line(result):
    s = result["settings"]
    m = s["model"]
    return (f"digits, {s['test_images']} test images, T = 1, {s['epochs']} epochs, seeds "
            f"{s['seeds']}, {m['channels']} channels, {m['blocks']} blocks with strides "
            f"{m['block_strides']}, w_bits {s['w_bits']}")


def _rtl_note(result):
    not_rtl = [r for r in result["runs"] if r["rtl"]["status"] == "unsupported"]
    if not not_rtl:
        return None
    return (f"RTL measurement not possible: {not_rtl[0]['rtl']['reason']} (hw.network). "
            f"All counts are from the integer golden model, which the RTL must equal exactly "
            f"(SPEC §5). TODO: rerun this script when the hardware supports residual joins; it "
            f"then measures and checks the RTL counters by itself.")


def to_text(result):
    out = [_settings_line(result)]
    note = _rtl_note(result)
    if note:
        out += ["", note]
    for k, (h, rows) in tables(result).items():
        if rows:
            out += ["", TITLES[k], text_table(h, rows)]
    return "\n".join(out)


def to_markdown(result, png=None):
    out = ["# SEW-ResNet vs Sparse-ResNet", "", _settings_line(result) + ".", ""]
    note = _rtl_note(result)
    if note:
        out += [f"**{note}**", ""]
    if png:
        out += [f"![SEW vs Sparse]({png})", ""]
    for k, (h, rows) in tables(result).items():
        if rows:
            out += [f"### {TITLES[k]}", "", md_table(h, rows), ""]
    return "\n".join(out)


def plot(result, path):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    runs = result["runs"]
    archs = [a for a in ARCHS if any(r["arch"] == a for r in runs)]
    colors = {"sew-resnet": "tab:orange", "sparse-resnet": "tab:green"}
    levels = result["settings"]["levels"]
    fig, axes = plt.subplots(2, 2, figsize=(14, 9.5))
    axes = [axes[0, 0], axes[0, 1], axes[1, 0], axes[1, 1]]
    ax = axes[0]
    for a in archs:
        rs = [_find(runs, a, N) for N in levels]
        for key, style, lab in (("float_accuracy_seeds", "o-", "float"),
                                ("int_accuracy_seeds", "s--", "integer golden")):
            v = np.array([r[key] for r in rs]) * 100
            ax.errorbar(levels, v.mean(1), yerr=v.std(1), fmt=style, color=colors[a],
                        alpha=1.0 if lab == "float" else 0.6, capsize=3,
                        label=f"{LABEL[a]}-ResNet, {lab}")
    ax.set_title("test accuracy, T = 1 (cf. Fig. 11A)")
    ax.set_ylabel("accuracy [%] (mean ± sd over seeds)")
    ax = axes[1]
    for a in archs:
        rs = [_find(runs, a, N) for N in levels]
        v = np.array([r["events_seeds"] for r in rs])
        ax.errorbar(levels, v.mean(1), yerr=v.std(1), fmt="o-", color=colors[a], capsize=3,
                    label=f"{LABEL[a]}-ResNet: all layer outputs")
        if a == "sew-resnet":
            ax.plot(levels, [r["totals"]["neuron_events"] for r in rs], "s:", color=colors[a],
                    alpha=0.7, label="SEW-ResNet: conv outputs only (sums not counted)")
    ax.set_ylim(bottom=0)
    ax.set_title("events per inference (cf. Fig. 11B)")
    ax.set_ylabel("events per inference")
    ax = axes[3]
    for a in archs:
        rs = [_find(runs, a, N) for N in levels]
        ax.plot(levels, [r["energy_nJ"]["exact"]["total"] for r in rs], "o-", color=colors[a],
                label=f"{LABEL[a]}-ResNet")
    ax.set_ylim(bottom=0)
    ax.set_title("energy per inference (Lemaire model)")
    ax.set_ylabel("energy [nJ]")
    for ax in (axes[0], axes[1], axes[3]):
        ax.set_xlabel("levels N")
        ax.set_xscale("log", base=2)
        ax.set_xticks(levels)
        ax.set_xticklabels([str(n) for n in levels])
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    ax = axes[2]
    n_show = 4 if 4 in levels else levels[-1]
    names = runs[0]["layer_names"]
    for a in archs:
        r = _find(runs, a, n_show)
        ax.plot(range(len(names)), [r["layers"][n]["ev_out"] for n in names], "o-",
                color=colors[a], label=f"{LABEL[a]}-ResNet")
    sums = {j["name"]: j["sum"] for j in runs[0]["joins"]}
    ax.set_xticks(range(len(names)))
    ax.set_xticklabels([sums.get(n, n) for n in names], rotation=60, ha="right", fontsize=8)
    for k, n in enumerate(names):
        if n in sums:
            ax.axvline(k, color="gray", alpha=0.25, lw=6)
    ax.set_ylim(bottom=0)
    ax.set_title(f"events per layer, N = {n_show} (cf. Fig. 10; joins shaded)")
    ax.set_ylabel("events emitted per inference")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    s = result["settings"]
    fig.suptitle(f"SEW-ResNet vs Sparse-ResNet on digits (T = 1, {s['epochs']} epochs, seeds "
                 f"{s['seeds']}, {s['test_images']} test images, golden counts)", fontsize=12)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def write_outputs(result, out_dir):
    os.makedirs(out_dir, exist_ok=True)
    base = os.path.join(out_dir, NAME)
    common.write_json(base + ".json", result)
    plot(result, base + ".png")
    with open(base + ".md", "w") as f:
        f.write(to_markdown(result, png=NAME + ".png") + "\n")
    return {"json": base + ".json", "md": base + ".md", "png": base + ".png"}


def main(argv=None):
    p = argparse.ArgumentParser(prog=f"python -m experiments.{NAME}",
                                description=__doc__.split("\n\n")[0])
    p.add_argument("--epochs", type=int, default=15)
    p.add_argument("--seeds", type=int, nargs="+", default=list(SEEDS))
    p.add_argument("--levels", type=int, nargs="+", default=list(LEVELS))
    p.add_argument("--rtl-images", type=int, default=RTL_IMAGES,
                   help="test images run on the RTL per configuration (first seed; 0 for none)")
    p.add_argument("--out", default=os.path.join(common.ROOT, "experiments", "results"))
    p.add_argument("--cache", default=None, help="checkpoint/RTL cache directory")
    p.add_argument("--retrain", action="store_true", help="ignore cached checkpoints and RTL runs")
    p.add_argument("--threads", type=int, default=1, help="torch threads (default 1)")
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    result = run_experiment(levels=tuple(args.levels), seeds=tuple(args.seeds),
                            epochs=args.epochs, rtl_images=args.rtl_images, cache=args.cache,
                            retrain=args.retrain)
    files = write_outputs(result, args.out)
    print(to_text(result))
    print(f"\nwritten: {', '.join(files.values())}")
    bad = [r for r in result["runs"] if r["rtl"]["status"] == "mismatch"]
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())

"""Equal quantization intervals, binary vs multi-level (seed 000 §6.1, Fig. 6–7, Table 3).

A binary IF neuron over T timesteps and a multi-level neuron with N levels in one timestep both
quantize their input into N·T + 1 levels. This script trains, for the ``mlp`` and the ``cnn``
on scikit-learn digits, the binary sweep {T ∈ 1, 2, 4, 8; N = 1} and the multi-level sweep
{T = 1; N ∈ 1, 2, 4, 8} (the pairs [T=4, N=1] vs [T=1, N=4] and [T=8, N=1] vs [T=1, N=8] have
equal intervals), exports each to the integer IR and reports:

- float and integer-golden test accuracy;
- events per inference, per layer and in total (the paper's #Spikes, eq. 11–12: one event
  whatever its value);
- memory accesses per inference (w_rd, p_rd, p_wr, b_rd, ev_in, ev_out), measured by the RTL
  counters on a subset of the test images (Amaranth simulator; every event, potential and
  counter is checked equal to the golden model), and the golden counters on the whole test set;
- energy per inference from the Lemaire model (Table-3 breakdown) and E_N / E_binary.

Run from the repository root::

    python -m experiments.quantization_intervals     # ~7 min idle, ~13 min on a busy machine
    python -m experiments.quantization_intervals --rtl-images mlp=20,cnn=5   # docs/results.md

The first run trains and simulates; reruns reuse the cached checkpoints and RTL runs. The RTL
(Amaranth's Python simulator) runs ~2-4 kcycles/s: a cnn image at T=8 takes 30-70 s, which is
why the RTL subset is small; the golden counters cover the whole test set.

Outputs (``--out``, default ``experiments/results``): ``quantization_intervals.json``,
``.md`` and ``.png``; checkpoints and RTL runs are cached in ``out/experiments/``.
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
from experiments.common import ACCESS, fmt, md_table, rtl_word, text_table

NAME = "quantization_intervals"
#: (T, N): the binary sweep and the multi-level sweep.
CONFIGS = ((1, 1), (2, 1), (4, 1), (8, 1), (1, 2), (1, 4), (1, 8))
#: Pairs with equal quantization intervals: (binary, multi-level).
PAIRS = (((4, 1), (1, 4)), ((8, 1), (1, 8)))
ARCH_KWARGS = {"mlp": dict(hidden=64), "cnn": dict(channels=8, hidden=64)}
RTL_IMAGES = {"mlp": 10, "cnn": 2}
ENERGY_TERMS = ("potentials", "weights", "bias", "in_out", "memory", "synaptic", "addressing",
                "total")


def _totals(layers, names):
    return {c: float(sum(layers[n][c] for n in layers)) for c in ACCESS} | {
        "spikes": float(sum(layers[n]["ev_out"] for n in names))}


def run_experiment(*, archs=("mlp", "cnn"), configs=CONFIGS, pairs=PAIRS, epochs=20, seed=0,
                   rtl_images=None, rtl_configs=None, test_images=None, lr=1e-2,
                   arch_kwargs=None, cache=None, retrain=False, log=None, w_bits=8):
    """Train, export, measure; return the JSON-ready results.

    Parameters
    ----------
    archs : ``"mlp"``, ``"cnn"``
    configs : (T, N) pairs to train
    pairs : ((T, N) binary, (T, N) multi-level) pairs to compare (must be in ``configs``)
    epochs, seed, lr : training
    rtl_images : {arch: int}
        Test images run through the RTL per configuration (0: none).
    rtl_configs : (T, N) run on the RTL (default: those of ``pairs``).
    test_images : int or None
        Use only the first test images (tiny runs); default all 450.
    arch_kwargs : {arch: dict} model sizes (default :data:`ARCH_KWARGS`).
    cache : directory of checkpoints and RTL runs (default ``out/experiments/<NAME>``).
    """
    log = log or common.Progress(NAME)
    cache = common.cache_dir(NAME, root=None) if cache is None else cache
    os.makedirs(cache, exist_ok=True)
    rtl_images = dict(RTL_IMAGES if rtl_images is None else rtl_images)
    arch_kwargs = arch_kwargs or ARCH_KWARGS
    if rtl_configs is None:
        rtl_configs = sorted({c for p in pairs for c in p})
    for b, m in pairs:
        if b not in configs or m not in configs:
            raise ValueError(f"pair {b} vs {m} is not among the configurations")
    data = common.load_data("digits")
    x_test, y_test = data.x_test, data.y_test
    if test_images:
        x_test, y_test = x_test[:test_images], y_test[:test_images]
    runs = []
    for arch in archs:
        n_rtl = int(rtl_images.get(arch, 0))
        for T, N in configs:
            tag = f"{arch} T={T} N={N}"
            model, metrics = common.train_cached(
                cache, data=data, retrain=retrain, log=lambda m, t=tag: log(f"{t}: {m}"),
                arch=arch, timesteps=T, levels=N, epochs=epochs, seed=seed, lr=lr,
                **arch_kwargs[arch])
            float_acc = float(np.mean(model.predict(x_test).numpy() == y_test))
            net = common.export_net(model, w_bits)
            res, gold = common.golden_eval(net, x_test, y_test)
            names = common.spiking_layers(net)
            energy = common.energy_summary(net, x_test, res)
            log(f"{tag}: float {float_acc:.3f}, integer {gold['accuracy']:.3f}, "
                f"{_totals(gold['layers'], names)['spikes']:.0f} spikes/inference, "
                f"{energy['exact']['total']:.1f} nJ/inference (golden, {len(y_test)} images)")
            entry = {
                "arch": arch, "T": T, "N": N, "intervals": T * N,
                "kind": "binary" if N == 1 and T > 1 else ("multi-level" if N > 1 else "both"),
                "float_accuracy": float_acc, "int_accuracy": gold["accuracy"],
                "train": {k: metrics.get(k) for k in ("test_accuracy", "train_accuracy", "loss",
                                                      "seconds", "cached")},
                "layers": names,
                "golden": {"images": gold["images"], "layers": gold["layers"],
                           "totals": _totals(gold["layers"], names)},
                "energy_nJ": energy,
                "rtl": {"status": "skipped", "images": 0},
            }
            if n_rtl and (T, N) in rtl_configs:
                xs = x_test[:n_rtl]
                rtl = common.rtl_measure(net, xs, cache=cache, log=log, seed=seed,
                                         fresh=retrain)
                if rtl["status"] in ("ok", "mismatch"):
                    res_s, gold_s = common.golden_eval(net, xs, y_test[:n_rtl])
                    rtl["totals"] = _totals(rtl["layers"], names)
                    rtl["golden_totals_same_images"] = _totals(gold_s["layers"], names)
                    rtl["energy_nJ"] = common.energy_summary(net, xs, res_s,
                                                             measured=rtl["summary"])
                else:
                    log(f"{tag}: RTL not run: {rtl['reason']}")
                entry["rtl"] = rtl
            runs.append(entry)
    result = {
        "experiment": NAME,
        "settings": {"dataset": "digits", "test_images": int(len(y_test)), "epochs": epochs,
                     "seed": seed, "lr": lr, "w_bits": w_bits, "archs": list(archs),
                     "arch_kwargs": {a: arch_kwargs[a] for a in archs},
                     "configs": [list(c) for c in configs], "rtl_images": rtl_images,
                     "rtl_configs": [list(c) for c in rtl_configs],
                     "fifo_depth": common.HW_FIFO_DEPTH,
                     "energy_model": "Lemaire et al. (golden.energy), 45 nm, nJ per inference; "
                                     "synaptic ops count a multi-level event as N ACC"},
        "runs": runs,
        "pairs": _pairs(runs, archs, pairs),
    }
    return result


def _find(runs, arch, T, N):
    for r in runs:
        if (r["arch"], r["T"], r["N"]) == (arch, T, N):
            return r
    raise KeyError((arch, T, N))


def _hidden(run):
    per = run["energy_nJ"]["layers_exact_total"]
    return sum(v for k, v in per.items() if k != run["layers"][0])


def _ratio(a, b):
    return a / b if b else None


def _pairs(runs, archs, pairs):
    out = []
    for arch in archs:
        for (tb, nb), (tm, nm) in pairs:
            b, m = _find(runs, arch, tb, nb), _find(runs, arch, tm, nm)
            e = {"arch": arch, "binary": [tb, nb], "multi_level": [tm, nm],
                 "intervals": tb * nb,
                 "spikes_ratio": _ratio(m["golden"]["totals"]["spikes"],
                                        b["golden"]["totals"]["spikes"]),
                 "E_N/E_binary": {
                     "exact": _ratio(m["energy_nJ"]["exact"]["total"],
                                     b["energy_nJ"]["exact"]["total"]),
                     "analytic": _ratio(m["energy_nJ"]["analytic"]["total"],
                                        b["energy_nJ"]["analytic"]["total"]),
                     "exact_sum_z": _ratio(m["energy_nJ"]["exact"]["total_sum_z"],
                                           b["energy_nJ"]["exact"]["total_sum_z"]),
                     # Without the first layer, whose input events (pixels, direct encoding)
                     # are presented at every timestep: the hidden layers only.
                     "exact_hidden": _ratio(_hidden(m), _hidden(b))},
                 "E_SNN/E_ANN": {"binary": _ratio(b["energy_nJ"]["exact"]["total"],
                                                  b["energy_nJ"]["ann"]["total"]),
                                 "multi_level": _ratio(m["energy_nJ"]["exact"]["total"],
                                                       m["energy_nJ"]["ann"]["total"])}}
            mb, mm = b["rtl"], m["rtl"]
            if mb.get("status") == "ok" and mm.get("status") == "ok" \
                    and mb["images"] == mm["images"]:
                e["E_N/E_binary"]["measured"] = _ratio(mm["energy_nJ"]["measured"]["total"],
                                                       mb["energy_nJ"]["measured"]["total"])
                e["rtl_images"] = mb["images"]
            out.append(e)
    return out


# -- reports ------------------------------------------------------------------------------------

def tables(result):
    """``{name: (headers, rows)}`` of every table (shared by the text and Markdown outputs)."""
    runs = result["runs"]
    t = {}
    rows = []
    for r in runs:
        g = r["golden"]
        per_layer = ", ".join(f"{n} {fmt(g['layers'][n]['ev_out'])}" for n in r["layers"])
        first = g["layers"][r["layers"][0]]["ev_in"]
        rows.append([r["arch"], r["T"], r["N"], r["intervals"], f"{100 * r['float_accuracy']:.1f}",
                     f"{100 * r['int_accuracy']:.1f}", fmt(first), per_layer,
                     fmt(g["totals"]["spikes"]), rtl_word(r)])
    t["accuracy_activity"] = (
        ["arch", "T", "N", "N·T", "float acc %", "int acc %", "input events",
         "events out per layer", "total events", "RTL check"], rows)
    rows = []
    for r in runs:
        s = r["rtl"]
        if s.get("status") not in ("ok", "mismatch"):
            continue
        m, g = s["totals"], s["golden_totals_same_images"]
        rows.append([r["arch"], r["T"], r["N"], s["images"]] + [fmt(m[c]) for c in ACCESS]
                    + [fmt(s["cycles"]), "yes" if m == g and s["status"] == "ok" else "NO"])
    t["rtl_accesses"] = (["arch", "T", "N", "images"] + list(ACCESS)
                         + ["cycles", "= golden"], rows)
    rows = []
    for r in runs:
        g = r["golden"]["totals"]
        rows.append([r["arch"], r["T"], r["N"]] + [fmt(g[c]) for c in ACCESS])
    t["golden_accesses"] = (["arch", "T", "N"] + list(ACCESS), rows)
    rows = []
    seen = set()
    for r in runs:
        e = r["energy_nJ"]
        if r["arch"] not in seen:
            seen.add(r["arch"])
            a = e["ann"]
            rows.append([r["arch"], "ANN"] + [fmt(a.get(k)) if k != "potentials" else "-"
                                              for k in ENERGY_TERMS] + ["-", "1"])
        ex = e["exact"]
        rows.append([r["arch"], f"SNN T={r['T']} N={r['N']}"]
                    + [fmt(ex[k]) for k in ENERGY_TERMS]
                    + [fmt(e["analytic"]["total"]), f"{ex['total'] / e['ann']['total']:.2f}"])
    t["energy"] = (["arch", "model"] + list(ENERGY_TERMS) + ["total (analytic)", "E/E_ANN"],
                   rows)
    rows = []
    for p in result["pairs"]:
        r = p["E_N/E_binary"]
        rows.append([p["arch"], f"[T={p['binary'][0]},N=1] vs [T=1,N={p['multi_level'][1]}]",
                     f"{p['spikes_ratio']:.2f}", f"{r['exact']:.2f}", f"{r['analytic']:.2f}",
                     f"{r['exact_sum_z']:.2f}", f"{r['exact_hidden']:.2f}",
                     f"{r['measured']:.2f} ({p['rtl_images']} img)" if "measured" in r else "-",
                     f"{p['E_SNN/E_ANN']['binary']:.2f} / {p['E_SNN/E_ANN']['multi_level']:.2f}"])
    t["ratios"] = (["arch", "equal intervals", "spikes N/bin", "E_N/E_bin exact",
                    "analytic", "Σz ACC", "without 1st layer", "RTL-measured",
                    "E/E_ANN bin / N"], rows)
    return t


TITLES = {
    "accuracy_activity": "Accuracy and events per inference (golden model, all test images)",
    "rtl_accesses": "Memory accesses per inference measured by the RTL counters (Amaranth "
                    "simulator, first test images; summed over layers)",
    "golden_accesses": "Memory accesses per inference, golden counters (all test images; "
                       "summed over layers)",
    "energy": "Energy per inference [nJ], Lemaire model, exact counts (all test images)",
    "ratios": "Equal quantization intervals: multi-level / binary",
}


def to_text(result):
    out = [_settings_line(result)]
    for k, (h, rows) in tables(result).items():
        if rows:
            out += ["", TITLES[k], text_table(h, rows)]
    return "\n".join(out)


def _settings_line(result):
    s = result["settings"]
    return (f"digits, {s['test_images']} test images, {s['epochs']} epochs, seed {s['seed']}, "
            f"w_bits {s['w_bits']}, RTL images {s['rtl_images']} on (T, N) "
            f"{[tuple(c) for c in s['rtl_configs']]}")


def to_markdown(result, png=None):
    out = [f"# Equal quantization intervals: binary vs multi-level", "",
           _settings_line(result) + ".", ""]
    if png:
        out += [f"![quantization intervals]({png})", ""]
    not_rtl = [r for r in result["runs"] if r["rtl"]["status"] == "unsupported"]
    if not_rtl:
        out += [f"**RTL not available** for {len(not_rtl)} configuration(s) "
                f"({not_rtl[0]['rtl']['reason']}); their counts are golden counters. "
                f"TODO: rerun when the hardware supports them.", ""]
    for k, (h, rows) in tables(result).items():
        if rows:
            out += [f"### {TITLES[k]}", "", md_table(h, rows), ""]
    return "\n".join(out)


def plot(result, path):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    archs = result["settings"]["archs"]
    fig, axes = plt.subplots(len(archs), 4, figsize=(18, 4.4 * len(archs)), squeeze=False)
    colors = {"binary": "tab:blue", "multi": "tab:red"}
    for row, arch in zip(axes, archs):
        runs = [r for r in result["runs"] if r["arch"] == arch]
        binary = sorted((r for r in runs if r["N"] == 1), key=lambda r: r["T"])
        multi = sorted((r for r in runs if r["T"] == 1), key=lambda r: r["N"])
        series = (("binary", "binary (N = 1, T = 1..8)", binary),
                  ("multi", "multi-level (T = 1, N = 1..8)", multi))
        ax = row[0]
        for key, label, rs in series:
            x = [r["intervals"] for r in rs]
            ax.plot(x, [100 * r["float_accuracy"] for r in rs], "o-", color=colors[key],
                    label=f"{label}, float")
            ax.plot(x, [100 * r["int_accuracy"] for r in rs], "s--", color=colors[key],
                    alpha=0.6, label=f"{key}, integer golden")
        n_test = result["settings"]["test_images"]
        ax.set_title(f"{arch}: test accuracy (cf. Fig. 6)")
        ax.set_ylabel(f"accuracy [%]  (1 test image = {100 / n_test:.2f} %)")
        ax.legend(fontsize=8, loc="best")
        ax = row[1]
        for key, label, rs in series:
            ax.plot([r["intervals"] for r in rs], [r["golden"]["totals"]["spikes"] for r in rs],
                    "o-", color=colors[key], label=label)
        ax.set_title(f"{arch}: events per inference (cf. Fig. 7A)")
        ax.set_ylabel("events (spikes) per inference")
        ax.set_ylim(bottom=0)
        ax.legend(fontsize=8, loc="upper left")
        ax = row[2]
        for key, label, rs in series:
            ax.plot([r["intervals"] for r in rs], [r["energy_nJ"]["exact"]["total"] for r in rs],
                    "o-", color=colors[key], label=label)
        ann = runs[0]["energy_nJ"]["ann"]["total"]
        ax.axhline(ann, color="gray", ls=":", label="ANN (same shapes)")
        ax.set_title(f"{arch}: energy per inference (cf. Fig. 7B)")
        ax.set_ylabel("energy [nJ], Lemaire model")
        ax.set_ylim(0, 1.08 * max(ann, *(r["energy_nJ"]["exact"]["total"] for r in runs)))
        ax.legend(fontsize=8, loc="upper left")
        for ax in row[:3]:
            ax.set_xlabel("quantization intervals N·T")
            ax.set_xscale("log", base=2)
            ax.set_xticks([1, 2, 4, 8])
            ax.set_xticklabels(["1", "2", "4", "8"])
            ax.grid(alpha=0.3)
        ax = row[3]
        pair_runs = []
        for p in result["pairs"]:
            if p["arch"] != arch:
                continue
            pair_runs += [_find(runs, arch, *p["binary"]), _find(runs, arch, *p["multi_level"])]
        labels = ["ANN"] + [f"T={r['T']}\nN={r['N']}" for r in pair_runs]
        terms = (("potentials", "potentials"), ("weights", "weights"), ("bias", "bias"),
                 ("in_out", "in/out"), ("synaptic", "synaptic ops"),
                 ("addressing", "addressing"))
        vals = [runs[0]["energy_nJ"]["ann"]] + [r["energy_nJ"]["exact"] for r in pair_runs]
        bottom = np.zeros(len(vals))
        for key, lab in terms:
            h = np.array([v.get(key) or 0.0 for v in vals])
            ax.bar(range(len(vals)), h, bottom=bottom, label=lab)
            bottom += h
        ax.set_xticks(range(len(vals)))
        ax.set_xticklabels(labels, fontsize=9)
        ax.set_title(f"{arch}: energy breakdown (cf. Table 3)")
        ax.set_ylabel("energy [nJ]")
        ax.legend(fontsize=8)
        ax.grid(alpha=0.3, axis="y")
    s = result["settings"]
    fig.suptitle(f"Binary vs multi-level SNNs on digits ({s['epochs']} epochs, "
                 f"{s['test_images']} test images; energy from exact golden counts)", fontsize=12)
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


def _per_arch(text, name):
    out = {}
    for part in text.split(","):
        if "=" not in part:
            raise argparse.ArgumentTypeError(f"{name} must look like mlp=20,cnn=5, not {text!r}")
        k, v = part.split("=", 1)
        out[k.strip()] = int(v)
    return out


def main(argv=None):
    p = argparse.ArgumentParser(prog=f"python -m experiments.{NAME}",
                                description=__doc__.split("\n\n")[0])
    p.add_argument("--epochs", type=int, default=20)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--archs", default="mlp,cnn")
    p.add_argument("--rtl-images", type=lambda t: _per_arch(t, "--rtl-images"),
                   default=dict(RTL_IMAGES),
                   help="test images run on the RTL per configuration, e.g. mlp=20,cnn=5 "
                        "(0 for none)")
    p.add_argument("--out", default=os.path.join(common.ROOT, "experiments", "results"))
    p.add_argument("--cache", default=None, help="checkpoint/RTL cache directory")
    p.add_argument("--retrain", action="store_true", help="ignore cached checkpoints and RTL runs")
    p.add_argument("--threads", type=int, default=1, help="torch threads (default 1)")
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    result = run_experiment(archs=tuple(a.strip() for a in args.archs.split(",")),
                            epochs=args.epochs, seed=args.seed, rtl_images=args.rtl_images,
                            cache=args.cache, retrain=args.retrain)
    files = write_outputs(result, args.out)
    print(to_text(result))
    print(f"\nwritten: {', '.join(files.values())}")
    bad = [r for r in result["runs"] if r["rtl"]["status"] == "mismatch"]
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())

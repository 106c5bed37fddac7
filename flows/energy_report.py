"""Text tables and plots of the energy reports of :mod:`golden.energy`.

- :func:`format_report`: per-layer activity and memory accesses (analytic / exact / measured),
  the causes of every analytic − exact difference, the per-layer energy of every term of every
  source (:func:`format_layer_terms`), and the breakdown of seed 000 Table 3 (potentials,
  weights, bias, in/out, synaptic operations, addressing) for the ANN and each SNN source, with
  E_SNN/E_ANN.
- :func:`format_breakeven`: Dampfhoffer's break-even spikes per synapse.
- :func:`format_neuron_models`: seed 002's neuron models (IF/LIF, instantaneous or
  current-based synapses, mlsnn's leak) on the network, against the naive ANN;
  :func:`format_table_3_2` and :func:`format_fig_3_2`: seed 002's Table 3.2 and §3.3.3
  recomputed.
- :func:`plot_report`: a PNG with (a) the stacked Table-3 breakdown and (b) the per-layer energy
  as stacked bars of the Table-3 terms, one bar per source (analytic / exact / measured) and
  layer (or the ANN's when the report has no SNN).
"""

from __future__ import annotations

__all__ = ["format_report", "format_breakeven", "format_layer_terms", "format_table_3_3",
           "format_paper_table3", "format_neuron_models", "format_table_3_2",
           "format_fig_3_2", "plot_report", "BREAKDOWN"]

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
                            + [f"accesses {s}" for s in sources]
                            + [f"nJ {s}" for s in sources], rows))
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
    lines.append("")
    lines.append(format_layer_terms(report))
    cols = _columns(report)
    rows = [[label] + [_g(c[key]) for _, c in cols] for key, label in BREAKDOWN]
    rows.append(["memory total"] + [_g(c["memory"]) for _, c in cols])
    rows.append(["total"] + [_g(c["total"]) for _, c in cols])
    if sources:
        rows.append(["synaptic (Σz ACC)"] + [_g(c["synaptic_sum_z"]) for _, c in cols])
        rows.append(["total (Σz ACC)"] + [_g(c["total_sum_z"]) for _, c in cols])
        hw = report.get("options", {}).get("synapse", "mul")
        rows.append([f"synaptic (hardware z·w, {hw})"] + [_g(c["synaptic_hw"]) for _, c in cols])
        rows.append([f"total (hardware z·w, {hw})"] + [_g(c["total_hw"]) for _, c in cols])
        if any(c.get("leak") for _, c in cols[1:]):
            rows.append(["of synaptic: leak"] + [_g(c.get("leak", 0.0)) for _, c in cols])
        ann_total = cols[0][1]["total"]
        rows.append(["E_SNN/E_ANN"] + ["-"] + [_g(c["total"] / ann_total if ann_total else None)
                                                for _, c in cols[1:]])
    lines.append("")
    opts = report.get("options")
    lines.append("breakdown as seed 000 Table 3 [nJ]"
                 + (f" (conv addressing {opts['conv_addressing']})" if opts else "") + ":")
    lines.append(_table(["term"] + [label for label, _ in cols], rows))
    if "dampfhoffer" in report and report["dampfhoffer"]["spikes_per_synapse"] is not None:
        d = report["dampfhoffer"]
        lines.append("")
        lines.append(f"spikes per synapse (Dampfhoffer) {d['spikes_per_synapse']:.3f}; break-even "
                     + ", ".join(f"{k} {v:.2f}" for k, v in d["breakeven"].items()))
    if "dampfhoffer" in report and "neuron_models" in report["dampfhoffer"]:
        lines.append("")
        lines.append(format_neuron_models(report["dampfhoffer"]["neuron_models"]))
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


def _layer_energies(report):
    """[(layer, source, {term: nJ})] of the SNN layers of every source, else the ANN's."""
    sources = report.get("sources", [])
    if sources and report.get("layers"):
        return [(l["name"], s, l["energy_nJ"][s]) for l in report["layers"] for s in sources]
    return [(l["name"], "ANN", l["energy_nJ"]) for l in report["ann"]["layers"]]


def format_layer_terms(report):
    """Per layer and source, the energy of every Table-3 term [nJ]."""
    rows = [[name, src] + [_g(e[key]) for key, _ in BREAKDOWN] + [_g(e["total"])]
            for name, src, e in _layer_energies(report)]
    return ("energy per layer and term [nJ]:\n"
            + _table(["layer", "source"] + [label for _, label in BREAKDOWN] + ["total"], rows))


def format_breakeven(rows):
    out = [[r["model"], r["node"], _g(r["ann_per_synapse"]), _g(r["snn_per_spike"]),
            f"{r['n_s']:.4f}", f"{r['n_s']:.2f}", _g(r["published"])] for r in rows]
    text = _table(["ANN model", "node", "E_ANN/syn", "E_SNN/spike", "N_s", "N_s (2 dp)",
                   "seed 002"], out)
    return ("Dampfhoffer break-even spikes per synapse (energies in MAC units)\n" + text +
            "\n(eyeriss_v2_thesis: the thesis divides the rounded v1 figure 0.42 by 1.15)")


def format_table_3_3(table):
    """Seed 002 Table 3.3 with its 8-bit variant and the MAC vs. AC row, beside the thesis."""
    m = table["mac_vs_ac"]
    p = table["mac_vs_ac_published"]
    out = [["MAC vs. AC", f"{m['8']:.2f} (8 b) .. {m['32']:.2f} (32 b)",
            f"~{p['8']}-{p['32']}", "", ""]]
    out += [[r["model"], f"{r['n_s']:.2f}", _g(r["published"]), f"{r['n_s_8bit']:.2f}",
             _g(r["published_8bit"])] for r in table["rows"]]
    return ("seed 002 Table 3.3 (break-even N_s) and its 8-bit variant (§3.4.3)\n"
            + _table(["ANN model", "N_s", "seed 002", "N_s 8 bit", "seed 002 8 bit"], out)
            + f"\n(MAC vs. AC: 8 bit (mul+add)/add; 32 bit mul/add, (mul+add)/add = "
              f"{m['32_mac']:.0f})")


def format_neuron_models(sec):
    """Seed 002's neuron models on a network, MAC units per inference
    (:func:`golden.energy.dampfhoffer.network_neuron_models`)."""
    leaky = sec["leaky_layers"]
    own = ("IF (no layer leaks)" if not leaky else
           ("LIF" if sec["network_neurons"] == "LIF" else "mixed") + ": leak "
           + ", ".join(f"{n} k={k}" for n, k in leaky.items()))
    head = (f"seed 002 neuron models (§3.3.2; 45 nm 8 bit, MAC units per inference) against "
            f"the naive ANN (eq. 3.2); the network's own neurons: {own}")
    if not sec["rows"]:
        return head + "\n  " + sec.get("note", "no rows")
    head += (f"\nN_syn {_g(sec['synapses'])}, N_neur {_g(sec['neurons'])} (N_syn/N_neur "
             f"{sec['synapses_per_neuron']:.4g}; {sec['synapses'] / sec['neurons_pooled']:.4g} "
             f"counting pooled outputs), T {sec['timesteps']}, N_s "
             f"{sec['spikes_per_synapse']:.3f}, spike-fed layers only; E_ANN "
             f"{_g(sec['ann_naive'])}")
    rows = [[r["label"], r["equation"], _g(r["synaptic"]), _g(r["neuron"]), _g(r["total"]),
             f"{_g(100 * r['neuron_share'])} %" if r["neuron_share"] is not None else "-",
             _g(r["E_ANN/E_SNN"]), _g(r["E_SNN/E_ANN"]),
             f"{r['breakeven_n_s']:.3f}" if r["breakeven_n_s"] is not None else "never"]
            for r in sec["rows"]]
    return head + "\n" + _table(["model", "eq.", "synaptic", "neuron", "total",
                                 "neuron share", "E_ANN/E_SNN", "E_SNN/E_ANN",
                                 "break-even N_s"], rows)


def _ratio_range(r):
    if r is None:
        return "none"
    lo, hi = r
    if hi is None:
        return "any" if lo == 0 else f">= {lo:.0f}"
    return f"{lo:.0f} .. {hi:.0f}"


def format_table_3_2(rows):
    """Seed 002 Table 3.2 recomputed (:func:`golden.energy.dampfhoffer.table_3_2`)."""
    lo, hi = rows[0]["synapses_per_neuron"]
    out = []
    for r in rows:
        a, b = r["mlsnn"]
        out.append([f"{r['dataset']} {r['topology']}", r["model"], r["timesteps"] or "-",
                    f"{r['n_s']:.2f}", f"{r['efficiency']:.1f}x",
                    f"{a:.2f}x" if f"{a:.2f}" == f"{b:.2f}" else f"{a:.2f}x .. {b:.2f}x",
                    _ratio_range(r["reproduced_for"])])
    return (f"seed 002 Table 3.2 (E_ANN/E_SNN of published SNNs, naive ANN, 45 nm 8 bit) "
            f"recomputed; N_syn/N_neur is not published: mlsnn at {lo:.0f} .. {hi:.0f} (the "
            f"thesis' MobileNet .. AlexNet)\n"
            + _table(["topology", "model", "T", "N_s", "seed 002", "mlsnn",
                      "N_syn/N_neur reproducing it"], out)
            + "\n(reproducing: within half a unit of the printed efficiency for an N_s within "
              "half a unit of the printed one)")


def format_fig_3_2(f):
    """§3.3.3's neuron-update shares and Fig. 3.3's VGG16 ratio
    (:func:`golden.energy.dampfhoffer.fig_3_2`)."""
    pub = f["published"]["fig_3_2"]["neuron_share_percent"]
    p = f["if_cont_predicted"]
    v = f["vgg16"]
    return "\n".join([
        f"seed 002 §3.3.3 (VGG16, N_s = 1, T = 500): neuron updates {pub['lif-inst']} % of "
        f"LIF+inst, {pub['if-cont']} % of IF+cont",
        f"  N_syn/N_neur they imply: {f['implied_ratio']['lif-inst']:.4g} (LIF+inst), "
        f"{f['implied_ratio']['if-cont']:.4g} (IF+cont)",
        f"  IF+cont share predicted from the LIF+inst one: {p['percent']:.2f} % "
        f"({p['low']:.3f} .. {p['high']:.3f})",
        f"  at Fig. 3.3's VGG16 N_syn/N_neur {f['published']['fig_3_3']['vgg16']:.2g}: "
        + ", ".join(f"{m} {x:.2f} %" for m, x in f["at_fig_3_3_vgg16"].items()),
        "  mlsnn's VGG16 N_syn/N_neur (every conv output; pooled outputs): "
        + "; ".join(f"{k} {d['ratio']:.4g}, {d['ratio_pooled']:.4g}" for k, d in v.items())])


def format_paper_table3(table):
    """Seed 000 Table 3 beside mlsnn's estimate, per term and column, with mlsnn / paper."""
    cols = list(table["columns"])
    rows = []
    for key, label in BREAKDOWN[:4] + (("memory", "memory total"),) + BREAKDOWN[4:] \
            + (("total", "total"),):
        row = [label]
        for c in cols:
            v = table["columns"][c][key]
            row += [_g(v["paper"]), _g(v["mlsnn"]),
                    f"{v['ratio']:.2f}" if v["ratio"] is not None else "-"]
        rows.append(row)
    for c, v in table["ratios"]["E_SNN/E_ANN"].items():
        rows.append([f"E_SNN/E_ANN {c}", _g(v["paper"]), _g(v["mlsnn"]),
                     f"{v['mlsnn'] / v['paper']:.2f}"] + [""] * (3 * len(cols) - 3))
    for c, v in table["ratios"]["E_N/E_binary"].items():
        rows.append([f"E_N/E_binary {c}", _g(v["paper"]), _g(v["mlsnn"]),
                     f"{v['mlsnn'] / v['paper']:.2f}"] + [""] * (3 * len(cols) - 3))
    heads = ["term"]
    for c in cols:
        heads += [f"{c} paper", "mlsnn", "ratio"]
    conv = ", ".join(f"{k} {v}" for k, v in table["conventions"].items())
    return ("seed 000 Table 3 (VGG16, CIFAR-10, nJ per inference) beside mlsnn "
            f"({conv}; activity: the paper's spike totals at one uniform rate)\n"
            + _table(heads, rows))


def plot_report(report, path):
    """Write a PNG: Table-3 stacked breakdown and per-layer stacked bars of the same terms,
    one bar per source and layer (analytic, exact, measured side by side)."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

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
    per = _layer_energies(report)
    names = list(dict.fromkeys(name for name, _, _ in per))
    srcs = list(dict.fromkeys(src for _, src, _ in per))
    n = len(srcs)
    w = 0.8 / n
    hatches = ("", "..", "//")
    for j, src in enumerate(srcs):
        rows = [e for _, s, e in per if s == src]
        xs = [i + (j - (n - 1) / 2) * w for i in range(len(names))]
        bottoms = [0.0] * len(rows)
        for i, (key, label) in enumerate(BREAKDOWN):
            vals = [e[key] for e in rows]
            ax.bar(xs, vals, bottom=bottoms, width=w, color=colors[i],
                   hatch=hatches[j % len(hatches)], edgecolor="white", linewidth=0.4,
                   label=label if j == 0 else None)
            bottoms = [b + v for b, v in zip(bottoms, vals)]
    if n > 1:
        from matplotlib.patches import Patch
        handles, labels = ax.get_legend_handles_labels()
        handles += [Patch(facecolor="lightgray", hatch=hatches[j % len(hatches)],
                          edgecolor="dimgray") for j in range(n)]
        labels += [f"bar {j + 1}: {src}" for j, src in enumerate(srcs)]
        ax.legend(handles, labels, fontsize=8)
    else:
        ax.legend(fontsize=8)
    ax.set_ylabel(f"{'SNN' if srcs != ['ANN'] else 'ANN'} energy per inference [nJ]")
    ax.set_title("(b) energy per layer and term" + (f" ({', '.join(srcs)})" if n > 1 else
                                                    f" ({srcs[0]})" if srcs else ""))
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

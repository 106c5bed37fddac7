"""Counts from three sources side by side: analytic, exact (golden) and measured (RTL).

- **analytic**: the Lemaire formulas (:mod:`golden.energy.lemaire`) fed with the exact activity
  θ of every layer; they ignore borders, take every conv event to reach C_out·K² targets for
  memory accesses and C_out·⌈K/S⌉² for synaptic ACC, and count a multi-level event as N ACC.
- **exact**: the counters of the golden reference (:func:`golden.reference.run`), SPEC §5.
- **measured**: the counters of an RTL run, the JSON of ``mlsnn simulate --json`` (counters
  summed over the images of the run).

Every analytic − exact difference is split into its causes, computed from the positions and
values of the events (so the split is exact, not estimated):

``stride``   analytic targets per event minus the targets a stride-S kernel really reaches away
             from borders (C_out·K² or C_out·⌈K/S⌉² versus C_out·f_y·f_x, with f the number of
             kernel offsets aligned with the stride grid);
``borders``  targets lost at the edges of the output map (the exact fan-out is smaller there);
``levels``   the paper's N×ACC worst case versus the exact Σz (multi-level events, pixels).

A pool's event has exactly one target (``energy_fanouts``: ones), so its only cause is
``levels``, in the ``syn_acc`` of an average pool (a max pool counts one comparison per update,
whatever the value: analytic = exact for every counter).

Measured must equal exact; any difference is reported as a mismatch.
"""

from __future__ import annotations

import json
import os

import numpy as np

from ..errors import MlsnnError
from ..ir import INPUT, Network
from ..counters import SPEC_COUNTERS as COUNTERS
from ..counters import SHIFT_COUNTERS, WORD_COUNTERS
from ..reference import run
from . import dampfhoffer, lemaire
from .arch import _event_bits, from_ir
from .lemaire import Activity, Flow
from .tech import DEFAULT

__all__ = ["ir_report", "load_measured", "measured_totals", "explain", "stream_stats",
           "PJ_PER_NJ", "dampfhoffer_section"]

PJ_PER_NJ = 1000.0


def _pixel_stream(net, name):
    """Does the stream ``name`` carry pixels: the network input, or a max pool of pixels (its
    events are input values, unchanged)?"""
    while name != INPUT:
        layer = net.layer(name)
        if layer.combine != "max":
            return False
        name = layer.inputs[0]
    return True


def stream_stats(net, res, x):
    """Per layer, per input stream: events per input index and their value sums (all images).

    Returns ``{layer: [(stream, is_pixel, N, count[n_in], zsum[n_in])]}``; N is the largest
    value an event of the stream can carry (the producer's levels; a max pool's: its input's).
    """
    x = net.check_inputs(x)
    T = net.timesteps
    xf = x.reshape(x.shape[0], -1).astype(np.float64)
    # Pixels enter at every timestep an image computes: T, or fewer after an early exit
    # (docs/early-exit.md; ``res.timesteps``).
    used = getattr(res, "timesteps", None)
    used = np.full(x.shape[0], float(T)) if used is None else used.astype(np.float64)
    px_cnt = used @ (xf > 0)
    px_z = used @ xf
    out = {}
    for layer in net.layers:
        info = net.info(layer.name)
        rows = []
        for s in info.streams:
            if s == INPUT:
                rows.append((s, True, float(net.input.zmax), px_cnt, px_z))
            else:
                ev = res.events[s].astype(np.float64)
                rows.append((s, _pixel_stream(net, s), float(net.info(s).zmax_out),
                             (ev > 0).sum(axis=(0, 1)), ev.sum(axis=(0, 1))))
        out[layer.name] = rows
    return out


def explain(net, layer, rows, images):
    """Analytic counters, activity and the per-counter causes of analytic − exact.

    Returns
    -------
    activity : :class:`~golden.energy.lemaire.Activity` without ``ev_out`` (set by the caller)
    sums : dict of per-inference sums used for the exact ops split
    causes : ``{counter: {"stride": x, "borders": y, "levels": z}}`` (per inference)
    """
    info = net.info(layer.name)
    B = float(images)
    spikes, pixels = Flow(), Flow()
    sums = {k: 0.0 for k in ("px_updates", "px_zfan", "sp_updates", "sp_zfan", "sp_nfan",
                             "px_bfan", "sp_bfan")}
    acc = {k: 0.0 for k in ("cntF", "cntFs", "cnt_al", "cnt_fan", "zFs", "z_al", "z_fan",
                            "NcntFs")}
    sew = layer.passthrough
    if not sew:
        fan, aligned, F, Fs = layer.energy_fanouts(info)
    for _, is_px, N, cnt, zs in rows:
        flow = Flow(float(cnt.sum()) / B, float(zs.sum()) / B, N * float(cnt.sum()) / B)
        if is_px:
            pixels = pixels + flow
        else:
            spikes = spikes + flow
        if sew:
            continue
        upd, zfan = float(cnt @ fan) / B, float(zs @ fan) / B
        # Updates weighted by the width of the value field (the "mul" datapath's additions).
        sums["px_bfan" if is_px else "sp_bfan"] += max(1, int(N).bit_length()) * upd
        if is_px:
            sums["px_updates"] += upd
            sums["px_zfan"] += zfan
        else:
            sums["sp_updates"] += upd
            sums["sp_zfan"] += zfan
            sums["sp_nfan"] += N * upd
        n_ev = float(cnt.sum())
        acc["cntF"] += F * n_ev / B
        acc["cntFs"] += Fs * n_ev / B
        acc["cnt_al"] += float(cnt @ aligned) / B
        acc["cnt_fan"] += upd
        acc["zFs"] += Fs * float(zs.sum()) / B
        acc["z_al"] += float(zs @ aligned) / B
        acc["z_fan"] += zfan
        acc["NcntFs"] += N * Fs * n_ev / B
    causes = {}
    if not sew:
        mem = {"stride": acc["cntF"] - acc["cnt_al"], "borders": acc["cnt_al"] - acc["cnt_fan"],
               "levels": 0.0}
        for c in ("p_rd", "p_wr") + (("w_rd",) if "weight" in layer.arrays else ()):
            causes[c] = dict(mem)
        causes["syn_updates"] = {"stride": acc["cntFs"] - acc["cnt_al"],
                                 "borders": acc["cnt_al"] - acc["cnt_fan"], "levels": 0.0}
        if layer.combine == "max":
            # One comparison per update whatever its value: syn_acc counts updates.
            causes["syn_acc"] = dict(causes["syn_updates"])
        else:
            causes["syn_acc"] = {"levels": acc["NcntFs"] - acc["zFs"],
                                 "stride": acc["zFs"] - acc["z_al"],
                                 "borders": acc["z_al"] - acc["z_fan"]}
    return Activity(spikes=spikes, pixels=pixels), sums, causes


def _exact_ops(spec, counters, sums, ref=None, *, timesteps, addressing="per-synapse",
               synapse="mul"):
    """Priced operations from counters (exact or measured), per inference.

    Quantities the counters do not separate (pixel MACs versus spike ACCs, the worst-case N×
    count, the value widths of the "mul" datapath) come from the exact per-stream split
    ``sums``; for measured counters they are scaled by measured/exact of the counter they
    belong to (1 when the two agree). ``"serial"`` datapath additions are ``syn_acc`` itself;
    ``"per-kernel"`` conv addressing counts the kernel offsets that reach the map,
    ``syn_updates / C_out`` (each reaches every output channel). A leaky layer (``spec.leak``
    k >= 1) shift-subtracts every neuron in the sweeps of t < T: ``b_rd`` counts the sweeps'
    neurons (T·N_out), so the leak is ``b_rd·(T − 1)/T`` ACC.
    """
    ops = {k: 0.0 for k in lemaire.OPS}
    if spec.kind == "join" and spec.join == "sew":
        return ops
    ref = ref or counters
    ru = counters["syn_updates"] / ref["syn_updates"] if ref["syn_updates"] else 1.0
    ra = counters["syn_acc"] / ref["syn_acc"] if ref["syn_acc"] else 1.0
    ops.update(in_rd=counters["ev_in"], out_wr=counters["ev_out"], w_rd=counters["w_rd"],
               b_rd=counters["b_rd"], p_rd=counters["p_rd"], p_wr=counters["p_wr"],
               acc_syn=sums["sp_nfan"] * ru, acc_syn_z=sums["sp_zfan"] * ra,
               mac_syn=sums["px_updates"] * ru, acc_bias=counters["b_rd"],
               acc_reset=0.0 if spec.reset == "hard" else counters["ev_out"])
    L = getattr(spec, "lanes", 1)
    if lemaire._is_barrier(spec) and L > 1:
        # A barrier with lanes: an event moves a word of L potentials for its one neuron,
        # priced as L elements (lemaire.costs prices an element as a word access / L).
        ops["p_rd"], ops["p_wr"] = counters["p_rd_words"] * L, counters["p_wr_words"] * L
    if getattr(spec, "leak", 0):
        ops["acc_leak"] = counters["b_rd"] / timesteps * (timesteps - 1)
    if spec.kind in ("conv", "dense"):
        ops["acc_hw"] = (counters["syn_acc"] if synapse == "serial"
                         else (sums["sp_bfan"] + sums["px_bfan"]) * ru)
    if spec.kind == "pool":
        # No weight: a pixel update is one ACC, not a MAC; a max pool's update is one
        # comparison (syn_acc counts them) and it has no reset (lemaire._pool_counts).
        ops["mac_syn"] = 0.0
        ops["addr_acc"] = counters["syn_updates"]
        if spec.pool == "max":
            ops["acc_syn"] = ops["acc_syn_z"] = counters["syn_acc"]
            ops["acc_reset"] = 0.0
        else:
            ops["acc_syn"] += sums["px_updates"] * ru
            ops["acc_syn_z"] += sums["px_updates"] * ru
    elif spec.kind == "conv":
        ops["addr_mac"] = 2 * counters["ev_in"]
        ops["addr_acc"] = counters["syn_updates"] / (spec.c_out if addressing == "per-kernel"
                                                     else 1)
    elif spec.kind == "dense":
        ops["addr_acc"] = counters["syn_updates"]
    if spec.kind in ("pool", "join"):
        ops["acc_hw"] = ops["acc_syn_z"]         # as lemaire.snn_counts
    return ops


# -- measured counters ---------------------------------------------------------------------

def load_measured(source):
    """Parse the JSON of ``mlsnn simulate --json`` (a path or an already parsed dict).

    Expected: ``{"match": bool, "cycles": int, "predictions": [...], "layers": [{"name": str,
    "counters": {counter: int, ...}}, ...]}`` with counters summed over the images of the run.

    Raises
    ------
    MlsnnError
        On a missing file, malformed JSON or a missing/ill-typed field (named).
    """
    where = "measured counters"
    if isinstance(source, (str, os.PathLike)):
        where = str(source)
        if not os.path.isfile(source):
            raise MlsnnError(f"measured counters file not found: {source}")
        with open(source) as f:
            try:
                doc = json.load(f)
            except json.JSONDecodeError as e:
                raise MlsnnError(f"{where}: malformed JSON ({e})") from None
    else:
        doc = source
    if not isinstance(doc, dict):
        raise MlsnnError(f"{where}: expected a JSON object from 'mlsnn simulate --json'")
    layers = doc.get("layers")
    if not isinstance(layers, list) or not layers:
        raise MlsnnError(f"{where}: field 'layers' must be a non-empty list")
    preds = doc.get("predictions")
    if not isinstance(preds, list) or not preds:
        raise MlsnnError(f"{where}: field 'predictions' must be a non-empty list (one per "
                         f"image; it gives the number of images)")
    out = {}
    for idx, entry in enumerate(layers):
        if not isinstance(entry, dict) or not isinstance(entry.get("name"), str):
            raise MlsnnError(f"{where}: layers[{idx}] must be an object with a 'name'")
        ctr = entry.get("counters")
        if not isinstance(ctr, dict):
            raise MlsnnError(f"{where}: layer '{entry['name']}': field 'counters' must be an "
                             f"object")
        clean = {}
        for k, v in ctr.items():
            if isinstance(v, bool) or not isinstance(v, int) or v < 0:
                raise MlsnnError(f"{where}: layer '{entry['name']}': counter '{k}' must be a "
                                 f"non-negative integer, not {v!r}")
            clean[k] = v
        missing = [c for c in COUNTERS if c not in clean]
        if missing:
            raise MlsnnError(f"{where}: layer '{entry['name']}': counter '{missing[0]}' is "
                             f"missing")
        out[entry["name"]] = clean
    return {"images": len(preds), "layers": out, "match": doc.get("match"),
            "cycles": doc.get("cycles"), "synapse": doc.get("synapse")}


def measured_totals(net, measured):
    """Check the measured layers against the network: ``{layer: {counter: total}}``."""
    names = [l.name for l in net.layers]
    extra = sorted(set(measured["layers"]) - set(names))
    if extra:
        raise MlsnnError(f"measured counters name layer '{extra[0]}', which the network does "
                         f"not have")
    missing = [n for n in names if n not in measured["layers"]]
    if missing:
        raise MlsnnError(f"measured counters have no entry for layer '{missing[0]}'")
    return measured["layers"]


# -- the report ----------------------------------------------------------------------------

def _nj(d):
    return {k: v / PJ_PER_NJ for k, v in d.items()}


def ir_report(net, x, *, measured=None, tech=DEFAULT, fifo_depth=None, result=None,
              addressing="per-synapse", synapse=None, neuron_models=None):
    """Analytic vs exact (vs measured) counts and energies of an IR network on inputs ``x``.

    Parameters
    ----------
    net : golden.ir.Network
    x : array ``[B, *input_shape]``
    measured : dict or path or None
        ``mlsnn simulate --json`` output for the same network and inputs.
    tech : Tech
    fifo_depth : int or None
        Depth of the event FIFOs (default: the technology table's).
    result : golden.reference.Result or None
        A golden run of ``net`` on ``x`` already at hand.
    addressing : ``"per-synapse"`` or ``"per-kernel"``
        Addressing ACC of a conv event (:data:`golden.energy.lemaire.ADDRESSING`).
    synapse : ``"mul"``, ``"serial"`` or None
        The z·w datapath priced by the ``*_hw`` terms; None: the one the measured counters
        name (``"synapse"`` of the simulate JSON), else ``"mul"``, the hardware's default.
    neuron_models : sequence of str or None
        Seed 002's neuron-model rows to give (``"dampfhoffer"`` of the report,
        :func:`golden.energy.dampfhoffer.network_neuron_models`; None: all).

    Returns
    -------
    dict
        JSON-ready; energies in nJ per inference, counts per inference.
    """
    if not isinstance(net, Network):
        raise MlsnnError("ir_report: net must be a golden.ir.Network")
    x = net.check_inputs(x)
    B = x.shape[0]
    if B < 1:
        raise MlsnnError("inputs hold no image")
    T = net.timesteps
    res = result if result is not None else run(net, x)
    stats = stream_stats(net, res, x)
    arch = from_ir(net)
    meas = None
    if measured is not None:
        already = isinstance(measured, dict) and isinstance(measured.get("layers"), dict)
        meas = measured if already else load_measured(measured)
        meas_tot = measured_totals(net, meas)
        if meas["images"] != B:
            raise MlsnnError(f"measured counters are for {meas['images']} images (length of "
                             f"'predictions') but the inputs hold {B}")
    synapse, synapse_source = _synapse_choice(synapse, meas)
    lemaire.check_choices(addressing, synapse)
    layers, mismatches, activities = [], [], {}
    for layer, spec in zip(net.layers, arch.layers):
        info = net.info(layer.name)
        exact_tot = res.totals(layer.name)
        exact = {k: v / B for k, v in exact_tot.items()}
        act, sums, causes = explain(net, layer, stats[layer.name], B)
        act = Activity(spikes=act.spikes, pixels=act.pixels, ev_out=exact["ev_out"])
        activities[layer.name] = act
        ana_ctr, ana_ops = lemaire.snn_counts(spec, act, T, addressing=addressing,
                                              synapse=synapse)
        ebits = _event_bits(max(info.n_in, info.n_out), max(info.zmax_in_index, info.zmax_out))
        cost = lemaire.costs(arch, spec, tech, mode="snn", fifo_depth=fifo_depth,
                             event_bits=ebits)
        opts = dict(addressing=addressing, synapse=synapse, timesteps=T)
        ex_ops = _exact_ops(spec, exact, sums, **opts)
        entry = {
            "name": layer.name, "kind": lemaire._kind(spec),
            "shape": {"in": list(spec.in_shape), "out": list(spec.out_shape),
                      **({"kernel": spec.kernel, "stride": spec.stride,
                          "padding": spec.padding} if spec.kind in ("conv", "pool") else {})},
            "levels": spec.levels, "readout": spec.readout,
            "activity": act.to_json(),
            "counters": {"analytic": ana_ctr, "exact": exact},
            "differences": {},
            "ops": {"analytic": ana_ops, "exact": ex_ops},
            "cost_pJ_per_access": cost,
            "energy_nJ": {"analytic": _nj(lemaire.energy(ana_ops, cost, tech)),
                          "exact": _nj(lemaire.energy(ex_ops, cost, tech))},
        }
        for c in COUNTERS:
            d = ana_ctr[c] - exact[c]
            if abs(d) > 1e-9 * max(1.0, abs(exact[c])):
                why = {k: v for k, v in causes.get(c, {}).items() if abs(v) > 1e-9}
                entry["differences"][c] = {"analytic_minus_exact": d, "causes": why}
        if meas is not None:
            mt = meas_tot[layer.name]
            # The word counters and ``shifts`` too when the measurement has them (older files
            # may not).
            checked = COUNTERS + tuple(c for c in WORD_COUNTERS + SHIFT_COUNTERS if c in mt)
            for c in checked:
                if mt[c] != exact_tot[c]:
                    mismatches.append({"layer": layer.name, "counter": c,
                                       "measured": mt[c], "exact": exact_tot[c]})
            mc = {k: mt[k] / B for k in checked}
            if "cycles" in mt:
                mc["cycles"] = mt["cycles"] / B
            entry["counters"]["measured"] = mc
            m_ops = _exact_ops(spec, mc, sums, ref=exact, **opts)
            entry["ops"]["measured"] = m_ops
            entry["energy_nJ"]["measured"] = _nj(lemaire.energy(m_ops, cost, tech))
        layers.append(entry)
    sources = ["analytic", "exact"] + (["measured"] if meas is not None else [])
    total = {key: {s: lemaire.add_terms(l[key][s] for l in layers) for s in sources}
             for key in ("counters", "ops", "energy_nJ")}
    ann = lemaire.estimate(arch, ann=True, tech=tech)
    ann_total = _nj(ann["total"]["energy_pj"])
    report = {
        "model": "lemaire", "units": {"energy": "nJ per inference", "counts": "per inference"},
        "network": net.name, "timesteps": T, "images": B,
        "fifo_depth": fifo_depth or tech.sram.fifo_depth, "tech": tech.to_json(),
        "sources": sources, "layers": layers, "total": total,
        "options": {"conv_addressing": addressing, "synapse": synapse,
                    "synapse_source": synapse_source},
        "ann": {"layers": [{"name": l["name"], "kind": l["kind"], "ops": l["ops"],
                            "energy_nJ": _nj(l["energy_pj"])} for l in ann["layers"]],
                "total": {"ops": ann["total"]["ops"], "energy_nJ": ann_total}},
        "ratios": {"E_SNN/E_ANN": {s: _ratio(total["energy_nJ"][s]["total"], ann_total["total"])
                                   for s in sources},
                   "E_SNN/E_ANN_sum_z": {s: _ratio(total["energy_nJ"][s]["total_sum_z"],
                                                   ann_total["total"]) for s in sources},
                   "E_SNN/E_ANN_hw": {s: _ratio(total["energy_nJ"][s]["total_hw"],
                                                ann_total["total"]) for s in sources}},
        "predictions": [int(p) for p in res.predictions],
        "dampfhoffer": dampfhoffer_section(arch, activities, T, tech, neuron_models),
    }
    if meas is not None:
        report["measured"] = {"equals_exact": not mismatches, "mismatches": mismatches,
                              "simulate_match": meas.get("match"), "cycles": meas.get("cycles"),
                              "images": meas["images"]}
    # Flat summary for dashboards: the most trusted source's terms, and the check.
    best = sources[-1]
    report["summary"] = {"source": best, **total["energy_nJ"][best],
                         "ann_total": ann_total["total"],
                         "E_SNN/E_ANN": report["ratios"]["E_SNN/E_ANN"][best]}
    report["measured_equals_exact"] = (not mismatches) if meas is not None else None
    return report


def dampfhoffer_section(arch, activities, timesteps, tech=DEFAULT, neuron_models=None):
    """The ``"dampfhoffer"`` entry of a report: N_spikes/syn, the break-even N_s of every ANN
    model (seed 002 Table 3.3) and the neuron-model rows (§3.3.2) on this network."""
    rows = dampfhoffer.network_neuron_models(arch, activities, timesteps, tech,
                                             models=neuron_models)
    return {"spikes_per_synapse": rows["spikes_per_synapse"],
            "breakeven": {r["model"]: r["n_s"] for r in dampfhoffer.breakeven(tech)
                          if r["model"] != "eyeriss_v2_thesis"},
            "neuron_models": rows}


def _synapse_choice(synapse, meas):
    """(datapath, where it comes from): the option, else the measured run's, else "mul"."""
    ran = meas.get("synapse") if meas is not None else None
    if ran is not None and ran not in lemaire.SYNAPSES:
        raise MlsnnError(f"measured counters: field 'synapse' must be one of "
                         f"{', '.join(lemaire.SYNAPSES)}, not {ran!r}")
    if synapse is None:
        return (ran, "measured") if ran is not None else ("mul", "default")
    if ran is not None and ran != synapse:
        raise MlsnnError(f"--synapse {synapse} contradicts the measured run, which used "
                         f"synapse={ran}")
    return synapse, "option"


def _ratio(a, b):
    return a / b if b else None

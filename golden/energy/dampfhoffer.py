"""Dampfhoffer's hardware-aware ANN/SNN baselines (seed 002, Ch. 3; ENERGY.md §2).

Energies are normalised to one MAC and given per synapse (multiply by N_syn for a network).
N_s is the number of spikes per synapse per inference. The SNN is the event-driven IF neuron
with instantaneous synapses (IF+inst), which needs no reuse and exploits sparsity by nature:
per spike one weight read, one state read and write, and one AC.

Break-even N_s (the SNN is as efficient as the ANN) = E_ANN per synapse / E_SNN per spike:

==============================  =============================================  =========
ANN model                       E_ANN per synapse                              published
==============================  =============================================  =========
naive (45 nm, 8 bit, §3.3)      ER_iact + ER_w + ER_psum + EW_psum + MAC        1.38
ideal reuse (65 nm, §3.4.1)     distant/RF + 3 reg reads + 1 reg write + MAC    0.28
reuse + iact sparsity γ         distant/RF + ER_iact_reg + (1−γ)(MAC + 3 reg)   0.15
Eyeriss v1 (RF 80, AlexNet)     ((1−γ) + 0.55γ)(ER_w + 3·SRAM/RF + MAC + 3 reg) 0.42
Eyeriss v1 (RF 25, VGG16)       same                                            0.44
Eyeriss v2                      Eyeriss v1 / 1.15                               0.37
==============================  =============================================  =========

The ideal reuse factors are those of a real topology (10²–10³); with ``rf=inf`` (the default)
the distant-memory terms vanish, which reproduces the published 0.28 and 0.15.

Two details follow the thesis text rather than the one-line summary of ENERGY.md: with input
sparsity (eq. 3.12) the register read of the input activation is *not* scaled by (1 − γ) — it
is read to find out that it is zero — and Eyeriss' weights come from the PE's SRAM at the SRAM
cost (eq. 3.13), with three register accesses (iact read, psum read and write).

Eyeriss v2: the thesis derives its 0.37 as the *rounded* Eyeriss v1 value divided by 1.15
(0.42 / 1.15 = 0.365 → 0.37); the unrounded model gives 0.4184 / 1.15 = 0.364. Both are
reported (:func:`breakeven`, ``eyeriss_v2`` and ``eyeriss_v2_thesis``).

Neuron models (§3.3.2): IF and LIF neurons with instantaneous or current-based ("cont")
synapses, eqs. 3.4, 3.7, 3.10 and LIF+cont = 3.10 + one MAC per neuron and timestep
(:func:`neuron_model_costs`), plus mlsnn's own leak (one AC per neuron and timestep t < T in the
fire sweep); :func:`network_neuron_models` prices them on a network and its activity,
:func:`table_3_2` and :func:`fig_3_2` recompute what §3.3.3–3.3.4 publish (docs/energy.md).
"""

from __future__ import annotations

import math

from ..errors import MlsnnError
from .tech import DEFAULT

__all__ = ["naive_ann", "if_inst", "lif_inst", "if_cont", "lif_cont", "ideal_reuse",
           "reuse_sparsity", "eyeriss_v1", "eyeriss_v2", "breakeven", "PUBLISHED",
           "PUBLISHED_8BIT", "PUBLISHED_MAC_VS_AC", "network_energy", "mac_vs_ac",
           "breakeven_8bit", "table_3_3", "NEURON_MODELS", "NEURON_LABELS", "neuron_model",
           "neuron_model_costs", "topology", "network_neuron_models", "PUBLISHED_TABLE_3_2",
           "table_3_2", "PUBLISHED_FIG_3_2", "PUBLISHED_FIG_3_3", "fig_3_2"]

#: Table 3.3 of seed 002 (AlexNet for Eyeriss) and the VGG16 Eyeriss v1 value of §3.4.2.
PUBLISHED = {"naive": 1.38, "ideal_reuse": 0.28, "reuse_sparsity": 0.15,
             "eyeriss_v1": 0.42, "eyeriss_v1_vgg16": 0.44, "eyeriss_v2": 0.37}

#: §3.4.3: Table 3.3 redone "with 8 bit data precision" (AlexNet for Eyeriss).
PUBLISHED_8BIT = {"naive": 1.38, "ideal_reuse": 0.30, "reuse_sparsity": 0.16,
                  "eyeriss_v1": 0.43, "eyeriss_v2": 0.38}

#: Table 3.3's first row, "MAC vs. AC comparison (state-of-the-art)": N_s ≈ 8 (8 bit) – 31
#: (32 bit), the ratio E_MAC / E_AC of Horowitz's 45 nm figures (§3.4.3).
PUBLISHED_MAC_VS_AC = {"8": 8, "32": 31}


def _d(tech):
    return tech.dampfhoffer


def _node(tech, node):
    """(E_SRAM, E_AC, E_reg) in MAC units: ``"45"`` (8 bit, §3.3; no register), ``"65"``
    (16 bit, Eyeriss, §3.4) or ``"8bit"`` (§3.4 redone at 8 bits, §3.4.3)."""
    d = _d(tech)
    if node == "45":
        return d.e_sram_45, d.e_ac_45, None
    if node == "65":
        return d.e_sram_65, d.e_ac_65, d.e_reg_65
    if node == "8bit":
        return d.e_sram_8bit, d.e_ac_8bit, d.e_reg_8bit
    raise MlsnnError(f"dampfhoffer: node must be '45', '65' or '8bit', not {node!r}")


# -- per-synapse energies (MAC = 1) ---------------------------------------------------------

def naive_ann(tech=DEFAULT, *, node="45"):
    """Eq. 3.2 per synapse: read iact, weight, psum; write psum; one MAC (45 nm, 8 bit)."""
    sram, _, _ = _node(tech, node)
    return 4 * sram + 1.0


def if_inst(n_s=1.0, tech=DEFAULT, *, node="45"):
    """Eq. 3.4 per synapse: N_s·(ER_w + ER_state + EW_state + E_AC).

    ``node="45"`` (8 bit, §3.3), ``"65"`` (16 bit, §3.4, the Eyeriss comparison) or
    ``"8bit"`` (§3.4 at 8 bits).
    """
    sram, ac, _ = _node(tech, node)
    return n_s * (3 * sram + ac)


def lif_inst(n_s, timesteps, neurons_per_synapse, tech=DEFAULT, *, node="45"):
    """Eq. 3.7 per synapse: IF+inst plus N_neur·T·(ER_state + EW_state + E_MAC) / N_syn."""
    return neuron_model("lif-inst", n_s, timesteps, neurons_per_synapse, tech,
                        node=node)["total"]


def if_cont(n_s, timesteps, neurons_per_synapse, tech=DEFAULT, *, node="45"):
    """Eq. 3.10 per synapse: N_s·(ER_w + ER_I + EW_I + E_AC) plus N_neur·T·(ER_I + EW_I
    + ER_state + EW_state + 2·E_MAC) / N_syn (the input current I decays, V integrates it)."""
    return neuron_model("if-cont", n_s, timesteps, neurons_per_synapse, tech,
                        node=node)["total"]


def lif_cont(n_s, timesteps, neurons_per_synapse, tech=DEFAULT, *, node="45"):
    """LIF+cont per synapse: eq. 3.10 plus one MAC per neuron and timestep, the decay of V
    (§3.3.2, the sentence after eq. 3.10; the thesis gives it no number of its own)."""
    return neuron_model("lif-cont", n_s, timesteps, neurons_per_synapse, tech,
                        node=node)["total"]


# -- the neuron models of §3.3.2 -------------------------------------------------------------

#: Seed 002's SNN neuron models (§3.3.2), and mlsnn's own leaky neuron (``"lif-sweep"``: the
#: leak k of docs/leak.md, one shift-subtract per neuron per timestep t < T inside the fire
#: sweep, which reads and writes every potential anyway, so it adds no memory access).
NEURON_MODELS = ("if-inst", "lif-inst", "if-cont", "lif-cont", "lif-sweep")
NEURON_LABELS = {"if-inst": "IF+inst", "lif-inst": "LIF+inst", "if-cont": "IF+cont",
                 "lif-cont": "LIF+cont", "lif-sweep": "LIF+inst (mlsnn sweep)"}
#: Where each model's energy comes from in seed 002 (equation numbers of Ch. 3).
EQUATIONS = {"if-inst": "3.4", "lif-inst": "3.7", "if-cont": "3.10",
             "lif-cont": "3.10 + MAC", "lif-sweep": "3.4 + (T-1) AC"}


def neuron_model_costs(model, tech=DEFAULT, *, node="45"):
    """Energies (MAC units) of one neuron model: ``(per spike per synapse, per neuron per
    timestep, timesteps without the update)``.

    ====================  ===============================  ===================================
    model                 per spike and synapse            per neuron and timestep
    ====================  ===============================  ===================================
    IF+inst (eq. 3.4)     ER_w + ER_state + EW_state + AC  0
    LIF+inst (eq. 3.7)    same                             ER_state + EW_state + MAC
    IF+cont (eq. 3.10)    ER_w + ER_I + EW_I + AC          ER_I + EW_I + ER_state + EW_state
                                                           + 2 MAC
    LIF+cont (§3.3.2)     same as IF+cont                  IF+cont's + 1 MAC (V's decay)
    mlsnn LIF (sweep)     same as IF+inst                  AC, at t < T only (β = 1 − 2^−k:
                                                           P − (P >> k), one subtraction)
    ====================  ===============================  ===================================

    Every memory access costs E_SRAM (states, currents and weights are all in SRAM), the
    MAC 1, the AC E_AC of ``node`` (Table 3.1: ``"45"`` 8 bit, used in §3.3; ``"65"``;
    ``"8bit"``).
    """
    if model not in NEURON_MODELS:
        raise MlsnnError(f"neuron model must be one of {', '.join(NEURON_MODELS)}, not "
                         f"{model!r}")
    sram, ac, _ = _node(tech, node)
    spike = 3 * sram + ac
    step = {"if-inst": 0.0, "lif-inst": 2 * sram + 1.0, "if-cont": 4 * sram + 2.0,
            "lif-cont": 4 * sram + 3.0, "lif-sweep": ac}[model]
    return spike, step, 1 if model == "lif-sweep" else 0


def neuron_model(model, n_s, timesteps, neurons_per_synapse, tech=DEFAULT, *, node="45"):
    """One neuron model's energy per synapse (MAC units) at ``n_s`` spikes per synapse, T
    timesteps and N_neur / N_syn neurons per synapse.

    Returns
    -------
    dict
        ``{"synaptic": N_s·per-spike, "neuron": per-step·updates·N_neur/N_syn, "total"}``;
        updates = T, or T − 1 for the mlsnn sweep (no leak at the last timestep).
    """
    _check_activity(n_s, timesteps, neurons_per_synapse)
    spike, step, skip = neuron_model_costs(model, tech, node=node)
    syn = n_s * spike
    neur = step * (timesteps - skip) * neurons_per_synapse
    return {"synaptic": syn, "neuron": neur, "total": syn + neur}


def _check_activity(n_s, timesteps, neurons_per_synapse):
    if not isinstance(n_s, (int, float)) or not math.isfinite(n_s) or n_s < 0:
        raise MlsnnError(f"spikes per synapse must be a finite number >= 0, not {n_s!r}")
    if isinstance(timesteps, bool) or not isinstance(timesteps, int) or timesteps < 1:
        raise MlsnnError(f"timesteps must be a positive integer, not {timesteps!r}")
    if (not isinstance(neurons_per_synapse, (int, float))
            or not math.isfinite(neurons_per_synapse) or neurons_per_synapse < 0):
        raise MlsnnError(f"neurons per synapse must be a finite number >= 0, not "
                         f"{neurons_per_synapse!r}")


def ideal_reuse(tech=DEFAULT, *, rf_iact=math.inf, rf_weight=math.inf, rf_psum=math.inf,
                node="65"):
    """Eq. 3.11 per synapse (65 nm): distant accesses divided by their reuse factors, plus
    3 register reads (iact, weight, psum), 1 register write (psum) and the MAC."""
    sram, _, reg = _node(tech, node)
    distant = sram * (1 / rf_iact + 1 / rf_weight + 2 / rf_psum)
    return distant + 4 * reg + 1.0


def reuse_sparsity(tech=DEFAULT, *, gamma=None, rf_iact=math.inf, rf_weight=math.inf,
                   rf_psum=math.inf, node="65"):
    """Eq. 3.12 per synapse: ideal reuse with zero iacts skipping the MAC, the weight and psum
    register accesses; the iact register read is always paid."""
    d = _d(tech)
    sram, _, reg = _node(tech, node)
    g = d.gamma if gamma is None else gamma
    distant = sram * (1 / rf_iact + 1 / rf_weight + 2 / rf_psum)
    return distant + reg + (1 - g) * (1.0 + 3 * reg)


def eyeriss_v1(tech=DEFAULT, *, rf_avg=None, topology="alexnet", gamma=None, node="65"):
    """Eq. 3.13 per synapse: ((1−γ) + 0.55γ)·(ER_w + (ER_iact + ER_psum + EW_psum)/RF_avg
    + E_MAC + 3 register accesses). RF_avg = 80 (AlexNet) or 25 (VGG16)."""
    d = _d(tech)
    sram, _, reg = _node(tech, node)
    if rf_avg is None:
        if topology not in ("alexnet", "vgg16"):
            raise MlsnnError(f"eyeriss topology must be 'alexnet' or 'vgg16', not {topology!r}")
        rf_avg = d.rf_alexnet if topology == "alexnet" else d.rf_vgg16
    g = d.gamma if gamma is None else gamma
    gating = (1 - g) + d.gated * g
    return gating * (sram + 3 * sram / rf_avg + 1.0 + 3 * reg)


def eyeriss_v2(tech=DEFAULT, **kw):
    """Eyeriss v2 = Eyeriss v1 (AlexNet) / 1.15 (sparse PEs, non-pruned network)."""
    return eyeriss_v1(tech, **kw) / _d(tech).eyeriss_v2_gain


def breakeven(tech=DEFAULT):
    """Break-even spikes per synapse per inference against every ANN model.

    Returns
    -------
    list of dict
        ``{"model", "node", "ann_per_synapse", "snn_per_spike", "n_s", "published"}`` (energies
        in MAC units); ``eyeriss_v2_thesis`` repeats the thesis' own derivation from the
        rounded Eyeriss v1 figure.
    """
    s45, s65 = if_inst(1.0, tech, node="45"), if_inst(1.0, tech, node="65")
    rows = [
        ("naive", "45nm 8b", naive_ann(tech), s45),
        ("ideal_reuse", "65nm 16b", ideal_reuse(tech), s65),
        ("reuse_sparsity", "65nm 16b", reuse_sparsity(tech), s65),
        ("eyeriss_v1", "65nm 16b", eyeriss_v1(tech, topology="alexnet"), s65),
        ("eyeriss_v1_vgg16", "65nm 16b", eyeriss_v1(tech, topology="vgg16"), s65),
        ("eyeriss_v2", "65nm 16b", eyeriss_v2(tech, topology="alexnet"), s65),
    ]
    out = [{"model": m, "node": n, "ann_per_synapse": a, "snn_per_spike": s, "n_s": a / s,
            "published": PUBLISHED.get(m)} for m, n, a, s in rows]
    v1 = next(r for r in out if r["model"] == "eyeriss_v1")["n_s"]
    out.append({"model": "eyeriss_v2_thesis", "node": "65nm 16b", "ann_per_synapse": None,
                "snn_per_spike": s65, "n_s": round(v1, 2) / tech.dampfhoffer.eyeriss_v2_gain,
                "published": PUBLISHED["eyeriss_v2"],
                "note": "the thesis divides the rounded Eyeriss v1 value (0.42) by 1.15"})
    return out


def mac_vs_ac(tech=DEFAULT):
    """Table 3.3's first row: the "MAC vs. AC" break-even N_s = E_MAC / E_AC of the synaptic
    operations alone (memory ignored), from the Horowitz constants of ``tech.ops``.

    Returns ``{"8": (mul + add) / add at 8 bits (0.23 / 0.03 = 7.67, "≈ 8"), "32": mul / add
    at 32 bits (3.1 / 0.1 = 31, the thesis' "31"), "32_mac": (mul + add) / add at 32 bits
    (32)}``: the thesis' two figures follow two conventions, a MAC priced as multiply + add at
    8 bits and as its multiply alone at 32 bits.
    """
    o = tech.ops
    for bits in (8, 32):
        if bits not in o.add_pj or bits not in o.mul_pj or not o.add_pj[bits]:
            raise MlsnnError(f"tech: 'ops.add_pj' and 'ops.mul_pj' need a nonzero entry for "
                             f"{bits} bits for the MAC vs. AC row")
    return {"8": (o.mul_pj[8] + o.add_pj[8]) / o.add_pj[8], "32": o.mul_pj[32] / o.add_pj[32],
            "32_mac": (o.mul_pj[32] + o.add_pj[32]) / o.add_pj[32]}


def breakeven_8bit(tech=DEFAULT):
    """Table 3.3 redone at 8 bits (§3.4.3): every model with the 8-bit constants
    (``e_*_8bit``), the SNN IF+inst likewise. Eyeriss v2 divides the unrounded v1 value.

    Returns
    -------
    list of dict
        ``{"model", "ann_per_synapse", "snn_per_spike", "n_s", "published"}``.
    """
    snn = if_inst(1.0, tech, node="8bit")
    v1 = eyeriss_v1(tech, topology="alexnet", node="8bit")
    rows = [("naive", naive_ann(tech, node="8bit")),
            ("ideal_reuse", ideal_reuse(tech, node="8bit")),
            ("reuse_sparsity", reuse_sparsity(tech, node="8bit")),
            ("eyeriss_v1", v1), ("eyeriss_v2", v1 / _d(tech).eyeriss_v2_gain)]
    return [{"model": m, "ann_per_synapse": a, "snn_per_spike": snn, "n_s": a / snn,
             "published": PUBLISHED_8BIT[m]} for m, a in rows]


def table_3_3(tech=DEFAULT):
    """Seed 002's Table 3.3 whole: per ANN model the break-even N_s with the thesis' constants
    (:func:`breakeven`) and at 8 bits (:func:`breakeven_8bit`), beside the printed values, and
    the MAC vs. AC row (:func:`mac_vs_ac`).

    Returns
    -------
    dict
        ``{"rows": [{"model", "n_s", "published", "n_s_8bit", "published_8bit"}],
        "mac_vs_ac": {"8", "32", "32_mac"}, "mac_vs_ac_published": {"8", "32"}}``.
    """
    b8 = {r["model"]: r for r in breakeven_8bit(tech)}
    rows = []
    for r in breakeven(tech):
        if r["model"] in ("eyeriss_v1_vgg16", "eyeriss_v2_thesis"):
            continue
        e = b8[r["model"]]
        rows.append({"model": r["model"], "n_s": r["n_s"], "published": r["published"],
                     "n_s_8bit": e["n_s"], "published_8bit": e["published"]})
    return {"rows": rows, "mac_vs_ac": mac_vs_ac(tech),
            "mac_vs_ac_published": dict(PUBLISHED_MAC_VS_AC)}


def network_energy(synapses, n_s, tech=DEFAULT, *, neurons=0, timesteps=1):
    """Energies (MAC units) of a network with ``synapses`` synapses under every model, and the
    SNN's IF+inst / LIF+inst energies at ``n_s`` spikes per synapse."""
    per = {r["model"]: r["ann_per_synapse"] for r in breakeven(tech)
           if r["ann_per_synapse"] is not None}
    out = {f"ann_{k}": v * synapses for k, v in per.items()}
    out["snn_if_inst_45"] = if_inst(n_s, tech, node="45") * synapses
    out["snn_if_inst_65"] = if_inst(n_s, tech, node="65") * synapses
    if neurons:
        out["snn_lif_inst_45"] = lif_inst(n_s, timesteps, neurons / synapses, tech) * synapses
    return out


# -- the neuron models on a network --------------------------------------------------------

def topology(arch, activities=None):
    """N_syn, N_neur and N_spikes/syn of the conv and dense layers of ``arch`` (seed 002 §3.3.4).

    With ``activities`` (:class:`~golden.energy.lemaire.Activity` per layer) only the layers
    fed by spikes count: a layer that receives pixels is an encoding layer, left out as seed
    002 does (§3.3.4, "only the energy of spiking layers is considered"); N_s is the spikes
    entering a layer per input neuron, averaged over the layers weighted by their synapses
    (an event counts once whatever its value). Without ``activities`` every conv and dense
    layer counts and N_s is None.

    N_neur counts the neurons mlsnn holds (every conv or dense output, the readout's too);
    ``neurons_pooled`` counts a conv followed by a pool as the pool's outputs, the convention
    behind seed 002's N_syn/N_neur figures (Fig. 3.3: VGG16 1.7·10³, see :func:`fig_3_2`).
    Residual joins and pools have no synapses (no ANN MAC) and are not counted.

    Returns
    -------
    dict
        ``{"synapses", "neurons", "neurons_pooled", "spikes_per_synapse", "layers"}``.
    """
    consumers = {}
    for spec in arch.layers:
        for src in spec.inputs:
            consumers.setdefault(src, []).append(spec)
    syn = neur = pooled = 0
    num = 0.0
    names = []
    for spec in arch.layers:
        if spec.kind not in ("conv", "dense"):
            continue
        if activities is not None:
            act = activities[spec.name]
            if act.pixels.events:
                continue
            num += act.spikes.events / spec.n_in * spec.synapses
        nxt = consumers.get(spec.name, [])
        names.append(spec.name)
        syn += spec.synapses
        neur += spec.n_out
        pooled += nxt[0].n_out if len(nxt) == 1 and nxt[0].kind == "pool" else spec.n_out
    n_s = num / syn if activities is not None and syn else None
    return {"synapses": syn, "neurons": neur, "neurons_pooled": pooled,
            "spikes_per_synapse": n_s, "layers": names}


def _breakeven_model(model, timesteps, neurons_per_synapse, tech, node):
    """N_s at which ``model`` costs as much as the naive ANN, None when it never does."""
    spike, step, skip = neuron_model_costs(model, tech, node=node)
    n_s = (naive_ann(tech, node=node) - step * (timesteps - skip) * neurons_per_synapse) / spike
    return n_s if n_s > 0 else None


def network_neuron_models(arch, activities, timesteps, tech=DEFAULT, *, models=None,
                          node="45"):
    """Seed 002's neuron models priced on a network and its activity, against the naive ANN
    (eq. 3.2), as Table 3.2 does for published SNNs.

    Parameters
    ----------
    arch : :class:`~golden.energy.arch.Arch`
    activities : dict of :class:`~golden.energy.lemaire.Activity`
        Per layer; N_syn, N_neur and N_s follow :func:`topology`.
    timesteps : int
    models : sequence of str or None
        Rows to give, from :data:`NEURON_MODELS` (None: all).
    node : ``"45"`` (Table 3.1, 8 bit, the constants of §3.3), ``"65"`` or ``"8bit"``.

    Returns
    -------
    dict
        ``{"models", "node", "synapses", "neurons", "neurons_pooled", "synapses_per_neuron",
        "spikes_per_synapse", "timesteps", "layers", "leaky_layers", "network_neurons",
        "ann_naive", "rows": [{"model", "label", "equation", "per_spike",
        "per_neuron_timestep", "synaptic", "neuron", "total", "neuron_share", "E_ANN/E_SNN",
        "E_SNN/E_ANN", "breakeven_n_s"}]}``; energies in MAC units per inference; ``rows`` is
        empty (and ``note`` says why) when no conv or dense layer is fed by spikes.
    """
    models = list(NEURON_MODELS) if models is None else list(dict.fromkeys(models))
    for m in models:
        neuron_model_costs(m, tech, node=node)          # names an unknown model
    topo = topology(arch, activities)
    leaky = {s.name: s.leak for s in arch.layers if getattr(s, "leak", 0)}
    spiking = [s for s in arch.layers if s.kind in ("conv", "dense") and not s.readout]
    kind = ("IF" if not leaky else "LIF" if len(leaky) == len(spiking) else "mixed")
    out = {"models": models, "node": node, "timesteps": timesteps,
           **{k: topo[k] for k in ("synapses", "neurons", "neurons_pooled",
                                   "spikes_per_synapse", "layers")},
           "synapses_per_neuron": topo["synapses"] / topo["neurons"] if topo["neurons"] else None,
           "leaky_layers": leaky, "network_neurons": kind, "rows": []}
    syn = topo["synapses"]
    if not syn:
        out["ann_naive"] = 0.0
        out["note"] = ("no conv or dense layer is fed by spikes (a layer fed by pixels is an "
                       "encoding layer, left out as seed 002 §3.3.4 does)")
        return out
    n_s, nps = topo["spikes_per_synapse"], topo["neurons"] / syn
    ann = naive_ann(tech, node=node)
    out["ann_naive"] = ann * syn
    for m in models:
        e = neuron_model(m, n_s, timesteps, nps, tech, node=node)
        spike, step, _ = neuron_model_costs(m, tech, node=node)
        out["rows"].append({
            "model": m, "label": NEURON_LABELS[m], "equation": EQUATIONS[m],
            "per_spike": spike, "per_neuron_timestep": step,
            "synaptic": e["synaptic"] * syn, "neuron": e["neuron"] * syn,
            "total": e["total"] * syn,
            "neuron_share": e["neuron"] / e["total"] if e["total"] else None,
            "E_ANN/E_SNN": ann / e["total"] if e["total"] else None,
            "E_SNN/E_ANN": e["total"] / ann,
            "breakeven_n_s": _breakeven_model(m, timesteps, nps, tech, node)})
    return out


# -- what of seed 002 §3.3 can be reproduced -------------------------------------------------

#: Seed 002 Table 3.2: E_ANN/E_SNN of published SNNs against the naive ANN (45 nm, 8 bit).
#: ``timesteps`` None: "-" in the table (IF+inst does not depend on T). *: an encoding layer.
_TABLE_3_2_KEYS = ("dataset", "topology", "model", "timesteps", "n_s", "efficiency", "ref")
PUBLISHED_TABLE_3_2 = tuple(dict(zip(_TABLE_3_2_KEYS, row)) for row in (
    ("CIFAR-10", "VGG8*", "if-inst", None, 0.30, 4.6, "Wu et al., 2021"),
    ("CIFAR-10", "VGG16", "if-inst", None, 1.30, 1.1, "Han et al., 2020b"),
    ("CIFAR-10", "VGG16", "if-inst", None, 0.51, 2.7, "Han et al., 2020a"),
    ("CIFAR-10", "ResNet11", "lif-inst", 100, 3.60, 0.4, "Lee et al., 2020a"),
    ("CIFAR-10", "VGG9", "lif-inst", 25, 0.80, 1.7, "Kim et al., 2020"),
    ("CIFAR-10", "VGG16*", "lif-inst", 5, 0.39, 3.6, "Rathi et al., 2021b"),
    ("CIFAR-10", "VGG16", "if-cont", 680, 0.62, 1.3, "Zhou et al., 2021"),
    ("ImageNet", "VGG16", "if-inst", None, 5.00, 0.3, "Han et al., 2020b"),
    ("ImageNet", "VGG16", "if-inst", None, 1.00, 1.4, "Han et al., 2020a"),
    ("ImageNet", "VGG16*", "lif-inst", 5, 0.41, 3.4, "Rathi et al., 2021b"),
))

#: §3.3.3 on Fig. 3.2 (VGG16, N_spikes/syn = 1, T = 500): the neuron updates are 15.17 % of
#: LIF+inst's energy and 26.34 % of IF+cont's.
PUBLISHED_FIG_3_2 = {"timesteps": 500, "n_s": 1.0,
                     "neuron_share_percent": {"lif-inst": 15.17, "if-cont": 26.34}}

#: Fig. 3.3's caption: N_syn/N_neur of the thesis' topologies.
PUBLISHED_FIG_3_3 = {"alexnet": 2.9e3, "vgg16": 1.7e3, "mobilenet": 9.4e2}

#: Half a unit of the last printed digit: of N_spikes/syn (two decimals) and of an energy
#: efficiency (one decimal) in Table 3.2, of a percentage (two decimals) in §3.3.3.
HALF_UNIT = {"n_s": 0.005, "efficiency": 0.05, "percent": 0.005}


def _efficiency(model, n_s, timesteps, spn, tech):
    """E_ANN/E_SNN (naive ANN, 45 nm) at N_syn/N_neur = ``spn``."""
    return naive_ann(tech) / neuron_model(model, n_s, timesteps, 1.0 / spn, tech)["total"]


def _reproducing_ratios(row, tech):
    """The N_syn/N_neur interval [lo, hi] over which ``row`` of Table 3.2 is reproduced: some
    N_s within half a unit of the printed one gives an efficiency within half a unit of the
    printed one. None when no ratio does; hi None: unbounded; lo 0: any ratio."""
    spike, step, skip = neuron_model_costs(row["model"], tech)
    ann, T = naive_ann(tech), (row["timesteps"] or 1) - skip
    du, de = HALF_UNIT["n_s"], HALF_UNIT["efficiency"]
    # Highest efficiency (fewest spikes) must reach the printed value's lower edge ...
    g = ann / (row["efficiency"] - de) - (row["n_s"] - du) * spike
    # ... and the lowest (most spikes) must not pass its upper edge.
    h = ann / (row["efficiency"] + de) - (row["n_s"] + du) * spike
    if g < 0 or (step == 0 and h > 0):
        return None
    lo = 0.0 if step == 0 else (step * T / g if g > 0 else math.inf)
    hi = None if h <= 0 else step * T / h
    if hi is not None and lo > hi:
        return None
    return [lo, hi]


def table_3_2(tech=DEFAULT, *, synapses_per_neuron=(PUBLISHED_FIG_3_3["mobilenet"],
                                                    PUBLISHED_FIG_3_3["alexnet"])):
    """Seed 002 Table 3.2 recomputed with eqs. 3.2, 3.4, 3.7 and 3.10 (45 nm, 8 bit).

    The thesis gives N_s, T and the model of each row but not its N_syn/N_neur. IF+inst does
    not depend on it; for the others each row gives the efficiency at the printed N_s over
    ``synapses_per_neuron`` (default: the thesis' smallest and largest, MobileNet 9.4·10² and
    AlexNet 2.9·10³) and the interval of ratios that reproduces the printed value within
    half a unit of its last digit, N_s taken within half a unit of its own.

    Returns
    -------
    list of dict
        The published row plus ``"mlsnn": [efficiency at the first ratio, at the second]``
        and ``"reproduced_for": [lo, hi]`` (None: no ratio reproduces it; hi None: no upper
        bound).
    """
    rows = []
    for row in PUBLISHED_TABLE_3_2:
        T = row["timesteps"] or 1
        rows.append({**row, "mlsnn": [_efficiency(row["model"], row["n_s"], T, r, tech)
                                      for r in synapses_per_neuron],
                     "synapses_per_neuron": list(synapses_per_neuron),
                     "reproduced_for": _reproducing_ratios(row, tech)})
    return rows


def _share(model, n_s, timesteps, spn, tech):
    e = neuron_model(model, n_s, timesteps, 1.0 / spn, tech)
    return e["neuron"] / e["total"]


def _ratio_from_share(model, share, n_s, timesteps, tech):
    """N_syn/N_neur at which the neuron updates are ``share`` of ``model``'s energy."""
    spike, step, skip = neuron_model_costs(model, tech)
    return step * (timesteps - skip) * (1 - share) / (share * n_s * spike)


def fig_3_2(tech=DEFAULT):
    """§3.3.3's numbers on Figs. 3.2 and 3.3 against the models and mlsnn's VGG16.

    - The N_syn/N_neur that each published share (15.17 %, 26.34 %) implies, and the IF+cont
      share that the LIF+inst one predicts (eqs. 3.7 and 3.10 have the same per-spike cost
      and IF+cont's per-step cost is twice LIF+inst's, so share_cont = 2f / (1 + f) whatever
      the constants or the topology), with the interval that the rounding of 15.17 gives.
    - The shares at Fig. 3.3's VGG16 ratio, 1.7·10³.
    - mlsnn's VGG16 (CIFAR-10, FC 512-512-10; ImageNet 224², FC 4096-4096-1000): N_syn/N_neur
      counting every conv output (the neurons the hardware holds) and counting a conv followed
      by a pool as the pool's outputs (:func:`topology`).

    Returns
    -------
    dict
        ``{"published", "implied_ratio": {model: r}, "if_cont_predicted": {"percent", "low",
        "high"}, "at_fig_3_3_vgg16": {model: percent}, "vgg16": {name: {"synapses",
        "neurons", "neurons_pooled", "ratio", "ratio_pooled"}}}``.
    """
    from .arch import vgg16

    pub = PUBLISHED_FIG_3_2
    T, n_s = pub["timesteps"], pub["n_s"]
    shares = pub["neuron_share_percent"]
    implied = {m: _ratio_from_share(m, p / 100, n_s, T, tech) for m, p in shares.items()}
    half = HALF_UNIT["percent"]
    pred = [100 * _share("if-cont", n_s, T,
                         _ratio_from_share("lif-inst", (shares["lif-inst"] + d) / 100, n_s, T,
                                           tech), tech) for d in (0.0, -half, half)]
    nets = {"cifar10": vgg16((3, 32, 32)),
            "imagenet": vgg16((3, 224, 224), classes=1000, fc=(4096, 4096))}
    vgg = {}
    for name, a in nets.items():
        t = topology(a)
        vgg[name] = {"synapses": t["synapses"], "neurons": t["neurons"],
                     "neurons_pooled": t["neurons_pooled"],
                     "ratio": t["synapses"] / t["neurons"],
                     "ratio_pooled": t["synapses"] / t["neurons_pooled"]}
    r33 = PUBLISHED_FIG_3_3["vgg16"]
    return {"published": {"fig_3_2": pub, "fig_3_3": PUBLISHED_FIG_3_3},
            "implied_ratio": implied,
            "if_cont_predicted": {"percent": pred[0], "low": min(pred[1:]),
                                  "high": max(pred[1:])},
            "at_fig_3_3_vgg16": {m: 100 * _share(m, n_s, T, r33, tech) for m in shares},
            "vgg16": vgg}

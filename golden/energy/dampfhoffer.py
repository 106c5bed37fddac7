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
"""

from __future__ import annotations

import math

from ..errors import MlsnnError
from .tech import DEFAULT

__all__ = ["naive_ann", "if_inst", "lif_inst", "ideal_reuse", "reuse_sparsity", "eyeriss_v1",
           "eyeriss_v2", "breakeven", "PUBLISHED", "PUBLISHED_8BIT", "PUBLISHED_MAC_VS_AC",
           "network_energy", "mac_vs_ac", "breakeven_8bit", "table_3_3"]

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


def lif_inst(n_s, timesteps, neurons_per_synapse, tech=DEFAULT):
    """Eq. 3.7 per synapse: IF+inst plus N_neur·T·(ER_state + EW_state + E_MAC) / N_syn."""
    d = _d(tech)
    return if_inst(n_s, tech) + neurons_per_synapse * timesteps * (2 * d.e_sram_45 + 1.0)


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

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
           "eyeriss_v2", "breakeven", "PUBLISHED", "network_energy"]

#: Table 3.3 of seed 002 (AlexNet for Eyeriss) and the VGG16 Eyeriss v1 value of §3.4.2.
PUBLISHED = {"naive": 1.38, "ideal_reuse": 0.28, "reuse_sparsity": 0.15,
             "eyeriss_v1": 0.42, "eyeriss_v1_vgg16": 0.44, "eyeriss_v2": 0.37}


def _d(tech):
    return tech.dampfhoffer


# -- per-synapse energies (MAC = 1) ---------------------------------------------------------

def naive_ann(tech=DEFAULT):
    """Eq. 3.2 per synapse: read iact, weight, psum; write psum; one MAC (45 nm, 8 bit)."""
    d = _d(tech)
    return 4 * d.e_sram_45 + 1.0


def if_inst(n_s=1.0, tech=DEFAULT, *, node="45"):
    """Eq. 3.4 per synapse: N_s·(ER_w + ER_state + EW_state + E_AC).

    ``node="45"`` (8 bit, §3.3) or ``"65"`` (16 bit, §3.4, the Eyeriss comparison).
    """
    d = _d(tech)
    sram, ac = (d.e_sram_45, d.e_ac_45) if node == "45" else (d.e_sram_65, d.e_ac_65)
    return n_s * (3 * sram + ac)


def lif_inst(n_s, timesteps, neurons_per_synapse, tech=DEFAULT):
    """Eq. 3.7 per synapse: IF+inst plus N_neur·T·(ER_state + EW_state + E_MAC) / N_syn."""
    d = _d(tech)
    return if_inst(n_s, tech) + neurons_per_synapse * timesteps * (2 * d.e_sram_45 + 1.0)


def ideal_reuse(tech=DEFAULT, *, rf_iact=math.inf, rf_weight=math.inf, rf_psum=math.inf):
    """Eq. 3.11 per synapse (65 nm): distant accesses divided by their reuse factors, plus
    3 register reads (iact, weight, psum), 1 register write (psum) and the MAC."""
    d = _d(tech)
    distant = d.e_sram_65 * (1 / rf_iact + 1 / rf_weight + 2 / rf_psum)
    return distant + 4 * d.e_reg_65 + 1.0


def reuse_sparsity(tech=DEFAULT, *, gamma=None, rf_iact=math.inf, rf_weight=math.inf,
                   rf_psum=math.inf):
    """Eq. 3.12 per synapse: ideal reuse with zero iacts skipping the MAC, the weight and psum
    register accesses; the iact register read is always paid."""
    d = _d(tech)
    g = d.gamma if gamma is None else gamma
    distant = d.e_sram_65 * (1 / rf_iact + 1 / rf_weight + 2 / rf_psum)
    return distant + d.e_reg_65 + (1 - g) * (1.0 + 3 * d.e_reg_65)


def eyeriss_v1(tech=DEFAULT, *, rf_avg=None, topology="alexnet", gamma=None):
    """Eq. 3.13 per synapse: ((1−γ) + 0.55γ)·(ER_w + (ER_iact + ER_psum + EW_psum)/RF_avg
    + E_MAC + 3 register accesses). RF_avg = 80 (AlexNet) or 25 (VGG16)."""
    d = _d(tech)
    if rf_avg is None:
        if topology not in ("alexnet", "vgg16"):
            raise MlsnnError(f"eyeriss topology must be 'alexnet' or 'vgg16', not {topology!r}")
        rf_avg = d.rf_alexnet if topology == "alexnet" else d.rf_vgg16
    g = d.gamma if gamma is None else gamma
    gating = (1 - g) + d.gated * g
    return gating * (d.e_sram_65 + 3 * d.e_sram_65 / rf_avg + 1.0 + 3 * d.e_reg_65)


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

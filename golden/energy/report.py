"""Analytic reports of an architecture: the ANN and the SNN side by side (seed 000, Table 3).

:func:`arch_report` prices an :class:`~golden.energy.arch.Arch` as an ANN and, given its
activity (spike rates, a total spike count, or activities recorded from a torch model), as an
SNN; the JSON layout matches :func:`golden.energy.compare.ir_report` with one source,
``"analytic"``.
"""

from __future__ import annotations

from ..errors import MlsnnError
from . import dampfhoffer, lemaire
from .compare import PJ_PER_NJ, dampfhoffer_section
from .tech import DEFAULT

__all__ = ["arch_report", "ann_section", "snn_section", "uniform_rate"]


def _nj(d):
    return {k: v / PJ_PER_NJ for k, v in d.items()}


def uniform_rate(arch, timesteps, total_spikes):
    """The rate (events per neuron per timestep) that gives ``total_spikes`` per inference when
    every firing neuron of ``arch`` fires at it (seed 000 eq. 12 counts the same events)."""
    n = arch.neurons
    if n == 0:
        raise MlsnnError("the architecture has no firing neurons")
    r = total_spikes / (timesteps * n)
    if r > 1:
        raise MlsnnError(f"{total_spikes:g} spikes per inference exceed one event per neuron per "
                         f"timestep ({timesteps * n} events)")
    return r


def ann_section(arch, tech=DEFAULT):
    est = lemaire.estimate(arch, ann=True, tech=tech)
    return {"layers": [{"name": l["name"], "kind": l["kind"], "ops": l["ops"],
                        "energy_nJ": _nj(l["energy_pj"])} for l in est["layers"]],
            "total": {"ops": est["total"]["ops"], "energy_nJ": _nj(est["total"]["energy_pj"]),
                      "macs": arch.synapses}}


def snn_section(arch, activities, timesteps, tech=DEFAULT, *, fifo_depth=None, leak=False,
                addressing="per-synapse", synapse="mul", pixels="mac", pool_events="priced"):
    est = lemaire.estimate(arch, activities, timesteps, tech, fifo_depth=fifo_depth, leak=leak,
                           addressing=addressing, synapse=synapse, pixels=pixels,
                           pool_events=pool_events)
    layers = []
    for spec, l in zip(arch.layers, est["layers"]):
        layers.append({
            "name": l["name"], "kind": l["kind"],
            "shape": {"in": list(spec.in_shape), "out": list(spec.out_shape),
                      **({"kernel": spec.kernel, "stride": spec.stride,
                          "padding": spec.padding} if spec.kind in ("conv", "pool") else {})},
            "levels": spec.levels, "readout": spec.readout,
            "activity": activities[spec.name].to_json(),
            "counters": {"analytic": l["counters"]}, "ops": {"analytic": l["ops"]},
            "cost_pJ_per_access": l["cost_pj"],
            "energy_nJ": {"analytic": _nj(l["energy_pj"])}})
    total = {"counters": {"analytic": est["total"]["counters"]},
             "ops": {"analytic": est["total"]["ops"]},
             "energy_nJ": {"analytic": _nj(est["total"]["energy_pj"])},
             "spikes": sum(activities[s.name].ev_out for s in arch.layers
                           if s.has_neurons and not s.readout)}
    return layers, total


def spikes_per_synapse(arch, activities):
    """Dampfhoffer's N_spikes/syn: spikes per input neuron per inference, averaged over the
    spiking layers weighted by their synapses (layers fed by pixels are left out, as seed 002
    does for encoding layers; :func:`golden.energy.dampfhoffer.topology`)."""
    return dampfhoffer.topology(arch, activities)["spikes_per_synapse"]


def arch_report(arch, *, timesteps=1, ann_only=False, rates=None, total_spikes=None,
                activities=None, input_density=1.0, mean_level=1.0, tech=DEFAULT,
                fifo_depth=None, leak=False, source="rates", addressing="per-synapse",
                synapse="mul", pixels="mac", pool_events="priced", neuron_models=None):
    """ANN (and SNN) energies of ``arch`` in nJ per inference.

    Parameters
    ----------
    rates : float or dict or None
        Spike rate(s) per neuron per timestep (see :func:`lemaire.activity_from_rates`).
    total_spikes : float or None
        Alternatively, spikes per inference spread at one uniform rate (seed 000's activity).
    activities : dict or None
        Alternatively, recorded :class:`~golden.energy.lemaire.Activity` per layer.
    addressing, synapse : str
        Conv addressing and z·w datapath (:func:`golden.energy.lemaire.snn_counts`).
    pixels, pool_events : str
        Seed 000 Table 3's conventions (:func:`golden.energy.lemaire.apply_conventions`).
    neuron_models : sequence of str or None
        Seed 002's neuron-model rows of ``"dampfhoffer"``
        (:func:`golden.energy.dampfhoffer.network_neuron_models`; None: all).
    """
    lemaire.check_choices(addressing, synapse)
    ann = ann_section(arch, tech)
    rep = {"model": "lemaire", "units": {"energy": "nJ per inference",
                                         "counts": "per inference"},
           "network": arch.name, "input_shape": list(arch.input_shape),
           "tech": tech.to_json(), "arch": arch.to_json(), "ann": ann}
    if ann_only:
        rep["kind"] = "ann"
        rep["sources"] = []
        return rep
    if activities is None:
        if total_spikes is not None:
            rates = uniform_rate(arch, timesteps, total_spikes)
        if rates is None:
            raise MlsnnError("an SNN estimate needs spike rates (--spike-rate), a total spike "
                             "count (--total-spikes) or recorded activity")
        activities = lemaire.activity_from_rates(arch, timesteps, rates,
                                                 input_density=input_density,
                                                 mean_level=mean_level)
        rep["activity_source"] = {"rates": rates, "input_density": input_density,
                                  "mean_level": mean_level}
    else:
        rep["activity_source"] = source
    layers, total = snn_section(arch, activities, timesteps, tech, fifo_depth=fifo_depth,
                                leak=leak, addressing=addressing, synapse=synapse,
                                pixels=pixels, pool_events=pool_events)
    e_ann = ann["total"]["energy_nJ"]["total"]
    rep.update({
        "kind": "snn", "timesteps": timesteps,
        "levels": max((s.levels for s in arch.layers), default=1),
        "fifo_depth": fifo_depth or tech.sram.fifo_depth, "sources": ["analytic"],
        "layers": layers, "total": total,
        "ratios": {"E_SNN/E_ANN": {"analytic": total["energy_nJ"]["analytic"]["total"] / e_ann},
                   "E_SNN/E_ANN_sum_z": {"analytic": total["energy_nJ"]["analytic"]
                                         ["total_sum_z"] / e_ann},
                   "E_SNN/E_ANN_hw": {"analytic": total["energy_nJ"]["analytic"]["total_hw"]
                                      / e_ann}},
        "options": {"conv_addressing": addressing, "synapse": synapse,
                    "synapse_source": "option", "pixels": pixels, "pool_events": pool_events},
        "dampfhoffer": dampfhoffer_section(arch, activities, timesteps, tech, neuron_models),
    })
    return rep


#: Seed 000 Table 3 (VGG16 on CIFAR-10, nJ per inference; ``None``: the paper prints "-"),
#: for the configurations whose spike totals §6.1 gives (130·10³ and 57·10³ per inference).
SEED000_TABLE3 = {
    "ANN": {"potentials": None, "weights": 5.58e6, "bias": 6.9e2, "in_out": 6.1e6,
            "memory": 11.6e6, "synaptic": 1.29e6, "addressing": 4.9e2, "total": 12.9e6},
    "SNN T=4 N=1": {"potentials": 6.0e6, "weights": 2.4e6, "bias": 27.8e2, "in_out": 3.5e3,
                    "memory": 8.4e6, "synaptic": 13.3e3, "addressing": 9.0e2, "total": 8.5e6},
    "SNN T=1 N=4": {"potentials": 3.1e6, "weights": 1.3e6, "bias": 6.9e2, "in_out": 1.54e3,
                    "memory": 4.38e6, "synaptic": 27.9e3, "addressing": 5.5e2, "total": 4.41e6},
}
SEED000_SPIKES = {"SNN T=4 N=1": (4, 1, 130_000), "SNN T=1 N=4": (1, 4, 57_000)}
SEED000_RATIOS = {"E_SNN/E_ANN": {"SNN T=4 N=1": 0.65, "SNN T=1 N=4": 0.34},
                  "E_N/E_binary": 0.51}

#: The terms of Table 3, in its order.
TABLE3_TERMS = ("potentials", "weights", "bias", "in_out", "memory", "synaptic", "addressing",
                "total")


def paper_table3(tech=DEFAULT, *, addressing="per-kernel", pixels="none", pool_events="free",
                 synapse="mul"):
    """Seed 000 Table 3 beside mlsnn's estimate of the same VGG16, per term, with ratios.

    The SNN activity is the paper's spike total spread at one uniform rate (it publishes no
    per-layer activity). The defaults are the conventions Table 3 was made with (the public
    implementation: conv addressing per kernel, pixels not priced, pools free); pass mlsnn's
    own (``"per-synapse"``, ``"mac"``, ``"priced"``) to see how far they move each term.

    Returns
    -------
    dict
        ``{"conventions", "columns": {column: {term: {"paper", "mlsnn", "ratio"}}},
        "ratios": {name: {column: {"paper", "mlsnn"}}}}``; ratio = mlsnn / paper.
    """
    from .arch import vgg16

    conv = {"conv_addressing": addressing, "pixels": pixels, "pool_events": pool_events,
            "synapse": synapse}
    ours = {}
    for col, (T, N, spikes) in SEED000_SPIKES.items():
        rep = arch_report(vgg16((3, 32, 32), levels=N), timesteps=T, total_spikes=spikes,
                          tech=tech, addressing=addressing, synapse=synapse, pixels=pixels,
                          pool_events=pool_events)
        ours["ANN"] = rep["ann"]["total"]["energy_nJ"]
        ours[col] = rep["total"]["energy_nJ"]["analytic"]
    columns = {}
    for col, paper in SEED000_TABLE3.items():
        columns[col] = {t: {"paper": paper[t], "mlsnn": ours[col][t],
                            "ratio": ours[col][t] / paper[t] if paper[t] else None}
                        for t in TABLE3_TERMS}
    e_ann = ours["ANN"]["total"]
    ratios = {"E_SNN/E_ANN": {c: {"paper": SEED000_RATIOS["E_SNN/E_ANN"][c],
                                  "mlsnn": ours[c]["total"] / e_ann} for c in SEED000_SPIKES},
              "E_N/E_binary": {"[1,4]/[4,1]": {
                  "paper": SEED000_RATIOS["E_N/E_binary"],
                  "mlsnn": ours["SNN T=1 N=4"]["total"] / ours["SNN T=4 N=1"]["total"]}}}
    return {"conventions": conv, "columns": columns, "ratios": ratios}

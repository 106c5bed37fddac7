"""Analytic reports of an architecture: the ANN and the SNN side by side (seed 000, Table 3).

:func:`arch_report` prices an :class:`~golden.energy.arch.Arch` as an ANN and, given its
activity (spike rates, a total spike count, or activities recorded from a torch model), as an
SNN; the JSON layout matches :func:`golden.energy.compare.ir_report` with one source,
``"analytic"``.
"""

from __future__ import annotations

from ..errors import MlsnnError
from . import dampfhoffer, lemaire
from .compare import PJ_PER_NJ
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
                addressing="per-synapse", synapse="mul"):
    est = lemaire.estimate(arch, activities, timesteps, tech, fifo_depth=fifo_depth, leak=leak,
                           addressing=addressing, synapse=synapse)
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
    does for encoding layers)."""
    num = den = 0.0
    for spec in arch.layers:
        if not spec.synapses:
            continue
        act = activities[spec.name]
        if act.pixels.events:
            continue
        num += act.spikes.events / spec.n_in * spec.synapses
        den += spec.synapses
    return num / den if den else None


def arch_report(arch, *, timesteps=1, ann_only=False, rates=None, total_spikes=None,
                activities=None, input_density=1.0, mean_level=1.0, tech=DEFAULT,
                fifo_depth=None, leak=False, source="rates", addressing="per-synapse",
                synapse="mul"):
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
                                leak=leak, addressing=addressing, synapse=synapse)
    e_ann = ann["total"]["energy_nJ"]["total"]
    n_s = spikes_per_synapse(arch, activities)
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
                    "synapse_source": "option"},
        "dampfhoffer": {"spikes_per_synapse": n_s,
                        "breakeven": {r["model"]: r["n_s"] for r in dampfhoffer.breakeven(tech)
                                      if r["model"] != "eyeriss_v2_thesis"}},
    })
    return rep

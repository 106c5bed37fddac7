"""The analytic energy model of Lemaire et al. (ICONIP 2022) as used by seed 000 (§5.3).

Per layer, an inference costs memory accesses (potentials, weights, biases, input/output
activations or events), synaptic operations (MAC, ACC) and addressing. This module counts them
from the layer shapes (:class:`~golden.energy.arch.LayerSpec`) and, for SNN layers, from the
activity (:class:`Activity`), then prices them with the technology table. The formulas are
those of ENERGY.md §1, written out in :func:`snn_counts` and :func:`ann_ops`; pooling, which
ENERGY.md leaves out, follows the same structure (``docs/energy.md``, Pooling).

Everything here is per inference; energies are in pJ (the reports convert to nJ).

Vocabulary
----------
``counters``: the analytic values of the hardware's counters (SPEC §5: ``ev_in``, ``ev_out``,
``w_rd``, ``p_rd``, ``p_wr``, ``b_rd``, ``syn_updates``, ``syn_acc``), to compare with the exact
and measured ones. ``ops``: the operation counts that are priced (:data:`OPS`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from ..counters import SPEC_COUNTERS as COUNTERS
from ..errors import MlsnnError
from ..ir import INPUT
from .tech import DEFAULT

__all__ = ["Flow", "Activity", "OPS", "TERMS", "COUNTERS", "ADDRESSING", "SYNAPSES", "snn_counts",
           "ann_ops", "costs", "energy", "add_terms", "activity_from_rates", "estimate",
           "value_bits", "check_choices", "hw_synaptic_adds", "PIXELS", "POOL_EVENTS",
           "apply_conventions"]


#: Priced operation counts. ``acc_syn`` is the paper's worst case (an event of a layer with N
#: levels costs N ACC per target), ``acc_syn_z`` the exact Σz count; ``mac_syn`` are the MACs of
#: multi-bit input pixels (one per synaptic update) and of ANN layers. ``acc_hw`` and ``mac_hw``
#: price the hardware's own z·w datapath instead (``synapse``, :func:`hw_synaptic_adds`): the
#: additions of every synaptic update, pixels included (the hardware has no multiplier).
#: ``mac_leak`` is Lemaire et al.'s generic leak (one MAC per neuron and timestep, ``leak=True``);
#: ``acc_leak`` the integer leak k of a layer (``LayerSpec.leak``, docs/leak.md): one
#: shift-subtract P − (P >> k) per neuron and timestep t < T, priced as one ACC.
OPS = ("in_rd", "out_wr", "w_rd", "b_rd", "p_rd", "p_wr", "acc_syn", "acc_syn_z", "mac_syn",
       "acc_bias", "acc_reset", "mac_leak", "acc_leak", "addr_mac", "addr_acc", "acc_hw",
       "mac_hw")

#: Energy terms, as the rows of seed 000 Table 3. ``*_sum_z`` use the exact Σz ACC count,
#: ``*_hw`` the hardware's datapath (``acc_hw``, ``mac_hw``) for the synaptic operations.
#: ``leak`` is the part of every ``synaptic*`` term spent on the leak (``mac_leak``,
#: ``acc_leak``).
TERMS = ("potentials", "weights", "bias", "in_out", "memory", "synaptic", "addressing", "total",
         "synaptic_sum_z", "total_sum_z", "synaptic_hw", "total_hw", "leak")

#: Addressing of a conv event (docs/energy.md, "Addressing"): ``"per-synapse"`` θ·C_out·K² ACC
#: (Lemaire et al.'s eq. 16.3, ENERGY.md, the hardware's address generator: one step per
#: target), ``"per-kernel"`` θ·K² ACC (the public implementation; what seed 000 Table 3 fits).
ADDRESSING = ("per-synapse", "per-kernel")

#: The hardware's z·w datapath (``hw.integrate.SynapsePipe``): ``"mul"`` (z in two halves, shifts
#: and adds) or ``"serial"`` (w added z times).
SYNAPSES = ("mul", "serial")


#: How the synaptic updates of input pixels are priced (seed 000 Table 3's conventions,
#: :func:`apply_conventions`): one MAC each (ENERGY.md, the default), one ACC each (a binary
#: first layer: the pixels enter as binary spikes), or not at all (the public implementation).
PIXELS = ("mac", "acc", "none")

#: How events pass a max or average pool: priced as a layer of their own (the default,
#: docs/energy.md "Pooling") or for free (Table 3 prices no pooling).
POOL_EVENTS = ("priced", "free")


def apply_conventions(spec, ops, *, pixels="mac", pool_events="priced"):
    """Ops of one SNN layer under seed 000 Table 3's conventions (:data:`PIXELS`,
    :data:`POOL_EVENTS`); the defaults return ``ops`` unchanged. Counters are left alone: they
    are what the hardware counts, whatever the pricing."""
    if pixels not in PIXELS:
        raise MlsnnError(f"pixels must be one of {', '.join(PIXELS)}, not {pixels!r}")
    if pool_events not in POOL_EVENTS:
        raise MlsnnError(f"pool events must be one of {', '.join(POOL_EVENTS)}, not "
                         f"{pool_events!r}")
    ops = dict(ops)
    if spec.kind == "pool" and pool_events == "free":
        return _zero(OPS)
    if spec.kind in ("conv", "dense") and pixels != "mac":
        if pixels == "acc":
            ops["acc_syn"] += ops["mac_syn"]
            ops["acc_syn_z"] += ops["mac_syn"]
        ops["mac_syn"] = 0.0
    return ops


def check_choices(addressing="per-synapse", synapse="mul"):
    """Raise :class:`MlsnnError` unless both options name a variant the model defines."""
    if addressing not in ADDRESSING:
        raise MlsnnError(f"conv addressing must be one of {', '.join(ADDRESSING)}, not "
                         f"{addressing!r}")
    if synapse not in SYNAPSES:
        raise MlsnnError(f"synapse must be one of {', '.join(SYNAPSES)}, not {synapse!r}")


def value_bits(flow):
    """Bits of the value field of the events of ``flow``: ``bit_length`` of their mean largest
    value N (exact when every event of the flow may carry the same N, as within one stream)."""
    if not flow.events:
        return 0
    return max(1, int(round(flow.nsum / flow.events)).bit_length())


def hw_synaptic_adds(updates, zfan, bits, synapse):
    """Additions of the hardware's integrate datapath for ``updates`` synaptic updates whose
    values sum (over updates) to ``zfan`` and whose value field is ``bits`` wide.

    ``"serial"`` adds w z times into the product register (the first addition, into the
    cleared register, is a load) and the product once into P: z additions per update, Σz in
    all. ``"mul"`` forms z·w from ``bits`` partial products (z_lo·w and z_hi·w, each a sum of
    shifted copies of w gated by the bits of z, then z_lo·w + z_hi·w << zh): ``bits − 1``
    additions whatever z, plus the one into P: ``bits`` additions per update.
    """
    if synapse == "serial":
        return zfan
    return bits * updates


@dataclass(frozen=True)
class Flow:
    """Events of one kind entering a layer, per inference.

    Members
    -------
    events : θ, the number of events (one event whatever its value).
    zsum : Σ z, the sum of their values.
    nsum : Σ N, the sum of the largest value each could carry (the paper's worst case).
    """

    events: float = 0.0
    zsum: float = 0.0
    nsum: float = 0.0

    def __add__(self, other):
        return Flow(self.events + other.events, self.zsum + other.zsum, self.nsum + other.nsum)

    def scaled(self, k):
        return Flow(self.events * k, self.zsum * k, self.nsum * k)


@dataclass(frozen=True)
class Activity:
    """The activity of one layer per inference.

    Members
    -------
    spikes : events from neurons (θ_{l−1} of the paper, except pixels), their values and levels.
    pixels : events of the network input (direct encoding: a nonzero pixel is an event at every
        timestep); synaptic updates they cause are costed as MACs (ENERGY.md §1).
    ev_out : θ_l, events emitted by this layer (0 for the readout).
    """

    spikes: Flow = field(default_factory=Flow)
    pixels: Flow = field(default_factory=Flow)
    ev_out: float = 0.0

    @property
    def ev_in(self):
        return self.spikes.events + self.pixels.events

    def to_json(self):
        return {"ev_in": self.ev_in, "ev_in_pixels": self.pixels.events,
                "z_in": self.spikes.zsum, "n_in": self.spikes.nsum, "ev_out": self.ev_out}


def _zero(keys):
    return {k: 0.0 for k in keys}


def fan(spec):
    """Per input event: (analytic targets F, analytic synaptic ACC targets Fs).

    Conv: F = C_out·K², Fs = C_out·⌈K/S⌉²; dense: F = Fs = N_out; barrier join and pool: 1
    (a pool event has exactly one target, the output whose window holds it).
    """
    if spec.kind == "conv":
        return spec.c_out * spec.kernel ** 2, spec.c_out * math.ceil(spec.kernel / spec.stride) ** 2
    if spec.kind == "dense":
        return spec.n_out, spec.n_out
    if spec.kind == "pool" or (spec.kind == "join" and spec.join == "barrier"):
        return 1, 1
    return 0, 0


def snn_counts(spec, act, timesteps, *, leak=False, addressing="per-synapse", synapse="mul",
               pixel_bits=None):
    """Analytic SNN counts of one layer (ENERGY.md §1, SNN table; barrier neuron; SEW join;
    pooling, :func:`_pool_counts`). A hard-reset layer (``spec.reset == "hard"``,
    docs/reset.md) spends no reset ACC: it writes v0 instead of P − z·θ.

    Leak: ``leak=True`` is Lemaire et al.'s generic LIF neuron, one MAC per neuron and
    timestep (T·N_out, ``mac_leak``) in every layer; a layer's own integer leak k
    (``spec.leak`` >= 1, docs/leak.md) is mlsnn's, one shift-subtract per neuron in the sweep
    of every timestep but the last ((T − 1)·N_out ACC, ``acc_leak``; the sweep reads and
    writes every potential anyway, so no memory access). The two price the same leak twice
    and cannot be combined.

    ``addressing`` (:data:`ADDRESSING`) sets the ACC count of a conv event's addressing;
    ``synapse`` (:data:`SYNAPSES`) the hardware datapath priced by ``acc_hw``; ``pixel_bits``
    the width of a pixel's value there (default: from the pixels' N, :func:`value_bits`).

    Returns
    -------
    counters : dict
        Analytic values of the SPEC §5 counters (``syn_acc`` is the paper's worst case) and
        of the word counters (``w_rd_words`` … with the layer's lanes).
    ops : dict
        Priced operations (:data:`OPS`).
    """
    check_choices(addressing, synapse)
    if leak and getattr(spec, "leak", 0):
        raise MlsnnError(f"layer '{spec.name}' has its own leak (k = {spec.leak}); Lemaire's "
                         f"generic MAC leak (leak=True) would price it twice")
    counters, ops = _snn_counts(spec, act, timesteps, leak, addressing, synapse, pixel_bits)
    # Word accesses of a core with L lanes (docs/lanes.md): L synapses or neurons per access.
    lanes = float(getattr(spec, "lanes", 1))
    for name in ("w_rd", "p_rd", "p_wr"):
        counters[f"{name}_words"] = counters[name] / lanes
    if _is_barrier(spec):
        # A barrier's event reads and writes a whole word for its one neuron.
        for name in ("p_rd", "p_wr"):
            ev = counters["syn_updates"]
            counters[f"{name}_words"] = ev + (counters[name] - ev) / lanes
    return counters, ops


def _is_barrier(spec):
    return spec.kind == "join" and spec.join == "barrier"


def _snn_counts(spec, act, timesteps, leak, addressing, synapse, pixel_bits):
    T = timesteps
    counters, ops = _zero(COUNTERS), _zero(OPS)
    theta, theta_out = act.ev_in, act.ev_out
    counters["ev_in"], counters["ev_out"] = theta, theta_out
    if spec.kind == "pool":
        counters, ops = _pool_counts(spec, act, T, counters, ops, leak)
        ops["acc_hw"] = ops["acc_syn_z"]        # no z·w: the comparisons or sums themselves
        return counters, ops
    if spec.kind == "join" and spec.join == "sew":
        # No neuron, no memory: the next layer receives both streams (seed 000 §4.3).
        return counters, ops
    F, Fs = fan(spec)
    neurons = T * spec.n_out
    is_barrier = spec.kind == "join"
    counters["w_rd"] = 0.0 if is_barrier else theta * F
    counters["b_rd"] = 0.0 if is_barrier else neurons
    counters["p_rd"] = counters["p_wr"] = theta * F + neurons
    counters["syn_updates"] = theta * Fs
    counters["syn_acc"] = (act.spikes.nsum + act.pixels.nsum) * Fs
    ops.update(in_rd=theta, out_wr=theta_out, w_rd=counters["w_rd"], b_rd=counters["b_rd"],
               p_rd=counters["p_rd"], p_wr=counters["p_wr"],
               acc_syn=act.spikes.nsum * Fs, acc_syn_z=act.spikes.zsum * Fs,
               mac_syn=act.pixels.events * Fs,
               acc_bias=0.0 if is_barrier else neurons,
               acc_reset=0.0 if spec.reset == "hard" else theta_out,
               mac_leak=neurons if leak else 0.0,
               acc_leak=(T - 1) * spec.n_out if getattr(spec, "leak", 0) else 0.0)
    if is_barrier:
        ops["acc_hw"] = ops["acc_syn_z"]        # P += z·w_stream, priced as z additions
        # With L lanes an event moves a word of L potentials for its one neuron: priced as
        # L elements (an element costs a word access / L, :func:`costs`).
        L = getattr(spec, "lanes", 1)
        ops["p_rd"] = ops["p_wr"] = theta * Fs * L + neurons
    else:
        px_bits = pixel_bits or value_bits(act.pixels)
        ops["acc_hw"] = (hw_synaptic_adds(act.spikes.events * Fs, act.spikes.zsum * Fs,
                                          value_bits(act.spikes), synapse)
                         + hw_synaptic_adds(act.pixels.events * Fs, act.pixels.zsum * Fs,
                                            px_bits, synapse))
    if spec.kind == "conv":
        ops["addr_mac"] = 2 * theta
        per_event = spec.kernel ** 2 * (spec.c_out if addressing == "per-synapse" else 1)
        ops["addr_acc"] = theta * per_event
    elif spec.kind == "dense":
        ops["addr_acc"] = theta * spec.n_out
    return counters, ops


def _pool_counts(spec, act, T, counters, ops, leak):
    """A pool layer (SNN): no weights, no bias; every input event updates the one output
    whose window holds it (a read and a write of its potential, avg, or maximum, max), then the
    end-of-timestep sweep reads and writes every output (T·N_out).

    avg: the update is P += z, counted as z ACC like every sum (worst case N·θ, exact Σz); a
    soft reset per emitted event. max: the update is M = max(M, z), one comparison priced as
    one ACC whatever z; no reset (the sweep's write clears M). Pixel events (the network input
    pooled directly) cost one ACC per update: there is no weight to multiply. Addressing: one
    ACC per event (one target).
    """
    theta, theta_out = act.ev_in, act.ev_out
    neurons = T * spec.n_out
    counters["p_rd"] = counters["p_wr"] = theta + neurons
    counters["syn_updates"] = theta
    if spec.pool == "max":
        counters["syn_acc"] = theta
        acc = acc_z = theta
    else:
        counters["syn_acc"] = act.spikes.nsum + act.pixels.nsum
        acc = act.spikes.nsum + act.pixels.events
        acc_z = act.spikes.zsum + act.pixels.events
    ops.update(in_rd=theta, out_wr=theta_out, p_rd=counters["p_rd"], p_wr=counters["p_wr"],
               acc_syn=acc, acc_syn_z=acc_z,
               acc_reset=theta_out if spec.pool == "avg" else 0.0,
               mac_leak=neurons if leak and spec.pool == "avg" else 0.0, addr_acc=theta)
    return counters, ops


def ann_ops(spec):
    """Operation counts of one ANN (formal) layer (ENERGY.md §1, ANN table; residual add;
    pooling: every output reads its K² inputs and is written once; an average pool adds its K²
    inputs (K² ACC, the 1/K² folded into the next layer's scale), a max pool compares them
    (K² − 1 comparisons, priced as ACC); addressing N_in + N_out ACC, the conv's terms without
    the weights)."""
    ops = _zero(OPS)
    if spec.kind == "conv":
        macs = spec.synapses            # C_in·K²·C_out·H_out·W_out
        ops.update(in_rd=macs, w_rd=macs, b_rd=spec.n_out, out_wr=spec.n_out, mac_syn=macs,
                   acc_bias=spec.n_out,
                   addr_acc=spec.n_in + spec.n_out + spec.c_out * spec.kernel ** 2)
    elif spec.kind == "dense":
        ops.update(in_rd=spec.n_in, w_rd=spec.synapses, b_rd=spec.n_out, out_wr=spec.n_out,
                   mac_syn=spec.synapses, acc_bias=spec.n_out, addr_acc=spec.synapses)
    elif spec.kind == "join":
        # Reads of both inputs, a write of the output, one ACC per output element.
        n = spec.n_out
        ops.update(in_rd=2 * n, out_wr=n, acc_syn=n, acc_syn_z=n)
    elif spec.kind == "pool":
        k2 = spec.kernel ** 2
        acc = spec.n_out * (k2 if spec.pool == "avg" else k2 - 1)
        ops.update(in_rd=spec.n_out * k2, out_wr=spec.n_out, acc_syn=acc, acc_syn_z=acc,
                   addr_acc=spec.n_in + spec.n_out)
    # An ANN has no event datapath: its "hardware" synaptic operations are its own.
    ops["acc_hw"], ops["mac_hw"] = ops["acc_syn_z"], ops["mac_syn"]
    return ops


def costs(arch, spec, tech=DEFAULT, *, mode="snn", fifo_depth=None, event_bits=None):
    """pJ per access of each memory of a layer: ``{"w", "b", "p", "in", "out"}``.

    Sizes are those of the memory holding the data (ENERGY.md §1): weights — the layer's weight
    count; bias — its bias count; potentials — its neuron count; ANN inputs and outputs — the
    input and output tensor sizes; SNN events — the event FIFO's depth. With ``spec.lanes`` L
    the weights, biases and potentials are read in words of L elements, and the price per
    element is that of a word access divided by L (:meth:`~golden.energy.tech.Sram.element`).
    """
    w = tech.widths
    sram = tech.sram
    L = getattr(spec, "lanes", 1)       # a core with L lanes reads words of L elements
    c = {"w": sram.element(spec.n_weights, spec.w_bits or w.weight, L) if spec.n_weights
         else 0.0,
         "b": sram.element(spec.n_bias, spec.b_bits or w.bias, L) if spec.n_bias else 0.0,
         "p": sram.element(spec.n_out, spec.p_bits or w.potential, L)}
    if mode == "snn":
        depth = fifo_depth or sram.fifo_depth
        e = sram.access(depth, event_bits or w.event)
        c["in"] = c["out"] = e
    else:
        src = spec.inputs[0] if spec.inputs else None
        if src == INPUT:
            in_bits = arch.in_bits or w.activation
        elif src is not None:
            prod = arch.layer(src)
            in_bits = _ann_out_bits(arch, prod, w)
        else:
            in_bits = w.activation
        c["in"] = sram.access(spec.n_in, in_bits)
        c["out"] = sram.access(spec.n_out, spec.a_bits or w.activation)
    return c


def _ann_out_bits(arch, spec, widths):
    """Activation width of the tensor a layer produces (max pools and SEW joins, which have no
    width of their own, pass their input's on)."""
    while spec.kind in ("pool", "join") and spec.a_bits is None:
        src = spec.inputs[0] if spec.inputs else None
        if src is None or src == INPUT:
            return arch.in_bits or widths.activation
        spec = arch.layer(src)
    return spec.a_bits or widths.activation


def energy(ops, cost, tech=DEFAULT):
    """Price operation counts: ``{term: pJ}`` for every term of :data:`TERMS`."""
    add, mac = tech.ops.add, tech.ops.mac
    e = {
        "potentials": (ops["p_rd"] + ops["p_wr"]) * cost["p"],
        "weights": ops["w_rd"] * cost["w"],
        "bias": ops["b_rd"] * cost["b"],
        "in_out": ops["in_rd"] * cost["in"] + ops["out_wr"] * cost["out"],
    }
    e["memory"] = e["potentials"] + e["weights"] + e["bias"] + e["in_out"]
    leak = ops["acc_leak"] * add + ops["mac_leak"] * mac
    other = (ops["acc_bias"] + ops["acc_reset"]) * add + ops["mac_syn"] * mac + leak
    e["synaptic"] = ops["acc_syn"] * add + other
    e["synaptic_sum_z"] = ops["acc_syn_z"] * add + other
    e["synaptic_hw"] = (ops["acc_hw"] + ops["acc_bias"] + ops["acc_reset"]) * add \
        + ops["mac_hw"] * mac + leak
    e["addressing"] = ops["addr_mac"] * mac + ops["addr_acc"] * add
    e["total"] = e["memory"] + e["synaptic"] + e["addressing"]
    e["total_sum_z"] = e["memory"] + e["synaptic_sum_z"] + e["addressing"]
    e["total_hw"] = e["memory"] + e["synaptic_hw"] + e["addressing"]
    e["leak"] = leak
    return e


def add_terms(dicts):
    """Key-wise sum of dicts of numbers."""
    out = {}
    for d in dicts:
        for k, v in d.items():
            out[k] = out.get(k, 0.0) + v
    return out


def activity_from_rates(arch, timesteps, rates, *, input_density=1.0, mean_level=1.0,
                        in_levels=None):
    """Per-layer :class:`Activity` from spike rates (events per neuron per timestep).

    Parameters
    ----------
    rates : float or dict
        One rate for every layer with neurons, or ``{layer: rate}`` (missing layers get the
        ``"*"`` entry, else 0). The readout never fires.
    input_density : float
        Fraction of nonzero input pixels; each is an event at every timestep.
    mean_level : float
        Average value z of a spike (1 for binary SNNs); sets Σz for the exact ACC count.
    in_levels : int or None
        N of the input pixels (for the worst-case ACC column only; pixels are costed as MACs).

    A pool receives the events of its input and passes the rate per neuron on (its output
    events are its input events × N_out/N_in, with their values); a max pool of the input
    pixels emits pixels. A SEW join forwards the events of both streams.
    """
    if not 0 <= input_density <= 1:
        raise MlsnnError(f"input density must be in [0, 1], not {input_density}")
    if mean_level <= 0:
        raise MlsnnError(f"mean spike level must be > 0, not {mean_level}")
    T = timesteps
    px_events = input_density * T * math.prod(arch.input_shape)
    n_px = in_levels or 1
    out = {INPUT: Flow(px_events, px_events * n_px, px_events * n_px)}
    is_px = {INPUT: True}
    acts = {}
    for spec in arch.layers:
        if isinstance(rates, dict):
            r = rates.get(spec.name, rates.get("*", 0.0))
        else:
            r = rates
        if r < 0:
            raise MlsnnError(f"layer '{spec.name}': spike rate must be >= 0, not {r}")
        spikes, pixels = Flow(), Flow()
        for src in spec.inputs:
            if is_px.get(src):
                pixels = pixels + out[src]
            else:
                spikes = spikes + out[src]
        if spec.kind == "pool":
            src = spec.inputs[0]
            flow = (pixels + spikes).scaled(spec.n_out / max(1, spec.n_in))
            if spec.pool == "avg" and spec.levels:
                # Its own IF neurons fire: values up to its N.
                flow = Flow(flow.events, min(flow.zsum, flow.events * spec.levels),
                            flow.events * spec.levels)
            out[spec.name] = flow
            is_px[spec.name] = is_px.get(src, False) and spec.pool == "max"
            acts[spec.name] = Activity(spikes=spikes, pixels=pixels, ev_out=flow.events)
            continue
        if spec.kind == "join" and spec.join == "sew":
            ev = spikes.events + pixels.events
            out[spec.name] = spikes + pixels
            is_px[spec.name] = False
            acts[spec.name] = Activity(spikes=spikes, pixels=pixels, ev_out=ev)
            continue
        if spec.readout or spec.levels == 0:
            ev_out = 0.0
        else:
            if r > 1:
                raise MlsnnError(f"layer '{spec.name}': spike rate {r} is above 1 event per "
                                 f"neuron per timestep")
            ev_out = r * T * spec.n_out
        z = min(mean_level, spec.levels) if spec.levels else mean_level
        out[spec.name] = Flow(ev_out, ev_out * z, ev_out * spec.levels)
        is_px[spec.name] = False
        acts[spec.name] = Activity(spikes=spikes, pixels=pixels, ev_out=ev_out)
    return acts


def estimate(arch, activities=None, timesteps=1, tech=DEFAULT, *, ann=False, leak=False,
             fifo_depth=None, event_bits=None, addressing="per-synapse", synapse="mul",
             pixels="mac", pool_events="priced"):
    """Per-layer and total analytic estimate of an architecture (``addressing``, ``synapse``:
    see :func:`snn_counts`; pixels enter the hardware datapath with ``arch.in_bits`` bits,
    8 when the architecture does not say, SPEC's IN_BITS default; ``pixels``,
    ``pool_events``: :func:`apply_conventions`).

    Returns
    -------
    dict
        ``{"layers": [{"name", "kind", "counters", "ops", "energy_pj"}], "total": {...}}``;
        ANN when ``ann`` is true (activities ignored).
    """
    layers = []
    for spec in arch.layers:
        if ann:
            counters = None
            ops = ann_ops(spec)
            cost = costs(arch, spec, tech, mode="ann")
        else:
            act = activities[spec.name]
            counters, ops = snn_counts(spec, act, timesteps, leak=leak, addressing=addressing,
                                       synapse=synapse, pixel_bits=arch.in_bits or 8)
            ops = apply_conventions(spec, ops, pixels=pixels, pool_events=pool_events)
            eb = event_bits.get(spec.name) if isinstance(event_bits, dict) else event_bits
            cost = costs(arch, spec, tech, mode="snn", fifo_depth=fifo_depth, event_bits=eb)
        layers.append({"name": spec.name, "kind": _kind(spec), "counters": counters,
                       "ops": ops, "cost_pj": cost, "energy_pj": energy(ops, cost, tech)})
    total = {"ops": add_terms(l["ops"] for l in layers),
             "energy_pj": add_terms(l["energy_pj"] for l in layers)}
    if not ann:
        total["counters"] = add_terms(l["counters"] for l in layers)
    return {"layers": layers, "total": total}


def _kind(spec):
    if spec.kind == "pool":
        return f"pool-{spec.pool}"
    return f"join-{spec.join}" if spec.kind == "join" else spec.kind

"""Energy from the golden counters with seed 003's operation energies (Datta et al., Table 4).

Seed 003 (Table 4, 45 nm CMOS) prices the operations of its bit-serial IF neuron: addition,
left shift, comparison, and the multiplication of the first layer (multi-bit pixels); "the
reset operation consumes similar energy as addition". Its Table 4 has no memory energies, so
the memory terms use the 45 nm SRAM model of ENERGY.md (:class:`golden.energy.tech.Sram`, the
capacity of the memory holding the data). Everything is counted from the counters of a result
(:func:`golden.reference.run`'s exact ones, or those the RTL measured: ``sim.amaranth_run``'s
``RtlResult``, equal to them) and from the IR, for rate and bit-serial layers alike
(docs/bitserial.md §Energy), so the three codings of the comparison in docs/results.md are
priced by one rule:

| operation | count per layer and image |
|---|---|
| ``mul`` | ``syn_updates`` of a layer reading the network input (multi-bit pixels, one MAC each) |
| ``add`` | ``syn_acc`` of the other layers (binary events: one addition per update; a value z: z) |
|         | + ``b_rd`` (the bias addition) + ``ev_out`` (the reset: one subtraction per event) |
| ``shift`` | ``shifts``: the Horner doublings P ← 2P, (T − 1)·N_out (``reference.shifts``) |
|           | + T threshold shifts per bit-serial layer (θ·2^(T−1−k), one per fire sweep) |
| ``compare`` | rate: T·N_out·N (one comparator per level); bit-serial: T·N_out; readout: 0 |
| memory | ``w_rd``, ``p_rd``, ``p_wr``, ``b_rd``, and ``ev_in`` in the input event FIFO |
"""

from __future__ import annotations

from ..errors import MlsnnError
from ..ir import INPUT
from .tech import DEFAULT

__all__ = ["TABLE_4", "OPERATIONS", "layer_counts", "network_energy"]

#: Seed 003, Table 4 (45 nm CMOS), pJ per operation by bit precision.
TABLE_4 = {
    "mul": {32: 3.1, 8: 0.2},
    "add": {32: 0.1, 8: 0.03},
    "shift": {32: 0.13, 8: 0.024},
    "compare": {32: 0.08, 8: 0.03},
}
OPERATIONS = tuple(TABLE_4)
MEMORIES = ("weights", "potentials", "bias", "events")


def layer_counts(net, res, name):
    """Operation and memory-access counts of layer ``name`` per image (floats, batch mean),
    from the counters of ``res`` (``res.counters[name][counter]``, ``[B]`` per image: a golden
    or an RTL result of ``net``; see the module table)."""
    layer = net.layer(name)
    info = net.info(name)
    c = {k: float(v.mean()) for k, v in res.counters[name].items()}
    T = net.timesteps
    bitserial = getattr(layer, "coding", "rate") == "bitserial"
    direct = INPUT in layer.inputs
    ops = {
        "mul": c["syn_updates"] if direct else 0.0,
        "add": (0.0 if direct else c["syn_acc"]) + c["b_rd"] + c["ev_out"],
        "shift": c["shifts"] + (T if bitserial and not layer.readout else 0),
        "compare": 0.0 if layer.readout else float(
            T * info.n_out * (1 if bitserial else getattr(layer, "levels", 1))),
    }
    mem = {"weights": c["w_rd"], "potentials": c["p_rd"] + c["p_wr"], "bias": c["b_rd"],
           "events": c["ev_in"]}
    return ops, mem


def network_energy(net, res, *, bits=32, tech=DEFAULT, fifo_depth=16, event_bits=16):
    """Per-image energy of ``net`` from the counters of ``res`` (pJ), by term and layer.

    Parameters
    ----------
    res : golden.reference.Result or sim.amaranth_run.RtlResult
        Counters per layer and image (``res.counters``): predicted or measured (the RTL's
        ``shifts`` counter included), which give the same energy.
    bits : {32, 8}
        Which column of Table 4 prices the operations.
    tech : golden.energy.tech.Tech
        Its ``sram`` prices the memory accesses (each layer's weight, potential and bias
        memories at their sizes and widths; events in a FIFO of ``fifo_depth`` × ``event_bits``).

    Returns
    -------
    dict
        ``layers``: per layer ``ops`` and ``mem`` (counts), ``pj`` (per term);
        ``ops``, ``mem`` (counts summed over layers), ``pj`` (per term), ``compute_pj``,
        ``memory_pj``, ``total_pj``.
    """
    if bits not in (8, 32):
        raise MlsnnError(f"datta energy: bits must be 8 or 32 (the columns of seed 003's "
                         f"Table 4), not {bits!r}")
    sram = tech.sram
    out = {"layers": {}, "ops": dict.fromkeys(OPERATIONS, 0.0),
           "mem": dict.fromkeys(MEMORIES, 0.0), "pj": dict.fromkeys(OPERATIONS + MEMORIES, 0.0)}
    for layer in net.layers:
        if not hasattr(layer, "weight") or layer.weight is None:
            raise MlsnnError(f"datta energy: layer '{layer.name}' ({layer.kind}) is not "
                             f"priced: only dense and conv2d layers are")
        info = net.info(layer.name)
        ops, mem = layer_counts(net, res, layer.name)
        per = {
            "weights": sram.access(int(layer.weight.size), layer.w_bits),
            "potentials": sram.access(info.n_out, info.width),
            "bias": sram.access(int(layer.bias.size), layer.b_bits),
            "events": sram.access(fifo_depth, event_bits),
        }
        pj = {k: ops[k] * TABLE_4[k][bits] for k in OPERATIONS}
        pj.update({k: mem[k] * per[k] for k in MEMORIES})
        out["layers"][layer.name] = {"ops": ops, "mem": mem, "pj": pj}
        for k in OPERATIONS:
            out["ops"][k] += ops[k]
        for k in MEMORIES:
            out["mem"][k] += mem[k]
        for k in pj:
            out["pj"][k] += pj[k]
    out["compute_pj"] = sum(out["pj"][k] for k in OPERATIONS)
    out["memory_pj"] = sum(out["pj"][k] for k in MEMORIES)
    out["total_pj"] = out["compute_pj"] + out["memory_pj"]
    return out

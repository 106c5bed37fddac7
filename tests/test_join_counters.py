# amaranth: UnusedElaboratable=no
"""SPEC §5's counter identities of the joins, on the RTL counters (Amaranth simulator).

A barrier counts ``syn_acc`` as Σ z of the events it receives (fan-out 1, no stream-weight
factor), ``syn_updates`` = ``ev_in``, no weight or bias reads; a SEW join passes events through:
``ev_in`` = ``ev_out``, every other SPEC counter 0. The input events are taken from the golden
model's per-layer events, so the identities are checked against what actually arrived.
"""

import dataclasses

import numpy as np
import pytest

from golden.fixtures import random_inputs
from golden.ir import INPUT, Join
from golden.reference import run
from sim.amaranth_run import run_network
from sim.nets import as_barrier, small_resnet

ZERO_IN_SEW = ("w_rd", "p_rd", "p_wr", "b_rd", "syn_updates", "syn_acc", "saturations")


def _input_events(net, golden, x, src):
    """[B] (number of events, Σ z) that ``src`` sent over all timesteps."""
    if src == INPUT:
        z = np.repeat(x.reshape(x.shape[0], -1)[None], net.timesteps, axis=0)
    elif src in golden.events:
        z = golden.events[src]
    else:                        # a SEW join: the events of its own inputs
        parts = [_input_events(net, golden, x, s) for s in net.layer(src).inputs]
        return sum(p[0] for p in parts), sum(p[1] for p in parts)
    return (z > 0).sum(axis=(0, 2)), z.sum(axis=(0, 2))


@pytest.mark.parametrize("seed", [1, 2])
def test_barrier_and_sew_counters_on_rtl(seed):
    sew = small_resnet(seed, join="sew", blocks=1, channels=2, size=4, timesteps=2)
    barrier = as_barrier(sew)
    barrier = barrier.replace(layers=tuple(
        dataclasses.replace(l, stream_weights=(3, -2)) if isinstance(l, Join) else l
        for l in barrier.layers))
    for net in (sew, barrier):
        x = random_inputs(net, 2, seed=seed)
        golden = run(net, x)
        rtl = run_network(net, x)
        for layer in net.layers:
            if not isinstance(layer, Join):
                continue
            c = {k: v.tolist() for k, v in rtl.counters[layer.name].items()}
            n, zsum = (sum(p) for p in zip(*[_input_events(net, golden, x, s)
                                              for s in layer.inputs]))
            assert c["ev_in"] == n.tolist()
            assert sum(c["ev_in"]) > 0          # the identities below are not vacuous
            if layer.mode == "sew":
                assert c["ev_out"] == c["ev_in"]
                for k in ZERO_IN_SEW:
                    assert c[k] == [0, 0], k
            else:
                assert c["syn_acc"] == zsum.tolist()            # Σ z, weights (3, -2) ignored
                assert c["syn_updates"] == c["ev_in"]
                assert c["w_rd"] == c["b_rd"] == [0, 0]
                n_out = net.info(layer.name).n_out
                assert c["p_rd"] == c["p_wr"] == [e + net.timesteps * n_out for e in c["ev_in"]]

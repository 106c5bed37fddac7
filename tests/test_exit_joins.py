# amaranth: UnusedElaboratable=no
"""Early exit (docs/early-exit.md) with residual joins and pooling: the golden exit of
barrier / SEW joins and max / avg pools, and the RTL bit-exact against it."""

import numpy as np
import pytest

from golden.errors import MlsnnError
from golden.fixtures import random_inputs, random_network
from golden.reference import run
from hw import join as hw_join
from hw.network import NetworkTop, check_supported
from sim.amaranth_run import run_network
from sim.scoreboard import compare
from test_exit import _alpha_mixing

FAMILIES = {
    "barrier": dict(kind="residual", join="barrier", pool=True),
    "sew": dict(kind="residual", join="sew", pool=True),
    "barrier_v0": dict(kind="residual", join="barrier", pool=True, negative_v0=True),
    "pool": dict(kind="conv", pool=True),
    "mixed": dict(kind="residual", pool=True),      # barrier and SEW blocks, both pools
}


def _exit_net(family, seed, batch=6):
    """A random network of ``family`` (T = 3 for odd seeds, else 4) with the α of
    test_exit: images that exit after t = 1, at intermediate t and never."""
    T = 3 if seed % 2 else 4
    net = random_network(seed, timesteps=T, max_neurons=16, **FAMILIES[family])
    x = random_inputs(net, batch, seed=seed)
    return net.replace(early_exit={"alpha": _alpha_mixing(net, x)}), x


def _has_state(layer):
    # Cores that keep potentials across timesteps run an exit sweep; a SEW join (no neuron)
    # and a maxpool (its sweep writes 0) have nothing to clear.
    return not layer.passthrough and layer.combine != "max"


@pytest.mark.parametrize("family,seed", [("barrier", 7002), ("sew", 7000), ("sew", 7004),
                                         ("barrier_v0", 7051), ("pool", 7013),
                                         ("mixed", 7394)])
def test_golden_exit_is_the_run_of_t_e_timesteps_plus_the_exit_sweeps(family, seed):
    net, x = _exit_net(family, seed)
    got = run(net, x)
    T = net.timesteps
    assert {1, T} <= set(got.timesteps.tolist())
    kinds = {layer.kind for layer in net.layers}
    assert kinds & {"barrier", "sew", "maxpool2d", "avgpool2d"}
    for b in range(len(x)):
        te = int(got.timesteps[b])
        short = run(net.replace(timesteps=te, early_exit=None), x[b:b + 1])
        assert got.readout[b].tolist() == short.readout[0].tolist()
        assert got.predictions[b] == short.predictions[0]
        for layer in net.layers:
            n = net.info(layer.name).n_out
            sweep = n if te < T and _has_state(layer) else 0
            for c, v in short.counters[layer.name].items():
                extra = sweep // (getattr(layer, "lanes", 1) if c.endswith("_words") else 1) \
                    if c.startswith(("p_rd", "p_wr")) else 0
                assert int(got.counters[layer.name][c][b]) == int(v[0]) + extra, (layer.name, c)
            if layer.name in got.events:
                ev = got.events[layer.name][:, b]
                assert ev[:te].tolist() == short.events[layer.name][:, 0].tolist()
                assert not ev[te:].any()


CASES = [  # family, seed, options of run_network
    ("barrier", 7002, dict(fifo_depth=2)),
    ("sew", 7000, dict(fifo_depth=1)),
    ("sew", 7004, dict(throttle=0.2)),
    ("barrier_v0", 7051, dict(fifo_depth=2, discharge="serial")),
    ("pool", 7013, dict(synapse="serial")),
    ("mixed", 7207, dict(fifo_depth=2, throttle=0.1)),
]


@pytest.mark.parametrize("family,seed,opts", CASES)
def test_rtl_is_bit_exact_with_golden(family, seed, opts):
    net, x = _exit_net(family, seed)
    golden = run(net, x)
    assert {1, net.timesteps} <= set(golden.timesteps.tolist())    # exits at t = 1 and never
    check_supported(net)                            # the refusal is gone
    rtl = run_network(net, x, seed=seed, gap=0.3, stall=0.3, **opts)
    assert rtl.extra["timesteps"].tolist() == golden.timesteps.tolist()
    assert compare(net, golden, rtl, x) == []       # events, readout, every counter
    assert rtl.predictions.tolist() == golden.predictions.tolist()
    # cycles are not predicted, but every core's bracket closes with its inference (an exited
    # one with the exit): within the cycles the top was busy with the image.
    for layer in net.layers:
        c = rtl.counters[layer.name]["cycles"]
        assert (c > 0).all() and (c <= rtl.cycles).all(), layer.name


def test_a_core_without_an_exit_is_refused_in_one_line(monkeypatch):
    net, _ = _exit_net("sew", 7004, batch=2)
    assert hasattr(NetworkTop(net), "timesteps_used")
    monkeypatch.setattr(hw_join.SewJoin, "EARLY_EXIT", False)
    with pytest.raises(MlsnnError) as e:
        check_supported(net)
    assert str(e.value) == ("early exit: the core of layer 'join0' (join-sew) has no exit sweep "
                            "(docs/early-exit.md)")
    check_supported(net.replace(early_exit=None))


@pytest.mark.cocotb
def test_icarus_verilog_is_bit_exact_with_golden(tmp_path):
    from sim.icarus_run import run_network_icarus
    net, x = _exit_net("mixed", 7394)
    golden = run(net, x)
    rtl = run_network_icarus(net, x, seed=3, gap=0.3, stall=0.3, fifo_depth=2,
                             golden=golden, build_dir=str(tmp_path))
    assert rtl.extra["mismatches"] == []          # the bench's own scoreboard
    assert compare(net, golden, rtl, x) == []
    assert rtl.extra["timesteps"].tolist() == golden.timesteps.tolist()

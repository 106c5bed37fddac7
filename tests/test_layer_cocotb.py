"""cocotb on Icarus: the exported Verilog of single layer cores, bit-exact against golden."""

import pytest

from golden.fixtures import random_inputs, random_network
from golden.reference import run
from sim.icarus_run import run_layer_icarus
from sim.scoreboard import GOLDEN_COUNTERS, layer_expected, layer_input_tokens

pytestmark = pytest.mark.cocotb


@pytest.fixture(scope="module")
def build_dir(tmp_path_factory):
    return str(tmp_path_factory.mktemp("cocotb_layer"))


@pytest.mark.parametrize("seed,kind,layer_index,opts", [
    (1, "dense", 0, {}),
    (2, "conv", 0, {}),                                     # conv core, borders, stride
    (3, "conv", -1, {}),                                    # readout core (READOUT tokens)
    (4, "dense", 0, {"discharge": "serial", "synapse": "serial"}),
])
def test_layer_core_verilog_matches_golden(build_dir, seed, kind, layer_index, opts):
    net = random_network(4000 + seed, kind=kind, levels=4, timesteps=2, max_neurons=16,
                         in_bits=4 if opts else None)
    x = random_inputs(net, 2, seed=seed)
    golden = run(net, x)
    name = net.layers[layer_index].name
    tokens = layer_input_tokens(net, name, x, golden)
    expected = {"images": layer_expected(net, name, golden), "counters": golden.totals(name)}
    res = run_layer_icarus(net, name, tokens, n_eot=2 * net.timesteps, seed=seed, gap=0.3,
                           stall=0.3, expected=expected, build_dir=build_dir, **opts)
    assert res["mismatches"] == []
    assert {c: res["counters"][c] for c in GOLDEN_COUNTERS} == golden.totals(name)
    assert res["overflow"] == 0
    assert res["counters"]["cycles"] > 0


@pytest.mark.parametrize("seed,pool", [(4000, "maxpool2d"), (4003, "avgpool2d")])
def test_pool_core_verilog_matches_golden(build_dir, seed, pool):
    """The exported Verilog of the pool core (docs/pooling.md) on Icarus, gaps and stalls."""
    net = random_network(seed, kind="conv", pool=True, max_neurons=16, timesteps=2)
    name = next(l.name for l in net.layers if l.kind == pool)
    x = random_inputs(net, 2, seed=seed)
    golden = run(net, x)
    tokens = layer_input_tokens(net, name, x, golden)
    expected = {"images": layer_expected(net, name, golden), "counters": golden.totals(name)}
    res = run_layer_icarus(net, name, tokens, n_eot=2 * net.timesteps, seed=seed, gap=0.3,
                           stall=0.3, expected=expected, build_dir=build_dir)
    assert res["mismatches"] == []
    assert {c: res["counters"][c] for c in GOLDEN_COUNTERS} == golden.totals(name)
    assert golden.totals(name)["ev_out"] > 0

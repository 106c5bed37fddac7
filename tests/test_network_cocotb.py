"""cocotb on Icarus: the exported Verilog of 2–3 layer networks and of residual networks
(barrier and SEW joins), bit-exact against golden."""

import pytest

from golden.fixtures import random_inputs, random_network
from golden.reference import run
from sim.icarus_run import run_network_icarus
from sim.scoreboard import compare

pytestmark = pytest.mark.cocotb


@pytest.fixture(scope="module")
def build_dir(tmp_path_factory):
    return str(tmp_path_factory.mktemp("cocotb_network"))


@pytest.mark.parametrize("seed,kind,depth,fifo_depth", [
    (1, "dense", 2, 2),          # three dense cores, tiny FIFOs
    (2, "conv", 1, 4),           # conv core + readout
    (3, "conv", 2, 16),          # two conv cores + readout
])
def test_network_verilog_matches_golden(build_dir, seed, kind, depth, fifo_depth):
    net = random_network(5000 + seed, kind=kind, depth=depth, timesteps=2, max_neurons=16)
    assert len(net.layers) == depth + 1
    x = random_inputs(net, 3, seed=seed)
    golden = run(net, x)
    rtl = run_network_icarus(net, x, seed=seed, gap=0.3, stall=0.3, fifo_depth=fifo_depth,
                             golden=golden, build_dir=build_dir)
    assert rtl.extra["mismatches"] == []          # the bench's own scoreboard
    assert compare(net, golden, rtl) == []        # and the launcher's
    assert rtl.predictions.tolist() == golden.predictions.tolist()


@pytest.mark.parametrize("seed,join,shortcut,fifo_depth", [
    (6, "barrier", "conv", 1),        # fork, 1x1 stride-2 shortcut core, barrier core
    (7, "sew", "identity", 2),        # fork, identity shortcut, SEW merge
])
def test_residual_network_verilog_matches_golden(build_dir, seed, join, shortcut, fifo_depth):
    net = random_network(5100 + seed, kind="residual", join=join, shortcut=shortcut, depth=1,
                         timesteps=2, max_neurons=12)
    assert any(l.kind == join for l in net.layers)
    x = random_inputs(net, 2, seed=seed)
    golden = run(net, x)
    rtl = run_network_icarus(net, x, seed=seed, gap=0.3, stall=0.3, fifo_depth=fifo_depth,
                             golden=golden, build_dir=build_dir)
    assert rtl.extra["mismatches"] == []
    assert compare(net, golden, rtl, x) == []
    assert rtl.predictions.tolist() == golden.predictions.tolist()

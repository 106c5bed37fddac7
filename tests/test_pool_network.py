# amaranth: UnusedElaboratable=no
"""Pooling layers (docs/pooling.md) in whole networks: the network top in the Amaranth
simulator and in Icarus (exported Verilog, cocotb), and the command line, against golden."""

import json

import numpy as np
import pytest

from golden import ir
from golden.fixtures import random_inputs, random_network
from golden.reference import run
from sim.amaranth_run import run_network
from sim.scoreboard import compare, summary

from flows.cli import main


def _pooled(seed, kind, **kw):
    net = random_network(seed, kind=kind, pool=True, max_neurons=16, **kw)
    assert any(l.kind in ("maxpool2d", "avgpool2d") for l in net.layers)
    return net


# (seed, kind, fifo_depth): seeds whose networks hold max and average pools, on the input,
# after convolutions and after joins, with T = 1, 2 and 4 among them.
CASES = [(4000, "conv", None), (4001, "conv", 1), (4003, "conv", 2), (4005, "conv", None),
         (4000, "residual", 2), (4001, "residual", None), (4005, "residual", 1)]


@pytest.mark.parametrize("seed,kind,fifo_depth", CASES)
def test_pooled_networks_match_golden_on_the_amaranth_simulator(seed, kind, fifo_depth):
    net = _pooled(seed, kind)
    x = random_inputs(net, 2, seed=seed)
    golden = run(net, x)
    rtl = run_network(net, x, seed=seed, gap=0.3, stall=0.3, fifo_depth=fifo_depth)
    assert compare(net, golden, rtl) == []
    assert summary(net, rtl)["predictions"] == golden.predictions.tolist()


def test_cases_cover_what_they_claim():
    nets = [_pooled(s, k) for s, k, _ in CASES]
    kinds = [l.kind for n in nets for l in n.layers]
    assert kinds.count("maxpool2d") >= 4 and kinds.count("avgpool2d") >= 3
    assert any(n.layers[0].kind.endswith("pool2d") for n in nets)           # on the input
    assert any(l.kind.endswith("pool2d") and n.layer(l.inputs[0]).kind in ("barrier", "sew")
               for n in nets for l in n.layers if l.inputs[0] != "input")   # after a join
    ts = {n.timesteps for n in nets}
    assert 1 in ts and max(ts) > 1


@pytest.mark.parametrize("discharge,synapse", [("serial", "serial")])
def test_pooled_network_with_serial_options(discharge, synapse):
    net = _pooled(4003, "conv", in_bits=2)
    x = random_inputs(net, 2, seed=3)
    rtl = run_network(net, x, seed=1, gap=0.2, stall=0.2, discharge=discharge, synapse=synapse)
    assert compare(net, run(net, x), rtl) == []


def test_narrow_average_pool_saturates_on_the_rtl_as_golden_predicts():
    """input (2, 6, 4) → avgpool 2 (3-bit potential: saturates) → conv 1×1 → dense readout."""
    from golden.pooling import AvgPool2d
    pool = AvgPool2d(name="ap", inputs=("input",), kernel=2, threshold=3, levels=2,
                     potential_width=3)
    conv = ir.Conv2d(name="c", inputs=("ap",), threshold=2, levels=2,
                     weight=np.ones((2, 1, 1, 2), np.int64), bias=np.zeros(2, np.int64))
    out = ir.Dense(name="out", inputs=("c",), threshold=1, levels=1,
                   weight=np.arange(2 * 3 * 2 * 3).reshape(-1, 3) % 3 - 1,
                   bias=np.zeros(3, np.int64), readout=True)
    net = ir.Network(input=ir.InputSpec(shape=(2, 6, 4), in_bits=4), timesteps=2,
                     layers=(pool, conv, out))
    x = random_inputs(net, 3, seed=9, density=0.9)
    golden = run(net, x)
    assert int(golden.saturations["ap"].sum()) > 0
    rtl = run_network(net, x, seed=4, gap=0.2, stall=0.2)
    assert compare(net, golden, rtl) == []


def test_pooled_network_on_icarus(tmp_path):
    from sim.cocotb_run import run_network_cocotb
    net = _pooled(4001, "residual")
    x = random_inputs(net, 2, seed=1)
    golden = run(net, x)
    rtl = run_network_cocotb(net, x, build_dir=tmp_path, seed=2, gap=0.2, stall=0.2)
    assert compare(net, golden, rtl) == []


def test_cli_random_network_pool_then_simulate(tmp_path, capsys):
    d = tmp_path / "net"
    assert main(["random-network", "--seed", "4000", "--kind", "conv", "--pool",
                 "--max-neurons", "16", "--batch", "2", "-o", str(d), "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert any(l["kind"] == "maxpool2d" for l in doc["layers"])
    rc = main(["simulate", "--ir", str(d), "--inputs", str(d / "inputs.npz"), "--sim",
               "amaranth", "--json"])
    out = capsys.readouterr().out
    assert rc == 0, out
    doc = json.loads(out)
    assert doc["status"] == "match" and doc["match"] is True
    assert [l["kind"] for l in doc["layers"]].count("maxpool2d") >= 1
    assert main(["random-network", "--kind", "dense", "--pool", "-o", str(tmp_path / "x")]) != 0
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1].endswith("--pool applies to --kind conv or residual (pools need (C, H, W) "
                            "inputs), not --kind dense")


@pytest.mark.synth
def test_synth_pooled_network_has_pool_core_rows(tmp_path, capsys):
    """mlsnn synth on a network with both pooling kinds: one row per layer, the pool cores
    mapped (LUTs and FFs, no DSP: a pool has no multiplier)."""
    from golden.pooling import AvgPool2d, MaxPool2d
    rng = np.random.default_rng(0)
    c = ir.Conv2d(name="c", inputs=("input",), threshold=3, levels=2,
                  weight=rng.integers(-3, 4, size=(1, 3, 3, 2)), bias=np.zeros(2, np.int64),
                  w_bits=4, padding=1)
    mp = MaxPool2d(name="mp", inputs=("c",), kernel=2)
    ap = AvgPool2d(name="ap", inputs=("mp",), kernel=2, threshold=2, levels=2)
    out = ir.Dense(name="out", inputs=("ap",), threshold=1, levels=1,
                   weight=rng.integers(-3, 4, size=(2 * 2 * 2, 3)), bias=np.zeros(3, np.int64),
                   w_bits=4, readout=True)
    net = ir.Network(input=ir.InputSpec(shape=(1, 8, 8), in_bits=2), timesteps=1,
                     layers=(c, mp, ap, out))
    d = tmp_path / "net"
    ir.save(net, d)
    assert main(["synth", "--ir", str(d), "--target", "ice40-up5k", "--no-place",
                 "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    rows = {r["name"]: r for r in doc["cores"]}
    assert list(rows) == ["c", "mp", "ap", "out"]
    for name in ("mp", "ap"):
        assert rows[name]["luts"] > 0 and rows[name]["ffs"] > 0 and rows[name]["dsps"] == 0

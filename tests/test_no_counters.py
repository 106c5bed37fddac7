# amaranth: UnusedElaboratable=no
"""A network top built without its counter read port (``NetworkTop(counters=False)``,
``mlsnn verilog/synth --no-counters``): same results and cycles, ``ctr_data`` always 0, and
yosys removes the counters."""

import json

import pytest
from amaranth.sim import Simulator

from golden.fixtures import random_inputs, random_network
from golden.reference import run
from hw.layout import COUNTER_STRIDE, COUNTERS, CTR_LATENCY
from hw.network import NetworkTop
from sim.tb import stream_put


def _run_top(net, x, *, counters):
    """Feed the images one pixel per beat; per image the result beats, the prediction and
    the cycles from the first pixel to ``busy`` low; then every counter address read."""
    top = NetworkTop(net, counters=counters)
    got = {"images": []}

    async def tb(ctx):
        ctx.set(top.result.ready, 1)
        for b in range(x.shape[0]):
            beats, cycles = [], 0
            for v in x[b].reshape(-1):
                await stream_put(ctx, top.pixels, int(v))
                cycles += 1
            while True:
                if ctx.get(top.result.valid):
                    beats.append((ctx.get(top.result.payload.index),
                                  ctx.get(top.result.payload.potential)))
                await ctx.tick()
                cycles += 1
                if not ctx.get(top.busy):
                    break
            got["images"].append((beats, ctx.get(top.prediction), cycles))
        reads = []
        for k in range(len(net.layers)):
            for c in range(len(COUNTERS)):
                ctx.set(top.ctr_addr, k * COUNTER_STRIDE + c)
                await ctx.tick().repeat(CTR_LATENCY)
                reads.append(ctx.get(top.ctr_data))
        got["ctr"] = reads

    sim = Simulator(top)
    sim.add_clock(1e-8)
    sim.add_testbench(tb)
    sim.run()
    return got


@pytest.mark.parametrize("seed,kind,lanes", [(41, "dense", 1), (42, "conv", 1), (48, "dense", 2)])
def test_same_results_and_cycles_without_counters(seed, kind, lanes):
    net = random_network(seed, kind=kind, timesteps=2, max_neurons=12)
    if lanes > 1:
        net = net.with_lanes({net.layers[0].name: lanes})      # 8 hidden neurons
        assert net.layers[0].lanes == lanes
    x = random_inputs(net, 2, seed=seed)
    golden = run(net, x)
    with_ctr = _run_top(net, x, counters=True)
    without = _run_top(net, x, counters=False)
    assert without["images"] == with_ctr["images"]
    for b, (beats, pred, _) in enumerate(without["images"]):
        assert pred == int(golden.predictions[b])
        assert [v for _, v in sorted(beats)] == [int(v) for v in golden.readout[b]]
    assert all(v == 0 for v in without["ctr"])
    assert any(v != 0 for v in with_ctr["ctr"])          # the same reads see counters when built


def test_verilog_cli_no_counters(tmp_path, capsys):
    from flows.cli import main
    from golden.ir import save
    net = random_network(44, kind="dense", timesteps=1, max_neurons=8)
    ir = tmp_path / "net"
    save(net, str(ir))
    out = tmp_path / "top.v"
    assert main(["verilog", "--ir", str(ir), "-o", str(out), "--no-counters", "--json"]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["output"] == str(out) and "module top" in out.read_text()


def test_yosys_removes_the_counters(tmp_path):
    from flows.synth import synthesize_network
    net = random_network(45, kind="dense", timesteps=1, max_neurons=8)
    full = synthesize_network(net, "ice40-up5k", cores=False, place=False,
                              workdir=str(tmp_path / "a"))
    lean = synthesize_network(net, "ice40-up5k", cores=False, place=False,
                              counters=False, workdir=str(tmp_path / "b"))
    # every core has at least eight distinct 32-bit counter registers (the word counters
    # share the SPEC counters' registers at L = 1, a constant counter is already removed)
    assert lean.top.ffs <= full.top.ffs - 32 * 8 * len(net.layers)
    assert lean.top.luts < full.top.luts
    assert lean.top.brams == full.top.brams

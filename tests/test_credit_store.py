# amaranth: UnusedElaboratable=no
"""The credit queue's store (hw/credit.py): registers or, for ECP5, distributed RAM. Both stores
behave identically, cycle for cycle, in the queue alone and in whole networks elaborated for
ECP5 (flows.synth.FamilyPlatform), and yosys maps the second to TRELLIS_DPR16X4 cells, whose
LUT4 sites the reports count."""

import random
import re

import pytest
from amaranth.hdl import Module, unsigned
from amaranth.sim import Simulator

from flows.synth import LUTRAM_SITES, FamilyPlatform
from golden.fixtures import random_inputs, random_network
from golden.reference import run
from hw.credit import CreditQueue, lutram_platform
from sim.amaranth_run import run_network


def _trace(store, depth, credits, seed, cycles=300):
    """Drive a queue by the credit protocol (take only with room; write or drop only credits
    taken in an earlier cycle; sequence numbers as data; a random consumer) and record
    ``(room, o.valid, o.payload)`` every cycle and the payloads taken."""
    rng = random.Random(seed)
    m = Module()
    m.submodules.q = q = CreditQueue(shape=unsigned(8), depth=depth, credits=credits,
                                     store=store)
    trace, got = [], []

    async def tb(ctx):
        inflight, seq = 0, 0
        for _ in range(cycles):
            room = ctx.get(q.room)
            take = int(room and rng.random() < 0.6)
            act = rng.random() if inflight else 1.0
            w_en = int(act < 0.55)
            drop = int(0.55 <= act < 0.7)
            ready = int(rng.random() < 0.5)
            ctx.set(q.take, take)
            ctx.set(q.w_en, w_en)
            ctx.set(q.drop, drop)
            ctx.set(q.w_data, seq & 0xFF)
            ctx.set(q.o.ready, ready)
            valid, payload = ctx.get(q.o.valid), ctx.get(q.o.payload)
            trace.append((room, valid, payload))
            if valid and ready:
                got.append(payload)
            seq += w_en
            inflight += take - w_en - drop
            await ctx.tick()

    sim = Simulator(m)
    sim.add_clock(1e-8)
    sim.add_testbench(tb)
    sim.run()
    return trace, got


@pytest.mark.parametrize("depth", [2, 4, 8])
def test_lutram_store_behaves_like_registers(depth):
    for credits in range(1, depth + 1):
        for seed in range(3):
            regs, got = _trace("registers", depth, credits, seed)
            lut, _ = _trace("lutram", depth, credits, seed)
            assert lut == regs, (depth, credits, seed)
            assert got == [k & 0xFF for k in range(len(got))]      # in order, nothing lost
            assert len(got) > 20                                   # the stimulus did move


def test_store_is_checked_and_auto_follows_the_platform():
    with pytest.raises(ValueError, match="store must be one of auto, registers, lutram"):
        CreditQueue(shape=4, store="bram")
    assert lutram_platform(FamilyPlatform("ecp5"))
    assert not lutram_platform(FamilyPlatform("ice40")) and not lutram_platform(None)


@pytest.mark.parametrize("seed,kind,lanes,throttle", [
    (61, "dense", 1, 0.0), (62, "dense", 2, 0.3), (63, "conv", 1, 0.3), (64, "dense", 4, 0.0)])
def test_networks_elaborated_for_ecp5_match(seed, kind, lanes, throttle):
    """The same results, counters and cycles as the register build (and golden), with every
    credit queue in distributed RAM."""
    net = random_network(seed, kind=kind, timesteps=2, max_neurons=12)
    if lanes > 1:
        first = net.layers[0]
        n = first.out_features
        net = net.with_lanes({first.name: max(d for d in range(1, lanes + 1) if n % d == 0)})
    x = random_inputs(net, 3, seed=seed)
    golden = run(net, x)
    base = run_network(net, x, seed=seed, throttle=throttle, stall=0.2, pixels_per_beat=2)
    ecp5 = run_network(net, x, seed=seed, throttle=throttle, stall=0.2, pixels_per_beat=2,
                       platform=FamilyPlatform("ecp5"))
    assert ecp5.predictions.tolist() == golden.predictions.tolist()
    assert ecp5.readout.tolist() == base.readout.tolist() == golden.readout.tolist()
    assert ecp5.cycles.tolist() == base.cycles.tolist()
    for name in ecp5.counters:
        for c in ecp5.counters[name]:
            assert ecp5.counters[name][c].tolist() == base.counters[name][c].tolist(), (name, c)


def test_ecp5_synthesis_puts_the_queues_in_lut_ram(tmp_path):
    from flows.synth import synthesize_network
    net = random_network(65, kind="dense", timesteps=1, max_neurons=8)
    net = net.with_lanes({net.layers[0].name: 2}) if net.layers[0].out_features % 2 == 0 else net
    ecp5 = synthesize_network(net, "ecp5-85f", cores=False, place=False,
                              workdir=str(tmp_path / "e"), counters=False)
    ice40 = synthesize_network(net, "ice40-up5k", cores=False, place=False,
                               workdir=str(tmp_path / "i"), counters=False)
    # one cell per 4 bits of every queue's word (a sweep queue, the streamer's, the readout's)
    assert ecp5.top.lutrams >= 3
    assert ecp5.top.lut_sites == ecp5.top.luts + LUTRAM_SITES * ecp5.top.lutrams
    assert ecp5.top.to_json()["lut_sites"] == ecp5.top.lut_sites
    assert ice40.top.lutrams == 0 and ice40.top.lut_sites == ice40.top.luts
    assert "TRELLIS_DPR16X4" not in ice40.top.cells


def test_verilog_export_keeps_register_queues(tmp_path):
    """``mlsnn verilog`` (no platform): the portable build, no memory in any queue."""
    from flows.cli import main
    from golden.ir import save
    net = random_network(66, kind="dense", timesteps=1, max_neurons=8)
    save(net, str(tmp_path / "net"))
    out = tmp_path / "top.v"
    assert main(["verilog", "--ir", str(tmp_path / "net"), "-o", str(out)]) == 0
    text = out.read_text()
    assert re.search(r"reg\s+(\[[^\]]+\]\s+)?\\?\S*store0\b", text)
    assert not re.search(r"reg\s+(\[[^\]]+\]\s+)?\S*store\S*\s+\[", text)  # no memory

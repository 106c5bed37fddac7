# amaranth: UnusedElaboratable=no
"""Every timing figure the hardware states, measured in the Amaranth simulator.

``FireUnit.latency`` / ``interval``, ``LayerCore.update_latency`` / ``eot_latency`` and
``BarrierCore.update_latency`` / ``eot_latency`` (PoolCore's: tests/test_hw_pool.py) are
compared with the cycles counted here, so a docstring or a property cannot drift from the
hardware. Convention: a latency counts cycles from the cycle of the input handshake (0) to the
first cycle the result is visible (a write enable, an output ``valid``).
"""

import numpy as np
import pytest
from amaranth.sim import Simulator

import hw.join as hw_join
import hw.layer as hw_layer
import hw.point as hw_point
from golden.ir import Dense, InputSpec, Network
from hw.layout import EventKind
from hw.memory import CountedMemory
from hw.neuron import FireUnit

FIRE_MODES = [dict(levels=4), dict(levels=4, discharge="serial"),
              dict(levels=1, discharge="serial"), dict(levels=8, discharge="serial"),
              dict(levels=4, pipelined=True), dict(levels=2, discharge="serial", pipelined=True),
              dict(levels=4, discharge="serial", readout=True)]


def _run(dut, bench):
    sim = Simulator(dut)
    sim.add_clock(1e-8)
    sim.add_testbench(bench)
    sim.run()


async def _handshake(ctx, stream, payload):
    """Offer ``payload``; return right after the edge that accepted it (cycle 1)."""
    ctx.set(stream.payload, payload)
    ctx.set(stream.valid, 1)
    await ctx.tick().until(stream.ready)
    ctx.set(stream.valid, 0)


async def _cycles_until(ctx, cond, limit=500):
    n = 1
    while not ctx.get(cond):
        await ctx.tick()
        n += 1
        assert n < limit, "timed out"
    return n


@pytest.mark.parametrize("kw", FIRE_MODES, ids=lambda kw: "-".join(f"{k}={v}" for k, v in
                                                                    kw.items()))
def test_fire_unit_latency_and_interval_as_simulated(kw):
    dut = FireUnit(threshold=1, potential_width=10, **kw)
    got = {}

    async def bench(ctx):
        ctx.set(dut.o.ready, 1)
        await _handshake(ctx, dut.i, {"index": 0, "p": 5, "b": 0, "last": 0})
        got["latency"] = await _cycles_until(ctx, dut.o.valid)
        await ctx.tick().repeat(30)
        # Back to back, output never stalled: the spacing of the output beats.
        beats, cycle = [], 0
        ctx.set(dut.i.valid, 1)
        for k in range(5):
            ctx.set(dut.i.payload, {"index": k, "p": 5, "b": 0, "last": 0})
            while True:
                accepted, out = ctx.get(dut.i.ready), ctx.get(dut.o.valid)
                await ctx.tick()
                cycle += 1
                if out:
                    beats.append(cycle)
                if accepted:
                    break
        ctx.set(dut.i.valid, 0)
        while len(beats) < 5:
            out = ctx.get(dut.o.valid)
            await ctx.tick()
            cycle += 1
            if out:
                beats.append(cycle)
            assert cycle < 500
        got["intervals"] = {b - a for a, b in zip(beats, beats[1:])}

    _run(dut, bench)
    assert got["latency"] == dut.latency
    assert got["intervals"] == {dut.interval}


def _dense(n_out, levels=4):
    fc = Dense(name="fc", inputs=("input",), threshold=2, levels=levels,
               weight=np.ones((2, n_out), np.int64), bias=np.zeros(n_out, np.int64))
    ro = Dense(name="ro", inputs=("fc",), threshold=1, levels=1, readout=True,
               weight=np.ones((n_out, 1), np.int64), bias=np.zeros(1, np.int64))
    return Network(input=InputSpec(shape=(2,), in_bits=4), timesteps=1, layers=(fc, ro))


class _Recorded(CountedMemory):
    """A counted memory that remembers itself, so the bench can watch the P write port."""
    made = []

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        _Recorded.made.append(self)


@pytest.mark.parametrize("synapse,z", [("mul", 1), ("mul", 4), ("serial", 1), ("serial", 3)])
def test_layer_update_latency_as_simulated(monkeypatch, synapse, z):
    monkeypatch.setattr(hw_layer, "CountedMemory", _Recorded)
    _Recorded.made.clear()
    n_out = 3
    core = hw_layer.LayerCore.from_network(_dense(n_out), "fc", synapse=synapse)
    writes = []

    async def bench(ctx):
        pmem = [mem for mem in _Recorded.made if hasattr(mem, "wr_en")][-1]
        ctx.set(core.o.ready, 1)
        await ctx.tick().repeat(3)
        await _handshake(ctx, core.i, {"kind": EventKind.EVENT, "index": 1, "value": z})
        n = 1
        while len(writes) < n_out:
            if ctx.get(pmem.wr_en):
                writes.append(n)
            await ctx.tick()
            n += 1
            assert n < 200

    _run(core, bench)
    assert writes[0] == core.update_latency(z)
    step = z if synapse == "serial" else 1
    assert writes == [writes[0] + k * step for k in range(n_out)]


@pytest.mark.parametrize("n_out", [1, 3, 5])
@pytest.mark.parametrize("discharge", ["parallel", "serial"])
def test_layer_eot_latency_as_simulated(n_out, discharge):
    core = hw_layer.LayerCore.from_network(_dense(n_out), "fc", discharge=discharge)
    got = {}

    async def bench(ctx):
        ctx.set(core.o.ready, 1)
        await ctx.tick().repeat(3)
        await _handshake(ctx, core.i, {"kind": EventKind.EOT, "index": 0, "value": 0})
        got["eot"] = await _cycles_until(ctx, core.o.valid)
        assert ctx.get(core.o.payload.kind) == EventKind.EOT    # no event: P = v0 = 0 < θ

    _run(core, bench)
    assert got["eot"] == core.eot_latency
    if discharge == "parallel":
        assert core.eot_latency == n_out + 9      # the figure docs/hw-interfaces.md states


def _barrier(discharge, lanes=1, fire=None):
    # join0: 4 neurons; with lanes, words of L of them and F fire units (docs/lanes.md)
    from golden.fixtures import random_network
    net = random_network(7, kind="residual", join="barrier", levels=3, timesteps=1)
    name = next(layer.name for layer in net.layers if layer.kind == "barrier")
    net = net.with_lanes({name: lanes}).with_fire_lanes({name: fire})
    return hw_join.BarrierCore.from_network(net, name, discharge=discharge)


@pytest.mark.parametrize("lanes", [1, 2])
def test_barrier_update_latency_as_simulated(monkeypatch, lanes):
    monkeypatch.setattr(hw_point, "CountedMemory", _Recorded)
    _Recorded.made.clear()
    core = _barrier("parallel", lanes)
    writes = []

    async def bench(ctx):
        pmem = _Recorded.made[-1]
        ctx.set(core.o.ready, 1)
        await ctx.tick().repeat(3)
        await _handshake(ctx, core.i0, {"kind": EventKind.EVENT, "index": 1, "value": 1})
        n = 1
        while not writes:
            if ctx.get(pmem.wr_en):
                writes.append((n, ctx.get(pmem.wr_addr)))
            await ctx.tick()
            n += 1
            assert n < 50

    _run(core, bench)
    assert writes == [(core.update_latency, 1 // lanes)]     # neuron 1's word


@pytest.mark.parametrize("discharge,lanes,fire", [
    ("parallel", 1, None), ("serial", 1, None), ("parallel", 4, None), ("parallel", 4, 2),
    ("serial", 2, 1), ("parallel", 4, 1)])
def test_barrier_eot_latency_as_simulated(discharge, lanes, fire):
    core = _barrier(discharge, lanes, fire)
    got = {}

    async def bench(ctx):
        ctx.set(core.o.ready, 1)
        await ctx.tick().repeat(3)
        await _handshake(ctx, core.i0, {"kind": EventKind.EOT, "index": 0, "value": 0})
        await _handshake(ctx, core.i1, {"kind": EventKind.EOT, "index": 0, "value": 0})
        got["eot"] = await _cycles_until(ctx, core.o.valid)
        assert ctx.get(core.o.payload.kind) == EventKind.EOT    # P = v0 < θ: no event

    _run(core, bench)
    assert got["eot"] == core.eot_latency
    F = lanes if fire is None else fire
    if discharge == "parallel":           # the figure docs/hw-interfaces.md states (L = 1)
        assert core.eot_latency == core._n // F + 7 + (F > 1)


@pytest.mark.parametrize("lanes,discharge", [(2, "parallel"), (4, "parallel"), (4, "serial")])
def test_layer_latencies_with_lanes_as_simulated(monkeypatch, lanes, discharge):
    # L lanes: the first write of an event is as late as with one lane, the event's words
    # follow one per cycle, and the EOT comes out after N_out / L words and the serializer.
    monkeypatch.setattr(hw_layer, "CountedMemory", _Recorded)
    _Recorded.made.clear()
    n_out = 8
    net = _dense(n_out).with_lanes({"fc": lanes})
    core = hw_layer.LayerCore.from_network(net, "fc", discharge=discharge)
    got = {"writes": []}

    async def bench(ctx):
        pmem = [mem for mem in _Recorded.made if hasattr(mem, "wr_en")][-1]
        ctx.set(core.o.ready, 1)
        await ctx.tick().repeat(3)
        await _handshake(ctx, core.i, {"kind": EventKind.EVENT, "index": 1, "value": 1})
        n = 1
        while len(got["writes"]) < n_out // lanes:
            if ctx.get(pmem.wr_en):
                got["writes"].append(n)
            await ctx.tick()
            n += 1
            assert n < 200
        await ctx.tick().repeat(10)
        await _handshake(ctx, core.i, {"kind": EventKind.EOT, "index": 0, "value": 0})
        got["eot"] = await _cycles_until(ctx, core.o.valid)

    _run(core, bench)
    first = core.update_latency(1)
    assert got["writes"] == [first + k for k in range(n_out // lanes)]
    # the event (weights 1, z = 1) leaves P at 1 < θ = 2: no spike, the EOT comes first
    assert got["eot"] == core.eot_latency

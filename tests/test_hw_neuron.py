# amaranth: UnusedElaboratable=no
"""Multi-level fire unit (hw/neuron.py) against the integer neuron of SPEC §2–§3."""

import random

import pytest
import torch
from amaranth.sim import Simulator

from golden.reference import fire as golden_fire
from hw.neuron import FireUnit
from sim.tb import stream_get, stream_put


def _golden(p, b, last, *, theta, levels, v0, readout, width=None):
    h = p + b
    sat = False
    if width is not None:
        lo, hi = -(1 << (width - 1)), (1 << (width - 1)) - 1
        sat = not lo <= h <= hi
        h = min(max(h, lo), hi)
    if readout:
        z = 0
    else:
        z = int(golden_fire(torch.tensor([float(h)], dtype=torch.float64), float(theta),
                            float(levels))[0])
    return z, (v0 if last else h - z * theta), h, sat


def _run(dut, items, *, seed, gap=0.3, stall=0.3):
    rng = random.Random(seed)
    out = []
    state = {}

    async def producer(ctx):
        for index, p, b, last in items:
            await stream_put(ctx, dut.i, {"index": index, "p": p, "b": b, "last": last},
                             rng=rng, gap=gap)

    async def consumer(ctx):
        for _ in items:
            r = await stream_get(ctx, dut.o, rng=rng, stall=stall)
            out.append((int(r.index), int(r.z), int(r.p), int(r.h)))
        await ctx.tick()
        state["overflow"] = ctx.get(dut.overflow)
        state["saturations"] = ctx.get(dut.saturations)

    sim = Simulator(dut)
    sim.add_clock(1e-8)
    sim.add_testbench(producer, background=True)
    sim.add_testbench(consumer)
    sim.run()
    return out, state


MODES = [("parallel", False), ("serial", False), ("parallel", True)]


@pytest.mark.parametrize("discharge,pipelined", MODES)
@pytest.mark.parametrize("levels,theta,v0", [(1, 1, 0), (2, 5, 0), (4, 3, 1), (8, 7, -2),
                                             (3, 16, 8)])
def test_fire_matches_golden(discharge, pipelined, levels, theta, v0):
    pw, bw = 12, 8
    dut = FireUnit(levels=levels, threshold=theta, potential_width=pw, bias_width=bw,
                   index_width=6, v0=v0, discharge=discharge, pipelined=pipelined)
    rng = random.Random(levels * 100 + theta)
    items = []
    for k in range(60):
        # Around the thresholds (equality fires), beyond N·θ (clamps at N), negative.
        p = rng.choice([rng.randint(-300, 300), rng.randint(0, (levels + 2) * theta),
                        theta * rng.randint(0, levels + 1)])
        b = rng.choice([0, rng.randint(-100, 100)])
        items.append((k % 64, p, b, rng.random() < 0.2))
    out, state = _run(dut, items, seed=theta)
    for (index, p, b, last), got in zip(items, out):
        z, pn, h, _ = _golden(p, b, last, theta=theta, levels=levels, v0=v0, readout=False)
        assert got == (index, z, pn, h), (p, b, last)
    assert state == {"overflow": 0, "saturations": 0}


@pytest.mark.parametrize("levels,theta,v0,saturate", [(1, 1, 0, False), (4, 3, 1, False),
                                                       (3, 16, 8, True)])
def test_pipelined_without_stalls_matches_golden(levels, theta, v0, saturate):
    """``stalls=False`` (as in the sweep: the output is always taken): no skid, ``i.ready``
    is always 1, the same neurons as the golden model, one per cycle."""
    pw, bw = 10 if saturate else 12, 8
    dut = FireUnit(levels=levels, threshold=theta, potential_width=pw, bias_width=bw,
                   index_width=6, v0=v0, pipelined=True, saturate=saturate, stalls=False)
    rng = random.Random(7 * levels + theta)
    items = [(k % 64, rng.randint(-400, 400), rng.randint(-100, 100), rng.random() < 0.2)
             for k in range(80)]
    ready = []

    async def watch(ctx):
        async for _clk, _rst, r in ctx.tick().sample(dut.i.ready):
            ready.append(r)
    sim_out, state = [], {}
    sim = Simulator(dut)
    sim.add_clock(1e-8)

    async def producer(ctx):
        for index, p, b, last in items:
            await stream_put(ctx, dut.i, {"index": index, "p": p, "b": b, "last": last},
                             rng=rng, gap=0.3)

    async def consumer(ctx):
        for _ in items:
            r = await stream_get(ctx, dut.o, rng=rng, stall=0.0)
            sim_out.append((int(r.index), int(r.z), int(r.p), int(r.h)))
        await ctx.tick()
        state["saturations"] = ctx.get(dut.saturations)

    sim.add_testbench(producer, background=True)
    sim.add_process(watch)
    sim.add_testbench(consumer)
    sim.run()
    sats = 0
    for (index, p, b, last), got in zip(items, sim_out):
        z, pn, h, sat = _golden(p, b, last, theta=theta, levels=levels, v0=v0, readout=False,
                                width=pw if saturate else None)
        sats += sat
        assert got == (index, z, pn, h), (p, b, last)
    assert len(sim_out) == len(items) and set(ready) == {1}
    assert state["saturations"] == sats
    assert dut.latency == 3 and dut.interval == 1


def test_readout_mode_never_fires():
    dut = FireUnit(levels=4, threshold=2, potential_width=10, bias_width=6, index_width=4,
                   v0=3, readout=True)
    items = [(k, 40 * k - 200, 7 - k, k % 3 == 0) for k in range(10)]
    out, _ = _run(dut, items, seed=1)
    for (index, p, b, last), got in zip(items, out):
        assert got == (index, 0, 3 if last else p + b, p + b)


@pytest.mark.parametrize("discharge,pipelined", MODES)
def test_saturation_sets_sticky_flag_and_counts(discharge, pipelined):
    width = 6                           # [-32, 31]
    dut = FireUnit(levels=2, threshold=20, potential_width=width, bias_width=8, index_width=2,
                   discharge=discharge, saturate=True, pipelined=pipelined)
    items = [(0, 10, 5, False), (1, 30, 10, False), (2, -30, -10, False), (3, 31, 0, True),
             (0, 20, -1, False)]
    out, state = _run(dut, items, seed=2)
    for (index, p, b, last), got in zip(items, out):
        z, pn, h, _ = _golden(p, b, last, theta=20, levels=2, v0=0, readout=False, width=width)
        assert got == (index, z, pn, h)
    assert state == {"overflow": 1, "saturations": 2}


@pytest.mark.parametrize("kwargs,exc,msg", [
    (dict(levels=0), ValueError, "levels must be a positive integer, not 0"),
    (dict(levels="4"), TypeError, "levels must be a positive integer, not '4'"),
    (dict(threshold=0), ValueError, "threshold must be a positive integer, not 0"),
    (dict(threshold=True), TypeError, "threshold must be a positive integer, not True"),
    (dict(potential_width=1), ValueError, "potential_width must be an integer >= 2, not 1"),
    (dict(discharge="fast"), ValueError,
     "discharge must be 'parallel' or 'serial', not 'fast'"),
    (dict(v0=200), ValueError, "v0 (200) does not fit the potential width 8 ([-128, 127])"),
])
def test_validation(kwargs, exc, msg):
    args = dict(levels=2, threshold=3, potential_width=8)
    args.update(kwargs)
    with pytest.raises(exc) as e:
        FireUnit(**args)
    assert str(e.value) == msg

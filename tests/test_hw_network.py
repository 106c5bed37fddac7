# amaranth: UnusedElaboratable=no
"""Network top (hw/network.py) against the golden model in the Amaranth simulator."""

import random

import numpy as np
import pytest
from amaranth.hdl import unsigned
from amaranth.sim import Simulator

from golden.errors import MlsnnError
from golden.ir import Dense, InputSpec, Network, random_inputs, random_network
from golden.reference import COUNTERS as GOLDEN_COUNTERS
from golden.reference import run
from hw.layout import COUNTER_STRIDE, COUNTERS
from hw.network import NetworkTop, Queue
from sim.amaranth_run import run_network
from sim.scoreboard import compare, summary
from sim.tb import stream_get, stream_put


def _cases():
    # (seed, kind, levels, T, fifo_depth): small FIFOs with T > 1 and random backpressure.
    out = []
    for i in range(14):
        out.append((i, "dense" if i % 2 else "conv", [1, 2, 4, 8][i % 4], [1, 2, 4][i % 3],
                    [1, 2, 4, 16][(i // 2) % 4]))
    return out


@pytest.mark.parametrize("seed,kind,levels,timesteps,fifo_depth", _cases())
def test_random_networks_match_golden(seed, kind, levels, timesteps, fifo_depth):
    net = random_network(3000 + seed, kind=kind, levels=levels, timesteps=timesteps,
                         max_neurons=16)
    x = random_inputs(net, 2, seed=seed)
    golden = run(net, x)
    rtl = run_network(net, x, seed=seed, gap=0.3, stall=0.4, fifo_depth=fifo_depth)
    assert compare(net, golden, rtl) == []
    s = summary(net, rtl)
    assert s["predictions"] == golden.predictions.tolist()
    assert all(layer["counters"]["cycles"] > 0 for layer in s["layers"])


@pytest.mark.parametrize("discharge,synapse", [("serial", "mul"), ("parallel", "serial")])
def test_options_at_network_level(discharge, synapse):
    net = random_network(3100, kind="dense", levels=4, timesteps=2, max_neurons=10, in_bits=2,
                         depth=1)
    x = random_inputs(net, 2, seed=1)
    golden = run(net, x)
    rtl = run_network(net, x, seed=2, gap=0.2, stall=0.2, fifo_depth=2, discharge=discharge,
                      synapse=synapse)
    assert compare(net, golden, rtl) == []


def test_counters_accumulate_until_clear_and_busy_gates_pixels():
    net = random_network(3200, kind="conv", levels=2, timesteps=2, max_neurons=12, depth=1)
    x = random_inputs(net, 2, seed=3)
    golden = run(net, x)
    top = NetworkTop(net, fifo_depth=4)
    L = len(net.layers)
    got = {}

    def read_all(ctx):
        out = {}
        for k, layer in enumerate(net.layers):
            for c, name in enumerate(COUNTERS):
                ctx.set(top.ctr_addr, k * COUNTER_STRIDE + c)
                out[(layer.name, name)] = ctx.get(top.ctr_data)
        ctx.set(top.ctr_addr, L * COUNTER_STRIDE - 1)        # unused address reads 0
        out["unused"] = ctx.get(top.ctr_data)
        return out

    async def tb(ctx):
        ready_while_busy = 0
        for b in range(2):
            for v in x[b].reshape(-1):
                await stream_put(ctx, top.pixels, int(v))
            ctx.set(top.result.ready, 1)
            ctx.set(top.pixels.valid, 1)            # offered early: must not be taken
            while True:
                await ctx.tick()
                if not ctx.get(top.busy):
                    break
                ready_while_busy += ctx.get(top.pixels.ready)
            ctx.set(top.pixels.valid, 0)
            ctx.set(top.result.ready, 0)
        got["ready_while_busy"] = ready_while_busy
        got["acc"] = read_all(ctx)
        ctx.set(top.clear, 1)
        await ctx.tick()
        ctx.set(top.clear, 0)
        got["cleared"] = read_all(ctx)

    sim = Simulator(top)
    sim.add_clock(1e-8)
    sim.add_testbench(tb)
    sim.run()
    assert got["ready_while_busy"] == 0
    for layer in net.layers:
        totals = golden.totals(layer.name)
        for c in GOLDEN_COUNTERS:
            assert got["acc"][(layer.name, c)] == totals[c], (layer.name, c)
        assert got["acc"][(layer.name, "cycles")] > 0
    assert got["acc"]["unused"] == 0
    assert all(v == 0 for v in got["cleared"].values())


def test_prediction_ties_pick_lowest_index():
    w = np.zeros((3, 4), np.int64)
    net = Network(input=InputSpec(shape=(3,), in_bits=2), timesteps=1, layers=(
        Dense(name="ro", inputs=("input",), threshold=1, levels=1, weight=w,
              bias=np.array([1, 5, 5, 2]), readout=True),))
    x = np.array([[1, 2, 3]])
    golden = run(net, x)
    rtl = run_network(net, x)
    assert compare(net, golden, rtl) == []
    assert rtl.predictions.tolist() == [1] == golden.predictions.tolist()


def test_overflow_flags_per_layer():
    rng = np.random.default_rng(0)
    fc = Dense(name="fc", inputs=("input",), threshold=100, levels=2,
               weight=np.full((4, 3), 7), bias=np.zeros(3, np.int64), potential_width=6)
    ro = Dense(name="ro", inputs=("fc",), threshold=1, levels=1,
               weight=rng.integers(-2, 3, size=(3, 2)), bias=np.zeros(2, np.int64),
               readout=True)
    net = Network(input=InputSpec(shape=(4,), in_bits=4), timesteps=2, layers=(fc, ro))
    x = np.array([[15, 15, 15, 15], [0, 0, 0, 0]])
    golden = run(net, x)
    assert golden.overflow["fc"].tolist() == [2, 0]
    rtl = run_network(net, x)
    assert rtl.overflow["fc"].tolist() == [1, 0]
    assert rtl.overflow["ro"].tolist() == [0, 0]
    assert compare(net, golden, rtl) == []


def test_queue_passes_every_token_in_order_under_backpressure():
    q = Queue(shape=unsigned(8), depth=3)
    data = list(range(1, 60))
    got = []
    rng = random.Random(4)

    async def producer(ctx):
        for v in data:
            await stream_put(ctx, q.i, v, rng=rng, gap=0.5)

    async def consumer(ctx):
        for _ in data:
            got.append(await stream_get(ctx, q.o, rng=rng, stall=0.5))

    sim = Simulator(q)
    sim.add_clock(1e-8)
    sim.add_testbench(producer, background=True)
    sim.add_testbench(consumer)
    sim.run()
    assert got == data


def test_residual_networks_are_rejected_clearly():
    net = random_network(1, kind="residual", max_neurons=16)
    with pytest.raises(MlsnnError) as e:
        NetworkTop(net)
    assert str(e.value) == "residual joins are not supported by NetworkTop yet"


@pytest.mark.parametrize("kwargs,exc,msg", [
    (dict(fifo_depth=0), ValueError, "fifo_depth must be a positive integer, not 0"),
    (dict(discharge="none"), ValueError,
     "discharge must be 'parallel' or 'serial', not 'none'"),
    (dict(synapse=None), ValueError, "synapse must be 'mul' or 'serial', not None"),
])
def test_validation(kwargs, exc, msg):
    net = random_network(2, kind="dense", max_neurons=4)
    with pytest.raises(exc) as e:
        NetworkTop(net, **kwargs)
    assert str(e.value) == msg
    with pytest.raises(TypeError) as e:
        NetworkTop("network.json")
    assert str(e.value) == "net must be a golden.ir.Network, not str"


def test_counter_names_extend_the_golden_ones():
    from golden.reference import COUNTERS as golden_counters
    from sim.scoreboard import GOLDEN_COUNTERS
    assert GOLDEN_COUNTERS == golden_counters == COUNTERS[:8]
    assert COUNTERS[8:] == ("cycles", "saturations")

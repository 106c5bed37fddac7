# amaranth: UnusedElaboratable=no
"""Network top (hw/network.py) against the golden model in the Amaranth simulator."""

import dataclasses
import random

import numpy as np
import pytest
from amaranth.hdl import unsigned
from amaranth.sim import Simulator

from golden.errors import MlsnnError
from golden.fixtures import calibrate_thresholds, random_inputs, random_network
from golden.ir import Dense, InputSpec, Join, Network
from golden.reference import COUNTERS as GOLDEN_COUNTERS
from golden.reference import run
from hw.layout import COUNTER_STRIDE, COUNTERS
from hw.network import (CTR_LATENCY, DEFAULT_FIFO_DEPTH, MAX_JOIN_FIFO_DEPTH, NetworkTop, Queue,
                        check_supported, edges)
from sim.amaranth_run import SimulationTimeout, run_network
from sim.nets import as_barrier, small_resnet
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

    async def read_all(ctx):
        out = {}
        for k, layer in enumerate(net.layers):
            for c, name in enumerate(COUNTERS):
                ctx.set(top.ctr_addr, k * COUNTER_STRIDE + c)
                await ctx.tick().repeat(CTR_LATENCY)
                out[(layer.name, name)] = ctx.get(top.ctr_data)
        ctx.set(top.ctr_addr, L * COUNTER_STRIDE - 1)        # unused address reads 0
        await ctx.tick().repeat(CTR_LATENCY)
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
        got["acc"] = await read_all(ctx)
        ctx.set(top.clear, 1)
        await ctx.tick()
        ctx.set(top.clear, 0)
        got["cleared"] = await read_all(ctx)

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
    fc = Dense(name="fc", inputs=("input",), threshold=30, levels=2,
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


# -- residual networks ----------------------------------------------------------------------

def _residual_cases():
    # 32 networks: both join modes x both shortcuts, N in {1,2,4,8}, T in {1,2,4}, one or two
    # residual blocks, FIFOs of depth 1 or 2 (a few sized from the IR), random gaps and stalls
    # at the ports and random stalls on every internal queue.
    out = []
    for i in range(32):
        out.append((i, ("barrier", "sew")[i % 2], ("identity", "conv")[(i // 2) % 2],
                    (1, 2, 4, 8)[(i // 4) % 4], (1, 2, 4)[i % 3], 2 if i % 5 == 0 else 1,
                    None if i % 8 == 7 else 1 + (i // 3) % 2))
    return out


@pytest.mark.parametrize("seed,join,shortcut,levels,timesteps,blocks,fifo_depth",
                         _residual_cases())
def test_random_residual_networks_match_golden(seed, join, shortcut, levels, timesteps, blocks,
                                               fifo_depth):
    net = random_network(9000 + seed, kind="residual", join=join, shortcut=shortcut,
                         levels=levels, timesteps=timesteps, depth=blocks, max_neurons=12)
    assert not net.is_sequential
    x = random_inputs(net, 2, seed=seed)
    golden = run(net, x)
    # Bounded: a deadlock raises SimulationTimeout ("image b: no result after N cycles").
    rtl = run_network(net, x, seed=seed, gap=0.3, stall=0.4, throttle=0.3, fifo_depth=fifo_depth)
    assert compare(net, golden, rtl, x) == []
    for layer in net.layers:
        assert rtl.counters[layer.name]["cycles"].min() > 0
    assert rtl.predictions.tolist() == golden.predictions.tolist()


def _odd_dag(T=3):
    """Every wiring case at once: a SEW join of the network input, a barrier fed by a SEW join
    (repeated indices) with a negative stream weight, a SEW join of a SEW join, the input
    feeding two consumers and a layer feeding three (a 3-way fork)."""
    rng = np.random.default_rng(11)
    n = 6

    def fc(name, src, readout=False, n_out=n):
        return Dense(name=name, inputs=(src,), threshold=1, levels=1 if readout else 3,
                     weight=rng.integers(-3, 4, size=(n, n_out)),
                     bias=rng.integers(-2, 3, size=n_out), readout=readout)
    layers = (
        fc("fc0", "input"),
        Join(name="jA", inputs=("fc0", "input"), mode="sew"),
        fc("fc1", "jA"),
        Join(name="jB", inputs=("fc1", "jA"), mode="barrier", levels=4,
             stream_weights=(2, -1)),
        fc("fc2", "fc0"),
        Join(name="jC", inputs=("jB", "fc0"), mode="sew"),
        Join(name="jD", inputs=("jC", "fc2"), mode="sew"),
        fc("ro", "jD", readout=True, n_out=3),
    )
    net = Network(input=InputSpec(shape=(n,), in_bits=2), timesteps=T, layers=layers)
    return calibrate_thresholds(net, np.random.default_rng(5))


def test_odd_dag_with_three_way_fork_and_joined_input():
    net = _odd_dag()
    assert sorted(net.consumers("fc0")) == ["fc2", "jA", "jC"]
    x = random_inputs(net, 3, seed=4)
    golden = run(net, x)
    assert golden.counters["jD"]["ev_out"].sum() > 0
    for seed, depth in ((0, 1), (1, 2), (2, None)):
        rtl = run_network(net, x, seed=seed, gap=0.2, stall=0.3, throttle=0.4, fifo_depth=depth)
        assert compare(net, golden, rtl, x) == [], depth
    # Without the inputs the SEW join of the input cannot be checked token by token, but its
    # counters still are.
    assert compare(net, golden, rtl) == []


def test_avalanche_sew_vs_barrier_on_rtl_counters():
    # Two chained identity blocks; the barrier version is lossless (θ_b = 1, N_b = the largest
    # sum), so both compute the same function with the same weights and only events differ.
    sew = small_resnet(0, join="sew", blocks=2, levels=2, timesteps=2, size=4)
    bar = as_barrier(sew)
    x = random_inputs(sew, 2, seed=1)
    ev = {}
    for key, net in (("sew", sew), ("bar", bar)):
        golden = run(net, x)
        rtl = run_network(net, x, seed=2, throttle=0.2, fifo_depth=2)
        assert compare(net, golden, rtl, x) == []
        ev[key] = rtl
    assert np.array_equal(ev["sew"].readout, ev["bar"].readout)       # same function
    tot = {k: {n: {c: int(v.sum()) for c, v in d.items()} for n, d in r.counters.items()}
           for k, r in ev.items()}
    for j in ("sum0", "sum1"):
        nxt = sew.consumers(j)[0]
        direct, resid = sew.layer(j).inputs
        # SEW: the next layer consumes the events of both paths (the avalanche) ...
        both = tot["sew"][direct]["ev_out"] + tot["sew"][resid]["ev_out"]
        assert tot["sew"][j]["ev_out"] == both
        assert tot["sew"][nxt]["ev_in"] == both
        # ... after a barrier only the barrier's own events, fewer than the two paths'.
        assert tot["bar"][nxt]["ev_in"] == tot["bar"][j]["ev_out"]
        assert tot["bar"][j]["ev_in"] == (tot["bar"][direct]["ev_out"]
                                          + tot["bar"][resid]["ev_out"])
        assert tot["bar"][nxt]["ev_in"] < tot["sew"][nxt]["ev_in"]
        assert tot["bar"][nxt]["syn_updates"] < tot["sew"][nxt]["syn_updates"]
    # The avalanche builds up: the second SEW join passes the first one's events on again.
    ev_out = {n: c["ev_out"] for n, c in tot["sew"].items()}
    assert ev_out["sum1"] == ev_out["b1b"] + ev_out["sum0"]
    assert ev_out["sum1"] > ev_out["sum0"] > ev_out["stem"]


@pytest.mark.parametrize("discharge,synapse", [("serial", "serial")])
def test_residual_network_with_serial_options(discharge, synapse):
    net = random_network(9050, kind="residual", join="barrier", shortcut="conv", depth=1,
                         levels=4, timesteps=2, max_neurons=10)
    x = random_inputs(net, 3, seed=3)
    golden = run(net, x)
    rtl = run_network(net, x, seed=1, stall=0.3, throttle=0.3, fifo_depth=1,
                      discharge=discharge, synapse=synapse)
    assert compare(net, golden, rtl, x) == []


def test_deadlock_or_stall_fails_clearly_within_the_cycle_budget():
    net = random_network(9200, kind="residual", join="sew", depth=1, timesteps=2,
                         max_neurons=8)
    x = random_inputs(net, 1, seed=0)
    with pytest.raises(SimulationTimeout) as e:
        run_network(net, x, throttle=1.0, max_cycles=400)     # every queue stalled forever
    assert str(e.value) == "image 0: no result after 400 cycles (deadlock?)"


def test_fifo_depths_sized_from_the_ir_and_overridden():
    net = random_network(9300, kind="residual", join="barrier", shortcut="identity", depth=1,
                         max_neurons=48)
    top = NetworkTop(net)
    assert len(top.edges) == len(edges(net)) == sum(len(l.inputs) for l in net.layers)
    for (src, k, _), depth in zip(top.edges, top.fifo_depths):
        if isinstance(net.layers[k], Join):
            bound = net.input.size if src == "input" else net.info(src).n_out
            assert depth == min(MAX_JOIN_FIFO_DEPTH, max(DEFAULT_FIFO_DEPTH, bound + 1))
        else:
            assert depth == DEFAULT_FIFO_DEPTH
    assert NetworkTop(net, fifo_depth=3).fifo_depths == [3] * len(top.edges)


def test_barrier_v0_that_does_not_fit_is_reported():
    net = random_network(9400, kind="residual", join="barrier", depth=1, max_neurons=8)
    check_supported(net)
    j = next(l for l in net.layers if isinstance(l, Join))
    bad = Network(input=net.input, timesteps=net.timesteps, layers=tuple(
        dataclasses.replace(l, v0=300, potential_width=8) if l is j else l for l in net.layers))
    with pytest.raises(MlsnnError) as e:
        check_supported(bad)
    assert str(e.value) == f"layer '{j.name}': v0 (300) does not fit its potential width 8"
    with pytest.raises(MlsnnError):
        NetworkTop(bad)


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
    assert GOLDEN_COUNTERS == golden_counters == COUNTERS[:8] + COUNTERS[10:]
    assert COUNTERS[8:10] == ("cycles", "saturations")
    assert COUNTERS[10:13] == ("w_rd_words", "p_rd_words", "p_wr_words")
    assert COUNTERS[13:] == ("shifts",)                 # docs/bitserial.md §5

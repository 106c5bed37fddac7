# amaranth: UnusedElaboratable=no
"""Residual-block components (hw/join.py): Fork, SewJoin, BarrierCore in the Amaranth simulator."""

import dataclasses
import random

import numpy as np
import pytest
from amaranth.hdl import unsigned
from amaranth.sim import Simulator

from golden.fixtures import random_inputs, random_network
from golden.ir import Conv2d, Dense, InputSpec, Join, Network
from golden.reference import run
from hw.join import BarrierCore, Fork, SewJoin
from hw.layout import EventKind
from sim.amaranth_run import run_join
from sim.scoreboard import (EOT, EVENT, GOLDEN_COUNTERS, golden_events, layer_input_tokens,
                            split_timesteps)
from sim.tb import stream_get, stream_put


# -- Fork -----------------------------------------------------------------------------------

@pytest.mark.parametrize("outputs,seed", [(2, 0), (3, 1)])
def test_fork_delivers_every_token_once_to_every_output(outputs, seed):
    fork = Fork(shape=unsigned(8), outputs=outputs)
    data = list(range(1, 80))
    got = [[] for _ in range(outputs)]
    rng = random.Random(seed)

    async def producer(ctx):
        for v in data:
            await stream_put(ctx, fork.i, v, rng=rng, gap=0.3)

    def consumer(k):
        async def tb(ctx):
            r = random.Random(seed * 10 + k)
            for _ in data:
                got[k].append(await stream_get(ctx, fork.o[k], rng=r, stall=0.2 + 0.25 * k))
        return tb

    sim = Simulator(fork)
    sim.add_clock(1e-8)
    sim.add_testbench(producer, background=True)
    for k in range(outputs):
        sim.add_testbench(consumer(k))
    sim.run()
    assert all(g == data for g in got)


def test_fork_full_throughput_when_all_ready():
    fork = Fork(shape=unsigned(4), outputs=2)
    cycles = []

    async def tb(ctx):
        for o in fork.o:
            ctx.set(o.ready, 1)
        ctx.set(fork.i.valid, 1)
        for v in range(8):
            ctx.set(fork.i.payload, v)
            _, _, ready, v0, v1 = await ctx.tick().sample(fork.i.ready, fork.o[0].valid,
                                                          fork.o[1].valid)
            cycles.append((ready, v0, v1))

    sim = Simulator(fork)
    sim.add_clock(1e-8)
    sim.add_testbench(tb)
    sim.run()
    assert cycles == [(1, 1, 1)] * 8


# -- SEW join -------------------------------------------------------------------------------

def _streams(rng, T, n, vmax, density):
    """Per timestep a random set of events (index ascending, as a core emits them)."""
    return [[(j, int(rng.integers(1, vmax + 1))) for j in range(n) if rng.random() < density]
            for _ in range(T)]


def _tokens(per_t):
    out = []
    for evs in per_t:
        out += [(EVENT, j, z) for j, z in evs] + [(EOT, 0, 0)]
    return out


@pytest.mark.parametrize("seed,T,gap,stall", [(0, 1, 0.0, 0.0), (1, 3, 0.4, 0.3),
                                              (2, 4, 0.7, 0.6), (3, 2, 0.0, 0.7)])
def test_sew_join_forwards_both_streams_one_eot_per_timestep(seed, T, gap, stall):
    rng = np.random.default_rng(seed)
    n = 12
    a = _streams(rng, T, n, 3, 0.5)
    b = _streams(rng, T, n, 7, 0.4 if seed != 3 else 0.0)      # seed 3: an idle input
    join = SewJoin(index_width=4, in_value_widths=(2, 3), out_value_width=4, timesteps=T)
    res = run_join(join, _tokens(a), _tokens(b), n_eot=T, seed=seed, gap=gap, stall=stall)
    images, rest = split_timesteps(res["tokens"], T)
    assert rest == [] and len(images) == 1
    for t in range(T):
        got = sorted((i, v) for k, i, v in images[0][t])
        assert all(k == EVENT for k, _, _ in images[0][t])
        assert got == sorted(a[t] + b[t])
    n_ev = sum(len(e) for e in a + b)
    c = res["counters"]
    assert c["ev_in"] == c["ev_out"] == n_ev
    assert all(c[k] == 0 for k in ("w_rd", "p_rd", "p_wr", "b_rd", "syn_updates", "syn_acc",
                                   "saturations"))
    assert c["cycles"] > 0 and res["overflow"] == 0


def test_sew_join_takes_events_of_either_input_before_the_other_eot():
    # Input 1's events of timestep 0 are consumed although input 0 has not sent anything yet:
    # the join never waits for one input to finish before taking the other.
    join = SewJoin(index_width=3, in_value_widths=(1, 1), out_value_width=2, timesteps=1)
    seen = []

    async def tb(ctx):
        ctx.set(join.o.ready, 1)
        for j in range(5):
            ctx.set(join.i1.payload, {"kind": EventKind.EVENT, "index": j, "value": 1})
            ctx.set(join.i1.valid, 1)
            await ctx.tick().until(join.i1.ready)
        ctx.set(join.i1.valid, 0)
        for _ in range(3):
            _, _, v, p = await ctx.tick().sample(join.o.valid, join.o.payload)
            seen.append((v, p.kind if v else None))

    sim = Simulator(join)
    sim.add_clock(1e-8)
    sim.add_testbench(tb)
    sim.run()
    assert all(kind != EventKind.EOT for _, kind in seen)


# -- barrier core ---------------------------------------------------------------------------

def _barrier_model(layer, n, T, a, b):
    """Straight from SPEC §3 (barrier row): P[j] += z·w_k per event, sweep with θ_b, N_b."""
    P = [layer.v0] * n
    out, c = [], dict.fromkeys(GOLDEN_COUNTERS, 0)
    for t in range(T):
        for k, stream in enumerate((a, b)):
            for j, z in stream[t]:
                P[j] += z * layer.stream_weights[k]
                c["ev_in"] += 1
                c["syn_updates"] += 1
                c["syn_acc"] += z
        evs = []
        for j in range(n):
            H = P[j]
            z = 0 if H < layer.threshold else min(layer.levels, H // layer.threshold)
            P[j] = layer.v0 if t == T - 1 else H - z * layer.threshold
            if z:
                evs.append((j, z))
        c["ev_out"] += len(evs)
        out.append(evs)
    c["p_rd"] = c["p_wr"] = c["syn_updates"] + T * n
    c["p_rd_words"] = c["p_wr_words"] = c["p_rd"]        # one neuron per word: no lanes
    return out, c


def _barrier_net(n, T, *, levels, threshold, weights, v0=0, in_bits=3, width=16):
    """input (n,) → fc (n) → barrier join(fc, input) → readout: a barrier core to test alone.
    The join's potential width is forced wide: the hand-made streams below repeat indices
    within a stream, which the IR's static bound does not foresee."""
    rng = np.random.default_rng(n)
    fc = Dense(name="fc", inputs=("input",), threshold=2, levels=2,
               weight=rng.integers(-3, 4, size=(n, n)), bias=np.zeros(n, np.int64))
    jn = Join(name="jn", inputs=("fc", "input"), mode="barrier", threshold=threshold,
              levels=levels, stream_weights=weights, v0=v0, potential_width=width)
    ro = Dense(name="ro", inputs=("jn",), threshold=1, levels=1,
               weight=rng.integers(-3, 4, size=(n, 2)), bias=np.zeros(2, np.int64),
               readout=True)
    return Network(input=InputSpec(shape=(n,), in_bits=in_bits), timesteps=T,
                   layers=(fc, jn, ro))


@pytest.mark.parametrize("n,T,levels,weights,discharge,gap,stall", [
    (1, 3, 2, (1, 1), "parallel", 0.0, 0.0),       # every event on the same neuron
    (2, 2, 4, (3, -2), "parallel", 0.3, 0.3),
    (3, 4, 8, (2, 1), "serial", 0.0, 0.5),
    (5, 2, 1, (-1, 3), "parallel", 0.5, 0.0),
])
def test_barrier_core_back_to_back_events_and_repeated_targets(n, T, levels, weights,
                                                               discharge, gap, stall):
    # Streams with repeated indices (as a SEW-merged input carries) and back-to-back events
    # on the same neuron exercise the forwarding on P.
    net = _barrier_net(n, T, levels=levels, threshold=3, weights=weights)
    layer = net.layer("jn")
    rng = np.random.default_rng(n * 7 + T)
    a = [[(int(rng.integers(n)), int(rng.integers(1, 3))) for _ in range(int(rng.integers(0, 9)))]
         for _ in range(T)]
    b = [[(int(rng.integers(n)), int(rng.integers(1, 8))) for _ in range(int(rng.integers(0, 9)))]
         for _ in range(T)]
    exp, counters = _barrier_model(layer, n, T, a, b)
    core = BarrierCore(layer=layer, info=net.info("jn"), timesteps=T, discharge=discharge)
    res = run_join(core, _tokens(a), _tokens(b), n_eot=T, seed=n, gap=gap, stall=stall)
    images, rest = split_timesteps(res["tokens"], T)
    assert rest == []
    assert [[(i, v) for _, i, v in ts] for ts in images[0]] == exp
    for c in GOLDEN_COUNTERS:
        assert res["counters"][c] == counters[c], c
    assert res["counters"]["w_rd"] == res["counters"]["b_rd"] == 0
    assert res["counters"]["cycles"] > 0 and res["overflow"] == 0


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_barrier_core_against_golden(seed):
    net = random_network(7000 + seed, kind="residual", join="barrier", depth=1,
                         timesteps=[1, 2, 4][seed], levels=[2, 4, 8][seed], max_neurons=16)
    name = next(l.name for l in net.layers if isinstance(l, Join))
    x = random_inputs(net, 2, seed=seed)
    golden = run(net, x)
    core = BarrierCore.from_network(net, name)
    T = net.timesteps
    res = run_join(core, layer_input_tokens(net, name, x, golden, port=0),
                   layer_input_tokens(net, name, x, golden, port=1), n_eot=2 * T, seed=seed,
                   gap=0.3, stall=0.3)
    images, rest = split_timesteps(res["tokens"], T)
    assert rest == [] and len(images) == 2
    for b in range(2):
        for t in range(T):
            assert [(i, v) for _, i, v in images[b][t]] == golden_events(golden, name, b, t)
    totals = golden.totals(name)
    for c in GOLDEN_COUNTERS:
        assert res["counters"][c] == totals[c], c


def test_barrier_core_saturates_when_forced_narrow():
    net = _barrier_net(2, 1, levels=1, threshold=1, weights=(100, 100), width=6)
    core = BarrierCore.from_network(net, "jn")
    res = run_join(core, _tokens([[(0, 1)]]), _tokens([[(0, 1)]]), n_eot=1)
    assert res["overflow"] == 1 and res["counters"]["saturations"] >= 1
    assert res["tokens"] == [(EVENT, 0, 1), (EOT, 0, 0)]


# -- constructor validation -----------------------------------------------------------------

def _sew_net():
    return random_network(3, kind="residual", join="sew", depth=1, max_neurons=8)


@pytest.mark.parametrize("kwargs,exc,msg", [
    (dict(shape=unsigned(4), outputs=1), ValueError, "outputs must be an integer >= 2, not 1"),
    (dict(shape=unsigned(4), outputs=2.0), TypeError, "outputs must be an integer >= 2, not 2.0"),
    (dict(shape="x"), TypeError, "shape must be shape-castable, not 'x'"),
])
def test_fork_validation(kwargs, exc, msg):
    with pytest.raises(exc) as e:
        Fork(**kwargs)
    assert str(e.value) == msg


@pytest.mark.parametrize("kwargs,exc,msg", [
    (dict(index_width=0), ValueError, "index_width must be a positive integer, not 0"),
    (dict(in_value_widths=(2,)), TypeError,
     "in_value_widths must be a pair of positive integers, not (2,)"),
    (dict(in_value_widths=(2, 0)), ValueError,
     "in_value_widths must be a positive integer, not 0"),
    (dict(out_value_width=2), ValueError,
     "out_value_width (2) must be at least the widest input value width (3)"),
    (dict(timesteps=0), ValueError, "timesteps must be a positive integer, not 0"),
])
def test_sew_join_validation(kwargs, exc, msg):
    args = dict(index_width=4, in_value_widths=(2, 3), out_value_width=4, timesteps=2)
    args.update(kwargs)
    with pytest.raises(exc) as e:
        SewJoin(**args)
    assert str(e.value) == msg


def test_sew_join_from_network_validation():
    net = _sew_net()
    with pytest.raises(TypeError) as e:
        SewJoin.from_network(net, "conv0")
    assert str(e.value) == "layer must be a golden.ir.Join with mode 'sew', not Conv2d"
    barrier = random_network(3, kind="residual", join="barrier", depth=1, max_neurons=8)
    with pytest.raises(TypeError) as e:
        SewJoin.from_network(barrier, "join0")
    assert str(e.value) == ("layer must be a golden.ir.Join with mode 'sew', not a Join with "
                            "mode 'barrier'")


def test_barrier_core_validation():
    net = _barrier_net(3, 2, levels=2, threshold=2, weights=(1, 1))
    layer, info = net.layer("jn"), net.info("jn")
    cases = [
        (dict(layer=net.layer("fc")), TypeError,
         "layer must be a golden.ir.Join with mode 'barrier', not Dense"),
        (dict(layer=Join(name=layer.name, inputs=layer.inputs, mode="sew")), TypeError,
         "layer must be a golden.ir.Join with mode 'barrier', not a Join with mode 'sew'"),
        (dict(info="info"), TypeError, "info must be a golden.ir.LayerInfo, not str"),
        (dict(timesteps=0), ValueError, "timesteps must be a positive integer, not 0"),
        (dict(discharge="fast"), ValueError,
         "discharge must be 'parallel' or 'serial', not 'fast'"),
        (dict(layer=dataclasses.replace(layer, v0=100000)), ValueError,
         f"layer 'jn': v0 (100000) does not fit its potential width {info.width}"),
    ]
    for kwargs, exc, msg in cases:
        args = dict(layer=layer, info=info, timesteps=2)
        args.update(kwargs)
        with pytest.raises(exc) as e:
            BarrierCore(**args)
        assert str(e.value) == msg


def test_conv_is_not_a_join():
    conv = Conv2d(name="c", inputs=("input",), threshold=1, levels=1,
                  weight=np.ones((1, 1, 1, 1), np.int64), bias=np.zeros(1, np.int64))
    with pytest.raises(TypeError) as e:
        BarrierCore(layer=conv, info=None, timesteps=1)
    assert str(e.value) == "layer must be a golden.ir.Join with mode 'barrier', not Conv2d"

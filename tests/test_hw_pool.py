# amaranth: UnusedElaboratable=no
"""The pooling core (hw/pool.py) in the Amaranth simulator, bit for bit against golden.reference.

Every test takes the pool's input events from the golden model (the pixels for a pool on the
input, the golden events of the layer before it otherwise), runs the core alone with random
gaps on ``i`` and random backpressure on ``o``, and compares its output events per image and
timestep and all its counters with the golden model's for that layer.
"""

import dataclasses

import numpy as np
import pytest
from amaranth.sim import Simulator

import hw.point as hw_point
from golden.fixtures import random_network
from golden.ir import Conv2d, Dense, InputSpec, Network
from golden.pooling import AvgPool2d, MaxPool2d
from golden.reference import run
from hw.join import BarrierCore, SewJoin
from hw.layout import EventKind
from hw.memory import CountedMemory, MemorySpec
from hw.pool import PoolCore, index_map_kind
from sim.amaranth_run import run_layer
from sim.scoreboard import (EOT, EVENT, GOLDEN_COUNTERS, golden_events, layer_input_tokens,
                            split_timesteps)


def _net(kind, shape, k, *, T, conv, levels=2, threshold=3, v0=0, width=None, in_bits=3,
         seed=0):
    """input (C,H,W) → [conv2d 3×3, pad 1, C channels] → pool → dense readout."""
    rng = np.random.default_rng(seed)
    C, H, W = shape
    layers = []
    src = "input"
    if conv:
        layers.append(Conv2d(name="conv", inputs=("input",), threshold=4, levels=3,
                             weight=rng.integers(-1, 4, size=(C, 3, 3, C)),
                             bias=rng.integers(-2, 3, size=C), padding=1))
        src = "conv"
    if kind == "max":
        pool = MaxPool2d(name="pool", inputs=(src,), kernel=k)
    else:
        pool = AvgPool2d(name="pool", inputs=(src,), kernel=k, threshold=threshold,
                         levels=levels, v0=v0, potential_width=width)
    n_out = C * (H // k) * (W // k)
    ro = Dense(name="ro", inputs=("pool",), threshold=1, levels=1,
               weight=rng.integers(-3, 4, size=(n_out, 2)), bias=np.zeros(2, np.int64),
               readout=True)
    return Network(input=InputSpec(shape=shape, in_bits=in_bits), timesteps=T,
                   layers=tuple(layers) + (pool, ro))


def _images(net, seed, B=3):
    """Dense, sparse and all-zero images (the last gives empty timesteps everywhere)."""
    rng = np.random.default_rng(seed)
    shape = (B,) + net.input.shape
    x = rng.integers(0, net.input.zmax + 1, size=shape)
    x[1] *= rng.random(shape[1:]) < 0.25
    x[-1] = 0
    return x


def _check(net, x, name="pool", *, seed=0, gap=0.0, stall=0.0, discharge="parallel"):
    """Run the core of ``name`` on the golden input events of ``x``; assert it equals golden.
    Returns (golden, result)."""
    golden = run(net, x)
    B, T = x.shape[0], net.timesteps
    core = PoolCore.from_network(net, name, discharge=discharge)
    res = run_layer(core, layer_input_tokens(net, name, x, golden), n_eot=B * T, seed=seed,
                    gap=gap, stall=stall, max_cycles=200_000)
    images, rest = split_timesteps(res["tokens"], T)
    assert rest == [] and len(images) == B
    for b in range(B):
        for t in range(T):
            assert all(k == EVENT for k, _, _ in images[b][t])
            assert [(i, v) for _, i, v in images[b][t]] == golden_events(golden, name, b, t), \
                (b, t)
    totals = golden.totals(name)
    for c in GOLDEN_COUNTERS:
        assert res["counters"][c] == totals[c], c
    assert res["counters"]["w_rd"] == res["counters"]["b_rd"] == 0
    assert res["counters"]["saturations"] == int(golden.saturations[name].sum())
    assert res["overflow"] == int(golden.saturations[name].sum() > 0)
    return golden, res, core


CASES = [
    # kind, (C, H, W), k, T, conv, levels, discharge, gap, stall, in_bits: map kind
    ("max", (3, 6, 9), 3, 3, True, None, "parallel", 0.3, 0.4, 3),        # rom
    ("avg", (3, 6, 9), 3, 1, True, 1, "parallel", 0.4, 0.3, 3),           # rom, N = 1
    ("avg", (2, 4, 8), 2, 3, False, 4, "parallel", 0.2, 0.5, 3),          # bits
    ("max", (2, 4, 8), 2, 1, False, None, "parallel", 0.3, 0.3, 16),      # bits, zmax 65535
    ("max", (3, 5, 5), 1, 2, True, None, "parallel", 0.5, 0.0, 3),        # identity, k = 1
    ("avg", (2, 5, 3), 1, 3, False, 3, "serial", 0.0, 0.5, 4),            # identity, serial
    ("avg", (2, 6, 4), 2, 2, True, 2, "serial", 0.3, 0.3, 3),             # rom (H = 6)
    ("avg", (1, 3, 3), 3, 3, False, 8, "parallel", 0.0, 0.0, 3),          # zero: one target
]


@pytest.mark.parametrize("case", CASES, ids=lambda c: f"{c[0]}-{'x'.join(map(str, c[1]))}-k{c[2]}"
                         f"-T{c[3]}-{c[6]}")
def test_pool_core_against_golden(case):
    kind, shape, k, T, conv, levels, discharge, gap, stall, in_bits = case
    v0 = -1 if kind == "avg" and T > 1 else 0
    net = _net(kind, shape, k, T=T, conv=conv, levels=levels or 1, threshold=5, v0=v0,
               in_bits=in_bits, seed=len(shape) + k + T)
    x = _images(net, seed=k * 10 + T)
    golden, res, _ = _check(net, x, seed=T, gap=gap, stall=stall, discharge=discharge)
    assert res["counters"]["ev_out"] > 0 and res["counters"]["ev_in"] > 0    # not vacuous


def test_pool_kinds_map_as_documented():
    # The cases above cover every index map variant.
    got = {index_map_kind(_net(c[0], c[1], c[2], T=1, conv=False).info("pool"), c[2])
           for c in CASES}
    assert got == {"rom", "bits", "identity", "zero"}


@pytest.mark.parametrize("kind,discharge", [("max", "parallel"), ("avg", "parallel"),
                                            ("avg", "serial")])
def test_pool_core_cycles_counter_is_the_bracket(kind, discharge):
    # No gaps, no stalls: the cycles counter equals the bracket counted here from the
    # handshakes (from each inference's first input token to its T-th output EOT, inclusive;
    # overlapping inferences counted once); a 3x3 window (k = 3, ROM map) gives runs of events
    # on the same target back to back, and the all-zero image an inference of EOTs only.
    net = _net(kind, (2, 6, 9), 3, T=2, conv=False, levels=3, threshold=4)
    x = _images(net, seed=5)
    golden = run(net, x)
    core = PoolCore.from_network(net, "pool", discharge=discharge)
    tokens = layer_input_tokens(net, "pool", x, golden)
    T, B = net.timesteps, x.shape[0]
    log = {"in": [], "out": []}
    got = {}

    async def producer(ctx):
        for kind_, index, value in tokens:
            await _put(ctx, core.i, EventKind(kind_), index, value)

    async def monitor(ctx):
        cyc = 0
        async for _, _, iv, ir, ik, ov, o_r, ok in ctx.tick().sample(
                core.i.valid, core.i.ready, core.i.payload.kind, core.o.valid, core.o.ready,
                core.o.payload.kind):
            if iv and ir:
                log["in"].append((cyc, ik))
            if ov and o_r:
                log["out"].append((cyc, ok))
            cyc += 1

    async def consumer(ctx):
        ctx.set(core.o.ready, 1)
        while sum(k == EventKind.EOT for _, k in log["out"]) < B * T:
            await ctx.tick()
        await ctx.tick().repeat(3)
        got["cycles"] = ctx.get(core.counters.cycles)

    sim = Simulator(core)
    sim.add_clock(1e-8)
    sim.add_testbench(producer, background=True)
    sim.add_testbench(monitor, background=True)
    sim.add_testbench(consumer)
    sim.run()
    firsts, lasts = [], []
    in_eots = 0
    for cyc, k in log["in"]:
        if in_eots % T == 0 and len(firsts) == in_eots // T:
            firsts.append(cyc)
        in_eots += k == EventKind.EOT
    out_eots = [cyc for cyc, k in log["out"] if k == EventKind.EOT]
    lasts = out_eots[T - 1::T]
    assert len(firsts) == len(lasts) == B
    bracket = set()
    for f, last in zip(firsts, lasts):
        bracket.update(range(f, last + 1))
    assert got["cycles"] == len(bracket) > 0


def test_avgpool_narrow_width_saturates_as_golden_predicts():
    # A pool on the input (one stream, pixels in index order): the golden model saturates
    # event by event as the hardware does, so events, counts and the flag are exact.
    net = _net("avg", (2, 4, 6), 2, T=3, conv=False, levels=2, threshold=9, width=5)
    info = net.info("pool")
    assert info.width < info.safe_width
    x = _images(net, seed=7)
    golden, res, _ = _check(net, x, seed=3, gap=0.3, stall=0.3)
    assert res["counters"]["saturations"] == int(golden.saturations["pool"].sum()) > 0
    assert res["overflow"] == 1


@pytest.mark.parametrize("seed", [31, 49])
def test_avgpool_after_sew_join_repeated_indices(seed):
    # A SEW join delivers both streams' events: the same input index twice per timestep,
    # back to back (the merged events are sorted), on one target (seed 31: a single output).
    net = random_network(seed, kind="residual", join="sew", pool=True, max_neurons=32,
                         timesteps=2)
    name = "jpool0"
    assert net.layer(name).kind == "avgpool2d"
    assert net.layer(net.layer(name).inputs[0]).kind == "sew"
    rng = np.random.default_rng(seed)
    x = rng.integers(0, net.input.zmax + 1, size=(3,) + net.input.shape)
    golden = run(net, x)
    tokens = layer_input_tokens(net, name, x, golden)
    idx = [i for k, i, _ in tokens if k == EVENT]
    assert any(a == b for a, b in zip(idx, idx[1:]))     # repeated indices back to back
    _check(net, x, name, seed=seed, gap=0.2, stall=0.3)


def _run_tokens(core, tokens, n_eot, **kw):
    res = run_layer(core, tokens, n_eot=n_eot, max_cycles=50_000, **kw)
    images, rest = split_timesteps(res["tokens"], n_eot)
    assert rest == []
    return [[(i, v) for _, i, v in ts] for ts in images[0]], res


@pytest.mark.parametrize("kind,gap,stall", [("avg", 0.0, 0.0), ("avg", 0.5, 0.5),
                                            ("max", 0.0, 0.0), ("max", 0.4, 0.6)])
def test_pool_core_same_index_many_times(kind, gap, stall):
    # Hand-made streams that no single producer sends (the same index up to 7 times in a
    # row): the read-modify-write of P must see every earlier update of the same word.
    net = _net(kind, (1, 4, 4), 2, T=3, conv=False, levels=8, threshold=3, width=16)
    core = PoolCore.from_network(net, "pool")
    rng = np.random.default_rng(len(kind) + int(gap * 10))
    per_t = []
    for t in range(3):
        evs = []
        for _ in range(int(rng.integers(0 if t == 1 else 5, 14 if t != 1 else 1))):
            i, z = int(rng.integers(16)), int(rng.integers(1, 8))
            evs += [(i, z)] * int(rng.integers(1, 8))
        per_t.append(evs)
    tokens = [tok for evs in per_t for tok in [(EVENT, i, z) for i, z in evs] + [(EOT, 0, 0)]]
    got, res = _run_tokens(core, tokens, 3, gap=gap, stall=stall)
    j_of = [((i // 4) // 2) * 2 + (i % 4) // 2 for i in range(16)]
    layer = net.layer("pool")
    P = [0] * 4
    exp = []
    for t, evs in enumerate(per_t):
        for i, z in evs:
            P[j_of[i]] = max(P[j_of[i]], z) if kind == "max" else P[j_of[i]] + z
        out = []
        for j in range(4):
            if kind == "max":
                zo, P[j] = P[j], 0
            else:
                zo = 0 if P[j] < layer.threshold else min(layer.levels, P[j] // layer.threshold)
                P[j] = 0 if t == 2 else P[j] - zo * layer.threshold
            if zo:
                out.append((j, zo))
        exp.append(out)
    assert got == exp
    n = sum(len(e) for e in per_t)
    c = res["counters"]
    assert per_t[1] == [] and n > 20
    assert c["ev_in"] == c["syn_updates"] == n
    assert c["syn_acc"] == (n if kind == "max" else sum(z for e in per_t for _, z in e))
    assert c["p_rd"] == c["p_wr"] == n + 3 * 4
    assert c["ev_out"] == sum(len(e) for e in exp)


# -- timing -----------------------------------------------------------------------------------

class _Recorded(CountedMemory):
    made = []

    def __init__(self, **kw):
        super().__init__(**kw)
        _Recorded.made.append(self)


def _sim(dut, bench):
    sim = Simulator(dut)
    sim.add_clock(1e-8)
    sim.add_testbench(bench)
    sim.run()


async def _put(ctx, port, kind, index=0, value=0):
    ctx.set(port.payload, {"kind": kind, "index": index, "value": value})
    ctx.set(port.valid, 1)
    await ctx.tick().until(port.ready)
    ctx.set(port.valid, 0)


@pytest.mark.parametrize("kind", ["max", "avg"])
def test_pool_update_latency_as_simulated(monkeypatch, kind):
    monkeypatch.setattr(hw_point, "CountedMemory", _Recorded)
    _Recorded.made.clear()
    core = PoolCore.from_network(_net(kind, (1, 6, 6), 3, T=1, conv=False), "pool")
    writes = []

    async def bench(ctx):
        pmem = _Recorded.made[-1]
        ctx.set(core.o.ready, 1)
        await ctx.tick().repeat(2)
        # Events 7, 8, 9 (targets 0, 0, 1) offered back to back: handshakes in cycles 0, 1, 2.
        for n in range(12):
            if n < 3:
                ctx.set(core.i.payload, {"kind": EventKind.EVENT, "index": 7 + n, "value": 2})
            ctx.set(core.i.valid, n < 3)
            if ctx.get(pmem.wr_en):
                writes.append((n, ctx.get(pmem.wr_addr), ctx.get(pmem.wr_data)))
            if n < 3:
                assert ctx.get(core.i.ready)
            await ctx.tick()

    _sim(core, bench)
    second = 4 if kind == "avg" else 2                  # 2 + 2, max(2, 2)
    assert writes == [(core.update_latency, 0, 2), (core.update_latency + 1, 0, second),
                      (core.update_latency + 2, 1, 2)]


@pytest.mark.parametrize("kind,discharge,shape,k", [
    ("max", "parallel", (1, 2, 2), 2), ("max", "parallel", (3, 6, 9), 3),
    ("avg", "parallel", (1, 2, 2), 2), ("avg", "parallel", (2, 4, 8), 2),
    ("avg", "serial", (1, 3, 3), 3), ("avg", "serial", (3, 6, 9), 3)])
def test_pool_eot_latency_as_simulated(kind, discharge, shape, k):
    net = _net(kind, shape, k, T=2, conv=False, levels=3)
    core = PoolCore.from_network(net, "pool", discharge=discharge)
    got = []

    async def until_eot(ctx):
        # cycles from the EOT handshake (1) to the core's EOT on o
        n = 1
        while not (ctx.get(core.o.valid) and ctx.get(core.o.payload.kind) == EventKind.EOT):
            await ctx.tick()
            n += 1
            assert n < 500
        got.append(n)

    async def bench(ctx):
        ctx.set(core.o.ready, 1)
        await _put(ctx, core.i, EventKind.EOT)
        await until_eot(ctx)
        # Timestep 2: an event accepted right before the EOT costs the drain, two cycles more.
        await ctx.tick()
        await _put(ctx, core.i, EventKind.EVENT, 0, 1)
        await _put(ctx, core.i, EventKind.EOT)
        await until_eot(ctx)

    _sim(core, bench)
    n_out = net.info("pool").n_out
    assert got == [core.eot_latency, core.eot_latency + 2]
    if kind == "max":
        assert core.eot_latency == n_out + 7
    elif discharge == "parallel":
        assert core.eot_latency == n_out + 9          # the pipelined fire unit: 3 cycles


# -- interface --------------------------------------------------------------------------------

def test_pool_core_ports_and_memories():
    rom = _net("avg", (3, 6, 9), 3, T=2, conv=True, levels=4, threshold=5)
    info = rom.info("pool")
    core = PoolCore(layer=rom.layer("pool"), info=info, timesteps=2)
    assert core.inputs == (core.i,) and core.in_layouts == (core.in_layout,)
    assert (core.in_layout.index_width, core.in_layout.value_width) == (8, 2)   # 162, conv N=3
    assert (core.out_layout.index_width, core.out_layout.value_width) == (5, 3)  # 18, N=4
    assert PoolCore.memories(rom, "pool") == [
        MemorySpec("pmem", 18, info.width, False, "potentials"),
        MemorySpec("pool_map", 162, 5, True, "pool index map")]
    bits = _net("max", (2, 4, 8), 2, T=1, conv=False, in_bits=16)
    assert PoolCore.memories(bits, "pool") == [
        MemorySpec("pmem", 16, 17, False, "window maxima")]
    mcore = PoolCore(layer=bits.layer("pool"), info=bits.info("pool"), timesteps=1)
    assert (mcore.out_layout.index_width, mcore.out_layout.value_width) == (4, 16)
    assert PoolCore.memories(_net("avg", (2, 5, 3), 1, T=1, conv=False), "pool")[1:] == []
    # the joins' memories
    sew = random_network(3, kind="residual", join="sew", depth=1, max_neurons=8)
    jn = next(l.name for l in sew.layers if l.kind == "sew")
    assert SewJoin.memories(sew, jn) == []
    bar = random_network(3, kind="residual", join="barrier", depth=1, max_neurons=8)
    jb = next(l.name for l in bar.layers if l.kind == "barrier")
    bi = bar.info(jb)
    assert BarrierCore.memories(bar, jb) == [MemorySpec("pmem", bi.n_out, bi.width, False,
                                                        "potentials")]


def test_pool_core_validation():
    net = _net("avg", (1, 4, 4), 2, T=2, conv=False, levels=2, threshold=3, width=6)
    layer, info = net.layer("pool"), net.info("pool")
    cases = [
        (dict(layer=net.layer("ro")), TypeError,
         "layer must be a golden.pooling.MaxPool2d or AvgPool2d, not Dense"),
        (dict(info="info"), TypeError, "info must be a golden.ir.LayerInfo, not str"),
        (dict(timesteps=0), ValueError, "timesteps must be a positive integer, not 0"),
        (dict(discharge="fast"), ValueError,
         "discharge must be 'parallel' or 'serial', not 'fast'"),
        (dict(layer=dataclasses.replace(layer, v0=40)), ValueError,
         "layer 'pool': v0 (40) does not fit its potential width 6"),
    ]
    for kwargs, exc, msg in cases:
        args = dict(layer=layer, info=info, timesteps=2)
        args.update(kwargs)
        with pytest.raises(exc) as e:
            PoolCore(**args)
        assert str(e.value) == msg
    PoolCore.check(net, "pool")                 # fits: no error
    bad = net.replace(layers=(dataclasses.replace(layer, v0=-33), net.layers[1]))
    with pytest.raises(ValueError) as e:
        PoolCore.check(bad, "pool")
    assert str(e.value) == "layer 'pool': v0 (-33) does not fit its potential width 6"

"""Run a layer core or a network top in the Amaranth simulator (seeded gaps and backpressure)."""

from __future__ import annotations

import contextlib
import random

import numpy as np
from amaranth.hdl import Fragment
from amaranth.sim import Simulator

from hw.layout import COUNTER_STRIDE, COUNTERS, EventKind
from hw.layer import spram_load_words
from hw.network import (CTR_LATENCY, NetworkTop, check_supported, pack_pixels,
                        weight_load_words)

from .scoreboard import EOT, EVENT, RtlResult, is_sew, split_by_steps, split_timesteps
from .tb import CycleLimitError, stream_get, stream_put

__all__ = ["run_layer", "run_join", "run_network", "cycle_bound", "SimulationTimeout",
           "CLOCK_PERIOD"]


class SimulationTimeout(RuntimeError):
    """An image did not finish within the cycle budget (a deadlock, or a budget too small)."""


def cycle_bound(net, *, gap=0.0, stall=0.0, throttle=0.0):
    """A generous cycle budget per image: the cores' work done one after the other (no
    overlap), serial synapses and discharge, slowed down by the random gaps and stalls."""
    T = net.timesteps
    work = net.input.size + 16
    for layer in net.layers:
        info = net.info(layer.name)
        fan = int(layer.fanout_counts(info.in_shape).sum()) * len(info.streams)
        upd = fan * max(1, info.zmax_in_index) + info.n_in * len(info.streams)
        levels = 1 if layer.readout else max(1, info.zmax_out)
        work += T * (upd + info.n_out * (levels + 3) + 16)
    slow = (1 - min(gap, 0.95)) * (1 - min(stall, 0.95)) * (1 - min(throttle, 0.95))
    return int(2000 + 4 * work / slow)

CLOCK_PERIOD = 1e-8   # 100 MHz, only for waveforms


def _simulate(dut, testbenches, *, vcd=None, background=(), platform=None):
    # ``platform``: elaborate for it (e.g. flows.synth.FamilyPlatform("ecp5"): the queues in
    # distributed RAM, hw.credit), as synthesis for that target would.
    sim = Simulator(Fragment.get(dut, platform) if platform is not None else dut)
    sim.add_clock(CLOCK_PERIOD)
    for tb in background:
        sim.add_testbench(tb, background=True)
    for tb in testbenches:
        sim.add_testbench(tb)
    ctx = sim.write_vcd(vcd) if vcd else contextlib.nullcontext()
    with ctx:
        sim.run()


def load_words(core):
    """The ``wload`` words of a core with weights in SPRAM: ``[(addr, data)]`` of its layer's
    weights (:func:`hw.layer.spram_load_words`)."""
    return list(enumerate(spram_load_words(core.layer)))


def run_layer(core, tokens, *, n_eot, seed=0, gap=0.0, stall=0.0, vcd=None, max_cycles=None,
              loads=None):
    """Feed ``tokens`` (``[(kind, index, value)]``) to ``core`` and collect its output until
    ``n_eot`` EOT tokens came out.

    A core with a ``wload`` port (``weights="spram"``) first gets ``loads``
    (``[(addr, data)]``, default :func:`load_words`: its layer's weights), with the same
    random gaps, then the tokens.

    Returns
    -------
    dict
        ``tokens`` (output, ``(kind, index, value)``), ``counters`` (``{name: int}``),
        ``overflow`` (0/1), ``cycles`` (simulated cycles).
    """
    rng_in = random.Random(seed * 2 + 1)
    rng_out = random.Random(seed * 2 + 2)
    out = []
    res = {}
    cycle = [0]

    if loads is None and hasattr(core, "wload"):
        loads = load_words(core)

    async def producer(ctx):
        for addr, word in loads or ():
            await stream_put(ctx, core.wload, {"addr": addr, "data": word}, rng=rng_in,
                             gap=gap)
        for kind, index, value in tokens:
            await stream_put(ctx, core.i, {"kind": EventKind(kind), "index": index,
                                           "value": value}, rng=rng_in, gap=gap)

    async def clock(ctx):
        async for _ in ctx.tick():
            cycle[0] += 1
            if max_cycles is not None and cycle[0] > max_cycles:
                raise RuntimeError(f"layer simulation did not finish in {max_cycles} cycles")

    async def consumer(ctx):
        eots = 0
        while eots < n_eot:
            p = await stream_get(ctx, core.o, rng=rng_out, stall=stall)
            tok = (int(p.kind.value), int(p.index), int(p.value))
            if tok[0] == EOT:
                tok = (EOT, 0, 0)
                eots += 1
            out.append(tok)
        await ctx.tick().repeat(4)     # let the last counter updates land
        res["counters"] = {n: ctx.get(getattr(core.counters, n)) for n in COUNTERS}
        res["overflow"] = ctx.get(core.overflow)
        res["cycles"] = cycle[0]

    _simulate(core, [consumer], vcd=vcd, background=[producer, clock])
    res["tokens"] = out
    return res


def run_join(core, tokens0, tokens1, *, n_eot, seed=0, gap=0.0, stall=0.0, vcd=None,
             max_cycles=100_000):
    """Feed two token lists (``[(kind, index, value)]``) to the inputs ``i0``/``i1`` of a
    :class:`~hw.join.BarrierCore` or :class:`~hw.join.SewJoin`, each with its own random gaps,
    and collect its output (random stalls) until ``n_eot`` EOT tokens came out.

    Returns
    -------
    dict
        ``tokens``, ``counters``, ``overflow``, ``cycles``, as :func:`run_layer`.
    """
    rngs = [random.Random(seed * 3 + k) for k in range(3)]
    out = []
    res = {}
    cycle = [0]

    def producer(port, tokens, rng):
        async def tb(ctx):
            for kind, index, value in tokens:
                await stream_put(ctx, port, {"kind": EventKind(kind), "index": index,
                                             "value": value}, rng=rng, gap=gap)
        return tb

    async def consumer(ctx):
        eots = 0
        while eots < n_eot:
            try:
                p = await stream_get(ctx, core.o, rng=rngs[2], stall=stall,
                                     timeout=max(1, max_cycles - cycle[0]))
            except CycleLimitError:
                raise SimulationTimeout(f"join simulation did not finish in {max_cycles} "
                                        f"cycles (deadlock?)") from None
            tok = (int(p.kind.value), int(p.index), int(p.value))
            if tok[0] == EOT:
                tok = (EOT, 0, 0)
                eots += 1
            out.append(tok)
        await ctx.tick().repeat(4)
        res["counters"] = {n: ctx.get(getattr(core.counters, n)) for n in COUNTERS}
        res["overflow"] = ctx.get(core.overflow)
        res["cycles"] = cycle[0]

    async def clock(ctx):
        async for _ in ctx.tick():
            cycle[0] += 1

    _simulate(core, [consumer], vcd=vcd,
              background=[producer(core.i0, tokens0, rngs[0]),
                          producer(core.i1, tokens1, rngs[1]), clock])
    res["tokens"] = out
    return res


def run_network(net, x, *, seed=0, gap=0.0, stall=0.0, throttle=0.0, fifo_depth=None,
                discharge="parallel", synapse="mul", vcd=None, progress=None, top=None,
                max_cycles=None, weights="rom", loads=None, pixels_per_beat=1, watch=None,
                platform=None):
    """Run ``x`` (``[B, *input_shape]``) image by image through a :class:`NetworkTop`.

    After each image the counters and flags are read through ``ctr_addr``/``ctr_data`` and
    cleared with ``clear``, so they are per image. Internal tokens are observed on the
    ``tap_<k>`` monitor ports.

    Parameters
    ----------
    gap, stall : float
        Probability of an idle cycle before each pixel, of a stall before each result beat.
    throttle : float
        Probability, per cycle and per inter-core queue, that the queue offers nothing to its
        consumer (random backpressure on every edge; builds the top with ``stall_port=True``).
    max_cycles : int or None
        Cycle budget per image (default :func:`cycle_bound`); exceeding it raises
        :class:`SimulationTimeout` ("image 0: no result after N cycles (deadlock?)").
    weights : "rom", "spram" or dict
        Where the layers keep their weights (:func:`hw.network.weight_storage`; ignored with
        ``top``). A top with a ``wload`` port first gets ``loads`` (``[(layer, addr, data)]``,
        default :func:`hw.network.weight_load_words` for the top's own storage), with the
        pixels' random gaps; the load cycles are in ``extra["load_cycles"]``, not in
        ``cycles``.
    pixels_per_beat : int
        Pixels per beat of the top's ``pixels`` port (ignored with ``top``).
    watch : async function or None
        An extra background testbench ``watch(ctx)`` (a monitor of the test's own).
    platform : object or None
        Elaborate the top for this platform (its ``family``: ``"ecp5"`` builds the credit
        queues in distributed RAM, :mod:`hw.credit`), as synthesis for it does.

    Returns
    -------
    RtlResult
    """
    x = net.check_inputs(x)
    B = x.shape[0]
    T = net.timesteps
    if top is None:
        check_supported(net)      # before constructing: see hw.network.check_supported
    top = top or NetworkTop(net, fifo_depth=fifo_depth, discharge=discharge, synapse=synapse,
                            monitor=True, stall_port=throttle > 0, weights=weights,
                            pixels_per_beat=pixels_per_beat)
    if loads is None and hasattr(top, "wload"):
        loads = weight_load_words(net, {n: "spram" for n in top.wload_map})
    load_cycles = [0]
    if throttle > 0 and not hasattr(top, "stall"):
        raise ValueError("throttle needs a NetworkTop built with stall_port=True")
    if max_cycles is None:
        max_cycles = cycle_bound(net, gap=gap, stall=stall, throttle=throttle)
    rng_thr = random.Random(seed * 2 + 3)
    n_edges = len(top.edges) if throttle > 0 else 0
    L = len(net.layers)
    rng_in = random.Random(seed * 2 + 1)
    rng_out = random.Random(seed * 2 + 2)
    taps = [getattr(top, f"tap_{k}") for k in range(L)]
    streams = {layer.name: [] for layer in net.layers}
    busy_cycles = [0]
    all_cycles = [0]
    n_cls = top.n_classes

    readout = np.zeros((B, n_cls), dtype=np.int64)
    preds = np.zeros(B, dtype=np.int64)
    counters = {l.name: {c: np.zeros(B, dtype=np.int64) for c in COUNTERS} for l in net.layers}
    overflow = {l.name: np.zeros(B, dtype=np.int64) for l in net.layers}
    cycles = np.zeros(B, dtype=np.int64)
    # timesteps used per image (docs/early-exit.md): T unless the top has an early exit
    steps = np.full(B, T, dtype=np.int64)
    has_exit = hasattr(top, "timesteps_used")

    async def monitor(ctx):
        sampled = [top.busy] + [s for tap in taps for s in (tap.valid, tap.payload)]
        async for _, _, busy, *vals in ctx.tick().sample(*sampled):
            busy_cycles[0] += busy
            all_cycles[0] += 1
            if n_edges:
                bits = 0
                for e in range(n_edges):
                    if rng_thr.random() < throttle:
                        bits |= 1 << e
                ctx.set(top.stall, bits)
            for k, layer in enumerate(net.layers):
                if vals[2 * k]:
                    p = vals[2 * k + 1]
                    streams[layer.name].append((int(p.kind.value), int(p.index), int(p.value)))

    async def driver(ctx):
        if loads:
            t0 = all_cycles[0]
            for k, addr, word in loads:
                await stream_put(ctx, top.wload, {"layer": k, "addr": addr, "data": word},
                                 rng=rng_in, gap=gap, timeout=max_cycles)
            load_cycles[0] = all_cycles[0] - t0
        for b in range(B):
            if progress:
                progress(b, B)
            start = busy_cycles[0]
            deadline = all_cycles[0] + max_cycles

            def left():
                n = deadline - all_cycles[0]
                if n <= 0:
                    raise SimulationTimeout(f"image {b}: no result after {max_cycles} cycles "
                                            f"(deadlock?)")
                return n
            try:
                for v in pack_pixels(x[b].reshape(-1), net.input.in_bits,
                                     top.pixels_per_beat):
                    await stream_put(ctx, top.pixels, v, rng=rng_in, gap=gap,
                                     timeout=left())
                for c in range(n_cls):
                    p = await stream_get(ctx, top.result, rng=rng_out, stall=stall,
                                         timeout=left())
                    readout[b, int(p.index)] = int(p.potential)
                    if bool(p.last) != (c == n_cls - 1):
                        raise AssertionError(f"image {b}: result beat {c} has last={p.last}")
                while ctx.get(top.busy):
                    left()
                    await ctx.tick()
            except CycleLimitError:
                raise SimulationTimeout(f"image {b}: no result after {max_cycles} cycles "
                                        f"(deadlock?)") from None
            await ctx.tick()
            cycles[b] = busy_cycles[0] - start
            preds[b] = ctx.get(top.prediction)
            if has_exit:
                steps[b] = ctx.get(top.timesteps_used)
            ovf = ctx.get(top.overflow)
            for k, layer in enumerate(net.layers):
                overflow[layer.name][b] = (ovf >> k) & 1
                for c, name in enumerate(COUNTERS):
                    ctx.set(top.ctr_addr, k * COUNTER_STRIDE + c)
                    await ctx.tick().repeat(CTR_LATENCY)
                    counters[layer.name][name][b] = ctx.get(top.ctr_data)
            ctx.set(top.clear, 1)
            await ctx.tick()
            ctx.set(top.clear, 0)
        if progress:
            progress(B, B)

    _simulate(top, [driver], vcd=vcd, background=[monitor] + ([watch] if watch else []),
              platform=platform)
    extra = {"sim_cycles": all_cycles[0], "load_cycles": load_cycles[0]}
    if has_exit:
        extra["timesteps"] = steps
    return RtlResult(events=_events_by_image(net, streams, steps if has_exit else None),
                     readout=readout, predictions=preds,
                     counters=counters, overflow=overflow, cycles=cycles, extra=extra)


def _events_by_image(net, streams, steps=None):
    """Monitor streams → ``{layer: [B][T] [(j, z)]}`` for the spiking layers (``steps``: the
    timesteps each image used, with an early exit)."""
    out = {}
    for layer in net.layers:
        if layer.readout:
            continue
        if steps is None:
            images, rest = split_timesteps(streams[layer.name], net.timesteps)
        else:
            images, rest = split_by_steps(streams[layer.name], steps, net.timesteps)
        if rest:
            raise AssertionError(f"layer '{layer.name}': {len(rest)} tokens after the last EOT")
        for img in images:
            for ts in img:
                for kind, i, v in ts:
                    if kind != EVENT:
                        raise AssertionError(f"layer '{layer.name}' sent a token of kind {kind}")
        out[layer.name] = [[[(i, v) for _, i, v in ts] for ts in img] for img in images]
    return out


"""Throughput of a layer core in the Amaranth simulator (numbers only, no timed asserts).

1. Integrate phase: synaptic updates per cycle of the address generator, from its first to its
   last update of each timestep (target >= 0.98; 1.0 is the pipeline's peak), with events
   arriving back to back (no input gaps, no output stalls).
2. Whole inference: the core's own ``cycles`` counter against the ideal (Σ updates + T·N_out) / L
   (one cycle per word of L updates and one per word of L neurons swept).
3. Lanes (docs/lanes.md): dense 64->32 with L = 1, 2, 4, 8, 16, 32 lanes, every event with its
   full fan-out: the integrate throughput is L updates per cycle at best (goal >= 0.95·L).

Run: ``python benchmarks/bench_layer.py`` (``make bench`` runs every benchmark).
"""

import os
import sys
import time

import numpy as np
from amaranth.sim import Simulator

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))

from golden.ir import Conv2d, Dense, InputSpec, Network  # noqa: E402
from golden.reference import run  # noqa: E402
from hw.layer import LayerCore  # noqa: E402
from hw.layout import EventKind  # noqa: E402
from sim.scoreboard import layer_input_tokens  # noqa: E402
from sim.tb import stream_get, stream_put  # noqa: E402


def dense(n_in, n_out, T, seed=0):
    rng = np.random.default_rng(seed)
    fc = Dense(name="fc", inputs=("input",), threshold=200, levels=4,
               weight=rng.integers(-7, 8, size=(n_in, n_out)), bias=np.zeros(n_out, np.int64))
    ro = Dense(name="ro", inputs=("fc",), threshold=1, levels=1,
               weight=np.ones((n_out, 1), np.int64), bias=np.zeros(1, np.int64), readout=True)
    return Network(input=InputSpec(shape=(n_in,), in_bits=4), timesteps=T, layers=(fc, ro))


def conv(c, hw, k, s, p, co, T, seed=0):
    rng = np.random.default_rng(seed)
    cv = Conv2d(name="fc", inputs=("input",), threshold=200, levels=4,
                weight=rng.integers(-7, 8, size=(c, k, k, co)), bias=np.zeros(co, np.int64),
                stride=s, padding=p)
    ho = (hw + 2 * p - k) // s + 1
    ro = Dense(name="ro", inputs=("fc",), threshold=1, levels=1,
               weight=np.ones((co * ho * ho, 1), np.int64), bias=np.zeros(1, np.int64),
               readout=True)
    return Network(input=InputSpec(shape=(c, hw, hw), in_bits=4), timesteps=T,
                   layers=(cv, ro))


def measure(net, label, **opts):
    x = np.full((1,) + net.input.shape, 9, dtype=np.int64)       # every input fires
    golden = run(net, x)
    tokens = layer_input_tokens(net, "fc", x, golden)
    core = LayerCore.from_network(net, "fc", **opts)
    T = net.timesteps
    stats = {"spans": [], "updates": 0}
    out = {}

    async def producer(ctx):
        for kind, index, value in tokens:
            await stream_put(ctx, core.i, {"kind": EventKind(kind), "index": index,
                                           "value": value})

    async def probe(ctx):
        first = last = None
        cyc = 0
        g_adv, integ = core.probe["g_adv"], core.probe["integrating"]
        async for _, _, adv, ph in ctx.tick().sample(g_adv, integ):
            cyc += 1
            if adv:
                stats["updates"] += 1
                first = cyc if first is None else first
                last = cyc
            if not ph and first is not None:
                stats["spans"].append(last - first + 1)
                first = None

    async def consumer(ctx):
        eots = 0
        while eots < T:
            p = await stream_get(ctx, core.o)
            eots += p.kind == EventKind.EOT
        await ctx.tick().repeat(3)
        out["cycles"] = ctx.get(core.counters.cycles)
        out["syn"] = ctx.get(core.counters.syn_updates)

    sim = Simulator(core)
    sim.add_clock(1e-8)
    sim.add_testbench(producer, background=True)
    sim.add_testbench(probe, background=True)
    sim.add_testbench(consumer)
    t0 = time.monotonic()
    sim.run()
    wall = time.monotonic() - t0
    info = net.info("fc")
    totals = golden.totals("fc")
    L = net.layer("fc").lanes                  # g_adv issues one word of L updates
    stats["updates"] *= L
    assert out["syn"] == totals["syn_updates"] == stats["updates"]
    thr = stats["updates"] / max(1, sum(stats["spans"]))
    ideal = (totals["syn_updates"] + T * info.n_out) // L
    print(f"{label:<44} updates {stats['updates']:>6}  integrate {thr:6.3f} upd/cycle  "
          f"inference {out['cycles']:>6} cycles  ideal {ideal:>6}  ratio {out['cycles'] / ideal:5.3f}"
          f"  ({wall:.1f} s)")
    return thr


def main():
    print("== layer core: integrate throughput and inference cycles (Amaranth simulator)")
    cases = [
        ("dense 64->1 (one update per event)", dense(64, 1, 2), {}),
        ("dense 64->3", dense(64, 3, 2), {}),
        ("dense 64->32", dense(64, 32, 2), {}),
        ("dense 32->32, T=4", dense(32, 32, 4), {}),
        ("conv 2x8x8 k3 s1 p1 ->4", conv(2, 8, 3, 1, 1, 4, 2), {}),
        ("conv 2x8x8 k3 s2 p1 ->4", conv(2, 8, 3, 2, 1, 4, 2), {}),
        ("conv 2x8x8 k1 s2 p0 ->4 (3/4 empty fan-outs)", conv(2, 8, 1, 2, 0, 4, 2), {}),
        ("dense 32->16, discharge=serial", dense(32, 16, 2), {"discharge": "serial"}),
        ("dense 16->8, synapse=serial (z=9 adds)", dense(16, 8, 2), {"synapse": "serial"}),
    ]
    for label, net, opts in cases:
        measure(net, label, **opts)
    print("== lanes: dense 64->32, T=2, full fan-out")
    for lanes in (1, 2, 4, 8, 16, 32):
        net = dense(64, 32, 2).with_lanes({"fc": lanes})
        thr = measure(net, f"dense 64->32, lanes={lanes}")
        print(f"{'':<44} {thr / lanes:6.3f} of L updates per cycle")


if __name__ == "__main__":
    main()

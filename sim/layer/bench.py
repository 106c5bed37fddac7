"""cocotb bench of one exported layer core: driver, monitor, scoreboard.

Launched by :func:`sim.cocotb_run.run_layer_cocotb` on Icarus or Verilator (``MLSNN_BENCH``
names the JSON config): feeds the input token words on ``i`` (random gaps), takes the output on ``o`` (random stalls)
until ``n_eot`` EOT tokens came out, then reads the ``counters`` vector (ten 32-bit counters,
``hw.layout.COUNTERS`` order, LSB first) and ``overflow``. Observations go to ``config["out"]``;
with ``config["expected"]`` the bench compares tokens (per image and timestep) and the golden
counters and fails on the first mismatch.
"""

import random

import cocotb
from cocotb.clock import Clock
from cocotb.triggers import FallingEdge, ReadOnly, RisingEdge

from golden.counters import COUNTER_WIDTH
from hw.layout import COUNTERS, EventLayout
from sim.cocotb_util import Sink, Source, load_config, uint, write_json
from sim.scoreboard import EOT, GOLDEN_COUNTERS, split_timesteps


@cocotb.test()
async def layer_bench(dut):
    cfg = load_config()
    lay = cfg["out_layout"]
    layout = EventLayout(lay["index_width"], lay["value_width"], signed_value=lay["signed"])
    Clock(dut.clk, 10, unit="ns").start()
    dut.rst.value = 1
    dut.clear.value = 0
    src = Source(dut, "i", cfg["words"], rng=random.Random(cfg["seed"] * 2 + 1), gap=cfg["gap"])
    sink = Sink(dut, "o", rng=random.Random(cfg["seed"] * 2 + 2), stall=cfg["stall"])
    for _ in range(2):
        await RisingEdge(dut.clk)
    await FallingEdge(dut.clk)
    dut.rst.value = 0
    out = []
    eots = 0
    cycles = 0
    while eots < cfg["n_eot"]:
        await FallingEdge(dut.clk)
        src.drive()
        sink.drive()
        await ReadOnly()
        cycles += 1
        src.sample()
        w = sink.sample()
        if w is not None:
            kind, index, value = layout.unpack(w)
            if kind == EOT:
                out.append((EOT, 0, 0))
                eots += 1
            else:
                out.append((kind, index, value))
        assert cycles <= cfg["max_cycles"], f"no EOT {eots + 1} after {cycles} cycles"
    sink.enabled = False
    for _ in range(4):
        await FallingEdge(dut.clk)
        sink.drive()
    await ReadOnly()
    vec = uint(dut.counters)
    mask = (1 << COUNTER_WIDTH) - 1
    counters = {c: (vec >> (COUNTER_WIDTH * k)) & mask for k, c in enumerate(COUNTERS)}
    doc = {"tokens": out, "counters": counters, "overflow": uint(dut.overflow),
           "cycles": cycles}
    msgs = []
    exp = cfg.get("expected")
    if exp:
        images, rest = split_timesteps(out, cfg["timesteps"])
        if rest:
            msgs.append(f"{len(rest)} tokens after the last EOT")
        for b, img in enumerate(exp["images"]):
            for t, want in enumerate(img):
                got = images[b][t] if b < len(images) else None
                if got != [tuple(e) for e in want]:
                    msgs.append(f"image {b}, timestep {t + 1}: RTL {got}, golden {want}")
        for c in GOLDEN_COUNTERS:
            if counters[c] != exp["counters"][c]:
                msgs.append(f"counter {c}: RTL {counters[c]}, golden {exp['counters'][c]}")
        doc["mismatches"] = msgs[:20]
    write_json(cfg["out"], doc)
    assert not msgs, msgs[0]

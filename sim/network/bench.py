"""cocotb bench of the exported network top: driver, monitor, scoreboard.

Launched by :func:`sim.cocotb_run.run_network_cocotb` on Icarus or Verilator (``MLSNN_BENCH``
names the JSON config the launcher wrote): feeds every image through ``pixels`` (random gaps), takes the ``result`` beats
(random stalls), records every token on the ``tap_<k>`` monitor ports, reads all counters through
``ctr_addr``/``ctr_data`` after each image and clears them. The observations go to
``config["out"]`` (an :class:`sim.scoreboard.RtlResult` as JSON); with ``config["expected"]`` the
bench also compares them with the golden model and fails on the first mismatch.
"""

import json
import random

import cocotb
from cocotb.clock import Clock
from cocotb.triggers import FallingEdge, ReadOnly, RisingEdge

from hw.layout import COUNTER_STRIDE, COUNTERS, CTR_LATENCY, EventLayout, ResultLayout
from sim.cocotb_util import Sink, Source, load_config, uint, write_json
from sim.scoreboard import (EVENT, Expected, RtlResult, compare_expected, split_by_steps,
                             split_timesteps)


def _event_layout(lay):
    return EventLayout(lay["index_width"], lay["value_width"], signed_value=lay["signed"])


@cocotb.test()
async def network_bench(dut):
    cfg = load_config()
    T = cfg["timesteps"]
    layers = cfg["layers"]
    L = len(layers)
    n_cls = cfg["n_classes"]
    ri, rp = cfg["result"]["index_width"], cfg["result"]["potential_width"]
    images = cfg["images"]
    B = len(images)
    Clock(dut.clk, 10, unit="ns").start()
    dut.rst.value = 1
    dut.clear.value = 0
    dut.ctr_addr.value = 0
    src = Source(dut, "pixels", [], rng=random.Random(cfg["seed"] * 2 + 1), gap=cfg["gap"])
    sink = Sink(dut, "result", rng=random.Random(cfg["seed"] * 2 + 2), stall=cfg["stall"])
    for _ in range(2):
        await RisingEdge(dut.clk)
    await FallingEdge(dut.clk)
    dut.rst.value = 0
    if cfg.get("wload"):
        # SPRAM weight banks: load every word through wload before the first image.
        wl = Source(dut, "wload", cfg["wload"], rng=random.Random(cfg["seed"] * 2 + 3),
                    gap=cfg["gap"])
        n = 0
        while not wl.done:
            await FallingEdge(dut.clk)
            wl.drive()
            await ReadOnly()
            wl.sample()
            n += 1
            assert n <= 4 * len(cfg["wload"]) + 100, \
                f"weight load: {wl.pos} of {len(cfg['wload'])} words taken after {n} cycles"
        await FallingEdge(dut.clk)
        wl.valid.value = 0
    taps = [(getattr(dut, f"tap_{k}__valid"), getattr(dut, f"tap_{k}__payload"),
             _event_layout(cfg["taps"][k])) for k in range(L)]
    result = ResultLayout(ri, rp)
    streams = [[] for _ in range(L)]
    readout, preds, cycles = [], [], []
    steps = []                      # timesteps used per image (early exit: docs/early-exit.md)
    early_exit = bool(cfg.get("early_exit"))
    counters = {name: {c: [] for c in COUNTERS} for name, _ in layers}
    overflow = {name: [] for name, _ in layers}

    sim_cycles = 0
    for b, img in enumerate(images):
        src.extend(img)
        beats = {}
        n_cycles = 0
        while True:
            await FallingEdge(dut.clk)
            src.drive()
            sink.drive()
            await ReadOnly()
            busy = int(dut.busy.value)
            n_cycles += busy
            sim_cycles += 1
            src.sample()
            w = sink.sample()
            if w is not None:
                index, pot, last = result.unpack(w)
                assert last == int(index == n_cls - 1), f"image {b}: beat {index} last={last}"
                beats[index] = pot
            for k, (valid, payload, lay) in enumerate(taps):
                if int(valid.value):
                    streams[k].append(lay.unpack(uint(payload)))
            if src.done and not busy and len(beats) == n_cls:
                break
            assert n_cycles <= cfg["max_cycles"], \
                f"image {b}: no result after {cfg['max_cycles']} cycles (deadlock?)"
        cycles.append(n_cycles)
        readout.append([beats[j] for j in range(n_cls)])
        await FallingEdge(dut.clk)
        await ReadOnly()
        preds.append(uint(dut.prediction))
        steps.append(uint(dut.timesteps_used) if early_exit else T)
        ovf = uint(dut.overflow)
        for k, (name, _) in enumerate(layers):
            overflow[name].append((ovf >> k) & 1)
            for c, cname in enumerate(COUNTERS):
                sim_cycles += 1 + CTR_LATENCY
                await FallingEdge(dut.clk)
                dut.ctr_addr.value = k * COUNTER_STRIDE + c
                for _ in range(CTR_LATENCY):        # ctr_data is registered twice
                    await RisingEdge(dut.clk)
                await ReadOnly()
                counters[name][cname].append(uint(dut.ctr_data))
        await FallingEdge(dut.clk)
        dut.clear.value = 1
        await FallingEdge(dut.clk)
        dut.clear.value = 0
        if cfg.get("progress"):
            with open(cfg["progress"], "w") as f:
                f.write(f"{b + 1} {B}\n")

    events = {}
    for k, (name, ro) in enumerate(layers):
        if ro:
            continue
        imgs, rest = (split_by_steps(streams[k], steps, T) if early_exit
                      else split_timesteps(streams[k], T))
        assert not rest, f"layer '{name}': {len(rest)} tokens after the last EOT"
        assert all(kind == EVENT for img in imgs for ts in img for kind, _, _ in ts), \
            f"layer '{name}' sent a token that is not an EVENT"
        events[name] = [[[(i, v) for _, i, v in ts] for ts in img] for img in imgs]
    rtl = RtlResult(events=events, readout=readout, predictions=preds, counters=counters,
                    overflow=overflow, cycles=cycles)
    doc = rtl.to_json()
    doc["sim_cycles"] = sim_cycles + 3 * B
    doc["timesteps_used"] = steps
    msgs = []
    if cfg.get("expected"):
        with open(cfg["expected"]) as f:
            exp = Expected.from_json(json.load(f))
        msgs = compare_expected(exp, rtl)
        doc["mismatches"] = msgs[:20]
    write_json(cfg["out"], doc)
    assert not msgs, msgs[0]

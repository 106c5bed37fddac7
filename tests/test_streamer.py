# amaranth: UnusedElaboratable=no
"""The event-driven input streamer (hw.network.InputStreamer) and the pixels port of the
network top with several pixels per beat; the argmax at one result beat per cycle."""

import json
import random

import numpy as np
import pytest
from amaranth.sim import Simulator

from golden.fixtures import random_inputs, random_network
from golden import ir
from golden.ir import Dense, InputSpec, Network
from golden.reference import run
from hw.layout import EventKind
from hw.network import InputStreamer, NetworkTop, pack_pixels
from sim.amaranth_run import run_network
from sim.scoreboard import compare
from sim.tb import stream_put

EVENT, EOT = EventKind.EVENT.value, EventKind.EOT.value


def _stream(n, bits, T, P, images, *, stall=0.0, gap=0.0, seed=0):
    """Feed ``images`` (lists of n pixels) through an InputStreamer; return the tokens sent
    ``(kind, index, value, cycle)`` and the cycle of each image's first accepted beat."""
    dut = InputStreamer(n_in=n, in_bits=bits, timesteps=T, pixels_per_beat=P)
    out, starts, cycle = [], [], [0]
    rng = random.Random(seed)

    async def driver(ctx):
        ctx.set(dut.enable, 1)
        for img in images:
            for beat in pack_pixels(img, bits, P):
                await stream_put(ctx, dut.pixels, beat, rng=rng, gap=gap)
            while ctx.get(dut.busy):
                await ctx.tick()

    async def monitor(ctx):
        nb = -(-n // P)
        beats = 0
        async for _, _, v, r, p, pv, pr in ctx.tick().sample(
                dut.o.valid, dut.o.ready, dut.o.payload, dut.pixels.valid, dut.pixels.ready):
            cycle[0] += 1
            if pv and pr:
                if beats % nb == 0:
                    starts.append(cycle[0] - 1)
                beats += 1
            if v and r:
                out.append((p.kind.value, int(p.index), int(p.value), cycle[0] - 1))
            ctx.set(dut.o.ready, int(rng.random() >= stall))

    sim = Simulator(dut)
    sim.add_clock(1e-8)
    sim.add_testbench(driver)
    sim.add_testbench(monitor, background=True)
    sim.run()
    return out, starts


def _expected(images, T):
    toks = []
    for img in images:
        for _ in range(T):
            toks += [(EVENT, i, v) for i, v in enumerate(img) if v]
            toks.append((EOT, 0, 0))
    return toks


def _configs():
    rng = random.Random(7)
    cases = [(1, 1, 1, 1, 1.0), (1, 3, 3, 1, 0.0), (5, 2, 2, 5, 0.0), (7, 4, 3, 3, 1.0),
             (16, 8, 4, 16, 0.5), (13, 3, 2, 4, 0.3)]          # edge cases first
    while len(cases) < 30:
        n = rng.choice([2, 3, 5, 8, 13, 20])
        cases.append((n, rng.choice([1, 3, 8]), rng.choice([1, 2, 3, 4]), rng.randint(1, n),
                      rng.choice([0.0, 0.1, 0.5, 1.0])))
    return cases


@pytest.mark.parametrize("n,bits,T,P,density", _configs())
def test_streamer_emits_the_events_of_every_timestep(n, bits, T, P, density):
    rng = random.Random(n * 1000 + bits * 100 + T * 10 + P)
    images = [[rng.randint(1, (1 << bits) - 1) if rng.random() < density else 0
               for _ in range(n)] for _ in range(3)]
    images.append([0] * n)                       # an empty image: T EOTs
    got, _ = _stream(n, bits, T, P, images, stall=0.4, gap=0.3, seed=P)
    norm = [(k, i, v) if k == EVENT else (k, 0, 0) for k, i, v, _ in got]
    assert norm == _expected(images, T)


@pytest.mark.parametrize("n,bits,T,P", [(12, 4, 1, 1), (12, 4, 3, 1), (12, 4, 2, 4),
                                        (12, 4, 4, 12), (10, 2, 2, 3)])
def test_streamer_cycles_follow_the_stated_formula(n, bits, T, P):
    """Last slot issued Σ_b max(1, e_b) + 1 + (T-1)(E+1) cycles after the first beat's
    handshake, and out LATENCY cycles later (no gaps, no stalls)."""
    rng = random.Random(n + T + P)
    images = [[rng.randint(1, (1 << bits) - 1) if rng.random() < d else 0 for _ in range(n)]
              for d in (0.0, 0.3, 1.0)]
    got, starts = _stream(n, bits, T, P, images)
    ends = [c for k, _, _, c in got if k == EOT][T - 1::T]
    for img, start, end in zip(images, starts, ends):
        beats = [img[b:b + P] for b in range(0, n, P)]
        E = sum(1 for v in img if v)
        slots = sum(max(1, sum(1 for v in b if v)) for b in beats) + 1 + (T - 1) * (E + 1)
        assert end - start == slots + InputStreamer.LATENCY


def test_pack_pixels_and_bad_pixels_per_beat():
    assert pack_pixels([1, 2, 3], 4, 2) == [1 | 2 << 4, 3]
    assert pack_pixels([5, 0], 3, 1) == [5, 0]
    with pytest.raises(ValueError, match="must not exceed the input size"):
        InputStreamer(n_in=4, in_bits=2, timesteps=1, pixels_per_beat=5)
    net = random_network(3301, kind="dense", max_neurons=8, depth=1)
    with pytest.raises(ValueError, match="pixels_per_beat"):
        NetworkTop(net, pixels_per_beat=0)


@pytest.mark.parametrize("seed,kind,P", [(0, "dense", 4), (1, "conv", 0), (2, "dense", -1)])
def test_network_with_pixel_beats_matches_golden(seed, kind, P):
    """P pixels per beat (0: one beat per image; -1: n_in - 1, a short last beat)."""
    net = random_network(3300 + seed, kind=kind, timesteps=[1, 2, 3][seed], max_neurons=12)
    n = net.input.size
    P = {0: n, -1: max(1, n - 1)}.get(P, min(P, n))
    x = random_inputs(net, 3, seed=seed)
    x[0] = 0                                             # an empty image
    golden = run(net, x)
    rtl = run_network(net, x, seed=seed, gap=0.3, stall=0.3, pixels_per_beat=P)
    assert compare(net, golden, rtl) == []
    assert rtl.predictions.tolist() == golden.predictions.tolist()


def test_result_beats_one_per_cycle_and_argmax_ties():
    """A readout of 6 classes whose potentials tie and rise and fall: the top takes one result
    beat per cycle (no stall) and its prediction is golden's (lowest index of the maximum)."""
    w = np.array([[3, 5, 5, -2, 5, 1], [1, 0, 0, 4, 0, 6]], dtype=np.int64)
    ro = Dense(name="ro", inputs=("input",), threshold=1, levels=1, weight=w,
               bias=np.zeros(6, np.int64), readout=True)
    net = Network(input=InputSpec(shape=(2,), in_bits=3), timesteps=1, layers=(ro,))
    x = np.array([[1, 0], [0, 1], [2, 2], [0, 0], [7, 3], [1, 1]])
    golden = run(net, x)
    top = NetworkTop(net, monitor=True)
    beats = []

    async def watch(ctx):
        n = 0
        async for _, _, v, r in ctx.tick().sample(top.result.valid, top.result.ready):
            n += 1
            if v and r:
                beats.append(n)
    rtl = run_network(net, x, top=top, watch=watch)
    assert rtl.predictions.tolist() == golden.predictions.tolist()
    runs = [beats[k * 6:(k + 1) * 6] for k in range(len(x))]
    assert all(np.diff(r).tolist() == [1] * 5 for r in runs), runs


@pytest.mark.cocotb
def test_verilog_with_pixel_beats_matches_golden(tmp_path):
    """The exported Verilog under cocotb/Icarus, pixels packed 5 per beat (a short last beat)."""
    from sim.icarus_run import run_network_icarus
    net = random_network(3310, kind="dense", timesteps=2, max_neurons=12, depth=1)
    x = random_inputs(net, 2, seed=3)
    golden = run(net, x)
    rtl = run_network_icarus(net, x, seed=1, gap=0.3, stall=0.3, golden=golden,
                             build_dir=str(tmp_path), pixels_per_beat=5)
    assert rtl.extra["mismatches"] == []
    assert compare(net, golden, rtl) == []


def test_cli_pixels_per_beat_and_bad_values(tmp_path, capsys):
    from flows.cli import main
    d = tmp_path / "net"
    assert main(["random-network", "--seed", "4201", "--kind", "dense", "--max-neurons", "12",
                 "--batch", "2", "-o", str(d), "--json"]) == 0
    n = int(np.prod(json.loads(capsys.readouterr().out)["input_shape"]))
    rc = main(["simulate", "--ir", str(d), "--inputs", str(d / "inputs.npz"), "--sim",
               "amaranth", "--pixels-per-beat", str(n), "--json"])
    out = capsys.readouterr().out
    assert rc == 0 and json.loads(out)["match"] is True, out
    assert main(["verilog", "--ir", str(d), "--pixels-per-beat", "3", "-o",
                 str(tmp_path / "p.v"), "--json"]) == 0
    ports = json.loads(capsys.readouterr().out)["ports"]
    bits = ir.load(str(d)).input.in_bits
    assert any(p.endswith("pixels__payload") and f"[{3 * bits - 1}:0]" in p for p in ports), ports
    for cmd in ("verilog", "simulate", "synth"):
        for bad in ("0", str(n + 1)):
            extra = {"verilog": ["-o", str(tmp_path / "t.v")],
                     "simulate": ["--inputs", str(d / "inputs.npz")],
                     "synth": ["--target", "ice40-up5k"]}[cmd]
            assert main([cmd, "--ir", str(d), "--pixels-per-beat", bad, *extra]) != 0
            err = capsys.readouterr().err.strip().splitlines()
            assert err == [f"mlsnn {cmd}: error: --pixels-per-beat must be in 1..{n} (the input "
                           f"size), not {bad}"], err

# amaranth: UnusedElaboratable=no
"""Weights in iCE40 SPRAM (hw.memory.SpramBank, LayerCore/NetworkTop weights="spram"): the bank
against a Python model, cores and tops loaded at run time bit-exact against the golden model,
exact counters, and the SB_SPRAM256KA cells in the synthesized netlist."""

import random

import numpy as np
import pytest
from amaranth.hdl import Fragment
from amaranth.sim import Simulator

from golden.errors import MlsnnError
from golden.fixtures import random_inputs, random_network
from golden.ir import Dense, InputSpec, Network
from golden.reference import run
from hw.layer import LayerCore
from hw.memory import SpramBank, pack_words, spram_geometry
from hw.network import NetworkTop, weight_load_words, weight_storage
from sim.amaranth_run import run_network
from sim.scoreboard import compare

from test_hw_layer import check_layer


# -- the bank alone ---------------------------------------------------------------------------

def test_geometry_and_packing():
    assert spram_geometry(8, 100352) == (2, 8, 1, 50176, 4)
    assert spram_geometry(4, 10) == (4, 4, 1, 3, 1)
    assert spram_geometry(5, 3) == (2, 8, 1, 2, 1)
    assert spram_geometry(16, 16385) == (1, 16, 1, 16385, 2)
    assert spram_geometry(20, 5) == (1, 16, 2, 5, 1)
    assert pack_words([1, -1, -128, 127, 5], 8) == [0xFF01, 0x7F80, 0x0005]
    assert pack_words([1, -1, 7, -8, 2], 4) == [0x87F1, 0x0002]
    with pytest.raises(ValueError, match="weight 8 does not fit 4 signed bits"):
        pack_words([8], 4)


@pytest.mark.parametrize("width,depth", [(8, 33000), (4, 70), (3, 9), (12, 20), (20, 7)])
def test_bank_random_reads_writes(width, depth):
    """Random loads and reads against a Python model: packed slots, two cell rows (8 x 33000:
    16500 words), held data while rd_en is low, the counters."""
    dut = SpramBank(width=width, depth=depth)
    rng = random.Random(width * 1000 + depth)
    lo, hi = -(1 << (width - 1)), (1 << (width - 1)) - 1
    model = [rng.randint(lo, hi) for _ in range(depth)]
    words = pack_words(model, width)
    got = {"reads": 0, "writes": 0}

    async def tb(ctx):
        for a, w in enumerate(words):
            ctx.set(dut.wr_addr, a)
            ctx.set(dut.wr_data, w)
            ctx.set(dut.wr_en, 1)
            await ctx.tick()
        ctx.set(dut.wr_en, 0)
        n_reads = 0
        last = None
        for _ in range(300):
            op = rng.random()
            if op < 0.15:               # rewrite one word (then read before relying on data)
                a = rng.randrange(len(words))
                pack = spram_geometry(width, depth)[0]
                for s in range(pack):
                    if a * pack + s < depth:
                        model[a * pack + s] = rng.randint(lo, hi)
                words[a] = pack_words(model[a * pack:(a + 1) * pack], width)[0]
                ctx.set(dut.wr_addr, a)
                ctx.set(dut.wr_data, words[a])
                ctx.set(dut.wr_en, 1)
                await ctx.tick()
                ctx.set(dut.wr_en, 0)
                last = None
            elif op < 0.7:
                a = rng.randrange(depth)
                ctx.set(dut.rd_addr, a)
                ctx.set(dut.rd_en, 1)
                await ctx.tick()
                ctx.set(dut.rd_en, 0)
                n_reads += 1
                last = a
                assert ctx.get(dut.rd_data) == model[a]
            else:                       # idle: the data are held
                ctx.set(dut.rd_addr, rng.randrange(depth))
                await ctx.tick()
                if last is not None:
                    assert ctx.get(dut.rd_data) == model[last]
        await ctx.tick()
        got["reads"], got["writes"] = ctx.get(dut.reads), ctx.get(dut.writes)
        got["n_reads"] = n_reads

    sim = Simulator(dut)
    sim.add_clock(1e-8)
    sim.add_testbench(tb)
    sim.run()
    assert got["reads"] == got["n_reads"]
    assert got["writes"] >= len(words)


# -- a layer core -------------------------------------------------------------------------------

@pytest.mark.parametrize("seed,kind", [(i, ["dense", "conv"][i % 2]) for i in range(8)])
def test_layer_core_spram_matches_golden(seed, kind):
    """Loaded through wload (random gaps), then run with gaps and backpressure: tokens and
    every golden counter (w_rd included) exact, as with the ROM."""
    net = random_network(3000 + seed, kind=kind, levels=4, timesteps=2, max_neurons=16)
    x = random_inputs(net, 2, seed=seed)
    golden = run(net, x)
    for layer in net.layers:
        rom = check_layer(net, layer.name, x, seed=seed, golden=golden)
        spram = check_layer(net, layer.name, x, seed=seed, golden=golden, weights="spram")
        assert spram["counters"]["w_rd"] == golden.totals(layer.name)["w_rd"]
        assert spram["counters"]["w_rd"] == rom["counters"]["w_rd"]


def test_weights_come_from_the_load():
    """Without the load (the bank's model starts at zero) the same core sends other tokens."""
    from sim.amaranth_run import run_layer
    from sim.scoreboard import layer_input_tokens
    net = random_network(3000, kind="dense", levels=4, timesteps=2, max_neurons=16)
    x = random_inputs(net, 2, seed=0)
    golden = run(net, x)
    name = net.layers[0].name
    toks = layer_input_tokens(net, name, x, golden)
    full = run_layer(LayerCore.from_network(net, name, weights="spram"), toks, n_eot=4)
    none = run_layer(LayerCore.from_network(net, name, weights="spram"), toks, n_eot=4,
                     loads=[])
    assert full["tokens"] != none["tokens"]
    assert full["counters"]["w_rd"] == none["counters"]["w_rd"] == golden.totals(name)["w_rd"]


def test_wload_held_during_inference():
    """A word offered while an inference is in the core is held (ready low) until its last
    EOT is out, then written."""
    net = random_network(3100, kind="dense", levels=2, timesteps=1, max_neurons=8)
    name = net.layers[0].name
    core = LayerCore.from_network(net, name, weights="spram")
    seen = {}

    async def tb(ctx):
        ctx.set(core.o.ready, 1)
        assert ctx.get(core.wload.ready) == 1
        ctx.set(core.i.payload, {"kind": 1, "index": 0, "value": 0})   # EOT: an inference
        ctx.set(core.i.valid, 1)
        await ctx.tick()
        ctx.set(core.i.valid, 0)
        ctx.set(core.wload.payload, {"addr": 0, "data": 0})
        ctx.set(core.wload.valid, 1)
        held = 0
        eot_at = None
        for c in range(200):
            _, _, ready, ov, okind = await ctx.tick().sample(core.wload.ready, core.o.valid,
                                                             core.o.payload.kind)
            if ov and okind.value == 1 and eot_at is None:
                eot_at = c
            if ready:
                break
            held += 1
        seen["held"], seen["eot_at"] = held, eot_at

    sim = Simulator(core)
    sim.add_clock(1e-8)
    sim.add_testbench(tb)
    sim.run()
    # ready (a register) comes back two cycles after the last EOT's handshake
    assert seen["eot_at"] is not None
    assert seen["held"] == seen["eot_at"] + 2


def test_validation_messages():
    net = random_network(3200, kind="dense", levels=2, timesteps=1, max_neurons=8)
    with pytest.raises(ValueError,
                       match="^weights must be 'rom' or 'block' or 'spram', not 'eprom'$"):
        LayerCore.from_network(net, net.layers[0].name, weights="eprom")
    with pytest.raises(ValueError, match=r"^weights: 'nope' is not a dense or conv2d layer"):
        weight_storage(net, {"nope": "spram"})
    rom = LayerCore.from_network(net, net.layers[0].name)
    Fragment.get(rom, None)     # elaborated: no unused-elaboratable warning
    assert not hasattr(rom, "wload")


# -- a network top ------------------------------------------------------------------------------

@pytest.mark.parametrize("seed,kind,weights", [(0, "dense", "spram"), (1, "conv", "spram"),
                                               (2, "conv", "first")])
def test_network_spram_matches_golden(seed, kind, weights):
    net = random_network(3300 + seed, kind=kind, levels=4, timesteps=2, max_neurons=16)
    if weights == "first":
        weights = {net.layers[0].name: "spram"}
    x = random_inputs(net, 2, seed=seed)
    golden = run(net, x)
    top = NetworkTop(net, monitor=True, stall_port=True, weights=weights)
    store = weight_storage(net, weights)
    assert set(top.wload_map) == {n for n, w in store.items() if w == "spram"}
    words = weight_load_words(net, weights)
    assert len(words) == sum(n for _, n in top.wload_map.values())
    rtl = run_network(net, x, top=top, seed=seed, gap=0.2, stall=0.2, throttle=0.1)
    assert compare(net, golden, rtl, x) == []
    assert rtl.extra["load_cycles"] >= len(words)
    for name in top.wload_map:
        assert int(rtl.counters[name]["w_rd"].sum()) == golden.totals(name)["w_rd"]


def test_network_load_sequence_and_dropped_words():
    """run_network(weights=) with the helper's words; a word for a layer in ROM is dropped (the
    readout's index, here) and costs nothing; the top takes one word every other cycle."""
    net = random_network(3400, kind="dense", levels=2, timesteps=1, max_neurons=12)
    x = random_inputs(net, 1, seed=4)
    rtl = run_network(net, x, weights="spram")
    assert compare(net, run(net, x), rtl, x) == []
    first = {net.layers[0].name: "spram"}
    words = weight_load_words(net, first)
    ro = len(net.layers) - 1
    bogus = [(ro, 0, 0xFFFF)] + words + [(ro, 1, 0x1234)]
    top = NetworkTop(net, monitor=True, weights=first)
    rtl = run_network(net, x, top=top, loads=bogus)
    assert compare(net, run(net, x), rtl, x) == []
    assert rtl.extra["load_cycles"] == 2 * len(bogus) - 1


# -- synthesis -----------------------------------------------------------------------------------

def _mlp(n_in, n_hidden, n_out, seed=0):
    rng = np.random.default_rng(seed)
    fc0 = Dense(name="fc0", inputs=("input",), threshold=200, levels=4,
                weight=rng.integers(-127, 128, size=(n_in, n_hidden)),
                bias=np.zeros(n_hidden, np.int64), w_bits=8)
    fc1 = Dense(name="fc1", inputs=("fc0",), threshold=1, levels=1,
                weight=rng.integers(-127, 128, size=(n_hidden, n_out)),
                bias=np.zeros(n_out, np.int64), w_bits=8, readout=True)
    return Network(input=InputSpec(shape=(n_in,), in_bits=4), timesteps=1, layers=(fc0, fc1),
                   name=f"mlp{n_in}")


@pytest.mark.synth
def test_synth_has_spram_cells():
    """fc0: 300 x 128 8-bit weights = 19,200 words: two SB_SPRAM256KA (yosys only)."""
    from flows.synth import synthesize_network
    net = _mlp(300, 128, 10)
    rep = synthesize_network(net, "ice40-up5k", cores=False, place=False,
                             weights={"fc0": "spram"})
    assert rep.top.cells.get("SB_SPRAM256KA") == 2
    with pytest.raises(MlsnnError, match="spram"):
        synthesize_network(net, "ecp5-85f", cores=False, place=False, weights="spram")


def test_network_wload_not_ready_while_busy():
    """Once a pixel has been taken, no load word is accepted until the inference is over
    (busy low for a cycle); a word offered meanwhile waits and is then taken."""
    net = random_network(3500, kind="dense", levels=2, timesteps=1, max_neurons=8)
    top = NetworkTop(net, weights="spram")
    n = net.input.size
    seen = {"busy_cycles": 0}

    async def tb(ctx):
        ctx.set(top.result.ready, 1)
        for i in range(n):
            ctx.set(top.pixels.payload, 1)
            ctx.set(top.pixels.valid, 1)
            await ctx.tick().until(top.pixels.ready)
        ctx.set(top.pixels.valid, 0)
        ctx.set(top.wload.payload, {"layer": 0, "addr": 0, "data": 0})
        ctx.set(top.wload.valid, 1)
        for _ in range(5000):
            _, _, busy, ready = await ctx.tick().sample(top.busy, top.wload.ready)
            seen["busy_cycles"] += busy
            if ready:
                break
        seen["taken"] = ready
        seen["busy_now"] = busy

    sim = Simulator(top)
    sim.add_clock(1e-8)
    sim.add_testbench(tb)
    sim.run()
    assert seen["busy_cycles"] > 10 and seen["taken"] == 1 and seen["busy_now"] == 0


def test_cli_simulate_with_spram_weights(tmp_path, capsys):
    """mlsnn simulate --weights: the Amaranth and the cocotb/Icarus benches load the SPRAM banks
    first (with input gaps); the verdict and w_rd are the golden model's; a bad layer name is one
    line."""
    import json
    from flows.cli import main
    d = tmp_path / "net"
    assert main(["random-network", "--seed", "5", "--kind", "conv", "--max-neurons", "12",
                 "--batch", "2", "-o", str(d)]) == 0
    capsys.readouterr()
    base = ["simulate", "--ir", str(d), "--inputs", str(d / "inputs.npz"), "--json"]
    assert main(base + ["--weights", "spram"]) == 0
    sim = json.loads(capsys.readouterr().out)
    assert main(["golden", "--ir", str(d), "--inputs", str(d / "inputs.npz"), "--json"]) == 0
    gold = json.loads(capsys.readouterr().out)
    assert sim["status"] == "match"
    assert [l["counters"]["w_rd"] for l in sim["layers"]] == \
        [l["counters"]["w_rd"] for l in gold["layers"]]
    assert main(base + ["--weights", "nope"]) == 1
    assert capsys.readouterr().err.startswith("mlsnn simulate: error: weights: 'nope' is not a "
                                              "dense or conv2d layer of the network")
    assert main(base + ["--weights", "spram", "--sim", "icarus", "--gaps", "0.3", "--stalls",
                        "0.3", "--build-dir", str(tmp_path / "b")]) == 0
    sim = json.loads(capsys.readouterr().out)
    assert sim["status"] == "match" and sim["sim"] == "icarus"
    assert [l["counters"]["w_rd"] for l in sim["layers"]] == \
        [l["counters"]["w_rd"] for l in gold["layers"]]


def test_cocotb_bench_really_loads_the_weights(tmp_path, monkeypatch):
    """The same run with every loaded word altered no longer matches: the bench's load is what
    the RTL computes with (the SPRAM model starts from zeros, not from the IR)."""
    import hw.network as hn
    from golden.fixtures import random_inputs, random_network
    from golden.reference import run
    from sim.cocotb_run import run_network_cocotb
    from sim.scoreboard import compare
    net = random_network(5, kind="conv", max_neurons=12)
    x = random_inputs(net, 2, seed=5)
    golden = run(net, x)
    assert compare(net, golden, run_network_cocotb(net, x, weights="spram",
                                                   build_dir=tmp_path / "a")) == []
    orig = hn.weight_load_words
    monkeypatch.setattr(hn, "weight_load_words",
                        lambda net, w: [(k, a, d ^ 1) for k, a, d in orig(net, w)])
    assert compare(net, golden, run_network_cocotb(net, x, weights="spram",
                                                   build_dir=tmp_path / "b")) != []

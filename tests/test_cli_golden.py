"""`mlsnn random-network` and `mlsnn golden`, including one-line errors for bad input."""

import json
import subprocess
import sys

import numpy as np
import pytest

from flows.cli import main
from golden import ir
from golden.reference import run


def cli(capsys, *argv):
    rc = main(list(argv))
    out, err = capsys.readouterr()
    return rc, out, err


@pytest.fixture
def netdir(tmp_path, capsys):
    rc, out, err = cli(capsys, "random-network", "--seed", "4", "--kind", "conv", "-o",
                       str(tmp_path / "net"))
    assert rc == 0, err
    return tmp_path / "net"


def test_random_network_then_golden_json(netdir, capsys):
    rc, out, err = cli(capsys, "golden", "--ir", str(netdir / "network.json"), "--inputs",
                       str(netdir / "inputs.npz"), "--json")
    assert rc == 0, err
    doc = json.loads(out)
    net = ir.load(netdir / "network.json")
    x = np.load(netdir / "inputs.npz")["x"]
    ref = run(net, x)
    assert doc["predictions"] == ref.predictions.tolist()
    assert [l["name"] for l in doc["layers"]] == [l.name for l in net.layers]
    for layer in doc["layers"]:
        assert layer["counters"] == ref.totals(layer["name"])
        assert set(layer["counters"]) == {"ev_in", "ev_out", "w_rd", "p_rd", "p_wr", "b_rd",
                                          "syn_updates", "syn_acc", "w_rd_words",
                                          "p_rd_words", "p_wr_words", "shifts"}
    assert doc["overflow"] is False


def test_golden_table_output(netdir, capsys):
    rc, out, err = cli(capsys, "golden", "--ir", str(netdir), "--inputs",
                       str(netdir / "inputs.npz"))
    assert rc == 0, err
    assert "predictions:" in out and "syn_acc" in out


def one_line_error(capsys, *argv):
    rc, out, err = cli(capsys, *argv)
    assert rc != 0
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert "Traceback" not in err
    return lines[0]


def test_bad_inputs_end_with_one_line(netdir, tmp_path, capsys):
    net = str(netdir / "network.json")
    good = str(netdir / "inputs.npz")
    msg = one_line_error(capsys, "golden", "--ir", str(tmp_path / "missing.json"),
                         "--inputs", good)
    assert "network file not found" in msg
    msg = one_line_error(capsys, "golden", "--ir", net, "--inputs", str(tmp_path / "no.npz"))
    assert "inputs file not found" in msg
    bad = tmp_path / "bad.json"
    bad.write_text("{ nope")
    (tmp_path / "bad.npz").write_bytes(b"")
    msg = one_line_error(capsys, "golden", "--ir", str(bad), "--inputs", good)
    assert "malformed JSON" in msg
    shape = ir.load(net).input.shape
    np.savez(tmp_path / "wrong.npz", x=np.zeros((2, 3), np.int64))
    msg = one_line_error(capsys, "golden", "--ir", net, "--inputs", str(tmp_path / "wrong.npz"))
    assert "inputs have shape (2, 3), expected [B, " + ", ".join(map(str, shape)) in msg
    neg = np.zeros((1,) + shape, np.int64)
    neg.flat[0] = -5
    np.savez(tmp_path / "neg.npz", x=neg)
    msg = one_line_error(capsys, "golden", "--ir", net, "--inputs", str(tmp_path / "neg.npz"))
    assert "inputs must be non-negative, found -5" in msg
    (tmp_path / "junk.npz").write_bytes(b"not a zip file at all")
    msg = one_line_error(capsys, "golden", "--ir", net, "--inputs", str(tmp_path / "junk.npz"))
    assert "junk.npz" in msg
    with pytest.raises(SystemExit) as e:
        main(["golden", "--ir", net])
    assert e.value.code == 2
    assert "required: --inputs" in capsys.readouterr().err


def test_random_network_bad_options(tmp_path, capsys):
    msg = one_line_error(capsys, "random-network", "-o", str(tmp_path / "n"), "--batch", "0")
    assert msg.endswith("--batch must be at least 1, not 0")


def test_console_script_from_a_shell(tmp_path):
    out = subprocess.run([sys.executable, "-m", "flows.cli", "random-network", "--seed", "1",
                          "-o", str(tmp_path), "--json"], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout)["batch"] == 8
    out = subprocess.run([sys.executable, "-m", "flows.cli", "golden", "--ir",
                          str(tmp_path / "network.json"), "--inputs", str(tmp_path / "x.npz")],
                         capture_output=True, text=True)
    assert out.returncode == 1
    assert out.stderr.count("\n") == 1 and "inputs file not found" in out.stderr

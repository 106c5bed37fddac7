"""Forced narrow potential widths: exact saturation in the golden model, verdicts, the CLI.

Where a layer's additions come in a fixed order (one input stream), the golden model saturates
exactly like the hardware: events, potentials and the ``saturations`` counter are compared bit
for bit, against an independent loop simulator and against the RTL. Where two streams arrive
in a timing-dependent order (barrier joins, layers after a SEW join), a saturation makes the
comparison undetermined: never a match, a warning, exit status 3.
"""

import dataclasses
import json

import numpy as np
import pytest

from golden.errors import MlsnnError
from golden.fixtures import random_inputs, random_network
from golden.ir import Dense, InputSpec, Network, save
from golden.reference import order_exact, run
from naive import check_image
from sim.amaranth_run import run_network
from sim.scoreboard import verdict

from flows.cli import main
from flows.io import save_inputs


def narrowed(net, cut=3):
    """``net`` with every layer's potential width ``cut`` bits below its safe width (as narrow
    as the threshold and v0 allow)."""
    layers = []
    for l in net.layers:
        info = net.info(l.name)
        if not hasattr(l, "potential_width"):     # SEW join, maxpool: no width to force
            layers.append(l)
            continue
        w = max(info.safe_width - cut, 3, abs(l.v0).bit_length() + 1)
        if not l.readout:
            w = max(w, int(l.threshold).bit_length() + 1)
        layers.append(dataclasses.replace(l, potential_width=w) if w < info.safe_width else l)
    return Network(input=net.input, timesteps=net.timesteps, layers=tuple(layers),
                   name=net.name + "-narrow")


def _cases():
    return [(s, k) for s in range(6) for k in ("dense", "conv", "conv-pool")]


@pytest.mark.parametrize("seed,kind", _cases())
def test_golden_saturation_equals_naive_loop(seed, kind):
    pool = kind == "conv-pool"              # average pools saturate exactly too
    net = narrowed(random_network(500 + seed, kind=kind.split("-")[0], pool=pool))
    x = random_inputs(net, 3, seed=seed)
    res = run(net, x)
    assert set(res.saturations) == {l.name for l in net.layers}    # all exact here
    for b in range(x.shape[0]):
        _, sats = check_image(net, res, x, b)
        for name, n in sats.items():
            assert int(res.saturations[name][b]) == n, name
            assert int(res.overflow[name][b]) == (2 if n else 0), name


def test_narrowing_does_saturate():
    # The cases above would prove little if nothing saturated: most of them do.
    hits = 0
    for seed in range(6):
        for kind in ("dense", "conv"):
            net = narrowed(random_network(500 + seed, kind=kind))
            res = run(net, random_inputs(net, 3, seed=seed))
            hits += any(int(v.sum()) > 0 for v in res.saturations.values())
    assert hits >= 8


@pytest.mark.parametrize("seed,kind,discharge", [(0, "dense", "parallel"), (1, "conv", "serial"),
                                                 (2, "conv", "parallel"), (3, "dense", "serial")])
def test_rtl_saturates_bit_exact(seed, kind, discharge):
    net = narrowed(random_network(600 + seed, kind=kind, max_neurons=16))
    x = random_inputs(net, 2, seed=seed)
    g = run(net, x)
    assert g.any_overflow
    rtl = run_network(net, x, discharge=discharge, gap=0.2, stall=0.2, seed=seed)
    v = verdict(net, g, rtl, x)
    assert v.status == "match", v.first_line()
    for name, sats in g.saturations.items():
        assert rtl.counters[name]["saturations"].tolist() == sats.tolist(), name


def _barrier_case():
    net = narrowed(random_network(7, kind="residual", join="barrier"))
    x = random_inputs(net, 3, seed=1)
    return net, x


def test_order_dependent_saturation_is_undetermined():
    net, x = _barrier_case()
    joins = [l.name for l in net.layers if not order_exact(net, l)]
    assert joins
    g = run(net, x)
    assert not g.exact and g.warnings(net)
    rtl = run_network(net, x)
    v = verdict(net, g, rtl, x)
    assert v.status == "undetermined" and not v.messages and not v.match
    assert "arrival order" in v.undetermined[0]


def test_corrupted_saturation_counter_is_a_mismatch():
    net = narrowed(random_network(601, kind="conv", max_neurons=16))
    x = random_inputs(net, 1, seed=1)
    g = run(net, x)
    rtl = run_network(net, x)
    name = next(n for n, s in g.saturations.items() if s.sum())
    rtl.counters[name]["saturations"][0] += 1
    v = verdict(net, g, rtl, x)
    assert v.status == "mismatch" and "counter saturations" in v.messages[0]


def test_unreachable_threshold_is_rejected():
    with pytest.raises(MlsnnError, match="'threshold' 40 can never be reached by a 6-bit"):
        Network(input=InputSpec(shape=(2,), in_bits=2), timesteps=1, layers=(
            Dense(name="fc", inputs=("input",), threshold=40, levels=1, potential_width=6,
                  weight=np.ones((2, 2), np.int64), bias=np.zeros(2, np.int64)),
            Dense(name="ro", inputs=("fc",), threshold=1, levels=1, readout=True,
                  weight=np.ones((2, 2), np.int64), bias=np.zeros(2, np.int64))))


def test_cli_undetermined_exit_3_and_golden_warnings(tmp_path, capsys):
    net, x = _barrier_case()
    save(net, tmp_path / "net")
    save_inputs(tmp_path / "x.npz", x)
    ir, xs = str(tmp_path / "net"), str(tmp_path / "x.npz")
    assert main(["golden", "--ir", ir, "--inputs", xs, "--json"]) == 0
    out, err = capsys.readouterr()
    doc = json.loads(out)
    assert doc["exact"] is False and doc["warnings"]
    assert "mlsnn golden: warning:" in err and "warning" not in out.replace('"warnings"', "")
    assert main(["simulate", "--ir", ir, "--inputs", xs, "--json"]) == 3
    out, err = capsys.readouterr()
    doc = json.loads(out)
    assert doc["status"] == "undetermined" and doc["match"] is False
    assert "no bit-exact comparison" in err
    assert main(["simulate", "--ir", ir, "--inputs", xs]) == 3
    out, _ = capsys.readouterr()
    assert out.startswith("UNDETERMINED") and "MATCH" not in out


def test_cli_exact_saturation_matches(tmp_path, capsys):
    net = narrowed(random_network(601, kind="conv", max_neurons=16))
    save(net, tmp_path / "net")
    save_inputs(tmp_path / "x.npz", random_inputs(net, 2, seed=1))
    ir, xs = str(tmp_path / "net"), str(tmp_path / "x.npz")
    assert main(["golden", "--ir", ir, "--inputs", xs, "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["exact"] is True and doc["overflow"] is True
    assert any(l["overflow"] == "saturated" and l["saturations"] > 0 for l in doc["layers"])
    assert main(["simulate", "--ir", ir, "--inputs", xs, "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["status"] == "match"


def _board_run(net, rtl):
    from flows.host import BoardRun
    return BoardRun(predictions=rtl.predictions, readout=rtl.readout,
                    counters={i: rtl.counters[l.name] for i, l in enumerate(net.layers)},
                    overflow=np.stack([np.asarray(rtl.overflow[l.name], bool)
                                       for l in net.layers], axis=1))


def test_board_report_saturation_verdicts(capsys):
    # `mlsnn run` compares a board's results as the scoreboard does: an exact saturation is
    # compared (and a wrong flag or saturation count is a mismatch), an order-dependent one
    # makes the image undetermined (exit 3, never "match").
    from flows.commands.run import report
    net, x = _barrier_case()
    rep = report(_board_run(net, run_network(net, x)), None, net, x, as_json=True)
    doc = json.loads(capsys.readouterr().out)
    assert rep == 3 and doc["golden_match"] is False and doc["undetermined_images"]
    net = narrowed(random_network(601, kind="conv", max_neurons=16))
    x = random_inputs(net, 2, seed=1)
    run_ = _board_run(net, run_network(net, x))
    assert report(run_, None, net, x, as_json=True) == 0
    assert json.loads(capsys.readouterr().out)["golden_match"] is True
    name = next(n for n, s in run(net, x).saturations.items() if s.sum())
    run_.counters[[l.name for l in net.layers].index(name)]["saturations"][0] += 1
    with pytest.raises(MlsnnError, match=f"{name}.saturations"):
        report(run_, None, net, x, as_json=True)

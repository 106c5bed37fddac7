"""`mlsnn sweep` (flows/sweep.py): the grid, the networks of its points, the measured rows
(cycles, energy, accuracy) against the models they come from, the cache (resume, interrupt),
the outputs and every bad input as one line.

Synthesis is not run here: the real path (:func:`flows.synth.synthesize_network`) is covered
by tests/test_synth.py; the sweep's use of it is tested with an injected synthesis function
that returns fixed resources, which checks how they enter the rows, the time per inference and
the Pareto front, not yosys."""

import csv
import dataclasses
import functools
import json
import os

import numpy as np
import pytest

from flows import sweep as sw
from flows.cli import main
from flows.commands.energy import _hw_fifo_depth
from golden import fixtures, ir
from golden.energy.compare import ir_report
from golden.errors import MlsnnError
from golden.reference import run as golden_run

SEED = 56       # a 2-layer dense net 7 -> 12 -> 4: lanes 1, 2 and 4 divide every layer
IMAGES = 4


def _net():
    return fixtures.random_network(SEED, kind="dense", depth=1, max_neurons=16, timesteps=1,
                                   in_bits=2)


@pytest.fixture
def netdir(tmp_path):
    net = _net()
    d = tmp_path / "net"
    ir.save(net, d)
    x = fixtures.random_inputs(net, IMAGES, seed=3)
    y = np.array([1, 0, 3, 2])
    np.savez(d / "inputs.npz", x=x, y=y)
    return d


def _cli(capsys, *argv):
    rc = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return rc, out, err


def _sweep_args(netdir, out, *grid):
    args = ["sweep", "--ir", netdir, "--inputs", netdir / "inputs.npz", "--no-synth",
            "-o", out]
    for g in grid:
        args += ["--grid", g]
    return args


# -- the grid and the networks of its points ------------------------------------------------

def test_grid_syntaxes_agree_and_points_are_the_product():
    a = sw.parse_grid(["lanes=1,2,4", "levels=1,4"])
    b = sw.parse_grid(["lanes=1,2,4;levels=1,4"])
    assert a == b
    pts = a.points()
    assert len(pts) == len(a) == 6
    assert pts[0] == {"lanes": 1, "levels": 1} and pts[1] == {"lanes": 1, "levels": 4}
    assert pts[-1] == {"lanes": 4, "levels": 4}
    assert sw.parse_grid(["w-bits=4;discharge=serial,parallel"]).to_json() == {
        "w_bits": [4], "discharge": ["serial", "parallel"]}
    assert sw.parse_grid([]).points() == [{}]
    assert sw.parse_grid(["lanes.fc_0=1,2"]).to_json() == {"lanes.fc_0": [1, 2]}
    assert sw.label({"lanes": 2, "levels": 4}) == "lanes=2 levels=4"


def test_w_bits_up_is_exact_and_down_rounds_into_range():
    net = _net()
    x = fixtures.random_inputs(net, 8, seed=5)
    ref = golden_run(net, x)
    for layer in net.layers:
        assert layer.w_bits == 5
    up = sw.requantize(net, 7)
    res = golden_run(up, x)
    assert all(l.w_bits == 7 for l in up.layers)
    np.testing.assert_array_equal(res.predictions, ref.predictions)
    np.testing.assert_array_equal(res.readout, ref.readout * 4)
    for name, ev in ref.events.items():
        np.testing.assert_array_equal(res.events[name], ev)
    down = sw.requantize(net, 3)
    for old, new in zip(net.layers, down.layers):
        assert new.w_bits == 3
        assert int(np.abs(new.weight).max()) <= 3
        expect = np.clip((old.weight.astype(np.int64) + 2) >> 2, -3, 3)
        np.testing.assert_array_equal(new.weight, expect)
        assert new.threshold == (old.threshold if old.readout
                                 else max(1, (old.threshold + 2) >> 2))


def test_levels_keep_the_threshold_and_lanes_reuse_the_ir_check():
    net = _net()
    four = sw.derive_ir(net, {"levels": 4, "timesteps": 2, "lanes": 4})
    assert four.timesteps == 2
    for old, new in zip(net.layers, four.layers):
        assert new.threshold == old.threshold
        assert new.levels == (old.levels if old.readout else 4)
        assert new.lanes == 4
    one = sw.derive_ir(net, {"lanes": 2, "lanes.fc1": 4})
    assert [l.lanes for l in one.layers] == [2, 4]
    assert sw.effective_params(one, {})["lanes"] == "2/4"
    with pytest.raises(MlsnnError) as e:
        net.with_lanes(3)
    with pytest.raises(MlsnnError) as e2:
        sw.Sweep(net, sw.parse_grid(["lanes=3"]), fixtures.random_inputs(net, 1))
    assert str(e2.value) == f"grid point lanes=3: {e.value}"


# -- the rows against the models ------------------------------------------------------------

def _reference_net(base, params):
    """The point's network built here with the IR's own API (not flows.sweep's)."""
    layers = tuple(dataclasses.replace(l, levels=params["levels"]) if not l.readout else l
                   for l in base.layers)
    return base.replace(layers=layers).with_lanes(
        {l.name: params["lanes"] for l in base.layers if l.kind == "dense"})


def _reference_cycles(net, x):
    if sw.cycle_model_available():
        from golden.cycles import network_cycles
        return np.asarray(network_cycles(net, x, pixels_per_beat=1, discharge="parallel",
                                         synapse="mul").cycles).reshape(-1)
    from sim.amaranth_run import run_network
    return np.asarray(run_network(net, x).cycles).reshape(-1)


@pytest.mark.slow
def test_rows_on_a_local_dask_cluster_match_the_models(netdir, tmp_path, capsys):
    out = tmp_path / "sweep"
    rc, stdout, err = _cli(capsys, *_sweep_args(netdir, out, "lanes=1,2", "levels=1,4"),
                           "--jobs", 2, "--json")
    assert rc == 0, err
    doc = json.loads(stdout)
    assert doc == json.loads((out / "results.json").read_text())
    assert doc["complete"] is True and doc["points"] == doc["finished"] == 4
    rows = doc["rows"]
    assert [(r["lanes"], r["levels"]) for r in rows] == [(1, 1), (1, 4), (2, 1), (2, 4)]
    base = ir.load(netdir)
    data = np.load(netdir / "inputs.npz")
    x, y = data["x"], data["y"]
    for r in rows:
        assert r["status"] == "ok", r["message"]
        net = _reference_net(base, {"lanes": r["lanes"], "levels": r["levels"]})
        cyc = _reference_cycles(net, x)
        assert r["cycles_total"] == int(cyc.sum())
        assert r["cycles_source"] == ("model" if sw.cycle_model_available() else "rtl")
        res = golden_run(net, x)
        energy = ir_report(net, x, fifo_depth=_hw_fifo_depth())["total"]["energy_nJ"]["exact"][
            "total"]
        assert r["energy_nj"] == pytest.approx(energy, rel=1e-12)
        assert r["accuracy"] == float((res.predictions == y).mean())
        assert r["luts"] is None and r["fmax_mhz"] is None
        assert r["clock_mhz"] == 50.0
        assert r["time_us"] == pytest.approx(r["cycles"] / 50.0)
        assert r["timesteps"] == base.timesteps and r["w_bits"] == 5
        assert not r["cached"]
    # Progress: one line per point in the example's form.
    lines = [l for l in err.splitlines() if l.startswith("[")]
    assert len(lines) == 4
    assert all(f"/4] lanes=" in l and " cycles, " in l and " nJ" in l for l in lines)
    # The CSV holds the same rows.
    with open(out / "results.csv", newline="") as f:
        table = list(csv.DictReader(f))
    assert list(table[0]) == list(sw.COLUMNS)
    assert len(table) == len(rows)
    for r, t in zip(rows, table):
        for c in sw.COLUMNS:
            assert t[c] == ("" if r[c] is None else str(r[c])), c
    png = (out / "pareto.png").read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n"
    assert len(list((out / "points").iterdir())) == 4


def test_rtl_check_compares_cycles_and_results(netdir, tmp_path, capsys):
    rc, stdout, err = _cli(capsys, *_sweep_args(netdir, tmp_path / "s", "lanes=2,4"),
                           "--rtl-check", 1, "--json")
    assert rc == 0, err
    first, second = json.loads(stdout)["rows"]
    assert first["rtl_status"] == "match"
    assert first["rtl_cycles_equal"] is True
    assert first["rtl_cycles_total"] == first["cycles_total"]
    assert second["rtl_status"] is None and second["rtl_cycles_total"] is None


# -- cache: resume and interrupt ------------------------------------------------------------

def test_resume_recomputes_only_the_missing_point(netdir, tmp_path, capsys, monkeypatch):
    out = tmp_path / "sweep"
    argv = _sweep_args(netdir, out, "lanes=1,2", "levels=1,4")
    rc, _, err = _cli(capsys, *argv)
    assert rc == 0, err
    first = json.loads((out / "results.json").read_text())["rows"]
    gone = first[2]
    os.remove(out / "points" / f"{gone['key']}.json")
    calls = []
    real = sw.evaluate_point

    def spy(point, *a, **kw):
        calls.append(point.key)
        return real(point, *a, **kw)
    monkeypatch.setattr(sw, "evaluate_point", spy)
    rc, stdout, err = _cli(capsys, *argv)
    assert rc == 0, err
    assert calls == [gone["key"]]
    cached = [l for l in err.splitlines() if l.endswith("(cached)")]
    computed = [l for l in err.splitlines() if l.startswith("[") and l not in cached]
    assert len(cached) == 3
    assert len(computed) == 1 and computed[0].startswith(f"[4/4] {gone['point']}: ")
    assert "4 points (3 cached, 1 computed, 0 failed)" in stdout
    again = json.loads((out / "results.json").read_text())["rows"]
    assert [r["cached"] for r in again] == [True, True, False, True]
    keep = ("cached", "seconds", "pareto")
    assert [{k: v for k, v in r.items() if k not in keep} for r in again] == \
        [{k: v for k, v in r.items() if k not in keep} for r in first]


def _build(netdir, *grid, synth=False):
    base = ir.load(netdir)
    data = np.load(netdir / "inputs.npz")
    return sw.Sweep(base, sw.parse_grid(grid), data["x"], data["y"],
                    options=sw.SweepOptions(synth=synth))


def test_ctrl_c_keeps_the_finished_points(netdir, tmp_path):
    out = tmp_path / "sweep"
    sweep = _build(netdir, "lanes=1,2", "levels=1,4")

    def interrupt(k, total, row):
        raise KeyboardInterrupt
    with pytest.raises(KeyboardInterrupt):
        sweep.run(out, progress=interrupt)
    doc = json.loads((out / "results.json").read_text())
    assert doc["complete"] is False and doc["finished"] == 1 and doc["points"] == 4
    assert [r["point"] for r in doc["rows"]] == ["lanes=1 levels=1"]
    assert os.listdir(out / "points") == [f"{doc['rows'][0]['key']}.json"]
    seen = []
    rows = sweep.run(out, progress=lambda k, t, r: seen.append((r["point"], r["cached"])))
    assert seen[0] == ("lanes=1 levels=1", True)
    assert sorted(seen[1:]) == [("lanes=1 levels=4", False), ("lanes=2 levels=1", False),
                                ("lanes=2 levels=4", False)]
    assert [r["status"] for r in rows] == ["ok"] * 4
    assert json.loads((out / "results.json").read_text())["complete"] is True


def _fails_on_lanes_2(point, x, y, options, **kw):
    if point.params.get("lanes") == 2:
        raise RuntimeError("boom")
    return sw.evaluate_point(point, x, y, options, **kw)


def test_a_failing_point_is_an_error_row_and_is_not_cached(netdir, tmp_path):
    out = tmp_path / "sweep"
    rows = _build(netdir, "lanes=1,2").run(out, evaluate=_fails_on_lanes_2)
    assert [r["status"] for r in rows] == ["ok", "error"]
    assert rows[1]["message"] == "RuntimeError: boom"
    assert rows[1]["lanes"] == 2 and rows[1]["pareto"] is False
    assert os.listdir(out / "points") == [f"{rows[0]['key']}.json"]


def test_cli_interrupt_is_one_line_and_keeps_the_results(netdir, tmp_path, capsys,
                                                         monkeypatch):
    calls = []
    real = sw.evaluate_point

    def second_interrupts(point, *a, **kw):
        calls.append(point.index)
        if len(calls) == 2:
            raise KeyboardInterrupt
        return real(point, *a, **kw)
    monkeypatch.setattr(sw, "evaluate_point", second_interrupts)
    out = tmp_path / "sweep"
    rc, _, err = _cli(capsys, *_sweep_args(netdir, out, "levels=1,4"))
    assert rc == 130
    assert err.splitlines()[-1] == "mlsnn sweep: interrupted"
    assert "Traceback" not in err
    assert json.loads((out / "results.json").read_text())["finished"] == 1


# -- synthesis columns (injected synthesis: see the module docstring) -----------------------

def _fake_synth(net, hw, options):
    lanes = max(l.lanes for l in net.layers)
    return {"luts": 1000 + 300 * lanes, "ffs": 500, "brams": 2 * lanes, "dsps": 0,
            "fmax_mhz": 40.0 if lanes == 4 else 45.0}


def test_synthesis_columns_time_and_pareto(netdir, tmp_path):
    out = tmp_path / "sweep"
    sweep = _build(netdir, "lanes=1,2,4", synth=True)
    rows = sweep.run(out, evaluate=functools.partial(sw.evaluate_point, synth=_fake_synth))
    for r in rows:
        assert r["luts"] == 1000 + 300 * r["lanes"]
        assert r["clock_mhz"] == r["fmax_mhz"]
        assert r["time_us"] == pytest.approx(r["cycles"] / r["fmax_mhz"])
    # Brute force: a row is Pareto-optimal iff no other is at least as fast and as small.
    for r in rows:
        dominated = any(o is not r and o["time_us"] <= r["time_us"] and o["luts"] <= r["luts"]
                        and (o["time_us"], o["luts"]) != (r["time_us"], r["luts"])
                        for o in rows)
        assert r["pareto"] is (not dominated)
    doc = json.loads((out / "results.json").read_text())
    assert doc["pareto_axes"] == ["time_us", "luts"]
    assert any(r["pareto"] for r in doc["rows"])


# -- a trained model ------------------------------------------------------------------------

@pytest.fixture(scope="module")
def model_path(tmp_path_factory):
    from golden.train import save_checkpoint, train
    model, _ = train(arch="mlp", timesteps=1, levels=4, epochs=1, hidden=8, seed=0)
    path = tmp_path_factory.mktemp("model") / "m.pt"
    save_checkpoint(model, path)
    return path


def test_a_model_is_re_exported_per_point(model_path):
    from golden.export import export
    from golden.train import load_checkpoint
    src = sw.ModelSource(model_path)
    base, _ = export(load_checkpoint(model_path), w_bits=8)
    same = src.network({})
    assert json.dumps(same.to_json()) == json.dumps(base.to_json())
    for k, a in base.arrays().items():
        np.testing.assert_array_equal(same.arrays()[k], a)
    net = src.network({"levels": 2, "timesteps": 3, "w_bits": 6, "lanes": 2})
    assert net.timesteps == 3
    assert all(l.w_bits == 6 and l.lanes == 2 for l in net.layers)
    assert all(l.levels == 2 for l in net.layers if not l.readout)
    # θ = V_th / N: halving N doubles the float threshold, hence the integer one (same Q).
    assert net.layers[0].threshold != base.layers[0].threshold
    again = src.network({})                 # the model itself is left as it was
    assert json.dumps(again.to_json()) == json.dumps(base.to_json())


def test_cli_sweep_on_a_model_has_accuracy(model_path, tmp_path, capsys):
    rc, stdout, err = _cli(capsys, "sweep", "--model", model_path, "--images", 3,
                           "--grid", "levels=1,4", "--no-synth", "-o", tmp_path / "m",
                           "--json")
    assert rc == 0, err
    doc = json.loads(stdout)
    from golden.train import load_checkpoint
    from flows.commands.export import _dataset
    data = _dataset(load_checkpoint(model_path).config, None)
    y = data.y_test[:3]
    src = sw.ModelSource(model_path)
    for r in doc["rows"]:
        net = src.network({"levels": r["levels"]})
        pred = golden_run(net, net.check_inputs(
            data.x_test[:3].reshape((-1,) + net.input.shape))).predictions
        assert r["accuracy"] == float((pred == y).mean())


# -- bad input: one line each ---------------------------------------------------------------

@pytest.mark.parametrize("grid,msg", [
    ("foo=1", "--grid: unknown parameter 'foo' (parameters: lanes, fire_lanes, levels, "
              "timesteps, w_bits, discharge, synapse, pixels_per_beat, weights, lanes.LAYER)"),
    ("lanes.nope=2", "grid point lanes.nope=2: lanes: network has no layer 'nope'"),
    ("lanes", "--grid must be NAME=V1,V2[;NAME=...], not 'lanes'"),
    ("lanes=a", "--grid lanes: 'a' is not an integer"),
    ("lanes=0", "--grid lanes: values must be >= 1, not 0"),
    ("w_bits=1", "--grid w_bits: values must be in 2..16, not 1"),
    ("discharge=fast", "--grid discharge: 'fast' is not one of parallel, serial"),
    ("lanes=;levels=1", "--grid lanes: no values (NAME=V1,V2,...)"),
    ("lanes=1;lanes=2", "--grid: parameter 'lanes' is given twice"),
    ("lanes=1,1", "--grid lanes: a value is repeated in '1,1'"),
    ("lanes=1,3", "grid point lanes=3: layer 'fc1': lanes (3) must divide its 4 output "
                  "neurons"),
    ("lanes=64", "grid point lanes=64: layer 'fc0': lanes (64) must divide its 12 output "
                 "neurons"),
    ("pixels_per_beat=8", "grid point pixels_per_beat=8: --pixels-per-beat must be in 1..7 "
                          "(the input size), not 8"),
])
def test_bad_grid_is_one_line(netdir, tmp_path, capsys, grid, msg):
    rc, out, err = _cli(capsys, *_sweep_args(netdir, tmp_path / "s", grid))
    assert rc == 1
    assert err == f"mlsnn sweep: error: {msg}\n"
    assert out == ""


@pytest.mark.parametrize("extra,msg", [
    (["--jobs", "0"], "--jobs must be at least 1, not 0"),
    (["--rtl-check", "-1"], "--rtl-check must be at least 0, not -1"),
    (["--dataset", "digits"], "--dataset applies to --model only (with --ir give --inputs)"),
    (["--target", "nope"], "unknown target 'nope'; targets are ice40-up5k, ecp5-85f"),
])
def test_bad_option_is_one_line(netdir, tmp_path, capsys, extra, msg):
    rc, out, err = _cli(capsys, *_sweep_args(netdir, tmp_path / "s", "lanes=1"), *extra)
    assert rc == 1
    assert err == f"mlsnn sweep: error: {msg}\n"


def test_no_inputs_is_one_line(netdir, tmp_path, capsys):
    rc, out, err = _cli(capsys, "sweep", "--ir", netdir, "--grid", "lanes=1", "-o",
                        tmp_path / "s")
    assert rc == 1
    assert err == ("mlsnn sweep: error: --ir needs --inputs x.npz (array 'x' [B, "
                   "*input_shape], labels 'y' for the accuracy)\n")


def test_unreachable_scheduler_is_one_line(netdir, tmp_path, capsys):
    rc, out, err = _cli(capsys, *_sweep_args(netdir, tmp_path / "s", "lanes=1"),
                        "--scheduler", "tcp://127.0.0.1:9")
    assert rc == 1
    assert err.startswith("mlsnn sweep: error: cannot reach the Dask scheduler at "
                          "tcp://127.0.0.1:9: ")
    assert err.count("\n") == 1 and "Traceback" not in err


def test_fire_lanes_axis_gives_each_layer_at_most_f_units(netdir, tmp_path):
    base, data = ir.load(netdir), np.load(netdir / "inputs.npz")
    sweep = sw.Sweep(base, sw.parse_grid(["lanes=4", "fire_lanes=1,2,4,3"]), data["x"],
                     data["y"], options=sw.SweepOptions(synth=False), rtl_check=4)
    # 3 divides neither layer's 4 lanes: the largest divisor not above it, 2
    assert [[layer.fire for layer in p.net.layers] for p in sweep.points] == \
        [[1, 1], [2, 2], [4, 4], [2, 2]]
    rows = sweep.run(tmp_path / "s")
    assert [r["status"] for r in rows] == ["ok"] * 4
    assert [r["fire_lanes"] for r in rows] == [1, 2, 4, 2]
    assert all(r["rtl_cycles_equal"] is True for r in rows)       # the RTL ran every point
    cycles = [r["cycles_total"] for r in rows]
    assert cycles[0] > cycles[1] > cycles[2] and cycles[3] == cycles[1]
    # fewer fire units change cycles only: the same accesses, energy and accuracy
    assert len({(r["energy_nj"], r["accuracy"]) for r in rows}) == 1


def test_weights_axis_reaches_the_synthesis_and_changes_nothing_else(netdir, tmp_path):
    def synth(net, hw, options):        # the point's weights choice reaches the synthesis
        return {"luts": 900 if hw["weights"] == "block" else 1200, "ffs": 500, "brams": 3,
                "dsps": 0, "fmax_mhz": 45.0}

    sweep = _build(netdir, "lanes=2", "weights=rom,block", synth=True)
    rows = sweep.run(tmp_path / "s", evaluate=functools.partial(sw.evaluate_point, synth=synth))
    assert [r["status"] for r in rows] == ["ok", "ok"], [r["message"] for r in rows]
    assert [r["weights"] for r in rows] == ["rom", "block"]
    assert [r["luts"] for r in rows] == [1200, 900]
    for c in ("cycles_total", "energy_nj", "accuracy"):
        assert rows[0][c] == rows[1][c], c
    assert rows[0]["key"] != rows[1]["key"]          # cached apart
    with pytest.raises(sw.MlsnnError, match=r"^--grid weights: 'spram' is not one of rom, "
                                            r"block$"):
        sw.parse_grid(["weights=spram"])

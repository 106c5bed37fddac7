"""The experiment scripts (experiments/) on tiny configurations: structure of their results."""

import json
import os
import sys

import pytest

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from experiments import quantization_intervals as qi          # noqa: E402
from experiments import sew_vs_sparse as sv                   # noqa: E402

ACCESS = ("w_rd", "p_rd", "p_wr", "b_rd", "ev_in", "ev_out")


def _read(path):
    with open(path) as f:
        return f.read()


def test_quantization_intervals_tiny(tmp_path):
    result = qi.run_experiment(
        archs=("mlp",), configs=((1, 1), (2, 1), (1, 2)), pairs=(((2, 1), (1, 2)),), epochs=1,
        rtl_images={"mlp": 1}, test_images=12, arch_kwargs={"mlp": {"hidden": 8}},
        cache=str(tmp_path / "cache"), log=lambda msg: None)
    runs = result["runs"]
    assert [(r["arch"], r["T"], r["N"], r["intervals"]) for r in runs] == [
        ("mlp", 1, 1, 1), ("mlp", 2, 1, 2), ("mlp", 1, 2, 2)]
    for r in runs:
        assert 0 <= r["float_accuracy"] <= 1 and 0 <= r["int_accuracy"] <= 1
        assert r["layers"] == ["fc1"]
        assert set(ACCESS) <= set(r["golden"]["totals"])
        assert r["golden"]["totals"]["spikes"] == r["golden"]["layers"]["fc1"]["ev_out"]
        e = r["energy_nJ"]
        assert e["exact"]["total"] > 0 and e["ann"]["total"] > 0
        assert e["exact"]["total"] == pytest.approx(
            e["exact"]["memory"] + e["exact"]["synaptic"] + e["exact"]["addressing"])
    # Direct encoding: the binary T=2 network sees every pixel event twice.
    g = {(r["T"], r["N"]): r["golden"]["layers"]["fc1"]["ev_in"] for r in runs}
    assert g[(2, 1)] == pytest.approx(2 * g[(1, 1)]) and g[(1, 2)] == pytest.approx(g[(1, 1)])
    assert runs[0]["rtl"]["status"] == "skipped"          # (1, 1) is not in a pair
    for r in runs[1:]:
        rtl = r["rtl"]
        assert rtl["status"] in ("ok", "unsupported"), rtl.get("mismatches")
        if rtl["status"] == "ok":
            assert rtl["images"] == 1
            assert rtl["totals"] == rtl["golden_totals_same_images"]
            assert rtl["energy_nJ"]["measured_equals_exact"] is True
    (pair,) = result["pairs"]
    assert pair["binary"] == [2, 1] and pair["multi_level"] == [1, 2]
    assert pair["E_N/E_binary"]["exact"] == pytest.approx(
        runs[2]["energy_nJ"]["exact"]["total"] / runs[1]["energy_nJ"]["exact"]["total"])
    files = qi.write_outputs(result, str(tmp_path / "out"))
    assert json.loads(_read(files["json"]))["experiment"] == "quantization_intervals"
    md = _read(files["md"])
    assert "E_N/E_bin exact" in md and "![quantization intervals]" in md
    assert os.path.getsize(files["png"]) > 10_000
    assert "Energy per inference" in qi.to_text(result)


def test_sew_vs_sparse_tiny(tmp_path):
    result = sv.run_experiment(
        levels=(1, 2), seeds=(0,), epochs=1, rtl_images=1, test_images=12,
        model=dict(channels=2, blocks=2, block_strides=(1, 2)), cache=str(tmp_path / "cache"),
        log=lambda msg: None)
    runs = result["runs"]
    assert [(r["label"], r["N"]) for r in runs] == [
        ("SEW", 1), ("Sparse", 1), ("SEW", 2), ("Sparse", 2)]
    for r in runs:
        assert [j["name"] for j in r["joins"]] == ["b1_join", "b2_join"]
        assert [j["residual_from"] for j in r["joins"]] == ["stem", "b2_short"]
        assert r["layer_names"][-2:] == ["b2_short", "b2_join"]
        assert r["rtl"]["status"] in ("ok", "unsupported")
        for j in r["joins"]:
            if r["arch"] == "sew-resnet":     # a SEW join forwards both streams
                assert j["out"] == pytest.approx(j["direct"] + j["residual"])
            else:                             # a barrier emits at most one event per neuron
                assert j["out"] <= j["direct"] + j["residual"] + 1e-9
        t = r["totals"]
        assert t["events"] == pytest.approx(sum(r["layers"][n]["ev_out"]
                                                for n in r["layer_names"]))
        assert r["energy_nJ"]["exact"]["total"] > 0
    assert [c["N"] for c in result["comparison"]] == [1, 2]
    assert len(result["comparison"][0]["join_reduction"]) == 2
    files = sv.write_outputs(result, str(tmp_path / "out"))
    assert json.loads(_read(files["json"]))["experiment"] == "sew_vs_sparse"
    assert "Events per inference at every join" in _read(files["md"])
    assert os.path.getsize(files["png"]) > 10_000

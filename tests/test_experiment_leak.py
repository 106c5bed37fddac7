"""experiments/leak.py (IF vs LIF on digits) on its --quick configuration."""

import json
import os
import sys

import numpy as np
import pytest

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from experiments import leak as lk                            # noqa: E402
from golden.energy.tech import DEFAULT                        # noqa: E402
from golden.errors import MlsnnError                          # noqa: E402
from golden.reference import run                              # noqa: E402
from golden.export import export                              # noqa: E402
from golden.train import load_dataset, train                  # noqa: E402

HIDDEN = lk.QUICK["arch_kwargs"]["mlp"]["hidden"]
N_CLASSES = 10


@pytest.fixture(scope="module")
def quick(tmp_path_factory):
    cache = str(tmp_path_factory.mktemp("leak_cache"))
    return lk.run_experiment(**lk.QUICK, cache=cache, log=lambda msg: None), cache


def _run(result, T, k):
    (r,) = [r for r in result["runs"] if (r["T"], r["leak"]) == (T, k)]
    return r


def test_quick_grid(quick):
    result, _ = quick
    assert [(r["arch"], r["T"], r["leak"], r["seed"]) for r in result["runs"]] == [
        ("mlp", 1, 0, 0), ("mlp", 1, 2, 0), ("mlp", 4, 0, 0), ("mlp", 4, 2, 0)]
    assert result["settings"]["test_images"] == lk.QUICK["test_images"]
    for r in result["runs"]:
        assert r["leaky_layers"] == ({"fc1": 2} if r["leak"] else {})
        assert 0 <= r["int_accuracy"] <= 1 and 0 <= r["float_accuracy"] <= 1
        assert r["events"] == pytest.approx(sum(r["events_per_layer"].values()))
        assert r["events"] > 0
        # Every neuron's bias is read once per timestep: hidden layer and readout.
        assert r["accesses"]["b_rd"] == r["T"] * (HIDDEN + N_CLASSES)
        assert r["accesses_total"] == pytest.approx(sum(r["accesses"].values()))
        e = r["energy_nJ"]
        assert e["total"] == pytest.approx(e["memory"] + e["synaptic"] + e["addressing"])
        assert r["leak"] == 0 or r["T"] == 1 or e["leak"] > 0


def test_t1_lif_is_the_if_network(quick):
    result, _ = quick
    a, b = _run(result, 1, 0), _run(result, 1, 2)
    assert b["t1_same_as_if"] is True
    for key in ("int_accuracy", "float_accuracy", "events", "events_per_layer", "accesses",
                "energy_nJ", "leak_acc"):
        assert a[key] == b[key], key
    assert b["leak_acc"] == 0 and b["energy_nJ"]["leak"] == 0
    (s,) = [s for s in result["summary"] if (s["T"], s["leak"]) == (1, 2)]
    assert s["t1_same_as_if"] is True and s["d_accuracy_vs_if"][0] == 0
    assert s["energy_vs_if"][0] == 1.0


def test_leak_term_is_t_minus_1_times_n_out_acc(quick):
    result, _ = quick
    T = 4
    leaky, plain = _run(result, T, 2), _run(result, T, 0)
    assert leaky["leak_acc"] == (T - 1) * HIDDEN == leaky["leak_acc_expected"]
    assert leaky["energy_nJ"]["leak"] == pytest.approx((T - 1) * HIDDEN * DEFAULT.ops.add / 1e3)
    assert plain["leak_acc"] == 0 and plain["energy_nJ"]["leak"] == 0
    # The leak adds no memory access: the sweep reads and writes every potential anyway.
    for r in (leaky, plain):
        assert r["accesses"]["p_rd"] == pytest.approx(r["accesses"]["p_wr"])
        assert r["accesses"]["p_rd"] - r["accesses"]["w_rd"] == T * (HIDDEN + N_CLASSES)


def test_rtl_counters_equal_golden_with_the_leak_priced(quick):
    result, _ = quick
    data = load_dataset("digits")
    for k in (0, 2):
        r = _run(result, 4, k)
        rtl = r["rtl"]
        assert rtl["status"] == "ok" and rtl["equals_exact"] is True, rtl.get("mismatches")
        assert rtl["images"] == 1
        assert rtl["leak_acc_measured"] == (3 * HIDDEN if k else 0)
        assert rtl["energy_measured_nJ"] == rtl["energy_exact_nJ"]
        assert rtl["leak_measured_nJ"] == pytest.approx(rtl["leak_acc_measured"]
                                                        * DEFAULT.ops.add / 1e3)
    assert "rtl" not in _run(result, 1, 2)                # T = 1 is not run on the RTL
    # The measured accesses are those of the golden model of the same network on the same
    # image, trained and exported again here (training is deterministic for a seed).
    model, _ = train(arch="mlp", timesteps=4, levels=lk.LEVELS, epochs=lk.QUICK["epochs"],
                     seed=0, leak=2, hidden=HIDDEN)
    net, _ = export(model)
    res = run(net, data.x_test[:1])
    golden = {c: sum(res.totals(l.name)[c] for l in net.layers) for c in lk.ACCESS}
    assert _run(result, 4, 2)["rtl"]["accesses_measured"] == golden


def test_main_quick_writes_outputs(quick, tmp_path, capsys):
    _, cache = quick
    out = tmp_path / "out"
    assert lk.main(["--quick", "--cache", cache, "--out", str(out)]) == 0
    text = capsys.readouterr().out
    assert "identical" in text and "1 img: equal" in text
    doc = json.loads((out / "leak.json").read_text())
    assert doc["experiment"] == "leak" and len(doc["summary"]) == 4
    md = (out / "leak.md").read_text()
    assert "| mlp | 1 | 2 (0.75) |" in md and "![IF vs LIF](leak.png)" in md
    assert os.path.getsize(out / "leak.png") > 10_000


def test_bad_arguments_are_one_line(tmp_path, capsys):
    with pytest.raises(MlsnnError, match="^leaks must include 0, the IF reference$"):
        lk.run_experiment(leaks=(1, 2), cache=str(tmp_path), log=lambda m: None)
    assert lk.main(["--archs", "vgg", "--cache", str(tmp_path), "--out", str(tmp_path)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == ["error: arch must be one of mlp, cnn, not 'vgg'"]

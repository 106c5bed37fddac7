"""ANN-to-SNN conversion (golden/convert.py, `mlsnn convert`, docs/convert.md)."""

import json

import numpy as np
import pytest
import torch
from torch import nn

from flows.cli import main
from golden import ir
from golden.convert import (Converter, ann_forward, channel_mean, clip_floor, convert,
                            load_ann, pareto_search, parse_ann, threshold_search)
from golden.datasets import load_dataset
from golden.reference import run

from experiments.conversion import train_ann


def _script(model, path):
    """Save ``model`` as TorchScript (what a user does; torch deprecates it, with a warning)."""
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        torch.jit.save(torch.jit.script(model), str(path))


@pytest.fixture(scope="module")
def digits():
    return load_dataset("digits")


@pytest.fixture(scope="module")
def mlp(digits):
    torch.manual_seed(0)
    model = nn.Sequential(nn.Flatten(), nn.Linear(64, 48), nn.BatchNorm1d(48), nn.ReLU(),
                          nn.Dropout(0.1), nn.Linear(48, 10))
    return train_ann(model, digits, epochs=12, seed=0)


def test_clip_floor_is_the_if_neuron_under_constant_input():
    """ClipFloor(a, T·N, N·θ) (Eq. 8) is the average output of the IF neuron of SPEC §2 (soft
    reset, up to N levels, v0 = 0) over T timesteps with a constant input a."""
    from golden.reference import fire

    T, N, theta = 3, 4, 0.25
    a = torch.linspace(-0.5, 1.5, 401, dtype=torch.float64)
    p, total = torch.zeros_like(a), torch.zeros_like(a)
    for _ in range(T):
        h = p + a
        z = fire(h, theta, N)
        p, total = h - z * theta, total + z
    assert torch.allclose(total * theta / T, clip_floor(a, T * N, N * theta), atol=1e-12)


def test_threshold_search_returns_the_grid_minimiser():
    torch.manual_seed(3)
    a = torch.randn(500, 20, dtype=torch.float64) * 2
    lam, mse, lams, mses = threshold_search(a, 8, grid=50)
    direct = [float(((clip_floor(a, 8, l) - a.clamp(min=0)) ** 2).mean()) for l in lams]
    assert np.allclose(mses, direct)
    assert mse == min(direct) and lam == lams[int(np.argmin(direct))]
    assert lams[-1] == pytest.approx(float(a.max()))
    # A dead layer (no positive pre-activation) gets λ = 1 and never fires.
    assert threshold_search(-a.abs(), 8)[:2] == (1.0, 0.0)


def test_channel_mean_is_per_channel():
    e = torch.arange(2 * 3 * 4, dtype=torch.float64).reshape(2, 12)      # B=2, C=3, HW=4
    expect = e.reshape(2, 3, 4).mean(dim=(0, 2))
    assert torch.equal(channel_mean(e, 3), expect)


def test_batchnorm_folding_and_pools_give_the_unfolded_outputs():
    torch.manual_seed(1)
    model = nn.Sequential(nn.Conv2d(1, 4, 3, padding=1), nn.BatchNorm2d(4), nn.MaxPool2d(2),
                          nn.ReLU(), nn.Conv2d(4, 6, 3, padding=1), nn.ReLU(), nn.AvgPool2d(2),
                          nn.Flatten(), nn.Linear(24, 16), nn.BatchNorm1d(16), nn.ReLU(),
                          nn.Linear(16, 10))
    for bn in (model[1], model[9]):
        bn.running_mean.uniform_(-1, 1)
        bn.running_var.uniform_(0.5, 2)
        bn.weight.data.uniform_(0.5, 1.5)
        bn.bias.data.uniform_(-0.5, 0.5)
    model.eval()
    stages = parse_ann(model)
    assert [s.kind for s in stages] == ["conv2d", "maxpool2d", "conv2d", "avgpool2d", "dense",
                                        "dense"]
    x = torch.rand(5, 1, 8, 8)
    folded = ann_forward(stages, x.to(torch.float64))[-1][1]
    with torch.no_grad():
        assert torch.allclose(folded.float(), model(x), atol=1e-5)


def test_calibration_properties(mlp, digits):
    x = digits.x_train[:300]
    conv = Converter(parse_ann(mlp), x, input_scale=digits.input_scale,
                     in_bits=digits.in_bits, timesteps=2)
    net, report, logits, res = conv.build([4])
    hidden, readout = report
    # Eq. 8: the λ of the report is the threshold search's on the ANN's pre-activations.
    lam, mse, _, _ = threshold_search(conv.ann[0][0], 2 * 4)
    assert (hidden["lambda"], hidden["mse"]) == (lam, mse)
    assert hidden["theta"] == lam / 4 and net.layer("fc1").levels == 4
    # The IR's threshold is θ·Q with Q the export's scale: θ_int / θ = Q = 127 / max|s_in·w|.
    assert net.layer("fc1").threshold == hidden["threshold"]
    # Eq. 6 on a hidden layer is a first-order correction: it shrinks the mean error.
    assert hidden["mean_error_after"] < hidden["mean_error_before"]
    # On the linear readout it zeroes the mean logit error, up to the two roundings of the
    # integer bias (each at most half a unit, 1/(2Q) in logits).
    assert readout["mean_error_after"] <= 1.0 / readout["q"] + 1e-12
    assert readout["mean_error_before"] > 10 / readout["q"]
    # The logits the calibration reports are those of the golden model of the IR it returns.
    again = run(net, x)
    assert np.array_equal(again.readout, res.readout)
    assert torch.allclose(logits, torch.from_numpy(again.readout).double() /
                          (readout["q"] * 2))


def test_converted_accuracy_close_to_ann_at_large_t_n(mlp, digits):
    """At T·N = 32 the converted SNN is within 2 points of the ANN on the test split."""
    net, doc = convert(mlp, digits, timesteps=4, levels=8, calib_samples=512)
    assert isinstance(net, ir.Network) and net.timesteps == 4
    assert [l.levels for l in net.layers if l.kind == "dense" and not l.readout] == [8]
    assert doc["ann_accuracy"] > 0.9
    assert doc["snn_accuracy"] >= doc["ann_accuracy"] - 0.02


def test_cnn_with_pools_converts(digits):
    """Conv2d + BN, a max pool between a conv and its ReLU, an average pool after the max pool:
    the IR has the pools, the average pool takes θ and N of its input (θ_int = k²), and at
    T·N = 16 the SNN is within 5 points of the ANN."""
    torch.manual_seed(2)
    model = nn.Sequential(nn.Conv2d(1, 6, 3, padding=1), nn.BatchNorm2d(6), nn.MaxPool2d(2),
                          nn.ReLU(), nn.AvgPool2d(2), nn.Flatten(), nn.Linear(24, 10))
    model = train_ann(model, digits, epochs=4, seed=2)
    net, doc = convert(model, digits, timesteps=2, levels=8, calib_samples=400)
    assert [l.kind for l in net.layers] == ["conv2d", "maxpool2d", "avgpool2d", "dense"]
    pool = net.layer("pool2")
    assert (pool.threshold, pool.levels) == (4, 8)
    assert doc["snn_accuracy"] >= doc["ann_accuracy"] - 0.05


def test_pareto_search_equals_exhaustive():
    rng = np.random.default_rng(0)
    tables = [[(c, float(rng.random()), float(rng.random())) for c in range(4)]
              for _ in range(3)]
    front = pareto_search(tables)
    import itertools
    combos = [(sum(t[c][1] for t, c in zip(tables, ch)), sum(t[c][2] for t, c in zip(tables, ch)),
               ch) for ch in itertools.product(range(4), repeat=3)]
    for budget in np.linspace(0.0, 3.0, 31):
        ok = [c for c in combos if c[1] <= budget]
        got = [p for p in front if p[1] <= budget]
        assert bool(ok) == bool(got)
        if ok:
            assert min(p[0] for p in got) == pytest.approx(min(c[0] for c in ok))


def _save_state_dict(model, arch, tmp_path):
    torch.save(model.state_dict(), tmp_path / "sd.pt")
    (tmp_path / "arch.json").write_text(json.dumps(arch))
    return tmp_path / "sd.pt", tmp_path / "arch.json"


MLP_ARCH = [{"type": "Flatten"}, {"type": "Linear", "in_features": 64, "out_features": 48},
            {"type": "BatchNorm1d", "num_features": 48}, {"type": "ReLU"},
            {"type": "Dropout", "p": 0.1},
            {"type": "Linear", "in_features": 48, "out_features": 10}]


def test_cli_torchscript_and_state_dict_agree(mlp, tmp_path, capsys):
    _script(mlp, tmp_path / "ann.pt")
    _script(nn.Sequential(mlp[:4], mlp[4:]), tmp_path / "nested.pt")
    sd, arch = _save_state_dict(mlp, MLP_ARCH, tmp_path)
    x = torch.rand(7, 1, 8, 8)
    with torch.no_grad():
        for path, a in ((tmp_path / "ann.pt", None), (tmp_path / "nested.pt", None), (sd, arch)):
            assert torch.allclose(load_ann(path, a)(x), mlp(x), atol=1e-6)
    args = ["--timesteps", "2", "--levels", "2", "--calib-samples", "200", "--json"]
    assert main(["convert", str(tmp_path / "ann.pt"), "-o", str(tmp_path / "a"), *args]) == 0
    a = json.loads(capsys.readouterr().out)
    assert main(["convert", str(sd), "--arch", str(arch), "-o", str(tmp_path / "b"),
                 *args]) == 0
    b = json.loads(capsys.readouterr().out)
    assert a["snn_accuracy"] == b["snn_accuracy"] and a["ann_accuracy"] == b["ann_accuracy"]
    na, nb = ir.load(tmp_path / "a"), ir.load(tmp_path / "b")
    for la, lb in zip(na.layers, nb.layers):
        assert np.array_equal(la.weight, lb.weight) and np.array_equal(la.bias, lb.bias)
        assert la.threshold == lb.threshold
    x = np.load(tmp_path / "a" / "inputs.npz")["x"]
    assert float((run(na, x).predictions == np.load(tmp_path / "a" / "inputs.npz")["y"])
                 .mean()) == a["snn_accuracy"]


def test_cli_adafire_and_ssc(mlp, tmp_path, capsys):
    sd, arch = _save_state_dict(mlp, MLP_ARCH, tmp_path)
    base = ["convert", str(sd), "--arch", str(arch), "--timesteps", "2", "--levels", "4",
            "--calib-samples", "200", "--energy-samples", "64", "--level-choices", "1,2,4"]
    assert main([*base, "-o", str(tmp_path / "u"), "--json"]) == 0
    uniform = json.loads(capsys.readouterr().out)
    budget = uniform["energy_nJ"] * 0.97
    assert main([*base, "-o", str(tmp_path / "a"), "--adafire", "--energy-budget",
                 str(budget), "--ssc", "--ssc-rho", "1,2"]) == 0
    out = capsys.readouterr().out
    assert "AdaFire" in out and "Pareto frontier" in out and "SSC" in out
    net = ir.load(tmp_path / "a")
    levels = [l.levels for l in net.layers if l.kind == "dense" and not l.readout]
    assert all(n in (1, 2, 4) for n in levels)
    from golden.energy.compare import ir_report
    from flows.commands.energy import _hw_fifo_depth
    x = load_dataset("digits").x_train[:64]
    assert ir_report(net, x, fifo_depth=_hw_fifo_depth())["summary"]["total"] <= budget


@pytest.mark.parametrize("case,msg", [
    ("missing", "no such file"),
    ("softmax", "unsupported module 'Softmax'"),
    ("mismatch", "does not match the architecture"),
    ("budget", "no choice of levels meets it"),
    ("no-arch", "give its architecture with --arch"),
    ("bn-after-relu", "a BatchNorm must follow a Linear or Conv2d"),
    ("arch-missing", "no such file"),
    ("arch-malformed", "malformed JSON"),
    ("unknown-key", "has unknown key 'out'"),
])
def test_bad_input_is_one_line(mlp, tmp_path, capsys, case, msg):
    sd, arch = _save_state_dict(mlp, MLP_ARCH, tmp_path)
    argv = ["convert", str(sd), "--arch", str(arch), "-o", str(tmp_path / "o"),
            "--calib-samples", "100", "--energy-samples", "16"]
    if case == "missing":
        argv[1] = str(tmp_path / "nothing.pt")
    elif case == "softmax":
        _script(nn.Sequential(nn.Linear(64, 10), nn.Softmax(dim=1)), tmp_path / "s.pt")
        argv[1:4] = [str(tmp_path / "s.pt")]
    elif case == "mismatch":
        bad = json.loads(json.dumps(MLP_ARCH))
        bad[1]["out_features"] = bad[2]["num_features"] = 32
        (tmp_path / "arch.json").write_text(json.dumps(bad))
    elif case == "budget":
        argv += ["--adafire", "--energy-budget", "0.001"]
    elif case == "no-arch":
        argv[2:4] = []
    elif case == "arch-missing":
        argv[3] = str(tmp_path / "nothing.json")
    elif case == "arch-malformed":
        (tmp_path / "arch.json").write_text("[{")
    elif case == "unknown-key":
        (tmp_path / "arch.json").write_text(json.dumps([{"type": "Linear", "out": 3}]))
    elif case == "bn-after-relu":
        m = nn.Sequential(nn.Linear(64, 8), nn.ReLU(), nn.BatchNorm1d(8), nn.Linear(8, 10))
        _script(m.eval(), tmp_path / "b.pt")
        argv[1:4] = [str(tmp_path / "b.pt")]
    rc = main(argv)
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if line.strip()]
    assert rc != 0 and len(lines) == 1 and msg in lines[0], err


def test_conversion_experiment_tiny(tmp_path):
    from experiments import conversion

    result = conversion.run_experiment(archs=("mlp",), uniform=(1, 2), budgets=(2,),
                                       choices=(1, 2), rhos=(1.0, 2.0), epochs=2,
                                       calib_samples=100, energy_samples=16, log=lambda m: None)
    methods = [r["method"] for r in result["rows"]]
    assert methods == ["uniform", "uniform", "AdaFire @ E(N=2)", "AdaFire + SSC @ E(N=2)"]
    budget = result["rows"][1]["energy_nJ"]
    assert all(r["energy_nJ"] <= budget for r in result["rows"][2:])
    assert set(result["sensitivities"]["mlp"][2]) == {"fc1", "fc2"}
    files = conversion.write_outputs(result, tmp_path)
    with open(files["md"]) as f:
        assert "AdaFire + SSC" in f.read()

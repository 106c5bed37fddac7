"""QCFS training (seed 003, `mlsnn train --qcfs`) and its lossless conversion (docs/convert.md)."""

import json

import numpy as np
import pytest
import torch

from flows.cli import main
from golden.convert import clip_floor, convert, load_ann
from golden.datasets import load_dataset
from golden.reference import run
from golden.train import QCFS, qcfs, qcfs_forward, train_qcfs


@pytest.fixture(scope="module")
def digits():
    return load_dataset("digits")


@pytest.fixture(scope="module")
def trained():
    return train_qcfs(levels=8, epochs=3, seed=0)


def test_qcfs_levels_and_straight_through_gradient():
    lam = torch.tensor(1.5, requires_grad=True)
    a = torch.linspace(-1, 3, 201, requires_grad=True)
    y = qcfs(a, lam, 8, 0.5)
    k = torch.clamp(torch.floor(a.detach() * 8 / 1.5 + 0.5), 0, 8)
    assert torch.equal(y.detach() * 8 / 1.5, k * 1.0) or torch.allclose(y.detach(), k * 1.5 / 8)
    y.sum().backward()
    inside = (a.detach() > 0) & (a.detach() < 1.5)
    # the floor passes the gradient straight through inside the clip range, nothing outside
    assert bool((a.grad[inside] != 0).all()) and bool((a.grad[a.detach() > 1.6] == 0).all())
    assert lam.grad is not None and float(lam.grad) != 0


def test_if_neuron_with_half_threshold_start_is_qcfs():
    """At T·N = Q a multi-level IF neuron with v0 = θ/2 under a constant input a emits Σz =
    QCFS's level k (seed 003 Eq. 2 = ClipFloor with shift 1/2)."""
    from golden.reference import fire

    T, N, lam = 2, 4, 1.2
    theta = lam / N
    a = torch.linspace(-0.5, 1.7, 397, dtype=torch.float64)
    p, total = torch.full_like(a, theta / 2), torch.zeros_like(a)
    for _ in range(T):
        h = p + a
        z = fire(h, theta, N)
        p, total = h - z * theta, total + z
    k = torch.clamp(torch.floor(a * (T * N) / lam + 0.5), 0, T * N)
    assert torch.equal(total, k)
    assert torch.allclose(clip_floor(a, T * N, lam, 0.5), k * lam / (T * N))


def test_trained_qcfs_converts_losslessly(trained, digits):
    model, layers, metrics = trained
    assert metrics["test_accuracy"] > 0.85
    assert [d["type"] for d in layers] == ["Flatten", "Linear", "QCFS", "Linear"]
    assert len(metrics["lambdas"]) == 1 and metrics["lambdas"][0] != 1.0   # λ was trained
    net, summary = convert(model, digits, timesteps=1, levels=8)
    fc1 = summary["layers"][0]
    assert fc1["qcfs_levels"] == 8 and fc1["mse"] == 0.0
    # The integer golden spike levels of the hidden layer against the float QCFS levels.
    x = digits.x_test
    with torch.no_grad():
        h = torch.as_tensor(x, dtype=torch.float32).reshape(len(x), -1) * digits.input_scale
        pre = model[1](h)
        k = model[2].counts(pre).round().to(torch.int64).numpy()
    res = run(net, net.check_inputs(x.reshape((-1,) + net.input.shape)))
    z = res.events[net.layers[0].name].sum(0)
    agree = float((z == k).mean())
    assert agree > 0.98, agree           # off only by the 8-bit weight and threshold rounding
    assert int(np.abs(z - k).max()) <= 1
    assert abs(summary["snn_accuracy"] - summary["ann_accuracy"]) <= 0.005


def test_spike_penalty_lowers_spikes():
    _, _, plain = train_qcfs(levels=4, epochs=2, seed=1)
    _, _, sparse = train_qcfs(levels=4, epochs=2, seed=1, spike_l1=0.05)
    assert sparse["spikes_per_image"] < 0.8 * plain["spikes_per_image"]


def test_qcfs_cnn_layers():
    _, layers, metrics = train_qcfs(levels=2, arch="cnn", epochs=1, seed=0, channels=4,
                                    hidden=16)
    assert [d["type"] for d in layers].count("QCFS") == 3 and len(metrics["lambdas"]) == 3


def test_cli_train_qcfs_then_convert(tmp_path, capsys):
    ann = tmp_path / "ann.pt"
    assert main(["train", "--qcfs", "4", "--epochs", "2", "-o", str(ann)]) == 0
    out = capsys.readouterr().out
    arch = tmp_path / "ann.arch.json"
    assert "QCFS mlp Q=4" in out and arch.exists()
    assert json.loads(arch.read_text())[2] == {"type": "QCFS", "levels": 4, "shift": 0.5}
    model = load_ann(str(ann), str(arch))
    assert isinstance(model[2], QCFS) and model[2].levels == 4
    net = tmp_path / "net"
    assert main(["convert", str(ann), "--arch", str(arch), "--timesteps", "2", "--levels", "2",
                 "-o", str(net)]) == 0
    captured = capsys.readouterr()
    assert "QCFS Q=4" in captured.out + captured.err
    assert (net / "network.json").exists()


@pytest.mark.parametrize("argv, msg", [
    (["--spike-l1", "0.1"], "--spike-l1 needs --qcfs Q"),
    (["--qcfs", "0"], "--qcfs"),
    (["--qcfs", "4", "--pool", "max"], "--qcfs trains mlp or cnn without pooling"),
    (["--qcfs", "4", "--arch", "vgg"], "--qcfs trains arch mlp or cnn"),
    (["--qcfs", "4", "--spike-l1", "-1"], "--spike-l1"),
])
def test_cli_qcfs_bad_input_is_one_line(tmp_path, capsys, argv, msg):
    rc = main(["train", *argv, "--epochs", "1", "-o", str(tmp_path / "a.pt")])
    err = capsys.readouterr().err
    assert rc == 1 and msg in err and err.count("\n") == 1, err
    assert not (tmp_path / "a.pt").exists()


def test_qcfs_forward_counts_spikes(trained, digits):
    model, _, metrics = trained
    x = torch.as_tensor(digits.x_test, dtype=torch.float32) * digits.input_scale
    with torch.no_grad():
        logits, spikes = qcfs_forward(model, x)
        assert torch.allclose(logits, model(x), atol=1e-5)
    assert float(spikes) == pytest.approx(metrics["spikes_per_image"])

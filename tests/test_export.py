"""Float → integer export (golden/export.py) and `mlsnn export`."""

import json

import numpy as np
import pytest
import torch

from flows.cli import main
from golden import ir
from golden.errors import MlsnnError
from golden.export import export, fold_batchnorm
from golden.reference import run
from golden.train import build_model, ModelConfig, save_checkpoint, train


def test_fold_batchnorm_matches_module():
    torch.manual_seed(0)
    conv = torch.nn.Conv2d(3, 4, 3, padding=1)
    bn = torch.nn.BatchNorm2d(4)
    bn.running_mean.uniform_(-1, 1)
    bn.running_var.uniform_(0.5, 2)
    bn.weight.data.uniform_(0.5, 1.5)
    bn.bias.data.uniform_(-0.5, 0.5)
    bn.eval()
    x = torch.randn(2, 3, 5, 5)
    w, b = fold_batchnorm(conv.weight, conv.bias, bn)
    folded = torch.nn.functional.conv2d(x, w, b, padding=1)
    assert torch.allclose(folded, bn(conv(x)), atol=1e-5)
    with pytest.raises(MlsnnError, match="expected a BatchNorm1d/2d, not Linear"):
        fold_batchnorm(conv.weight, conv.bias, torch.nn.Linear(2, 2))


@pytest.mark.parametrize("arch,pool", [
    ("mlp", ""), ("cnn", ""), ("cnn", "max"), ("cnn", "avg"), ("vgg", "max"), ("vgg", "avg"),
    ("sew-resnet", ""), ("sparse-resnet", "")])
def test_integer_model_equals_float_model_on_exact_weights(arch, pool):
    """With weights that are exact multiples of the integer step, the integer golden model
    must reproduce the float model's spikes exactly (no rounding anywhere)."""
    torch.manual_seed(1)
    shape = (64,) if arch == "mlp" else (1, 8, 8)
    cfg = ModelConfig(arch=arch, input_shape=shape, num_classes=10, timesteps=2, levels=4,
                      hidden=16, channels=4, input_scale=1 / 16, in_bits=5, pool=pool)
    model = build_model(cfg)
    theta = cfg.threshold / cfg.levels
    # Weights k·step/s_in with integer |k| <= 31 and one k = 31: the exporter's Q is then
    # 64/θ (θ_int = 64) and every s_in·w·Q = k, b·Q an integer: nothing is rounded.
    step = theta / 64
    scale_in = {"input": cfg.input_scale}
    with torch.no_grad():
        for spec in model.layers:
            # A max pool's events keep the scale of its input; every other layer's is θ.
            scale_in[spec.name] = scale_in[spec.inputs[0]] if spec.kind == "maxpool2d" \
                else theta
            if spec.name not in model.synapses:
                continue
            syn = model.synapses[spec.name]
            s_in = scale_in[spec.inputs[0]]
            k = torch.clamp(torch.round(syn.weight * s_in / step * 8), -31, 31)
            k.view(-1)[0] = 31
            syn.weight.copy_(k * step / s_in)
            syn.bias.copy_(torch.round(syn.bias / step) * step)
    net, report = export(model, w_bits=6)
    assert all(report[l.name]["threshold"] == 64 for l in net.layers
               if l.kind in ("dense", "conv2d") and not l.readout)
    # An average pool of θ-valued events into a neuron of θ: θ_int = k² = 4, exactly.
    pools = {l.name: l.kind for l in net.layers if l.kind in ("maxpool2d", "avgpool2d")}
    assert sorted(pools.items()) == ([] if not pool else
                                     [("pool1", f"{pool}pool2d"), ("pool2", f"{pool}pool2d")])
    for name, kind in pools.items():
        if kind == "avgpool2d":
            assert (net.layer(name).threshold, net.layer(name).levels) == (4, 4)
            assert report[name]["threshold_error"] == 0.0
    rng = np.random.default_rng(0)
    x = rng.integers(0, 17, size=(20,) + shape)
    rec = {}
    with torch.no_grad():
        logits = model(model.encode(x).to(torch.float64).float(), record=rec)
    res = run(net, x)
    for spec in model.layers:
        if spec.readout or (spec.kind == "join" and spec.mode == "sew"):
            continue
        z_float = torch.round(rec[spec.name] / scale_in[spec.name]).to(torch.int64).numpy()
        assert np.array_equal(res.events[spec.name].reshape(z_float.shape), z_float), spec.name
    for name in pools:
        assert res.events[name].sum() > 0, name            # the pools do pass events on
    assert np.array_equal(res.predictions, logits.argmax(1).numpy())


def test_export_cli_reports_accuracy_drop(tmp_path, capsys):
    model, metrics = train(arch="mlp", timesteps=1, levels=4, epochs=3, hidden=32, seed=0)
    save_checkpoint(model, tmp_path / "m.pt", metrics=metrics)
    rc = main(["export", str(tmp_path / "m.pt"), "-o", str(tmp_path / "net"), "--json"])
    out, err = capsys.readouterr()
    assert rc == 0, err
    doc = json.loads(out)
    assert doc["float_accuracy"] > 0.85
    assert abs(doc["drop_points"]) <= 1.0
    net = ir.load(tmp_path / "net" / "network.json")
    data = np.load(tmp_path / "net" / "inputs.npz")
    acc = float((run(net, data["x"]).predictions == data["y"]).mean())
    assert acc == doc["golden_accuracy"]
    rc = main(["export", str(tmp_path / "missing.pt"), "-o", str(tmp_path / "n2")])
    assert rc == 1
    assert "file not found" in capsys.readouterr().err
    (tmp_path / "junk.pt").write_bytes(b"junk")
    rc = main(["export", str(tmp_path / "junk.pt"), "-o", str(tmp_path / "n3")])
    assert rc == 1
    assert "not a readable PyTorch checkpoint" in capsys.readouterr().err


@pytest.mark.parametrize("arch,pool", [("cnn", "max"), ("vgg", "avg")])
def test_export_pool_archs(tmp_path, capsys, arch, pool):
    """A trained net with pools: the IR holds the pool kinds (max: no arrays, the input's scale;
    avg: θ_int = k² from θ_in = θ), and the integer golden accuracy is the float one."""
    model, metrics = train(arch=arch, pool=pool, timesteps=2, levels=4, epochs=2, hidden=16,
                           seed=0)
    save_checkpoint(model, tmp_path / "m.pt", metrics=metrics)
    rc = main(["export", str(tmp_path / "m.pt"), "-o", str(tmp_path / "net"), "--json"])
    out, err = capsys.readouterr()
    assert rc == 0, err
    doc = json.loads(out)
    convs = ["conv1", "conv2"] if arch == "cnn" else ["conv1_1", "conv1_2", "conv2_1",
                                                        "conv2_2"]
    names = [l["name"] for l in doc["layers"]]
    assert [l["kind"] for l in doc["layers"] if l["name"].startswith("pool")] == \
        [f"{pool}pool2d"] * 2
    assert names == (["conv1", "pool1", "conv2", "pool2", "fc1", "readout"] if arch == "cnn"
                     else convs[:2] + ["pool1"] + convs[2:] + ["pool2", "readout"])
    net = ir.load(tmp_path / "net" / "network.json")
    p1, p2 = net.layer("pool1"), net.layer("pool2")
    assert (p1.kind, p1.kernel, p1.inputs) == (f"{pool}pool2d", 2, (convs[len(convs) // 2 - 1],))
    assert net.info("pool1").out_shape == (8, 4, 4) and net.info("pool2").out_shape == (16, 2, 2)
    _, report = export(model)
    if pool == "avg":
        assert (p1.threshold, p1.levels, p1.v0, p2.threshold) == (4, 4, 0, 4)
        assert report["pool1"] == {"kind": "avgpool2d", "kernel": 2, "q": 16.0, "threshold": 4,
                                   "threshold_error": 0.0}
    else:
        assert report["pool1"] == {"kind": "maxpool2d", "kernel": 2}
        assert p1.out_scale(0.25) == 0.25
    data = np.load(tmp_path / "net" / "inputs.npz")
    res = run(net, data["x"])
    assert float((res.predictions == data["y"]).mean()) == doc["golden_accuracy"]
    assert doc["float_accuracy"] > 0.4 and abs(doc["drop_points"]) <= 2.0
    assert int(res.events["pool2"].sum()) > 0

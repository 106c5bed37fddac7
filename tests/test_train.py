"""Float multi-level SNN training on scikit-learn digits, datasets, checkpoints, `mlsnn train`."""

import json

import numpy as np
import pytest
import torch

from flows.cli import main as cli_main
from golden.errors import MlsnnError
from golden.neuron import MultiLevelIF
from golden.train import (ModelConfig, build_model, dataset_from_arrays, load_checkpoint,
                          load_dataset, load_digits_dataset, load_numpy_dataset,
                          save_checkpoint, train)


@pytest.fixture(scope="module")
def digits():
    return load_digits_dataset()


def test_digits_split_and_input_scale(digits):
    assert (len(digits.y_train), len(digits.y_test)) == (1347, 450)
    assert digits.input_shape == (1, 8, 8) and digits.num_classes == 10
    assert digits.input_scale == 1 / 16 and digits.in_bits == 5
    assert int(digits.x_train.max()) == 16 and digits.x_train.dtype == np.int64
    # Stratified: every class keeps its 25 % share in the test set, to one sample.
    test = np.bincount(digits.y_test)
    full = test + np.bincount(digits.y_train)
    assert np.all(np.abs(test - 0.25 * full) <= 1)
    again = load_digits_dataset()
    assert np.array_equal(again.x_test, digits.x_test)
    assert not np.array_equal(load_digits_dataset(split_seed=1).y_test, digits.y_test)


def test_mlp_reaches_90_percent(digits):
    seen = []
    model, metrics = train(arch="mlp", timesteps=1, levels=4, epochs=10, seed=0,
                           dataset=digits, progress=seen.append)
    assert metrics["test_accuracy"] > 0.90
    assert [e["epoch"] for e in seen] == list(range(1, 11))
    assert set(seen[0]) == {"epoch", "epochs", "loss", "train_accuracy", "test_accuracy",
                            "seconds"}
    assert isinstance(metrics["test_accuracy"], float)
    assert metrics["test_accuracy"] == seen[-1]["test_accuracy"]
    assert not model.training


@pytest.mark.parametrize("arch,timesteps,levels,kwargs,minimum", [
    ("mlp", 2, 2, dict(hidden=16), 0.5),
    ("cnn", 1, 2, dict(channels=4, hidden=16), 0.3),
    ("sew-resnet", 2, 2, dict(channels=4), 0.3),
    ("sparse-resnet", 1, 4, dict(channels=4, blocks=2), 0.3),
])
def test_short_training_beats_chance(digits, arch, timesteps, levels, kwargs, minimum):
    model, metrics = train(arch=arch, timesteps=timesteps, levels=levels, epochs=2, seed=1,
                           dataset=digits, **kwargs)
    assert metrics["test_accuracy"] > minimum          # chance is 0.1
    assert model.config.timesteps == timesteps and model.config.levels == levels


def test_training_is_deterministic(digits):
    a, _ = train(arch="mlp", hidden=8, epochs=1, seed=3, dataset=digits)
    b, _ = train(arch="mlp", hidden=8, epochs=1, seed=3, dataset=digits)
    for (ka, va), (kb, vb) in zip(a.state_dict().items(), b.state_dict().items()):
        assert ka == kb and torch.equal(va, vb)


# -- model structure (what an exporter walks) --------------------------------------------------

def _config(arch, **kw):
    return ModelConfig(arch=arch, input_shape=(1, 8, 8), num_classes=10, **kw)


def test_layer_graphs():
    def graph(model):
        return [(s.name, s.kind, s.inputs, s.mode, s.readout) for s in model.layers]

    assert graph(build_model(_config("mlp"))) == [
        ("fc1", "dense", ("input",), None, False), ("readout", "dense", ("fc1",), None, True)]
    assert graph(build_model(_config("cnn"))) == [
        ("conv1", "conv2d", ("input",), None, False), ("conv2", "conv2d", ("conv1",), None, False),
        ("fc1", "dense", ("conv2",), None, False), ("readout", "dense", ("fc1",), None, True)]
    sew = build_model(_config("sew-resnet", blocks=2))
    assert graph(sew) == [
        ("stem", "conv2d", ("input",), None, False),
        ("b1_conv1", "conv2d", ("stem",), None, False),
        ("b1_conv2", "conv2d", ("b1_conv1",), None, False),
        ("b1_join", "join", ("b1_conv2", "stem"), "sew", False),
        ("b2_conv1", "conv2d", ("b1_join",), None, False),
        ("b2_conv2", "conv2d", ("b2_conv1",), None, False),
        ("b2_join", "join", ("b2_conv2", "b1_join"), "sew", False),
        ("readout", "dense", ("b2_join",), None, True)]
    assert "b1_join" not in sew.neurons
    sparse = build_model(_config("sparse-resnet"))
    assert [s.mode for s in sparse.layers if s.kind == "join"] == ["barrier"]
    barrier = sparse.neurons["b1_join"]
    assert isinstance(barrier, MultiLevelIF) and barrier.surrogate == "ste"
    assert all(n.surrogate == "sigmoid" for k, n in sparse.neurons.items() if k != "b1_join")
    conv2 = build_model(_config("cnn")).synapses["conv2"]
    assert (conv2.kernel_size, conv2.stride, conv2.padding) == ((3, 3), (2, 2), (1, 1))


def test_recorded_values_are_levels_times_theta(digits):
    torch.manual_seed(0)
    model = build_model(_config("sew-resnet", timesteps=2, levels=3, threshold=1.0))
    with torch.no_grad():
        # Larger weights so that neurons fire and saturate.
        for syn in model.synapses.values():
            syn.weight.mul_(4)
        rec = {}
        logits = model(model.encode(digits.x_test[:16]), record=rec)
    theta = 1.0 / 3
    for name in ("stem", "b1_conv1", "b1_conv2"):
        z = rec[name] / theta
        assert rec[name].shape[:2] == (2, 16)
        assert torch.allclose(z, z.round(), atol=1e-5)
        assert z.min() >= 0 and z.max() <= 3 + 1e-5
    joined = rec["b1_join"] / theta
    assert torch.allclose(joined, (rec["stem"] + rec["b1_conv2"]) / theta)
    assert joined.max() > 3                             # a SEW join carries up to 2N
    assert torch.equal(rec["readout"], logits) and logits.shape == (16, 10)


def test_readout_sums_potential_over_timesteps(digits):
    torch.manual_seed(0)
    model = build_model(_config("mlp", timesteps=3))
    x = model.encode(digits.x_test[:8])
    rec = {}
    with torch.no_grad():
        logits = model(x, record=rec)
        expected = model.synapses["readout"](rec["fc1"]).sum(0)
    assert torch.allclose(logits, expected, atol=1e-5)


# -- checkpoints --------------------------------------------------------------------------------

@pytest.mark.parametrize("arch", ["mlp", "sparse-resnet"])
def test_checkpoint_round_trip(digits, tmp_path, arch):
    model, metrics = train(arch=arch, timesteps=2, levels=3, epochs=1, channels=4, hidden=16,
                           dataset=digits)
    path = tmp_path / "model.pt"
    save_checkpoint(model, path, metrics=metrics)
    doc = torch.load(path, weights_only=True)
    cfg = doc["config"]
    assert (cfg["arch"], cfg["timesteps"], cfg["levels"], cfg["input_scale"],
            cfg["split_seed"]) == (arch, 2, 3, 1 / 16, 0)
    assert cfg["thresholds"] == {name: 1.0 for name in model.neurons}
    loaded = load_checkpoint(path)
    assert loaded.config == model.config and not loaded.training
    x = model.encode(digits.x_test)
    with torch.no_grad():
        assert torch.equal(loaded(x), model(x))
    assert torch.equal(loaded.predict(digits.x_test), model.predict(digits.x_test))


def test_checkpoint_keeps_per_layer_thresholds(tmp_path):
    model = build_model(_config("cnn"))
    model.neurons["conv2"].threshold = 0.5
    save_checkpoint(model, tmp_path / "m.pt")
    loaded = load_checkpoint(tmp_path / "m.pt")
    assert loaded.thresholds() == {"conv1": 1.0, "conv2": 0.5, "fc1": 1.0}
    assert loaded.neurons["conv2"].theta == 0.5 / 4


def test_bad_checkpoints(tmp_path):
    junk = tmp_path / "junk.pt"
    junk.write_bytes(b"not a checkpoint")
    with pytest.raises(MlsnnError, match="is not a readable PyTorch checkpoint"):
        load_checkpoint(junk)
    other = tmp_path / "other.pt"
    torch.save({"weights": torch.ones(2)}, other)
    with pytest.raises(MlsnnError) as info:
        load_checkpoint(other)
    assert str(info.value) == (f"{other} is not an mlsnn float-model checkpoint (expected a dict "
                               f"with format 'mlsnn-float-model', config and state_dict)")
    with pytest.raises(FileNotFoundError):
        load_checkpoint(tmp_path / "missing.pt")


# -- user datasets --------------------------------------------------------------------------------

@pytest.mark.parametrize("x_shape,y_shape,message", [
    ((10,), (10,), "x must have shape [samples, features], [samples, height, width] or "
                   "[samples, channels, height, width], not (10,)"),
    ((10, 2, 2, 2, 2), (10,), "x must have shape [samples, features], [samples, height, width] "
                              "or [samples, channels, height, width], not (10, 2, 2, 2, 2)"),
    ((10, 4), (9,), "y must have shape [samples] = (10,) to match x, not (9,)"),
    ((10, 4), (10, 1), "y must have shape [samples] = (10,) to match x, not (10, 1)"),
])
def test_bad_dataset_shapes(x_shape, y_shape, message):
    with pytest.raises(MlsnnError) as info:
        dataset_from_arrays(np.zeros(x_shape, np.uint8), np.zeros(y_shape, np.int64))
    assert str(info.value) == message


def test_bad_dataset_values():
    y = np.arange(12) % 3
    cases = [
        (np.full((12, 4), -1), y, "x must be non-negative (unsigned integer inputs), but its "
                                  "minimum is -1"),
        (np.full((12, 4), 0.5), y, "x must hold whole numbers (unsigned integer inputs), but "
                                   "has fractions"),
        (np.full((12, 4), 1 << 16), y, "x values must be below 2**16, but the maximum is 65536"),
        (np.ones((12, 4), bool), y, "x must hold integers, not bool"),
        (np.ones((12, 4)), np.zeros(12, int), "y must hold at least two classes, not 1"),
        (np.ones((12, 4)), np.r_[np.zeros(11, int), 1], "every class needs at least two samples "
                                                        "for a stratified split; class(es) [1] "
                                                        "have one"),
    ]
    for x, yy, message in cases:
        with pytest.raises(MlsnnError) as info:
            dataset_from_arrays(x, yy)
        assert str(info.value) == message


def test_image_arch_needs_images(digits):
    flat = dataset_from_arrays(np.concatenate([digits.x_train, digits.x_test]).reshape(-1, 64),
                               np.concatenate([digits.y_train, digits.y_test]))
    assert flat.input_shape == (64,)
    with pytest.raises(MlsnnError) as info:
        train(arch="cnn", epochs=1, dataset=flat)
    assert str(info.value) == ("arch 'cnn' needs image inputs (x of shape [samples, height, "
                               "width] or [samples, channels, height, width]), but the samples "
                               "are flat vectors of shape (64,)")


def test_user_dataset_files(tmp_path):
    from sklearn.datasets import load_digits

    d = load_digits()
    x, y = d.data.astype(np.uint8), d.target
    np.savez(tmp_path / "flat.npz", x=x, y=y)
    ds = load_dataset(str(tmp_path / "flat.npz"))
    assert ds.name == "flat.npz" and ds.input_shape == (64,) and ds.input_scale == 1 / 16
    _, metrics = train(arch="mlp", hidden=16, epochs=2, dataset=tmp_path / "flat.npz")
    assert metrics["test_accuracy"] > 0.5
    (tmp_path / "imgs").mkdir()
    np.save(tmp_path / "imgs" / "x.npy", d.images)          # float64 whole numbers, [n, 8, 8]
    np.save(tmp_path / "imgs" / "y.npy", y)
    ds = load_numpy_dataset(tmp_path / "imgs")
    assert ds.input_shape == (1, 8, 8) and ds.num_classes == 10
    np.savez(tmp_path / "nolabels.npz", x=x)
    with pytest.raises(MlsnnError) as info:
        load_dataset(tmp_path / "nolabels.npz")
    assert str(info.value) == (f"{tmp_path / 'nolabels.npz'} must hold arrays 'x' and 'y'; it "
                               f"lacks 'y' (it has 'x')")
    (tmp_path / "empty").mkdir()
    with pytest.raises(MlsnnError) as info:
        load_dataset(tmp_path / "empty")
    assert str(info.value) == f"dataset directory {tmp_path / 'empty'} has no x.npy"
    with pytest.raises(FileNotFoundError):
        load_dataset(tmp_path / "missing.npz")


def test_bad_training_arguments(digits):
    cases = [
        (dict(arch="vgg16"), "arch must be one of mlp, cnn, vgg, sew-resnet, sparse-resnet, not "
                             "'vgg16'"),
        (dict(levels=0), "levels must be a positive integer, not 0"),
        (dict(timesteps=-1), "timesteps must be a positive integer, not -1"),
        (dict(epochs=0), "epochs must be a positive integer, not 0"),
        (dict(threshold=0.0), "threshold must be a positive number, not 0.0"),
    ]
    for kwargs, message in cases:
        with pytest.raises(MlsnnError) as info:
            train(dataset=digits, **kwargs)
        assert str(info.value) == message


# -- command line ---------------------------------------------------------------------------------

def test_cli_train(tmp_path, capsys):
    out = tmp_path / "model.pt"
    rc = cli_main(["train", "--arch", "mlp", "--timesteps", "1", "--levels", "4", "--epochs", "3",
                   "--hidden", "16", "--seed", "0", "-o", str(out), "--json"])
    captured = capsys.readouterr()
    assert rc == 0
    progress = captured.err.strip().splitlines()
    assert len(progress) == 3 and progress[0].startswith("epoch 1/3: loss ")
    assert "test accuracy" in progress[-1]
    doc = json.loads(captured.out)
    assert doc["checkpoint"] == str(out) and doc["config"]["arch"] == "mlp"
    assert doc["test_accuracy"] > 0.5
    model = load_checkpoint(out)
    assert model.config.hidden == 16


def test_cli_train_block_strides(tmp_path, capsys):
    out = tmp_path / "res.pt"
    rc = cli_main(["train", "--arch", "sparse-resnet", "--blocks", "2", "--block-strides", "1,2",
                   "--channels", "4", "--epochs", "1", "-o", str(out), "--json"])
    captured = capsys.readouterr()
    assert rc == 0
    assert json.loads(captured.out)["config"]["block_strides"] == [1, 2]
    assert load_checkpoint(out).config.block_strides == (1, 2)
    for strides, msg in [("1,x", "--block-strides must be comma-separated integers such as "
                                 "1,2, not '1,x'"),
                         ("1", "block_strides must give one stride per residual block (2), "
                               "not 1")]:
        rc = cli_main(["train", "--arch", "sparse-resnet", "--blocks", "2", "--block-strides",
                       strides, "--epochs", "1", "-o", str(tmp_path / "bad.pt")])
        err = capsys.readouterr().err
        assert rc == 1 and err == f"mlsnn train: error: {msg}\n"


def test_cli_bad_dataset_is_one_line(tmp_path, capsys):
    bad = tmp_path / "bad.npz"
    np.savez(bad, x=np.zeros(10, np.uint8), y=np.zeros(10, np.int64))
    rc = cli_main(["train", "--dataset", str(bad), "-o", str(tmp_path / "m.pt")])
    err = capsys.readouterr().err
    assert rc == 1
    assert err == ("mlsnn train: error: x must have shape [samples, features], [samples, height, "
                   "width] or [samples, channels, height, width], not (10,)\n")
    rc = cli_main(["train", "--dataset", str(tmp_path / "nope.npz")])
    assert rc == 1
    assert capsys.readouterr().err == f"mlsnn train: error: file not found: {tmp_path}/nope.npz\n"


# -- downsampling residual blocks (issue 4) -------------------------------------------------------

def test_downsampling_block_graph_and_shapes(digits):
    def graph(model):
        return [(s.name, s.kind, s.inputs, s.mode) for s in model.layers]

    for arch, mode in (("sew-resnet", "sew"), ("sparse-resnet", "barrier")):
        model = build_model(_config(arch, blocks=2, channels=4, block_strides=(1, 2)))
        assert graph(model) == [
            ("stem", "conv2d", ("input",), None),
            ("b1_conv1", "conv2d", ("stem",), None),
            ("b1_conv2", "conv2d", ("b1_conv1",), None),
            ("b1_join", "join", ("b1_conv2", "stem"), mode),
            ("b2_conv1", "conv2d", ("b1_join",), None),
            ("b2_conv2", "conv2d", ("b2_conv1",), None),
            ("b2_short", "conv2d", ("b1_join",), None),
            ("b2_join", "join", ("b2_conv2", "b2_short"), mode),
            ("readout", "dense", ("b2_join",), None)]
        syn = model.synapses
        assert (syn["b2_conv1"].in_channels, syn["b2_conv1"].out_channels) == (4, 8)
        assert (syn["b2_conv1"].stride, syn["b2_conv1"].padding) == ((2, 2), (1, 1))
        assert (syn["b2_conv2"].in_channels, syn["b2_conv2"].out_channels) == (8, 8)
        short = syn["b2_short"]
        assert (short.in_channels, short.out_channels, short.kernel_size, short.stride,
                short.padding) == (4, 8, (1, 1), (2, 2), (0, 0))
        assert isinstance(model.neurons["b2_short"], MultiLevelIF)
        assert model.neurons["b2_short"].surrogate == "sigmoid"
        assert syn["readout"].in_features == 8 * 4 * 4
        rec = {}
        with torch.no_grad():
            logits = model(model.encode(digits.x_test[:5]), record=rec)
        assert logits.shape == (5, 10)
        assert rec["b1_join"].shape == (1, 5, 4, 8, 8)
        for name in ("b2_conv1", "b2_conv2", "b2_short", "b2_join"):
            assert rec[name].shape == (1, 5, 8, 4, 4)
    # Odd sizes: the 3x3/p1 and the 1x1/p0 stride-2 convolutions agree (ceil(7/2) = 4).
    odd = build_model(ModelConfig(arch="sew-resnet", input_shape=(1, 7, 7), num_classes=3,
                                  block_strides=(2,), channels=2))
    assert odd.synapses["readout"].in_features == 4 * 4 * 4
    # Default: identity shortcuts, as before (old checkpoints load unchanged).
    plain = build_model(_config("sew-resnet", blocks=2))
    assert plain.config.block_strides == () and "b2_short" not in plain.synapses


def test_block_strides_validation():
    cases = [
        (dict(arch="sew-resnet", blocks=2, block_strides=(2,)),
         "block_strides must give one stride per residual block (2), not 1"),
        (dict(arch="sew-resnet", block_strides=(3,)),
         "block_strides must be a list of strides 1 or 2, one per residual block, not (3,)"),
        (dict(arch="sparse-resnet", block_strides=2),
         "block_strides must be a list of strides 1 or 2, one per residual block, not 2"),
        (dict(arch="cnn", block_strides=(2,)),
         "block_strides applies to the residual networks only, not arch 'cnn'"),
    ]
    for kwargs, message in cases:
        with pytest.raises(MlsnnError) as info:
            _config(**kwargs)
        assert str(info.value) == message
    assert _config("sparse-resnet", blocks=2, block_strides=[1, 2]).block_strides == (1, 2)


def test_old_checkpoint_without_block_strides_loads(tmp_path):
    model = build_model(_config("sparse-resnet", channels=4))
    save_checkpoint(model, tmp_path / "m.pt")
    doc = torch.load(tmp_path / "m.pt", weights_only=True)
    assert doc["config"].pop("block_strides") == []
    torch.save(doc, tmp_path / "old.pt")
    assert load_checkpoint(tmp_path / "old.pt").config == model.config


@pytest.mark.parametrize("arch", ["sew-resnet", "sparse-resnet"])
def test_downsampling_training_and_export_round_trip(digits, tmp_path, arch):
    from golden import ir
    from golden.export import export
    from golden.reference import run

    model, metrics = train(arch=arch, timesteps=2, levels=2, epochs=2, seed=1, channels=8,
                           blocks=1, block_strides=(2,), dataset=digits)
    assert metrics["test_accuracy"] > 0.5                  # chance is 0.1
    save_checkpoint(model, tmp_path / "m.pt")
    loaded = load_checkpoint(tmp_path / "m.pt")
    assert loaded.config.block_strides == (2,) and loaded.config == model.config
    net, report = export(loaded, w_bits=8)
    short = net.layer("b1_short")
    assert isinstance(short, ir.Conv2d) and short.inputs == ("stem",)
    assert (short.kernel, short.stride, short.padding) == (1, 2, 0)
    assert short.weight.shape == (8, 1, 1, 16)
    join = net.layer("b1_join")
    assert isinstance(join, ir.Join) and join.inputs == ("b1_conv2", "b1_short")
    assert join.mode == ("sew" if arch == "sew-resnet" else "barrier")
    if join.mode == "barrier":
        assert tuple(join.stream_weights) == (1, 1) and join.threshold == 1
    assert net.info("b1_join").out_shape == (16, 4, 4)
    golden = run(net, digits.x_test)
    agree = float(np.mean(golden.predictions == loaded.predict(digits.x_test).numpy()))
    assert agree >= 0.97


# -- pooling: cnn --pool max|avg and vgg (issue 12) ------------------------------------------------

def _graph(model):
    return [(s.name, s.kind, s.inputs, s.kernel) for s in model.layers]


def test_pool_arch_graphs():
    cnn = build_model(_config("cnn", pool="max", channels=4, hidden=16))
    assert _graph(cnn) == [
        ("conv1", "conv2d", ("input",), None), ("pool1", "maxpool2d", ("conv1",), 2),
        ("conv2", "conv2d", ("pool1",), None), ("pool2", "maxpool2d", ("conv2",), 2),
        ("fc1", "dense", ("pool2",), None), ("readout", "dense", ("fc1",), None)]
    assert cnn.synapses["conv2"].stride == (1, 1) and cnn.synapses["fc1"].in_features == 8 * 2 * 2
    assert sorted(cnn.neurons) == ["conv1", "conv2", "fc1"]        # a max pool has no neuron
    vgg = build_model(_config("vgg", pool="avg", channels=4))
    assert _graph(vgg) == [
        ("conv1_1", "conv2d", ("input",), None), ("conv1_2", "conv2d", ("conv1_1",), None),
        ("pool1", "avgpool2d", ("conv1_2",), 2),
        ("conv2_1", "conv2d", ("pool1",), None), ("conv2_2", "conv2d", ("conv2_1",), None),
        ("pool2", "avgpool2d", ("conv2_2",), 2), ("readout", "dense", ("pool2",), None)]
    channels = [(vgg.synapses[n].in_channels, vgg.synapses[n].out_channels)
                for n in ("conv1_1", "conv1_2", "conv2_1", "conv2_2")]
    assert channels == [(1, 4), (4, 4), (4, 8), (8, 8)]
    assert all(vgg.synapses[n].padding == (1, 1) and vgg.synapses[n].stride == (1, 1)
               for n in ("conv1_1", "conv1_2", "conv2_1", "conv2_2"))
    pool = vgg.neurons["pool1"]                      # an average pool's own neuron, like others
    assert isinstance(pool, MultiLevelIF) and pool.surrogate == "sigmoid"
    assert (pool.levels, pool.threshold) == (4, 1.0)
    assert vgg.thresholds()["pool2"] == 1.0
    # Defaults: cnn keeps its stride-2 convolution (old checkpoints), vgg max-pools.
    assert _config("cnn").pool == "none" and _config("vgg").pool == "max"
    assert _config("mlp").pool == "none" and _config("vgg") == _config("vgg", pool="max")


@pytest.mark.parametrize("shape", [(1, 8, 8), (1, 28, 28), (3, 32, 32)])
@pytest.mark.parametrize("arch,pool", [("cnn", "max"), ("cnn", "avg"), ("vgg", "max"),
                                       ("vgg", "avg"), ("cnn", "none")])
def test_pool_archs_forward_shapes(arch, pool, shape):
    torch.manual_seed(0)
    model = build_model(ModelConfig(arch=arch, input_shape=shape, num_classes=10, pool=pool,
                                    channels=4, hidden=16, input_scale=1 / 256, in_bits=8))
    c, h, w = shape
    rec = {}
    with torch.no_grad():
        logits = model(model.encode(np.random.default_rng(0).integers(0, 256, (3,) + shape)),
                       record=rec)
    assert logits.shape == (3, 10)
    if pool == "none":
        assert rec["conv2"].shape == (1, 3, 8, (h + 1) // 2, (w + 1) // 2)
        return
    assert rec["pool1"].shape == (1, 3, 4, h // 2, w // 2)
    assert rec["pool2"].shape == (1, 3, 8, h // 4, w // 4)
    readin = model.synapses["fc1" if arch == "cnn" else "readout"].in_features
    assert readin == 8 * (h // 4) * (w // 4)


def test_pool_float_semantics(digits):
    """Max pool: the largest spike value of each window; average pool: the same levels as the
    integer avgpool2d (window sum of levels, θ_int = k² = 4) fires. (θ = 1/4: every float
    is exact, as the exporter's exactness needs.)"""
    from golden.neuron import multilevel_if

    torch.manual_seed(0)
    for pool in ("max", "avg"):
        model = build_model(_config("vgg", pool=pool, channels=4, timesteps=3, levels=4))
        with torch.no_grad():
            for syn in model.synapses.values():
                syn.weight.mul_(3)                  # so that the neurons fire
            rec = {}
            model(model.encode(digits.x_test[:6]), record=rec)
        theta = 1.0 / 4
        z_in = torch.round(rec["conv1_2"] / theta).to(torch.int64)      # [T, B, 4, 8, 8]
        windows = z_in.reshape(3, 6, 4, 4, 2, 4, 2)
        z_out = torch.round(rec["pool1"] / theta).to(torch.int64)
        assert torch.equal(rec["pool1"], z_out.to(torch.float32) * theta)
        if pool == "max":
            assert torch.equal(z_out, windows.amax(dim=(4, 6)))
        else:
            z_int, _ = multilevel_if(windows.sum(dim=(4, 6)), 4, 4)
            assert torch.equal(z_out, z_int)
        assert int(z_out.sum()) > 0 and int(z_in.max()) == 4


def test_pool_options_validation(tmp_path):
    cases = [
        (dict(arch="cnn", pool="mean"), "pool must be one of none, max, avg, not 'mean'"),
        (dict(arch="mlp", pool="max"), "pool applies to arch cnn and vgg only, not arch 'mlp'"),
        (dict(arch="sew-resnet", pool="avg"),
         "pool applies to arch cnn and vgg only, not arch 'sew-resnet'"),
        (dict(arch="vgg", pool="none"),
         "arch 'vgg' pools after every stage: pool must be max or avg, not 'none'"),
    ]
    for kwargs, message in cases:
        with pytest.raises(MlsnnError) as info:
            _config(**kwargs)
        assert str(info.value) == message
    # A pool that does not tile its input: the layer and the sizes are named.
    for arch, pool, shape, message in [
            ("cnn", "max", (1, 6, 6), "layer 'pool2': the 2x2 window (stride 2) does not tile "
             "the 3x3 output of 'conv2' (3 and 3 must be multiples of 2); arch cnn with max "
             "pooling needs inputs whose height and width are multiples of 4, not 6x6"),
            ("vgg", "avg", (3, 8, 7), "layer 'pool1': the 2x2 window (stride 2) does not tile "
             "the 8x7 output of 'conv1_2' (8 and 7 must be multiples of 2); arch vgg with avg "
             "pooling needs inputs whose height and width are multiples of 4, not 8x7")]:
        with pytest.raises(MlsnnError) as info:
            build_model(ModelConfig(arch=arch, input_shape=shape, num_classes=3, pool=pool))
        assert str(info.value) == message
    # Checkpoints from before pooling (no 'pool' field) load with the old meaning.
    for arch, pool in (("cnn", "none"), ("vgg", "max")):
        model = build_model(_config(arch, channels=4))
        save_checkpoint(model, tmp_path / "m.pt")
        doc = torch.load(tmp_path / "m.pt", weights_only=True)
        assert doc["config"].pop("pool") == pool
        torch.save(doc, tmp_path / "old.pt")
        assert load_checkpoint(tmp_path / "old.pt").config == model.config


@pytest.mark.parametrize("options,pool", [(["--arch", "cnn", "--pool", "max"], "max"),
                                          (["--arch", "vgg"], "max"),
                                          (["--arch", "vgg", "--pool", "avg"], "avg")])
def test_cli_train_pool_archs(tmp_path, capsys, digits, options, pool):
    out = tmp_path / "m.pt"
    rc = cli_main(["train", *options, "--epochs", "2", "--hidden", "16", "-o", str(out),
                   "--json"])
    captured = capsys.readouterr()
    assert rc == 0, captured.err
    doc = json.loads(captured.out)
    assert doc["config"]["pool"] == pool and doc["config"]["arch"] == options[1]
    assert doc["test_accuracy"] > 0.4                     # chance is 0.1
    model = load_checkpoint(out)
    assert model.config.pool == pool
    kinds = [s.kind for s in model.layers if s.name in ("pool1", "pool2")]
    assert kinds == [f"{pool}pool2d"] * 2
    correct = int((model.predict(digits.x_test).numpy() == digits.y_test).sum())
    assert round(doc["test_accuracy"] * len(digits.y_test)) == correct


def test_cli_pool_that_does_not_tile_is_one_line(tmp_path, capsys):
    rng = np.random.default_rng(0)
    np.savez(tmp_path / "six.npz", x=rng.integers(0, 256, (40, 6, 6)).astype(np.uint8),
             y=np.arange(40) % 4)
    rc = cli_main(["train", "--arch", "vgg", "--dataset", str(tmp_path / "six.npz"),
                   "--epochs", "1", "-o", str(tmp_path / "m.pt")])
    assert rc == 1
    assert capsys.readouterr().err == (
        "mlsnn train: error: layer 'pool2': the 2x2 window (stride 2) does not tile the 3x3 "
        "output of 'conv2_2' (3 and 3 must be multiples of 2); arch vgg with max pooling needs "
        "inputs whose height and width are multiples of 4, not 6x6\n")
    assert not (tmp_path / "m.pt").exists()

"""The IR (golden/ir.py): validation, widths, save/load, random networks."""

import json

import numpy as np
import pytest

from golden.errors import MlsnnError
from golden.fixtures import random_inputs, random_network
from golden.ir import Conv2d, Dense, InputSpec, Join, Network, load, save, signed_width
from golden.reference import run


def dense(name="fc", inputs=("input",), n_in=4, n_out=3, **kw):
    args = dict(name=name, inputs=inputs, threshold=2, levels=2,
                weight=np.ones((n_in, n_out), np.int64), bias=np.zeros(n_out, np.int64))
    args.update(kw)
    return Dense(**args)


def test_static_width_derivation():
    # |P| <= |v0| + T*(max|b| + max_j sum_i zmax_in |w_ij|)
    w = np.array([[3, -1], [-2, 1], [1, 0]])
    fc = Dense(name="fc", inputs=("input",), threshold=5, levels=2, weight=w,
               bias=np.array([4, -7]), v0=2)
    out = dense("out", ("fc",), n_in=2, n_out=1, readout=True)
    net = Network(input=InputSpec(shape=(3,), in_bits=4), timesteps=3, layers=(fc, out))
    bound = 2 + 3 * (7 + 15 * 6)
    info = net.info("fc")
    assert info.bound == bound
    assert info.safe_width == bound.bit_length() + 1 == 10
    assert info.width == 10
    assert info.zmax_in_index == 15
    # the next layer sees values up to N = 2
    assert net.info("out").zmax_in_index == 2
    assert net.info("out").bound == 3 * (0 + 2 * 2)
    assert signed_width(0) == 2 and signed_width(1) == 2 and signed_width(2) == 3


def test_sew_join_doubles_the_per_index_input_bound():
    c0 = Conv2d(name="c0", inputs=("input",), threshold=1, levels=3,
                weight=np.ones((1, 1, 1, 1), np.int64), bias=np.zeros(1, np.int64))
    c1 = Conv2d(name="c1", inputs=("c0",), threshold=1, levels=3,
                weight=np.ones((1, 1, 1, 1), np.int64), bias=np.zeros(1, np.int64))
    j = Join(name="j", inputs=("c1", "c0"), mode="sew")
    out = dense("out", ("j",), n_in=4, n_out=1, readout=True)
    net = Network(input=InputSpec(shape=(1, 2, 2), in_bits=2), timesteps=2,
                  layers=(c0, c1, j, out))
    assert net.info("out").streams == ("c1", "c0")
    assert net.info("out").zmax_in_index == 6
    assert net.info("out").bound == 2 * 6 * 4     # T * zmax_index * (4 inputs of weight 1)


def test_validation_names_the_field():
    with pytest.raises(MlsnnError, match="layer 'fc': field 'levels' must be >= 1, not 0"):
        dense(levels=0)
    with pytest.raises(MlsnnError, match="layer 'fc': field 'threshold' must be >= 1, not 0"):
        dense(threshold=0)
    with pytest.raises(MlsnnError, match="field 'weight' has values in .* outside the signed "
                                         "8-bit range"):
        dense(weight=np.full((4, 3), 200))
    with pytest.raises(MlsnnError, match="field 'weight' must hold integers"):
        dense(weight=np.ones((4, 3)))
    with pytest.raises(MlsnnError, match=r"field 'bias' must have shape \(3,\), not \(2,\)"):
        dense(bias=np.zeros(2, np.int64))
    with pytest.raises(MlsnnError, match="field 'mode' must be 'barrier' or 'sew'"):
        Join(name="j", inputs=("a", "b"), mode="add")
    with pytest.raises(MlsnnError, match="field 'padding' .* must be smaller than the kernel"):
        Conv2d(name="c", inputs=("input",), threshold=1, levels=1,
               weight=np.ones((1, 1, 1, 1), np.int64), bias=np.zeros(1, np.int64), padding=1)
    spec = InputSpec(shape=(4,))
    with pytest.raises(MlsnnError, match="layer 'out': field 'inputs' names 'nope'"):
        Network(input=spec, timesteps=1, layers=(dense("out", ("nope",), readout=True),))
    with pytest.raises(MlsnnError, match="field 'readout' must be true for the last layer"):
        Network(input=spec, timesteps=1, layers=(dense("out"),))
    with pytest.raises(MlsnnError, match="field 'weight' has 5 input rows but 'input' gives 4"):
        Network(input=spec, timesteps=1, layers=(dense("out", n_in=5, readout=True),))
    with pytest.raises(MlsnnError, match="field 'timesteps' must be >= 1, not 0"):
        Network(input=spec, timesteps=0, layers=(dense("out", readout=True),))
    with pytest.raises(MlsnnError, match="layer 'a': its output is used by no layer"):
        Network(input=spec, timesteps=1,
                layers=(dense("a"), dense("out", ("input",), readout=True)))


def test_sew_join_rejects_different_scales():
    a = Conv2d(name="a", inputs=("input",), threshold=1, levels=1, scale=0.5,
               weight=np.ones((1, 1, 1, 1), np.int64), bias=np.zeros(1, np.int64))
    b = Conv2d(name="b", inputs=("a",), threshold=1, levels=1, scale=0.25,
               weight=np.ones((1, 1, 1, 1), np.int64), bias=np.zeros(1, np.int64))
    j = Join(name="j", inputs=("b", "a"), mode="sew")
    out = dense("out", ("j",), n_in=1, n_out=1, readout=True)
    with pytest.raises(MlsnnError, match="a SEW join needs inputs of the same scale, but 'b' "
                                         "has 0.25 and 'a' has 0.5"):
        Network(input=InputSpec(shape=(1, 1, 1)), timesteps=1, layers=(a, b, j, out))


def test_save_load_roundtrip(tmp_path):
    for kind in ("dense", "conv", "residual"):
        net = random_network(7, kind=kind)
        save(net, tmp_path / kind)
        back = load(tmp_path / kind / "network.json")
        assert back.to_json() == net.to_json()
        for k, v in net.arrays().items():
            assert np.array_equal(back.arrays()[k], v)
        x = random_inputs(net, 4, seed=1)
        assert np.array_equal(run(back, x).readout, run(net, x).readout)
        doc = json.loads((tmp_path / kind / "network.json").read_text())
        assert doc["schema_version"] == 2


def test_reads_schema_1(tmp_path):
    """A schema-1 network.json (one kind "join" with a mode) loads as the barrier and SEW kinds
    of schema 2; in schema 2 the kind "join" is unknown."""
    for seed in range(6):
        net = random_network(seed, kind="residual")
        save(net, tmp_path)
        doc = json.loads((tmp_path / "network.json").read_text())
        joins = [d for d in doc["layers"] if d["kind"] in ("barrier", "sew")]
        assert joins
        old = json.loads(json.dumps(doc))
        old["schema_version"] = 1
        for d in old["layers"]:
            if d["kind"] in ("barrier", "sew"):
                d["mode"] = d["kind"]
                d["kind"] = "join"
        (tmp_path / "network.json").write_text(json.dumps(old))
        back = load(tmp_path)
        assert back.to_json() == net.to_json()
        assert [l.kind for l in back.layers] == [l.kind for l in net.layers]
        new = json.loads(json.dumps(old))
        new["schema_version"] = 2
        (tmp_path / "network.json").write_text(json.dumps(new))
        with pytest.raises(MlsnnError, match="field 'kind' must be one of .*not 'join'"):
            load(tmp_path)
        pool = json.loads(json.dumps(doc))
        pool["schema_version"] = 1
        pool["layers"][0]["kind"] = "maxpool2d"
        (tmp_path / "network.json").write_text(json.dumps(pool))
        with pytest.raises(MlsnnError, match=r"must be one of \['conv2d', 'dense', 'join'\]"):
            load(tmp_path)


def test_load_errors(tmp_path):
    net = random_network(1, kind="dense")
    save(net, tmp_path)
    doc = json.loads((tmp_path / "network.json").read_text())
    bad = dict(doc, schema_version=99)
    (tmp_path / "network.json").write_text(json.dumps(bad))
    with pytest.raises(MlsnnError, match="field 'schema_version' is 99"):
        load(tmp_path / "network.json")
    bad = json.loads(json.dumps(doc))
    bad["layers"][0]["levels"] = -3
    (tmp_path / "network.json").write_text(json.dumps(bad))
    with pytest.raises(MlsnnError, match="field 'levels' must be >= 1, not -3"):
        load(tmp_path / "network.json")
    bad = json.loads(json.dumps(doc))
    bad["layers"][0]["colour"] = "red"
    (tmp_path / "network.json").write_text(json.dumps(bad))
    with pytest.raises(MlsnnError, match="unknown field 'colour'"):
        load(tmp_path / "network.json")
    (tmp_path / "network.json").write_text("{not json")
    with pytest.raises(MlsnnError, match="malformed JSON"):
        load(tmp_path / "network.json")


@pytest.mark.parametrize("seed", range(40))
def test_random_networks_are_valid_and_active(seed):
    kind = ["dense", "conv", "residual"][seed % 3]
    net = random_network(seed, kind=kind)
    assert net.layers[-1].readout
    assert net.is_sequential == (kind != "residual")
    x = random_inputs(net, 8, seed=seed)
    res = run(net, x)
    assert not res.any_overflow
    # calibrated thresholds make the first spiking layer fire on random inputs
    first = net.layers[0]
    if not first.readout:
        assert res.events[first.name].any()


def test_random_network_constraints():
    net = random_network(5, kind="residual", timesteps=4, levels=2, join="sew",
                         shortcut="conv")
    assert net.timesteps == 4
    assert all(l.levels == 2 for l in net.layers if not l.readout and not
               (isinstance(l, Join) and l.mode == "sew"))
    assert any(isinstance(l, Join) and l.mode == "sew" for l in net.layers)
    assert any(l.name.startswith("short") for l in net.layers)
    with pytest.raises(MlsnnError, match="kind must be 'dense', 'conv' or 'residual'"):
        random_network(1, kind="lstm")

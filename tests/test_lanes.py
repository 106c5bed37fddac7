# amaranth: UnusedElaboratable=no
"""Lanes (docs/lanes.md): a dense layer core with L lanes does L synaptic updates of one event
per cycle and sweeps L neurons per cycle, bit for bit like the golden model, with the SPEC
counters per synapse and the word counters per access, whatever L."""

import json

import numpy as np
import pytest

from golden.fixtures import random_inputs, random_network
from golden.ir import Conv2d, Dense, InputSpec, Network, from_json
from golden.reference import run
from hw.cores import check_network
from hw.layer import LayerCore, pack_lanes
from sim.amaranth_run import run_layer, run_network
from sim.scoreboard import layer_expected, layer_input_tokens, split_timesteps
from flows.io import MlsnnError
from test_hw_layer import check_layer as _check_exact


def check_layer(net, name, x, *, seed=0, gap=0.3, stall=0.3, golden=None, **opts):
    """tests/test_hw_layer.py's check, and for a narrow layer (saturating arithmetic, exact in
    the golden model: one input stream) the saturation count and the flag too."""
    golden = golden or run(net, x)
    narrow = int(golden.saturations.get(name, np.zeros(1)).sum()) > 0
    res = _check_exact(net, name, x, seed=seed, gap=gap, stall=stall, golden=golden,
                       exact=not narrow, **opts)
    if narrow:
        images, _ = split_timesteps(res["tokens"], net.timesteps)
        exp = layer_expected(net, name, golden)
        assert images == exp, name
        totals = golden.totals(name)
        assert {c: res["counters"][c] for c in totals} == totals, name
        assert res["counters"]["saturations"] == int(golden.saturations[name].sum())
        assert res["overflow"] == 1
    return res


def _divisors(n):
    return [d for d in range(1, n + 1) if n % d == 0]


def _with_lanes(net, rng, biggest=False):
    plan = {}
    for layer in net.layers:
        ds = _divisors(layer.out_features)
        plan[layer.name] = ds[-1] if biggest else int(rng.choice(ds))
    return net.with_lanes(plan)


@pytest.mark.parametrize("seed", range(10))
def test_random_dense_layers_with_lanes_match_golden(seed):
    rng = np.random.default_rng(seed)
    net = random_network(4000 + seed, kind="dense", levels=[1, 2, 4, 8][seed % 4],
                         timesteps=[1, 2, 3][seed % 3], max_neurons=24,
                         narrow_width=seed % 5 == 4, negative_v0=seed % 3 == 1)
    net = _with_lanes(net, rng, biggest=seed % 4 == 3)   # L = N_out: a single word
    x = random_inputs(net, 2, seed=seed)
    golden = run(net, x)
    opts = dict(discharge=["parallel", "serial"][seed % 2],
                synapse=["mul", "serial"][(seed // 2) % 2])
    for layer in net.layers:
        assert golden.exact
        res = check_layer(net, layer.name, x, seed=seed, golden=golden, **opts)
        c = res["counters"]
        L = layer.lanes
        assert c["w_rd"] == L * c["w_rd_words"] and c["p_rd"] == L * c["p_rd_words"]
        assert c["p_wr"] == L * c["p_wr_words"]


def _dense_net(n_in, n_out, lanes, *, levels=3, T=2, seed=0, readout=False):
    rng = np.random.default_rng(seed)
    fc = Dense(name="fc", inputs=("input",), threshold=4, levels=levels, lanes=lanes,
               weight=rng.integers(-3, 8, size=(n_in, n_out)), bias=rng.integers(-2, 3, n_out),
               readout=readout)
    layers = (fc,)
    if not readout:
        layers += (Dense(name="ro", inputs=("fc",), threshold=1, levels=1, readout=True,
                         weight=rng.integers(-2, 3, size=(n_out, 2)),
                         bias=np.zeros(2, np.int64)),)
    return Network(input=InputSpec(shape=(n_in,), in_bits=3), timesteps=T, layers=layers)


@pytest.mark.parametrize("lanes", [1, 2, 4, 8, 16, 32])
def test_lanes_full_fanout_back_to_back(lanes):
    # 32 outputs, every input nonzero, no gaps or stalls: every event's 32/L words issue back to
    # back (G never idles between events), and the counters count synapses and words.
    net = _dense_net(12, 32, lanes, T=1)
    x = np.full((1, 12), 5)
    golden = run(net, x)
    res = check_layer(net, "fc", x, gap=0.0, stall=0.0, golden=golden)
    assert res["counters"]["syn_updates"] == 12 * 32
    assert res["counters"]["w_rd_words"] == 12 * 32 // lanes


@pytest.mark.parametrize("lanes", [2, 5])
def test_readout_layer_with_lanes(lanes):
    net = _dense_net(6, 10, lanes, readout=True, T=3)
    x = random_inputs(net, 3, seed=lanes)
    check_layer(net, "fc", x, seed=lanes, gap=0.3, stall=0.5)


def test_lanes_under_heavy_backpressure_and_repeated_targets():
    # Many spikes per word (low θ), a consumer that stalls 80 % of the cycles: the serializer
    # after Q holds words without losing or repeating a token or an access.
    net = _dense_net(4, 16, 4, levels=2, T=2)
    x = np.array([[7, 7, 7, 7], [7, 0, 0, 7], [0, 0, 0, 0]])
    res = check_layer(net, "fc", x, gap=0.0, stall=0.8)
    assert res["counters"]["ev_out"] > 16


def test_network_with_lanes_matches_golden():
    net = random_network(4100, kind="dense", levels=4, timesteps=2, max_neurons=24)
    net = _with_lanes(net, np.random.default_rng(1), biggest=True)
    x = random_inputs(net, 3, seed=2)
    golden = run(net, x)
    res = run_network(net, x, seed=3, gap=0.2, stall=0.3)
    assert np.array_equal(res.predictions, golden.predictions)
    for layer in net.layers:
        for c in ("ev_in", "ev_out", "w_rd", "p_rd", "p_wr", "b_rd", "syn_updates", "syn_acc",
                  "w_rd_words", "p_rd_words", "p_wr_words"):
            assert int(np.sum(res.counters[layer.name][c])) == golden.totals(layer.name)[c], \
                (layer.name, c)


def test_pack_lanes_layout():
    assert pack_lanes([1, -1, 3, -4], 4, 2) == [0xF1, 0xC3]
    assert pack_lanes([5, 6, 7], 8, 1) == [5, 6, 7]


def test_lanes_field_validation_and_json_round_trip():
    with pytest.raises(MlsnnError, match=r"^layer 'fc': lanes \(3\) must divide its 10 output "
                                         r"neurons$"):
        _dense_net(4, 10, 3)
    with pytest.raises(MlsnnError, match=r"field 'lanes' must be >= 1"):
        _dense_net(4, 10, 0)
    net = _dense_net(4, 10, 5)
    again = from_json(json.loads(json.dumps(net.to_json())), net.arrays())
    assert again.layer("fc").lanes == 5 and again.layer("ro").lanes == 1
    with pytest.raises(MlsnnError, match=r"^lanes: network has no layer 'nope'$"):
        net.with_lanes({"nope": 2})


def _conv_lanes(net, rng, biggest=False):
    """Lanes on every conv2d layer that is not the readout (a divisor of its channels)."""
    plan = {}
    for layer in net.layers:
        if layer.kind == "conv2d" and not layer.readout:
            ds = _divisors(net.info(layer.name).out_shape[0])
            plan[layer.name] = ds[-1] if biggest else int(rng.choice(ds[1:] or ds))
    return net.with_lanes(plan)


@pytest.mark.parametrize("seed", range(8))
def test_random_conv_layers_with_lanes_match_golden(seed):
    """Conv lanes (L output channels per word; stride 2, padding and borders as drawn), layer
    by layer: tokens in the emission order of docs/lanes.md, counters, saturation (seed 3: a
    narrow layer after a conv with lanes)."""
    rng = np.random.default_rng(seed)
    for k in range(4300 + seed, 5000, 8):          # the first network with a conv to lane
        net = random_network(k, kind="conv", levels=[1, 2, 4, 8][seed % 4],
                             timesteps=[1, 2, 3][seed % 3], max_neurons=48, depth=2,
                             narrow_width=seed % 4 == 3, non_square=seed % 3 == 2)
        net = _conv_lanes(net, rng, biggest=seed % 4 == 1)    # L = C_out: one word per pixel
        if any(getattr(l, "lanes", 1) > 1 for l in net.layers):
            break
    x = random_inputs(net, 2, seed=seed)
    golden = run(net, x)
    opts = dict(discharge=["parallel", "serial"][seed % 2],
                synapse=["mul", "serial"][(seed // 2) % 2])
    for layer in net.layers:
        res = check_layer(net, layer.name, x, seed=seed, golden=golden, **opts)
        c = res["counters"]
        L = getattr(layer, "lanes", 1)
        assert c["w_rd"] == L * c["w_rd_words"] and c["p_wr"] == L * c["p_wr_words"]


def test_conv_lanes_emission_order():
    """2 channel words of 2 lanes over a 2×2 image: by word, pixel, lane."""
    conv = Conv2d(name="c", inputs=("input",), threshold=1, levels=1, lanes=2, padding=1,
                  weight=np.ones((1, 3, 3, 4), np.int64), bias=np.zeros(4, np.int64))
    ro = Dense(name="ro", inputs=("c",), threshold=1, levels=1, readout=True,
               weight=np.ones((16, 2), np.int64), bias=np.zeros(2, np.int64))
    net = Network(input=InputSpec(shape=(1, 2, 2), in_bits=2), timesteps=1, layers=(conv, ro))
    assert net.emission_order("c").tolist() == [0, 4, 1, 5, 2, 6, 3, 7,
                                                8, 12, 9, 13, 10, 14, 11, 15]
    assert net.emission_order("ro") is None
    x = np.ones((1, 1, 2, 2), np.int64)
    check_layer(net, "c", x, gap=0.0, stall=0.0)


def test_network_with_conv_lanes_matches_golden():
    net = random_network(4400, kind="conv", levels=4, timesteps=2, max_neurons=48, depth=2)
    net = _conv_lanes(net, np.random.default_rng(2))
    x = random_inputs(net, 3, seed=4)
    golden = run(net, x)
    res = run_network(net, x, seed=5, gap=0.2, stall=0.3)
    from sim.scoreboard import compare
    assert compare(net, golden, res) == []


def test_conv_readout_lanes_is_a_clear_error():
    conv = Conv2d(name="c", inputs=("input",), threshold=2, levels=1, lanes=2, readout=True,
                  weight=np.ones((1, 3, 3, 2), np.int64), bias=np.zeros(2, np.int64))
    net = Network(input=InputSpec(shape=(1, 5, 5), in_bits=2), timesteps=1, layers=(conv,))
    with pytest.raises(MlsnnError, match=r"^layer 'c': lanes > 1 on a conv2d readout is not "
                                         r"supported \(lanes 2\)"):
        check_network(net)


def test_cli_simulate_with_lanes_and_bad_values(tmp_path, capsys):
    from flows.cli import main
    d = tmp_path / "net"
    assert main(["random-network", "--seed", "4200", "--kind", "dense", "--max-neurons", "16",
                 "--batch", "2", "-o", str(d), "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    first = doc["layers"][0]["name"]
    from golden import ir
    n_out = ir.load(str(d)).layer(first).out_features
    lanes = max(k for k in range(1, n_out + 1) if n_out % k == 0 and k < n_out)
    assert lanes > 1
    rc = main(["simulate", "--ir", str(d), "--inputs", str(d / "inputs.npz"), "--sim",
               "amaranth", "--lanes", f"{first}={lanes}", "--json"])
    out = capsys.readouterr().out
    assert rc == 0, out
    assert json.loads(out)["match"] is True
    for bad, msg in [("0", "--lanes must be >= 1, not 0"),
                     ("x", "--lanes must be an integer or LAYER=L pairs, not 'x'"),
                     ("nope=2", "lanes: network has no layer 'nope'"),
                     (f"{first}=a", f"--lanes: '{first}=a' is not LAYER=L with an integer L"),
                     (f"{first}={n_out + 1}", f"layer '{first}': lanes ({n_out + 1}) must divide")]:
        assert main(["verilog", "--ir", str(d), "--lanes", bad, "-o",
                     str(tmp_path / "t.v")]) != 0
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and msg in err[0], (bad, err)


@pytest.mark.parametrize("seed,kind,w_bits", [(0, "dense", 8), (1, "conv", 4), (2, "dense", 3),
                                              (3, "conv", 8)])
def test_spram_weights_with_lanes_match_golden(seed, kind, w_bits):
    """Weights in SPRAM with L lanes: the bank holds L-lane words (L·W_BITS bits, packed as
    hw.memory.pack_words packs any width), loaded through wload, then exact like the ROM."""
    from hw.layer import spram_elements, spram_layer_geometry
    rng = np.random.default_rng(seed)
    net = random_network(4500 + seed, kind=kind, levels=4, timesteps=2, max_neurons=24,
                         w_bits=w_bits, depth=1)
    net = (_with_lanes(net, rng) if kind == "dense" else _conv_lanes(net, rng, biggest=True))
    layer = net.layers[0]
    width, depth, values = spram_elements(layer)
    assert width == layer.lanes * w_bits and depth * layer.lanes == layer.weight.size
    assert pack_lanes(values, width, 1) == pack_lanes(
        pack_lanes(layer.weight.reshape(-1), w_bits, layer.lanes), width, 1)
    assert spram_layer_geometry(layer)[2] == -(-width // 16)       # cells side by side
    x = random_inputs(net, 2, seed=seed)
    golden = run(net, x)
    res = check_layer(net, layer.name, x, seed=seed, golden=golden, weights="spram")
    assert res["counters"]["w_rd_words"] * layer.lanes == golden.totals(layer.name)["w_rd"]


def test_network_spram_with_lanes_matches_golden():
    net = random_network(4600, kind="dense", levels=2, timesteps=1, max_neurons=24, depth=1)
    net = _with_lanes(net, np.random.default_rng(0), biggest=True)
    x = random_inputs(net, 2, seed=1)
    golden = run(net, x)
    res = run_network(net, x, seed=1, gap=0.2, stall=0.2, weights="spram")
    from sim.scoreboard import compare
    assert compare(net, golden, res) == []

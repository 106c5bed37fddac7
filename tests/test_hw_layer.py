# amaranth: UnusedElaboratable=no
"""Event layer core (hw/layer.py) bit-exact against the golden model in the Amaranth simulator."""

import dataclasses
import itertools

import numpy as np
import pytest

from golden.fixtures import random_inputs, random_network
from golden.ir import Conv2d, Dense, InputSpec, Network
from golden.reference import COUNTERS as GOLDEN_COUNTERS
from golden.reference import run
from hw.layer import LayerCore
from hw.layout import LayerGeometry
from sim.amaranth_run import run_layer
from sim.scoreboard import layer_expected, layer_input_tokens, split_timesteps


def check_layer(net, name, x, *, seed=0, gap=0.3, stall=0.3, golden=None, exact=True, **opts):
    """Run core ``name`` on the golden input stream; compare tokens and counter totals."""
    golden = golden or run(net, x)
    core = LayerCore.from_network(net, name, **opts)
    tokens = layer_input_tokens(net, name, x, golden)
    B = x.shape[0]
    res = run_layer(core, tokens, n_eot=B * net.timesteps, seed=seed, gap=gap, stall=stall,
                    max_cycles=200_000)
    images, rest = split_timesteps(res["tokens"], net.timesteps)
    assert rest == []
    if exact:
        exp = layer_expected(net, name, golden)
        for b, t in itertools.product(range(B), range(net.timesteps)):
            assert images[b][t] == exp[b][t], f"layer {name}, image {b}, timestep {t + 1}"
        totals = golden.totals(name)
        got = {c: res["counters"][c] for c in GOLDEN_COUNTERS}
        assert got == totals, name
        assert res["overflow"] == 0
        assert res["counters"]["saturations"] == 0
    return res


def _cases(n):
    # N ∈ {1, 2, 4, 8}, T ∈ {1, 2, 4}, dense and conv (stride 1/2, padding 0/1 drawn inside).
    out = []
    for i in range(n):
        out.append((i, "dense" if i % 2 == 0 else "conv", [1, 2, 4, 8][i % 4],
                    [1, 2, 4][(i // 4) % 3]))
    return out


@pytest.mark.parametrize("seed,kind,levels,timesteps", _cases(40))
def test_random_network_layers(seed, kind, levels, timesteps):
    net = random_network(1000 + seed, kind=kind, levels=levels, timesteps=timesteps,
                         max_neurons=20)
    x = random_inputs(net, 2, seed=seed)
    golden = run(net, x)
    for layer in net.layers:
        check_layer(net, layer.name, x, seed=seed, golden=golden)


# -- geometry: the address generator's model against the SPEC's conv definition ------------

@pytest.mark.parametrize("k,s,p,h,w", [(1, 1, 0, 4, 5), (2, 2, 0, 5, 5), (3, 1, 1, 4, 4),
                                       (3, 2, 1, 7, 6), (3, 2, 0, 6, 6), (2, 1, 1, 3, 3),
                                       (1, 2, 0, 5, 4), (3, 3, 2, 5, 5)])
def test_conv_geometry_matches_definition(k, s, p, h, w):
    rng = np.random.default_rng(k * 100 + s * 10 + p)
    ci, co = 2, 3
    layer = Conv2d(name="c", inputs=("input",), threshold=1, levels=1,
                   weight=rng.integers(-3, 4, size=(ci, k, k, co)), bias=np.zeros(co, np.int64),
                   stride=s, padding=p)
    ro = Dense(name="ro", inputs=("c",), threshold=1, levels=1,
               weight=np.zeros((co * ((h + 2 * p - k) // s + 1) * ((w + 2 * p - k) // s + 1), 1),
                               np.int64), bias=np.zeros(1, np.int64), readout=True)
    net = Network(input=InputSpec(shape=(ci, h, w)), timesteps=1, layers=(layer, ro))
    info = net.info("c")
    geo = LayerGeometry.of(layer, info)
    _, ho, wo = info.out_shape
    for i in range(geo.n_in):
        c, yi, xi = i // (h * w), (i // w) % h, i % w
        want = []
        for ky, kx, o in itertools.product(range(k), range(k), range(co)):
            ny, nx = yi + p - ky, xi + p - kx
            if ny % s == 0 and nx % s == 0 and 0 <= ny // s < ho and 0 <= nx // s < wo:
                want.append((((c * k + ky) * k + kx) * co + o, (o * ho + ny // s) * wo + nx // s))
        assert geo.fanout(i) == want, i          # same targets, same order (ky, kx, co)
    assert list(geo.fanout_counts()) == list(layer.fanout_counts(info.in_shape))


# -- edge cases ------------------------------------------------------------------------------

def _dense_net(n_in, n_out, *, levels=2, timesteps=2, threshold=3, in_bits=4, seed=0, v0=0,
               potential_width=None, w=None, b=None, hidden=False):
    rng = np.random.default_rng(seed)
    w = rng.integers(-7, 8, size=(n_in, n_out)) if w is None else np.asarray(w)
    b = rng.integers(-4, 5, size=n_out) if b is None else np.asarray(b)
    layers = [Dense(name="fc", inputs=("input",), threshold=threshold, levels=levels, weight=w,
                    bias=b, v0=v0, potential_width=potential_width, readout=not hidden)]
    if hidden:
        layers.append(Dense(name="ro", inputs=("fc",), threshold=1, levels=1,
                            weight=np.ones((n_out, 1), np.int64), bias=np.zeros(1, np.int64),
                            readout=True))
    return Network(input=InputSpec(shape=(n_in,), in_bits=in_bits), timesteps=timesteps,
                   layers=tuple(layers))


@pytest.mark.parametrize("n_out", [1, 2, 3])
@pytest.mark.parametrize("gap,stall", [(0.0, 0.0), (0.4, 0.4)])
def test_forwarding_back_to_back_same_targets(n_out, gap, stall):
    # Every input fires every timestep: consecutive updates hit the same 1-3 potentials at a
    # distance of 1..3 cycles, which exercises the write-to-read forwarding on P.
    net = _dense_net(7, n_out, levels=4, timesteps=3, hidden=True, seed=n_out)
    x = np.full((2, 7), 15, dtype=np.int64)
    x[1, ::2] = 9
    for name in ("fc", "ro"):
        check_layer(net, name, x, seed=n_out, gap=gap, stall=stall)


@pytest.mark.parametrize("n_out", [1, 2, 3])
def test_forwarding_serial_synapse(n_out):
    net = _dense_net(5, n_out, levels=2, timesteps=2, hidden=True, seed=10 + n_out)
    x = np.array([[15, 1, 2, 15, 3], [1, 1, 1, 1, 1]])
    for name in ("fc", "ro"):
        check_layer(net, name, x, gap=0.0, stall=0.0, synapse="serial")


def test_levels_one_and_empty_timesteps():
    net = _dense_net(6, 4, levels=1, timesteps=4, hidden=True, threshold=2)
    x = np.array([[0] * 6, [15] * 6, [0, 3, 0, 0, 0, 1]])      # all-zero image: only EOTs
    for name in ("fc", "ro"):
        check_layer(net, name, x)


@pytest.mark.parametrize("kind", ["dense", "conv"])
def test_all_zero_and_full_scale_inputs(kind):
    net = random_network(77, kind=kind, levels=4, timesteps=2, max_neurons=16, in_bits=8)
    shape = net.input.shape
    x = np.stack([np.zeros(shape, np.int64), np.full(shape, 255, np.int64)])
    golden = run(net, x)
    for layer in net.layers:
        check_layer(net, layer.name, x, golden=golden)


def test_stride_leaves_inputs_without_fanout():
    # 1×1 kernel, stride 2: inputs on odd rows/columns have no target; they still count in ev_in.
    rng = np.random.default_rng(5)
    conv = Conv2d(name="c", inputs=("input",), threshold=4, levels=2,
                  weight=rng.integers(-7, 8, size=(2, 1, 1, 3)), bias=np.array([1, -1, 0]),
                  stride=2, padding=0)
    ro = Dense(name="ro", inputs=("c",), threshold=1, levels=1,
               weight=rng.integers(-3, 4, size=(3 * 3 * 2, 2)), bias=np.zeros(2, np.int64),
               readout=True)
    net = Network(input=InputSpec(shape=(2, 5, 4), in_bits=4), timesteps=2, layers=(conv, ro))
    x = rng.integers(1, 16, size=(2, 2, 5, 4))
    golden = run(net, x)
    assert (net.layer("c").fanout_counts((2, 5, 4)) == 0).any()
    res = check_layer(net, "c", x, golden=golden)
    assert res["counters"]["ev_in"] == int((x > 0).sum()) * 2
    check_layer(net, "ro", x, golden=golden)


@pytest.mark.parametrize("seed,kind", [(3, "dense"), (4, "conv"), (5, "dense"), (6, "conv")])
def test_options_give_identical_outputs_and_counters(seed, kind):
    net = random_network(2000 + seed, kind=kind, levels=4, timesteps=2, max_neurons=12,
                         in_bits=2)
    x = random_inputs(net, 2, seed=seed)
    golden = run(net, x)
    for layer in net.layers:
        outs = []
        for discharge, synapse in [("parallel", "mul"), ("serial", "mul"), ("parallel", "serial"),
                                   ("serial", "serial")]:
            res = check_layer(net, layer.name, x, golden=golden, discharge=discharge,
                              synapse=synapse, seed=seed)
            outs.append((res["tokens"], {c: v for c, v in res["counters"].items()
                                         if c != "cycles"}))
        assert all(o == outs[0] for o in outs[1:])


def test_v0_nonzero_and_readout_clears():
    net = _dense_net(4, 3, levels=2, timesteps=2, v0=5, hidden=False, threshold=4)
    x = np.array([[1, 2, 3, 4], [0, 0, 0, 0], [4, 0, 0, 1]])
    check_layer(net, "fc", x)


# -- forced narrow widths ------------------------------------------------------------------

def test_narrow_width_certain_overflow_raises_flag():
    net = _dense_net(4, 2, levels=2, timesteps=2, threshold=100, potential_width=6,
                     w=[[7, -7]] * 4, b=[0, 0], in_bits=4)
    x = np.array([[15, 15, 15, 15]])
    golden = run(net, x)
    assert golden.overflow["fc"][0] == 2
    res = check_layer(net, "fc", x, golden=golden, exact=False)
    assert res["overflow"] == 1
    assert res["counters"]["saturations"] > 0
    # Saturation bounds the readout to the width.
    images, _ = split_timesteps(res["tokens"], net.timesteps)
    assert [v for _, _, v in images[0][-1]] == [31, -32]


@pytest.mark.parametrize("discharge", ["parallel", "serial"])
def test_narrow_width_certain_overflow_in_sweep(discharge):
    # The integrate sums fit, only H = P + b leaves the width: the fire unit saturates.
    net = _dense_net(2, 2, levels=1, timesteps=1, threshold=40, potential_width=7,
                     w=[[7, 1], [7, 1]], b=[30, 0], in_bits=2, hidden=True)
    x = np.array([[3, 3]])
    golden = run(net, x)
    assert golden.overflow["fc"][0] == 2
    res = check_layer(net, "fc", x, golden=golden, exact=False, discharge=discharge)
    assert res["overflow"] == 1 and res["counters"]["saturations"] == 1


def test_narrow_width_without_overflow_is_exact():
    net = _dense_net(4, 2, levels=2, timesteps=2, threshold=5, potential_width=5,
                     w=[[1, -1]] * 4, b=[1, 0], in_bits=2, hidden=True)
    assert net.info("fc").width < net.info("fc").safe_width
    x = np.array([[1, 0, 1, 0], [0, 0, 0, 0]])
    golden = run(net, x)
    assert golden.overflow["fc"].max() == 0
    check_layer(net, "fc", x, golden=golden)          # exact, flag 0


# -- constructor validation ------------------------------------------------------------------

def test_validation_messages():
    net = _dense_net(3, 2, hidden=True)
    layer, info = net.layer("fc"), net.info("fc")
    cases = [
        (dict(timesteps=0), ValueError, "timesteps must be a positive integer, not 0"),
        (dict(discharge="x"), ValueError, "discharge must be 'parallel' or 'serial', not 'x'"),
        (dict(synapse="add"), ValueError, "synapse must be 'mul' or 'serial', not 'add'"),
        (dict(layer="fc"), TypeError,
         "layer must be a golden.ir.Dense or golden.ir.Conv2d, not str"),
        (dict(info=None), TypeError, "info must be a golden.ir.LayerInfo, not NoneType"),
    ]
    for kw, exc, msg in cases:
        args = dict(layer=layer, info=info, timesteps=2)
        args.update(kw)
        with pytest.raises(exc) as e:
            LayerCore(**args)
        assert str(e.value) == msg
    bad = dataclasses.replace(layer, v0=100, potential_width=6)
    net2 = Network(input=net.input, timesteps=2, layers=(bad, net.layer("ro")))
    with pytest.raises(ValueError) as e:
        LayerCore.from_network(net2, "fc")
    assert str(e.value) == "layer 'fc': v0 (100) does not fit its potential width 6"

"""The integer reference simulator (golden/reference.py) against hand computations and against
an independent loop-based simulator written from SPEC §3 (tests/naive.py)."""

import numpy as np
import pytest

from golden.errors import MlsnnError
from golden.fixtures import random_inputs, random_network
from golden.ir import Conv2d, Dense, InputSpec, Join, Network
from golden.reference import COUNTERS, run
from naive import check_image, simulate


def tiny_dense():
    fc0 = Dense(name="fc0", inputs=("input",), threshold=3, levels=2,
                weight=np.array([[2, -1], [1, 3]]), bias=np.array([0, 1]))
    fc1 = Dense(name="fc1", inputs=("fc0",), threshold=1, levels=1,
                weight=np.array([[1], [2]]), bias=np.array([0]), readout=True)
    return Network(input=InputSpec(shape=(2,), in_bits=4), timesteps=2, layers=(fc0, fc1))


def test_hand_computed_dense_counters():
    # x = [3, 0]: one input event (0, 3) per timestep.
    # fc0, t=1: H = 3*[2,-1] + [0,1] = [6,-2] -> z = [min(2, 6//3)=2, 0], P = [0,-2]
    # fc0, t=2: H = [0+6, -2-3+1] = [6,-4] -> z = [2, 0], then P cleared to v0 = 0
    # fc1: receives (0, 2) twice -> P = 2*1 + 2*1 = 4
    res = run(tiny_dense(), np.array([[3, 0]]))
    assert res.events["fc0"][:, 0].tolist() == [[2, 0], [2, 0]]
    assert res.readout.tolist() == [[4]]
    assert res.predictions.tolist() == [0]
    assert res.totals("fc0") == {"ev_in": 2, "ev_out": 2, "w_rd": 4, "p_rd": 8, "p_wr": 8,
                                 "b_rd": 4, "syn_updates": 4, "syn_acc": 12,
                                 "w_rd_words": 4, "p_rd_words": 8, "p_wr_words": 8, "shifts": 0}
    assert res.totals("fc1") == {"ev_in": 2, "ev_out": 0, "w_rd": 2, "p_rd": 4, "p_wr": 4,
                                 "b_rd": 2, "syn_updates": 2, "syn_acc": 4,
                                 "w_rd_words": 2, "p_rd_words": 4, "p_wr_words": 4, "shifts": 0}
    # Two lanes in fc0: one word access per two synapses or neurons, the rest unchanged.
    two = run(tiny_dense().with_lanes({"fc0": 2}), np.array([[3, 0]])).totals("fc0")
    assert two == dict(res.totals("fc0"), w_rd_words=2, p_rd_words=4, p_wr_words=4)
    assert not res.any_overflow


def test_fire_at_equality_and_negative_potential_kept():
    # One neuron, θ = 4, N = 3: H = 4 fires once (equality), H = 13 saturates at 3 (P = 1),
    # a negative current is kept (no floor on P).
    fc0 = Dense(name="fc0", inputs=("input",), threshold=4, levels=3,
                weight=np.array([[1]]), bias=np.array([0]))
    out = Dense(name="out", inputs=("fc0",), threshold=1, levels=1, weight=np.array([[1]]),
                bias=np.array([0]), readout=True)
    net = Network(input=InputSpec(shape=(1,), in_bits=4), timesteps=1, layers=(fc0, out))
    res = run(net, np.array([[4], [13], [3], [0]]))
    assert res.events["fc0"][0, :, 0].tolist() == [1, 3, 0, 0]
    assert res.readout[:, 0].tolist() == [1, 3, 0, 0]


def test_conv_border_fanout():
    # 1x3x3 input, 3x3 kernel, padding 1, 2 output channels: corner 2*2*2 = 8 targets,
    # edge 2*3*2 = 12, centre 3*3*2 = 18.
    w = np.ones((1, 3, 3, 2), dtype=np.int64)
    conv = Conv2d(name="c", inputs=("input",), threshold=100, levels=1, weight=w,
                  bias=np.zeros(2, np.int64), padding=1)
    out = Dense(name="out", inputs=("c",), threshold=1, levels=1,
                weight=np.zeros((18, 1), np.int64), bias=np.zeros(1, np.int64), readout=True)
    net = Network(input=InputSpec(shape=(1, 3, 3), in_bits=2), timesteps=1, layers=(conv, out))
    x = np.zeros((3, 1, 3, 3), np.int64)
    x[0, 0, 0, 0] = 1   # corner
    x[1, 0, 0, 1] = 1   # edge
    x[2, 0, 1, 1] = 2   # centre, value 2
    res = run(net, x)
    assert res.counters["c"]["w_rd"].tolist() == [8, 12, 18]
    assert res.counters["c"]["syn_acc"].tolist() == [8, 12, 36]
    assert res.counters["c"]["p_rd"].tolist() == [8 + 18, 12 + 18, 18 + 18]
    assert conv.fanout_counts((1, 3, 3)).reshape(3, 3).tolist() == [[8, 12, 8], [12, 18, 12],
                                                                    [8, 12, 8]]


def test_stride2_padding_fanout_and_values():
    # 1x4x4 input, K=3, S=2, P=1 -> 2x2 output. Along one axis, input i reaches outputs o with
    # 2o - 1 + k = i: i=0 -> (o=0,k=1); i=1 -> (0,2),(1,0); i=2 -> (1,1); i=3 -> (1,2).
    rng = np.random.default_rng(1)
    w = rng.integers(-7, 8, size=(1, 3, 3, 1))
    conv = Conv2d(name="c", inputs=("input",), threshold=1000, levels=1, weight=w,
                  bias=np.zeros(1, np.int64), stride=2, padding=1)
    out = Dense(name="out", inputs=("c",), threshold=1, levels=1, weight=np.eye(4, dtype=int),
                bias=np.zeros(4, np.int64), readout=True)
    net = Network(input=InputSpec(shape=(1, 4, 4), in_bits=3), timesteps=1, layers=(conv, out))
    axis = np.array([1, 2, 1, 1])
    assert conv.fanout_counts((1, 4, 4)).reshape(4, 4).tolist() == np.outer(axis, axis).tolist()
    x = rng.integers(0, 8, size=(5, 1, 4, 4))
    res = run(net, x, record_currents=True)
    for b in range(5):
        expect = np.zeros((2, 2), np.int64)
        for yo in range(2):
            for xo in range(2):
                for ky in range(3):
                    for kx in range(3):
                        yi, xi = 2 * yo - 1 + ky, 2 * xo - 1 + kx
                        if 0 <= yi < 4 and 0 <= xi < 4:
                            expect[yo, xo] += x[b, 0, yi, xi] * w[0, ky, kx, 0]
        assert res.currents["c"][0, b].tolist() == expect.reshape(-1).tolist()


def _residual(mode):
    conv = Conv2d(name="c0", inputs=("input",), threshold=2, levels=2,
                  weight=np.ones((1, 1, 1, 1), np.int64), bias=np.zeros(1, np.int64))
    c1 = Conv2d(name="c1", inputs=("c0",), threshold=1, levels=1,
                weight=np.ones((1, 1, 1, 1), np.int64), bias=np.zeros(1, np.int64))
    if mode == "sew":
        j = Join(name="j", inputs=("c1", "c0"), mode="sew")
    else:
        j = Join(name="j", inputs=("c1", "c0"), mode="barrier", threshold=3, levels=1)
    out = Dense(name="out", inputs=("j",), threshold=1, levels=1,
                weight=np.ones((4, 1), np.int64), bias=np.zeros(1, np.int64), readout=True)
    return Network(input=InputSpec(shape=(1, 2, 2), in_bits=3), timesteps=1,
                   layers=(conv, c1, j, out))


def test_sew_next_layer_sees_both_streams_barrier_only_its_own():
    x = np.array([[[[4, 2], [0, 7]]]])
    # c0: z = min(2, x//2) -> [2, 1, 0, 2]; c1 (θ=1, N=1): [1, 1, 0, 1]
    sew = run(_residual("sew"), x)
    assert sew.events["c0"][0, 0].tolist() == [2, 1, 0, 2]
    assert sew.events["c1"][0, 0].tolist() == [1, 1, 0, 1]
    assert sew.totals("out")["ev_in"] == 3 + 3          # the avalanche: both paths' events
    assert sew.readout.tolist() == [[2 + 1 + 0 + 2 + 1 + 1 + 0 + 1]]
    bar = run(_residual("barrier"), x)
    # barrier: P = c1 + c0 = [3, 2, 0, 3] -> θ=3, N=1: z = [1, 0, 0, 1]
    assert bar.events["j"][0, 0].tolist() == [1, 0, 0, 1]
    assert bar.totals("out")["ev_in"] == 2
    assert bar.totals("j") == {"ev_in": 6, "ev_out": 2, "w_rd": 0, "p_rd": 6 + 4, "p_wr": 6 + 4,
                               "b_rd": 0, "syn_updates": 6, "syn_acc": 3 + 5, "w_rd_words": 0,
                               "p_rd_words": 6 + 4, "p_wr_words": 6 + 4, "shifts": 0}


def test_forced_narrow_width_predicts_overflow():
    net = tiny_dense()
    assert net.info("fc0").safe_width > 3
    narrow = net.replace(layers=(net.layers[0].__class__(
        **{**{f: getattr(net.layers[0], f) for f in
              ("name", "inputs", "threshold", "levels", "weight", "bias")},
           "potential_width": 3}), net.layers[1]))
    assert narrow.overflow_possible() == ["fc0"]
    res = run(narrow, np.array([[3, 0], [0, 0]]))
    # H = 6 does not fit in 3 signed bits ([-4, 3]): certain overflow for image 0, none for 1
    assert res.overflow["fc0"].tolist() == [2, 0]
    assert res.any_overflow
    assert not run(net, np.array([[3, 0]])).any_overflow


def _assert_equals_naive(net, seed):
    """Golden's events, readout and every counter equal the loop simulator's, image by image."""
    x = random_inputs(net, 3, seed=seed)
    res = run(net, x)
    for b in range(x.shape[0]):
        counters, _ = check_image(net, res, x, b)
        for name, c in counters.items():
            assert {k: int(res.counters[name][k][b]) for k in COUNTERS} == c, name


@pytest.mark.parametrize("kind", ["dense", "conv", "residual"])
@pytest.mark.parametrize("seed", range(10))
def test_matches_naive_event_simulator(kind, seed):
    net = random_network(seed, kind=kind)
    _assert_equals_naive(net, seed)


@pytest.mark.parametrize("seed", range(4))
def test_lanes_match_naive_event_simulator(seed):
    # Word counters of dense layers with lanes, against words counted from the targets.
    net = random_network(50 + seed, kind="dense", max_neurons=24)
    rng = np.random.default_rng(seed)
    plan = {}
    for layer in net.layers:
        ds = [d for d in range(1, layer.out_features + 1) if layer.out_features % d == 0]
        plan[layer.name] = int(rng.choice(ds))
    net = net.with_lanes(plan)
    assert any(layer.lanes > 1 for layer in net.layers)
    _assert_equals_naive(net, seed)


def test_full_scale_and_zero_inputs():
    net = random_network(3, kind="conv", in_bits=8)
    x = np.stack([np.zeros(net.input.shape, np.int64),
                  np.full(net.input.shape, 255, np.int64)])
    res = run(net, x)
    first = net.layers[0].name
    assert res.counters[first]["ev_in"][0] == 0
    assert res.counters[first]["w_rd"][0] == 0
    assert res.counters[first]["ev_in"][1] == net.timesteps * net.info(first).n_in
    for b in range(2):
        _, readout, _ = simulate(net, x[b].reshape(-1))
        assert res.readout[b].tolist() == readout


def test_argmax_ties_lowest_index():
    out = Dense(name="out", inputs=("input",), threshold=1, levels=1,
                weight=np.array([[1, 1, 0]]), bias=np.array([0, 0, 0]), readout=True)
    net = Network(input=InputSpec(shape=(1,), in_bits=2), timesteps=1, layers=(out,))
    assert run(net, np.array([[1], [0]])).predictions.tolist() == [0, 0]


def test_bad_inputs_raise_clear_errors():
    net = tiny_dense()
    with pytest.raises(MlsnnError, match=r"inputs have shape \(1, 3\), expected \[B, 2\]"):
        run(net, np.array([[1, 2, 3]]))
    with pytest.raises(MlsnnError, match="inputs must be non-negative, found -1"):
        run(net, np.array([[-1, 2]]))
    with pytest.raises(MlsnnError, match=r"inputs must fit in in_bits=4 \(max 15\), found 16"):
        run(net, np.array([[16, 2]]))
    with pytest.raises(MlsnnError, match="non-integer"):
        run(net, np.array([[1.5, 2.0]]))


# -- pooling (docs/pooling.md) ---------------------------------------------------------------

@pytest.mark.parametrize("kind", ["conv", "residual"])
@pytest.mark.parametrize("seed", range(8))
def test_pooling_matches_naive_event_simulator(kind, seed):
    """Random networks with max and average pools (on the input, after convolutions, after
    joins): events, readout and every counter equal the loop simulator's."""
    net = random_network(seed, kind=kind, pool=True)
    _assert_equals_naive(net, seed)


def test_pooling_networks_cover_both_kinds():
    kinds = [l.kind for s in range(8) for k in ("conv", "residual")
             for l in random_network(s, kind=k, pool=True).layers]
    assert kinds.count("maxpool2d") >= 3 and kinds.count("avgpool2d") >= 3


def _pool_net(pool, shape=(2, 4, 6), T=2):
    from golden.ir import Dense
    n_in = 1
    for s in pool.out_shape(shape):
        n_in *= s
    out = Dense(name="out", inputs=(pool.name,), threshold=1, levels=1,
                weight=np.arange(n_in * 2).reshape(n_in, 2) % 5 - 2, bias=np.zeros(2, np.int64),
                readout=True)
    return Network(input=InputSpec(shape=shape, in_bits=4), timesteps=T, layers=(pool, out))


def test_maxpool_semantics_by_hand():
    from golden.pooling import MaxPool2d
    net = _pool_net(MaxPool2d(name="mp", inputs=("input",), kernel=2))
    x = np.zeros((1, 2, 4, 6), np.int64)
    x[0, 0, 0, 0], x[0, 0, 1, 1], x[0, 0, 0, 1] = 3, 7, 2      # window (0, 0, 0): max 7
    x[0, 1, 3, 5] = 1                                           # window (1, 1, 2)
    res = run(net, x)
    ev = res.events["mp"]                   # [T, B, 2*2*3]
    want = np.zeros(12, np.int64)
    want[0], want[(1 * 2 + 1) * 3 + 2] = 7, 1
    for t in range(2):
        assert ev[t, 0].tolist() == want.tolist()
    c = res.totals("mp")
    assert c == {"ev_in": 8, "ev_out": 4, "w_rd": 0, "p_rd": 8 + 24, "p_wr": 8 + 24, "b_rd": 0,
                 "syn_updates": 8, "syn_acc": 8, "w_rd_words": 0, "p_rd_words": 8 + 24,
                 "p_wr_words": 8 + 24, "shifts": 0}
    assert net.info("mp").zmax_out == 15 and net.info("mp").width == 5


def test_avgpool_semantics_by_hand():
    from golden.pooling import AvgPool2d
    net = _pool_net(AvgPool2d(name="ap", inputs=("input",), kernel=2, threshold=4, levels=2),
                    T=2)
    x = np.zeros((1, 2, 4, 6), np.int64)
    x[0, 0, 0, 0], x[0, 0, 1, 1] = 3, 2     # window (0,0,0): sum 5 per timestep
    res = run(net, x)
    ev = res.events["ap"][:, 0, 0].tolist()
    assert ev == [1, 1] or ev == [1, 2]
    # t0: H = 5 → z = 1, P = 1; t1: H = 1 + 5 = 6 → z = 1, P = 2.
    assert ev == [1, 1]
    c = res.totals("ap")
    assert c == {"ev_in": 4, "ev_out": 2, "w_rd": 0, "p_rd": 4 + 24, "p_wr": 4 + 24, "b_rd": 0,
                 "syn_updates": 4, "syn_acc": 10, "w_rd_words": 0, "p_rd_words": 4 + 24,
                 "p_wr_words": 4 + 24, "shifts": 0}


def test_pool_errors():
    from golden.errors import MlsnnError
    from golden.ir import Join
    from golden.pooling import AvgPool2d, MaxPool2d
    with pytest.raises(MlsnnError, match=r"layer 'mp': the 4x4 window \(stride 4\) does not "
                                         r"tile the 4x6 input of 'input'"):
        _pool_net(MaxPool2d(name="mp", inputs=("input",), kernel=4))
    with pytest.raises(MlsnnError, match="the readout .* must be dense or conv2d, not "
                                         "avgpool2d"):
        Network(input=InputSpec(shape=(1, 4, 4)), timesteps=1,
                layers=(AvgPool2d(name="ap", inputs=("input",), kernel=2, threshold=1,
                                  levels=1),))
    with pytest.raises(MlsnnError, match=r"layer 'mp': a maxpool2d input must be \(C, H, W\)"):
        Network(input=InputSpec(shape=(4,)), timesteps=1,
                layers=(MaxPool2d(name="mp", inputs=("input",), kernel=2),
                        Dense(name="out", inputs=("mp",), threshold=1, levels=1,
                              weight=np.ones((2, 2), np.int64), bias=np.zeros(2, np.int64),
                              readout=True)))
    net = random_network(1, kind="residual", join="sew")
    j = next(l for l in net.layers if isinstance(l, Join))
    layers = list(net.layers)
    at = layers.index(j) + 1
    bad = layers[:at] + [MaxPool2d(name="mp", inputs=(j.name,), kernel=1)]
    nxt = layers[at]
    bad.append(type(nxt)(**{**{f: getattr(nxt, f) for f in nxt.__dataclass_fields__},
                            "inputs": ("mp",)}))
    bad += layers[at + 1:]
    with pytest.raises(MlsnnError, match="a maxpool2d cannot read 'join0', a SEW join"):
        Network(input=net.input, timesteps=net.timesteps, layers=tuple(bad))
    with pytest.raises(MlsnnError, match="field 'kernel' must be >= 1"):
        MaxPool2d(name="mp", inputs=("input",), kernel=0)


def test_narrow_avgpool_saturates_like_the_loop_simulator():
    """An average pool whose width is forced narrow saturates exactly (one input stream, so
    the order of the additions is fixed): golden == the loop simulator, with saturations."""
    from golden.pooling import AvgPool2d
    net = _pool_net(AvgPool2d(name="ap", inputs=("input",), kernel=2, threshold=3, levels=1,
                              potential_width=3), T=3)
    x = random_inputs(net, 4, seed=5, density=0.9)
    res = run(net, x)
    assert "ap" in res.saturations
    total = 0
    for b in range(x.shape[0]):
        counters, sats = check_image(net, res, x, b)
        assert int(res.saturations["ap"][b]) == sats["ap"]
        assert {k: int(res.counters["ap"][k][b]) for k in COUNTERS} == counters["ap"]
        total += sats["ap"]
    assert total > 0


@pytest.mark.parametrize("kind", ["conv", "residual"])
def test_pooled_random_networks_with_every_corner_case(kind):
    """Every option of random_network together with pools builds a valid network that the
    golden model runs (the regression draws these combinations)."""
    seen = set()
    for seed in range(25):
        net = random_network(seed, kind=kind, pool=True, non_square=True,
                             conv_readout=bool(seed % 2),
                             negative_v0=True, wide_stream_weights=True, narrow_width=True)
        run(net, random_inputs(net, 2, seed=seed))
        seen.update(l.kind for l in net.layers)
    assert {"maxpool2d", "avgpool2d"} <= seen

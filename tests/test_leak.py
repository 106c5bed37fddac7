# amaranth: UnusedElaboratable=no
"""Integer leak (docs/leak.md, issue 16 §1): ``leak=k`` on dense and conv2d layers.

Golden semantics on hand-computed examples (``golden.neuron.multilevel_if`` and the reference
simulator), the reference against a naive per-neuron loop on random leaky networks, the float
module against the integer neuron where both are exact, the IR field (JSON round trip, one-line
errors, the leaky readout), export and ``mlsnn train --leak``, the fire unit in its three
variants and the layer cores bit-exact against golden (dense and conv2d, parallel and serial
discharge, lanes 1 and 2, soft and hard reset, N = 1 and N > 1), and networks through
``run_network`` and Icarus with the cycle model still exact.
"""

import dataclasses
import json
import math
import os
import random
from fractions import Fraction

import numpy as np
import pytest
import torch

import golden.cycles as gc
from flows.cli import main as cli_main
from golden import ir
from golden.errors import MlsnnError
from golden.fixtures import random_inputs, random_network
from golden.ir import MAX_LEAK, Conv2d, Dense, InputSpec, Network, leak_int
from golden.neuron import MultiLevelIF, multilevel_if
from golden.reference import run
from hw.neuron import FireUnit
from naive import fanout
from sim.amaranth_run import run_network
from sim.scoreboard import compare
from test_hw_layer import check_layer
from test_hw_neuron import MODES, _run as run_fire_unit


# -- golden semantics, by hand ----------------------------------------------------------------
# (currents, θ, N, v0, reset, k) → hand-computed (z, P) per timestep (P after the reset and the
# leak, before the clear at t = T). R → R − (R >> k): 3 → 2, 1 → 1 (k = 1); −5 → −2, −7 → −3,
# −1 → 0, −2 → −1 (k = 1); −1 → 0 (k = 3); −5 → −4 (k = 30).
HAND = [
    # H = 3 keeps 2; H = 5 fires, R = 1 stays 1 (a positive remainder never leaks below 1).
    ([3, 3, 3], 4, 1, 0, "soft", 1, ([0, 1, 1], [2, 1, 0])),
    # k = 0 is the IF neuron (SPEC §2).
    ([3, 3, 3], 4, 1, 0, "soft", 0, ([0, 1, 1], [3, 2, 1])),
    # The leak stops a neuron from firing: H = 4, 2 + 4 = 6 < 8 (IF: 4, 8 fires).
    ([4, 4], 8, 1, 0, "soft", 1, ([0, 0], [2, 3])),
    # Negative R rounds toward +inf: −5 → −2, then H = −7 → −3 (IF: −5, −10).
    ([-5, -5], 4, 1, 0, "soft", 1, ([0, 0], [-2, -3])),
    # R = −1 leaks to 0 at any k.
    ([-1, 0], 4, 1, 0, "soft", 3, ([0, 0], [0, 0])),
    # Even k = 30 lifts a negative potential by 1 every timestep: −5 → −4, −9 → −8.
    ([-5, -5], 4, 1, 0, "soft", 30, ([0, 0], [-4, -8])),
    # Multi-level: H = 7 → 4 (k = 1); 11 fires 1 of 2, R = 3 → 2; 9 fires 1, R = 1 → 1.
    ([7, 7, 7], 8, 2, 0, "soft", 1, ([0, 1, 1], [4, 2, 1])),
    # H = 18 ≥ N·θ clamps at N = 3; soft R = 6 → 5 (k = 2); then H = 6 fires 1, R = 2 → 2.
    ([20, 1], 4, 3, -2, "soft", 2, ([3, 1], [5, 2])),
    # Hard reset: R = v0 = −2 → −1 (k = 1), then H = −1 + 1 = 0.
    ([20, 1], 4, 3, -2, "hard", 1, ([3, 0], [-1, 0])),
    # Hard reset, N = 1: 3 → 2, H = 5 fires (R = v0 = 0), 3 → 2.
    ([3, 3, 3], 4, 1, 0, "hard", 1, ([0, 1, 0], [2, 0, 2])),
    # Negative v0: H = −2 → −1, H = 0, H = 1 stays 1 (IF: −2, −1, 0).
    ([1, 1, 1], 4, 1, -3, "soft", 1, ([0, 0, 0], [-1, 0, 1])),
    # Hard reset to a positive v0 = 6, k = 2: fired R = 6 → 5 each time H = 5 + 9 = 14 ≥ 4.
    ([9, 9, 9], 4, 2, 6, "hard", 2, ([2, 2, 2], [5, 5, 5])),
]


@pytest.mark.parametrize("currents,theta,levels,v0,reset,leak,want", HAND)
def test_multilevel_if_by_hand(currents, theta, levels, v0, reset, leak, want):
    z, final, p = multilevel_if(torch.tensor(currents), theta, levels, v0, reset=reset,
                                leak=leak, return_potentials=True)
    assert (z.tolist(), p.tolist()) == want
    assert final.tolist() == v0                                 # the clear at t = T


def test_leak_int_is_ceil_beta_r():
    # R − (R >> k) = R − floor(R / 2^k) = ceil((1 − 2^−k)·R), for ints and tensors alike.
    rs = list(range(-70, 71)) + [-(1 << 40) - 3, (1 << 40) + 5]
    for k in (1, 2, 3, 7, 30):
        beta = 1 - Fraction(1, 1 << k)
        got = [leak_int(r, k) for r in rs]
        assert got == [math.ceil(beta * r) for r in rs]
        assert got == [r - r // (1 << k) for r in rs]
        assert leak_int(torch.tensor(rs), k).tolist() == got
        assert all(abs(g) <= abs(r) for g, r in zip(got, rs))
    assert [leak_int(r, 0) for r in rs] == rs


def _one_neuron(*, threshold, levels, v0, timesteps, reset="soft", leak=0, bias=0):
    """input (1 pixel) → dense neuron ``n`` (w = 1, the pixel is its current) → readout."""
    n = Dense(name="n", inputs=("input",), threshold=threshold, levels=levels,
              weight=np.ones((1, 1), np.int64), bias=np.array([bias]), v0=v0, reset=reset,
              leak=leak)
    ro = Dense(name="ro", inputs=("n",), threshold=1, levels=1,
               weight=np.ones((1, 1), np.int64), bias=np.zeros(1, np.int64), readout=True)
    return Network(input=InputSpec(shape=(1,)), timesteps=timesteps, layers=(n, ro))


@pytest.mark.parametrize("currents,theta,levels,v0,reset,leak,want",
                         [h for h in HAND if len(set(h[0])) == 1])
def test_reference_by_hand(currents, theta, levels, v0, reset, leak, want):
    # A constant current: the pixel (positive) or the bias (negative) of a one-neuron layer.
    c = currents[0]
    net = _one_neuron(threshold=theta, levels=levels, v0=v0, timesteps=len(currents),
                      reset=reset, leak=leak, bias=min(c, 0))
    res = run(net, np.array([[max(c, 0)]]))
    assert res.events["n"][:, 0, 0].tolist() == want[0]
    assert res.readout.tolist() == [[sum(want[0])]]


# -- golden against a naive per-neuron loop ----------------------------------------------------
def _naive(net, image):
    """Events ``{layer: [T][n_out]}`` and readout of one image, neuron by neuron in Python
    ints, straight from docs/leak.md (sequential dense/conv2d networks only)."""
    T = net.timesteps
    src = [[int(v) for v in image.reshape(-1)]] * T
    events = {}
    for layer in net.layers:
        info = net.info(layer.name)
        n = info.n_out
        per_bias = n // len(layer.bias)
        P = [layer.v0] * n
        out = []
        for t in range(T):
            for i, z in enumerate(src[t]):
                if z:
                    for j, w in fanout(layer, info, i):
                        P[j] += z * w
            zs = [0] * n
            for j in range(n):
                H = P[j] + int(layer.bias[j // per_bias if isinstance(layer, Conv2d) else j])
                if layer.readout:
                    P[j] = H
                    continue
                z = 0 if H < layer.threshold else min(layer.levels, H // layer.threshold)
                R = (layer.v0 if z else H) if layer.reset == "hard" else H - z * layer.threshold
                # Floor division: the arithmetic shift (k = 0: no leak).
                P[j] = R - R // 2 ** layer.leak if layer.leak else R
                zs[j] = z
            if t == T - 1:
                readout = list(P)
            out.append(zs)
        events[layer.name] = out
        src = out
    return events, readout


@pytest.mark.parametrize("seed", range(6))
def test_reference_matches_a_naive_loop_on_random_networks(seed):
    net = random_network(8000 + seed, kind=["dense", "conv"][seed % 2], levels=[1, 3][seed % 2],
                         timesteps=4, depth=2, leaky=True, hard_reset=seed % 3 == 0,
                         negative_v0=seed % 2 == 1, max_neurons=24)
    assert any(getattr(l, "leak", 0) for l in net.layers)
    x = random_inputs(net, 3, seed=seed)
    res = run(net, x, record_currents=True)
    for b in range(len(x)):
        events, readout = _naive(net, x[b])
        assert res.readout[b].tolist() == readout
        for name in res.events:
            assert res.events[name][:, b].tolist() == events[name], (name, b)
    for layer in net.layers[:-1]:
        z, _ = multilevel_if(res.currents[layer.name], layer.threshold, layer.levels, layer.v0,
                             reset=layer.reset, leak=layer.leak)
        assert z.numpy().tolist() == res.events[layer.name].tolist(), layer.name


def _no_leak(net):
    return net.replace(layers=tuple(dataclasses.replace(l, leak=0) if hasattr(l, "leak") else l
                                    for l in net.layers))


def _leak_matters(net, x, golden):
    """The leak changes some layer's events on ``x`` (else a test of it proves nothing)."""
    twin = run(_no_leak(net), x).events
    return any(golden.events[n].tolist() != twin[n].tolist() for n in twin)


def test_leak_changes_the_events_and_not_the_bound():
    differ = 0
    for seed in range(6):
        net = random_network(8100 + seed, kind=["dense", "conv"][seed % 2], levels=2,
                             timesteps=4, depth=2, leaky=True)
        twin = _no_leak(net)
        for layer in net.layers:
            assert net.info(layer.name).bound == twin.info(layer.name).bound
            assert net.info(layer.name).safe_width == twin.info(layer.name).safe_width
        x = random_inputs(net, 4, seed=seed)
        a, b = run(net, x), run(twin, x)
        differ += any(a.events[n].tolist() != b.events[n].tolist() for n in a.events)
        # The SPEC §5 counters of a layer depend on its inputs only, not on its own leak; the
        # sweep's accesses are those of SPEC §5 (no extra access for the leak).
        first = net.layers[0].name
        assert {k: v for k, v in a.totals(first).items() if k != "ev_out"} == \
            {k: v for k, v in b.totals(first).items() if k != "ev_out"}
        for name in a.counters:
            got, sweep = a.totals(name), net.timesteps * net.info(name).n_out * len(x)
            assert (got["p_rd"], got["p_wr"], got["b_rd"], got["w_rd"]) == \
                (got["syn_updates"] + sweep, got["syn_updates"] + sweep, sweep,
                 got["syn_updates"])
    assert differ >= 4


def test_random_network_knob_is_off_by_default():
    a = random_network(8200, kind="conv", depth=2)
    b = random_network(8200, kind="conv", depth=2, leaky=False)
    assert a.to_json() == b.to_json()
    assert all(getattr(l, "leak", 0) == 0 for l in a.layers)
    c = random_network(8200, kind="conv", depth=2, leaky=True)
    assert {getattr(l, "leak", 0) for l in c.layers} - {0} <= {1, 2, 3, 4}
    assert c.readout.leak == 0


# -- the float training module ----------------------------------------------------------------
@pytest.mark.parametrize("reset", ["soft", "hard"])
@pytest.mark.parametrize("leak", [1, 2, 3])
def test_float_module_equals_integer_neuron_where_exact(reset, leak):
    # Currents, θ and v0 multiples of 2^(k·T): every R at timestep t is a multiple of
    # 2^(k·(T−t+1)), so β·R is an integer and the float leak equals the integer one.
    T, levels = 4, 3
    unit = 1 << (leak * T)
    g = torch.Generator().manual_seed(leak)
    s = 2.0 ** -20                                              # exact floats
    for trial in range(4):
        theta = unit * int(torch.randint(1, 4, (1,), generator=g))
        v0 = unit * int(torch.randint(-2, 3, (1,), generator=g))
        cur = unit * torch.randint(-3 * theta // unit, 4 * theta // unit, (T, 64), generator=g)
        z, _ = multilevel_if(cur, theta, levels, v0, reset=reset, leak=leak)
        mod = MultiLevelIF(levels=levels, threshold=levels * theta * s, v0=v0 * s, reset=reset,
                           leak=leak)
        zf = mod(cur.to(torch.float64) * s, return_levels=True)
        assert zf.to(torch.int64).tolist() == z.tolist()
        assert zf.eq(zf.round()).all()
    assert z.sum() > 0 and (z == 0).any()


def test_float_module_leak_scales_the_gradient_through_time():
    # No spike at t = 1 and a detached reset: ∂O(2)/∂x(1) = β·∂O(2)/∂x(2), β = 1 − 2^−2.
    mod = MultiLevelIF(levels=1, threshold=1.0, leak=2)
    assert mod.beta == 0.75 and MultiLevelIF(levels=1, threshold=1.0).beta == 1.0
    x = torch.tensor([[0.25], [0.5]], dtype=torch.float64, requires_grad=True)
    mod(x)[1].sum().backward()
    g1, g2 = x.grad.reshape(-1).tolist()
    assert g2 > 0 and g1 == g2 * 0.75
    assert "leak=2" in repr(mod)


@pytest.mark.parametrize("value,exc", [(-1, ValueError), (31, ValueError), (True, TypeError),
                                       (1.0, TypeError), ("2", TypeError)])
def test_float_module_and_multilevel_if_reject_a_bad_leak(value, exc):
    msg = f"leak must be an integer in 0..30, not {value!r}"
    with pytest.raises(exc) as e:
        MultiLevelIF(levels=1, threshold=1.0, leak=value)
    assert str(e.value) == msg
    with pytest.raises(exc) as e:
        multilevel_if(torch.tensor([1]), 1, 1, leak=value)
    assert str(e.value) == msg


# -- the IR field -----------------------------------------------------------------------------
def test_json_round_trip_with_and_without_the_field(tmp_path):
    net = random_network(8300, kind="conv", depth=2, leaky=True)
    leaks = [getattr(l, "leak", None) for l in net.layers]
    assert any(leaks[:-1]) and leaks[-1] == 0
    ir.save(net, tmp_path / "a")
    back = ir.load(tmp_path / "a")
    assert [getattr(l, "leak", None) for l in back.layers] == leaks
    assert back.to_json() == net.to_json()
    x = random_inputs(net, 3, seed=0)
    assert run(back, x).readout.tolist() == run(net, x).readout.tolist()
    # replace() keeps the other fields and validates the new one.
    moved = dataclasses.replace(back.layers[0], leak=5)
    assert (moved.leak, moved.reset, moved.threshold) == (5, back.layers[0].reset,
                                                          back.layers[0].threshold)
    # A file without the field (written before it existed) reads as leak 0 everywhere.
    doc = json.loads((tmp_path / "a" / "network.json").read_text())
    for d in doc["layers"]:
        d.pop("leak", None)
    with np.load(tmp_path / "a" / "network.npz") as z:
        old = ir.from_json(doc, {k: z[k] for k in z.files})
    assert all(l.leak == 0 for l in old.layers if hasattr(l, "leak"))
    assert old.to_json()["layers"][0]["leak"] == 0


BAD = [(-1, "must be >= 0, not -1"), (31, "must be <= 30, not 31"),
       (True, "must be an integer, not True"), (1.5, "must be an integer, not 1.5"),
       ("2", "must be an integer, not '2'"), (None, "must be an integer, not None")]


def _through_file(net, tmp_path, index, key, value):
    ir.save(net, tmp_path)
    path = os.path.join(tmp_path, "network.json")
    with open(path) as f:
        doc = json.load(f)
    doc["layers"][index][key] = value
    with open(path, "w") as f:
        json.dump(doc, f)
    with pytest.raises(MlsnnError) as e:
        ir.load(path)
    return str(e.value)


@pytest.mark.parametrize("value,why", BAD)
def test_bad_leak_is_one_line(value, why, tmp_path):
    net = _one_neuron(threshold=2, levels=1, v0=0, timesteps=1)
    msg = f"layer 'n': field 'leak' {why}"
    with pytest.raises(MlsnnError) as e:
        dataclasses.replace(net.layers[0], leak=value)
    assert str(e.value) == msg and "\n" not in msg
    assert _through_file(net, tmp_path, 0, "leak", value) == msg


def test_leaky_readout_is_one_line(tmp_path):
    net = _one_neuron(threshold=2, levels=1, v0=0, timesteps=2)
    msg = ("layer 'ro': a leaky readout is not supported (leak 2): the readout integrates and "
           "never fires; give it leak 0")
    with pytest.raises(MlsnnError) as e:
        dataclasses.replace(net.readout, leak=2)
    assert str(e.value) == msg
    assert _through_file(net, tmp_path, 1, "leak", 2) == msg
    assert MAX_LEAK == 30


def test_barrier_and_pools_have_no_leak(tmp_path):
    net = random_network(8400, kind="residual", join="barrier", depth=1, pool=True)
    k = next(i for i, l in enumerate(net.layers) if l.kind == "barrier")
    assert not hasattr(net.layers[k], "leak")
    assert _through_file(net, tmp_path, k, "leak", 1) == \
        f"layer '{net.layers[k].name}': unknown field 'leak'"


# -- export and training ----------------------------------------------------------------------
def test_export_carries_the_leak_and_rejects_a_leaky_barrier():
    from golden.export import export
    from golden.train import ModelConfig, build_model
    torch.manual_seed(0)
    cfg = ModelConfig(arch="sparse-resnet", input_shape=(1, 4, 4), num_classes=3, timesteps=2,
                      levels=2, channels=2, in_bits=4, leak=3)
    model = build_model(cfg)
    assert model.neurons["b1_join"].leak == 0
    net, _ = export(model)
    got = {l.name: l.leak for l in net.layers if hasattr(l, "leak")}
    assert got == {"stem": 3, "b1_conv1": 3, "b1_conv2": 3, "readout": 0}
    model.neurons["b1_join"].leak = 1
    with pytest.raises(MlsnnError) as e:
        export(model)
    assert str(e.value) == ("layer 'b1_join': a barrier join has no leak in the IR, but its "
                            "neuron has leak 1; give it leak 0")
    with pytest.raises(MlsnnError) as e:
        ModelConfig(arch="mlp", input_shape=(4,), num_classes=2, leak=31)
    assert str(e.value) == "leak must be an integer in 0..30, not 31"


def test_cli_train_leak_then_export(tmp_path, capsys):
    out = tmp_path / "m.pt"
    assert cli_main(["train", "--arch", "mlp", "--epochs", "1", "--hidden", "8", "--timesteps",
                     "2", "--leak", "2", "-o", str(out)]) == 0
    assert "leak=2" in capsys.readouterr().out
    assert cli_main(["export", str(out), "-o", str(tmp_path / "net")]) == 0
    net = ir.load(tmp_path / "net")
    assert [(l.name, l.leak) for l in net.layers] == [("fc1", 2), ("readout", 0)]
    capsys.readouterr()
    assert cli_main(["train", "--leak", "31", "-o", str(tmp_path / "b.pt")]) != 0
    assert capsys.readouterr().err.strip().splitlines() == [
        "mlsnn train: error: --leak must be an integer in 0..30, not 31"]


# -- the fire unit ----------------------------------------------------------------------------
def _expected(p, b, last, *, theta, levels, v0, reset, leak, width=None):
    h = p + b
    if width is not None:
        h = min(max(h, -(1 << (width - 1))), (1 << (width - 1)) - 1)
    z = 0 if h < theta else min(levels, h // theta)
    r = (v0 if z else h) if reset == "hard" else h - z * theta
    return z, (v0 if last else r - r // 2 ** leak if leak else r), h


@pytest.mark.parametrize("discharge,pipelined", MODES)
@pytest.mark.parametrize("levels,theta,v0,reset,leak", [
    (1, 1, 0, "soft", 1), (3, 5, 2, "soft", 2), (4, 3, -4, "hard", 1), (2, 6, 3, "hard", 3),
    (1, 4, -1, "soft", 30)])
@pytest.mark.parametrize("width", [None, 7])
def test_fire_unit_leak_matches_golden(discharge, pipelined, levels, theta, v0, reset, leak,
                                       width):
    dut = FireUnit(levels=levels, threshold=theta, potential_width=width or 12, bias_width=8,
                   index_width=6, v0=v0, discharge=discharge, pipelined=pipelined,
                   reset=reset, leak=leak, saturate=width is not None)
    rng = random.Random(levels * 31 + theta + leak)
    items = []
    for k in range(50):
        p = rng.choice([rng.randint(-60, 60), rng.randint(0, (levels + 2) * theta),
                        theta * rng.randint(0, levels + 1)])
        items.append((k, p, rng.choice([0, rng.randint(-10, 10)]), rng.random() < 0.2))
    out, _ = run_fire_unit(dut, items, seed=levels + leak)
    leaked = 0
    for (index, p, b, last), got in zip(items, out):
        want = _expected(p, b, last, theta=theta, levels=levels, v0=v0, reset=reset, leak=leak,
                         width=width)
        assert got == (index, *want), (p, b, last)
        noleak = _expected(p, b, last, theta=theta, levels=levels, v0=v0, reset=reset, leak=0,
                           width=width)
        leaked += want[1] != noleak[1]
    assert leaked >= 5


@pytest.mark.parametrize("kw,exc,msg", [
    (dict(leak=-1), ValueError, "leak must be an integer in 0..30, not -1"),
    (dict(leak=31), ValueError, "leak must be an integer in 0..30, not 31"),
    (dict(leak=True), TypeError, "leak must be an integer in 0..30, not True"),
    (dict(leak=2, readout=True), ValueError,
     "leak must be 0 for a readout unit (it never fires), not 2"),
])
def test_fire_unit_rejects_a_bad_leak(kw, exc, msg):
    with pytest.raises(exc) as e:
        FireUnit(levels=1, threshold=1, potential_width=4, **kw)
    assert str(e.value) == msg


# -- layer cores ------------------------------------------------------------------------------
def _single(kind, *, lanes, levels, reset, leak, T, seed):
    """input → a leaky dense or conv2d layer ``l`` → a dense readout."""
    rng = np.random.default_rng(seed)
    common = dict(levels=levels, lanes=lanes, reset=reset, leak=leak)
    if kind == "dense":
        shape, n = (9,), 4
        layer = Dense(name="l", inputs=("input",), threshold=16 * levels,
                      weight=rng.integers(-4, 6, size=(9, n)), bias=rng.integers(-6, 3, size=n),
                      v0=1, **common)
    else:
        shape = (2, 4, 4)
        layer = Conv2d(name="l", inputs=("input",), threshold=24 * levels,
                       weight=rng.integers(-4, 6, size=(2, 3, 3, 2)),
                       bias=rng.integers(-6, 3, size=2), padding=1, v0=-1, **common)
        n = 2 * 16
    ro = Dense(name="ro", inputs=("l",), threshold=1, levels=1,
               weight=rng.integers(-3, 4, size=(n, 3)), bias=np.zeros(3, np.int64),
               readout=True)
    return Network(input=InputSpec(shape=shape, in_bits=3), timesteps=T, layers=(layer, ro))


# (kind, discharge, lanes, levels, reset, leak): both kinds × both discharges × lanes 1 and 2,
# each kind with both resets and N = 1 and N > 1.
CORES = [
    ("dense", "parallel", 1, 1, "soft", 1), ("dense", "parallel", 2, 3, "hard", 2),
    ("dense", "serial", 1, 3, "hard", 1), ("dense", "serial", 2, 1, "soft", 3),
    ("conv", "parallel", 1, 3, "soft", 2), ("conv", "parallel", 2, 1, "hard", 1),
    ("conv", "serial", 1, 1, "hard", 3), ("conv", "serial", 2, 3, "soft", 1),
]


@pytest.mark.parametrize("kind,discharge,lanes,levels,reset,leak", CORES)
def test_layer_core_leak_bit_exact(kind, discharge, lanes, levels, reset, leak):
    net = _single(kind, lanes=lanes, levels=levels, reset=reset, leak=leak, T=4, seed=lanes)
    x = random_inputs(net, 3, seed=lanes + 10)
    golden = run(net, x)
    assert _leak_matters(net, x, golden)
    for layer in net.layers:
        check_layer(net, layer.name, x, seed=lanes, golden=golden, discharge=discharge)


# -- networks ---------------------------------------------------------------------------------
@pytest.mark.parametrize("kind,seed,discharge,hard", [("dense", 8500, "parallel", False),
                                                      ("conv", 8504, "serial", True),
                                                      ("conv", 8505, "parallel", False)])
def test_network_leak_bit_exact_and_cycles_exact(kind, seed, discharge, hard):
    net = random_network(seed, kind=kind, levels=3, timesteps=3, depth=2, max_neurons=16,
                         leaky=True, hard_reset=hard)
    x = random_inputs(net, 2, seed=seed)
    golden = run(net, x)
    assert _leak_matters(net, x, golden)
    cycles = gc.network_cycles(net, x, discharge=discharge, golden=golden)
    # Random gaps, stalls and depth-2 queues, then a calm run whose cycles the model predicts.
    for opts in (dict(seed=seed, gap=0.2, stall=0.2, fifo_depth=2), {}):
        rtl = run_network(net, x, discharge=discharge, **opts)
        assert compare(net, golden, rtl) == []
    assert cycles.cycles.tolist() == rtl.cycles.tolist()
    for layer in net.layers:
        assert cycles.layers[layer.name].tolist() == \
            rtl.counters[layer.name]["cycles"].tolist(), layer.name


@pytest.mark.cocotb
def test_leaky_network_on_icarus(tmp_path):
    from sim.icarus_run import run_network_icarus
    net = random_network(8603, kind="conv", levels=2, timesteps=3, depth=2, max_neurons=12,
                         leaky=True)
    x = random_inputs(net, 2, seed=3)
    golden = run(net, x)
    assert _leak_matters(net, x, golden)
    rtl = run_network_icarus(net, x, seed=3, gap=0.2, stall=0.2, golden=golden,
                             build_dir=str(tmp_path))
    assert rtl.extra["mismatches"] == []
    assert compare(net, golden, rtl) == []

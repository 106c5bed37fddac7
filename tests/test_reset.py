# amaranth: UnusedElaboratable=no
"""Hard reset (docs/reset.md, issue 14 §1): ``reset="hard"`` on dense and conv2d layers.

Golden semantics on hand-computed examples (``golden.neuron.multilevel_if``, the reference
simulator and the float module), the IR field (JSON round trip with and without it, one-line
errors), the energy model (no reset ACC), the fire unit in its three variants and the layer
cores bit-exact against golden (parallel and serial discharge, lanes 1 and 2), and small
networks through ``run_network`` with the cycle model still exact.
"""

import dataclasses
import json
import os
import random

import numpy as np
import pytest
import torch

import golden.cycles as gc
from golden import ir
from golden.energy import ir_report
from golden.energy.arch import LayerSpec, from_ir
from golden.errors import MlsnnError
from golden.fixtures import random_inputs, random_network
from golden.ir import Conv2d, Dense, InputSpec, Network
from golden.neuron import MultiLevelIF, multilevel_if
from golden.reference import fire as golden_fire
from golden.reference import run
from hw.neuron import FireUnit
from sim.amaranth_run import run_network
from sim.scoreboard import compare
from test_hw_layer import check_layer
from test_hw_neuron import MODES, _run as run_fire_unit


# -- golden semantics, by hand ----------------------------------------------------------------
# (currents, θ, N, v0) → hand-computed (z, P) per timestep for the soft and the hard reset
# (P before the clear at t = T).
HAND = [
    # N = 1, H = 3 then 6: the soft reset keeps 2 and fires again, the hard one restarts at 0.
    ([3, 3, 3], 4, 1, 0, ([0, 1, 1], [3, 2, 1]), ([0, 1, 0], [3, 0, 3])),
    # N = 3, H = 10 fires 2 levels; the remainder 2 stays (soft) or is dropped for v0 = 1.
    ([9, 9, 9], 4, 3, 1, ([2, 2, 3], [2, 3, 0]), ([2, 2, 2], [1, 1, 1])),
    # H exactly θ fires (both); v0 = 2 brings the hard-reset neuron back to θ every step.
    ([2, 2, 2], 4, 1, 2, ([1, 0, 1], [0, 2, 0]), ([1, 1, 1], [2, 2, 2])),
    # Below θ at T = 1: no spike, P = H either way.
    ([4], 5, 3, 0, ([0], [4]), ([0], [4])),
    # Below, then exactly θ after accumulation.
    ([4, 1], 5, 3, 0, ([0, 1], [4, 0]), ([0, 1], [4, 0])),
    # Negative H never fires and is kept; then 7 fires once (soft keeps 3, hard 0).
    ([-5, 12, 3], 4, 3, 0, ([0, 1, 1], [-5, 3, 2]), ([0, 1, 0], [-5, 0, 3])),
    # H = 18 ≥ N·θ clamps at N = 3; the hard reset writes the negative v0.
    ([20, 1], 4, 3, -2, ([3, 1], [6, 3]), ([3, 0], [-2, -1])),
    # T = 1, negative v0: H = 4 = θ fires; P = 0 (soft) or v0 (hard).
    ([7], 4, 1, -3, ([1], [0]), ([1], [-3])),
    # A constant negative current: never fires, P accumulates (no reset of either kind).
    ([-3, -3], 4, 1, 0, ([0, 0], [-3, -6]), ([0, 0], [-3, -6])),
]


@pytest.mark.parametrize("reset", ["soft", "hard"])
@pytest.mark.parametrize("currents,theta,levels,v0,soft,hard", HAND)
def test_multilevel_if_by_hand(currents, theta, levels, v0, soft, hard, reset):
    z, final, p = multilevel_if(torch.tensor(currents), theta, levels, v0, reset=reset,
                                return_potentials=True)
    assert (z.tolist(), p.tolist()) == (soft if reset == "soft" else hard)
    assert final.tolist() == v0                                 # the clear at t = T


def _soft(net):
    """``net`` with every reset soft (the twin that a hard reset must differ from)."""
    return net.replace(layers=tuple(dataclasses.replace(l, reset="soft") if hasattr(l, "reset")
                                    else l for l in net.layers))


def _one_neuron(reset, *, threshold, levels, v0, timesteps, bias=0):
    """input (1 pixel) → dense neuron ``n`` (w = 1, the pixel is its current) → readout."""
    n = Dense(name="n", inputs=("input",), threshold=threshold, levels=levels,
              weight=np.ones((1, 1), np.int64), bias=np.array([bias]), v0=v0, reset=reset)
    ro = Dense(name="ro", inputs=("n",), threshold=1, levels=1,
               weight=np.ones((1, 1), np.int64), bias=np.zeros(1, np.int64), readout=True)
    return Network(input=InputSpec(shape=(1,)), timesteps=timesteps, layers=(n, ro))


@pytest.mark.parametrize("reset", ["soft", "hard"])
@pytest.mark.parametrize("currents,theta,levels,v0,soft,hard",
                         [h for h in HAND if len(set(h[0])) == 1])
def test_reference_by_hand(currents, theta, levels, v0, soft, hard, reset):
    # A constant current: the pixel (positive) or the bias (negative) of a one-neuron layer.
    c = currents[0]
    net = _one_neuron(reset, threshold=theta, levels=levels, v0=v0, timesteps=len(currents),
                      bias=min(c, 0))
    res = run(net, np.array([[max(c, 0)]]))
    z = (soft if reset == "soft" else hard)[0]
    assert res.events["n"][:, 0, 0].tolist() == z
    assert res.readout.tolist() == [[sum(z)]]
    assert res.totals("n")["ev_out"] == sum(1 for v in z if v)


@pytest.mark.parametrize("seed", range(6))
def test_reference_matches_multilevel_if_on_random_networks(seed):
    net = random_network(7000 + seed, kind=["dense", "conv"][seed % 2], levels=[1, 3][seed % 2],
                         timesteps=3, depth=2, hard_reset=True)
    assert any(getattr(l, "reset", "soft") == "hard" for l in net.layers)
    x = random_inputs(net, 4, seed=seed)
    res = run(net, x, record_currents=True)
    for layer in net.layers:
        if layer.readout:
            continue
        z, _ = multilevel_if(res.currents[layer.name], layer.threshold, layer.levels, layer.v0,
                             reset=layer.reset)
        assert z.numpy().tolist() == res.events[layer.name].tolist(), layer.name


def test_hard_reset_changes_the_events():
    """The random networks with hard resets really exercise them: the soft twin differs."""
    differ = 0
    for seed in range(6):
        net = random_network(7000 + seed, kind=["dense", "conv"][seed % 2],
                             levels=[1, 3][seed % 2], timesteps=3, depth=2, hard_reset=True)
        x = random_inputs(net, 4, seed=seed)
        a, b = run(net, x), run(_soft(net), x)
        differ += any(a.events[n].tolist() != b.events[n].tolist() for n in a.events)
    assert differ >= 4


def test_readout_accepts_hard_and_is_unchanged():
    net = random_network(7100, kind="dense", timesteps=3, depth=1)
    hard = net.replace(layers=net.layers[:-1] + (dataclasses.replace(net.readout,
                                                                     reset="hard"),))
    x = random_inputs(net, 4, seed=1)
    assert run(hard, x).readout.tolist() == run(net, x).readout.tolist()


def test_random_network_knob_is_off_by_default():
    a = random_network(7200, kind="conv", depth=2)
    b = random_network(7200, kind="conv", depth=2, hard_reset=False)
    assert a.to_json() == b.to_json()
    assert all(getattr(l, "reset", "soft") == "soft" for l in a.layers)


def test_static_bound_is_the_same():
    for seed in range(4):
        net = random_network(7300 + seed, timesteps=4, hard_reset=True, negative_v0=True)
        soft = _soft(net)
        for layer in net.layers:
            assert net.info(layer.name).bound == soft.info(layer.name).bound
            assert net.info(layer.name).safe_width == soft.info(layer.name).safe_width
        # The bound holds: every potential after the fire is H or v0 with |H| within it.
        res = run(net, random_inputs(net, 8, seed=seed), record_currents=True)
        for layer in net.layers:
            if not hasattr(layer, "reset") or layer.readout:
                continue
            cur = torch.from_numpy(res.currents[layer.name])
            _, _, p = multilevel_if(cur, layer.threshold, layer.levels, layer.v0,
                                    reset=layer.reset, return_potentials=True)
            h = torch.cat([cur[:1] + layer.v0, p[:-1] + cur[1:]])
            bound = net.info(layer.name).bound
            assert int(h.abs().max()) <= bound and int(p.abs().max()) <= bound


# -- the float training module ----------------------------------------------------------------
@pytest.mark.parametrize("currents,theta,levels,v0,soft,hard", HAND)
def test_float_module_equals_integer_neuron(currents, theta, levels, v0, soft, hard):
    s = 0.25                                   # a power of two: every float is exact
    mod = MultiLevelIF(levels=levels, threshold=levels * theta * s, v0=v0 * s, reset="hard")
    x = torch.tensor(currents, dtype=torch.float64).reshape(-1, 1) * s
    assert mod(x, return_levels=True).reshape(-1).tolist() == hard[0]
    assert mod(x).reshape(-1).tolist() == [z * theta * s for z in hard[0]]


@pytest.mark.parametrize("detach", [True, False])
def test_float_module_hard_reset_cuts_the_gradient_after_a_spike(detach):
    # t = 1 fires: with a detached hard reset P(1) = v0 does not depend on x(1), so the output
    # at t = 2 has no gradient with respect to x(1); without the spike it has x(2)'s gradient.
    mod = MultiLevelIF(levels=1, threshold=1.0, reset="hard", detach_reset=detach)
    for first, cut in ((1.5, True), (0.25, False)):
        x = torch.tensor([[first], [0.5]], dtype=torch.float64, requires_grad=True)
        mod(x)[1].sum().backward()
        g1, g2 = x.grad.reshape(-1).tolist()
        if cut and detach:
            assert g1 == 0.0 and g2 > 0
        elif cut:
            # Not detached: (v0 − H(1))·∂f/∂H(1)·∂O(2)/∂H(2), nonzero and negative (H(1) > v0).
            assert g1 < 0 < g2
        elif detach:
            assert g1 == g2 > 0                 # no spike: P(1) = H(1), derivative 1
        else:
            assert 0 < g1 < g2                  # 1 + (v0 − H(1))·∂f/∂H(1) < 1


def test_float_module_and_multilevel_if_reject_a_bad_reset():
    with pytest.raises(ValueError) as e:
        MultiLevelIF(levels=1, threshold=1.0, reset="x")
    assert str(e.value) == "reset must be 'soft' or 'hard', not 'x'"
    with pytest.raises(ValueError) as e:
        multilevel_if(torch.tensor([1]), 1, 1, reset=None)
    assert str(e.value) == "reset must be 'soft' or 'hard', not None"
    assert "reset='hard'" in repr(MultiLevelIF(levels=1, threshold=1.0, reset="hard"))


def test_export_carries_the_reset():
    from golden.export import export
    from golden.train import ModelConfig, build_model
    torch.manual_seed(0)
    cfg = ModelConfig(arch="mlp", input_shape=(16,), num_classes=3, timesteps=2, levels=2,
                      hidden=8, in_bits=4)
    model = build_model(cfg)
    hidden = [n for n in model.neurons]
    model.neurons[hidden[0]].reset = "hard"
    net, _ = export(model)
    got = {l.name: l.reset for l in net.layers if hasattr(l, "reset")}
    assert got[hidden[0]] == "hard"
    assert all(got[n] == "soft" for n in got if n != hidden[0])


# -- the IR field -----------------------------------------------------------------------------
def test_json_round_trip_with_and_without_the_field(tmp_path):
    net = random_network(7400, kind="conv", depth=2, hard_reset=True)
    resets = [getattr(l, "reset", None) for l in net.layers]
    assert "hard" in resets and "soft" in resets
    ir.save(net, tmp_path / "a")
    back = ir.load(tmp_path / "a")
    assert [getattr(l, "reset", None) for l in back.layers] == resets
    assert back.to_json() == net.to_json()
    x = random_inputs(net, 3, seed=0)
    assert run(back, x).events["conv0"].tolist() == run(net, x).events["conv0"].tolist()
    # A file without the field (written before it existed) reads as soft everywhere.
    doc = json.loads((tmp_path / "a" / "network.json").read_text())
    for d in doc["layers"]:
        d.pop("reset", None)
    with np.load(tmp_path / "a" / "network.npz") as z:
        old = ir.from_json(doc, {k: z[k] for k in z.files})
    assert all(l.reset == "soft" for l in old.layers if hasattr(l, "reset"))
    assert old.to_json()["layers"][0]["reset"] == "soft"


@pytest.mark.parametrize("value", ["x", "Hard", "", 1, None, True, ["hard"]])
def test_bad_reset_is_one_line(value, tmp_path):
    net = _one_neuron("soft", threshold=2, levels=1, v0=0, timesteps=1)
    msg = f"layer 'n': field 'reset' must be 'soft' or 'hard', not {value!r}"
    with pytest.raises(MlsnnError) as e:
        dataclasses.replace(net.layers[0], reset=value)
    assert str(e.value) == msg and "\n" not in msg
    ir.save(net, tmp_path)
    path = os.path.join(tmp_path, "network.json")
    with open(path) as f:
        doc = json.load(f)
    doc["layers"][0]["reset"] = value
    with open(path, "w") as f:
        json.dump(doc, f)
    with pytest.raises(MlsnnError) as e:
        ir.load(path)
    assert str(e.value) == msg


# -- energy -----------------------------------------------------------------------------------
def test_energy_hard_reset_spends_no_reset_acc():
    net = random_network(7500, kind="dense", levels=2, timesteps=3, depth=2)
    names = [l.name for l in net.layers if not l.readout]
    hard = net.replace(layers=tuple(dataclasses.replace(l, reset="hard") if l.name == names[0]
                                    else l for l in net.layers))
    assert [s.reset for s in from_ir(hard).layers] == ["hard"] + ["soft"] * (len(names))
    x = random_inputs(net, 4, seed=3)
    rep = ir_report(hard, x)
    res = run(hard, x)
    for entry in rep["layers"]:
        ev_out = res.totals(entry["name"])["ev_out"] / 4
        want = 0.0 if entry["name"] == names[0] else ev_out
        assert entry["ops"]["analytic"]["acc_reset"] == want
        assert entry["ops"]["exact"]["acc_reset"] == want
    assert res.totals(names[0])["ev_out"] > 0
    with pytest.raises(MlsnnError) as e:
        LayerSpec(name="fc", kind="dense", in_shape=(4,), out_shape=(3,), reset="x")
    assert str(e.value) == "layer 'fc': field 'reset' must be 'soft' or 'hard', not 'x'"


# -- the fire unit ----------------------------------------------------------------------------
def _expected(p, b, last, *, theta, levels, v0, width=None):
    h = p + b
    if width is not None:
        h = min(max(h, -(1 << (width - 1))), (1 << (width - 1)) - 1)
    z = int(golden_fire(torch.tensor([float(h)], dtype=torch.float64), float(theta),
                        float(levels))[0])
    return z, (v0 if last or z else h), h


@pytest.mark.parametrize("discharge,pipelined", MODES)
@pytest.mark.parametrize("levels,theta,v0", [(1, 1, 0), (3, 5, 2), (4, 3, -4)])
@pytest.mark.parametrize("width", [None, 7])
def test_fire_unit_hard_reset_matches_golden(discharge, pipelined, levels, theta, v0, width):
    dut = FireUnit(levels=levels, threshold=theta, potential_width=width or 12, bias_width=8,
                   index_width=6, v0=v0, discharge=discharge, pipelined=pipelined,
                   reset="hard", saturate=width is not None)
    rng = random.Random(levels * 31 + theta)
    items = []
    for k in range(50):
        p = rng.choice([rng.randint(-60, 60), rng.randint(0, (levels + 2) * theta),
                        theta * rng.randint(0, levels + 1)])
        items.append((k, p, rng.choice([0, rng.randint(-10, 10)]), rng.random() < 0.2))
    out, _ = run_fire_unit(dut, items, seed=levels)
    fired = 0
    for (index, p, b, last), got in zip(items, out):
        z, pn, h = _expected(p, b, last, theta=theta, levels=levels, v0=v0, width=width)
        assert got == (index, z, pn, h), (p, b, last)
        fired += z > 0 and not last
    assert fired >= 5


def test_fire_unit_rejects_a_bad_reset():
    with pytest.raises(ValueError) as e:
        FireUnit(levels=1, threshold=1, potential_width=4, reset="x")
    assert str(e.value) == "reset must be 'soft' or 'hard', not 'x'"


# -- layer cores ------------------------------------------------------------------------------
def _single(kind, *, lanes, levels, T, seed):
    """input → a hard-reset dense or conv2d layer ``l`` → a dense readout."""
    rng = np.random.default_rng(seed)
    if kind == "dense":
        shape, n = (9,), 4
        layer = Dense(name="l", inputs=("input",), threshold=16, levels=levels,
                      weight=rng.integers(-3, 6, size=(9, n)), bias=rng.integers(-2, 3, size=n),
                      v0=1, lanes=lanes, reset="hard")
    else:
        shape = (2, 4, 4)
        layer = Conv2d(name="l", inputs=("input",), threshold=24, levels=levels,
                       weight=rng.integers(-3, 6, size=(2, 3, 3, 2)),
                       bias=rng.integers(-2, 3, size=2), padding=1, v0=-1, lanes=lanes,
                       reset="hard")
        n = 2 * 16
    ro = Dense(name="ro", inputs=("l",), threshold=1, levels=1,
               weight=rng.integers(-3, 4, size=(n, 3)), bias=np.zeros(3, np.int64),
               readout=True)
    return Network(input=InputSpec(shape=shape, in_bits=3), timesteps=T, layers=(layer, ro))


@pytest.mark.parametrize("kind", ["dense", "conv"])
@pytest.mark.parametrize("discharge", ["parallel", "serial"])
@pytest.mark.parametrize("lanes", [1, 2])
def test_layer_core_hard_reset_bit_exact(kind, discharge, lanes):
    levels = 3 if discharge == "serial" else 2
    net = _single(kind, lanes=lanes, levels=levels, T=3, seed=lanes)
    x = random_inputs(net, 3, seed=lanes + 10)
    golden = run(net, x)
    assert golden.events["l"].tolist() != run(_soft(net), x).events["l"].tolist()
    for layer in net.layers:
        check_layer(net, layer.name, x, seed=lanes, golden=golden, discharge=discharge)


# -- networks ---------------------------------------------------------------------------------
@pytest.mark.parametrize("kind,seed,discharge", [("dense", 7600, "parallel"),
                                                 ("conv", 7603, "serial"),
                                                 ("conv", 7602, "parallel")])
def test_network_hard_reset_bit_exact_and_cycles_exact(kind, seed, discharge):
    net = random_network(seed, kind=kind, levels=3, timesteps=3, depth=2, max_neurons=16,
                         hard_reset=True)
    x = random_inputs(net, 2, seed=seed)
    golden = run(net, x)
    twin = run(_soft(net), x).events
    assert any(golden.events[n].tolist() != twin[n].tolist() for n in twin)
    rtl = run_network(net, x, seed=seed, gap=0.2, stall=0.2, fifo_depth=2, discharge=discharge)
    assert compare(net, golden, rtl) == []
    assert rtl.predictions.tolist() == golden.predictions.tolist()
    calm = run_network(net, x, discharge=discharge)
    rep = gc.network_cycles(net, x, discharge=discharge, golden=golden)
    assert rep.cycles.tolist() == calm.cycles.tolist()

# amaranth: UnusedElaboratable=no
"""Fire lanes (docs/lanes.md, "Fire lanes"): a layer core with L lanes and F < L fire units
sweeps each word as L / F groups of F lanes. Results, tokens (in the emission order), every
counter and the cycles are those the golden model and the cycle model predict, whatever F."""

import json

import numpy as np
import pytest
from amaranth.back import rtlil
from amaranth.hdl import Fragment

import golden.cycles as gc
from golden.fixtures import random_inputs, random_network
from golden.ir import Conv2d, Dense, InputSpec, Network, from_json, load
from golden.reference import run
from hw.layer import LayerCore
from hw.stages import Sweep, sweep_index_width
from sim.amaranth_run import run_layer, run_network
from sim.scoreboard import compare, layer_input_tokens
from flows.io import MlsnnError
from flows.synth import FamilyPlatform
from test_cycles import _images, _single
from test_lanes import check_layer


def _divisors(n):
    return [d for d in range(1, n + 1) if n % d == 0]


def _fire_plan(net, rng):
    """Lanes > 1 on every layer that allows them, and fire lanes a proper divisor of them."""
    plan_l, plan_f = {}, {}
    for layer in net.layers:
        if layer.kind == "dense":
            ds = _divisors(layer.out_features)
        elif layer.kind == "conv2d" and not layer.readout:
            ds = _divisors(net.info(layer.name).out_shape[0])
        else:
            continue
        big = [d for d in ds if d > 1]
        if not big:
            continue
        plan_l[layer.name] = L = int(rng.choice(big))
        plan_f[layer.name] = int(rng.choice([d for d in _divisors(L) if d < L]))
    return net.with_lanes(plan_l).with_fire_lanes(plan_f)


def _rtl_cycles(net, name, x, g, **opts):
    core = LayerCore.from_network(net, name, **opts)
    toks = layer_input_tokens(net, name, x, g)
    return run_layer(core, toks, n_eot=x.shape[0] * net.timesteps,
                     max_cycles=100_000)["counters"]["cycles"]


@pytest.mark.parametrize("kind,lanes,fire,n_out", [
    ("dense", 4, 2, 4), ("dense", 4, 1, 4), ("dense", 6, 3, 6), ("dense", 8, 2, 8),
    ("dense", 2, 1, 1 * 2), ("conv", 4, 2, 4), ("conv", 4, 1, 4), ("conv", 6, 2, 6)])
@pytest.mark.parametrize("levels,T", [(1, 3), (4, 1)])
def test_single_layer_tokens_counters_and_cycles(kind, lanes, fire, n_out, levels, T):
    seed = lanes * 5 + fire + T
    net = _single(kind, lanes=lanes, levels=levels, T=T, n_out=n_out, seed=seed)
    net = net.with_fire_lanes({"l": fire})
    assert net.layer("l").fire == fire
    x = _images(net, seed)             # a dense, a sparse and an all-zero image
    g = run(net, x)
    res = check_layer(net, "l", x, seed=seed, golden=g)       # gaps and stalls
    c = res["counters"]
    assert c["p_rd"] == lanes * c["p_rd_words"] and c["p_wr"] == lanes * c["p_wr_words"]
    assert gc.layer_cycles(net, "l", x, golden=g) == _rtl_cycles(net, "l", x, g)


@pytest.mark.parametrize("discharge,synapse", [("serial", "mul"), ("parallel", "serial")])
def test_serial_options_with_fire_lanes(discharge, synapse):
    net = _single("dense", lanes=4, levels=4, T=2, n_out=8, seed=3).with_fire_lanes(2)
    x = _images(net, 3)
    g = run(net, x)
    check_layer(net, "l", x, seed=3, golden=g, discharge=discharge, synapse=synapse)
    assert gc.layer_cycles(net, "l", x, golden=g, discharge=discharge, synapse=synapse) == \
        _rtl_cycles(net, "l", x, g, discharge=discharge, synapse=synapse)


def test_fire_lanes_under_heavy_backpressure():
    # many spikes per group, a consumer that stalls 80 % of the cycles
    rng = np.random.default_rng(4)
    fc = Dense(name="fc", inputs=("input",), threshold=2, levels=2, lanes=8, fire_lanes=2,
               weight=rng.integers(0, 8, size=(4, 16)), bias=rng.integers(-2, 3, 16))
    ro = Dense(name="ro", inputs=("fc",), threshold=1, levels=1, readout=True,
               weight=rng.integers(-2, 3, size=(16, 2)), bias=np.zeros(2, np.int64))
    net = Network(input=InputSpec(shape=(4,), in_bits=3), timesteps=2, layers=(fc, ro))
    x = np.array([[7, 7, 7, 7], [7, 0, 0, 7], [0, 0, 0, 0]])
    res = check_layer(net, "fc", x, gap=0.0, stall=0.8)
    assert res["counters"]["ev_out"] > 16


def test_readout_with_one_fire_unit():
    rng = np.random.default_rng(5)
    ro = Dense(name="ro", inputs=("input",), threshold=1, levels=1, readout=True, lanes=10,
               fire_lanes=1, weight=rng.integers(-5, 6, size=(6, 10)),
               bias=rng.integers(-3, 4, size=10))
    net = Network(input=InputSpec(shape=(6,), in_bits=3), timesteps=3, layers=(ro,))
    x = random_inputs(net, 3, seed=5)
    check_layer(net, "ro", x, seed=5, gap=0.3, stall=0.5)


@pytest.mark.parametrize("kind,seed,P", [("dense", 3, 1), ("dense", 8, 4), ("conv", 2, 1),
                                         ("conv", 6, 3), ("residual", 4, 2)])
def test_networks_match_golden_and_the_cycle_model(kind, seed, P):
    rng = np.random.default_rng(seed)
    net = _fire_plan(random_network(5200 + seed, kind=kind), rng)
    assert any(getattr(layer, "fire", 1) < getattr(layer, "lanes", 1) for layer in net.layers)
    x = random_inputs(net, 3, seed=seed)
    P = min(P, net.input.size)
    golden = run(net, x)
    rtl = run_network(net, x, pixels_per_beat=P)
    assert compare(net, golden, rtl) == []
    rep = gc.network_cycles(net, x, pixels_per_beat=P, golden=golden)
    assert rep.cycles.tolist() == rtl.cycles.tolist()
    for layer in net.layers:
        assert rep.layers[layer.name].tolist() == \
            rtl.counters[layer.name]["cycles"].tolist(), layer.name
    # with gaps and stalls, and elaborated for ECP5 (credit queues in LUT RAM)
    res = run_network(net, x, seed=seed, gap=0.2, stall=0.3, platform=FamilyPlatform("ecp5"))
    assert compare(net, golden, res) == []


def test_fewer_fire_units_are_built():
    net = _single("dense", lanes=8, levels=4, T=1, n_out=8, seed=1)

    def units(n):
        core = LayerCore.from_network(net.with_fire_lanes({"l": n}), "l")
        text = rtlil.convert(core, ports=None)
        return sum(1 for line in text.splitlines()
                   if line.startswith("module ") and ".sweep.unit" in line)

    assert units(8) == 8 and units(2) == 2
    assert sweep_index_width(4, 4) == 2 + 2 and sweep_index_width(1) == 1


def test_fire_lanes_change_the_sweep_cycles_only():
    # 32 outputs at L = 8: the sweep of F = 2 takes 4x the groups, the integration the same
    net = _single("dense", lanes=8, levels=4, T=1, n_out=32, seed=2)
    x = np.zeros((1, 9), np.int64)        # no events: integration is empty
    full = gc.layer_cycles(net, "l", x)
    narrow = gc.layer_cycles(net.with_fire_lanes({"l": 2}), "l", x)
    assert narrow - full == 32 // 2 - 32 // 8          # 12 more groups per sweep
    g = run(net.with_fire_lanes({"l": 2}), x)
    assert narrow == _rtl_cycles(net.with_fire_lanes({"l": 2}), "l", x, g)
    assert _eot_latency(net.with_fire_lanes({"l": 2})) - _eot_latency(net) == 12


def _eot_latency(net):
    # elaborated, so that no core is left behind unused: its warning would surface (garbage
    # collected) in whichever test runs next
    core = LayerCore.from_network(net, "l")
    Fragment.get(core, None)
    return core.eot_latency


def test_ir_field_validation_json_and_with_lanes():
    rng = np.random.default_rng(0)
    kw = dict(name="fc", inputs=("input",), threshold=3, levels=2,
              weight=rng.integers(-3, 4, size=(4, 8)), bias=np.zeros(8, np.int64))
    with pytest.raises(MlsnnError, match=r"^layer 'fc': fire_lanes \(3\) must divide its "
                                         r"lanes \(4\)$"):
        Dense(lanes=4, fire_lanes=3, **kw)
    with pytest.raises(MlsnnError, match="fire_lanes"):
        Dense(lanes=4, fire_lanes=0, **kw)
    ro = Dense(name="ro", inputs=("fc",), threshold=1, levels=1, readout=True,
               weight=np.ones((8, 2), np.int64), bias=np.zeros(2, np.int64))
    net = Network(input=InputSpec(shape=(4,), in_bits=2), timesteps=1,
                  layers=(Dense(lanes=4, **kw), ro))
    assert "fire_lanes" not in json.dumps(net.to_json())      # unset: files stay as they were
    f2 = net.with_fire_lanes(2)        # ro (lanes 1) is not divided by 2: left unset
    assert f2.layer("fc").fire == 2 and f2.layer("ro").fire_lanes is None
    back = from_json(json.loads(json.dumps(f2.to_json())), f2.arrays())
    assert back.layer("fc").fire_lanes == 2
    assert f2.with_lanes({"fc": 8}).layer("fc").fire_lanes == 2      # 2 divides 8: kept
    assert f2.with_lanes({"fc": 1}).layer("fc").fire_lanes is None   # unset
    with pytest.raises(MlsnnError, match=r"^fire_lanes: network has no layer 'nope'$"):
        net.with_fire_lanes({"nope": 1})
    with pytest.raises(MlsnnError, match=r"^fire_lanes 3 divides the lanes of no layer$"):
        net.with_fire_lanes(3)
    conv = Conv2d(name="c", inputs=("input",), threshold=1, levels=1, lanes=4, fire_lanes=2,
                  weight=np.ones((1, 3, 3, 4), np.int64), bias=np.zeros(4, np.int64))
    assert conv.fire == 2


def test_sweep_rejects_units_that_do_not_divide_the_lanes():
    from hw.neuron import FireUnit
    from hw.layout import EventLayout
    units = [FireUnit(levels=1, threshold=1, potential_width=4, bias_width=2, index_width=2)
             for _ in range(3)]
    with pytest.raises(ValueError, match=r"the 3 fire units must divide the lanes \(4\)"):
        Sweep(units=units, n=2, timesteps=1, out_layout=EventLayout(2, 2), lanes=4)


def test_cli_fire_lanes_simulate_verilog_and_bad_values(tmp_path, capsys):
    from flows.cli import main
    d = tmp_path / "net"
    net = _single("dense", lanes=1, levels=4, T=1, n_out=8, seed=3)
    from golden.ir import save
    save(net, str(d))
    x = random_inputs(net, 2, seed=3)
    np.savez(d / "inputs.npz", x=x)
    rc = main(["simulate", "--ir", str(d), "--inputs", str(d / "inputs.npz"), "--sim",
               "amaranth", "--lanes", "l=4", "--fire-lanes", "l=2", "--json"])
    out = capsys.readouterr().out
    assert rc == 0, out
    assert json.loads(out)["match"] is True

    def units(*opts):
        v = tmp_path / "t.v"
        assert main(["verilog", "--ir", str(d), "--lanes", "l=4", *opts, "-o", str(v)]) == 0
        capsys.readouterr()
        return sum(1 for line in v.read_text().splitlines()
                   if line.startswith("module ") and "_l.sweep.unit" in line)

    assert (units(), units("--fire-lanes", "2"), units("--fire-lanes", "1")) == (4, 2, 1)
    for lanes, bad, msg in [
            ("l=4", "0", "--fire-lanes must be >= 1, not 0"),
            ("l=4", "x", "--fire-lanes must be an integer or LAYER=F pairs, not 'x'"),
            ("l=4", "3", "fire_lanes 3 divides the lanes of no layer"),
            ("l=4", "nope=2", "fire_lanes: network has no layer 'nope'"),
            ("l=4", "l=a", "--fire-lanes: 'l=a' is not LAYER=F with an integer F"),
            ("l=4", "l=3", "layer 'l': fire_lanes (3) must divide its lanes (4)")]:
        assert main(["verilog", "--ir", str(d), "--lanes", lanes, "--fire-lanes", bad, "-o",
                     str(tmp_path / "t.v")]) != 0
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and msg in err[0], (bad, err)


def test_regression_draws_narrow_fire_and_its_reproducer_keeps_it(tmp_path, capsys):
    import dataclasses
    import shlex
    from flows import regress as rg
    from flows.cli import main
    cfgs = [rg.RegressConfig.from_seed(s) for s in range(100)]
    narrow = [c for c in cfgs if c.narrow_fire]
    assert narrow and all(c.lanes for c in narrow)
    cfg = next(c for c in narrow if any(layer.fire_lanes for layer in c.network().layers
                                        if hasattr(layer, "lanes")))
    net = cfg.network()
    # drawn last: without it the seed gives the same network, only with one fire unit per lane
    plain = dataclasses.replace(cfg, narrow_fire=False).network()
    unset = net.with_fire_lanes({layer.name: None for layer in net.layers
                                 if hasattr(layer, "lanes")})
    assert json.dumps(unset.to_json()) == json.dumps(plain.to_json())
    gen = cfg.to_cli("amaranth", images=2, directory=str(tmp_path / "net")).split(" && ")[0]
    assert "--narrow-fire" in gen
    assert main(shlex.split(gen)[1:]) == 0
    capsys.readouterr()
    saved = load(str(tmp_path / "net"))
    assert json.dumps(saved.to_json()) == json.dumps(net.to_json())
    x = cfg.inputs(net, 2)
    res = run_network(net, x, **cfg.sim_options("amaranth"))
    assert compare(net, run(net, x), res) == []

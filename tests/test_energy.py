"""Energy models (golden/energy): Lemaire formulas against hand counts, Dampfhoffer's break-even
values, analytic vs exact (golden) vs measured counters, the torch front end, and the CLI."""

import dataclasses
import gc
import json
import math
import warnings

import numpy as np
import pytest

from golden.energy import (DEFAULT, Activity, Flow, ann_ops, breakeven, energy, ir_report,
                           load_tech, snn_counts, vgg16)
from golden.energy.arch import LayerSpec, from_ir, resnet18
from golden.energy.compare import load_measured
from golden.energy.lemaire import activity_from_rates, costs, estimate
from golden.energy.report import arch_report
from golden.errors import MlsnnError
from golden.fixtures import random_inputs, random_network
from golden.ir import Conv2d, Dense, InputSpec, Join, Network
from golden.counters import SPEC_COUNTERS as COUNTERS
from golden.reference import run


def E(n, bits):
    """The default SRAM access energy, written out (ENERGY.md)."""
    return 1.09e-5 * n * bits + 13.2


# -- analytic formulas against hand counts ---------------------------------------------------

def test_lanes_words_and_their_price():
    # Four lanes: a quarter of the word accesses; a 4 x 8-bit word is one 64-bit-or-less
    # access of the same memory, so each element costs a quarter; 16 lanes of 8 bits are two
    # 64-bit accesses per word.
    one = LayerSpec(name="fc", kind="dense", in_shape=(4,), out_shape=(16,), levels=2, w_bits=8)
    four = dataclasses.replace(one, lanes=4)
    act = Activity(spikes=Flow(5, 7, 10), ev_out=2)
    c1, _ = snn_counts(one, act, timesteps=2)
    c4, _ = snn_counts(four, act, timesteps=2)
    assert c4["w_rd_words"] * 4 == c4["w_rd"] == c1["w_rd"] == c1["w_rd_words"] == 5 * 16
    sram = DEFAULT.sram
    assert sram.element(64, 8, 4) == sram.access(64, 8) / 4
    assert sram.word(64, 8, 16) == 2 * sram.access(64, 8)
    k1 = costs(None, one, DEFAULT)
    k4 = costs(None, four, DEFAULT)
    assert k4["w"] == k1["w"] / 4 and k4["p"] == k1["p"] / 4
    with pytest.raises(MlsnnError, match="field 'lanes' must be a positive integer"):
        dataclasses.replace(one, lanes=0)


def test_dense_snn_counts_by_hand():
    spec = LayerSpec(name="fc", kind="dense", in_shape=(4,), out_shape=(3,), levels=2)
    # 5 input events of a 2-level layer carrying z = 1,1,2,2,1 (Σz = 7, Σ N = 10); 2 out.
    act = Activity(spikes=Flow(5, 7, 10), ev_out=2)
    ctr, ops = snn_counts(spec, act, timesteps=2)
    assert ctr == {"ev_in": 5, "ev_out": 2, "w_rd": 15, "p_rd": 15 + 6, "p_wr": 21, "b_rd": 6,
                   "syn_updates": 15, "syn_acc": 30, "w_rd_words": 15, "p_rd_words": 21,
                   "p_wr_words": 21}
    assert ops["acc_syn"] == 30 and ops["acc_syn_z"] == 21       # N×ACC vs exact Σz
    assert ops["acc_bias"] == 6 and ops["acc_reset"] == 2 and ops["mac_syn"] == 0
    assert ops["addr_acc"] == 15 and ops["addr_mac"] == 0        # θ·N_out ACC, no MAC
    assert ops["in_rd"] == 5 and ops["out_wr"] == 2 and ops["mac_leak"] == 0
    _, leaky = snn_counts(spec, act, timesteps=2, leak=True)
    assert leaky["mac_leak"] == 6                                  # T·N_out


def test_conv_snn_counts_by_hand_stride_2():
    # C_in 2, C_out 3, K 3, S 2, P 1, 8x8 -> 4x4. θ = 10 binary events, 4 out, T = 3.
    spec = LayerSpec(name="c", kind="conv", in_shape=(2, 8, 8), out_shape=(3, 4, 4), kernel=3,
                     stride=2, padding=1)
    ctr, ops = snn_counts(spec, Activity(spikes=Flow(10, 10, 10), ev_out=4), timesteps=3)
    assert ctr["w_rd"] == 10 * 3 * 9                      # θ·C_out·K² (stride ignored)
    assert ctr["p_rd"] == ctr["p_wr"] == 270 + 3 * 48     # + T·C_out·H_out·W_out
    assert ctr["b_rd"] == 144
    assert ctr["syn_updates"] == 10 * 3 * 4               # θ·C_out·⌈K/S⌉²
    assert ops["acc_syn"] == 120 and ops["acc_bias"] == 144 and ops["acc_reset"] == 4
    assert ops["addr_mac"] == 20 and ops["addr_acc"] == 270   # 2θ MAC, θ·C_out·K² ACC


def test_pixels_cost_macs_and_barrier_and_sew():
    spec = LayerSpec(name="c", kind="conv", in_shape=(1, 4, 4), out_shape=(2, 4, 4), kernel=3,
                     padding=1)
    _, ops = snn_counts(spec, Activity(pixels=Flow(7, 700, 7 * 255), ev_out=0), timesteps=1)
    assert ops["mac_syn"] == 7 * 18 and ops["acc_syn"] == 0 and ops["acc_syn_z"] == 0
    bar = LayerSpec(name="j", kind="join", join="barrier", in_shape=(4,), out_shape=(4,),
                    levels=2)
    ctr, ops = snn_counts(bar, Activity(spikes=Flow(3, 5, 6), ev_out=1), timesteps=2)
    # Barrier: per event one p read + write and one ACC; per timestep one r/w per neuron.
    assert ctr["p_rd"] == ctr["p_wr"] == 3 + 8 and ctr["w_rd"] == 0 and ctr["b_rd"] == 0
    assert ctr["syn_updates"] == 3 and ops["acc_syn_z"] == 5 and ops["acc_syn"] == 6
    assert ops["acc_bias"] == 0 and ops["acc_reset"] == 1 and ops["addr_acc"] == 0
    sew = LayerSpec(name="s", kind="join", join="sew", in_shape=(4,), out_shape=(4,), levels=0)
    ctr, ops = snn_counts(sew, Activity(spikes=Flow(3, 3, 3), ev_out=3), timesteps=2)
    assert ctr["ev_in"] == ctr["ev_out"] == 3
    assert all(v == 0 for v in ops.values())             # no cost of its own


def test_ann_counts_by_hand():
    conv = LayerSpec(name="c", kind="conv", in_shape=(2, 5, 5), out_shape=(3, 5, 5), kernel=3,
                     padding=1)
    ops = ann_ops(conv)
    assert ops["in_rd"] == ops["w_rd"] == ops["mac_syn"] == 2 * 3 * 25 * 9
    assert ops["b_rd"] == ops["out_wr"] == ops["acc_bias"] == 75
    assert ops["addr_acc"] == 50 + 75 + 27
    dense = LayerSpec(name="d", kind="dense", in_shape=(4,), out_shape=(3,))
    ops = ann_ops(dense)
    assert (ops["in_rd"], ops["w_rd"], ops["b_rd"], ops["out_wr"], ops["mac_syn"],
            ops["addr_acc"]) == (4, 12, 3, 3, 12, 12)
    add = LayerSpec(name="a", kind="join", join="sew", in_shape=(2, 2, 2), out_shape=(2, 2, 2),
                    levels=0)
    ops = ann_ops(add)
    # Residual add: reads of both inputs, a write of the output, one ACC per output element.
    assert (ops["in_rd"], ops["out_wr"], ops["acc_syn"]) == (16, 8, 8)


def test_energy_pricing_by_hand():
    spec = LayerSpec(name="fc", kind="dense", in_shape=(4,), out_shape=(3,), levels=2,
                     w_bits=8, b_bits=16, p_bits=12)
    arch = vgg16()  # only used for ANN widths; SNN costs depend on the spec and the FIFO
    cost = costs(arch, spec, DEFAULT, mode="snn", fifo_depth=16, event_bits=6)
    assert cost["w"] == pytest.approx(E(12, 8)) and cost["b"] == pytest.approx(E(3, 16))
    assert cost["p"] == pytest.approx(E(3, 12)) and cost["in"] == pytest.approx(E(16, 6))
    _, ops = snn_counts(spec, Activity(spikes=Flow(5, 7, 10), ev_out=2), timesteps=2)
    e = energy(ops, cost)
    assert e["potentials"] == pytest.approx(42 * E(3, 12))
    assert e["weights"] == pytest.approx(15 * E(12, 8))
    assert e["bias"] == pytest.approx(6 * E(3, 16))
    assert e["in_out"] == pytest.approx(7 * E(16, 6))
    assert e["synaptic"] == pytest.approx((30 + 6 + 2) * 0.1)       # 32-bit ACC = 0.1 pJ
    assert e["synaptic_sum_z"] == pytest.approx((21 + 6 + 2) * 0.1)
    assert e["addressing"] == pytest.approx(15 * 0.1)
    assert e["total"] == pytest.approx(e["memory"] + e["synaptic"] + e["addressing"])
    packed = DEFAULT.replace(sram={"model": "packed64"}, ops={"bits": 8})
    c2 = costs(arch, spec, packed, mode="snn", event_bits=6)
    assert c2["w"] == pytest.approx(10 * 8 / 64) and c2["p"] == pytest.approx(10 * 12 / 64)
    assert energy(ops, c2, packed)["addressing"] == pytest.approx(15 * 0.03)


# -- Dampfhoffer -------------------------------------------------------------------------------

def test_breakeven_values_of_seed_002():
    rows = {r["model"]: r["n_s"] for r in breakeven()}
    assert round(rows["naive"], 2) == 1.38
    assert rows["naive"] == pytest.approx((4 * 5.4 + 1) / (3 * 5.4 + 0.13))
    assert round(rows["ideal_reuse"], 2) == 0.28
    assert round(rows["reuse_sparsity"], 2) == 0.15
    assert round(rows["eyeriss_v1"], 2) == 0.42
    assert round(rows["eyeriss_v1_vgg16"], 2) == 0.44
    # Eyeriss v2: the thesis divides the rounded v1 figure by 1.15 (0.42 / 1.15 = 0.365);
    # the unrounded model gives 0.364. Both are reported.
    assert round(rows["eyeriss_v2_thesis"], 2) == 0.37
    assert rows["eyeriss_v2"] == pytest.approx(rows["eyeriss_v1"] / 1.15)
    assert round(rows["eyeriss_v2"], 3) == 0.364


# -- exact (golden) and analytic on IR networks ----------------------------------------------------

def _conv_net(*, k, s, p, shape, c_out=2, levels=1, T=1):
    w = np.ones((shape[0], k, k, c_out), dtype=np.int64)
    conv = Conv2d(name="c", inputs=("input",), threshold=10 ** 6, levels=levels, weight=w,
                  bias=np.zeros(c_out, np.int64), stride=s, padding=p)
    n = conv.out_shape(shape)
    out = Dense(name="out", inputs=("c",), threshold=1, levels=1,
                weight=np.zeros((math.prod(n), 1), np.int64), bias=np.zeros(1, np.int64),
                readout=True)
    return Network(input=InputSpec(shape=shape, in_bits=2), timesteps=T, layers=(conv, out))


def _one_event(shape, y, x, value=1):
    a = np.zeros((1,) + shape, np.int64)
    a[0, 0, y, x] = value
    return a


def test_conv_borders_by_hand():
    # 3x3 kernel, padding 1, 2 output channels, 3x3 input: a corner event reaches 2·2·2 = 8
    # targets, the analytic model assumes C_out·K² = 18: the 10 missing are borders.
    net = _conv_net(k=3, s=1, p=1, shape=(1, 3, 3))
    rep = ir_report(net, _one_event((1, 3, 3), 0, 0))
    c = rep["layers"][0]
    assert c["counters"]["exact"]["w_rd"] == 8 and c["counters"]["analytic"]["w_rd"] == 18
    assert c["differences"]["w_rd"] == {"analytic_minus_exact": 10,
                                        "causes": {"borders": 10}}
    # A centre event of the largest pixel value (3 at 2 bits) has the full fan-out and the
    # worst-case value: no difference at all.
    rep = ir_report(net, _one_event((1, 3, 3), 1, 1, value=3))
    assert rep["layers"][0]["differences"] == {}


def test_conv_stride_2_by_hand():
    # K 3, S 2, P 1 on 5x5 -> 3x3, one output channel. Along an axis, input i is reached by the
    # kernel offsets k with (i + 1 - k) even: 2 offsets for odd i, 1 for even i.
    net = _conv_net(k=3, s=2, p=1, shape=(1, 5, 5), c_out=1)
    c = ir_report(net, _one_event((1, 5, 5), 1, 1))["layers"][0]      # 2·2 = 4 targets
    assert c["counters"]["exact"]["w_rd"] == 4
    assert c["differences"]["w_rd"]["causes"] == {"stride": 9 - 4}
    assert "syn_updates" not in c["differences"]                     # ⌈3/2⌉² = 4 = exact
    c = ir_report(net, _one_event((1, 5, 5), 2, 2))["layers"][0]      # 1·1 = 1 target
    assert c["counters"]["exact"]["w_rd"] == 1
    assert c["differences"]["w_rd"]["causes"] == {"stride": 8}
    assert c["differences"]["syn_updates"]["causes"] == {"stride": 3}
    # 4x4 -> 2x2: input 3 is aligned with k = 0 and k = 2 but k = 0 falls off the map.
    net = _conv_net(k=3, s=2, p=1, shape=(1, 4, 4), c_out=1)
    c = ir_report(net, _one_event((1, 4, 4), 3, 1))["layers"][0]
    assert c["counters"]["exact"]["w_rd"] == 2
    assert c["differences"]["w_rd"]["causes"] == {"stride": 5, "borders": 2}


def test_multilevel_acc_worst_case_vs_sum_z():
    # A dense layer fed by a 4-level layer: analytic syn_acc = N·θ·N_out, exact = Σz·N_out.
    fc0 = Dense(name="fc0", inputs=("input",), threshold=1, levels=4,
                weight=np.array([[1, 3]]), bias=np.array([0, 0]))
    fc1 = Dense(name="fc1", inputs=("fc0",), threshold=1, levels=1,
                weight=np.ones((2, 3), np.int64), bias=np.zeros(3, np.int64), readout=True)
    net = Network(input=InputSpec(shape=(1,), in_bits=2), timesteps=1, layers=(fc0, fc1))
    rep = ir_report(net, np.array([[1]]))           # fc0 fires z = 1 and z = 3
    l1 = rep["layers"][1]
    assert l1["counters"]["exact"]["syn_acc"] == (1 + 3) * 3
    assert l1["counters"]["analytic"]["syn_acc"] == 2 * 4 * 3
    assert l1["differences"]["syn_acc"]["causes"] == {"levels": 24 - 12}
    assert l1["ops"]["exact"]["acc_syn_z"] == 12 and l1["ops"]["analytic"]["acc_syn"] == 24


@pytest.mark.parametrize("seed", range(12))
def test_random_networks_differences_fully_explained(seed):
    kind = ("dense", "conv", "residual")[seed % 3]
    net = random_network(seed, kind=kind)
    x = random_inputs(net, 3, seed)
    res = run(net, x)
    rep = ir_report(net, x, result=res)
    for layer, l in zip(net.layers, rep["layers"]):
        assert l["counters"]["exact"] == {c: v / 3 for c, v in res.totals(layer.name).items()}
        for c in COUNTERS:
            d = l["counters"]["analytic"][c] - l["counters"]["exact"][c]
            causes = l["differences"].get(c, {"causes": {}})["causes"]
            assert d == pytest.approx(sum(causes.values()), abs=1e-9), (layer.name, c)
            if not isinstance(layer, Conv2d):
                assert set(causes) <= {"levels"}          # no borders/stride off convs
            if c not in ("syn_acc",):
                assert "levels" not in causes
            assert all(v >= -1e-9 for v in causes.values()) or c == "syn_acc"
    # The exact energies come from the counters: their memory terms are counter × cost.
    for l in rep["layers"]:
        e, ctr, cost = l["energy_nJ"]["exact"], l["counters"]["exact"], l["cost_pJ_per_access"]
        assert e["potentials"] * 1000 == pytest.approx((ctr["p_rd"] + ctr["p_wr"]) * cost["p"])
        assert e["weights"] * 1000 == pytest.approx(ctr["w_rd"] * cost["w"])


def test_sew_join_is_extra_events_of_the_next_layer():
    net = random_network(4, kind="residual", join="sew", shortcut="identity")
    x = random_inputs(net, 2, 1)
    res = run(net, x)
    rep = ir_report(net, x, result=res)
    by = {l["name"]: l for l in rep["layers"]}
    for layer in net.layers:
        if isinstance(layer, Join):
            nxt = [l for l in net.layers if layer.name in l.inputs][0]
            a, b = layer.inputs
            ev = sum(by[s]["counters"]["exact"]["ev_out"] if s != "input" else 0 for s in (a, b))
            assert by[nxt.name]["activity"]["ev_in"] == pytest.approx(ev)
            assert by[layer.name]["energy_nJ"]["exact"]["total"] == 0
            assert by[layer.name]["energy_nJ"]["analytic"]["total"] == 0


# -- measured counters ---------------------------------------------------------------------------

def _simulate_json(net, res, *, tamper=None):
    """What ``mlsnn simulate --json`` prints: counters summed over the images."""
    layers = [{"name": l.name, "counters": dict(res.totals(l.name), cycles=123)}
              for l in net.layers]
    if tamper:
        layers[tamper[0]]["counters"][tamper[1]] += 1
    return {"match": True, "cycles": 456, "predictions": [int(p) for p in res.predictions],
            "layers": layers}


def test_measured_from_constructed_json_equals_exact(tmp_path):
    net = random_network(7, kind="conv")
    x = random_inputs(net, 4, 2)
    res = run(net, x)
    doc = _simulate_json(net, res)
    path = tmp_path / "sim.json"
    path.write_text(json.dumps(doc))
    rep = ir_report(net, x, measured=str(path), result=res)
    assert rep["measured"]["equals_exact"] and rep["measured"]["mismatches"] == []
    for l in rep["layers"]:
        for c in COUNTERS:
            assert l["counters"]["measured"][c] == l["counters"]["exact"][c]
        assert l["energy_nJ"]["measured"] == pytest.approx(l["energy_nJ"]["exact"])
    bad = ir_report(net, x, measured=_simulate_json(net, res, tamper=(0, "p_wr")), result=res)
    assert not bad["measured"]["equals_exact"]
    assert bad["measured"]["mismatches"] == [
        {"layer": net.layers[0].name, "counter": "p_wr",
         "measured": res.totals(net.layers[0].name)["p_wr"] + 1,
         "exact": res.totals(net.layers[0].name)["p_wr"]}]


def test_measured_json_errors(tmp_path):
    net = random_network(1, kind="dense")
    x = random_inputs(net, 2, 0)
    res = run(net, x)
    doc = _simulate_json(net, res)
    with pytest.raises(MlsnnError, match="for 2 images .* inputs hold 3"):
        ir_report(net, random_inputs(net, 3, 0), measured=doc)
    del doc["layers"][0]["counters"]["w_rd"]
    with pytest.raises(MlsnnError, match="counter 'w_rd' is missing"):
        load_measured(doc)
    with pytest.raises(MlsnnError, match="have no entry for layer"):
        ir_report(net, x, measured={**_simulate_json(net, res),
                                    "layers": _simulate_json(net, res)["layers"][1:]})
    p = tmp_path / "broken.json"
    p.write_text("{")
    with pytest.raises(MlsnnError, match="malformed JSON"):
        load_measured(str(p))


def _rtl_json(net, x, seed):
    from sim.amaranth_run import run_network

    r = run_network(net, x, seed=seed, gap=0.2, stall=0.2)
    return {"match": True, "cycles": int(np.sum(r.cycles)),
            "predictions": [int(p) for p in r.predictions],
            "layers": [{"name": l.name, "counters": {c: int(np.sum(v)) for c, v in
                                                     r.counters[l.name].items()}}
                       for l in net.layers]}


@pytest.mark.slow
@pytest.mark.parametrize("seed,kind", [(1, "dense"), (2, "conv"), (6, "conv"), (9, "dense"),
                                       (3, "residual")])
def test_rtl_measured_equals_exact(seed, kind):
    """The real RTL (Amaranth simulation of hw.network.NetworkTop) counts what golden says."""
    pytest.importorskip("hw.network", reason="hw/network.py (the RTL network top) is missing")
    net = random_network(seed, kind=kind, max_neurons=24)
    x = random_inputs(net, 2, seed)
    reason = None
    try:
        doc = _rtl_json(net, x, seed)
    except MlsnnError as e:
        if "not supported" not in str(e):
            raise
        reason = str(e)
    if reason is not None:
        # The half-built top's elaboratables warn when collected; collect them here, quietly.
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            gc.collect()
        pytest.skip(f"the RTL does not support this network yet: {reason}")
    rep = ir_report(net, x, measured=doc)
    assert rep["measured"]["mismatches"] == []
    assert rep["measured"]["equals_exact"]


@pytest.mark.slow
def test_simulate_command_measured_equals_exact(tmp_path, capsys):
    """``mlsnn simulate --json`` output fed to ``mlsnn energy --measured``."""
    import importlib.util

    if importlib.util.find_spec("flows.commands.simulate") is None:
        pytest.skip("the 'mlsnn simulate' command (flows/commands/simulate.py) does not exist yet;"
                    " the RTL itself is checked by test_rtl_measured_equals_exact")
    from flows.cli import build_parser, main
    from golden.ir import save

    net = random_network(1, kind="dense", max_neurons=16)
    x = random_inputs(net, 2, 1)
    save(net, tmp_path / "net")
    np.savez(tmp_path / "x.npz", x=x)
    sim_args = ["simulate", "--ir", str(tmp_path / "net"), "--inputs", str(tmp_path / "x.npz"),
                "--json"]
    try:
        build_parser().parse_args(sim_args)
    except SystemExit:
        capsys.readouterr()
        pytest.skip("'mlsnn simulate' does not take --ir/--inputs/--json as assumed here")
    assert main(sim_args) == 0
    (tmp_path / "sim.json").write_text(capsys.readouterr().out)
    rc = main(["energy", "--ir", str(tmp_path / "net"), "--inputs", str(tmp_path / "x.npz"),
               "--measured", str(tmp_path / "sim.json"), "--json"])
    doc = json.loads(capsys.readouterr().out)
    assert rc == 0 and doc["measured"]["equals_exact"], doc["measured"]["mismatches"]


# -- multi-level versus binary, on the golden counters ----------------------------------------

def _pair(seed):
    """The same weights and inputs as [T=1, N=4] and as [T=4, N=1] (θ_binary = 4·θ_multi, so
    both quantise to the same 5 levels, seed 000 §4.2)."""
    net = random_network(seed, kind=("dense", "conv")[seed % 2], timesteps=1, levels=4)
    layers_b = []
    for layer in net.layers:
        if layer.readout:
            layers_b.append(layer)
        else:
            layers_b.append(dataclasses.replace(layer, levels=1, threshold=4 * layer.threshold))
    ml = net
    bin_ = Network(input=net.input, timesteps=4, layers=tuple(layers_b), name="binary")
    return ml, bin_


def _accesses(res, net):
    return sum(res.totals(l.name)[c] for l in net.layers
               for c in ("w_rd", "p_rd", "p_wr", "b_rd", "ev_in", "ev_out"))


def _events(res, net):
    return sum(res.totals(l.name)["ev_out"] for l in net.layers)


def test_multilevel_fewer_events_means_fewer_accesses():
    checked = 0
    for seed in range(16):
        ml, bn = _pair(seed)
        x = random_inputs(ml, 8, seed)
        r_ml, r_bn = run(ml, x), run(bn, x)
        if _events(r_ml, ml) < _events(r_bn, bn):
            checked += 1
            assert _accesses(r_ml, ml) < _accesses(r_bn, bn), seed
    assert checked >= 8     # the premise held often enough for the check to mean something


# -- VGG16 / ResNet18 and seed 000 Table 3 --------------------------------------------------------

def test_vgg16_ann_against_table3():
    arch = vgg16((3, 32, 32))
    assert arch.synapses == 313_725_952                        # MACs of VGG16 on 32x32
    assert arch.neurons == 277_504
    rep = arch_report(arch, ann_only=True)
    e = rep["ann"]["total"]["energy_nJ"]
    # Table 3 (nJ): weights 5.58e6, in/out 6.1e6, synaptic 1.29e6, total 12.9e6. The in/out and
    # synaptic terms land close; the weight term is ~11x larger here because every weight read
    # is priced at the SRAM size of the whole layer (up to 2.36 M weights), see docs/energy.md.
    assert 0.7 < e["in_out"] / 6.1e6 < 1.3
    assert 0.6 < e["synaptic"] / 1.29e6 < 1.3
    assert e["weights"] == pytest.approx(6.10e7, rel=0.01)     # 10.9x Table 3
    assert 1 <= e["total"] / 12.9e6 < 10                        # 6.72e7: 5.2x Table 3


def test_vgg16_snn_trends_of_table3():
    """Seed 000's activities (130e3 spikes [T=4, N=1], 57e3 [T=1, N=4]): multi-level wins,
    both SNNs beat the ANN, biases scale with T, memory dominates synaptic operations."""
    b = arch_report(vgg16(levels=1), timesteps=4, total_spikes=130e3)
    m = arch_report(vgg16(levels=4), timesteps=1, total_spikes=57e3, mean_level=2.0)
    eb, em = b["total"]["energy_nJ"]["analytic"], m["total"]["energy_nJ"]["analytic"]
    assert em["total"] < eb["total"]
    assert 0.3 < em["total"] / eb["total"] < 0.7                 # Table 3: 0.51
    assert b["ratios"]["E_SNN/E_ANN"]["analytic"] < 1
    assert eb["bias"] == pytest.approx(4 * em["bias"])
    assert em["memory"] > 100 * em["synaptic"]
    assert b["total"]["spikes"] == pytest.approx(130e3)


def test_resnet18_shapes_and_joins():
    for join in ("sew", "barrier"):
        a = resnet18((3, 32, 32), join=join, levels=2)
        convs = [l for l in a.layers if l.kind == "conv"]
        assert len(convs) == 1 + 16 + 3                          # stem, 8 blocks x 2, 3 shortcuts
        assert [l.kind for l in a.layers].count("join") == 8
        assert a.layers[-1].in_shape == (512,) and a.layers[-1].readout
        rep = arch_report(a, timesteps=1, rates=0.1)
        joins = [l for l in rep["layers"] if l["kind"].startswith("join")]
        if join == "sew":
            assert all(l["energy_nJ"]["analytic"]["total"] == 0 for l in joins)
        else:
            assert all(l["energy_nJ"]["analytic"]["potentials"] > 0 for l in joins)
    # SEW forwards both streams: the layer after a SEW join sees more events (the avalanche).
    sew = activity_from_rates(resnet18(join="sew"), 1, 0.1)
    bar = activity_from_rates(resnet18(join="barrier"), 1, 0.1)
    assert sew["l2b1_conv1"].ev_in > bar["l2b1_conv1"].ev_in


def test_arch_from_json_file():
    from golden.energy.arch import from_json

    doc = {"input_shape": [1, 8, 8], "layers": [
        {"name": "c1", "kind": "conv", "out_channels": 4, "kernel": 3, "padding": 1},
        {"name": "c2", "kind": "conv", "out_channels": 4, "kernel": 3, "stride": 2,
         "padding": 1},
        {"name": "c3", "kind": "conv", "out_channels": 4, "kernel": 3, "padding": 1},
        {"name": "add", "kind": "join", "inputs": ["c3", "c2"], "join": "barrier"},
        {"name": "pool", "kind": "pool", "kernel": 4},
        {"name": "fc", "kind": "dense", "out_features": 10}]}
    a = from_json(doc, levels=2)
    assert [l.out_shape for l in a.layers] == [(4, 8, 8), (4, 4, 4), (4, 4, 4), (4, 4, 4),
                                               (4, 1, 1), (10,)]
    assert a.layers[-1].readout and a.layers[3].levels == 2
    acts = activity_from_rates(a, 2, {"c1": 0.5, "*": 0.25})
    assert acts["c2"].spikes.events == 0.5 * 2 * 256          # c1's events
    assert acts["add"].spikes.events == 0.25 * 2 * 64 * 2      # both streams
    doc["layers"][3]["inputs"] = ["c3", "c1"]
    with pytest.raises(MlsnnError, match="two inputs of one shape"):
        from_json(doc)


def test_ir_arch_and_ann_equivalent():
    net = random_network(3, kind="residual")
    arch = from_ir(net)
    assert [l.name for l in arch.layers] == [l.name for l in net.layers]
    ann = estimate(arch, ann=True)
    assert ann["total"]["ops"]["mac_syn"] == sum(l.synapses for l in arch.layers)


# -- technology table ------------------------------------------------------------------------------

def test_tech_overrides_from_toml_and_json(tmp_path):
    p = tmp_path / "t.toml"
    p.write_text('[sram]\nmodel = "packed64"\nfifo_depth = 64\n[ops]\nbits = 8\n'
                 '[widths]\nweight = 4\n')
    t = load_tech(str(p))
    assert t.sram.model == "packed64" and t.sram.fifo_depth == 64 and t.ops.add == 0.03
    assert t.sram.access(10 ** 6, 16) == pytest.approx(2.5) and t.widths.weight == 4
    q = tmp_path / "t.json"
    q.write_text(json.dumps({"ops": {"add_pj": {"32": 0.2}}}))
    assert load_tech(str(q)).ops.add == 0.2 and load_tech(str(q)).ops.mul == 3.1
    bad = tmp_path / "bad.toml"
    bad.write_text("[sram]\nmodle = 1\n")
    with pytest.raises(MlsnnError, match="section 'sram' has unknown field 'modle'"):
        load_tech(str(bad))
    bad.write_text("[sram]\nmodel = 'dram'\n")
    with pytest.raises(MlsnnError, match="'sram.model' must be 'linear' or 'packed64'"):
        load_tech(str(bad))
    bad.write_text("[ops]\nbits = 16\n")
    with pytest.raises(MlsnnError, match="no entry for it"):
        load_tech(str(bad))
    bad.write_text("nonsense = = 1")
    with pytest.raises(MlsnnError, match="malformed technology file"):
        load_tech(str(bad))


# -- torch front end -------------------------------------------------------------------------------

def _torch_twin(net):
    """A float torch model computing exactly what the dense IR network ``net`` computes."""
    import torch
    from golden.neuron import MultiLevelIF

    class Twin(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.fcs = torch.nn.ModuleList()
            self.neurons = torch.nn.ModuleList()
            # A neuron outputs z·θ·s; scaling the next bias and threshold by that unit s keeps
            # every float an exact integer multiple of the integer model's value.
            scale = 1.0
            for layer in net.layers:
                fc = torch.nn.Linear(layer.in_features, layer.out_features).double()
                with torch.no_grad():
                    fc.weight.copy_(torch.from_numpy(layer.weight.T.astype(np.float64)))
                    fc.bias.copy_(torch.from_numpy(layer.bias.astype(np.float64)) * scale)
                self.fcs.append(fc)
                if not layer.readout:
                    self.neurons.append(MultiLevelIF(levels=layer.levels, threshold=float(
                        layer.levels * layer.threshold * scale)))
                    scale *= layer.threshold

        def forward(self, x):
            T = net.timesteps
            a = x.unsqueeze(0).expand(T, *x.shape)
            for k, fc in enumerate(self.fcs):
                a = fc(a.reshape(-1, a.shape[-1])).reshape(T, -1, fc.out_features)
                if k < len(self.neurons):
                    a = self.neurons[k](a)
            return a.sum(0)

    return Twin()


@pytest.mark.parametrize("seed", [0, 5, 11])
def test_torch_hooks_record_the_golden_activity(seed):
    import torch
    from golden.energy.torchfront import record

    net = random_network(seed, kind="dense", depth=2)
    x = random_inputs(net, 5, seed)
    res = run(net, x)
    arch, acts = record(_torch_twin(net), torch.from_numpy(x.astype(np.float64)),
                        timesteps=net.timesteps)
    assert [l.kind for l in arch.layers] == ["dense"] * len(net.layers)
    for layer, spec in zip(net.layers, arch.layers):
        tot = res.totals(layer.name)
        act = acts[spec.name]
        assert act.ev_in == pytest.approx(tot["ev_in"] / 5)
        assert act.ev_out == pytest.approx(tot["ev_out"] / 5)
        assert spec.readout == layer.readout
        if layer.inputs[0] == "input":
            assert act.pixels.events == act.ev_in
        else:
            # Σz of the incoming spikes = syn_acc / N_out for a dense layer.
            assert act.spikes.zsum == pytest.approx(tot["syn_acc"] / layer.out_features / 5)
            assert act.spikes.nsum == act.ev_in * net.layer(layer.inputs[0]).levels


def test_torch_vgg16_and_resnet18_any_shape():
    import torch
    from golden.energy.torchfront import ArchNet, record, torch_report

    for arch in (vgg16((3, 32, 40), levels=4), resnet18((1, 24, 24), join="barrier")):
        model = ArchNet(arch, timesteps=2)
        x = torch.rand(2, *arch.input_shape)
        rec, acts = record(model, x, timesteps=2)
        # Every layer is recorded, the pools too (kind, window, stride, operation).
        assert [(l.name, l.kind, l.in_shape, l.out_shape) for l in rec.layers] == \
            [(l.name, l.kind, l.in_shape, l.out_shape) for l in arch.layers]
        assert [(l.kernel, l.stride, l.pool) for l in rec.layers if l.kind == "pool"] == \
            [(l.kernel, l.stride, l.pool) for l in arch.layers if l.kind == "pool"]
        rep = torch_report(model, x, timesteps=2)
        assert rep["total"]["energy_nJ"]["analytic"]["total"] > 0
        # The ANN of the same shapes costs the same whatever the source of the shapes.
        ann = torch_report(ArchNet(arch, ann=True), x, timesteps=1, ann=True)
        assert ann["ann"]["total"]["energy_nJ"]["total"] == pytest.approx(
            arch_report(arch, ann_only=True)["ann"]["total"]["energy_nJ"]["total"])
    # With pooling between them, the next conv sees the pooled events: fewer than emitted.
    arch = vgg16(levels=1)
    _, acts = record(ArchNet(arch, timesteps=1), torch.rand(1, 3, 32, 32), timesteps=1)
    assert acts["conv3"].ev_in <= acts["conv2"].ev_out
    assert acts["conv2"].ev_in == acts["conv1"].ev_out


# -- the command line ------------------------------------------------------------------------

def _cli(args, capsys):
    from flows.cli import main

    rc = main(["energy", *args])
    out, err = capsys.readouterr()
    return rc, out, err


def test_cli_breakeven_json(capsys):
    rc, out, _ = _cli(["--breakeven", "--json"], capsys)
    rows = {r["model"]: r for r in json.loads(out)["breakeven"]}
    assert rc == 0 and round(rows["naive"]["n_s"], 2) == 1.38


def test_cli_arch(capsys, tmp_path):
    rc, out, _ = _cli(["--arch", "vgg16", "--input-shape", "3,32,32", "--ann", "--json"], capsys)
    doc = json.loads(out)
    assert rc == 0 and doc["kind"] == "ann" and doc["ann"]["total"]["macs"] == 313_725_952
    png = tmp_path / "snn.png"
    rc, out, _ = _cli(["--arch", "sparse-resnet18", "--input-shape", "3,32,32", "--snn",
                       "--timesteps", "1", "--levels", "4", "--spike-rate", "0.1", "--json",
                       "--plot", str(png)], capsys)
    doc = json.loads(out)
    assert rc == 0 and doc["kind"] == "snn" and png.stat().st_size > 10_000
    assert set(doc["total"]["energy_nJ"]["analytic"]) >= {"potentials", "weights", "bias",
                                                          "in_out", "synaptic", "addressing",
                                                          "total"}
    rc, out, _ = _cli(["--arch", "vgg16", "--snn", "--total-spikes", "1e5"], capsys)
    assert rc == 0 and "Table 3" in out and "E_SNN/E_ANN" in out


def test_cli_ir_measured_and_plot(capsys, tmp_path):
    from golden.ir import save

    net = random_network(2, kind="residual")
    x = random_inputs(net, 3, 0)
    save(net, tmp_path / "net")
    np.savez(tmp_path / "x.npz", x=x)
    res = run(net, x)
    (tmp_path / "sim.json").write_text(json.dumps(_simulate_json(net, res)))
    png = tmp_path / "e.png"
    args = ["--ir", str(tmp_path / "net"), "--inputs", str(tmp_path / "x.npz"),
            "--measured", str(tmp_path / "sim.json"), "--plot", str(png)]
    rc, out, err = _cli(args + ["--json"], capsys)
    doc = json.loads(out)
    assert rc == 0 and err == "" and doc["measured"]["equals_exact"]
    assert doc["fifo_depth"] == 16          # the hardware's event FIFO depth prices events
    assert doc["measured_equals_exact"] is True and doc["summary"]["source"] == "measured"
    assert doc["summary"]["total"] == doc["total"]["energy_nJ"]["measured"]["total"]
    assert doc["sources"] == ["analytic", "exact", "measured"] and png.stat().st_size > 10_000
    rc, out, _ = _cli(args, capsys)
    assert rc == 0 and "measured == exact" in out
    (tmp_path / "sim.json").write_text(json.dumps(_simulate_json(net, res, tamper=(1, "w_rd"))))
    rc, out, err = _cli(args, capsys)
    assert rc == 1 and "MISMATCH" in err and "MEASURED != EXACT" in out


@pytest.mark.parametrize("args,msg", [
    (["--ir", "nowhere.json", "--inputs", "x.npz"], "file not found"),
    (["--arch", "alexnet"], "unknown architecture 'alexnet'"),
    (["--arch", "vgg16", "--input-shape", "3,x"], "--input-shape must be integers"),
    (["--arch", "vgg16", "--snn"], "exactly one of --spike-rate or --total-spikes"),
    (["--arch", "vgg16", "--snn", "--spike-rate", "2"], "above 1 event per neuron"),
    (["--arch", "vgg16", "--input-shape", "3,8,8"], "too small"),
    ([], "choose one of --ir, --arch or --breakeven"),
])
def test_cli_errors_are_one_line(capsys, args, msg):
    rc, _, err = _cli(args, capsys)
    assert rc == 1 and msg in err and len(err.strip().splitlines()) == 1


# -- pooling (maxpool2d, avgpool2d) --------------------------------------------------------------

def _conv_pool_net(pool, *, seed=0, T=2):
    """conv 3x3 (1 -> 2 channels, padding 1, N = 3) -> ``pool`` ("max" or "avg", 2x2) -> dense
    readout, on a 1x6x6 input of 3-bit pixels; numpy weights."""
    from golden.pooling import AvgPool2d, MaxPool2d

    rng = np.random.default_rng(seed)
    conv = Conv2d(name="c", inputs=("input",), threshold=30, levels=3,
                  weight=rng.integers(-2, 6, (1, 3, 3, 2)), bias=np.array([0, -3]), padding=1)
    p = (MaxPool2d(name="p", inputs=("c",), kernel=2) if pool == "max" else
         AvgPool2d(name="p", inputs=("c",), kernel=2, threshold=2, levels=2))
    out = Dense(name="out", inputs=("p",), threshold=1, levels=1,
                weight=rng.integers(-3, 4, (2 * 3 * 3, 4)), bias=np.zeros(4, np.int64),
                readout=True)
    return Network(input=InputSpec(shape=(1, 6, 6), in_bits=3), timesteps=T,
                   layers=(conv, p, out), name=f"conv-{pool}pool")


def _sparse_pixels(seed, n):
    """``n`` 1x6x6 images of 3-bit pixels, half of them zero."""
    rng = np.random.default_rng(seed)
    return rng.integers(0, 8, (n, 1, 6, 6)) * (rng.random((n, 1, 6, 6)) < 0.5)


@pytest.mark.parametrize("pool", ["max", "avg"])
def test_pool_analytic_counters_equal_exact(pool):
    from golden.energy.compare import explain, stream_stats

    net = _conv_pool_net(pool)
    spec = from_ir(net).layer("p")
    assert (spec.kind, spec.pool, spec.kernel, spec.stride, spec.in_shape, spec.out_shape) == \
        ("pool", pool, 2, 2, (2, 6, 6), (2, 3, 3))
    assert spec.n_weights == spec.n_bias == spec.synapses == 0
    layer = net.layer("p")
    fan, aligned, F, Fs = layer.energy_fanouts(net.info("p"))
    assert (F, Fs) == (1, 1) and fan.tolist() == aligned.tolist() == [1.0] * 72
    x = _sparse_pixels(1, 6)
    for i in range(len(x)):
        xi = x[i:i + 1]
        res = run(net, xi)
        exact = res.totals("p")
        assert 0 < exact["ev_out"] < 2 * 18 < exact["ev_in"]          # busy, not saturated
        rep = ir_report(net, xi, result=res)
        lp = rep["layers"][1]
        assert lp["kind"] == f"pool-{pool}"
        ana = {c: int(v) for c, v in lp["counters"]["analytic"].items()}
        assert all(lp["counters"]["analytic"][c] == ana[c] for c in COUNTERS)
        ev = res.events["c"]                                        # what the pool received
        levels_gap = int(3 * (ev > 0).sum() - ev.sum())             # Σ (N − z), N = 3
        exact.pop("shifts")                 # a golden counter Lemaire's model does not have
        if pool == "max":
            assert ana == exact and lp["differences"] == {}
        else:
            assert {c: v for c, v in ana.items() if c != "syn_acc"} == \
                {c: v for c, v in exact.items() if c != "syn_acc"}
            assert ana["syn_acc"] == 3 * exact["ev_in"] and exact["syn_acc"] == int(ev.sum())
            if levels_gap:
                assert lp["differences"] == {"syn_acc": {"analytic_minus_exact": levels_gap,
                                                         "causes": {"levels": levels_gap}}}
        # The causes of a pool: no stride, no borders (fan-out exactly 1), levels only in the
        # syn_acc of an average pool.
        _, _, causes = explain(net, layer, stream_stats(net, res, xi)["p"], 1)
        assert set(causes) == {"p_rd", "p_wr", "syn_updates", "syn_acc"}
        for c, why in causes.items():
            want = levels_gap if (pool, c) == ("avg", "syn_acc") else 0
            assert why.get("stride", 0) == why.get("borders", 0) == 0
            assert why.get("levels", 0) == want, (c, why)
        # The next layer sees the pool's events with their largest value: the conv's N = 3
        # through a max pool, the average pool's own N = 2.
        assert rep["layers"][2]["activity"]["ev_in"] == exact["ev_out"]
        assert rep["layers"][2]["activity"]["n_in"] == (3 if pool == "max" else 2) * \
            exact["ev_out"]


def test_pool_snn_and_ann_counts_by_hand():
    mk = lambda pool, **kw: LayerSpec(name="p", kind="pool", pool=pool, in_shape=(2, 4, 4),
                                      out_shape=(2, 2, 2), kernel=2, stride=2, **kw)
    # 5 events of a 2-level layer (Σz 7, ΣN 10) into 8 outputs, T = 2; 2 events out.
    act = Activity(spikes=Flow(5, 7, 10), ev_out=2)
    ctr, ops = snn_counts(mk("avg", levels=2), act, timesteps=2)
    assert ctr == {"ev_in": 5, "ev_out": 2, "w_rd": 0, "p_rd": 5 + 16, "p_wr": 21, "b_rd": 0,
                   "syn_updates": 5, "syn_acc": 10, "w_rd_words": 0, "p_rd_words": 21,
                   "p_wr_words": 21}
    assert (ops["acc_syn"], ops["acc_syn_z"], ops["acc_reset"], ops["acc_bias"]) == (10, 7, 2, 0)
    assert (ops["addr_acc"], ops["addr_mac"], ops["mac_syn"], ops["in_rd"], ops["out_wr"]) == \
        (5, 0, 0, 5, 2)
    ctr, ops = snn_counts(mk("max", levels=0), act, timesteps=2)
    assert ctr == {"ev_in": 5, "ev_out": 2, "w_rd": 0, "p_rd": 21, "p_wr": 21, "b_rd": 0,
                   "syn_updates": 5, "syn_acc": 5, "w_rd_words": 0, "p_rd_words": 21,
                   "p_wr_words": 21}                                # one comparison per update
    assert (ops["acc_syn"], ops["acc_syn_z"], ops["acc_reset"], ops["addr_acc"]) == (5, 5, 0, 5)
    # Pixels pooled straight from the input: one ACC per update (no weight, no MAC).
    _, ops = snn_counts(mk("avg", levels=1), Activity(pixels=Flow(4, 400, 4 * 255)), timesteps=1)
    assert (ops["acc_syn"], ops["acc_syn_z"], ops["mac_syn"]) == (4, 4, 0)
    # ANN: every output reads its K² = 4 inputs; avg 4 ACC per output, max 3 comparisons;
    # addressing N_in + N_out; no weights, no bias.
    a = ann_ops(mk("avg"))
    assert (a["in_rd"], a["out_wr"], a["acc_syn"], a["acc_syn_z"], a["addr_acc"]) == \
        (32, 8, 32, 32, 40)
    m = ann_ops(mk("max"))
    assert (m["in_rd"], m["out_wr"], m["acc_syn"], m["addr_acc"]) == (32, 8, 24, 40)
    assert m["w_rd"] == m["b_rd"] == m["mac_syn"] == m["acc_bias"] == m["addr_mac"] == 0
    # The IR net's pool in its ANN: 2x6x6 -> 2x3x3.
    ann = {l["name"]: l["ops"] for l in estimate(from_ir(_conv_pool_net("max")), ann=True)
           ["layers"]}
    assert (ann["p"]["in_rd"], ann["p"]["out_wr"], ann["p"]["acc_syn"]) == (72, 18, 54)
    # VGG16's first max-pool (64x32x32 -> 64x16x16) is priced too.
    v = ann_ops(vgg16().layer("pool1"))
    assert (v["in_rd"], v["out_wr"], v["acc_syn"]) == (65536, 16384, 3 * 16384)


@pytest.mark.parametrize("kw,msg", [
    (dict(padding=1), "field 'padding' must be 0 for a pool, not 1"),
    (dict(out_shape=(2, 3, 3)), "out_shape (2, 3, 3) does not follow"),
    (dict(in_shape=(32,), out_shape=(8,)), "a pool needs (C, H, W) shapes"),
    (dict(pool="min"), "field 'pool' must be 'max' or 'avg', not 'min'"),
])
def test_pool_spec_errors(kw, msg):
    args = dict(name="p", kind="pool", in_shape=(2, 4, 4), out_shape=(2, 2, 2), kernel=2,
                stride=2)
    with pytest.raises(MlsnnError) as e:
        LayerSpec(**{**args, **kw})
    assert msg in str(e.value) and "\n" not in str(e.value)


@pytest.mark.parametrize("pool", ["max", "avg"])
def test_cli_energy_of_pool_nets(pool, capsys, tmp_path):
    from golden.ir import save

    net = _conv_pool_net(pool, seed=3)
    x = _sparse_pixels(4, 3)
    save(net, tmp_path / "net")
    np.savez(tmp_path / "x.npz", x=x)
    res = run(net, x)
    (tmp_path / "sim.json").write_text(json.dumps(_simulate_json(net, res)))
    args = ["--ir", str(tmp_path / "net"), "--inputs", str(tmp_path / "x.npz"),
            "--measured", str(tmp_path / "sim.json")]
    rc, out, err = _cli(args + ["--json"], capsys)
    assert rc == 0 and err == ""
    doc = json.loads(out)
    lp = {l["name"]: l for l in doc["layers"]}["p"]
    assert doc["measured_equals_exact"] is True
    assert lp["kind"] == f"pool-{pool}" and lp["shape"]["kernel"] == 2
    assert lp["counters"]["exact"]["w_rd"] == lp["counters"]["exact"]["b_rd"] == 0
    assert lp["counters"]["exact"]["p_rd"] * 3 == res.totals("p")["p_rd"]
    assert lp["energy_nJ"]["exact"]["potentials"] > 0 and lp["energy_nJ"]["exact"]["weights"] == 0
    assert {l["name"]: l for l in doc["ann"]["layers"]}["p"]["ops"]["in_rd"] == 72
    rc, out, _ = _cli(args, capsys)
    assert rc == 0 and f"pool-{pool}" in out and "measured == exact" in out


def test_torch_pools_are_recorded_and_others_refused():
    import torch
    from golden.energy.torchfront import record

    torch.manual_seed(0)
    for mod, op, k in ((torch.nn.MaxPool2d(3), "max", 3), (torch.nn.AvgPool2d(3), "avg", 3),
                       (torch.nn.AdaptiveAvgPool2d(2), "avg", 3)):
        model = torch.nn.Sequential(torch.nn.Conv2d(1, 2, 3, padding=1), mod,
                                    torch.nn.Flatten(), torch.nn.Linear(8, 3))
        x = torch.relu(torch.randn(2, 1, 6, 6))
        arch, acts = record(model, x, timesteps=1)
        p = arch.layers[1]
        assert (p.kind, p.pool, p.kernel, p.stride, p.in_shape, p.out_shape) == \
            ("pool", op, k, k, (2, 6, 6), (2, 2, 2))
        conv_out = model[0](x)
        assert acts[p.name].ev_in == float((conv_out != 0).sum()) / 2
        assert acts[p.name].ev_out == float((mod(conv_out) != 0).sum()) / 2
    for mod, msg in ((torch.nn.MaxPool2d(3, 2), "is not supported"),
                     (torch.nn.AvgPool2d(2, padding=1), "is not supported"),
                     (torch.nn.AdaptiveAvgPool2d(4), "is not a k x k pool")):
        model = torch.nn.Sequential(torch.nn.Conv2d(1, 2, 3, padding=1), mod)
        with pytest.raises(MlsnnError, match=msg) as e:
            record(model, torch.rand(1, 1, 6, 6), timesteps=1)
        assert "\n" not in str(e.value)


@pytest.mark.parametrize("seed", [0, 1, 2, 4, 5, 7, 8, 11])
def test_random_pool_networks_differences_fully_explained(seed):
    # random_network(pool=True) puts pools after convs, after the input (pixels) and after
    # residual joins; these seeds draw max and average pools of each kind of input.
    net = random_network(seed, kind=("conv", "residual")[seed % 2], pool=True)
    pools = [l.name for l in net.layers if l.kind in ("maxpool2d", "avgpool2d")]
    assert pools
    x = random_inputs(net, 3, seed)
    res = run(net, x)
    rep = ir_report(net, x, result=res)
    for layer, l in zip(net.layers, rep["layers"]):
        assert l["counters"]["exact"] == {c: v / 3 for c, v in res.totals(layer.name).items()}
        for c in COUNTERS:
            d = l["counters"]["analytic"][c] - l["counters"]["exact"][c]
            causes = l["differences"].get(c, {"causes": {}})["causes"]
            assert d == pytest.approx(sum(causes.values()), abs=1e-9), (layer.name, c)
            if layer.name in pools:
                allowed = {"levels"} if (layer.kind, c) == ("avgpool2d", "syn_acc") else set()
                assert set(causes) <= allowed, (layer.name, c, causes)
        # A max pool of the input passes pixels on: the next layer prices them as pixels.
        src = net.layer(layer.inputs[0]) if layer.inputs[0] != "input" else None
        if src is not None and src.kind == "maxpool2d" and src.inputs == ("input",):
            assert l["activity"]["ev_in_pixels"] == l["activity"]["ev_in"] > 0


@pytest.mark.slow
@pytest.mark.parametrize("pool", ["max", "avg"])
def test_rtl_measured_equals_exact_with_pools(pool):
    """The RTL's pool cores (hw/pool.py) count what golden and the energy model say."""
    pytest.importorskip("hw.pool", reason="hw/pool.py (the RTL pool core) is missing")
    net = _conv_pool_net(pool)
    x = _sparse_pixels(5, 2)
    rep = ir_report(net, x, measured=_rtl_json(net, x, 1))
    assert rep["measured"]["mismatches"] == [] and rep["measured"]["equals_exact"]
    lp = rep["layers"][1]
    assert lp["counters"]["measured"] == {**lp["counters"]["exact"],
                                          "cycles": lp["counters"]["measured"]["cycles"]}

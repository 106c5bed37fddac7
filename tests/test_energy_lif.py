"""Leaky and current-based neurons in the energy models (issue 16 §1): seed 002's neuron models
(IF/LIF with instantaneous or current-based synapses, eqs. 3.4, 3.7, 3.10) against its
published numbers, on networks, on the command line; and the per-layer integer leak k of
mlsnn (β = 1 − 2^−k) in the analytic, exact and measured counts."""

import dataclasses
import json

import numpy as np
import pytest

from golden.energy import Activity, Flow, ir_report, snn_counts
from golden.energy import dampfhoffer as dh
from golden.energy.arch import Arch, LayerSpec, from_ir, from_json
from golden.energy.lemaire import activity_from_rates, costs, energy
from golden.errors import MlsnnError
from golden.ir import Conv2d, Dense, InputSpec, Network
from golden.reference import run

# Table 3.1, 45 nm 8 bit (the constants of seed 002 §3.3), in MAC units.
AC, SRAM = 0.13, 5.4


def _cli(args, capsys):
    from flows.cli import main

    rc = main(["energy", *args])
    out, err = capsys.readouterr()
    return rc, out, err


# -- seed 002's neuron models --------------------------------------------------------------

def test_neuron_models_by_hand():
    n_s, T, nps = 0.7, 9, 1 / 250
    spike = 3 * SRAM + AC                              # ER_w + ER_state + EW_state + AC
    want = {"if-inst": n_s * spike,                                     # eq. 3.4
            "lif-inst": n_s * spike + nps * T * (2 * SRAM + 1),         # eq. 3.7
            "if-cont": n_s * spike + nps * T * (4 * SRAM + 2),          # eq. 3.10
            "lif-cont": n_s * spike + nps * T * (4 * SRAM + 3),         # 3.10 + 1 MAC
            "lif-sweep": n_s * spike + nps * (T - 1) * AC}              # mlsnn: t < T, 1 AC
    for m, v in want.items():
        assert dh.neuron_model(m, n_s, T, nps)["total"] == pytest.approx(v, rel=1e-12), m
    assert dh.lif_inst(n_s, T, nps) == pytest.approx(want["lif-inst"], rel=1e-12)
    assert dh.if_cont(n_s, T, nps) == pytest.approx(want["if-cont"], rel=1e-12)
    assert dh.lif_cont(n_s, T, nps) == pytest.approx(want["lif-cont"], rel=1e-12)
    assert dh.if_inst(n_s) == pytest.approx(want["if-inst"], rel=1e-12)
    with pytest.raises(MlsnnError, match="neuron model must be one of if-inst, lif-inst, "
                                         "if-cont, lif-cont, lif-sweep, not 'adex'"):
        dh.neuron_model("adex", 1.0, 1, 0.1)
    with pytest.raises(MlsnnError, match="timesteps must be a positive integer, not 0"):
        dh.neuron_model("lif-inst", 1.0, 0, 0.1)
    with pytest.raises(MlsnnError, match="spikes per synapse must be a finite number >= 0"):
        dh.neuron_model("lif-inst", -1.0, 1, 0.1)


def test_table_3_2_of_seed_002():
    # The thesis prints N_s with two decimals and the efficiency with one: a model reproduces a
    # row when some N_s within 0.005 of the printed one gives an efficiency within 0.05 of the
    # printed one (half a unit of each last digit). It gives no row's N_syn/N_neur, so the LIF
    # and cont rows are checked over the ratios it names (Fig. 3.3: 9.4e2 .. 2.9e3).
    published = [("VGG8*", "if-inst", None, 0.30, 4.6), ("VGG16", "if-inst", None, 1.30, 1.1),
                 ("VGG16", "if-inst", None, 0.51, 2.7), ("ResNet11", "lif-inst", 100, 3.60, 0.4),
                 ("VGG9", "lif-inst", 25, 0.80, 1.7), ("VGG16*", "lif-inst", 5, 0.39, 3.6),
                 ("VGG16", "if-cont", 680, 0.62, 1.3), ("VGG16", "if-inst", None, 5.00, 0.3),
                 ("VGG16", "if-inst", None, 1.00, 1.4), ("VGG16*", "lif-inst", 5, 0.41, 3.4)]
    rows = dh.table_3_2()
    assert [(r["topology"], r["model"], r["timesteps"], r["n_s"], r["efficiency"])
            for r in rows] == published
    for r in rows:
        lo, hi = r["reproduced_for"]
        if r["model"] == "if-inst":
            # Topology-free: reproduced at the printed N_s itself, for any N_syn/N_neur.
            assert lo == 0 and hi is None
            assert round(r["mlsnn"][0], 1) == r["efficiency"] and r["mlsnn"][0] == r["mlsnn"][1]
        elif r["model"] == "lif-inst":
            assert hi is None and lo < 940, r          # every ratio the thesis names
        else:
            # IF+cont at T = 680 only for N_syn/N_neur in [1997, 2456]: the 2.02e3 that
            # §3.3.3's shares imply, not Fig. 3.3's VGG16 1.7e3 nor mlsnn's VGG16.
            assert 1996 < lo < 1998 and 2455 < hi < 2457
            assert lo < dh.fig_3_2()["implied_ratio"]["lif-inst"] < hi
    # At the printed N_s of VGG16* (0.39), LIF+inst gives 3.51-3.54, not 3.6: that row needs
    # N_s <= 0.386 (at N_syn/N_neur = 940), inside its rounding.
    vgg = rows[5]
    assert 3.5 < vgg["mlsnn"][0] < vgg["mlsnn"][1] < 3.55
    assert dh.neuron_model("lif-inst", 0.385, 5, 1 / 940)["total"] < 22.6 / 3.55


def test_fig_3_2_shares_and_fig_3_3_ratio():
    f = dh.fig_3_2()
    # 15.17 % (LIF+inst) implies a VGG16 with N_syn/N_neur = 2020; the same ratio gives
    # IF+cont 26.34 %, the thesis' figure (2f / (1 + f), whatever the constants).
    assert round(f["if_cont_predicted"]["percent"], 2) == 26.34
    assert f["if_cont_predicted"]["low"] <= 26.34 <= f["if_cont_predicted"]["high"]
    assert f["if_cont_predicted"]["percent"] == pytest.approx(200 * 0.1517 / 1.1517, rel=1e-12)
    r = f["implied_ratio"]
    assert round(r["lif-inst"], -1) == round(r["if-cont"], -1) == 2020
    # Fig. 3.3's VGG16 1.7e3 is N_syn over the neurons counted after the pools (mlsnn's VGG16
    # on CIFAR-10 and ImageNet); every conv output, as the hardware holds them, gives 1.1e3.
    for v in f["vgg16"].values():
        assert round(v["ratio_pooled"], -2) == 1700 and round(v["ratio"], -2) == 1100
    assert f["vgg16"]["cifar10"]["synapses"] == 313_725_952


def _three_layer_arch(leak_b=2):
    a = LayerSpec(name="a", kind="dense", inputs=("input",), in_shape=(4,), out_shape=(3,))
    b = LayerSpec(name="b", kind="dense", inputs=("a",), in_shape=(3,), out_shape=(5,),
                  leak=leak_b)
    c = LayerSpec(name="c", kind="dense", inputs=("b",), in_shape=(5,), out_shape=(2,),
                  readout=True, levels=0)
    return Arch(input_shape=(4,), layers=(a, b, c))


def test_network_neuron_models_by_hand():
    arch = _three_layer_arch()
    acts = activity_from_rates(arch, 2, 0.5)           # a emits 3, b 5 events; c never fires
    sec = dh.network_neuron_models(arch, acts, 2)
    # Layer a is fed by pixels (an encoding layer): only b and c count.
    assert sec["layers"] == ["b", "c"] and sec["synapses"] == 15 + 10
    assert sec["neurons"] == 5 + 2 and sec["spikes_per_synapse"] == 1.0
    assert sec["leaky_layers"] == {"b": 2} and sec["network_neurons"] == "mixed"
    assert sec["ann_naive"] == pytest.approx(25 * (4 * SRAM + 1))
    rows = {r["model"]: r for r in sec["rows"]}
    syn = 25 * (3 * SRAM + AC)
    for m, neur in {"if-inst": 0, "lif-inst": 7 * 2 * (2 * SRAM + 1),
                    "if-cont": 7 * 2 * (4 * SRAM + 2), "lif-cont": 7 * 2 * (4 * SRAM + 3),
                    "lif-sweep": 7 * 1 * AC}.items():
        assert rows[m]["synaptic"] == pytest.approx(syn) and rows[m]["neuron"] == \
            pytest.approx(neur), m
        assert rows[m]["E_ANN/E_SNN"] == pytest.approx(25 * 22.6 / (syn + neur))
    assert rows["lif-inst"]["breakeven_n_s"] == pytest.approx((22.6 - 11.8 * 2 * 7 / 25) / 16.33)
    assert rows["if-inst"]["breakeven_n_s"] == pytest.approx(22.6 / 16.33)
    # T = 500 with so few synapses per neuron: a LIF never breaks even.
    long = dh.network_neuron_models(arch, activity_from_rates(arch, 500, 0.01), 500,
                                    models=["lif-inst", "if-inst"])
    assert [r["model"] for r in long["rows"]] == ["lif-inst", "if-inst"]
    assert long["rows"][0]["breakeven_n_s"] is None
    # A network whose only layer reads pixels has no spiking layer to price.
    one = Arch(input_shape=(4,), layers=(LayerSpec(name="o", kind="dense", inputs=("input",),
                                                   in_shape=(4,), out_shape=(2,),
                                                   readout=True, levels=0),))
    none = dh.network_neuron_models(one, activity_from_rates(one, 1, 0.0), 1)
    assert none["rows"] == [] and "encoding layer" in none["note"]


# -- mlsnn's integer leak ------------------------------------------------------------------

def test_leak_ops_by_hand():
    spec = LayerSpec(name="fc", kind="dense", in_shape=(4,), out_shape=(3,), levels=2, leak=3)
    act = Activity(spikes=Flow(5, 7, 10), ev_out=2)
    ctr, ops = snn_counts(spec, act, timesteps=4)
    ctr0, ops0 = snn_counts(dataclasses.replace(spec, leak=0), act, timesteps=4)
    assert ops["acc_leak"] == (4 - 1) * 3 and ops0["acc_leak"] == 0
    # No memory access and nothing else moves: the sweep reads and writes every P anyway.
    assert ctr == ctr0 and {k: v for k, v in ops.items() if k != "acc_leak"} == \
        {k: v for k, v in ops0.items() if k != "acc_leak"}
    assert snn_counts(spec, act, timesteps=1)[1]["acc_leak"] == 0     # no leak at t = T
    cost = costs(None, spec)
    e, e0 = energy(ops, cost), energy(ops0, cost)
    assert e["leak"] == pytest.approx(9 * 0.1) and e0["leak"] == 0    # one 32-bit ACC each
    for term in ("synaptic", "synaptic_sum_z", "synaptic_hw", "total", "total_hw"):
        assert e[term] - e0[term] == pytest.approx(0.9), term
    assert e["memory"] == e0["memory"]
    with pytest.raises(MlsnnError, match="layer 'fc' has its own leak \\(k = 3\\); Lemaire's "
                                         "generic MAC leak \\(leak=True\\) would price it twice"):
        snn_counts(spec, act, timesteps=4, leak=True)


@pytest.mark.parametrize("kw,msg", [
    (dict(leak=-1), "field 'leak' must be an integer k in 0..30 (beta = 1 - 2^-k; 0 is no "
                    "leak), not -1"),
    (dict(leak=31), "field 'leak' must be an integer k in 0..30"),
    (dict(leak=True), "field 'leak' must be an integer k in 0..30"),
    (dict(leak=0.9), "not 0.9"),
    (dict(leak=2, readout=True), "a leaky readout is not supported (leak 2)"),
    (dict(leak=1, kind="pool", in_shape=(1, 4, 4), out_shape=(1, 2, 2), kernel=2, stride=2),
     "field 'leak' applies to conv and dense layers only, not to a pool (leak 1)"),
])
def test_leak_spec_errors(kw, msg):
    base = dict(name="x", kind="dense", in_shape=(4,), out_shape=(3,))
    with pytest.raises(MlsnnError) as e:
        LayerSpec(**{**base, **kw})
    assert msg in str(e.value) and "\n" not in str(e.value)


def test_arch_file_leak(tmp_path):
    doc = {"input_shape": [1, 6, 6], "layers": [
        {"name": "c", "kind": "conv", "out_channels": 2, "padding": 1, "leak": 2},
        {"name": "p", "kind": "pool", "kernel": 2},
        {"name": "f", "kind": "dense", "out_features": 3}]}
    arch = from_json(doc)
    assert [l.leak for l in arch.layers] == [2, 0, 0]
    assert arch.layers[0].to_json()["leak"] == 2 and "leak" not in arch.layers[2].to_json()
    from golden.energy.report import arch_report

    rep = arch_report(arch, timesteps=3, rates=0.2)
    c = rep["layers"][0]
    assert c["ops"]["analytic"]["acc_leak"] == 2 * 72 and c["energy_nJ"]["analytic"]["leak"] \
        == pytest.approx(2 * 72 * 0.1 / 1000)
    assert rep["dampfhoffer"]["neuron_models"]["leaky_layers"] == {"c": 2}
    assert rep["dampfhoffer"]["neuron_models"]["network_neurons"] == "LIF"
    bad = json.loads(json.dumps(doc))
    bad["layers"][1]["leak"] = 1
    with pytest.raises(MlsnnError, match="layer 'p': field 'leak' applies to conv and dense "
                                         "layers only"):
        from_json(bad)
    bad = json.loads(json.dumps(doc))
    bad["layers"][2]["leak"] = 3
    with pytest.raises(MlsnnError, match="layer 'f': a leaky readout is not supported"):
        from_json(bad)
    path = tmp_path / "arch.json"
    bad["layers"][2]["leak"] = 0
    bad["layers"][0]["leak"] = 0.5
    path.write_text(json.dumps(bad))
    from flows.cli import main

    assert main(["energy", "--arch", str(path), "--snn", "--spike-rate", "0.1"]) == 1


def _with_leak(layer, k):
    """``layer`` with the IR field ``leak`` = k (set on the instance where the IR has no such
    field yet: the energy model reads it with getattr)."""
    if "leak" in {f.name for f in dataclasses.fields(layer)}:
        return dataclasses.replace(layer, leak=k)
    object.__setattr__(layer, "leak", k)
    return layer


def _leaky_net(T=3):
    rng = np.random.default_rng(5)
    conv = _with_leak(Conv2d(name="c", inputs=("input",), threshold=12, levels=2,
                             weight=rng.integers(-2, 5, (1, 3, 3, 2)),
                             bias=np.array([1, -1]), padding=1), 1)
    hid = _with_leak(Dense(name="h", inputs=("c",), threshold=9, levels=3,
                           weight=rng.integers(-2, 4, (2 * 5 * 5, 6)),
                           bias=np.zeros(6, np.int64)), 3)
    out = Dense(name="out", inputs=("h",), threshold=1, levels=1,
                weight=rng.integers(-3, 4, (6, 4)), bias=np.zeros(4, np.int64), readout=True)
    return Network(input=InputSpec(shape=(1, 5, 5), in_bits=3), timesteps=T,
                   layers=(conv, hid, out), name="leaky")


def test_ir_leak_analytic_exact_measured(tmp_path):
    net = _leaky_net()
    x = np.random.default_rng(1).integers(0, 8, (3, 1, 5, 5))
    res = run(net, x)
    arch = from_ir(net)
    assert [l.leak for l in arch.layers] == [1, 3, 0]
    sim = {"match": True, "cycles": 10, "predictions": [int(p) for p in res.predictions],
           "layers": [{"name": l.name, "counters": res.totals(l.name)} for l in net.layers]}
    rep = ir_report(net, x, measured=sim, result=res)
    T = net.timesteps
    for l, n_out in zip(rep["layers"], (2 * 5 * 5, 6, 4)):
        leaky = l["name"] != "out"
        for s in ("analytic", "exact", "measured"):
            assert l["ops"][s]["acc_leak"] == ((T - 1) * n_out if leaky else 0), (l["name"], s)
            assert l["energy_nJ"][s]["leak"] == pytest.approx(l["ops"][s]["acc_leak"] * 1e-4)
        assert "acc_leak" not in l["differences"]
    assert rep["measured"]["equals_exact"]
    dam = rep["dampfhoffer"]["neuron_models"]
    assert dam["leaky_layers"] == {"c": 1, "h": 3} and dam["network_neurons"] == "LIF"
    assert dam["layers"] == ["h", "out"] and len(dam["rows"]) == 5
    # An IR without the field (before the leak lands, or an old network.json) is IF.
    for layer in net.layers:
        object.__setattr__(layer, "leak", 0)
    rep0 = ir_report(net, x)
    assert all(l["ops"]["exact"]["acc_leak"] == 0 for l in rep0["layers"])
    assert rep0["dampfhoffer"]["neuron_models"]["network_neurons"] == "IF"


def test_cli_ir_neuron_models(capsys, tmp_path):
    from golden.ir import save

    net = _leaky_net(T=2)
    for layer in net.layers:
        object.__setattr__(layer, "leak", 0)
    save(net, tmp_path / "net")
    np.savez(tmp_path / "x.npz", x=np.random.default_rng(2).integers(0, 8, (2, 1, 5, 5)))
    args = ["--ir", str(tmp_path / "net"), "--inputs", str(tmp_path / "x.npz")]
    rc, out, _ = _cli(args + ["--neuron-model", "lif-sweep", "--json"], capsys)
    sec = json.loads(out)["dampfhoffer"]["neuron_models"]
    assert rc == 0 and [r["model"] for r in sec["rows"]] == ["lif-sweep"]
    assert sec["rows"][0]["neuron"] == pytest.approx((6 + 4) * 1 * AC)   # (T-1)·N_neur·AC
    rc, out, _ = _cli(args, capsys)
    assert rc == 0 and "the network's own neurons: IF (no layer leaks)" in out
    assert "LIF+cont" in out and "spikes per synapse (Dampfhoffer)" in out


# -- command line ------------------------------------------------------------------------

def test_cli_neuron_models(capsys):
    from flows.commands.energy import NEURON_MODELS

    assert NEURON_MODELS == dh.NEURON_MODELS
    args = ["--arch", "vgg16", "--snn", "--timesteps", "4", "--total-spikes", "130000"]
    rc, out, _ = _cli(args, capsys)
    assert rc == 0 and "seed 002 neuron models" in out
    for label in ("IF+inst", "LIF+inst", "IF+cont", "LIF+cont", "LIF+inst (mlsnn sweep)"):
        assert any(line.startswith(label + " ") for line in out.splitlines()), label
    rc, out, _ = _cli(args + ["--neuron-model", "lif-inst", "--neuron-model", "if-cont",
                              "--json"], capsys)
    sec = json.loads(out)["dampfhoffer"]["neuron_models"]
    assert rc == 0 and [r["model"] for r in sec["rows"]] == ["lif-inst", "if-cont"]
    assert sec["rows"][0]["equation"] == "3.7" and sec["rows"][1]["equation"] == "3.10"
    rc, out, _ = _cli(["--breakeven", "--json"], capsys)
    doc = json.loads(out)
    assert rc == 0 and len(doc["table_3_2"]) == 10
    assert round(doc["fig_3_2"]["if_cont_predicted"]["percent"], 2) == 26.34
    rc, out, _ = _cli(["--breakeven"], capsys)
    assert rc == 0 and "Table 3.2" in out and "1997 .. 2456" in out and "26.34" in out


@pytest.mark.parametrize("args,msg", [
    (["--arch", "vgg16", "--ann", "--neuron-model", "lif-inst"],
     "--neuron-model does not apply to --arch without --snn (only to --ir or --arch --snn)"),
    (["--breakeven", "--neuron-model", "if-cont"], "--neuron-model does not apply to "
                                                   "--breakeven"),
    (["--paper-table3", "--neuron-model", "all"], "--neuron-model does not apply to "
                                                  "--paper-table3"),
])
def test_cli_neuron_model_where_undefined(capsys, args, msg):
    rc, _, err = _cli(args, capsys)
    assert rc == 1 and msg in err and len(err.strip().splitlines()) == 1


def test_cli_unknown_neuron_model_is_one_line(capsys):
    with pytest.raises(SystemExit) as e:
        _cli(["--arch", "vgg16", "--snn", "--spike-rate", "0.1", "--neuron-model", "adex"],
             capsys)
    err = capsys.readouterr().err
    assert e.value.code == 2 and "invalid choice: 'adex'" in err
    assert len(err.strip().splitlines()) == 1

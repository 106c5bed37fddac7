"""Energy model fidelity (issue 16 §2): conv addressing per synapse or per kernel, the hardware's
z·w datapath (mul, serial), per-layer per-term output and plot, and seed 002's Table 3.3 rows
that need other constants (the 8-bit variant, MAC vs. AC)."""

import json
import math

import numpy as np
import pytest

from golden.energy import Activity, Flow, ir_report, snn_counts, vgg16
from golden.energy.arch import LayerSpec
from golden.energy.dampfhoffer import PUBLISHED, PUBLISHED_8BIT, mac_vs_ac, table_3_3
from golden.energy.lemaire import hw_synaptic_adds
from golden.energy.report import arch_report
from golden.errors import MlsnnError
from golden.fixtures import random_inputs, random_network
from golden.ir import Conv2d, Dense, InputSpec, Network
from golden.reference import run

#: Seed 000 Table 3, addressing row [nJ] (the paper's printed values) and the total spikes per
#: inference of §6.1 for the two configurations whose activity the paper gives.
TABLE3_ADDRESSING = {(4, 1): (130_000, 9.0e2), (1, 4): (57_000, 5.5e2)}


def _conv(c_out=3, k=3, s=1):
    return LayerSpec(name="c", kind="conv", inputs=("input",), in_shape=(2, 6, 6),
                     out_shape=(c_out, (6 + 2 - k) // s + 1, (6 + 2 - k) // s + 1), kernel=k,
                     stride=s, padding=1, levels=4)


def test_conv_addressing_per_synapse_and_per_kernel_by_hand():
    spec = _conv()
    act = Activity(spikes=Flow(5, 9, 20), ev_out=2)
    _, syn = snn_counts(spec, act, timesteps=1)
    _, ker = snn_counts(spec, act, timesteps=1, addressing="per-kernel")
    assert syn["addr_acc"] == 5 * 3 * 9 and ker["addr_acc"] == 5 * 9
    assert syn["addr_mac"] == ker["addr_mac"] == 2 * 5
    # Only addressing moves: every other count is the same.
    assert {k: v for k, v in syn.items() if k != "addr_acc"} == \
        {k: v for k, v in ker.items() if k != "addr_acc"}
    with pytest.raises(MlsnnError, match="conv addressing must be one of per-synapse, "
                                         "per-kernel, not 'per-pixel'"):
        snn_counts(spec, act, timesteps=1, addressing="per-pixel")


def test_exact_per_kernel_addressing_counts_offsets_on_the_map():
    # 3x3 input, K 3, padding 1, 2 output channels: a corner event reaches 2·2 kernel offsets
    # (8 synapses); per kernel it is 4 ACC, per synapse 8; the analytic ones 9 and 18.
    w = np.ones((1, 3, 3, 2), dtype=np.int64)
    conv = Conv2d(name="c", inputs=("input",), threshold=10 ** 6, levels=1, weight=w,
                  bias=np.zeros(2, np.int64), stride=1, padding=1)
    out = Dense(name="out", inputs=("c",), threshold=1, levels=1,
                weight=np.zeros((18, 1), np.int64), bias=np.zeros(1, np.int64), readout=True)
    net = Network(input=InputSpec(shape=(1, 3, 3), in_bits=2), timesteps=1, layers=(conv, out))
    x = np.zeros((1, 1, 3, 3), np.int64)
    x[0, 0, 0, 0] = 1
    syn = ir_report(net, x)["layers"][0]["ops"]
    ker = ir_report(net, x, addressing="per-kernel")["layers"][0]["ops"]
    assert syn["exact"]["addr_acc"] == 8 and ker["exact"]["addr_acc"] == 4
    assert syn["analytic"]["addr_acc"] == 18 and ker["analytic"]["addr_acc"] == 9


def test_seed000_table3_addressing_fits_per_kernel():
    # VGG16 with the paper's spike totals spread at one rate: per kernel lands within a factor
    # of 2 of Table 3's addressing row, per synapse (the paper's own equation) 12-18x above.
    for (T, N), (spikes, table) in TABLE3_ADDRESSING.items():
        arch = vgg16((3, 32, 32), levels=N)
        per = {a: arch_report(arch, timesteps=T, total_spikes=spikes, addressing=a)
               ["total"]["energy_nJ"]["analytic"]["addressing"]
               for a in ("per-synapse", "per-kernel")}
        assert 0.5 < per["per-kernel"] / table < 1.0
        assert per["per-synapse"] / table > 10


def test_hw_datapath_adds_by_hand():
    # 10 updates of values summing to 23 in a 3-bit field: serial Σz = 23, mul 3 per update.
    assert hw_synaptic_adds(10, 23, 3, "serial") == 23
    assert hw_synaptic_adds(10, 23, 3, "mul") == 30
    spec = LayerSpec(name="fc", kind="dense", in_shape=(4,), out_shape=(5,), levels=1)
    # 4 events of a 4-level producer (nsum = 16 -> 3-bit values), Σz = 9.
    act = Activity(spikes=Flow(4, 9, 16), ev_out=1)
    _, mul = snn_counts(spec, act, timesteps=1)
    _, ser = snn_counts(spec, act, timesteps=1, synapse="serial")
    assert mul["acc_hw"] == 3 * 4 * 5 and ser["acc_hw"] == 9 * 5 == ser["acc_syn_z"]
    with pytest.raises(MlsnnError, match="synapse must be one of mul, serial, not 'dsp'"):
        snn_counts(spec, act, timesteps=1, synapse="dsp")


@pytest.mark.parametrize("seed", [0, 3])
def test_hw_terms_from_exact_counters(seed):
    net = random_network(seed, kind="conv")
    x = random_inputs(net, 3, seed)
    res = run(net, x)
    ser = ir_report(net, x, result=res, synapse="serial")
    mul = ir_report(net, x, result=res)
    assert mul["options"] == {"conv_addressing": "per-synapse", "synapse": "mul",
                              "synapse_source": "default"}
    for ls, lm, layer in zip(ser["layers"], mul["layers"], net.layers):
        ex = ls["counters"]["exact"]
        if layer.kind in ("conv2d", "dense"):
            assert ls["ops"]["exact"]["acc_hw"] == ex["syn_acc"]       # serial: Σz·fan-out
            widths = {max(1, int(z).bit_length()) for z in net.info(layer.name).zmax_in}
            assert len(widths) == 1                   # one stream: one value width
            assert lm["ops"]["exact"]["acc_hw"] == pytest.approx(widths.pop() * ex["syn_updates"])
        # The datapath moves the *_hw terms only, never the Lemaire ones.
        for term in ("total", "synaptic", "total_sum_z"):
            assert ls["energy_nJ"]["exact"][term] == lm["energy_nJ"]["exact"][term]


def test_synapse_of_the_measured_run(tmp_path):
    net = random_network(1, kind="dense")
    x = random_inputs(net, 2, 1)
    res = run(net, x)
    doc = {"match": True, "cycles": 1, "predictions": [int(p) for p in res.predictions],
           "synapse": "serial",
           "layers": [{"name": l.name, "counters": dict(res.totals(l.name))} for l in net.layers]}
    rep = ir_report(net, x, measured=doc, result=res)
    assert rep["options"]["synapse"] == "serial" and rep["options"]["synapse_source"] == "measured"
    with pytest.raises(MlsnnError, match="--synapse mul contradicts the measured run, which used "
                                         "synapse=serial"):
        ir_report(net, x, measured=doc, result=res, synapse="mul")


def _cli(args, capsys):
    from flows.cli import main

    rc = main(["energy", *args])
    out, err = capsys.readouterr()
    return rc, out, err


def test_cli_per_layer_terms_and_plot(capsys, tmp_path):
    from golden.ir import save

    net = random_network(4, kind="conv")
    x = random_inputs(net, 2, 4)
    save(net, tmp_path / "net")
    np.savez(tmp_path / "x.npz", x=x)
    png = tmp_path / "e.png"
    args = ["--ir", str(tmp_path / "net"), "--inputs", str(tmp_path / "x.npz")]
    rc, out, err = _cli(args + ["--plot", str(png), "--synapse", "serial",
                                "--conv-addressing", "per-kernel"], capsys)
    assert rc == 0 and err == "" and png.stat().st_size > 10_000
    assert "accesses analytic" in out and "acc analytic" not in out
    assert "energy per layer and term [nJ]" in out and "(conv addressing per-kernel)" in out
    assert "total (hardware z·w, serial)" in out
    rows = [line.split() for line in out.splitlines()
            if line.split()[:2] in ([l.name, "exact"] for l in net.layers)]
    assert len(rows) == len(net.layers)
    rc, out, _ = _cli(args + ["--json", "--conv-addressing", "per-kernel"], capsys)
    doc = json.loads(out)
    for l in doc["layers"]:
        e = l["energy_nJ"]["exact"]
        parts = e["potentials"] + e["weights"] + e["bias"] + e["in_out"] + e["synaptic"] \
            + e["addressing"]
        assert parts == pytest.approx(e["total"])
        assert e["total_hw"] == pytest.approx(e["total"] - e["synaptic"] + e["synaptic_hw"])


@pytest.mark.parametrize("args,msg", [
    (["--breakeven", "--conv-addressing", "per-kernel"],
     "--conv-addressing does not apply to --breakeven"),
    (["--arch", "vgg16", "--ann", "--synapse", "serial"],
     "--synapse does not apply to --arch without --snn"),
])
def test_cli_undefined_combinations_are_one_line(capsys, args, msg):
    rc, _, err = _cli(args, capsys)
    assert rc == 1 and msg in err and len(err.strip().splitlines()) == 1


def test_table_3_3_8bit_and_mac_vs_ac():
    # Tolerance 0.005: the thesis prints two decimals, so a model that reproduces it must be
    # within half a unit of the last digit. The 8-bit constants are Horowitz's unrounded
    # ratios (0.03/0.23, 1.25/0.23); Table 3.1's rounded 0.13 and 5.4 give 0.306 for ideal
    # reuse, which prints as 0.31 (docs/energy.md).
    t = table_3_3()
    for r in t["rows"]:
        assert abs(r["n_s_8bit"] - PUBLISHED_8BIT[r["model"]]) < 0.005, r
        assert r["published"] == PUBLISHED[r["model"]]
    assert [r["model"] for r in t["rows"]] == list(PUBLISHED_8BIT)
    m = mac_vs_ac()
    assert round(m["8"]) == 8 and m["32"] == pytest.approx(31) and m["32_mac"] == pytest.approx(32)
    assert math.isclose(m["8"], 0.23 / 0.03)


def test_cli_breakeven_prints_table_3_3(capsys):
    rc, out, _ = _cli(["--breakeven"], capsys)
    assert rc == 0 and "8-bit variant" in out and "MAC vs. AC" in out
    rc, out, _ = _cli(["--breakeven", "--json"], capsys)
    assert rc == 0 and len(json.loads(out)["table_3_3"]["rows"]) == 5


def test_table3_conventions_by_hand():
    from golden.energy.lemaire import apply_conventions

    spec = _conv()
    act = Activity(pixels=Flow(5, 40, 5 * 15), ev_out=2)
    _, ops = snn_counts(spec, act, timesteps=1)
    assert ops["mac_syn"] == 5 * 3 * 9 and ops["acc_syn"] == 0
    acc = apply_conventions(spec, ops, pixels="acc")
    assert acc["mac_syn"] == 0 and acc["acc_syn"] == acc["acc_syn_z"] == 5 * 3 * 9
    assert apply_conventions(spec, ops, pixels="none")["mac_syn"] == 0
    assert apply_conventions(spec, ops) == ops
    pool = LayerSpec(name="p", kind="pool", inputs=("c",), in_shape=(3, 6, 6),
                     out_shape=(3, 3, 3), kernel=2, stride=2)
    _, pops = snn_counts(pool, Activity(spikes=Flow(7, 7, 7), ev_out=3), timesteps=1)
    assert pops["p_rd"] == 7 + 27
    assert set(apply_conventions(pool, pops, pool_events="free").values()) == {0.0}
    with pytest.raises(MlsnnError, match="pixels must be one of mac, acc, none, not 'mul'"):
        apply_conventions(spec, ops, pixels="mul")


def test_paper_table3_beside_mlsnn(capsys):
    from golden.energy.report import SEED000_TABLE3, paper_table3

    t = paper_table3()
    for col, terms in t["columns"].items():
        for term, v in terms.items():
            assert v["paper"] == SEED000_TABLE3[col][term]
            if v["paper"]:
                assert v["ratio"] == pytest.approx(v["mlsnn"] / v["paper"])
    # Table 3's conventions bring the SNN addressing and synaptic rows within 2x of the paper.
    for col in ("SNN T=4 N=1", "SNN T=1 N=4"):
        for term in ("addressing", "synaptic", "in_out", "potentials"):
            assert 0.5 < t["columns"][col][term]["ratio"] < 2, (col, term)
    rc, out, _ = _cli(["--paper-table3"], capsys)
    assert rc == 0 and "pixels none" in out and "E_N/E_binary" in out
    rc, out, _ = _cli(["--paper-table3", "--pixels", "mac", "--json"], capsys)
    assert rc == 0 and json.loads(out)["paper_table3"]["conventions"]["pixels"] == "mac"
    rc, _, err = _cli(["--arch", "vgg16", "--ann", "--pool-events", "free"], capsys)
    assert rc == 1 and "--pool-events does not apply to --arch without --snn" in err

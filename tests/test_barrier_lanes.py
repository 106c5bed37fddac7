# amaranth: UnusedElaboratable=no
"""Barrier joins with lanes (docs/lanes.md, "Barrier joins"): P in words of L potentials, an
event updating its neuron's word, the sweep a word (or a group of F lanes) per cycle. Results,
tokens, every counter (SPEC per neuron, words per access) and the cycles are those of the
golden model, the independent loop simulator and the cycle model."""

import json

import numpy as np
import pytest
from amaranth.back import rtlil

import golden.cycles as gc
from golden.energy.compare import ir_report
from golden.fixtures import random_inputs, random_network
from golden.ir import Join, from_json
from golden.reference import run
from hw.join import BarrierCore
from flows.io import MlsnnError
from flows.synth import FamilyPlatform
from sim.amaranth_run import run_network
from sim.nets import small_resnet
from sim.scoreboard import compare
from naive import check_image


def _plan(net, rng):
    """Lanes among 2, 4, 8 (dividing its neurons) and a random divisor of them as fire lanes
    on every barrier join that can have lanes."""
    lanes, fire = {}, {}
    for layer in net.layers:
        if layer.kind != "barrier":
            continue
        ls = [d for d in (2, 4, 8) if net.info(layer.name).n_out % d == 0]
        if ls:
            lanes[layer.name] = L = int(rng.choice(ls))
            fire[layer.name] = int(rng.choice([d for d in (1, 2, 4, 8) if L % d == 0]))
    assert lanes, "the network has no barrier join that can have lanes"
    return net.with_lanes(lanes).with_fire_lanes(fire)


def _barriers(net):
    return [layer for layer in net.layers if layer.kind == "barrier"]


# seeds of random_network(7700 + s, kind="residual", join="barrier") whose joins take lanes;
# seed 0: two joins, L = 8 with F = 4 and L = 4 with F = 1; 5: T = 4, F = L; 7: T = 4, L = 8
@pytest.mark.parametrize("seed,discharge", [(0, "serial"), (3, "serial"), (5, "parallel"),
                                            (6, "serial"), (7, "parallel")])
def test_networks_match_golden_and_the_cycle_model(seed, discharge):
    net = _plan(random_network(7700 + seed, kind="residual", join="barrier"),
                np.random.default_rng(seed))
    assert any(layer.lanes > 1 for layer in _barriers(net))
    x = random_inputs(net, 3, seed=seed)
    golden = run(net, x)
    rtl = run_network(net, x, discharge=discharge)
    assert compare(net, golden, rtl) == []
    rep = gc.network_cycles(net, x, discharge=discharge, golden=golden)
    assert rep.cycles.tolist() == rtl.cycles.tolist()
    for layer in net.layers:
        assert rep.layers[layer.name].tolist() == \
            rtl.counters[layer.name]["cycles"].tolist(), layer.name
    for layer in _barriers(net):
        c = {k: np.asarray(v) for k, v in rtl.counters[layer.name].items()}
        L = layer.lanes       # an event: one neuron and one word; the sweep: L per word
        assert (c["p_rd"] - c["syn_updates"] == L * (c["p_rd_words"] - c["syn_updates"])).all()
        assert (c["p_wr"] - c["syn_updates"] == L * (c["p_wr_words"] - c["syn_updates"])).all()
    # with gaps and stalls, and elaborated for ECP5 (queues in LUT RAM)
    res = run_network(net, x, seed=seed, gap=0.2, stall=0.4, discharge=discharge,
                      platform=FamilyPlatform("ecp5"))
    assert compare(net, golden, res) == []


def test_golden_counters_match_the_loop_simulator():
    net = _plan(random_network(7700, kind="residual", join="barrier"), np.random.default_rng(0))
    x = random_inputs(net, 3, seed=2)
    res = run(net, x)
    for b in range(len(x)):
        counters, _ = check_image(net, res, x, b)       # results and events
        for name, c in counters.items():                # every counter, words included
            for k, v in c.items():
                assert int(res.counters[name][k][b]) == v, (name, k, b)


def test_saturating_barrier_with_lanes():
    # A barrier forced narrow saturates; where it does the golden model cannot say how (the
    # order of the two streams decides), but the hardware must saturate the same way whatever
    # its lanes: the same events reach it in the same order, so L = 8 with one fire unit
    # gives the tokens, results, flags and counters (but words and cycles) of L = 1.
    net = random_network(7700, kind="residual", join="barrier")
    name = next(b.name for b in _barriers(net) if net.info(b.name).n_out % 8 == 0)

    def narrow(lanes, fire):
        return net.replace(layers=tuple(layer if layer.name != name else Join(
            name=layer.name, inputs=layer.inputs, mode="barrier", threshold=layer.threshold,
            levels=layer.levels, v0=layer.v0, stream_weights=(3, -2), potential_width=3,
            lanes=lanes, fire_lanes=fire) for layer in net.layers))

    x = random_inputs(net, 4, seed=3)
    one, wide = run_network(narrow(1, None), x), run_network(narrow(8, 1), x)
    assert one.counters[name]["saturations"].sum() > 0 and one.overflow[name].any()
    assert wide.events == one.events
    assert wide.readout.tolist() == one.readout.tolist()
    for layer in net.layers:
        assert wide.overflow[layer.name].tolist() == one.overflow[layer.name].tolist()
        for k, v in one.counters[layer.name].items():
            if k == "cycles" or (layer.name == name and k.endswith("_words")):
                continue
            assert wide.counters[layer.name][k].tolist() == v.tolist(), (layer.name, k)


def test_early_exit_with_barrier_lanes():
    # the exit sweep of a barrier with lanes: every word read and written back (v0)
    for seed in range(40):
        net = random_network(7800 + seed, kind="residual", join="barrier", early_exit=True)
        if net.early_exit is None or not any(
                net.info(b.name).n_out % 2 == 0 for b in _barriers(net)):
            continue
        net = _plan(net, np.random.default_rng(seed))
        x = random_inputs(net, 4, seed=seed)
        golden = run(net, x)
        if not (golden.timesteps < net.timesteps).any():
            continue                    # no image exits early: try another seed
        rtl = run_network(net, x)
        assert compare(net, golden, rtl) == []
        assert gc.network_cycles(net, x, golden=golden).cycles.tolist() == \
            rtl.cycles.tolist()
        return
    pytest.fail("no seed gave a network with an early exit and barrier lanes")


def test_ir_fields_json_and_with_lanes():
    net = random_network(7700, kind="residual", join="barrier")
    b = _barriers(net)[0]
    n = net.info(b.name).n_out
    assert '"lanes"' not in json.dumps([d for d in net.to_json()["layers"]
                                        if d["kind"] == "barrier"])   # default: left out
    wide = net.with_lanes({b.name: 4}).with_fire_lanes({b.name: 2})
    back = from_json(json.loads(json.dumps(wide.to_json())), wide.arrays())
    assert (back.layer(b.name).lanes, back.layer(b.name).fire) == (4, 2)
    kw = dict(name="j", inputs=("a", "b"), mode="barrier")
    with pytest.raises(MlsnnError, match=r"^layer 'j': lanes \(3\) of a barrier join must be "
                                         r"a power of two"):
        Join(lanes=3, **kw)
    with pytest.raises(MlsnnError, match=r"^layer 'j': fire_lanes \(3\) must divide its "
                                         r"lanes \(4\)$"):
        Join(lanes=4, fire_lanes=3, **kw)
    with pytest.raises(MlsnnError, match=rf"^layer '{b.name}': lanes \(32\) must divide its "
                                         rf"{n} neurons$"):
        net.with_lanes({b.name: 32})
    with pytest.raises(MlsnnError, match="has no lanes"):
        sew = random_network(7700, kind="residual", join="sew")
        sew.with_lanes({next(l.name for l in sew.layers if l.kind == "sew"): 2})
    # an int: every barrier it suits (a power of two dividing its neurons), the others keep 1
    res = small_resnet(0, join="barrier", blocks=1, channels=6, size=3, classes=6)
    assert [b.lanes for b in _barriers(res.with_lanes(2))] == [2]
    assert [b.lanes for b in _barriers(res.with_lanes(6))] == [1]    # 6: not a power of two


def test_memories_and_energy_price_words():
    net = _plan(random_network(7700, kind="residual", join="barrier"), np.random.default_rng(0))
    for b in _barriers(net):
        (spec,) = BarrierCore.memories(net, b.name)
        info = net.info(b.name)
        assert (spec.depth, spec.width) == (info.n_out // b.lanes, b.lanes * info.width)
    x = random_inputs(net, 2, seed=1)
    one = net.with_lanes({b.name: 1 for b in _barriers(net)})
    wide_rep, one_rep = ir_report(net, x), ir_report(one, x)
    for b in _barriers(net):
        w = next(r for r in wide_rep["layers"] if r["name"] == b.name)
        o = next(r for r in one_rep["layers"] if r["name"] == b.name)
        we, oe = w["counters"]["exact"], o["counters"]["exact"]
        # the same accesses per neuron; the sweeps' in words of L, an event's one word
        assert we["p_rd"] == oe["p_rd"] and we["syn_updates"] == oe["syn_updates"]
        T, n = net.timesteps, net.info(b.name).n_out
        assert we["p_rd_words"] == we["syn_updates"] + T * n // b.lanes
        assert w["counters"]["analytic"]["p_rd_words"] == pytest.approx(we["p_rd_words"])
        # priced by words: an event's word is L elements of a word access / L each
        assert w["ops"]["exact"]["p_rd"] == pytest.approx(we["p_rd_words"] * b.lanes)
        assert w["ops"]["analytic"]["p_rd"] == pytest.approx(we["p_rd_words"] * b.lanes)


def test_a_barrier_core_builds_f_fire_units():
    net = random_network(7700, kind="residual", join="barrier")
    b = next(layer for layer in _barriers(net) if net.info(layer.name).n_out % 4 == 0)

    def units(lanes, fire):
        wide = net.with_lanes({b.name: lanes}).with_fire_lanes({b.name: fire})
        text = rtlil.convert(BarrierCore.from_network(wide, b.name), ports=None)
        return sum(1 for line in text.splitlines()
                   if line.startswith("module ") and ".sweep.unit" in line)

    assert (units(1, None), units(4, None), units(4, 2)) == (1, 4, 2)


def test_cli_barrier_lanes_simulate_verilog_and_bad_values(tmp_path, capsys):
    from flows.cli import main
    from golden.ir import save
    d = tmp_path / "net"
    net = random_network(7700, kind="residual", join="barrier")     # join0: 48 neurons
    save(net, str(d))
    np.savez(d / "inputs.npz", x=random_inputs(net, 2, seed=3))
    rc = main(["simulate", "--ir", str(d), "--inputs", str(d / "inputs.npz"), "--sim",
               "amaranth", "--lanes", "join0=8", "--fire-lanes", "join0=2", "--json"])
    out = capsys.readouterr().out
    assert rc == 0, out
    assert json.loads(out)["match"] is True
    v = tmp_path / "t.v"
    assert main(["verilog", "--ir", str(d), "--lanes", "join0=4", "-o", str(v)]) == 0
    capsys.readouterr()
    assert sum(1 for line in v.read_text().splitlines()
               if line.startswith("module ") and "join0.engine.sweep.unit" in line) == 4
    for bad, msg in [("join0=3", "layer 'join0': lanes (3) of a barrier join must be a power "
                                 "of two"),
                     ("join0=32", "layer 'join0': lanes (32) must divide its 48 neurons")]:
        assert main(["verilog", "--ir", str(d), "--lanes", bad, "-o", str(v)]) != 0
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and msg in err[0], (bad, err)

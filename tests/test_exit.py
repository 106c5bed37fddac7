# amaranth: UnusedElaboratable=no
"""Input-aware early exit (docs/early-exit.md): IR field, golden semantics by hand, RTL
bit-exact against golden, alpha fitting, errors."""

import json

import numpy as np
import pytest

from golden.cycles import network_cycles
from golden.early_exit import fit_alpha, evaluate
from golden.errors import MlsnnError
from golden.fixtures import random_inputs, random_network
from golden.ir import Dense, EarlyExit, InputSpec, Network, from_json, load, save
from golden.reference import exit_timesteps, margins, run
from hw.network import NetworkTop, check_supported
from sim.amaranth_run import run_network
from sim.nets import small_resnet
from sim.scoreboard import compare


def _hand_net(T=4, alpha=None, v0=0):
    # One dense readout 2 -> 3: with x = [3, 1] each timestep adds I = [6, 1, 4] (+ bias 0),
    # so after timestep t the potentials are v0 + [6t, t, 4t] and the margin is 2t.
    w = np.array([[2, 0, 1], [0, 1, 1]], dtype=np.int64)
    layer = Dense(name="out", inputs=("input",), threshold=1, levels=1, weight=w,
                  bias=np.zeros(3, np.int64), v0=v0, readout=True)
    ee = None if alpha is None else {"confidence": "margin", "alpha": alpha}
    return Network(input=InputSpec(shape=(2,), in_bits=2), timesteps=T, layers=(layer,),
                   early_exit=ee)


X_HAND = np.array([[3, 1]])


def test_hand_example_exits_after_the_first_timestep_whose_margin_reaches_alpha():
    net = _hand_net(alpha=[3, 3, 100])           # margins 2, 4, 6: 2 < 3, 4 >= 3
    r = run(net, X_HAND)
    assert r.timesteps.tolist() == [2]
    assert r.readout.tolist() == [[12, 2, 8]]
    assert r.predictions.tolist() == [0]
    assert margins(r.readout_steps)[:, 0].tolist() == [2, 4, 6, 8]
    c = r.totals("out")
    # 2 events per timestep, fan-out 3; sweeps 2·3; the exit sweep reads and writes 3 more.
    assert c["ev_in"] == 4
    assert c["syn_updates"] == 12
    assert c["syn_acc"] == 2 * (3 + 1) * 3
    assert c["w_rd"] == 12
    assert c["b_rd"] == 6
    assert c["p_rd"] == 12 + 6 + 3
    assert c["p_wr"] == 12 + 6 + 3


def test_hand_example_never_exits_and_equals_early_exit_off():
    on, off = run(_hand_net(alpha=[9, 9, 9]), X_HAND), run(_hand_net(), X_HAND)
    assert on.timesteps.tolist() == [4] and off.timesteps.tolist() == [4]
    assert on.readout.tolist() == off.readout.tolist() == [[24, 4, 16]]
    assert on.totals("out") == off.totals("out")
    assert off.totals("out")["p_rd"] == 4 * 2 * 3 + 4 * 3


def test_alpha_zero_exits_at_t1_and_ties_take_the_lowest_index():
    # x = [1, 3]: I = [2, 3, 4]; with x = [2, 0]: I = [4, 0, 2]. Tie: x = [0, 0] (margin 0).
    net = _hand_net(alpha=[0, 0, 0], v0=5)
    r = run(net, np.array([[1, 3], [0, 0]]))
    assert r.timesteps.tolist() == [1, 1]
    assert r.readout.tolist() == [[7, 8, 9], [5, 5, 5]]
    assert r.predictions.tolist() == [2, 0]
    # The hand rule: exit at the first t < T with margin >= alpha_t, else T.
    steps = np.array([[[0, 3, 1]], [[0, 5, 4]], [[9, 9, 0]]])     # [T=3, B=1, 3]
    assert exit_timesteps(steps, [3, 0]).tolist() == [2]
    assert exit_timesteps(steps, [2, 2]).tolist() == [1]
    assert exit_timesteps(steps, [3, 2]).tolist() == [3]


def test_ir_field_round_trip_and_files_without_it(tmp_path):
    net = _hand_net(alpha=[1, 2, 3])
    assert net.early_exit == EarlyExit(confidence="margin", alpha=(1, 2, 3))
    save(net, tmp_path / "a")
    doc = json.loads((tmp_path / "a" / "network.json").read_text())
    assert doc["early_exit"] == {"confidence": "margin", "alpha": [1, 2, 3]}
    assert load(tmp_path / "a").early_exit.alpha == (1, 2, 3)
    save(_hand_net(), tmp_path / "b")
    doc = json.loads((tmp_path / "b" / "network.json").read_text())
    assert "early_exit" not in doc
    assert load(tmp_path / "b").early_exit is None
    arrays = dict(np.load(tmp_path / "b" / "network.npz"))
    doc["early_exit"] = None
    assert from_json(doc, arrays).early_exit is None


@pytest.mark.parametrize("ee,msg", [
    ({"alpha": [1, 2]}, "network: field 'early_exit': 'alpha' must have T - 1 = 3 entries "
                        "(one per timestep 1 .. T-1), not 2"),
    ({"alpha": [1, -2, 3]}, "network: field 'early_exit': alpha[1] must be in 0 .. 2**62 - 1, "
                            "not -2"),
    ({"alpha": [1, 2.5, 3]}, "network: field 'early_exit': alpha[1] must be an integer, not 2.5"),
    ({"alpha": [1, True, 3]}, "network: field 'early_exit': alpha[1] must be an integer, not "
                              "True"),
    ({"alpha": "123"}, "network: field 'early_exit': 'alpha' must be a list of integers, not "
                       "'123'"),
    ({"confidence": "entropy", "alpha": [1, 2, 3]},
     "network: field 'early_exit': 'confidence' must be one of ['margin'], not 'entropy'"),
    ({"alpha": [1, 2, 3], "beta": 1}, "network: field 'early_exit' has unknown key 'beta'"),
    ({"confidence": "margin"}, "network: field 'early_exit' is missing 'alpha'"),
    (3, "network: field 'early_exit' must be null or an object {\"confidence\": \"margin\", "
        "\"alpha\": [...]}, not 3"),
])
def test_bad_early_exit_fields_are_one_line_errors(ee, msg):
    with pytest.raises(MlsnnError) as e:
        _hand_net(alpha=[0, 0, 0]).replace(early_exit=ee)
    assert str(e.value) == msg


def test_one_class_readout_is_rejected():
    layer = Dense(name="out", inputs=("input",), threshold=1, levels=1,
                  weight=np.ones((2, 1), np.int64), bias=np.zeros(1, np.int64), readout=True)
    with pytest.raises(MlsnnError, match="needs a readout of at least 2 neurons"):
        Network(input=InputSpec(shape=(2,)), timesteps=2, layers=(layer,),
                early_exit={"alpha": [0]})


def _alpha_mixing(net, x):
    # At every t < T about a third of the images still running exit (at least one, never
    # all): exits at t = 1, at intermediate t, and images that use all T timesteps.
    m = margins(run(net, x).readout_steps)
    alive = np.ones(m.shape[1], bool)
    alpha = []
    for t in range(net.timesteps - 1):
        rem = m[t][alive]
        goal = max(1, len(rem) // 3)
        a = int(rem.max()) + 1                          # nobody exits
        for v in sorted(set(rem.tolist()), reverse=True):
            n = int((rem >= v).sum())
            if n > goal or n == len(rem):
                break
            a = v
        alpha.append(a)
        alive &= ~(m[t] >= a)
    return alpha


CASES = [  # seed, kind, levels, T, fifo_depth, options
    (1, "dense", 2, 4, 2, {"synapse": "serial"}),
    (2, "conv", 2, 4, None, {}),
    (3, "dense", 4, 3, 1, {"discharge": "serial"}),
    (5, "conv", 1, 4, 4, {}),
]


@pytest.mark.parametrize("seed,kind,levels,T,depth,opts", CASES)
def test_rtl_is_bit_exact_with_golden_on_random_networks(seed, kind, levels, T, depth, opts):
    net = random_network(3000 + seed, kind=kind, levels=levels, timesteps=T, max_neurons=16)
    x = random_inputs(net, 6, seed=seed)
    net = net.replace(early_exit={"confidence": "margin", "alpha": _alpha_mixing(net, x)})
    golden = run(net, x)
    used = golden.timesteps.tolist()
    assert 1 in used and T in used                  # exits at t = 1 and images that never do
    rtl = run_network(net, x, seed=seed, gap=0.3, stall=0.3, fifo_depth=depth, **opts)
    assert rtl.extra["timesteps"].tolist() == used
    assert compare(net, golden, rtl) == []
    assert rtl.predictions.tolist() == golden.predictions.tolist()


def test_rtl_intermediate_exits_and_lanes():
    net = random_network(3001, kind="dense", levels=2, timesteps=4, max_neurons=16)
    net = net.with_lanes(2)
    x = random_inputs(net, 6, seed=1)
    net = net.replace(early_exit={"alpha": _alpha_mixing(net, x)})
    golden = run(net, x)
    assert set(golden.timesteps.tolist()) >= {1, 2, 3, 4}
    rtl = run_network(net, x, seed=5, gap=0.2, stall=0.5)
    assert rtl.extra["timesteps"].tolist() == golden.timesteps.tolist()
    assert compare(net, golden, rtl) == []
    rtl = run_network(net, x, seed=4, gap=0.2, stall=0.2, weights="spram")   # SPRAM banks
    assert compare(net, golden, rtl) == []


def test_rtl_saturating_hard_reset_leaky_network_with_exits():
    # A forced narrow width that saturates (exactly predicted: one input stream), hard resets,
    # leaks and negative v0: the exit sweep and the exited images' saturations stay exact.
    net = random_network(3020, kind="dense", levels=2, timesteps=4, max_neurons=16,
                         narrow_width=True, hard_reset=True, leaky=True, negative_v0=True)
    x = random_inputs(net, 6, seed=3020)
    net = net.replace(early_exit={"alpha": _alpha_mixing(net, x)})
    golden = run(net, x)
    assert golden.exact and golden.any_overflow
    assert 1 < len(set(golden.timesteps.tolist()))
    rtl = run_network(net, x, seed=6, gap=0.3, stall=0.3, fifo_depth=2)
    assert compare(net, golden, rtl) == []
    assert rtl.extra["timesteps"].tolist() == golden.timesteps.tolist()


def test_never_exiting_alpha_changes_nothing_but_timing():
    net = random_network(3002, kind="conv", levels=2, timesteps=2, max_neurons=16)
    x = random_inputs(net, 3, seed=2)
    off = run(net, x)
    on_net = net.replace(early_exit={"alpha": [1 << 40]})
    on = run(on_net, x)
    assert on.timesteps.tolist() == [2, 2, 2]
    assert on.predictions.tolist() == off.predictions.tolist()
    for layer in net.layers:
        assert on.totals(layer.name) == off.totals(layer.name)
    rtl = run_network(on_net, x, seed=3)
    assert compare(net, off, rtl) == []


def test_cycle_model_covers_joins_and_pools_with_early_exit():
    # The hardware builds joins and pools with early exit (tests/test_exit_joins.py) and the
    # cycle model times them (== the RTL: tests/test_exit_cycles.py); nothing is refused.
    res = small_resnet(seed=1, join="barrier", timesteps=2)
    x = random_inputs(res, 2, seed=1)
    check_supported(res.replace(early_exit={"alpha": [0]}))
    exit1 = network_cycles(res.replace(early_exit={"alpha": [0]}), x)
    never = network_cycles(res.replace(early_exit={"alpha": [1 << 40]}), x)
    assert (exit1.cycles < never.cycles).all()
    for name, c in exit1.layers.items():
        assert (0 < c).all() and (c < never.layers[name]).all(), name
    assert hasattr(NetworkTop(_hand_net(alpha=[1, 2, 3])), "timesteps_used")
    assert not hasattr(NetworkTop(_hand_net()), "timesteps_used")


def test_fit_alpha_meets_the_budget_and_beats_fixed_timesteps():
    net = random_network(3005, kind="dense", levels=2, timesteps=4, max_neurons=16)
    x = random_inputs(net, 64, seed=4)
    y = run(net, x).predictions                 # labels: the full-T predictions
    for budget in (1.0, 2.0, 3.0):
        alpha, info = fit_alpha(net, x, y, budget=budget)
        assert len(alpha) == 3 and all(isinstance(a, int) and a >= 0 for a in alpha)
        ev = evaluate(net.replace(early_exit={"alpha": alpha}), x, y)
        assert ev["avg_timesteps"] <= budget
        assert ev["accuracy"] == info["accuracy"]
        assert ev["avg_timesteps"] == info["avg_timesteps"]
    # with the budget of T it may keep every timestep: accuracy 1 on its own predictions
    alpha, info = fit_alpha(net, x, y, budget=4.0)
    assert info["accuracy"] == 1.0
    for bad, msg in ((0.5, "budget must be a number in 1 .. T = 4, not 0.5"),
                     ("2", "budget must be a number in 1 .. T = 4, not '2'")):
        with pytest.raises(MlsnnError) as e:
            fit_alpha(net, x, y, budget=bad)
        assert str(e.value) == msg


@pytest.mark.cocotb
def test_icarus_verilog_is_bit_exact_with_golden(tmp_path):
    from sim.icarus_run import run_network_icarus
    net = random_network(3001, kind="dense", levels=2, timesteps=4, max_neurons=16)
    x = random_inputs(net, 6, seed=1)
    net = net.replace(early_exit={"alpha": _alpha_mixing(net, x)})
    golden = run(net, x)
    assert {1, 4} <= set(golden.timesteps.tolist())
    rtl = run_network_icarus(net, x, seed=2, gap=0.3, stall=0.3, fifo_depth=2,
                             golden=golden, build_dir=str(tmp_path))
    assert rtl.extra["mismatches"] == []          # the bench's own scoreboard
    assert compare(net, golden, rtl) == []
    assert rtl.extra["timesteps"].tolist() == golden.timesteps.tolist()


def _digits_net(T=3):
    # A dense readout 64 -> 10 for the 8x8 digits (pixels 0..16): random integer weights.
    rng = np.random.default_rng(7)
    layer = Dense(name="out", inputs=("input",), threshold=1, levels=1,
                  weight=rng.integers(-8, 9, size=(64, 10)), bias=np.zeros(10, np.int64),
                  readout=True)
    return Network(input=InputSpec(shape=(64,), in_bits=5), timesteps=T, layers=(layer,))


def test_cli_fits_writes_and_reports(tmp_path, capsys):
    from flows import cli
    save(_digits_net(), tmp_path / "net")
    rc = cli.main(["early-exit", "--ir", str(tmp_path / "net"), "--dataset", "digits",
                   "--budget", "1.5", "-o", str(tmp_path / "net2"), "--json"])
    out, err = capsys.readouterr()
    assert rc == 0, err
    doc = json.loads(out)
    net2 = load(tmp_path / "net2")
    assert list(net2.early_exit.alpha) == doc["alpha"] and len(doc["alpha"]) == 2
    assert doc["fit"]["train_avg_timesteps"] <= 1.5
    test = np.load(tmp_path / "net2" / "inputs.npz")
    ev = evaluate(net2, test["x"], test["y"])
    assert ev == doc["test"]["early_exit"]
    rc = cli.main(["early-exit", "--ir", str(tmp_path / "net"), "--budget", "7",
                   "-o", str(tmp_path / "net3")])
    out, err = capsys.readouterr()
    assert rc == 1
    assert err == "mlsnn early-exit: error: budget must be a number in 1 .. T = 3, not 7.0\n"


def test_mlsnn_golden_prints_the_timesteps_used(tmp_path, capsys):
    from flows import cli
    save(_hand_net(alpha=[3, 3, 100]), tmp_path / "net")
    np.savez(tmp_path / "x.npz", x=np.array([[3, 1], [1, 1]]))
    assert cli.main(["golden", "--ir", str(tmp_path / "net"), "--inputs",
                     str(tmp_path / "x.npz")]) == 0
    out = capsys.readouterr().out
    # x = [1, 1]: I = [2, 1, 2], margin 0 until T.
    assert "timesteps used (early exit, docs/early-exit.md): mean 3.000, 2 4\n" in out
    assert cli.main(["golden", "--ir", str(tmp_path / "net"), "--inputs",
                     str(tmp_path / "x.npz"), "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["timesteps_used"] == [2, 4]
    assert doc["predictions"] == [0, 0]


def test_board_top_and_t1_network_with_early_exit():
    from flows.host import Board, SimTransport
    from hw.board import BoardTop
    net = random_network(3, kind="dense", timesteps=3, levels=2, in_shape=(6,), depth=1,
                         max_neurons=5)
    x = random_inputs(net, 4, seed=3)
    net = net.replace(early_exit={"alpha": _alpha_mixing(net, x)})
    golden = run(net, x)
    assert golden.timesteps.tolist() == [3, 3, 3, 1]
    board = Board(SimTransport(BoardTop(net, clk_freq=1e6, divisor=4)))
    board.check_network(net)
    got = board.run(x)
    assert got.predictions.tolist() == golden.predictions.tolist()
    assert got.readout.tolist() == golden.readout.tolist()
    for k, layer in enumerate(net.layers):
        for name in ("ev_in", "ev_out", "p_rd", "p_wr", "b_rd", "syn_acc"):
            assert got.counters[k][name].tolist() == golden.counters[layer.name][name].tolist()
    assert board.timesteps_used() == golden.timesteps[-1]           # the last image
    # alpha over the UART: a board built never to exit, given the fitted alpha, exits alike.
    never = Board(SimTransport(BoardTop(net.replace(early_exit={"alpha": [1 << 40] * 2}),
                                        clk_freq=1e6, divisor=4)))
    never.set_alpha(list(net.early_exit.alpha))
    steps = []
    for k in range(len(x)):
        assert never.infer(x[k]) == golden.predictions[k]
        steps.append(never.timesteps_used())
    assert steps == golden.timesteps.tolist()
    with pytest.raises(MlsnnError) as e:
        never.set_alpha([1])
    assert str(e.value) == "alpha must have T - 1 = 2 entries, not 1"
    plain = Board(SimTransport(BoardTop(net.replace(early_exit=None), clk_freq=1e6,
                                        divisor=4)))
    with pytest.raises(MlsnnError, match="^the board refused 'S': it was built from a network "
                                         "without 'early_exit'"):
        plain.timesteps_used()
    # T = 1: alpha is empty and nothing can exit; the top behaves as without early exit.
    one = _hand_net(T=1, alpha=[])
    rtl = run_network(one, X_HAND)
    assert rtl.extra["timesteps"].tolist() == [1]
    assert compare(one, run(one, X_HAND), rtl) == []

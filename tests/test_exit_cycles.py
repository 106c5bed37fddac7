# amaranth: UnusedElaboratable=no
"""The cycle model with early exit (golden/cycles.py, docs/cycles.md § Early exit) against the
RTL in the Amaranth simulator: random dense and conv networks (fixed seeds, T = 3 and 4, random
alpha with images that exit after t = 1, at intermediate t and never; lanes 1 and 2; the serial
options, small queues, pixels per beat, SPRAM weights), every core's ``cycles`` counter and the
cycles per inference exactly (and within the 2 % of issue 13 §2); ``mlsnn golden --json``
reports them; joins and pools with early exit stay refused in one line."""

import json

import numpy as np
import pytest

import golden.cycles as gc
from flows.cli import main
from golden.errors import MlsnnError
from golden.fixtures import random_inputs, random_network
from golden.ir import save
from golden.reference import margins, run
from sim.amaranth_run import run_network
from sim.nets import small_resnet

NEVER = 1 << 40


def _random_alpha(net, x, rng):
    # alpha_1 is one of the margins after t = 1 above the smallest (so some images exit at
    # t = 1, not all); later alpha_t a random margin of the images still running, or "never".
    m = margins(run(net, x).readout_steps)
    T = net.timesteps
    alpha = [int(rng.choice(np.unique(m[0])[1:]))] if len(np.unique(m[0])) > 1 else [NEVER]
    alive = m[0] < alpha[0]
    for t in range(1, T - 1):
        vals = m[t][alive]
        a = int(rng.choice(vals)) + int(rng.integers(0, 2)) if len(vals) and rng.random() < 0.7 \
            else NEVER
        alpha.append(a)
        alive &= m[t] < a
    return alpha


def _exit_net(seed, kind, T, lanes, B=6):
    net = random_network(4000 + seed, kind=kind, timesteps=T, max_neurons=16)
    net = gc.lanes_up_to(net, lanes)
    x = random_inputs(net, B, seed=seed)
    alpha = _random_alpha(net, x, np.random.default_rng(seed))
    return net.replace(early_exit={"alpha": alpha}), x


def _assert_model_is_the_rtl(net, x, weights="rom", **opts):
    golden = run(net, x)
    rep = gc.network_cycles(net, x, golden=golden, **opts)
    rtl = run_network(net, x, weights=weights, **opts)
    assert rtl.extra["timesteps"].tolist() == golden.timesteps.tolist()
    # issue 13 §2 asks for 2 % on the cycles per inference ...
    assert (np.abs(rep.cycles - rtl.cycles) <= 0.02 * rtl.cycles).all(), (rep.cycles,
                                                                          rtl.cycles)
    # ... and the model is in fact exact, per image and per core
    got = {"per inference": rep.cycles.tolist(),
           **{n: c.tolist() for n, c in rep.layers.items()}}
    want = {"per inference": rtl.cycles.tolist(),
            **{n: c["cycles"].tolist() for n, c in rtl.counters.items()}}
    assert got == want
    return golden.timesteps.tolist(), rep


CASES = [  # seed, kind, T, lanes, options
    (1, "dense", 4, 1, {}),
    (2, "dense", 3, 2, {"discharge": "serial", "fifo_depth": 1}),
    (6, "dense", 3, 1, {"discharge": "serial", "synapse": "serial"}),
    (8, "dense", 4, 2, {"synapse": "serial", "pixels_per_beat": 2}),
    (22, "dense", 3, 2, {"fifo_depth": 2}),
    (15, "dense", 4, 2, {"weights": "spram"}),
    (3, "conv", 4, 1, {"synapse": "serial", "fifo_depth": 2}),
    (4, "conv", 3, 2, {"pixels_per_beat": 4}),
    (5, "conv", 4, 2, {"discharge": "serial", "fifo_depth": 3}),
    (10, "conv", 4, 2, {}),
    (12, "conv", 4, 1, {"fifo_depth": 1, "pixels_per_beat": 2}),
]


@pytest.mark.parametrize("seed,kind,T,lanes,opts", CASES, ids=lambda v: str(v))
def test_early_exit_cycles_match_the_rtl(seed, kind, T, lanes, opts):
    net, x = _exit_net(seed, kind, T, lanes)
    if lanes > 1:
        assert any(getattr(layer, "lanes", 1) == lanes for layer in net.layers)
    used, _ = _assert_model_is_the_rtl(net, x, **opts)
    # exits after t = 1, at an intermediate t, and images that never exit
    assert 1 in used and T in used and len(set(used)) >= 3


def test_everyone_exits_at_t1_and_nobody_exits():
    net, x = _exit_net(1, "dense", 3, 2, B=3)
    used, exit1 = _assert_model_is_the_rtl(net.replace(early_exit={"alpha": [0, 0]}), x)
    assert used == [1, 1, 1]
    used, never = _assert_model_is_the_rtl(net.replace(early_exit={"alpha": [NEVER] * 2}), x)
    assert used == [3, 3, 3]
    # never exiting still runs timestep-major (the gate waits for each decision): slower than
    # the same network without the early exit, which overlaps the timesteps
    off = gc.network_cycles(net.replace(early_exit=None), x)
    assert (never.cycles > off.cycles).all() and (exit1.cycles < never.cycles).all()


def test_joins_and_pools_with_early_exit_are_refused_in_one_line():
    res = small_resnet(seed=1, join="barrier", timesteps=2).replace(early_exit={"alpha": [0]})
    join = next(layer for layer in res.layers if layer.kind == "barrier")
    msg = (f"cycle model: early exit: the cycle model covers networks of dense and conv2d "
           f"layers only; layer '{join.name}' is {join.label}, so it has no cycle count "
           f"(docs/cycles.md)")
    with pytest.raises(MlsnnError) as e:
        gc.network_cycles(res, random_inputs(res, 1))
    assert str(e.value) == msg
    pool = random_network(1, kind="conv", pool=True, timesteps=2)
    pool = pool.replace(early_exit={"alpha": [0]})
    assert "early exit: the cycle model covers networks of dense and conv2d layers only" \
        in gc.unsupported(pool)


def test_mlsnn_golden_json_reports_the_cycles_of_an_early_exit(tmp_path, capsys):
    net, x = _exit_net(1, "dense", 4, 1)
    save(net, tmp_path / "net")
    np.savez(tmp_path / "x.npz", x=x)
    assert main(["golden", "--ir", str(tmp_path / "net"), "--inputs", str(tmp_path / "x.npz"),
                 "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    rep = gc.network_cycles(net, x)
    assert doc["cycles"] == rep.to_json()
    assert "unsupported" not in doc["cycles"] and len(doc["cycles"]["per_image"]) == len(x)
    assert main(["golden", "--ir", str(tmp_path / "net"), "--inputs",
                 str(tmp_path / "x.npz")]) == 0
    out = capsys.readouterr().out
    assert (f"cycles per inference (cycle model, pixels per beat 1): mean "
            f"{rep.cycles.mean():.1f}, min {rep.cycles.min()}, max {rep.cycles.max()}") in out
    assert "not modelled" not in out

# amaranth: UnusedElaboratable=no
"""The cycle model with early exit (golden/cycles.py, docs/cycles.md § Early exit) against the
RTL in the Amaranth simulator: random dense and conv networks (fixed seeds, T = 3 and 4, random
alpha with images that exit after t = 1, at intermediate t and never; lanes 1 and 2; the serial
options, small queues, pixels per beat, SPRAM weights) and random residual networks with barrier
and SEW joins and conv networks with max and avg pools, every core's ``cycles`` counter and the
cycles per inference exactly (and within the 2 % of issue 13 §2); ``mlsnn golden --json``
reports them."""

import json

import numpy as np
import pytest

import golden.cycles as gc
from flows.cli import main
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


JOIN_FAMILIES = {
    "barrier": dict(kind="residual", join="barrier", pool=True),
    "sew": dict(kind="residual", join="sew", pool=True),
    "pool": dict(kind="conv", pool=True),
    "mixed": dict(kind="residual", pool=True),      # barrier and SEW blocks, both pools
}

JOIN_CASES = [  # family, seed, options (T = 3 for odd seeds, else 4)
    ("barrier", 20, {"fifo_depth": 2}),
    ("sew", 10, {"synapse": "serial"}),
    ("sew", 22, {"fifo_depth": 1}),
    ("pool", 4, {"discharge": "serial"}),
    ("pool", 24, {"pixels_per_beat": 2}),
    ("mixed", 9, {"discharge": "serial", "fifo_depth": 3}),
    ("mixed", 29, {}),
]


def _join_net(family, seed, B=5):
    net = random_network(4100 + seed, timesteps=3 if seed % 2 else 4, max_neurons=12,
                         **JOIN_FAMILIES[family])
    x = random_inputs(net, B, seed=seed)
    alpha = _random_alpha(net, x, np.random.default_rng(seed))
    return net.replace(early_exit={"alpha": alpha}), x


@pytest.mark.parametrize("family,seed,opts", JOIN_CASES, ids=lambda v: str(v))
def test_early_exit_cycles_with_joins_and_pools_match_the_rtl(family, seed, opts):
    # barrier and avgpool cores end an exited inference with their exit sweep, maxpool and SEW
    # joins in the cycle of exit (docs/cycles.md § Early exit)
    net, x = _join_net(family, seed)
    assert gc.unsupported(net) is None
    kinds = {layer.kind for layer in net.layers}
    assert kinds & {"barrier", "sew", "maxpool2d", "avgpool2d"}
    used, _ = _assert_model_is_the_rtl(net, x, **opts)
    assert 1 in used and net.timesteps in used and len(set(used)) >= 3


@pytest.mark.parametrize("join,seed", [("sew", 0), ("barrier", 9)])
def test_small_resnet_early_exit_cycles_match_the_rtl(join, seed):
    net = small_resnet(seed, join=join, timesteps=3, blocks=1, size=4)
    x = random_inputs(net, 5, seed=seed)
    net = net.replace(early_exit={"alpha": _random_alpha(net, x, np.random.default_rng(seed))})
    used, _ = _assert_model_is_the_rtl(net, x)
    assert 1 in used and 3 in used


def test_joins_and_pools_exit_at_t1_and_never():
    net = small_resnet(4, join="barrier", timesteps=3, blocks=1, size=4)
    x = random_inputs(net, 3, seed=4)
    used, exit1 = _assert_model_is_the_rtl(net.replace(early_exit={"alpha": [0, 0]}), x)
    assert used == [1, 1, 1]
    used, never = _assert_model_is_the_rtl(net.replace(early_exit={"alpha": [NEVER] * 2}), x)
    assert used == [3, 3, 3]
    assert (exit1.cycles < never.cycles).all()
    pool, x = _join_net("pool", 24, B=2)
    used, _ = _assert_model_is_the_rtl(pool.replace(early_exit={"alpha": [0, 0, 0]}), x)
    assert used == [1, 1]


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

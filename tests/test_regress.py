"""`mlsnn regress` (flows/regress.py) and the corner-case options of
golden.fixtures.random_network."""

import dataclasses
import json
import shlex
import xml.etree.ElementTree as ET

import numpy as np
import pytest

from flows import regress as rg
from flows.cli import main
from golden import fixtures, ir
from golden.reference import run as golden_run
from sim.amaranth_run import run_network
from sim.scoreboard import compare

#: Regression seeds whose networks simulate in a few seconds on the Amaranth simulator (all
#: match; measured in the 60-seed slice of docs/verification.md).
SLICE_SEEDS = "46:50"
FAST_SEEDS = "38:40"


def _cli(capsys, *argv):
    rc = main(list(argv))
    out, err = capsys.readouterr()
    return rc, out, err


# -- configurations -------------------------------------------------------------------------

def test_config_is_a_function_of_the_seed():
    a, b = rg.RegressConfig.from_seed(17), rg.RegressConfig.from_seed(17)
    assert a == b
    assert json.dumps(a.network().to_json()) == json.dumps(b.network().to_json())
    cfgs = [rg.RegressConfig.from_seed(s) for s in range(200)]
    # every variant is drawn somewhere in 200 seeds
    assert {c.discharge for c in cfgs} == {"parallel", "serial"}
    assert {c.synapse for c in cfgs} == {"mul", "serial"}
    assert {c.fifo_depth for c in cfgs} == {None, 1, 2}
    for flag in rg.RegressConfig.NET_FLAGS:
        assert 0 < sum(getattr(c, flag) for c in cfgs) < 200
    assert all(c.in_bits in (2, 4) for c in cfgs if c.synapse == "serial")


def test_reproducer_regenerates_the_exact_network(tmp_path, capsys):
    cfg = next(c for c in map(rg.RegressConfig.from_seed, range(100))
               if c.non_square and c.narrow_width and c.fifo_depth and c.throttle)
    line = cfg.to_cli("amaranth", images=2, directory=str(tmp_path / "net"))
    gen, sim = line.split(" && ")
    argv = shlex.split(gen)
    assert argv[:2] == ["mlsnn", "random-network"]
    assert argv[argv.index("--seed") + 1] == str(cfg.seed)
    rc, _, err = _cli(capsys, *argv[1:])
    assert rc == 0, err
    saved = ir.load(str(tmp_path / "net"))
    net = cfg.network()
    assert json.dumps(saved.to_json()) == json.dumps(net.to_json())
    for k, v in net.arrays().items():
        assert np.array_equal(saved.arrays()[k], v)
    with np.load(tmp_path / "net" / "inputs.npz") as z:
        assert np.array_equal(z["x"], cfg.inputs(net, 2))
    sargv = shlex.split(sim)
    assert sargv[:2] == ["mlsnn", "simulate"]
    for opt, val in (("--discharge", cfg.discharge), ("--synapse", cfg.synapse),
                     ("--fifo-depth", str(cfg.fifo_depth)), ("--seed", str(cfg.seed)),
                     ("--throttle", f"{cfg.throttle:g}")):
        assert sargv[sargv.index(opt) + 1] == val


# -- seeds and shards -----------------------------------------------------------------------

def test_shards_partition_the_seeds():
    seeds = rg.parse_seeds("3:40")
    assert list(seeds) == list(range(3, 40))
    for n in (1, 2, 3, 7):
        shards = [rg.shard_seeds(seeds, rg.parse_shard(f"{i}/{n}")) for i in range(n)]
        assert sorted(s for sh in shards for s in sh) == list(seeds)
        assert sum(len(sh) for sh in shards) == len(seeds)
        for i, sh in enumerate(shards):
            assert all(s % n == i for s in sh)


@pytest.mark.parametrize("argv, msg", [
    (["--seeds", "5:2"], "--seeds must be A:B with 0 <= A < B, not '5:2'"),
    (["--seeds", "a:b"], "--seeds must be A:B (integers, 0 <= A < B), not 'a:b'"),
    (["--seeds=-1:3"], "--seeds must be A:B with 0 <= A < B, not '-1:3'"),
    (["--shard", "3/3"], "--shard i/n needs 0 <= i < n (i in 0..2), not '3/3'"),
    (["--shard", "x"], "--shard must be i/n (integers, 0 <= i < n), not 'x'"),
    (["--jobs", "0"], "--jobs must be at least 1, not 0"),
    (["--images", "0"], "--images must be at least 1, not 0"),
    (["--seeds", "0:2", "--shard", "2/5"], "shard 2/5 of seeds 0:2 holds no seed"),
])
def test_bad_input_is_one_line(capsys, argv, msg):
    rc, out, err = _cli(capsys, "regress", *argv)
    assert rc == 1
    assert err == f"mlsnn regress: error: {msg}\n"
    assert out == ""


def test_unreachable_scheduler_is_one_line(capsys):
    rc, out, err = _cli(capsys, "regress", "--seeds", "0:1", "--scheduler",
                        "tcp://127.0.0.1:9")
    assert rc == 1
    assert err.startswith("mlsnn regress: error: cannot reach the Dask scheduler at "
                          "tcp://127.0.0.1:9: ")
    assert err.count("\n") == 1


# -- runs -----------------------------------------------------------------------------------

def test_slice_on_amaranth_json_and_junit(tmp_path, capsys):
    junit = tmp_path / "junit.xml"
    rc, out, err = _cli(capsys, "regress", "--seeds", SLICE_SEEDS, "--images", "2", "--json",
                        "--junit", str(junit), "-o", str(tmp_path / "fail"))
    seeds = list(rg.parse_seeds(SLICE_SEEDS))
    doc = json.loads(out)
    assert rc == 0, doc
    assert doc["networks"] == len(seeds)
    assert doc["passed"] + doc["undetermined"] == len(seeds)
    assert doc["failed"] == 0 and doc["failures"] == []
    assert doc["seconds"] > 0
    assert f"regress: {len(seeds)}/{len(seeds)} done, 0 failed" in err
    suite = ET.parse(junit).getroot()
    assert suite.tag == "testsuite"
    assert int(suite.get("tests")) == len(seeds)
    assert int(suite.get("failures")) == 0 and int(suite.get("errors")) == 0
    assert [c.get("name") for c in suite.iter("testcase")] == [f"seed{s}" for s in seeds]
    assert not (tmp_path / "fail").exists()      # nothing failed, nothing saved


def test_a_corrupted_counter_fails_with_a_reproducer(tmp_path, capsys, monkeypatch):
    real = rg._rtl_runner

    def corrupting(sim):
        runner = real(sim)

        def run(net, x, golden, build_dir, **opts):
            rtl = runner(net, x, golden, build_dir, **opts)
            rtl.counters[net.layers[0].name]["w_rd"][0] += 1
            return rtl
        return run
    monkeypatch.setattr(rg, "_rtl_runner", corrupting)
    seed = int(FAST_SEEDS.split(":")[0])
    junit = tmp_path / "j.xml"
    rc, out, err = _cli(capsys, "regress", "--seeds", f"{seed}:{seed + 1}", "--images", "2",
                        "--json", "--junit", str(junit), "-o", str(tmp_path / "out"))
    assert rc == 1
    doc = json.loads(out)
    assert (doc["networks"], doc["passed"], doc["failed"]) == (1, 0, 1)
    fail, = doc["failures"]
    net = rg.RegressConfig.from_seed(seed).network()
    assert fail["seed"] == seed
    assert fail["message"].startswith(f"image 0, layer '{net.layers[0].name}', counter w_rd: ")
    assert f"--seed {seed} " in fail["reproducer"]
    assert fail["reproducer"].startswith("mlsnn random-network ")
    assert " && mlsnn simulate --ir " in fail["reproducer"]
    assert f"reproduce: {fail['reproducer']}" in err
    saved = ir.load(fail["network_dir"])
    assert json.dumps(saved.to_json()) == json.dumps(net.to_json())
    case, = ET.parse(junit).getroot().iter("testcase")
    failure, = case.iter("failure")
    assert failure.get("message") == fail["message"]
    assert fail["reproducer"] in failure.text
    # The saved network, run through `mlsnn simulate` (the real RTL), matches golden: the
    # corruption was ours.
    sim = shlex.split(fail["reproducer"].split(" && ")[1])
    rc, out, err = _cli(capsys, *sim[1:], "--json")
    assert rc == 0, err
    assert json.loads(out)["match"] is True


@pytest.mark.slow
def test_jobs_2_on_a_local_dask_cluster(capsys):
    rc, out, err = _cli(capsys, "regress", "--seeds", FAST_SEEDS, "--images", "1", "--jobs",
                        "2", "--json")
    doc = json.loads(out)
    assert rc == 0, doc
    assert doc["networks"] == len(rg.parse_seeds(FAST_SEEDS))
    assert doc["failed"] == 0


# -- the corner-case options of random_network, and the RTL on them --------------------------

def _rtl_agrees(net, seed, images=3):
    x = fixtures.random_inputs(net, images, seed=seed)
    golden = golden_run(net, x)
    rtl = run_network(net, x, seed=seed, gap=0.1, stall=0.1)
    assert compare(net, golden, rtl, x) == []
    return golden, rtl


def _small(seed, **kw):
    return fixtures.random_network(seed, max_neurons=8, timesteps=1, in_bits=2, depth=1, **kw)


def test_option_non_square():
    net = _small(1, kind="conv", non_square=True)
    _, h, w = net.input.shape
    assert h != w
    _rtl_agrees(net, 1)


def test_option_conv_readout():
    net = _small(0, kind="conv", conv_readout=True)
    assert isinstance(net.readout, ir.Conv2d) and net.readout.readout
    golden, rtl = _rtl_agrees(net, 0)
    assert rtl.readout.shape[1] == net.info(net.readout.name).n_out


def test_options_negative_v0_and_wide_stream_weights():
    net = fixtures.random_network(3, max_neurons=4, timesteps=1, in_bits=2, depth=1,
                                  in_shape=(1, 4, 4), kind="residual", join="barrier",
                                  negative_v0=True, wide_stream_weights=True)
    join = net.layer("join0")
    assert join.stream_weights == (-1, 32767)      # negative, and the 16-bit limit
    assert join.v0 < 0
    assert sum(l.v0 < 0 for l in net.layers) >= 3
    assert all(l.v0 <= 0 for l in net.layers)
    golden, _ = _rtl_agrees(net, 3, images=2)
    assert int(golden.counters["join0"]["ev_in"].sum()) > 0    # events did cross the barrier
    weights = [w for s in range(6) for l in fixtures.random_network(
        s, kind="residual", join="barrier", wide_stream_weights=True, calibrate=False).layers
        if isinstance(l, ir.Join) for w in l.stream_weights]
    assert any(w == 0 for w in weights) or any(w < 0 for w in weights)
    assert any(abs(w) > 3 for w in weights)


def test_option_narrow_width_overflows():
    net = _small(1, kind="dense", narrow_width=True)
    narrow = net.overflow_possible()
    assert narrow
    golden, rtl = _rtl_agrees(net, 1)
    for name in narrow:
        assert net.info(name).width < net.info(name).safe_width
    assert any((golden.overflow[n] == 2).any() for n in narrow)
    for n in narrow:
        pairs = list(zip(golden.overflow[n].tolist(), rtl.overflow[n].tolist()))
        assert all(flag == 1 for g, flag in pairs if g == 2)
        assert all(flag == 0 for g, flag in pairs if g == 0)


def test_options_off_keep_the_networks():
    for s in range(6):
        a = fixtures.random_network(s, kind="residual", join="barrier")
        b = fixtures.random_network(s, kind="residual", join="barrier", non_square=False,
                                    conv_readout=False, negative_v0=False,
                                    wide_stream_weights=False, narrow_width=False)
        assert json.dumps(a.to_json()) == json.dumps(b.to_json())
        _, h, w = a.input.shape
        assert h == w
        assert isinstance(a.readout, ir.Dense)
        assert all(l.v0 == 0 for l in a.layers)
        assert all(1 <= w_ <= 3 for l in a.layers if isinstance(l, ir.Join)
                   for w_ in l.stream_weights)
        assert a.overflow_possible() == []


# -- lanes, early exit and bit-serial networks in the draw ----------------------------------

def _kinds(net):
    """Which of lanes > 1, early exit and bit-serial coding ``net`` has."""
    return {"lanes": any(getattr(l, "lanes", 1) > 1 for l in net.layers),
            "early_exit": net.early_exit is not None,
            "bitserial": any(getattr(l, "coding", "rate") == "bitserial" for l in net.layers)}


#: Seeds of each new kind whose networks simulate in a second or two (2 images); the early
#: exits are dense/conv ones (joins and pools: EXIT_SEEDS).
KIND_SEEDS = {"lanes": (19, 30), "early_exit": (84, 49), "bitserial": (44, 39)}

#: Early-exit seeds with joins or pools: seed -> (images, labels the network has). Each has an
#: image that exits before T; 113's three images exit at t = 1, 2 and 2.
EXIT_SEEDS = {136: (2, {"join-barrier"}), 13: (2, {"join-sew", "maxpool2d", "avgpool2d"}),
              87: (2, {"maxpool2d"}), 113: (3, {"join-sew", "avgpool2d"})}
POOLS = ("maxpool2d", "avgpool2d")


def test_draw_has_lanes_early_exit_and_bitserial_that_the_hardware_builds():
    from hw.network import check_supported
    counts = dict.fromkeys(("lanes", "early_exit", "bitserial"), 0)
    alphas, exit_labels = [], set()
    for s in range(200):
        cfg = rg.RegressConfig.from_seed(s)
        if s >= 100 and not cfg.early_exit:     # seeds 100..199: the early exits only
            continue
        assert cfg.kind in (None, "residual") and (cfg.kind is None or cfg.early_exit), s
        net = cfg.network()
        check_supported(net)            # a drawn config the hardware refuses is a bug
        got = _kinds(net)
        for k, on in got.items():
            assert not on or getattr(cfg, k), (s, k)        # only when the config says so
            counts[k] += on
        if got["bitserial"]:
            assert not (got["lanes"] or got["early_exit"] or cfg.pool or cfg.hard_reset
                        or cfg.leaky or cfg.narrow_width)
            assert all(l.levels == 1 and l.reset == "soft" and l.leak == 0 for l in net.layers)
        if got["early_exit"]:
            labels = {l.label for l in net.layers}
            # joins only on a residual config, pools only with pool (random_network draws
            # dense or conv for an early exit: the other early-exit seeds keep their networks)
            assert (cfg.kind == "residual") == any(isinstance(l, ir.Join) for l in net.layers)
            assert cfg.pool or not labels & set(POOLS), s
            assert labels <= {"dense", "conv2d", "join-barrier", "join-sew", *POOLS}, labels
            exit_labels |= labels
            assert len(net.early_exit.alpha) == net.timesteps - 1
            alphas += net.early_exit.alpha
        for l in net.layers:
            if isinstance(l, ir.Conv2d) and l.readout:
                assert l.lanes == 1
    assert all(n > 0 for n in counts.values()), counts
    assert {"join-barrier", "join-sew", *POOLS} <= exit_labels, exit_labels
    # alphas that exit every image at t = 1, that never exit, and in between
    assert 0 in alphas and 1 << 40 in alphas and any(0 < a < 1 << 40 for a in alphas)
    for k, seeds in KIND_SEEDS.items():
        assert all(_kinds(rg.RegressConfig.from_seed(s).network())[k] for s in seeds), k


@pytest.mark.parametrize("kind", sorted(KIND_SEEDS))
def test_run_seed_of_each_new_kind_matches_on_amaranth(kind):
    for s in KIND_SEEDS[kind]:
        res = rg.run_seed(s, "amaranth", images=2)
        assert res["status"] == "match", res["messages"]
        assert res["cycles"] == "not compared: random gaps, stalls or throttling"
    if kind == "early_exit":        # images exit before T (and some run all T)
        cfg = rg.RegressConfig.from_seed(KIND_SEEDS[kind][0])
        net = cfg.network()
        used = golden_run(net, cfg.inputs(net, 2)).timesteps.tolist()
        assert min(used) < net.timesteps


def test_run_seed_of_early_exits_with_joins_and_pools_matches_on_amaranth():
    for s, (images, labels) in EXIT_SEEDS.items():
        cfg = rg.RegressConfig.from_seed(s)
        net = cfg.network()
        assert cfg.early_exit and net.early_exit is not None
        assert labels <= {l.label for l in net.layers}, s
        used = golden_run(net, cfg.inputs(net, images)).timesteps.tolist()
        assert min(used) < net.timesteps, (s, used)
        res = rg.run_seed(s, "amaranth", images=images)
        assert res["status"] == "match", (s, res["messages"])
        assert res["cycles"] == "not compared: random gaps, stalls or throttling"


def test_cycles_of_a_barrier_early_exit_are_compared_and_match():
    cfg = dataclasses.replace(rg.RegressConfig.from_seed(136), gap=0.0, stall=0.0, throttle=0.0)
    net = cfg.network()
    x = cfg.inputs(net, 2)
    golden = golden_run(net, x)
    rtl = run_network(net, x, discharge=cfg.discharge, synapse=cfg.synapse,
                      fifo_depth=cfg.fifo_depth)
    assert rg.judge_cycles(cfg, net, x, golden, rtl) == ("match", [])


def test_reproducer_regenerates_a_residual_early_exit_with_pools(tmp_path, capsys):
    cfg = rg.RegressConfig.from_seed(13)
    assert (cfg.kind, cfg.pool, cfg.early_exit) == ("residual", True, True)
    line = cfg.to_cli("amaranth", images=2, directory=str(tmp_path / "n"))
    gen = shlex.split(line.split(" && ")[0])
    assert gen[gen.index("--kind") + 1] == "residual"
    assert "--pool" in gen and "--early-exit" in gen
    rc, _, err = _cli(capsys, *gen[1:])
    assert rc == 0, err
    saved, net = ir.load(str(tmp_path / "n")), cfg.network()
    assert json.dumps(saved.to_json()) == json.dumps(net.to_json())
    for k, v in net.arrays().items():
        assert np.array_equal(saved.arrays()[k], v)
    assert "kind residual" in cfg.describe()


@pytest.mark.parametrize("join", ["barrier", "sew"])
def test_random_network_puts_an_early_exit_on_joins_and_pools(join):
    from hw.network import check_supported
    for s in range(4):
        net = fixtures.random_network(s, kind="residual", join=join, pool=True,
                                      early_exit=True, max_neurons=16)
        check_supported(net)
        assert net.early_exit is not None or net.readout.kind == "conv2d"
        assert all(l.mode == join for l in net.layers if isinstance(l, ir.Join))
        assert any(isinstance(l, ir.Join) for l in net.layers)
    # a kind left to the draw stays dense or conv, with or without pool (seeds keep networks)
    for s in range(6):
        a = fixtures.random_network(s, early_exit=True)
        assert not any(isinstance(l, ir.Join) for l in a.layers)
        b = fixtures.random_network(s, early_exit=True, pool=True)
        assert not any(isinstance(l, ir.Join) for l in b.layers)
        if isinstance(a.layers[0], ir.Dense):
            assert json.dumps(a.to_json()) == json.dumps(b.to_json())


@pytest.mark.parametrize("kind", sorted(KIND_SEEDS))
def test_reproducer_regenerates_lanes_early_exit_and_bitserial(tmp_path, capsys, kind):
    cfg = rg.RegressConfig.from_seed(KIND_SEEDS[kind][0])
    gen = shlex.split(cfg.to_cli("amaranth", images=2, directory=str(tmp_path / "n")))
    gen = gen[:gen.index("&&")]
    assert f"--{kind.replace('_', '-')}" in gen
    rc, _, err = _cli(capsys, *gen[1:])
    assert rc == 0, err
    saved, net = ir.load(str(tmp_path / "n")), cfg.network()
    assert _kinds(net)[kind]
    assert json.dumps(saved.to_json()) == json.dumps(net.to_json())
    for k, v in net.arrays().items():
        assert np.array_equal(saved.arrays()[k], v)


def test_random_network_refuses_what_the_hardware_has_not(capsys):
    for kw, msg in (
            (dict(bitserial=True, lanes=True),
             "random_network: bitserial cannot be combined with lanes (docs/bitserial.md)"),
            (dict(bitserial=True, kind="residual"),
             "random_network: bitserial needs kind 'dense' or 'conv' (a join has no "
             "bit-serial form), not 'residual'"),
            (dict(bitserial=True, levels=4),
             "random_network: bitserial needs levels 2^k - 1 (1, 3, 7, 15, ...), not 4"),
            (dict(bitserial=True, early_exit=True),
             "random_network: bitserial cannot be combined with early_exit "
             "(docs/bitserial.md)")):
        with pytest.raises(rg.MlsnnError) as e:
            fixtures.random_network(1, **kw)
        assert str(e.value) == msg
    rc, out, err = _cli(capsys, "random-network", "--bitserial", "--timesteps", "2", "-o",
                        "/nonexistent/x")
    assert rc == 1 and out == ""
    assert err == ("mlsnn random-network: error: random_network: bitserial draws T itself "
                   "(T = k bits of the levels); give no timesteps\n")


def test_cycles_are_compared_without_gaps_and_a_model_refusal_is_not_a_match(monkeypatch):
    net = fixtures.random_network(3, kind="dense", timesteps=2, max_neurons=8, depth=1)
    x = fixtures.random_inputs(net, 2, seed=3)
    golden = golden_run(net, x)
    rtl = run_network(net, x)
    calm = rg.RegressConfig(seed=3)
    assert rg.judge_cycles(calm, net, x, golden, rtl) == ("match", [])
    rtl.cycles[1] += 1
    assert rg.judge_cycles(calm, net, x, golden, rtl) == (
        "mismatch", [f"image 1: RTL {int(rtl.cycles[1])} cycles, cycle model "
                     f"{int(rtl.cycles[1]) - 1}"])
    assert rg.judge_cycles(rg.RegressConfig(seed=3, stall=0.1), net, x, golden, rtl) == \
        ("not compared: random gaps, stalls or throttling", [])
    import golden.cycles

    def refuse(*a, **k):
        raise rg.MlsnnError("cycle model: the cycle model does not cover the early exit")
    monkeypatch.setattr(golden.cycles, "network_cycles", refuse)
    assert rg.judge_cycles(calm, net, x, golden, rtl) == (
        "not compared: cycle model: the cycle model does not cover the early exit", [])
    # the summary counts it as not compared, apart from the seeds whose cycles matched
    res = [{"seed": 0, "status": "match", "messages": [], "cycles": "match"},
           {"seed": 1, "status": "match", "messages": [], "cycles": "not compared: cycle "
            "model: the cycle model does not cover the early exit"},
           {"seed": 2, "status": "match", "messages": [],
            "cycles": "not compared: random gaps, stalls or throttling"}]
    doc = rg.summary_json(res, 1.0)
    assert (doc["passed"], doc["cycles_compared"], doc["cycles_not_compared"],
            doc["cycles_refused"]) == (3, 1, 2, 1)


def test_an_early_exit_after_an_order_dependent_saturation_is_undetermined():
    # Regression seed 271: a 4-bit readout after a SEW join saturates, so its potentials (and
    # the exit margin) depend on the join's arrival order; the RTL then exits at another
    # timestep than golden, and every layer's counters differ. That is not a failure.
    import dataclasses
    from sim.scoreboard import Expected, check_expected, verdict
    cfg = rg.RegressConfig.from_seed(271)
    net = cfg.network()
    assert net.early_exit is not None and net.layer("fc_out").potential_width == 4
    x = cfg.inputs(net, 3)
    g = golden_run(net, x)
    res = run_network(net, x, **cfg.sim_options("amaranth"))
    v = verdict(net, g, res)
    assert v.status == "undetermined" and not v.messages
    assert all("the early exit decides from it" in line for line in v.undetermined)
    # the same through the serialised form the cocotb benches use
    exp = Expected.from_json(json.loads(json.dumps(Expected.from_golden(net, g, x).to_json())))
    assert check_expected(exp, res).status == "undetermined"
    # without the early exit the same saturation only stops the comparison at fc_out: the
    # layers upstream of it are compared (and equal)
    plain = net.replace(early_exit=None)
    vp = verdict(plain, golden_run(plain, x), run_network(plain, x, **cfg.sim_options("amaranth")))
    assert not vp.messages
    # with a readout wide enough not to saturate, everything matches, exit included
    wide = net.replace(layers=tuple(
        dataclasses.replace(layer, potential_width=None) if layer.name in ("conv5", "fc_out")
        else layer for layer in net.layers))
    assert verdict(wide, golden_run(wide, x),
                   run_network(wide, x, **cfg.sim_options("amaranth"))).status == "match"

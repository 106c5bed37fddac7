# amaranth: UnusedElaboratable=no
"""The cycle model (golden/cycles.py, docs/cycles.md) against the RTL in the Amaranth simulator.

Single cores: ``layer_cycles`` equals the ``cycles`` counter of ``run_layer`` (no gaps, no
stalls) for dense and conv2d layers (L = 1, 2, 4; N = 1, 4; T = 1, 3; empty timesteps; one
output neuron), the serial options and a pool. Networks: ``network_cycles`` equals
``run_network(...).cycles`` and every core's counter on random networks (dense, conv, pools,
residual joins; pixels per beat 1 and 4; lanes); the 2 % bound of issue 13 §2 is asserted too,
so that a failure says how far off the model is. ``mlsnn golden --json`` carries the model.
"""

import json
import math

import numpy as np
import pytest

import golden.cycles as gc
import hw.network as hw_network
from flows.cli import main
from golden import ir
from golden.errors import MlsnnError
from golden.fixtures import random_inputs, random_network
from golden.ir import Conv2d, Dense, InputSpec, Network
from golden.reference import run
from hw.layer import LayerCore
from hw.neuron import fire_timing
from hw.pool import PoolCore
from hw.stages import Sweep
from sim.amaranth_run import run_layer, run_network
from sim.scoreboard import layer_input_tokens


def test_constants_are_the_hardware_ones():
    assert gc.DEFAULT_FIFO_DEPTH == hw_network.DEFAULT_FIFO_DEPTH
    assert gc.MAX_JOIN_FIFO_DEPTH == hw_network.MAX_JOIN_FIFO_DEPTH
    assert gc.READOUT_QUEUE_DEPTH == hw_network.READOUT_QUEUE_DEPTH
    assert gc.STREAMER_CREDITS == hw_network.InputStreamer.CREDITS
    assert gc.SWEEP_CREDITS == Sweep.__init__.__kwdefaults__["credits"]
    for discharge in ("parallel", "serial"):
        for levels in (1, 2, 5):
            for readout in (False, True):
                for pipelined in (False, True):
                    kw = dict(discharge=discharge, levels=levels, readout=readout,
                              pipelined=pipelined)
                    assert gc._fire_timing(**kw) == fire_timing(**kw)
    net = random_network(3, kind="residual", join="barrier")
    for src, k, _ in hw_network.edges(net):
        consumer = net.layers[k].name
        assert (gc._fifo_depth(net, src, consumer, None)
                == hw_network.default_fifo_depth(net, src, consumer))


# -- single cores -------------------------------------------------------------------------------
def _single(kind, *, lanes, levels, T, n_out, seed):
    """input → one spiking dense or conv2d layer ``l`` (random weights) → dense readout."""
    rng = np.random.default_rng(seed)
    if kind == "dense":
        shape = (9,)
        layer = Dense(name="l", inputs=("input",), threshold=3, levels=levels,
                      weight=rng.integers(-3, 6, size=(9, n_out)),
                      bias=rng.integers(-2, 3, size=n_out), lanes=lanes)
        n = n_out
    else:
        shape = (2, 5, 5)
        stride = 1 + seed % 2
        layer = Conv2d(name="l", inputs=("input",), threshold=4, levels=levels,
                       weight=rng.integers(-3, 6, size=(2, 3, 3, n_out)),
                       bias=rng.integers(-2, 3, size=n_out), stride=stride, padding=1,
                       lanes=lanes)
        n = n_out * math.prod(layer.out_shape(shape)[1:])
    ro = Dense(name="ro", inputs=("l",), threshold=1, levels=1,
               weight=rng.integers(-3, 4, size=(n, 3)), bias=np.zeros(3, np.int64),
               readout=True)
    return Network(input=InputSpec(shape=shape, in_bits=3), timesteps=T, layers=(layer, ro))


def _images(net, seed):
    """A dense image, a sparse one and an all-zero one (empty timesteps everywhere)."""
    rng = np.random.default_rng(seed)
    x = rng.integers(0, net.input.zmax + 1, size=(3,) + net.input.shape)
    x[1] *= rng.random(net.input.shape) < 0.3
    x[2] = 0
    return x


def _rtl_layer_cycles(net, name, x, g, core):
    toks = layer_input_tokens(net, name, x, g)
    res = run_layer(core, toks, n_eot=x.shape[0] * net.timesteps, max_cycles=100_000)
    return res["counters"]["cycles"]


SINGLE = [(kind, lanes, levels, T, n_out)
          for kind in ("dense", "conv")
          for lanes, n_out in ((1, 4), (2, 4), (4, 4), (1, 1))
          for levels, T in ((1, 3), (4, 1), (4, 3))]


@pytest.mark.parametrize("kind,lanes,levels,T,n_out", SINGLE,
                         ids=lambda v: str(v))
def test_single_layer_exact(kind, lanes, levels, T, n_out):
    seed = lanes * 7 + levels + T + n_out
    net = _single(kind, lanes=lanes, levels=levels, T=T, n_out=n_out, seed=seed)
    x = _images(net, seed)
    g = run(net, x)
    for name in ("l", "ro"):
        rtl = _rtl_layer_cycles(net, name, x, g, LayerCore.from_network(net, name))
        assert gc.layer_cycles(net, name, x, golden=g) == rtl, name


@pytest.mark.parametrize("discharge,synapse", [("serial", "mul"), ("parallel", "serial"),
                                               ("serial", "serial")])
@pytest.mark.parametrize("kind,lanes", [("dense", 1), ("conv", 2)])
def test_single_layer_serial_options_exact(kind, lanes, discharge, synapse):
    net = _single(kind, lanes=lanes, levels=4, T=2, n_out=4, seed=5)
    x = _images(net, 5)
    g = run(net, x)
    core = LayerCore.from_network(net, "l", discharge=discharge, synapse=synapse)
    rtl = _rtl_layer_cycles(net, "l", x, g, core)
    assert gc.layer_cycles(net, "l", x, golden=g, discharge=discharge, synapse=synapse) == rtl


@pytest.mark.parametrize("seed", [1, 8])
def test_pool_core_exact(seed):
    net = random_network(seed, kind="conv", pool=True)
    pools = [layer.name for layer in net.layers if layer.kind.endswith("pool2d")]
    assert pools
    x = random_inputs(net, 2, seed=seed)
    g = run(net, x)
    for name in pools:
        rtl = _rtl_layer_cycles(net, name, x, g, PoolCore.from_network(net, name))
        assert gc.layer_cycles(net, name, x, golden=g) == rtl, name


# -- networks ----------------------------------------------------------------------------------
NETWORKS = [("dense", 1, 1, 1), ("dense", 4, 4, 2), ("dense", 5, 1, 4),
            ("conv", 2, 1, 1), ("conv", 4, 4, 1), ("conv", 7, 4, 2),
            ("pool", 1, 1, 1), ("pool", 7, 4, 4), ("pool", 5, 1, 2),
            ("residual", 0, 1, 1), ("residual", 4, 4, 2), ("residual", 5, 1, 1)]


@pytest.mark.parametrize("kind,seed,P,lanes", NETWORKS, ids=lambda v: str(v))
def test_network_cycles_match_the_rtl(kind, seed, P, lanes):
    net = random_network(seed, kind="conv" if kind == "pool" else kind, pool=kind == "pool")
    net = gc.lanes_up_to(net, lanes)
    x = random_inputs(net, 2, seed=seed)
    P = min(P, net.input.size)
    rep = gc.network_cycles(net, x, pixels_per_beat=P)
    rtl = run_network(net, x, pixels_per_beat=P)
    err = np.abs(rep.cycles - rtl.cycles) / rtl.cycles
    assert err.max() <= 0.02, (rep.cycles, rtl.cycles)          # issue 13 §2
    assert rep.cycles.tolist() == rtl.cycles.tolist()            # and in fact exact
    for layer in net.layers:
        assert rep.layers[layer.name].tolist() == \
            rtl.counters[layer.name]["cycles"].tolist(), layer.name


@pytest.mark.parametrize("kind,seed,fifo_depth,discharge,synapse", [
    ("residual", 4, 1, "serial", "mul"), ("residual", 3, 2, "parallel", "serial"),
    ("conv", 2, 2, "serial", "serial")])
def test_network_cycles_with_small_queues_and_serial_options(kind, seed, fifo_depth,
                                                             discharge, synapse):
    # Depth-1 and depth-2 queues fill up at once: backpressure everywhere (seed 4: SEW joins,
    # seed 3: a barrier).
    net = random_network(seed, kind=kind, join="sew" if seed == 4 else None)
    x = random_inputs(net, 2, seed=1)
    rep = gc.network_cycles(net, x, fifo_depth=fifo_depth, discharge=discharge,
                            synapse=synapse)
    assert rep.passes.max() > 2         # the first pass missed the backpressure
    rtl = run_network(net, x, fifo_depth=fifo_depth, discharge=discharge, synapse=synapse)
    assert rep.cycles.tolist() == rtl.cycles.tolist()
    for layer in net.layers:
        assert rep.layers[layer.name].tolist() == \
            rtl.counters[layer.name]["cycles"].tolist(), layer.name


def test_streamer_formula_of_the_docstring():
    # InputStreamer: the last slot is issued Σ_b max(1, e_b) + 1 + (T − 1)(E + 1) cycles after
    # the first beat, and offered LATENCY = 3 cycles later (nothing downstream full).
    x = np.array([0, 3, 0, 0, 1, 2, 0, 0, 0, 5])
    for P in (1, 3, 10):
        for T in (1, 3):
            port = gc._Port()
            gc._streamer_run(x, P, T, port)
            e = [int(np.count_nonzero(x[b:b + P])) for b in range(0, len(x), P)]
            E = int(np.count_nonzero(x))
            last = sum(max(1, v) for v in e) + 1 + (T - 1) * (E + 1)
            assert port.e[-1] == last + hw_network.InputStreamer.LATENCY
            assert len(port.tokens) == T * (E + 1)


def test_report_json_and_options():
    net = random_network(1, kind="dense")
    x = random_inputs(net, 3, seed=2)
    rep = gc.network_cycles(net, x, pixels_per_beat=2)
    doc = rep.to_json()
    assert doc["per_image"] == rep.cycles.tolist()
    assert doc["layers"] == {k: v.tolist() for k, v in rep.layers.items()}
    assert doc["pixels_per_beat"] == 2 and doc["discharge"] == "parallel"
    assert rep.cycles.dtype == np.int64 and rep.cycles.shape == (3,)


@pytest.mark.parametrize("kw,msg", [
    (dict(discharge="fast"), "cycle model: discharge must be 'parallel' or 'serial', not "
                             "'fast'"),
    (dict(synapse="dsp"), "cycle model: synapse must be 'mul' or 'serial', not 'dsp'"),
    (dict(pixels_per_beat=0), "cycle model: pixels_per_beat must be an integer in 1 … 16 "
                              "(the input size), not 0"),
    (dict(fifo_depth=0), "cycle model: fifo_depth must be a positive integer or None, not 0"),
])
def test_bad_options_are_one_line(kw, msg):
    net = random_network(0, kind="dense", in_shape=(16,))
    with pytest.raises(MlsnnError) as e:
        gc.network_cycles(net, np.zeros((1, 16), np.int64), **kw)
    assert str(e.value) == msg


def test_conv_readout_with_lanes_is_unsupported():
    net = random_network(2, kind="conv", conv_readout=True)
    net = net.with_lanes({"conv_out": net.info("conv_out").out_shape[0]})
    if net.layer("conv_out").lanes == 1:
        pytest.skip("one output channel")
    assert gc.unsupported(net).startswith("layer 'conv_out': lanes > 1 on a conv2d readout")
    with pytest.raises(MlsnnError, match="lanes > 1 on a conv2d readout is not supported"):
        gc.network_cycles(net, random_inputs(net, 1))


# -- command line ------------------------------------------------------------------------------
def test_mlsnn_golden_json_carries_the_cycles(tmp_path, capsys):
    assert main(["random-network", "--seed", "4", "--kind", "conv", "-o",
                 str(tmp_path / "net")]) == 0
    capsys.readouterr()
    d = tmp_path / "net"
    assert main(["golden", "--ir", str(d / "network.json"), "--inputs",
                 str(d / "inputs.npz"), "--json", "--pixels-per-beat", "3"]) == 0
    doc = json.loads(capsys.readouterr().out)
    net = ir.load(d / "network.json")
    x = np.load(d / "inputs.npz")["x"]
    assert doc["cycles"] == gc.network_cycles(net, x, pixels_per_beat=3).to_json()
    assert main(["golden", "--ir", str(d), "--inputs", str(d / "inputs.npz")]) == 0
    out = capsys.readouterr().out
    rep = gc.network_cycles(net, x)
    assert (f"cycles per inference (cycle model, pixels per beat 1): mean "
            f"{rep.cycles.mean():.1f}, min {rep.cycles.min()}, max {rep.cycles.max()}") in out


def test_mlsnn_golden_bad_pixels_per_beat_is_one_line(tmp_path, capsys):
    assert main(["random-network", "--seed", "4", "--kind", "dense", "-o",
                 str(tmp_path / "net")]) == 0
    capsys.readouterr()
    d = tmp_path / "net"
    rc = main(["golden", "--ir", str(d), "--inputs", str(d / "inputs.npz"),
               "--pixels-per-beat", "0"])
    err = capsys.readouterr().err.strip().splitlines()
    assert rc != 0 and len(err) == 1 and "pixels_per_beat must be an integer" in err[0]

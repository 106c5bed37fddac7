# amaranth: UnusedElaboratable=no
"""The ``shifts`` counter (docs/bitserial.md §5, issue 15 §2): the potential doublings P ← 2P of
a bit-serial layer, one per neuron and doubling sweep.

Golden predicts (T − 1)·N_out per layer and image (``golden.reference.shifts``), the RTL
measures it at the doubling sweeps' write-backs (Amaranth simulator with random gaps, stalls
and shallow queues; one network on Icarus), T = 1 and T = 2 included; rate layers, joins and
pools count 0 on both sides; the counter's address keeps every earlier one in place; seed 003's
energy (``golden.energy.datta``) is the same from the measured counters as from the predicted.
"""

import numpy as np
import pytest

from golden.bitserial import from_multilevel
from golden.counters import GOLDEN_COUNTERS, HW_COUNTERS, SHIFT_COUNTERS
from golden.energy.datta import network_energy
from golden.fixtures import random_inputs, random_network
from golden.reference import run, shifts
from hw.layout import COUNTER_STRIDE
from test_bitserial import _chain, _rng_inputs, on_icarus


def _bitserial_nets():
    """(id, net): hand-built chains at T = 1, 2, 4 and random conversions at T = 1, 2, 3."""
    return [
        ("chain-T1", _chain(1, (5, 4, 3), (3,), seed=31)),
        ("chain-T2", _chain(2, (6, 5, 4, 3), (6, 4), seed=32)),
        ("chain-T4", _chain(4, (4, 3, 2), (16,), seed=33)),
        # from_multilevel: N = 2^k − 1 levels at T = 1 → bit-serial at T = k
        ("dense-T1", from_multilevel(random_network(34, kind="dense", timesteps=1, levels=1,
                                                    depth=2, max_neurons=12))),
        ("conv-T2", from_multilevel(random_network(35, kind="conv", timesteps=1, levels=3,
                                                   depth=2, max_neurons=12))),
        ("conv-T3", from_multilevel(random_network(36, kind="conv", timesteps=1, levels=7,
                                                   depth=1, max_neurons=12))),
    ]


NETS = _bitserial_nets()


def test_counter_order_keeps_the_old_addresses():
    assert SHIFT_COUNTERS == ("shifts",)
    assert HW_COUNTERS[:13] == ("ev_in", "ev_out", "w_rd", "p_rd", "p_wr", "b_rd", "syn_updates",
                                "syn_acc", "cycles", "saturations", "w_rd_words", "p_rd_words",
                                "p_wr_words")
    assert HW_COUNTERS.index("shifts") == 13
    assert len(HW_COUNTERS) <= COUNTER_STRIDE
    assert GOLDEN_COUNTERS[-1] == "shifts"
    assert set(GOLDEN_COUNTERS) <= set(HW_COUNTERS)


@pytest.mark.parametrize("name,net", NETS, ids=[n for n, _ in NETS])
def test_golden_predicts_the_doublings(name, net):
    x = random_inputs(net, 3, seed=7)
    res = run(net, x)
    T = net.timesteps
    for layer in net.layers:
        want = (T - 1) * net.info(layer.name).n_out
        assert shifts(net, layer.name) == want
        assert res.counters[layer.name]["shifts"].tolist() == [want] * 3, layer.name


@pytest.mark.parametrize("seed,kw", [(41, dict(kind="dense")),
                                     (42, dict(kind="residual", join="barrier", pool=True)),
                                     (43, dict(kind="residual", join="sew")),
                                     (44, dict(kind="conv", pool=True, timesteps=4))])
def test_rate_networks_count_no_shifts(seed, kw):
    net = random_network(seed, max_neurons=16, **kw)
    res = run(net, random_inputs(net, 2, seed=seed))
    for layer in net.layers:
        assert shifts(net, layer.name) == 0
        assert res.counters[layer.name]["shifts"].tolist() == [0, 0], layer.name


@pytest.mark.parametrize("name,net", NETS, ids=[n for n, _ in NETS])
def test_rtl_measures_the_doublings(name, net):
    from sim.amaranth_run import run_network
    from sim.scoreboard import compare
    x = random_inputs(net, 2, seed=5)
    golden = run(net, x)
    rtl = run_network(net, x, seed=5, gap=0.2, stall=0.3, fifo_depth=2)
    assert compare(net, golden, rtl) == []
    for layer in net.layers:
        assert rtl.counters[layer.name]["shifts"].tolist() == \
            golden.counters[layer.name]["shifts"].tolist(), layer.name
    # Seed 003's energy from the measured counters is the predicted one, term by term.
    assert network_energy(net, rtl) == network_energy(net, golden)
    assert network_energy(net, rtl, bits=8) == network_energy(net, golden, bits=8)


def test_rtl_counts_across_inferences_and_clear():
    """The counter accumulates over inferences until ``clear`` (the top reads it per image
    and clears; two images of one batch, then a fresh batch, give the same counts)."""
    from sim.amaranth_run import run_network
    net = _chain(3, (5, 4, 3), (8,), seed=37)
    x = _rng_inputs(net, 3, seed=37)
    rtl = run_network(net, x, seed=1)
    assert rtl.counters["l0"]["shifts"].tolist() == [2 * 4] * 3
    assert rtl.counters["ro"]["shifts"].tolist() == [2 * 3] * 3


@pytest.mark.parametrize("seed,join,kinds", [(42, "barrier", {"conv2d", "barrier", "maxpool2d"}),
                                             (43, "sew", {"conv2d", "sew"})])
def test_rate_cores_report_zero(seed, join, kinds):
    from sim.amaranth_run import run_network
    net = random_network(seed, kind="residual", join=join, pool=seed == 42, max_neurons=16)
    assert kinds <= {layer.kind for layer in net.layers}
    x = random_inputs(net, 2, seed=seed)
    rtl = run_network(net, x, seed=2, gap=0.1, stall=0.1)
    for layer in net.layers:
        assert rtl.counters[layer.name]["shifts"].tolist() == [0, 0], layer.name


def test_only_bitserial_cores_build_the_counter():
    from hw.layer import LayerCore
    # Only a bit-serial core builds the counter (``ctr_shifts``); a rate core's is a constant.
    from amaranth.back import rtlil
    dense = random_network(41, kind="dense", max_neurons=16)
    rate = LayerCore.from_network(dense, dense.layers[0].name)
    bits = LayerCore.from_network(NETS[1][1], "l0")
    assert "ctr_shifts" not in rtlil.convert(rate)
    assert "ctr_shifts" in rtlil.convert(bits)


def test_shifts_over_the_uart():
    """The board protocol sends ``shifts`` as counter 13 of every layer (docs/board.md)."""
    from flows.host import Board, SimTransport
    from hw.board import COUNTER_NAMES, BoardTop
    net = _chain(2, (4, 3, 2), (4,), seed=38)
    board = Board(SimTransport(BoardTop(net, clk_freq=1e6, divisor=4)))
    assert board.info.counters_per_layer == len(COUNTER_NAMES) == 14
    x = _rng_inputs(net, 2, seed=38)
    golden = run(net, x)
    got = board.run(x)
    for li, layer in enumerate(net.layers):
        for c in GOLDEN_COUNTERS:
            assert got.counters[li][c].tolist() == golden.counters[layer.name][c].tolist(), \
                (layer.name, c)
    assert [got.counters[li]["shifts"].tolist() for li in range(2)] == [[3, 3], [2, 2]]
    # one counter by address (C): the last image's, since run() clears before each image
    assert [board.counter(li, "shifts") for li in range(2)] == [3, 2]


@pytest.mark.cocotb
def test_shifts_on_icarus(tmp_path):
    net = NETS[1][1]                    # T = 2, two bit-serial layers and the readout
    _, rtl = on_icarus(net, random_inputs(net, 2, seed=3), tmp_path)
    for layer in net.layers:
        assert rtl.counters[layer.name]["shifts"].tolist() == \
            [(net.timesteps - 1) * net.info(layer.name).n_out] * 2, layer.name

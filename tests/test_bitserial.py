# amaranth: UnusedElaboratable=no
"""Bit-serial coding (docs/bitserial.md, issue 15 §2): ``coding="bitserial"`` on dense and conv2d.

Golden semantics on hand-computed examples (``golden.neuron.bitserial_if`` and the reference),
the bit-serial network against a QCFS ANN with Q = 2^T − 1 (and the seed's Q = 2^T form with
the clip at 2^T − 1) on integer inputs, against its multi-level T = 1 twin
(``golden.bitserial.from_multilevel``), counters, the IR field (JSON round trip, one-line
errors), and the layer cores and networks bit-exact against golden on the Amaranth simulator.
"""

import dataclasses
import json
import os

import numpy as np
import pytest
import torch

import golden.cycles as gc
from golden import ir
from golden.bitserial import bits_of, from_multilevel
from golden.convert import clip_floor
from golden.errors import MlsnnError
from golden.fixtures import random_inputs, random_network
from golden.ir import Conv2d, Dense, InputSpec, Join, Network
from golden.neuron import bitserial_if
from golden.reference import bitserial_fire, run, shifts
from golden.train import qcfs
from test_leak import _through_file


# -- golden semantics, by hand ----------------------------------------------------------------
# (c(1..T), θ, v0, b) → (bits MSB first, U). acc = Horner of c; U = acc + b + v0; thresholds
# θ·2^(T−1), …, θ.
HAND = [
    # acc = 3·4 + 0·2 + 1 = 13, U = 15 = 3·4 + 3: q = 3 = 011 (16 > 15; 8 ≤ 15 → 7; 4 ≤ 7 → 3).
    ([3, 0, 1], 4, 2, 0, ([0, 1, 1], 15)),
    # U = 2·4 + 1 = 9 ≥ 8 → 1, R = 1 < 4 → 0: q = 2 = 10 (binary).
    ([4, 1], 4, 0, 0, ([1, 0], 9)),
    # Rounding: U = acc + θ//2; acc = 5 with θ = 4: 7 → q = 1 (5/4 = 1.25 rounds to 1) ...
    ([2, 1], 4, 2, 0, ([0, 1], 7)),
    # ... acc = 6: 8 → q = 2 (1.5 rounds up).
    ([3, 0], 4, 2, 0, ([1, 0], 8)),
    # Clip at 2^T − 1: U = 100 ≥ 3·θ·... every bit fires, q = 3 (T = 2).
    ([50, 0], 4, 0, 0, ([1, 1], 100)),
    # Negative U never fires; the bias enters once: acc = 2·1 + 1 = 3, U = 3 − 8 = −5.
    ([1, 1], 2, 0, -8, ([0, 0], -5)),
    # Negative current in an early bit-plane, positive later: acc = −2·4 + 7·2 + 3 = 9.
    ([-2, 7, 3], 3, 1, 0, ([0, 1, 1], 10)),
    # T = 1 is a binary neuron with threshold θ: U = 5 + 0 + 0 ≥ 5.
    ([5], 5, 0, 0, ([1], 5)),
]


@pytest.mark.parametrize("currents,theta,v0,bias,want", HAND)
def test_bitserial_if_by_hand(currents, theta, v0, bias, want):
    bits, u = bitserial_if(currents, theta, v0, bias)
    assert (bits, u) == want
    T = len(currents)
    q = sum(s << (T - 1 - t) for t, s in enumerate(bits))
    assert q == min(max(u // theta, 0), (1 << T) - 1)


def test_bitserial_fire_is_clip_floor():
    g = torch.Generator().manual_seed(1)
    for T in (1, 2, 3, 4, 6):
        for theta in (1, 3, 4, 7, 16):
            u = torch.randint(-50, theta * (1 << T) + 50, (400,), generator=g).double()
            bits = bitserial_fire(u, theta, T)
            q = sum(b * (1 << (T - 1 - t)) for t, b in enumerate(bits))
            want = torch.clamp(torch.floor(u / theta), 0, (1 << T) - 1)
            assert q.tolist() == want.tolist()
            assert all(set(b.tolist()) <= {0.0, 1.0} for b in bits)


def _chain(T, sizes, thetas, *, seed, v0=None, in_bits=4, kind="dense"):
    """input → bit-serial dense layers → bit-serial readout; v0 = θ // 2 (round to nearest)."""
    rng = np.random.default_rng(seed)
    layers, prev = [], "input"
    for k, (n_in, n_out) in enumerate(zip(sizes, sizes[1:])):
        last = k == len(sizes) - 2
        theta = thetas[k] if not last else 1
        layers.append(Dense(
            name=f"l{k}" if not last else "ro", inputs=(prev,), threshold=theta, levels=1,
            weight=rng.integers(-5, 8, size=(n_in, n_out)),
            bias=rng.integers(-20, 20, size=n_out),
            v0=(theta // 2 if v0 is None else v0) if not last else 0,
            readout=last, coding="bitserial"))
        prev = layers[-1].name
    return Network(input=InputSpec(shape=(sizes[0],), in_bits=in_bits), timesteps=T,
                   layers=tuple(layers))


def _rng_inputs(net, batch, seed):
    return np.random.default_rng(seed).integers(0, net.input.zmax + 1,
                                                size=(batch,) + net.input.shape)


def _values(bits):
    """The integers a bit-serial layer emits: Σ_t s(t)·2^(T−1−t) over its [T, B, n] events."""
    T = bits.shape[0]
    return sum(bits[t].astype(np.int64) << (T - 1 - t) for t in range(T))


def _calibrated(T, sizes, seed, x):
    """:func:`_chain` with power-of-two thresholds near the 70th percentile of h / (2^T − 1),
    so that every layer has silent, middle and clipped neurons."""
    net = _chain(T, sizes, (1,) * (len(sizes) - 2), seed=seed)
    a = torch.from_numpy(x).double() * ((1 << T) - 1)
    thetas = []
    for layer in net.layers[:-1]:
        h = a @ torch.from_numpy(layer.weight).double() + torch.from_numpy(layer.bias).double()
        theta = 1 << max(0, int(np.log2(max(1.0, float(np.percentile(h, 70)) / ((1 << T) - 1)))))
        thetas.append(theta)
        a = torch.clamp(torch.floor(h / theta + 0.5), 0, (1 << T) - 1)
    return _chain(T, sizes, thetas, seed=seed)


@pytest.mark.parametrize("T", [2, 3, 4, 5])
def test_network_equals_qcfs_ann(T):
    """The bit-serial SNN computes the activation-quantized ANN exactly (seed 003 Theorem II,
    corrected): on integer inputs, layer by layer, QCFS with Q = 2^T − 1 and λ = Q·θ on the
    layer's integer pre-activation h = (2^T − 1)·W·x + b (first layer: the pixels are
    presented at all T timesteps) or W·a + b (hidden: a the previous layer's integers). θ are
    powers of two, so the float QCFS is exact."""
    x = np.random.default_rng(T).integers(0, 16, size=(64, 12))
    net = _calibrated(T, (12, 9, 7, 5), T, x)
    res = run(net, x)
    Q = (1 << T) - 1
    a = torch.from_numpy(x).double() * Q
    for layer in net.layers:
        h = a @ torch.from_numpy(layer.weight).double() + torch.from_numpy(layer.bias).double()
        if layer.readout:
            assert res.readout.tolist() == h.to(torch.int64).tolist()
            break
        theta = layer.threshold
        q = qcfs(h, torch.tensor(float(Q * theta), dtype=torch.float64), Q) / theta
        assert _values(res.events[layer.name]).tolist() == q.to(torch.int64).tolist()
        # The same with the converter's ClipFloor (shift 1/2 = round to nearest) ...
        assert torch.equal(clip_floor(h, Q, Q * theta, 0.5), q * theta)
        # ... and seed 003's form with the corrections: Q = 2^T steps of λ/2^T = θ, the
        # rounding offset θ_seed/2^(T+1) (θ_seed = λ = 2^T·θ), the clip at 2^T − 1.
        lam = float(theta << T)
        seed_q = torch.clamp(torch.floor((h + lam / 2 ** (T + 1)) / theta), 0, (1 << T) - 1)
        assert seed_q.tolist() == q.tolist()
        assert (q > 0).any() and (q < Q).any() and (q == Q).any()
        a = q


def test_odd_threshold_rounds_like_qcfs():
    # v0 = θ // 2 rounds half up for any θ: floor((h + θ//2)/θ) = floor(h/θ + 1/2) =
    # floor((2h + θ) / 2θ) on integers h, also for odd θ (2h + θ is then odd).
    T = 4
    h = list(range(-40, 260))
    for theta in (1, 3, 5, 6, 7, 9, 12):
        bits, _ = bitserial_if([torch.tensor(h)] + [torch.zeros(len(h), dtype=torch.int64)] *
                               (T - 1), theta, theta // 2)
        got = _values(torch.stack(bits).numpy())
        # h enters at t = 1, so it weighs 2^(T−1): the neuron sees 8·h.
        want = [min(max((2 * 8 * v + theta) // (2 * theta), 0), 15) for v in h]
        assert got.tolist() == want


@pytest.mark.parametrize("kind,seed", [("dense", 1), ("dense", 2), ("conv", 3), ("conv", 4)])
def test_from_multilevel_equals_the_multilevel_twin(kind, seed):
    base = random_network(seed, kind=kind, timesteps=1, levels=15, depth=2, max_neurons=24)
    twin = from_multilevel(base)
    assert twin.timesteps == 4 and all(l.coding == "bitserial" for l in twin.layers)
    x = random_inputs(base, 6, seed=seed)
    want, got = run(base, x), run(twin, x)
    assert got.readout.tolist() == want.readout.tolist()
    assert got.predictions.tolist() == want.predictions.tolist()
    fired = False
    for layer in base.layers[:-1]:
        z = want.events[layer.name][0]
        assert _values(got.events[layer.name]).tolist() == z.tolist()
        fired |= bool((z > 1).any())
    assert fired
    # Events: one per set bit; the synaptic updates follow (binary events, T timesteps).
    for layer in base.layers[:-1]:
        bits = got.events[layer.name]
        assert got.counters[layer.name]["ev_out"].tolist() == \
            (bits > 0).sum(axis=(0, 2)).tolist()


def test_counters_and_shifts():
    T = 3
    net = _chain(T, (6, 5, 4), (40,), seed=9)
    x = _rng_inputs(net, 4, seed=9)
    res = run(net, x)
    for layer in net.layers:
        info = net.info(layer.name)
        c = res.counters[layer.name]
        upd = c["syn_updates"]
        sweeps = T if layer.readout else 2 * T - 1
        assert c["p_rd"].tolist() == (upd + sweeps * info.n_out).tolist()
        assert c["p_wr"].tolist() == c["p_rd"].tolist()
        assert c["b_rd"].tolist() == [info.n_out] * 4
        assert c["w_rd"].tolist() == upd.tolist()
        assert shifts(net, layer.name) == (T - 1) * info.n_out
        assert c["shifts"].tolist() == [(T - 1) * info.n_out] * 4     # the golden counter
    # The first layer sees the pixels at every timestep, binary events after it.
    assert res.counters["l0"]["ev_in"].tolist() == (T * (x > 0).sum(1)).tolist()
    assert res.counters["ro"]["syn_acc"].tolist() == res.counters["ro"]["syn_updates"].tolist()


def test_rate_layers_count_no_shifts():
    net = random_network(5, kind="dense", depth=1)
    assert all(shifts(net, l.name) == 0 for l in net.layers)
    res = run(net, random_inputs(net, 2, seed=5))
    assert all(res.counters[l.name]["shifts"].tolist() == [0, 0] for l in net.layers)
    assert all(l.coding == "rate" for l in net.layers)


# -- IR field ----------------------------------------------------------------------------------
def test_json_round_trip_with_and_without_the_field(tmp_path):
    net = from_multilevel(random_network(7, kind="conv", timesteps=1, levels=7, depth=2))
    ir.save(net, tmp_path / "a")
    back = ir.load(tmp_path / "a")
    assert [l.coding for l in back.layers] == ["bitserial"] * len(net.layers)
    assert back.to_json() == net.to_json()
    x = random_inputs(net, 3, seed=0)
    assert run(back, x).readout.tolist() == run(net, x).readout.tolist()
    # A file without the field reads as rate everywhere.
    rate = random_network(7, kind="conv", depth=2)
    ir.save(rate, tmp_path / "b")
    doc = json.loads((tmp_path / "b" / "network.json").read_text())
    assert doc["layers"][0]["coding"] == "rate"
    for d in doc["layers"]:
        d.pop("coding", None)
    with np.load(tmp_path / "b" / "network.npz") as z:
        old = ir.from_json(doc, {k: z[k] for k in z.files})
    assert all(l.coding == "rate" for l in old.layers if hasattr(l, "coding"))
    assert old.to_json() == rate.to_json()


def _one(msg, fn):
    with pytest.raises(MlsnnError) as e:
        fn()
    assert str(e.value) == msg and "\n" not in str(e.value)


@pytest.mark.parametrize("value", ["serial", 1, None, "Rate"])
def test_bad_coding_is_one_line(value, tmp_path):
    net = _chain(2, (3, 2, 2), (4,), seed=0)
    msg = f"layer 'l0': field 'coding' must be 'rate' or 'bitserial', not {value!r}"
    _one(msg, lambda: dataclasses.replace(net.layers[0], coding=value))
    assert _through_file(net, tmp_path, 0, "coding", value) == msg


def test_bad_combinations_are_one_line(tmp_path):
    net = _chain(2, (3, 2, 2), (4,), seed=0)
    l0, ro = net.layers
    _one("layer 'l0': a bit-serial layer emits binary spikes: levels must be 1, not 3",
         lambda: dataclasses.replace(l0, levels=3))
    assert _through_file(net, tmp_path, 0, "levels", 3) == \
        "layer 'l0': a bit-serial layer emits binary spikes: levels must be 1, not 3"
    _one("layer 'l0': a bit-serial layer fires by subtraction: reset must be 'soft', not 'hard'",
         lambda: dataclasses.replace(l0, reset="hard"))
    _one("layer 'l0': a bit-serial layer has no leak (leak 2); give it leak 0",
         lambda: dataclasses.replace(l0, leak=2))
    # A rate layer fed by a bit-serial one, and the other way round.
    _one("layer 'ro': reads the bit-serial layer 'l0', so it must be a bit-serial dense or "
         "conv2d layer, not a rate-coded layer",
         lambda: net.replace(layers=(l0, dataclasses.replace(ro, coding="rate"))))
    _one("layer 'ro': a bit-serial layer must read the network input or a bit-serial layer, "
         "not the rate-coded layer 'l0'",
         lambda: net.replace(layers=(dataclasses.replace(l0, coding="rate"), ro)))
    # Forced narrow widths do not exist for bit-serial layers.
    safe = net.info("l0").safe_width
    _one(f"layer 'l0': a bit-serial layer cannot saturate: its potential_width ({safe - 1}) "
         f"must be at least its safe width {safe}",
         lambda: net.replace(layers=(dataclasses.replace(l0, potential_width=safe - 1), ro)))


def test_join_after_a_bitserial_layer_is_one_line():
    rng = np.random.default_rng(0)
    a = Dense(name="a", inputs=("input",), threshold=4, levels=1, weight=rng.integers(
        -3, 4, size=(4, 4)), bias=np.zeros(4, np.int64), coding="bitserial")
    j = Join(name="j", inputs=("input", "a"), mode="sew")
    ro = Dense(name="ro", inputs=("j",), threshold=1, levels=1,
               weight=np.ones((4, 2), np.int64), bias=np.zeros(2, np.int64), readout=True)
    _one("layer 'j': reads the bit-serial layer 'a', so it must be a bit-serial dense or "
         "conv2d layer, not a sew",
         lambda: Network(input=InputSpec(shape=(4,)), timesteps=2, layers=(a, j, ro)))


def test_from_multilevel_errors_are_one_line():
    base = random_network(3, kind="dense", timesteps=1, levels=15, depth=2)
    assert bits_of(15) == 4 and bits_of(1) == 1 and bits_of(4) is None
    _one("from_multilevel: the multi-level network must have timesteps 1, not 2",
         lambda: from_multilevel(base.replace(timesteps=2)))
    odd = random_network(3, kind="dense", timesteps=1, levels=4, depth=2)
    _one("from_multilevel: levels must be 2^k - 1 (1, 3, 7, 15, ...) to fit k binary "
         "timesteps, not 4", lambda: from_multilevel(odd))
    res = random_network(4, kind="residual", join="barrier", timesteps=1, levels=3, depth=1)
    j = next(l for l in res.layers if l.kind == "barrier")
    _one(f"from_multilevel: layer '{j.name}' (barrier) has no bit-serial form: only dense "
         f"and conv2d layers do", lambda: from_multilevel(res))


# -- hardware ---------------------------------------------------------------------------------
@pytest.mark.parametrize("kind,seed,levels,discharge", [("dense", 11, 15, "parallel"),
                                                        ("dense", 12, 3, "serial"),
                                                        ("conv", 13, 7, "parallel"),
                                                        ("conv", 14, 15, "parallel"),
                                                        ("dense", 15, 1, "parallel")])
def test_layer_cores_bit_exact(kind, seed, levels, discharge):
    from test_hw_layer import check_layer
    net = from_multilevel(random_network(seed, kind=kind, timesteps=1, levels=levels, depth=2,
                                         max_neurons=16))
    x = random_inputs(net, 2, seed=seed)
    golden = run(net, x)
    assert any((golden.events[l.name] > 0).any() for l in net.layers[:-1])
    for layer in net.layers:
        check_layer(net, layer.name, x, seed=seed, golden=golden, discharge=discharge)


@pytest.mark.parametrize("kind,seed,synapse", [("dense", 21, "mul"), ("conv", 22, "mul"),
                                               ("conv", 24, "serial")])
def test_network_bit_exact_and_cycles_exact(kind, seed, synapse):
    from sim.amaranth_run import run_network
    from sim.scoreboard import compare
    net = from_multilevel(random_network(seed, kind=kind, timesteps=1, levels=15, depth=2,
                                         max_neurons=16))
    x = random_inputs(net, 2, seed=seed)
    golden = run(net, x)
    cycles = gc.network_cycles(net, x, golden=golden, synapse=synapse)
    # Random gaps, stalls and depth-2 queues, then a calm run whose cycles the model predicts.
    for opts in (dict(seed=seed, gap=0.2, stall=0.2, fifo_depth=2), {}):
        rtl = run_network(net, x, synapse=synapse, **opts)
        assert compare(net, golden, rtl) == []
        assert rtl.predictions.tolist() == golden.predictions.tolist()
    assert cycles.cycles.tolist() == rtl.cycles.tolist()
    for layer in net.layers:
        assert cycles.layers[layer.name].tolist() == \
            rtl.counters[layer.name]["cycles"].tolist(), layer.name


def on_icarus(net, x, build_dir, *, seed=3):
    """Run ``x`` through ``net``'s exported Verilog on Icarus (random gaps and stalls), check
    every event and counter against golden, and return ``(golden, rtl)``."""
    from sim.icarus_run import run_network_icarus
    from sim.scoreboard import compare
    golden = run(net, x)
    rtl = run_network_icarus(net, x, seed=seed, gap=0.2, stall=0.2, golden=golden,
                             build_dir=str(build_dir))
    assert rtl.extra["mismatches"] == []
    assert compare(net, golden, rtl) == []
    return golden, rtl


@pytest.mark.cocotb
def test_bitserial_network_on_icarus(tmp_path):
    net = from_multilevel(random_network(23, kind="conv", timesteps=1, levels=7, depth=2,
                                         max_neurons=12))
    on_icarus(net, random_inputs(net, 2, seed=3), tmp_path)


def test_hardware_errors_are_one_line():
    from hw.layer import LayerCore
    from hw.neuron import BitSerialUnit
    net = _chain(2, (4, 4, 2), (4,), seed=0)
    wide = net.replace(layers=(dataclasses.replace(net.layers[0], lanes=2), net.layers[1]))
    with pytest.raises(ValueError) as e:
        LayerCore.from_network(wide, "l0")
    assert str(e.value) == ("layer 'l0': lanes > 1 on a bit-serial layer is not supported "
                            "(lanes 2); use lanes 1")
    with pytest.raises(ValueError) as e:
        BitSerialUnit(threshold=40, timesteps=3, potential_width=8)
    assert str(e.value) == "threshold x 2^(timesteps-1) (160) does not fit the potential width 8"
    with pytest.raises(ValueError) as e:
        BitSerialUnit(threshold=4, timesteps=3, potential_width=8, v0=200)
    assert str(e.value) == "v0 (200) does not fit the potential width 8 ([-128, 127])"


# -- energy (seed 003, Table 4) ----------------------------------------------------------------
def test_datta_energy_counts_by_hand():
    from golden.energy.datta import TABLE_4, network_energy
    T = 3
    net = _chain(T, (6, 5, 4), (40,), seed=9)
    x = _rng_inputs(net, 4, seed=9)
    res = run(net, x)
    e = network_energy(net, res, bits=8)
    l0, ro = e["layers"]["l0"], e["layers"]["ro"]
    c0 = {k: float(v.mean()) for k, v in res.counters["l0"].items()}
    cr = {k: float(v.mean()) for k, v in res.counters["ro"].items()}
    # l0 reads the pixels: one multiplication per update; bias once per neuron; one reset per
    # spike; (T − 1)·5 doublings and T threshold shifts; T·5 comparisons.
    assert l0["ops"] == {"mul": c0["syn_updates"], "add": 5 + c0["ev_out"],
                         "shift": (T - 1) * 5 + T, "compare": T * 5}
    assert ro["ops"] == {"mul": 0.0, "add": cr["syn_acc"] + 4, "shift": (T - 1) * 4,
                         "compare": 0.0}
    assert l0["pj"]["shift"] == pytest.approx(((T - 1) * 5 + T) * TABLE_4["shift"][8])
    assert TABLE_4 == {"mul": {32: 3.1, 8: 0.2}, "add": {32: 0.1, 8: 0.03},
                       "shift": {32: 0.13, 8: 0.024}, "compare": {32: 0.08, 8: 0.03}}
    assert e["total_pj"] == pytest.approx(e["compute_pj"] + e["memory_pj"])
    _one("datta energy: bits must be 8 or 32 (the columns of seed 003's Table 4), not 16",
         lambda: network_energy(net, res, bits=16))


def test_nir_export_is_one_line():
    pytest.importorskip("nir")
    from golden.nir_io import to_nir
    net = _chain(2, (4, 4, 2), (4,), seed=0)
    _one("layer 'l0': a bit-serial layer (docs/bitserial.md) has no NIR neuron; only "
         "rate-coded networks are exported", lambda: to_nir(net))


def test_early_exit_with_bitserial_layers_is_one_line():
    net = _chain(3, [4, 3, 2], [5, 1], seed=5)
    _one("network: field 'early_exit' with bit-serial layers is not supported: a bit-serial "
         "layer fires only after all T input timesteps, so there is no readout to judge "
         "before t = T", lambda: net.replace(early_exit={"alpha": [1, 1]}))

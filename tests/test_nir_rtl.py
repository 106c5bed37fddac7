"""The snnTorch example of docs/import.md end to end on the RTL (issue 14 §1).

``examples/snntorch_digits.py`` (imported, so the documented script is the tested one) trains a
64-16-10 MLP of ``snn.Leaky(beta=1, reset_mechanism="subtract")`` neurons on digits and writes
it with ``snntorch.export_to_nir``; ``mlsnn import`` maps it onto the integer IR (its Python API
gives the same network); the float NIR graph and the integer golden model agree with snnTorch's
predictions (bounds argued from float precision and from random roundings of the weights); the
exported Verilog on Icarus (cocotb) is bit-exact with the golden model on a handful of test
images: predictions, readout potentials, every event and every SPEC §5 counter, its cycles
those of the cycle model (``golden/cycles.py``)."""

import contextlib
import io
import json
import os
import shlex
import sys

import numpy as np
import pytest

pytest.importorskip("snntorch")
pytest.importorskip("nir")

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from examples import snntorch_digits as ex                    # noqa: E402
from flows import cli                                         # noqa: E402
from golden import ir, nir_io                                 # noqa: E402
from golden.counters import SPEC_COUNTERS                     # noqa: E402
from golden.cycles import network_cycles                      # noqa: E402
from golden.datasets import load_dataset                      # noqa: E402
from golden.reference import run                              # noqa: E402
from sim.icarus_run import run_network_icarus                 # noqa: E402
from sim.scoreboard import compare                            # noqa: E402
from test_nir import _same                                    # noqa: E402

T = 2
#: Test images simulated on Icarus: through `mlsnn simulate`, and with random backpressure.
CLI_IMAGES, BP_IMAGES = 4, slice(4, 8)


def _captured(main, argv):
    """``main(argv)`` in process: (exit status, what it printed on stdout)."""
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        status = main(argv)
    return status, out.getvalue()


@pytest.fixture(scope="module")
def example(tmp_path_factory):
    """The example script run as documented, then the ``mlsnn import`` it prints."""
    d = str(tmp_path_factory.mktemp("snntorch_digits"))
    status, text = _captured(ex.main, ["-o", d])
    assert status == 0 and "snnTorch test accuracy" in text
    imp, sim, synth = ex.commands(d)                      # the defaults: what main printed
    for cmd in (imp, sim, synth):
        assert "  " + shlex.join(cmd) + "\n" in text
    assert imp[:2] == ["mlsnn", "import"] and imp[imp.index("-T") + 1] == str(T)
    assert sim[:2] == ["mlsnn", "simulate"] and sim[sim.index("--images") + 1] == str(CLI_IMAGES)
    assert synth[:2] == ["mlsnn", "synth"]
    status, out = _captured(cli.main, imp[1:] + ["--json"])
    assert status == 0
    with np.load(os.path.join(d, "x.npz")) as f:
        x, y = f["x"], f["y"]
    return {"doc": json.loads(out), "net": ir.load(os.path.join(d, "net")),
            "graph": nir_io.read(os.path.join(d, "digits.nir")), "x": x, "y": y,
            "data": load_dataset("digits"), "simulate": sim, "build": os.path.join(d, "build"),
            "snn": np.load(os.path.join(d, "snntorch_predictions.npy"))}


def test_export_and_import(example):
    """The pitfalls of export_to_nir as docs/import.md states them, and the IR they give."""
    g, net, data = example["graph"], example["net"], example["data"]
    assert (ex.INPUT_SCALE, ex.IN_BITS) == (data.input_scale, data.in_bits)
    assert np.array_equal(example["x"], data.x_test.reshape(len(data.x_test), -1))
    kinds = {k: type(n).__name__ for k, n in g.nodes.items()}
    assert kinds == {"input": "Input", "fc": "Affine", "lif": "LIF", "readout": "Affine",
                     "output": "Output"}
    lif = g.nodes["lif"]
    # beta = 1 is tau = r = inf; the subtraction is lost: v_reset = 0 (a hard reset in NIR).
    assert np.isinf(lif.tau).all() and np.isinf(lif.r).all() and lif.tau.shape == (16,)
    assert (lif.v_reset == 0).all() and (lif.v_threshold == 1).all() and (lif.v_leak == 0).all()
    assert list(g.nodes["input"].input_type["input"]) == [64]        # ignore_dims=[0]
    fc, readout = net.layers
    assert (fc.name, fc.kind, fc.reset, fc.levels, fc.weight.shape) == \
        ("fc", "dense", "soft", 1, (64, 16))
    assert (readout.name, readout.readout, readout.weight.shape) == ("readout", True, (16, 10))
    assert (net.timesteps, net.input.shape, net.input.in_bits) == (T, (64,), 5)
    # The Python API gives the network the command wrote.
    api, report = nir_io.from_nir(example["graph"], timesteps=T, reset="soft", in_bits=5,
                                  input_scale=ex.INPUT_SCALE, name="digits")
    _same(api, net)
    assert [(l["name"], l["q"], l["clipped"]) for l in example["doc"]["layers"]] == \
        [(n, report[n]["q"], 0) for n in ("fc", "readout")]


def _predictions(graph, x, timesteps, q=None, rng=None):
    """The float NIR graph's predictions on integer pixels ``x``, recomputed in numpy (the
    graph is Affine → LIF(beta=1, read with a soft reset) → Affine, logits summed over T).

    With ``q`` (the import's layer factors) and ``rng``, every weight and bias first moves by a
    random fraction in [−1/2, 1/2) of one quantization step (1/(Q·unit) for a weight, 1/Q for a
    bias): what rounding to the integer grid does, with random instead of nearest rounding."""
    layers = []
    for name, unit in (("fc", ex.INPUT_SCALE), ("readout", 1.0)):
        w, b = (np.asarray(getattr(graph.nodes[name], a), np.float64) for a in ("weight", "bias"))
        if rng is not None:
            w = w + rng.uniform(-0.5, 0.5, w.shape) / (q[name] * unit)
            b = b + rng.uniform(-0.5, 0.5, b.shape) / q[name]
        layers.append((w, b))
    (w1, b1), (w2, b2) = layers
    theta = float(graph.nodes["lif"].v_threshold[0])
    cur = x.astype(np.float64) * ex.INPUT_SCALE @ w1.T + b1
    v, logits = np.zeros_like(cur), 0.0
    for _ in range(timesteps):
        v = v + cur
        z = (v > theta).astype(np.float64)
        v = v - z * theta
        logits = logits + z @ w2.T + b2
    return np.argmax(logits, axis=1)


#: Random roundings of the float graph that bound what golden's rounding may cost.
DRAWS = 20


def test_golden_agrees_with_snntorch(example):
    """Agreement on the 450 test images, with bounds that are argued, not fitted.

    * float NIR graph vs snnTorch: the same arithmetic in float64 vs float32, so only a
      potential within ~1e-6 of a threshold can differ: ≥ 99 %;
    * golden vs float graph: golden is the float graph with every weight and bias rounded to
      the nearest step of its layer's grid (no clipping, and a threshold error of 0: θ·Q is an
      integer). DRAWS random roundings of the same size show how many images such a move can
      flip; golden must do at least as well as the worst of them less one point, and that worst
      draw must keep 95 % (the trained network is robust to its 8-bit grid);
    * golden vs snnTorch then follows by the union bound."""
    doc, snn, x, y = example["doc"], example["snn"], example["x"], example["y"]
    cmp = doc["comparison"]
    fl, gold = np.array(cmp["float_predictions"]), np.array(cmp["golden_predictions"])
    assert cmp["n"] == len(snn) == len(x) == 450
    assert [(l["clipped"], l["threshold_error"]) for l in doc["layers"]] == [(0, 0.0), (0, None)]
    graph = example["graph"]
    assert _predictions(graph, x, T).tolist() == fl.tolist()     # the numpy pass is the graph
    q, rng = {l["name"]: l["q"] for l in doc["layers"]}, np.random.default_rng(14)
    drawn = [int((_predictions(graph, x, T, q, rng) != fl).sum()) for _ in range(DRAWS)]
    n = len(x)
    # Images on which two predictions differ (integers: the bounds are compared exactly).
    float_snn, golden_float, golden_snn = (int((a != b).sum()) for a, b in
                                           ((fl, snn), (gold, fl), (gold, snn)))
    snn_right, golden_right = int((snn == y).sum()), int((gold == y).sum())
    print(f"\nsnnTorch accuracy {snn_right}/{n}, golden {golden_right}/{n}; predictions "
          f"differ: float vs snnTorch {float_snn}, golden vs float {golden_float} (random "
          f"roundings {min(drawn)}..{max(drawn)}), golden vs snnTorch {golden_snn}")
    assert 100 * float_snn <= n                          # ≥ 99 % agree
    assert 100 * max(drawn) <= 5 * n                     # every draw keeps ≥ 95 %
    assert 100 * golden_float <= 100 * max(drawn) + n    # at most the worst draw + 1 point
    assert golden_snn <= golden_float + float_snn        # union bound
    assert 10 * snn_right >= 9 * n and 100 * golden_right >= 100 * snn_right - 2 * n


@pytest.mark.cocotb
def test_mlsnn_simulate_on_icarus(example):
    """The documented ``mlsnn simulate --sim icarus`` on the first test images: MATCH, and its
    summed counters and cycles equal golden's and the cycle model's."""
    net, x = example["net"], example["x"][:CLI_IMAGES]
    status, out = _captured(cli.main, example["simulate"][1:] +
                            ["--json", "--build-dir", example["build"]])
    doc = json.loads(out)
    assert status == 0 and doc["status"] == "match" and doc["images"] == CLI_IMAGES
    golden = run(net, x)
    assert doc["predictions"] == golden.predictions.tolist()
    for layer in doc["layers"]:
        assert {c: layer["counters"][c] for c in SPEC_COUNTERS} == \
            {c: v for c, v in golden.totals(layer["name"]).items() if c in SPEC_COUNTERS}
    model = network_cycles(net, x, golden=golden)
    assert doc["cycles"] == int(model.cycles.sum())
    assert {l["name"]: l["counters"]["cycles"] for l in doc["layers"]} == \
        {n: int(v.sum()) for n, v in model.layers.items()}


@pytest.mark.cocotb
def test_icarus_bit_exact_under_backpressure(example):
    """More test images through the Verilog with random gaps and stalls: per image, the
    readout potentials, predictions, events and SPEC §5 counters equal golden's."""
    net, x = example["net"], example["x"][BP_IMAGES]
    golden = run(net, x)
    rtl = run_network_icarus(net, x, seed=14, gap=0.3, stall=0.3, golden=golden,
                             build_dir=example["build"])
    assert rtl.extra["mismatches"] == []
    assert compare(net, golden, rtl, x) == []
    assert rtl.predictions.tolist() == golden.predictions.tolist()
    assert rtl.readout.tolist() == golden.readout.tolist()
    for layer in net.layers:
        for c in SPEC_COUNTERS:
            assert rtl.counters[layer.name][c].tolist() == \
                golden.counters[layer.name][c].tolist(), (layer.name, c)
    assert all(int(v.sum()) > 0 for v in golden.events.values())     # the hidden layer fires

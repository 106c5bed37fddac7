"""Residual joins in NIR (issue 14 §1, docs/import.md § Joins): NIR sums the edges that enter a
node, so a SEW join is the edges of both streams into the next synapse (or pool, or Flatten),
and a barrier join an IF fed by the two streams (a ``Scale`` node carries a stream weight
other than 1). IR → NIR → IR is the identity on residual networks, the exported graph in float
equals golden, hand-written graphs with summing edges import exactly, and what does not map is
one line."""

import os
import sys

import numpy as np
import pytest

nir = pytest.importorskip("nir")

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from flows import cli                                     # noqa: E402
from golden import ir, nir_io, reference                  # noqa: E402
from golden.errors import MlsnnError                      # noqa: E402
from golden.fixtures import random_network                # noqa: E402
from test_nir import _affine, _if, _inputs, _same, _through_file    # noqa: E402
from test_nir_lif import test_unrepresentable_lif_is_one_line as _one_line  # noqa: E402

RESIDUAL = [dict(seed=s, join=j, **o) for s, j, o in [
    (1, "sew", {}), (1, "barrier", {}), (3, "sew", dict(pool=True)),
    (3, "barrier", dict(pool=True)), (4, "sew", dict(levels=1)),
    (4, "barrier", dict(levels=1, wide_stream_weights=True)), (7, "barrier", dict(leaky=True)),
    (10, "sew", dict(hard_reset=True, leaky=True)), (13, "barrier", dict(negative_v0=True)),
    (11, "sew", dict(conv_readout=True)),
    (0, "sew", dict(levels=1, pool=True)),          # average pools on the input and a join input
    (3, "barrier", dict(levels=1, pool=True)),      # ... and after the barrier
]]


@pytest.mark.parametrize("cfg", RESIDUAL, ids=lambda c: f"{c['join']}-{c['seed']}")
def test_residual_ir_nir_ir_is_identical(cfg, tmp_path):
    cfg = dict(cfg)
    net = random_network(cfg.pop("seed"), kind="residual", **cfg)
    joins = [l for l in net.layers if l.kind in ("sew", "barrier")]
    assert joins and all(l.kind == cfg["join"] for l in joins)
    graph, _ = nir_io.to_nir(net)
    g = _through_file(graph, tmp_path)
    preds = {}
    for a, b in g.edges:
        preds.setdefault(b, []).append(a)
    for j in joins:
        if j.kind == "barrier":          # an IF with two inputs, Scale where the weight is not 1
            assert type(g.nodes[j.name]).__name__ == "IF" and len(preds[j.name]) == 2
            assert sum(type(g.nodes[p]).__name__ == "Scale" for p in preds[j.name]) == \
                sum(w != 1 for w in j.stream_weights)
        else:                            # no node: its consumers have several inputs
            assert j.name not in g.nodes
            assert any(len(preds[k]) > 1 and nir_io._meta(g.nodes[k], "mlsnn_join") == j.name
                       for k in preds) or any(j.name in l.inputs for l in net.layers
                                              if l.kind == "sew")
    back, report = nir_io.from_nir(g)
    _same(net, back)
    assert {report[j.name]["kind"] for j in joins} == {cfg["join"]}
    if all(l.levels == 1 for l in net.layers if hasattr(l, "levels") and not l.readout):
        x = _inputs(net, 5)
        res = reference.run(net, x)
        logits = nir_io.run_float(g, x, net.timesteps)
        assert np.array_equal(logits.astype(np.int64), res.readout - net.readout.v0)


def _residual_graph(rng, *, barrier=None, theta=2.0, join_in="fc3"):
    """input(6) → fc1 → if1 → fc2 → if2; the join of if1 and if2: SEW (both into fc3, the
    readout) or a barrier IF (``barrier`` = (w1, w2), Scale nodes where w ≠ 1) before fc3."""
    nodes = {"input": nir.Input(np.array([6])),
             "fc1": nir.Affine(weight=_affine(rng, 5, 6), bias=np.zeros(5)), "if1": _if(5, theta),
             "fc2": nir.Affine(weight=_affine(rng, 5, 5), bias=np.zeros(5)), "if2": _if(5, theta),
             "fc3": nir.Affine(weight=_affine(rng, 3, 5), bias=np.zeros(3)),
             "output": nir.Output(np.array([3]))}
    edges = [("input", "fc1"), ("fc1", "if1"), ("if1", "fc2"), ("fc2", "if2")]
    if barrier is None:
        edges += [("if1", join_in), ("if2", join_in)]
    else:
        nodes["join"] = _if(5, 1.0)
        for s, (src, w) in enumerate(zip(("if1", "if2"), barrier)):
            if w == 1:
                edges.append((src, "join"))
            else:
                nodes[f"s{s}"] = nir.Scale(scale=np.full(5, float(w)))
                edges += [(src, f"s{s}"), (f"s{s}", "join")]
        edges.append(("join", "fc3"))
    edges += [("fc3", "output")]
    g = nir.NIRGraph(nodes=nodes, edges=edges)
    g.metadata = {}
    return g


@pytest.mark.parametrize("timesteps", [1, 3])
def test_summing_edges_import_as_a_sew_join_exactly(timesteps, tmp_path):
    rng = np.random.default_rng(timesteps)
    g = _through_file(_residual_graph(rng), tmp_path)
    net, report = nir_io.from_nir(g, timesteps=timesteps, in_bits=3)
    assert [(l.name, l.kind, l.inputs) for l in net.layers] == [
        ("fc1", "dense", ("input",)), ("fc2", "dense", ("fc1",)),
        ("fc3_join", "sew", ("fc1", "fc2")), ("fc3", "dense", ("fc3_join",))]
    assert report["fc3_join"]["kind"] == "sew" and net.layers[-1].readout
    x = _inputs(net, timesteps, n=60)
    res = reference.run(net, x)
    assert (res.events["fc1"] > 0).any() and (res.events["fc2"] > 0).any()
    logits = nir_io.run_float(g, x, timesteps)
    assert np.array_equal((logits * 8).astype(np.int64), res.readout)


@pytest.mark.parametrize("weights,reset", [((1, 1), "soft"), ((1, 2), "soft"),
                                            ((-1, 3), None)])
def test_an_if_with_two_streams_imports_as_a_barrier_exactly(weights, reset):
    rng = np.random.default_rng(7)
    timesteps = 1 if reset is None else 3
    g = _residual_graph(rng, barrier=weights)
    net, report = nir_io.from_nir(g, timesteps=timesteps, in_bits=3, reset=reset)
    join = net.layer("join")
    assert (join.kind, join.inputs, join.stream_weights) == ("barrier", ("fc1", "fc2"), weights)
    # v > 1 with integer inputs is H ≥ 2 (soft: θ_int = 1 with the potential one below).
    assert (join.threshold, join.v0) == ((1, -1) if reset == "soft" else (2, 0))
    assert report["join"]["kind"] == "barrier"
    x = _inputs(net, 2, n=60)
    res = reference.run(net, x)
    assert (res.events["join"] > 0).any()
    logits = nir_io.run_float(g, x, timesteps, reset=reset)
    assert np.array_equal((logits * 8).astype(np.int64), res.readout)


def _errors():
    rng = np.random.default_rng(0)
    half = _residual_graph(rng, barrier=(1, 0.5))
    hard = _residual_graph(rng, barrier=(1, 1))
    leaky = _residual_graph(rng, barrier=(1, 1))
    leaky.nodes["join"] = nir.LIF(tau=np.full(5, 4e-4), r=np.full(5, 4.0), v_leak=np.zeros(5),
                                  v_threshold=np.ones(5), v_reset=np.zeros(5))
    three = _residual_graph(rng, barrier=(1, 1))
    three.edges.append(("input", "join"))
    fork = _residual_graph(rng)
    fork.edges.append(("fc2", "fc3"))
    return [
        ("non-integer stream weight", half, {"reset": "soft"},
         "node 'join' (IF): the stream weight of 's1' is r*scale = 0.5; a barrier's stream "
         "weights are integers"),
        ("hard barrier", hard, {},
         "node 'join' (IF): a barrier join has a soft reset only, so a hard-reset IF joining two "
         "streams maps only with T = 1 (or reset 'soft')"),
        ("leaky barrier", leaky, {"reset": "soft"},
         "node 'join' (LIF): a leaky barrier join is not supported (mlsnn's barrier has no "
         "leak)"),
        ("three streams", three, {"reset": "soft"},
         "node 'join' (IF) has 3 input(s) (if1, if2, input) and no synapse before it; an mlsnn "
         "neuron follows an Affine, Linear, Conv2d or pooling node, or joins two streams (a "
         "barrier)"),
        ("synapse feeds two", fork, {},
         "node 'fc2' (Affine) feeds 2 nodes (if2, fc3); a synapse or pool feeds exactly its "
         "neuron"),
    ]


@pytest.mark.parametrize("graph,kw,message", [pytest.param(g, k, m, id=i)
                                               for i, g, k, m in _errors()])
def test_joins_that_do_not_map_are_one_line(graph, kw, message):
    _one_line(graph, kw, message)


def test_export_of_a_barrier_of_a_sew_join_is_one_line():
    """A barrier whose input is a SEW join would need a Scale of a sum of streams: not
    exported."""
    net = random_network(1, kind="residual", join="sew")
    sew = next(l for l in net.layers if l.kind == "sew")
    other = next(s for s in sew.inputs if s != ir.INPUT)
    layers = []
    for l in net.layers:
        layers.append(l)
        if l is sew:
            layers.append(ir.Barrier(name="bar", inputs=(sew.name, other)))
    ro = layers[-1]
    layers[-1] = type(ro)(**{**{f: getattr(ro, f) for f in ro.__dataclass_fields__},
                             "inputs": ("bar",)}) if ro.inputs == (sew.name,) else ro
    net2 = net.replace(layers=tuple(layers))
    with pytest.raises(MlsnnError) as e:
        nir_io.to_nir(net2)
    assert str(e.value) == (f"layer 'bar' (barrier): its input '{sew.name}' is a SEW join; a "
                            f"barrier of a SEW join is not exported to NIR")


def test_cli_round_trip_of_a_residual_net(tmp_path, capsys):
    net = random_network(4, kind="residual", join="barrier")
    ir.save(net, tmp_path / "net")
    assert cli.main(["export-nir", "--ir", str(tmp_path / "net"), "-o",
                     str(tmp_path / "r.nir")]) == 0
    assert "barrier join as an IF with two inputs" in capsys.readouterr().out
    assert cli.main(["import", str(tmp_path / "r.nir"), "-o", str(tmp_path / "back")]) == 0
    out = capsys.readouterr().out
    _same(net, ir.load(tmp_path / "back"))
    assert all(f"  {l.name:<12} {'barrier':<10}" in out for l in net.layers
               if l.kind == "barrier")


def test_average_pool_after_a_sew_join(tmp_path):
    """A SumPool2d with the edges of both streams: the pool of a SEW join."""
    import dataclasses
    import math
    from golden.pooling import AvgPool2d
    net = random_network(1, kind="residual", join="sew", levels=1)
    sew, ro = next(l for l in net.layers if l.kind == "sew"), net.readout
    assert ro.inputs == (sew.name,)
    pool = AvgPool2d(name="sp", inputs=(sew.name,), kernel=2, threshold=2)
    n_in = math.prod(pool.out_shape(net.info(sew.name).out_shape))
    ro = dataclasses.replace(ro, inputs=("sp",), weight=np.random.default_rng(0).integers(
        -3, 4, (n_in, ro.weight.shape[1])))
    net = net.replace(layers=net.layers[:-1] + (pool, ro))
    g = _through_file(nir_io.to_nir(net)[0], tmp_path)
    assert sorted(a for a, b in g.edges if b == "sp") == sorted(
        f"{s}_if" for s in sew.inputs)
    _same(net, nir_io.from_nir(g)[0])
    x = _inputs(net, 1)
    res = reference.run(net, x)
    assert (res.events["sp"] > 0).any()
    logits = nir_io.run_float(g, x, net.timesteps)
    assert np.array_equal(logits.astype(np.int64), res.readout - ro.v0)

"""NIR graphs ↔ the integer IR (issue 14 §1, ``docs/import.md``), and a float NIR interpreter.

:func:`from_nir` maps a feed-forward NIR 1.0 graph (the ``nir`` package) onto a
:class:`golden.ir.Network`; :func:`to_nir` writes an IR as a NIR graph with mlsnn's own fields in
node metadata, so that IR → NIR → IR is the identity; :func:`run_float` runs a NIR graph in float
over T discrete timesteps (the reference the import is compared with).

Time
----
NIR is continuous in time; mlsnn has T discrete timesteps. One timestep is one step of the
graph: every synapse node adds its output (bias included) once, an ``IF`` integrates
``v ← v + r·I``, fires a binary spike (value 1.0) when ``v > v_threshold`` and resets ``v ←
v_reset`` (hard reset, in the same step; initial ``v = 0``). This is how snnTorch and nirtorch
read ``IF`` (snnTorch requires ``r = 1``).

Mapping (``docs/import.md`` has the table)
------------------------------------------
``Affine``/``Linear`` → ``IF``  dense layer (``r`` folded into the weights);
``Conv2d`` → ``IF``             conv2d layer (square kernel, equal stride and padding on both
                                axes, dilation 1, one group; ``"same"`` with stride 1);
``SumPool2d``/``AvgPool2d`` → ``IF``  avgpool2d (kernel = stride, no padding, tiling);
``Flatten``                     nothing (mlsnn flattens CHW implicitly);
last synapse → ``Output``, ``I`` or a non-leaky ``LI``  the readout (its potentials after T
                                timesteps: the sum of the synapse's outputs);
``LIF`` with ``tau = inf`` and ``v_leak = 0`` (what snnTorch writes for ``Leaky(beta=1)``) is an
``IF`` with gain 1. Everything else ends in one :class:`MlsnnError` naming the node.

Quantization
------------
Per synapse layer the float weights (times the float value of one incoming unit: the input
scale, or 1.0 for spikes) get the factor Q of :func:`golden.export.layer_scale` and are rounded
by :func:`golden.export.quantize_layer` (the export's rules, not a copy of them). NIR fires on
``v > θ``: for the integer potential ``H ≈ v·Q`` this is ``H ≥ θ_int`` with ``θ_int = ⌊θ·Q⌋ + 1``
(``θ·Q`` within 1e-9 of an integer k counts as k: ``k + 1``) and an IF becomes a layer with
``reset="hard"``; read with a soft reset (``reset="soft"``) it subtracts ``round(θ·Q)`` and keeps
its potential offset so that it still fires at ``H ≥ ⌊θ·Q⌋ + 1`` (:func:`_neuron_fields`). A
graph written by :func:`to_nir` carries ``mlsnn_q = 1`` on its synapse nodes (its weights are
the integers): then Q = 1 and everything is exact.
"""

from __future__ import annotations

import math
import os

import numpy as np
import torch

from . import ir
from .errors import MlsnnError
from .export import layer_scale, quantize_layer
from .pooling import AvgPool2d, MaxPool2d

__all__ = ["read", "write", "from_nir", "to_nir", "run_float", "agreement", "ImportReport",
           "RESETS"]

#: Values of the ``reset`` option of :func:`from_nir` and :func:`run_float`.
RESETS = ("hard", "soft")
_TOL = 1e-9


def _nir():
    try:
        import nir
    except ImportError:
        raise MlsnnError("the 'nir' package is not installed (pip install 'mlsnn[nir]')") \
            from None
    return nir


def read(path):
    """Read a NIR file (HDF5) as a ``nir.NIRGraph``; any failure is one :class:`MlsnnError`."""
    nir = _nir()
    if not os.path.exists(path):
        raise MlsnnError(f"NIR file not found: {path}")
    try:
        return nir.read(path)
    except (OSError, ValueError, KeyError, TypeError, AssertionError) as e:
        msg = str(e).splitlines()[0] if str(e) else type(e).__name__
        raise MlsnnError(f"{path}: not a readable NIR file ({msg})") from None


def write(graph, path):
    """Write a ``nir.NIRGraph`` to ``path`` (``nir.write``)."""
    _nir().write(path, graph)
    return path


# -- small helpers ---------------------------------------------------------------------------
def _meta(node, key, default=None):
    """A metadata value of a node or graph as a Python value (h5py gives bytes and numpy)."""
    md = getattr(node, "metadata", None) or {}
    if key not in md:
        return default
    v = md[key]
    if isinstance(v, bytes):
        return v.decode("utf8")
    if isinstance(v, np.ndarray) and v.ndim == 0:
        v = v[()]
    if isinstance(v, np.generic):
        return v.item()
    return v


def _arr(value):
    return np.asarray(value, dtype=np.float64)


def _uniform(key, node, field, what):
    """The one value of a per-neuron parameter array; an error when its values differ."""
    a = _arr(getattr(node, field))
    if a.size == 0:
        raise MlsnnError(f"node '{key}' ({type(node).__name__}): field '{field}' is empty")
    if np.isnan(a).any():
        raise MlsnnError(f"node '{key}' ({type(node).__name__}): field '{field}' holds NaN")
    lo, hi = float(a.min()), float(a.max())
    if lo != hi:
        raise MlsnnError(f"node '{key}' ({type(node).__name__}): per-neuron {field} that "
                         f"differ ({lo:g} to {hi:g}); mlsnn has one {what} per layer")
    return lo


def _pair(key, node, field, value):
    """An int from an int or a pair of equal ints (NIR's (height, width) fields)."""
    a = np.atleast_1d(np.asarray(value)).reshape(-1)
    if a.size not in (1, 2) or (a.size == 2 and a[0] != a[1]):
        raise MlsnnError(f"node '{key}' ({type(node).__name__}): field '{field}' is "
                         f"{a.tolist()}; mlsnn needs the same value on both axes")
    return int(a[0])


def _two(value):
    """(height, width) ints from an int or a pair."""
    a = np.atleast_1d(np.asarray(value)).reshape(-1)
    return int(a[0]), int(a[-1])


def _padding(value):
    """A Conv2d padding: a string ('same', 'valid'; h5py gives bytes) or the ints as given."""
    if isinstance(value, (bytes, np.bytes_)):
        return bytes(value).decode("utf8")
    if isinstance(value, (str, np.str_)):
        return str(value)
    return value


def _above(x):
    """The smallest integer H with ``H > x`` for integers H, ``⌊x⌋ + 1`` (x within 1e-9 of an
    integer k counts as k)."""
    k = round(x)
    return int(k) + 1 if abs(x - k) <= _TOL * max(1.0, abs(x)) else int(math.floor(x)) + 1


def _input_shape(key, node):
    shape = tuple(int(s) for s in np.atleast_1d(np.asarray(node.input_type["input"])))
    if len(shape) in (2, 4) and shape[0] == 1:
        shape = shape[1:]            # a batch dimension of 1 written with the shape
    if len(shape) not in (1, 3):
        raise MlsnnError(f"node '{key}' (Input): shape {list(shape)}; mlsnn takes (N,) or "
                         f"(C, H, W)")
    return shape


# -- graph structure -------------------------------------------------------------------------
_UNSUPPORTED = {
    "Delay": "delays are not supported (an mlsnn layer acts in the timestep of its input)",
    "CubaLIF": "current-based synapses and membrane leak are not supported (mlsnn has no "
               "leak yet)",
    "CubaLI": "a current-based synapse (leaky) is not supported (mlsnn has no leak yet)",
    "Threshold": "a bare threshold without a membrane is not supported (use IF)",
    "Conv1d": "1-D convolutions are not supported (use Conv2d)",
    "Scale": "elementwise scaling is not supported (fold it into the weights)",
    "NIRGraph": "nested graphs (snnTorch writes recurrent RLeaky/RSynaptic layers as one) are "
                "not supported",
}


def _back_edge(nodes, succs, roots):
    """The first edge (depth first from ``roots``, in edge order) that returns to a node on
    the current path: the recurrent edge of a cycle."""
    state = {}

    def visit(k):
        state[k] = "open"
        for s in succs[k]:
            if state.get(s) == "open":
                return k, s
            if s not in state:
                found = visit(s)
                if found:
                    return found
        state[k] = "done"
        return None

    for k in list(roots) + list(nodes):
        if k not in state:
            found = visit(k)
            if found:
                return found
    raise AssertionError("no cycle")


def _order(graph):
    """The nodes in topological order; an error names a recurrent edge (a cycle)."""
    nodes, edges = graph.nodes, [(str(a), str(b)) for a, b in graph.edges]
    for a, b in edges:
        for end in (a, b):
            if end not in nodes:
                raise MlsnnError(f"edge '{a}' -> '{b}' names node '{end}', which the graph "
                                 f"does not have")
    preds = {k: [] for k in nodes}
    succs = {k: [] for k in nodes}
    for a, b in edges:
        preds[b].append(a)
        succs[a].append(b)
    indeg = {k: len(v) for k, v in preds.items()}
    ready = [k for k in nodes if indeg[k] == 0]
    order = []
    while ready:
        k = ready.pop(0)
        order.append(k)
        for s in succs[k]:
            indeg[s] -= 1
            if indeg[s] == 0:
                ready.append(s)
    if len(order) < len(nodes):
        a, b = _back_edge(nodes, succs, [k for k in nodes if not preds[k]])
        raise MlsnnError(f"node '{b}': recurrent edge '{a}' -> '{b}' closes a cycle; mlsnn "
                         f"networks are feed-forward")
    return order, preds, succs


def _chain(graph):
    """The nodes from the single Input to the single Output, checked to be a chain."""
    nir = _nir()
    order, preds, succs = _order(graph)
    inputs = [k for k in order if isinstance(graph.nodes[k], nir.Input)]
    outputs = [k for k in order if isinstance(graph.nodes[k], nir.Output)]
    if len(inputs) != 1 or len(outputs) != 1:
        raise MlsnnError(f"the graph has {len(inputs)} Input and {len(outputs)} Output nodes; "
                         f"mlsnn imports graphs with one of each")
    for k in order:
        node = graph.nodes[k]
        name = type(node).__name__
        if name in _UNSUPPORTED:
            raise MlsnnError(f"node '{k}' ({name}): {_UNSUPPORTED[name]}")
        if len(preds[k]) > 1:
            raise MlsnnError(f"node '{k}' ({name}) has {len(preds[k])} inputs "
                             f"({', '.join(preds[k])}): joins are not imported yet")
        if len(succs[k]) > 1:
            raise MlsnnError(f"node '{k}' ({name}) feeds {len(succs[k])} nodes "
                             f"({', '.join(succs[k])}): forks are not imported yet")
    chain, k = [], inputs[0]
    while True:
        chain.append(k)
        if not succs[k]:
            break
        k = succs[k][0]
    if chain[-1] != outputs[0] or len(chain) != len(order):
        stray = next(k for k in order if k not in chain) if len(chain) != len(order) \
            else chain[-1]
        raise MlsnnError(f"node '{stray}' is not on the path from '{inputs[0]}' to "
                         f"'{outputs[0]}'")
    return chain


_SYNAPSES = ("Affine", "Linear", "Conv2d")
_POOLS = ("SumPool2d", "AvgPool2d")


def _neuron(key, node):
    """``(gain, θ, v_reset)`` of a firing node (IF, or LIF without leak); else an error."""
    name = type(node).__name__
    if name == "LIF":
        if _uniform(key, node, "v_leak", "leak voltage") != 0.0:
            raise MlsnnError(f"node '{key}' (LIF): v_leak must be 0")
        tau = _uniform(key, node, "tau", "time constant")
        if not math.isinf(tau):
            raise MlsnnError(f"node '{key}' (LIF): leaky neuron (tau={tau:g}); mlsnn has no "
                             f"leak yet (only tau=inf, snnTorch's beta=1, imports, as an IF)")
        r = _uniform(key, node, "r", "resistance")
        if not math.isinf(r):
            raise MlsnnError(f"node '{key}' (LIF): tau=inf with a finite r={r:g} has no "
                             f"input gain (r/tau = 0); snnTorch writes r=inf for beta=1")
        gain = 1.0
    else:
        gain = _uniform(key, node, "r", "resistance")
        if not gain > 0 or math.isinf(gain):
            raise MlsnnError(f"node '{key}' (IF): r must be positive and finite, not {gain:g}")
    theta = _uniform(key, node, "v_threshold", "threshold")
    if not theta > 0 or math.isinf(theta):
        raise MlsnnError(f"node '{key}' ({name}): v_threshold must be positive and finite, "
                         f"not {theta:g}")
    v_reset = _uniform(key, node, "v_reset", "reset potential")
    return gain, theta, v_reset


def _readout_node(key, node, timesteps):
    """Check the integrating node after the readout synapse (I, LI or nothing)."""
    if node is None:
        return
    name = type(node).__name__
    if name == "I":
        r = _uniform(key, node, "r", "resistance")
    else:
        if _uniform(key, node, "v_leak", "leak voltage") != 0.0:
            raise MlsnnError(f"node '{key}' (LI): v_leak must be 0")
        tau = _uniform(key, node, "tau", "time constant")
        r = _uniform(key, node, "r", "resistance")
        if not math.isinf(tau) and timesteps > 1:
            raise MlsnnError(f"node '{key}' (LI): leaky readout (tau={tau:g}) with T="
                             f"{timesteps}; mlsnn's readout does not leak (use I, tau=inf, "
                             f"or T=1)")
    if not r > 0:
        raise MlsnnError(f"node '{key}' ({name}): r must be positive, not {r:g}")


def _steps(graph, timesteps):
    """The chain as mlsnn layers, ``(kind, key, neuron_key)``: kind ``"synapse"`` or ``"pool"``
    with the key of its firing node, or ``"readout"`` with its I/LI node (None before Output);
    Flatten nodes are dropped."""
    chain = _chain(graph)
    nodes = graph.nodes
    kinds = [type(nodes[k]).__name__ for k in chain]
    steps, i = [], 1
    while i < len(chain) - 1:
        key, kind = chain[i], kinds[i]
        if kind == "Flatten":
            i += 1
            continue
        if kind not in _SYNAPSES + _POOLS:
            if kind in ("IF", "LIF"):
                prev = chain[i - 1]
                raise MlsnnError(f"node '{key}' ({kind}) follows '{prev}' "
                                 f"({kinds[i - 1]}); an mlsnn neuron follows an Affine, Linear, "
                                 f"Conv2d or pooling node")
            if kind in ("I", "LI"):
                raise MlsnnError(f"node '{key}' ({kind}): an integrator is only the readout "
                                 f"(after the last Affine, Linear or Conv2d, before Output)")
            raise MlsnnError(f"node '{key}' ({kind}): node type not supported by mlsnn "
                             f"(supported: Input, Output, Affine, Linear, Conv2d, Flatten, "
                             f"SumPool2d, AvgPool2d, IF, LIF with tau=inf, I, LI)")
        j = i + 1
        while kinds[j] == "Flatten":
            j += 1
        nxt = kinds[j]
        if nxt in ("IF", "LIF"):
            steps.append(("pool" if kind in _POOLS else "synapse", key, chain[j]))
            i = j + 1
            continue
        if kind in _POOLS:
            raise MlsnnError(f"node '{key}' ({kind}) feeds '{chain[j]}' ({nxt}); mlsnn's "
                             f"pooling is sum pooling into an IF neuron: an IF must follow it")
        if nxt == "Output" or (nxt in ("I", "LI") and kinds[j + 1:] and
                               all(k in ("Flatten", "Output") for k in kinds[j + 1:])):
            steps.append(("readout", key, None if nxt == "Output" else chain[j]))
            break
        raise MlsnnError(f"node '{key}' ({kind}) feeds '{chain[j]}' ({nxt}); an IF must "
                         f"follow it (or it is the readout, before Output, I or LI)")
    if not steps or steps[-1][0] != "readout":
        last = chain[-2]
        raise MlsnnError(f"the graph ends in node '{last}' ({kinds[-2]}), which fires; "
                         f"mlsnn's readout integrates: end the graph with Affine/Linear/Conv2d "
                         f"-> Output, I or a non-leaky LI")
    return steps


def _layer_name(key, used):
    name = "".join(c if c.isalnum() or c == "_" else "_" for c in str(key)) or "layer"
    if name == ir.INPUT:
        name = "input_"
    base, n = name, 1
    while name in used:
        name, n = f"{base}_{n}", n + 1
    used.add(name)
    return name


def _reset_of(node, override):
    """The reset of a firing node: ``override``, else its ``mlsnn_reset``, else NIR's hard."""
    if override is not None:
        return override
    return _meta(node, "mlsnn_reset", "hard")


# -- import ----------------------------------------------------------------------------------
class ImportReport(dict):
    """Per-layer facts of an import, by layer name: ``{"node", "kind", "q", "threshold",
    "weight_error", "threshold_error", "clipped"}``. ``weight_error`` = max|w − w_q/Q| / max|w|
    (0.0 for pools); ``threshold_error``: 0.0 for a hard reset (for integer H, ``H > θ·Q`` is
    exactly ``H ≥ ⌊θ·Q⌋ + 1``), ``|θ_int/Q − θ| / θ`` for a soft reset (it subtracts θ_int);
    None for the readout, which has no threshold.

    Members
    -------
    input_unit : float
        The float value the NIR graph receives for one integer input unit.
    """

    input_unit = 1.0


def from_nir(graph, *, timesteps=None, levels=None, w_bits=8, in_bits=None, input_scale=None,
             reset=None, name=None):
    """Map a NIR graph onto a :class:`golden.ir.Network` (see the module docstring).

    Parameters
    ----------
    graph : nir.NIRGraph
    timesteps : int, optional
        T; default: the graph's ``mlsnn_timesteps`` metadata (an error without either).
    levels : int, optional
        N of every imported IF layer (default: a node's ``mlsnn_levels``, else 1).
    w_bits : int
        Signed weight width (a synapse node's ``mlsnn_w_bits`` wins).
    in_bits : int, optional
        Width of an input pixel (default: ``mlsnn_in_bits``, else 8).
    input_scale : float, optional
        The float value the NIR graph receives for one integer input unit (default: the
        graph's ``mlsnn_input_unit``, else 1.0).
    reset : ``"hard"``, ``"soft"`` or None
        The reset of every IF layer; None: a node's ``mlsnn_reset``, else ``"hard"`` (NIR's).
        ``"soft"`` reads v_reset as unused: what snnTorch's ``reset_mechanism="subtract"``
        meant (its ``export_to_nir`` writes v_reset = 0 whatever the reset).
    name : str, optional
        The network's name when the graph has no ``mlsnn_name`` (default ``"nir"``).

    Returns
    -------
    net : golden.ir.Network
    report : ImportReport

    Raises
    ------
    MlsnnError
        An unsupported node, structure or parameter (one line naming the node).
    """
    if timesteps is None:
        timesteps = _meta(graph, "mlsnn_timesteps")
        if timesteps is None:
            raise MlsnnError("the NIR graph does not say how many timesteps to run (NIR has no "
                             "T): give timesteps (--timesteps)")
    timesteps = ir._check_int("import", "timesteps", timesteps, minimum=1)
    if reset is not None and reset not in RESETS:
        raise MlsnnError(f"reset must be 'hard' or 'soft', not {reset!r}")
    if levels is not None:
        ir._check_int("import", "levels", levels, minimum=1, maximum=255)
    if isinstance(w_bits, bool) or not isinstance(w_bits, int) or not 2 <= w_bits <= 16:
        raise MlsnnError(f"w_bits must be an integer in 2..16, not {w_bits!r}")
    steps = _steps(graph, timesteps)
    nodes = graph.nodes
    in_key = next(k for k, n in nodes.items() if type(n).__name__ == "Input")
    shape = _input_shape(in_key, nodes[in_key])
    unit = float(input_scale if input_scale is not None
                 else _meta(graph, "mlsnn_input_unit", 1.0))
    if not unit > 0 or math.isinf(unit):
        raise MlsnnError(f"input_scale must be positive and finite, not {unit:g}")
    input_unit = unit
    spec = ir.InputSpec(shape=shape,
                        in_bits=in_bits if in_bits is not None else _meta(graph,
                                                                           "mlsnn_in_bits", 8),
                        scale=_meta(graph, "mlsnn_input_scale", unit))
    used, layers, report = set(), [], ImportReport()
    prev, cur = ir.INPUT, shape
    for kind, key, nkey in steps:
        node = nodes[key]
        lname = _layer_name(key, used)
        nnode = nodes[nkey] if nkey is not None else None
        if kind == "readout":
            _readout_node(nkey, nnode, timesteps)
        if kind == "pool":
            layer, facts = _pool_layer(key, node, nkey, nnode, lname, prev, cur, unit,
                                       timesteps, levels, reset)
        else:
            layer, facts = _synapse_layer(key, node, nkey, nnode, kind == "readout", lname,
                                          prev, cur, unit, timesteps, levels, reset, w_bits)
        layers.append(layer)
        report[lname] = facts
        cur = tuple(layer.out_shape(cur))
        prev, unit = lname, 1.0          # a spike is worth 1.0 in NIR
    net = ir.Network(input=spec, timesteps=timesteps, layers=tuple(layers),
                     name=_meta(graph, "mlsnn_name", name or "nir"))
    report.input_unit = input_unit
    return net, report


def _synapse_layer(key, node, nkey, nnode, readout, lname, prev, shape, unit, timesteps,
                   levels, reset, w_bits):
    kind = type(node).__name__
    w = _arr(node.weight)
    if not np.isfinite(w).all():
        raise MlsnnError(f"node '{key}' ({kind}): weight holds NaN or inf")
    bias = _arr(node.bias) if kind != "Linear" else np.zeros(w.shape[0])
    if not np.isfinite(bias).all():
        raise MlsnnError(f"node '{key}' ({kind}): bias holds NaN or inf")
    w_bits = int(_meta(node, "mlsnn_w_bits", w_bits))
    conv = {}
    if kind == "Conv2d":
        if w.ndim != 4 or w.shape[2] != w.shape[3]:
            raise MlsnnError(f"node '{key}' (Conv2d): weight of shape {list(w.shape)}; mlsnn "
                             f"needs [C_out, C_in, K, K] (a square kernel)")
        if len(shape) != 3 or shape[0] != w.shape[1]:
            raise MlsnnError(f"node '{key}' (Conv2d): takes {w.shape[1]} input channels, but "
                             f"its input has shape {list(shape)}")
        if _pair(key, node, "dilation", node.dilation) != 1 or int(node.groups) != 1:
            raise MlsnnError(f"node '{key}' (Conv2d): dilation and groups must be 1")
        stride = _pair(key, node, "stride", node.stride)
        pad = _padding(node.padding)
        if isinstance(pad, str):
            k = w.shape[2]
            if pad == "valid":
                pad = 0
            elif pad == "same" and stride == 1 and k % 2 == 1:
                pad = (k - 1) // 2
            else:
                raise MlsnnError(f"node '{key}' (Conv2d): padding '{pad}' is supported only as "
                                 f"'valid', or 'same' with stride 1 and an odd kernel")
        conv = dict(stride=stride, padding=_pair(key, node, "padding", pad))
    else:
        if w.ndim != 2:
            raise MlsnnError(f"node '{key}' ({kind}): weight must be 2-D [out, in], not "
                             f"{list(w.shape)}")
        if w.shape[1] != math.prod(shape):
            raise MlsnnError(f"node '{key}' ({kind}): takes {w.shape[1]} inputs, but its "
                             f"input has {math.prod(shape)} values (shape {list(shape)})")
    if readout:
        gain, theta, v_reset, lreset = 1.0, None, 0.0, "soft"
    else:
        gain, theta, v_reset = _neuron(nkey, nnode)
        lreset = _reset_of(nnode, reset)
    w_eff = torch.from_numpy(w * gain * unit)
    b_eff = torch.from_numpy(bias * gain)
    meta_q = _meta(node, "mlsnn_q")
    if meta_q is not None:
        q = float(meta_q)
    else:
        q, _ = layer_scale(float(w_eff.abs().max()) if w_eff.numel() else 0.0,
                           None if readout else theta, w_bits)
    wq, bq, clipped, _, b_bits = quantize_layer(w_eff, b_eff, q, w_bits)
    b_bits = int(_meta(node, "mlsnn_b_bits", b_bits))
    amax = float(w_eff.abs().max()) if w_eff.numel() else 0.0
    werr = float((w_eff - wq / q).abs().max()) / amax if amax else 0.0
    src = node if readout else nnode
    fields = _neuron_fields(nkey, src, theta, v_reset, q, lreset, timesteps, levels)
    if readout:
        fields.update(threshold=int(_meta(node, "mlsnn_threshold", 1)),
                      levels=int(_meta(node, "mlsnn_levels", 1)),
                      v0=int(_meta(node, "mlsnn_v0", 0)),
                      reset=_meta(node, "mlsnn_reset", "soft"))
    common = dict(name=lname, inputs=(prev,), weight=None, bias=bq.numpy().astype(np.int64),
                  w_bits=w_bits, b_bits=b_bits, readout=readout,
                  lanes=int(_meta(node, "mlsnn_lanes", 1)), **fields)
    if kind == "Conv2d":
        common["weight"] = wq.permute(1, 2, 3, 0).contiguous().numpy().astype(np.int64)
        layer = ir.Conv2d(**common, **conv)
    else:
        common["weight"] = wq.t().contiguous().numpy().astype(np.int64)
        layer = ir.Dense(**common)
    facts = {"node": str(key), "kind": layer.kind, "q": q, "threshold": None if readout
             else layer.threshold, "weight_error": werr, "clipped": clipped,
             "threshold_error": None if readout else _threshold_error(fields, q, theta)}
    return layer, facts


def _neuron_fields(nkey, node, theta, v_reset, q, lreset, timesteps, levels):
    """θ_int, N, v0, reset, scale, potential_width of a firing node (``docs/import.md``
    § Reset and threshold).

    With ``x = θ·Q`` NIR fires when ``H > x``, i.e. ``H ≥ ⌊x⌋ + 1`` (:func:`_above`). Hard
    reset: ``θ_int = ⌊x⌋ + 1``, ``v0 = round(v_init·Q)``, and v_reset must equal the initial
    potential v_init (mlsnn's v0 is both) unless T = 1. Soft reset (subtract θ): the layer must
    subtract ``round(x)``, so ``θ_int = round(x)`` and the potential is kept offset by
    ``θ_int − (⌊x⌋ + 1)`` (−1 when x is an integer): ``v0 = round(v_init·Q) + θ_int − ⌊x⌋ − 1``.
    """
    out = {"scale": float(_meta(node, "mlsnn_scale", 1.0)),
           "potential_width": _meta(node, "mlsnn_potential_width")}
    if theta is None:
        return out
    v_init = float(_meta(node, "mlsnn_v_init", 0.0))
    x = theta * q
    fires = _above(x)
    if lreset == "hard":
        if timesteps > 1 and v_reset != v_init:
            raise MlsnnError(f"node '{nkey}' ({type(node).__name__}): v_reset is {v_reset:g} "
                             f"but the graph starts at {v_init:g}; mlsnn's v0 is both the "
                             f"initial potential and the reset value (with T = 1 v_reset is "
                             f"never used)")
        th, v0 = fires, int(round(v_init * q))
    else:
        th = max(1, int(round(x)))
        v0 = int(round(v_init * q)) + th - fires
    out.update(threshold=th, v0=v0, reset=lreset,
               levels=int(levels if levels is not None else _meta(node, "mlsnn_levels", 1)))
    return out


def _threshold_error(fields, q, theta):
    """The threshold's quantization error, relative: 0.0 for a hard reset (for integer H,
    ``H > θ·Q`` is exactly ``H ≥ ⌊θ·Q⌋ + 1``); ``|θ_int/Q − θ| / θ`` for a soft reset, which
    subtracts θ_int instead of θ·Q."""
    return 0.0 if fields.get("reset", "soft") == "hard" else \
        abs(fields["threshold"] / q - theta) / theta


def _pool_layer(key, node, nkey, nnode, lname, prev, shape, unit, timesteps, levels, reset):
    kind = type(node).__name__
    if len(shape) != 3:
        raise MlsnnError(f"node '{key}' ({kind}): a pool takes a (C, H, W) input, not "
                         f"{list(shape)}")
    k = _pair(key, node, "kernel_size", node.kernel_size)
    if _pair(key, node, "stride", node.stride) != k:
        raise MlsnnError(f"node '{key}' ({kind}): stride must equal the kernel ({k}); mlsnn "
                         f"pools tile their input")
    if _pair(key, node, "padding", node.padding) != 0:
        raise MlsnnError(f"node '{key}' ({kind}): padding must be 0")
    gain, theta, v_reset = _neuron(nkey, nnode)
    lreset = _reset_of(nnode, reset)
    if lreset == "hard" and timesteps > 1:
        raise MlsnnError(f"node '{nkey}' ({type(nnode).__name__}) after pool '{key}': mlsnn's "
                         f"avgpool2d has a soft reset only, so a hard-reset IF after a pool "
                         f"maps only with T = 1 (or reset 'soft')")
    # One unit of the pool's potential is one incoming unit, worth unit·gain (/k² averaged).
    q = (k * k if kind == "AvgPool2d" else 1.0) / (unit * gain)
    fields = _neuron_fields(nkey, nnode, theta, v_reset, q, lreset, timesteps, levels)
    terr = _threshold_error(fields, q, theta)
    fields.pop("reset")
    layer = AvgPool2d(name=lname, inputs=(prev,), kernel=k, **fields)
    facts = {"node": str(key), "kind": "avgpool2d", "q": q, "threshold": layer.threshold,
             "weight_error": 0.0, "clipped": 0, "threshold_error": terr}
    return layer, facts


# -- export ----------------------------------------------------------------------------------
def _floats(a):
    """Integer array → float32 when every value is exact there (what torch libraries load),
    else float64."""
    a = np.asarray(a, dtype=np.int64)
    return a.astype(np.float32) if np.abs(a).max(initial=0) <= 1 << 24 else a.astype(np.float64)


def _neuron_meta(layer):
    md = {"mlsnn_levels": int(layer.levels), "mlsnn_scale": float(layer.scale)}
    if getattr(layer, "potential_width", None) is not None:
        md["mlsnn_potential_width"] = int(layer.potential_width)
    return md


def _if_node(nir, layer, shape, reset):
    """The NIR IF of a layer. Hard reset: ``v > θ − 1/2`` is ``H ≥ θ`` for integers, reset and
    start at v0. Soft reset (subtract θ): ``v = H + 1`` from ``v0 + 1``, ``v > θ`` is ``H ≥ θ``."""
    soft = reset == "soft"
    v_init = float(layer.v0 + soft)
    md = dict(_neuron_meta(layer), mlsnn_reset=reset, mlsnn_v_init=v_init)
    return nir.IF(r=np.ones(shape, np.float32),
                  v_threshold=np.full(shape, layer.threshold - 0.5 * (not soft), np.float32),
                  v_reset=np.full(shape, v_init, np.float32), metadata=md)


def to_nir(net):
    """Write an IR as a NIR graph (see ``docs/import.md`` § Export).

    The graph takes the integer input pixels as floats and holds the integers themselves:
    weights and biases as floats; a hard-reset layer's neuron ``IF(r=1, v_threshold=θ − 0.5,
    v_reset=v0)`` (``v > θ − 0.5`` is ``H ≥ θ`` for integers), a soft-reset one ``IF(r=1,
    v_threshold=θ, v_reset=v0 + 1)`` read with a subtraction of θ from ``v = H + 1`` (starting
    at v0 + 1); a pool as ``SumPool2d`` then a soft ``IF``; the readout as its
    ``Affine``/``Conv2d`` feeding ``Output`` (the logits are the sum of its outputs over T).
    mlsnn's own fields are metadata: on the graph ``mlsnn_timesteps``, ``mlsnn_in_bits``,
    ``mlsnn_input_scale``, ``mlsnn_input_unit`` (1.0), ``mlsnn_name``; on synapse nodes
    ``mlsnn_q`` (1.0), ``mlsnn_w_bits``, ``mlsnn_b_bits``, ``mlsnn_lanes`` (the readout also
    ``mlsnn_threshold``, ``mlsnn_levels``, ``mlsnn_v0``, ``mlsnn_reset``, ``mlsnn_scale``); on IF
    nodes ``mlsnn_levels``, ``mlsnn_reset``, ``mlsnn_v_init``, ``mlsnn_scale`` and
    ``mlsnn_potential_width`` when forced.

    Returns
    -------
    graph : nir.NIRGraph
    notes : list of str
        One line per layer whose NIR reading differs from mlsnn's (N > 1 levels, or a soft
        reset with T > 1): other NIR tools see a binary hard-reset IF there.

    Raises
    ------
    MlsnnError
        Joins and max pools (NIR 1.0 has no max pooling; joins are not exported yet).
    """
    nir = _nir()
    if not net.is_sequential:
        j = next(l for l in net.layers if l.n_inputs != 1 or l.passthrough) if any(
            l.n_inputs != 1 or l.passthrough for l in net.layers) else net.layers[0]
        raise MlsnnError(f"layer '{j.name}' ({j.kind}): only sequential networks are exported "
                         f"to NIR (no joins yet)")
    nodes = {"input": nir.Input(input_type=np.array(net.input.shape))}
    edges, notes, prev = [], [], "input"

    def add(key, node):
        nonlocal prev
        if key in nodes:
            raise MlsnnError(f"layer names give the NIR node '{key}' twice: rename a layer")
        nodes[key] = node
        edges.append((prev, key))
        prev = key

    for layer in net.layers:
        info = net.info(layer.name)
        if getattr(layer, "coding", "rate") == "bitserial":
            raise MlsnnError(f"layer '{layer.name}': a bit-serial layer (docs/bitserial.md) has "
                             f"no NIR neuron; only rate-coded networks are exported")
        if isinstance(layer, MaxPool2d):
            raise MlsnnError(f"layer '{layer.name}' (maxpool2d): NIR 1.0 has no max pooling")
        out = np.array(info.out_shape)
        if isinstance(layer, AvgPool2d):
            k = layer.kernel
            add(layer.name, nir.SumPool2d(kernel_size=np.array([k, k]),
                                          stride=np.array([k, k]), padding=np.array([0, 0])))
            reset = "soft"
        else:
            md = {"mlsnn_q": 1.0, "mlsnn_w_bits": int(layer.w_bits),
                  "mlsnn_b_bits": int(layer.b_bits), "mlsnn_lanes": int(layer.lanes)}
            if layer.readout:
                md.update(_neuron_meta(layer), mlsnn_threshold=int(layer.threshold),
                          mlsnn_reset=layer.reset, mlsnn_v0=int(layer.v0))
            if layer.kind == "conv2d":
                w = _floats(layer.weight.transpose(3, 0, 1, 2))     # [C_out, C_in, K, K]
                node = nir.Conv2d(input_shape=tuple(info.in_shape[1:]), weight=w,
                                  stride=layer.stride, padding=layer.padding, dilation=1,
                                  groups=1, bias=_floats(layer.bias), metadata=md)
            else:
                if len(info.in_shape) != 1:
                    add(f"{layer.name}_flatten",
                        nir.Flatten(input_type={"input": np.array(info.in_shape)},
                                    start_dim=0, end_dim=-1))
                node = nir.Affine(weight=_floats(layer.weight.T), bias=_floats(layer.bias),
                                  metadata=md)
            add(layer.name, node)
            reset = layer.reset
        if getattr(layer, "readout", False):
            continue
        add(f"{layer.name}_if", _if_node(nir, layer, tuple(out), reset))
        why = [w for w, bad in ((f"{layer.levels} levels", layer.levels > 1),
                                ("a soft reset", reset == "soft" and net.timesteps > 1)) if bad]
        if why:
            notes.append(f"layer '{layer.name}': {' and '.join(why)} (kept in metadata; other "
                         f"NIR tools see a binary IF with a hard reset)")
    add("output", nir.Output(output_type=np.array(net.info(net.readout.name).out_shape)))
    meta = {"mlsnn_timesteps": int(net.timesteps), "mlsnn_in_bits": int(net.input.in_bits),
            "mlsnn_input_scale": float(net.input.scale), "mlsnn_input_unit": 1.0,
            "mlsnn_name": str(net.name)}
    try:
        graph = nir.NIRGraph(nodes=nodes, edges=edges, metadata=meta)
    except (ValueError, AssertionError) as e:
        raise MlsnnError(f"NIR rejects the exported graph ({e})") from None
    return graph, notes


# -- float interpreter -----------------------------------------------------------------------
def run_float(graph, x, timesteps, *, reset=None):
    """Run a NIR graph in float64 over ``timesteps`` discrete steps (module docstring § Time).

    Parameters
    ----------
    graph : nir.NIRGraph
    x : array ``[B, *input shape]``
        The float input of the graph, presented at every timestep.
    timesteps : int
    reset : ``"hard"``, ``"soft"`` or None
        As in :func:`from_nir` (None: a node's ``mlsnn_reset``, else hard). IF and LIF(tau=inf)
        nodes start at a node's ``mlsnn_v_init``, else 0; a soft reset subtracts v_threshold.

    Returns
    -------
    numpy.ndarray ``[B, n_out]``
        The readout: the sum over T of what reaches Output (the final state of an I or LI).

    Raises
    ------
    MlsnnError
        A node the interpreter does not know, a cycle, or an input of the wrong size.
    """
    nir = _nir()
    import torch.nn.functional as F

    order, preds, _ = _order(graph)
    nodes = graph.nodes
    in_key = next((k for k in order if isinstance(nodes[k], nir.Input)), None)
    if in_key is None:
        raise MlsnnError("the graph has no Input node")
    shape = _input_shape(in_key, nodes[in_key])
    x = torch.as_tensor(np.asarray(x, dtype=np.float64))
    if x.numel() % max(1, math.prod(shape)) or x.ndim < 1:
        raise MlsnnError(f"inputs of shape {tuple(x.shape)} do not fit the graph's input "
                         f"{list(shape)}")
    B = x.shape[0]
    x = x.reshape((B,) + shape)
    state, total = {}, None
    for _ in range(timesteps):
        out = {}
        for k in order:
            node = nodes[k]
            name = type(node).__name__
            if isinstance(node, nir.Input):
                out[k] = x
                continue
            if not preds[k]:
                raise MlsnnError(f"node '{k}' ({name}) has no input")
            v = sum(out[p] for p in preds[k])
            if name in ("Affine", "Linear"):
                y = v.reshape(B, -1) @ torch.as_tensor(_arr(node.weight)).T
                out[k] = y + torch.as_tensor(_arr(node.bias)) if name == "Affine" else y
            elif name == "Conv2d":
                pad = _padding(node.padding)
                out[k] = F.conv2d(v, torch.as_tensor(_arr(node.weight)),
                                  torch.as_tensor(_arr(node.bias)), stride=_two(node.stride),
                                  padding=pad if isinstance(pad, str) else _two(pad),
                                  dilation=_two(node.dilation), groups=int(node.groups))
            elif name in _POOLS:
                kk = _two(node.kernel_size)
                y = F.avg_pool2d(v, kk, _two(node.stride), _two(node.padding),
                                 count_include_pad=True)
                out[k] = y * (kk[0] * kk[1]) if name == "SumPool2d" else y
            elif name == "Flatten":
                out[k] = v.reshape(B, -1)
            elif name in ("IF", "LIF"):
                gain, theta, v_reset = _neuron(k, node)
                if k not in state:
                    state[k] = torch.full_like(v, float(_meta(node, "mlsnn_v_init", 0.0)))
                h = state[k] + gain * v
                z = (h > theta).to(h.dtype)
                if _reset_of(node, reset) == "hard":
                    state[k] = torch.where(z > 0, torch.full_like(h, v_reset), h)
                else:
                    state[k] = h - z * theta
                out[k] = z
            elif name in ("I", "LI"):
                _readout_node(k, node, timesteps)
                if k not in state:
                    state[k] = torch.zeros_like(v)
                if name == "LI" and not math.isinf(_uniform(k, node, "tau", "")):
                    tau = _uniform(k, node, "tau", "")
                    state[k] = state[k] * (1 - 1 / tau) + v * (_uniform(k, node, "r", "") / tau)
                else:
                    state[k] = state[k] + v * (_uniform(k, node, "r", "") if name == "I"
                                               else 1.0)
                out[k] = state[k]
            elif name == "Output":
                out[k] = v
            else:
                raise MlsnnError(f"node '{k}' ({name}): "
                                 f"{_UNSUPPORTED.get(name, 'node type not supported')}")
        outs = [k for k in order if isinstance(nodes[k], nir.Output)]
        y = out[outs[0]].reshape(B, -1)
        integrating = any(type(nodes[p]).__name__ in ("I", "LI") for p in preds[outs[0]])
        total = y if integrating else (y if total is None else total + y)
    return total.numpy()


def agreement(graph, net, x, input_unit=1.0, *, reset=None):
    """Predictions of the NIR graph in float (:func:`run_float` on ``x·input_unit``) against
    the integer golden model (:func:`golden.reference.run`) on integer inputs ``x``.

    Returns
    -------
    dict
        ``{"n", "agreement", "float_predictions", "golden_predictions"}`` (predictions: argmax,
        lowest index wins ties, as lists of int).
    """
    from .reference import run
    x = net.check_inputs(x)
    golden = run(net, x, record_events=False).predictions
    logits = run_float(graph, x.astype(np.float64) * input_unit, net.timesteps, reset=reset)
    fl = np.argmax(logits, axis=1)
    return {"n": int(len(x)), "agreement": float((fl == golden).mean()),
            "float_predictions": [int(v) for v in fl],
            "golden_predictions": [int(v) for v in golden]}

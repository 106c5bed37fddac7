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
``IF`` with gain 1; a ``LIF`` with a finite tau is a leaky layer: one forward-Euler step of
length dt (``--dt``, default the graph's ``mlsnn_dt``, else snnTorch's 1e-4) is ``v ← β·v +
(r·dt/tau)·I`` with ``β = 1 − dt/tau``, the gain folded into the weights and β rounded to the
nearest ``1 − 2^−k`` (:func:`leak_of_beta`; docs/leak.md). Joins: NIR sums the edges entering
a node, so several edges into a synapse, pool or Flatten are a ``sew`` join of those streams and
an IF fed by two streams (no synapse; a ``Scale`` node carries a stream weight) is a ``barrier``
join (:func:`_dag_layers`); :func:`to_nir` writes joins the same way. Everything else ends in
one :class:`MlsnnError` naming the node.

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
           "RESETS", "DEFAULT_DT", "leak_of_beta"]

#: Values of the ``reset`` option of :func:`from_nir` and :func:`run_float`.
RESETS = ("hard", "soft")
#: The step length a LIF's time constant is read with when the graph does not say
#: (``mlsnn_dt``): snnTorch's ``export_to_nir`` writes ``tau = dt/(1 − beta)`` with dt = 1e-4.
DEFAULT_DT = 1e-4
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
    "CubaLIF": "current-based synapses (a synaptic current with its own tau_syn) are not "
               "supported: mlsnn's synapse has no state (a LIF imports)",
    "CubaLI": "a current-based readout (a synaptic current with its own tau_syn) is not "
              "supported: mlsnn's readout integrates its input directly",
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
    """The nodes from the single Input to the single Output of a graph without forks and joins
    (:func:`from_nir` sends the others to :func:`_dag_layers`), checked to be a chain."""
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


def leak_of_beta(beta):
    """The integer leak k whose β = 1 − 2^−k is nearest to ``beta`` (docs/import.md § Leak).

    k ranges over 0..:data:`golden.ir.MAX_LEAK`, k = 0 standing for β = 1 (IF); the distance
    is ``|beta − (1 − 2^−k)|`` (linear, not logarithmic), a tie goes to the smaller k.

    Returns
    -------
    (k, beta_k) : (int, float)
    """
    cands = [(0, 1.0)] + [(k, 1.0 - 2.0 ** -k) for k in range(1, ir.MAX_LEAK + 1)]
    return min(cands, key=lambda c: (abs(beta - c[1]), c[0]))


def _leak_facts(key, node, tau, dt):
    """β = 1 − dt/τ of a leaky LIF and the leak k that represents it (an error when none
    does)."""
    name = type(node).__name__
    if not tau > 0:
        raise MlsnnError(f"node '{key}' ({name}): tau must be positive, not {tau:g}")
    beta = 1.0 - dt / tau
    if not beta > 0:
        raise MlsnnError(f"node '{key}' ({name}): tau={tau:g} with dt={dt:g} gives beta = "
                         f"1 - dt/tau = {beta:g} <= 0 (nothing of the potential is kept), "
                         f"which no leak 1 - 2^-k represents (check --dt)")
    k, beta_k = leak_of_beta(beta)
    md = _meta(node, "mlsnn_leak")
    if md is not None and int(md) != k:
        raise MlsnnError(f"node '{key}' ({name}): mlsnn_leak={md} but tau={tau:g} with "
                         f"dt={dt:g} gives leak {k} (written for another dt?)")
    return {"tau": tau, "dt": dt, "beta_asked": beta, "leak": k, "beta": beta_k,
            "beta_error": abs(beta_k - beta) / beta}


def _neuron(key, node, dt=None):
    """``(gain, θ, v_reset, leak)`` of a firing node: an IF (leak None), or a LIF (``leak``:
    the facts of :func:`_leak_facts`, None when tau = inf); else an error.

    A LIF is read with the forward-Euler step of length ``dt`` (docs/import.md § Leak):
    ``v ← β·v + (r·dt/tau)·I`` with ``β = 1 − dt/tau``; the gain ``r·dt/tau`` is folded into
    the weights like an IF's ``r``. tau = inf with r = inf (snnTorch's ``beta=1``) is gain 1."""
    dt = DEFAULT_DT if dt is None else dt
    name = type(node).__name__
    leak = None
    if name == "LIF":
        v_leak = _uniform(key, node, "v_leak", "leak voltage")
        if v_leak != 0.0:
            raise MlsnnError(f"node '{key}' (LIF): v_leak must be 0, not {v_leak:g} (mlsnn's "
                             f"leak decays toward 0)")
        tau = _uniform(key, node, "tau", "time constant")
        r = _uniform(key, node, "r", "resistance")
        if math.isinf(tau):
            if not (math.isinf(r) and r > 0):
                raise MlsnnError(f"node '{key}' (LIF): tau=inf with a finite r={r:g} has no "
                                 f"input gain (r/tau = 0); snnTorch writes r=inf for beta=1")
            gain = 1.0
        else:
            leak = _leak_facts(key, node, tau, dt)
            gain = r * dt / tau
            if not gain > 0 or math.isinf(gain):
                raise MlsnnError(f"node '{key}' (LIF): r must be positive and finite, not "
                                 f"{r:g}")
    else:
        gain = _uniform(key, node, "r", "resistance")
        if not gain > 0 or math.isinf(gain):
            raise MlsnnError(f"node '{key}' (IF): r must be positive and finite, not {gain:g}")
    theta = _uniform(key, node, "v_threshold", "threshold")
    if not theta > 0 or math.isinf(theta):
        raise MlsnnError(f"node '{key}' ({name}): v_threshold must be positive and finite, "
                         f"not {theta:g}")
    v_reset = _uniform(key, node, "v_reset", "reset potential")
    return gain, theta, v_reset, leak


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


def _not_a_layer(key, kind, more=""):
    """The error for a node that starts no mlsnn layer: an integrator not at the readout, or a
    node type mlsnn does not know."""
    if kind in ("I", "LI"):
        return MlsnnError(f"node '{key}' ({kind}): an integrator is only the readout (after the "
                          f"last Affine, Linear or Conv2d, before Output)")
    return MlsnnError(f"node '{key}' ({kind}): node type not supported by mlsnn (supported: "
                      f"Input, Output, Affine, Linear, Conv2d, Flatten, SumPool2d, AvgPool2d, "
                      f"IF, LIF, I, LI{more})")


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
            raise _not_a_layer(key, kind)
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
    None for the readout, which has no threshold. ``leak``: the layer's k (0: IF); for a LIF
    with a finite tau also ``tau``, ``beta_asked`` (1 − dt/tau), ``beta`` (1 − 2^−k) and
    ``beta_error`` (|beta − beta_asked| / beta_asked), else None.

    Members
    -------
    input_unit : float
        The float value the NIR graph receives for one integer input unit.
    dt : float
        The step length the LIF time constants were read with.
    """

    input_unit = 1.0
    dt = DEFAULT_DT


def from_nir(graph, *, timesteps=None, levels=None, w_bits=8, in_bits=None, input_scale=None,
             reset=None, name=None, dt=None):
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
    dt : float, optional
        The step length a LIF's tau is read with, ``β = 1 − dt/tau`` (default: the graph's
        ``mlsnn_dt``, else :data:`DEFAULT_DT`, snnTorch's 1e-4). A leaky LIF becomes a layer
        with the leak k of :func:`leak_of_beta`; the report gives β asked, β obtained and the
        relative error.

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
    dt = _dt(graph, dt)
    _, preds, succs = _order(graph)
    branched = any(len(v) > 1 for v in preds.values()) or any(len(v) > 1
                                                                 for v in succs.values())
    steps = None if branched else _steps(graph, timesteps)
    nodes = graph.nodes
    in_key = next((k for k, n in nodes.items() if type(n).__name__ == "Input"), None)
    if in_key is None:
        raise MlsnnError("the graph has 0 Input nodes; mlsnn imports graphs with one")
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
    if branched:
        layers = _dag_layers(graph, shape, unit, timesteps, levels, reset, w_bits, dt, report)
    for kind, key, nkey in steps or ():
        node = nodes[key]
        lname = _layer_name(key, used)
        nnode = nodes[nkey] if nkey is not None else None
        if kind == "readout":
            _readout_node(nkey, nnode, timesteps)
        if kind == "pool":
            layer, facts = _pool_layer(key, node, nkey, nnode, lname, prev, cur, unit,
                                       timesteps, levels, reset, dt)
        else:
            layer, facts = _synapse_layer(key, node, nkey, nnode, kind == "readout", lname,
                                          prev, cur, unit, timesteps, levels, reset, w_bits, dt)
        layers.append(layer)
        report[lname] = facts
        cur = tuple(layer.out_shape(cur))
        prev, unit = lname, 1.0          # a spike is worth 1.0 in NIR
    net = ir.Network(input=spec, timesteps=timesteps, layers=tuple(layers),
                     name=_meta(graph, "mlsnn_name", name or "nir"))
    report.input_unit, report.dt = input_unit, dt
    return net, report


def _dt(graph, dt):
    """The step length: ``dt``, else the graph's ``mlsnn_dt``, else :data:`DEFAULT_DT`."""
    dt = dt if dt is not None else _meta(graph, "mlsnn_dt", DEFAULT_DT)
    if isinstance(dt, bool) or not isinstance(dt, (int, float)) or not 0 < dt < math.inf:
        raise MlsnnError(f"dt must be positive and finite, not {dt!r}")
    return float(dt)


def _leak_report(leak):
    """The report's leak facts of a layer (docs/import.md § Leak): k, and for a leaky LIF the
    β asked (1 − dt/tau), the β = 1 − 2^−k obtained and their relative error."""
    if leak is None:
        return {"leak": 0, "tau": None, "beta_asked": None, "beta": None, "beta_error": None}
    return {k: leak[k] for k in ("leak", "tau", "beta_asked", "beta", "beta_error")}


def _dag_layers(graph, shape, unit0, timesteps, levels, reset, w_bits, dt, report):
    """The layers of a graph with forks and joins (docs/import.md § Joins): a node with several
    incoming edges sums them (NIR), which is a SEW join of the streams when the node is a
    synapse, a pool or a Flatten, and a barrier join when it is an IF fed by two streams
    (optionally through ``Scale`` nodes: the stream weights). Layers come in the graph's
    ``mlsnn_order`` when it names them all, else in topological order; SEW joins take their
    names and nesting from ``mlsnn_sews`` / ``mlsnn_join`` when the streams match."""
    nir = _nir()
    order, preds, succs = _order(graph)
    nodes = graph.nodes
    ins = [k for k in order if isinstance(nodes[k], nir.Input)]
    outs = [k for k in order if isinstance(nodes[k], nir.Output)]
    if len(ins) != 1 or len(outs) != 1:
        raise MlsnnError(f"the graph has {len(ins)} Input and {len(outs)} Output nodes; "
                         f"mlsnn imports graphs with one of each")
    for k in order:
        name = type(nodes[k]).__name__
        if name in _UNSUPPORTED and name != "Scale":
            raise MlsnnError(f"node '{k}' ({name}): {_UNSUPPORTED[name]}")
    table = {}
    for item in filter(None, str(_meta(graph, "mlsnn_sews", "")).split(";")):
        jname, _, pair = item.partition(":")
        table[jname] = tuple(pair.split(","))
    used, layers = set(), []
    src = {ins[0]: (ir.INPUT,)}          # NIR node -> the IR streams whose sum it emits
    shapes, units, done = {ir.INPUT: shape}, {ir.INPUT: unit0}, set()

    def expand(jname):
        return sum((expand(n) if n in table else (n,) for n in table[jname]), ())

    def sew(key, jname, pair):
        a, b = pair
        if tuple(shapes[a]) != tuple(shapes[b]) or units[a] != units[b]:
            raise MlsnnError(f"node '{key}' sums the streams of '{a}' (shape {list(shapes[a])}"
                             f") and '{b}' (shape {list(shapes[b])}); a SEW join needs the "
                             f"same shape and the same unit")
        lname = _layer_name(jname, used)
        layers.append(ir.Sew(name=lname, inputs=(a, b)))
        report[lname] = {"node": str(key), "kind": "sew", "q": None, "threshold": None,
                         "weight_error": 0.0, "clipped": 0, "threshold_error": None,
                         **_leak_report(None)}
        shapes[lname], units[lname] = shapes[a], units[a]
        return lname

    def built(key, jname):
        if jname in shapes:
            return jname
        return sew(key, jname, tuple(built(key, n) if n in table else n for n in table[jname]))

    def stream_of(key):
        """The one IR stream arriving at ``key`` (a SEW join when its edges are several)."""
        names = tuple(n for p in preds[key] for n in src[p])
        if not names:
            raise MlsnnError(f"node '{key}' ({type(nodes[key]).__name__}) has no input")
        if len(names) == 1:
            return names[0]
        jname = _meta(nodes[key], "mlsnn_join")
        if jname in table and sorted(expand(jname)) == sorted(names):
            return built(key, jname)
        cur = names[0]
        for i, n in enumerate(names[1:]):
            cur = sew(key, f"{key}_join{i or ''}", (cur, n))
        return cur

    for key in order:
        node, kind = nodes[key], type(nodes[key]).__name__
        if key in done or kind in ("Input", "Output", "Scale"):
            continue
        if kind == "Flatten":
            src[key] = (stream_of(key),)
            continue
        if kind in _SYNAPSES + _POOLS:
            _dag_layer(key, node, kind, stream_of(key), nodes, preds, succs, outs[0], shapes,
                       units, used, layers, src, done, report,
                       (timesteps, levels, reset, w_bits, dt))
            continue
        if kind in ("IF", "LIF"):
            _barrier(key, node, nodes, preds, src, shapes, units, used, layers, report,
                     (timesteps, levels, reset, dt))
            continue
        raise _not_a_layer(key, kind, ", Scale before a barrier IF")
    for k in order:
        if type(nodes[k]).__name__ == "Scale" and not (
                len(succs[k]) == 1 and type(nodes[succs[k][0]]).__name__ in ("IF", "LIF")
                and len(preds[succs[k][0]]) == 2):
            raise MlsnnError(f"node '{k}' (Scale): elementwise scaling is supported only on an "
                             f"input of a barrier join (an IF with two inputs)")
    if not layers or not getattr(layers[-1], "readout", False) or \
            sum(getattr(l, "readout", False) for l in layers) != 1:
        raise MlsnnError(f"the graph does not end in one readout (Affine/Linear/Conv2d -> "
                         f"Output, I or a non-leaky LI) that every path reaches")
    names = str(_meta(graph, "mlsnn_order", "")).split(",")
    if sorted(names) == sorted(l.name for l in layers):
        layers.sort(key=lambda l: names.index(l.name))
    return layers


def _dag_layer(key, node, kind, in_name, nodes, preds, succs, out_key, shapes, units, used,
               layers, src, done, report, opts):
    """The synapse or pool ``key`` with the neuron (or readout end) it feeds."""
    timesteps, levels, reset, w_bits, dt = opts
    nxt = succs[key]
    while len(nxt) == 1 and type(nodes[nxt[0]]).__name__ == "Flatten" and \
            len(preds[nxt[0]]) == 1:
        done.add(nxt[0])
        nxt = succs[nxt[0]]
    if len(nxt) != 1:
        raise MlsnnError(f"node '{key}' ({kind}) feeds {len(nxt)} nodes ({', '.join(nxt)}); "
                         f"a synapse or pool feeds exactly its neuron")
    t = nxt[0]
    tkind = type(nodes[t]).__name__
    if len(preds[t]) != 1 and tkind == "Output":
        raise MlsnnError(f"node '{t}' (Output) has {len(preds[t])} inputs "
                         f"({', '.join(preds[t])}); mlsnn's readout is one synapse before "
                         f"Output")
    if len(preds[t]) != 1:
        raise MlsnnError(f"node '{t}' ({tkind}) has {len(preds[t])} inputs "
                         f"({', '.join(preds[t])}); after a synapse or pool mlsnn's neuron "
                         f"has that one input")
    if tkind in ("I", "LI"):
        if succs[t] != [out_key]:
            raise MlsnnError(f"node '{t}' ({tkind}): an integrator is only the readout (before "
                             f"Output)")
        readout, nkey = True, t
    elif tkind == "Output":
        readout, nkey = True, None
    elif tkind in ("IF", "LIF"):
        readout, nkey = False, t
    else:
        raise MlsnnError(f"node '{key}' ({kind}) feeds '{t}' ({tkind}); an IF must follow it "
                         f"(or it is the readout, before Output, I or LI)")
    if readout and kind in _POOLS:
        raise MlsnnError(f"node '{key}' ({kind}) feeds '{t}' ({tkind}); mlsnn's pooling is "
                         f"sum pooling into an IF neuron: an IF must follow it")
    lname = _layer_name(key, used)
    nnode = nodes[nkey] if nkey is not None else None
    args = (lname, in_name, shapes[in_name], units[in_name], timesteps, levels, reset)
    if readout:
        _readout_node(nkey, nnode, timesteps)
    if kind in _POOLS:
        layer, facts = _pool_layer(key, node, nkey, nnode, *args, dt)
    else:
        layer, facts = _synapse_layer(key, node, nkey, nnode, readout, *args, w_bits, dt)
    layers.append(layer)
    report[lname] = facts
    shapes[lname], units[lname] = tuple(layer.out_shape(shapes[in_name])), 1.0
    if nkey is not None:
        src[nkey] = (lname,)
        done.add(nkey)


def _barrier(key, node, nodes, preds, src, shapes, units, used, layers, report, opts):
    """An IF fed by two streams (each directly or through a ``Scale``): a barrier join, with
    the stream weights ``r·scale`` (integers), a soft reset and no leak."""
    timesteps, levels, reset, dt = opts
    name = type(node).__name__
    streams, weights = [], []
    for p in preds[key]:
        pnode = nodes[p]
        if type(pnode).__name__ == "Scale":
            w = _uniform(p, pnode, "scale", "scale")
            names = tuple(n for q in preds[p] for n in src.get(q, ()))
        else:
            w, names = 1.0, src.get(p, ())
        if len(names) != 1:
            raise MlsnnError(f"node '{key}' ({name}): its input '{p}' "
                             f"({type(pnode).__name__}) is not one spike stream; a barrier "
                             f"join (an IF without a synapse) takes two streams")
        streams.append(names[0])
        weights.append(w)
    if len(streams) != 2:
        raise MlsnnError(f"node '{key}' ({name}) has {len(streams)} input(s) "
                         f"({', '.join(preds[key])}) and no synapse before it; an mlsnn neuron "
                         f"follows an Affine, Linear, Conv2d or pooling node, or joins two "
                         f"streams (a barrier)")
    gain, theta, v_reset, leak = _neuron(key, node, dt)
    if leak is not None and leak["leak"]:
        raise MlsnnError(f"node '{key}' (LIF): a leaky barrier join is not supported (mlsnn's "
                         f"barrier has no leak)")
    a, b = streams
    if tuple(shapes[a]) != tuple(shapes[b]) or units[a] != 1.0 or units[b] != 1.0:
        raise MlsnnError(f"node '{key}' ({name}) joins '{a}' (shape {list(shapes[a])}) and "
                         f"'{b}' (shape {list(shapes[b])}); a barrier joins spike streams of "
                         f"the same shape")
    sw = []
    for p, w in zip(preds[key], weights):
        x = w * gain
        if abs(x - round(x)) > _TOL * max(1.0, abs(x)):
            raise MlsnnError(f"node '{key}' ({name}): the stream weight of '{p}' is r*scale = "
                             f"{x:g}; a barrier's stream weights are integers")
        sw.append(int(round(x)))
    lreset = _reset_of(node, reset)
    if lreset == "hard" and timesteps > 1:
        raise MlsnnError(f"node '{key}' ({name}): a barrier join has a soft reset only, so a "
                         f"hard-reset IF joining two streams maps only with T = 1 (or reset "
                         f"'soft')")
    fields = _neuron_fields(key, node, theta, v_reset, 1.0, lreset, timesteps, levels)
    terr = _threshold_error(fields, 1.0, theta)
    fields.pop("reset")
    lname = _layer_name(key, used)
    layer = ir.Barrier(name=lname, inputs=(a, b), stream_weights=tuple(sw), **fields)
    layers.append(layer)
    report[lname] = {"node": str(key), "kind": "barrier", "q": 1.0,
                     "threshold": layer.threshold, "weight_error": 0.0, "clipped": 0,
                     "threshold_error": terr, **_leak_report(leak)}
    shapes[lname], units[lname] = shapes[a], 1.0
    src[key] = (lname,)


def _synapse_layer(key, node, nkey, nnode, readout, lname, prev, shape, unit, timesteps,
                   levels, reset, w_bits, dt):
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
        gain, theta, v_reset, lreset, leak = 1.0, None, 0.0, "soft", None
    else:
        gain, theta, v_reset, leak = _neuron(nkey, nnode, dt)
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
                  lanes=int(_meta(node, "mlsnn_lanes", 1)),
                  leak=0 if leak is None else leak["leak"], **fields)
    if kind == "Conv2d":
        common["weight"] = wq.permute(1, 2, 3, 0).contiguous().numpy().astype(np.int64)
        layer = ir.Conv2d(**common, **conv)
    else:
        common["weight"] = wq.t().contiguous().numpy().astype(np.int64)
        layer = ir.Dense(**common)
    facts = {"node": str(key), "kind": layer.kind, "q": q, "threshold": None if readout
             else layer.threshold, "weight_error": werr, "clipped": clipped,
             "threshold_error": None if readout else _threshold_error(fields, q, theta),
             **_leak_report(leak)}
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


def _pool_layer(key, node, nkey, nnode, lname, prev, shape, unit, timesteps, levels, reset, dt):
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
    gain, theta, v_reset, leak = _neuron(nkey, nnode, dt)
    if leak is not None and leak["leak"]:
        raise MlsnnError(f"node '{nkey}' (LIF) after pool '{key}': a leaky neuron (tau="
                         f"{leak['tau']:g}, beta {leak['beta_asked']:.6g}) after a pool is not "
                         f"supported; mlsnn's avgpool2d has no leak (use IF or tau=inf)")
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
             "weight_error": 0.0, "clipped": 0, "threshold_error": terr,
             **_leak_report(leak)}
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


def _if_node(nir, layer, shape, reset, dt):
    """The NIR neuron of a layer. Hard reset: ``v > θ − 1/2`` is ``H ≥ θ`` for integers, reset
    and start at v0. Soft reset (subtract θ): ``v = H + 1`` from ``v0 + 1``, ``v > θ`` is
    ``H ≥ θ``. Without a leak an ``IF(r=1)``; with leak k a ``LIF(tau=dt·2^k, r=2^k,
    v_leak=0)``: ``β = 1 − dt/tau = 1 − 2^−k`` and the input gain ``r·dt/tau`` is 1, with
    ``mlsnn_leak`` = k and ``mlsnn_leak_offset`` (v − H: 1 soft, 0 hard) in the metadata."""
    soft = reset == "soft"
    v_init = float(layer.v0 + soft)
    md = dict(_neuron_meta(layer), mlsnn_reset=reset, mlsnn_v_init=v_init)
    thr = np.full(shape, layer.threshold - 0.5 * (not soft), np.float32)
    v_reset = np.full(shape, v_init, np.float32)
    k = getattr(layer, "leak", 0)
    if not k:
        return nir.IF(r=np.ones(shape, np.float32), v_threshold=thr, v_reset=v_reset,
                      metadata=md)
    md.update(mlsnn_leak=int(k), mlsnn_leak_offset=float(soft))
    return nir.LIF(tau=np.full(shape, dt * 2.0 ** k), r=np.full(shape, 2.0 ** k),
                   v_leak=np.zeros(shape), v_threshold=thr, v_reset=v_reset, metadata=md)


def to_nir(net, *, dt=DEFAULT_DT):
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
    ``mlsnn_potential_width`` when forced. A leaky layer (leak k ≥ 1) is a
    ``LIF(tau=dt·2^k, r=2^k, v_leak=0)`` instead of the IF (β = 1 − dt/tau = 1 − 2^−k, input
    gain r·dt/tau = 1), the graph carries ``mlsnn_dt``.

    Parameters
    ----------
    net : golden.ir.Network
    dt : float
        The step length the LIF time constants are written for (default :data:`DEFAULT_DT`,
        snnTorch's; :func:`from_nir` reads it back from ``mlsnn_dt``).

    Returns
    -------
    graph : nir.NIRGraph
    notes : list of str
        One line per layer whose NIR reading differs from mlsnn's (N > 1 levels, or a soft
        reset with T > 1): other NIR tools see a binary hard-reset IF there; and one per leaky
        layer (other tools leak in floats, mlsnn rounds the kept part up).

    Raises
    ------
    MlsnnError
        Max pools (NIR 1.0 has no max pooling), a barrier of a SEW join, a stream read twice.
    """
    nir = _nir()
    dt = _dt(None, dt)
    nodes = {"input": nir.Input(input_type=np.array(net.input.shape))}
    # emit[name]: the NIR nodes whose outputs sum to the stream of IR layer ``name`` (a SEW
    # join is the sum of its inputs' streams: NIR adds the edges into a node).
    edges, notes, emit, sews = [], [], {ir.INPUT: ["input"]}, []

    def add(key, node, srcs, join=None):
        if key in nodes:
            raise MlsnnError(f"layer names give the NIR node '{key}' twice: rename a layer")
        if join is not None:
            node.metadata = dict(node.metadata or {}, mlsnn_join=join)
        nodes[key] = node
        edges.extend((s, key) for s in srcs)
        return [key]

    def streams(layer, names):
        srcs = [k for n in names for k in emit[n]]
        if len(set(srcs)) != len(srcs):
            raise MlsnnError(f"layer '{layer.name}' ({layer.kind}): reads the stream of NIR "
                             f"node '{next(k for k in srcs if srcs.count(k) > 1)}' twice, "
                             f"which NIR edges (a set of sources per node) cannot say")
        return srcs

    for layer in net.layers:
        info = net.info(layer.name)
        if getattr(layer, "coding", "rate") == "bitserial":
            raise MlsnnError(f"layer '{layer.name}': a bit-serial layer (docs/bitserial.md) has "
                             f"no NIR neuron; only rate-coded networks are exported")
        if isinstance(layer, MaxPool2d):
            raise MlsnnError(f"layer '{layer.name}' (maxpool2d): NIR 1.0 has no max pooling")
        out = np.array(info.out_shape)
        if layer.kind == "sew":
            emit[layer.name] = streams(layer, layer.inputs)
            sews.append(f"{layer.name}:{','.join(layer.inputs)}")
            continue
        if layer.kind == "barrier":
            srcs = []
            for s, (src, w) in enumerate(zip(layer.inputs, layer.stream_weights)):
                if len(emit[src]) != 1:
                    raise MlsnnError(f"layer '{layer.name}' (barrier): its input '{src}' is a "
                                     f"SEW join; a barrier of a SEW join is not exported to "
                                     f"NIR")
                srcs += emit[src] if w == 1 else add(
                    f"{layer.name}_s{s}", nir.Scale(scale=np.full(tuple(out), float(w),
                                                                  np.float32)), emit[src])
            if len(set(srcs)) != 2:
                raise MlsnnError(f"layer '{layer.name}' (barrier): joins the stream of NIR node "
                                 f"'{srcs[0]}' with itself, which NIR edges cannot say")
            emit[layer.name] = add(layer.name, _if_node(nir, layer, tuple(out), "soft", dt),
                                   srcs)
            if layer.levels > 1 or net.timesteps > 1:
                notes.append(f"layer '{layer.name}': barrier join as an IF with two inputs"
                             + (f", {layer.levels} levels" if layer.levels > 1 else "")
                             + (" and a soft reset" if net.timesteps > 1 else "")
                             + " (kept in metadata; other NIR tools see a binary IF with a "
                               "hard reset)")
            continue
        (src,) = layer.inputs
        srcs = streams(layer, layer.inputs)
        join = src if len(srcs) > 1 else None
        if isinstance(layer, AvgPool2d):
            k = layer.kernel
            last = add(layer.name, nir.SumPool2d(kernel_size=np.array([k, k]),
                                                 stride=np.array([k, k]),
                                                 padding=np.array([0, 0])), srcs, join)
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
                    srcs = add(f"{layer.name}_flatten",
                               nir.Flatten(input_type={"input": np.array(info.in_shape)},
                                           start_dim=0, end_dim=-1), srcs, join)
                    join = None
                node = nir.Affine(weight=_floats(layer.weight.T), bias=_floats(layer.bias),
                                  metadata=md)
            last = add(layer.name, node, srcs, join)
            reset = layer.reset
        if getattr(layer, "readout", False):
            emit[layer.name] = last
            continue
        k = getattr(layer, "leak", 0)
        emit[layer.name] = add(f"{layer.name}_{'lif' if k else 'if'}",
                               _if_node(nir, layer, tuple(out), reset, dt), last)
        why = [w for w, bad in ((f"{layer.levels} levels", layer.levels > 1),
                                ("a soft reset", reset == "soft" and net.timesteps > 1)) if bad]
        if why:
            notes.append(f"layer '{layer.name}': {' and '.join(why)} (kept in metadata; other "
                         f"NIR tools see a binary {'LIF' if k else 'IF'} with a hard reset)")
        if k and net.timesteps > 1:
            notes.append(f"layer '{layer.name}': leak {k} (beta = 1 - 2^-{k} = "
                         f"{1 - 2.0 ** -k:g}) as LIF(tau = dt*2^{k} = {dt * 2.0 ** k:g}, r = "
                         f"2^{k}, dt = {dt:g}); other NIR tools leak in floats (beta*v), mlsnn "
                         f"keeps R - (R >> {k}) (docs/leak.md)")
    add("output", nir.Output(output_type=np.array(net.info(net.readout.name).out_shape)),
        emit[net.readout.name])
    meta = {"mlsnn_timesteps": int(net.timesteps), "mlsnn_in_bits": int(net.input.in_bits),
            "mlsnn_input_scale": float(net.input.scale), "mlsnn_input_unit": 1.0,
            "mlsnn_name": str(net.name), "mlsnn_dt": dt}
    if not net.is_sequential:
        meta["mlsnn_order"] = ",".join(l.name for l in net.layers)
        if sews:
            meta["mlsnn_sews"] = ";".join(sews)
    try:
        graph = nir.NIRGraph(nodes=nodes, edges=edges, metadata=meta)
    except (ValueError, AssertionError) as e:
        raise MlsnnError(f"NIR rejects the exported graph ({e})") from None
    return graph, notes


# -- float interpreter -----------------------------------------------------------------------
def run_float(graph, x, timesteps, *, reset=None, dt=None):
    """Run a NIR graph in float64 over ``timesteps`` discrete steps (module docstring § Time).

    Parameters
    ----------
    graph : nir.NIRGraph
    x : array ``[B, *input shape]``
        The float input of the graph, presented at every timestep.
    timesteps : int
    reset : ``"hard"``, ``"soft"`` or None
        As in :func:`from_nir` (None: a node's ``mlsnn_reset``, else hard). IF and LIF
        nodes start at a node's ``mlsnn_v_init``, else 0; a soft reset subtracts v_threshold.
    dt : float, optional
        As in :func:`from_nir`. A LIF integrates ``h = v + (r·dt/tau)·I``, fires on
        ``h > v_threshold``, resets, and then keeps ``β·R`` of what is left, ``β = 1 − dt/tau``
        (the forward-Euler step, the leak after the reset as in mlsnn); a LIF written by
        :func:`to_nir` (``mlsnn_leak`` = k) keeps mlsnn's integer ``R − ⌊(R − o)/2^k⌋`` instead
        (o = ``mlsnn_leak_offset``), so that its logits are golden's. An ``LI`` keeps
        ``(1 − dt/tau)`` of its state and adds ``(r·dt/tau)·I``.

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
    dt = _dt(graph, dt)
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
            elif name == "Scale":
                out[k] = v * torch.as_tensor(_arr(node.scale))
            elif name in ("IF", "LIF"):
                gain, theta, v_reset, leak = _neuron(k, node, dt)
                if k not in state:
                    state[k] = torch.full_like(v, float(_meta(node, "mlsnn_v_init", 0.0)))
                h = state[k] + gain * v
                z = (h > theta).to(h.dtype)
                if _reset_of(node, reset) == "hard":
                    r = torch.where(z > 0, torch.full_like(h, v_reset), h)
                else:
                    r = h - z * theta
                if leak is not None and _meta(node, "mlsnn_leak") is not None:
                    o = float(_meta(node, "mlsnn_leak_offset", 0.0))
                    r = r - torch.floor((r - o) / 2.0 ** leak["leak"])
                elif leak is not None:
                    r = leak["beta_asked"] * r
                state[k] = r
                out[k] = z
            elif name in ("I", "LI"):
                _readout_node(k, node, timesteps)
                if k not in state:
                    state[k] = torch.zeros_like(v)
                if name == "LI" and not math.isinf(_uniform(k, node, "tau", "")):
                    tau = _uniform(k, node, "tau", "")
                    state[k] = state[k] * (1 - dt / tau) + v * (_uniform(k, node, "r", "") * dt
                                                                / tau)
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


def agreement(graph, net, x, input_unit=1.0, *, reset=None, dt=None):
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
    logits = run_float(graph, x.astype(np.float64) * input_unit, net.timesteps, reset=reset,
                       dt=dt)
    fl = np.argmax(logits, axis=1)
    return {"n": int(len(x)), "agreement": float((fl == golden).mean()),
            "float_predictions": [int(v) for v in fl],
            "golden_predictions": [int(v) for v in golden]}

"""Bit-serial coding (docs/bitserial.md): a multi-level network at T = 1 as a bit-serial one.

A multi-level layer at T = 1 with N = 2^k − 1 levels emits ``z = clip(floor(H/θ), 0, N)``
(SPEC §2: H ≥ θ fires floor(H/θ) levels, at most N), which is a k-bit integer; a bit-serial
layer (``coding="bitserial"``) with T = k emits the same integer as k binary spikes, MSB first,
and its consumer rebuilds it by Horner. :func:`from_multilevel` rewrites such a network into
its bit-serial twin, whose readout potentials equal the original's (times 2^k − 1 where the
readout reads the network input itself), so predictions are identical: the comparison of
docs/results.md (multi-level T = 1, N = 15 vs bit-serial T = 4) runs the same quantized ANN.
"""

from __future__ import annotations

import dataclasses

from .errors import MlsnnError
from .ir import INPUT, Network

__all__ = ["from_multilevel", "bits_of"]


def bits_of(levels):
    """k with ``levels = 2^k − 1``, or None."""
    k = (levels + 1).bit_length() - 1
    return k if levels >= 1 and (1 << k) == levels + 1 else None


def from_multilevel(net):
    """The bit-serial twin of a multi-level network with T = 1 (a pure pass).

    Every spiking layer but the readout must have the same levels N = 2^k − 1 (k ≥ 1); the
    result has T = k, ``coding="bitserial"`` and ``levels=1`` on every layer. A layer that
    reads the network input sees its pixels at each of the k timesteps, weighted 2^(k−1) … 1,
    that is (2^k − 1) times: its θ, v0 and bias are multiplied by 2^k − 1 (its ``b_bits``
    widened by k), so it computes floor(H/θ) of the original exactly. The other layers keep
    their θ, v0, weights and bias.

    Raises
    ------
    MlsnnError
        T ≠ 1, a join or pooling layer, levels that differ or are not 2^k − 1, or a scaled bias
        wider than 32 bits.
    """
    if not isinstance(net, Network):
        raise MlsnnError("from_multilevel: net must be a golden.ir.Network")
    if net.timesteps != 1:
        raise MlsnnError(f"from_multilevel: the multi-level network must have timesteps 1, "
                         f"not {net.timesteps}")
    levels = set()
    for layer in net.layers:
        if not hasattr(layer, "coding"):
            raise MlsnnError(f"from_multilevel: layer '{layer.name}' ({layer.kind}) has no "
                             f"bit-serial form: only dense and conv2d layers do")
        if not layer.readout:
            levels.add(layer.levels)
    if len(levels) > 1:
        raise MlsnnError(f"from_multilevel: every spiking layer must have the same levels, "
                         f"not {sorted(levels)}")
    n = levels.pop() if levels else 1
    k = bits_of(n)
    if k is None:
        raise MlsnnError(f"from_multilevel: levels must be 2^k - 1 (1, 3, 7, 15, ...) to fit "
                         f"k binary timesteps, not {n}")
    f = (1 << k) - 1
    layers = []
    for layer in net.layers:
        ch = dict(coding="bitserial", levels=1)
        if INPUT in layer.inputs and f > 1:
            b_bits = layer.b_bits + k
            if b_bits > 32:
                raise MlsnnError(f"from_multilevel: layer '{layer.name}': its bias times "
                                 f"{f} needs {b_bits} bits (max 32)")
            ch.update(threshold=layer.threshold * f, v0=layer.v0 * f, b_bits=b_bits,
                      bias=layer.bias.astype("int64") * f)
        layers.append(dataclasses.replace(layer, **ch))
    return dataclasses.replace(net, timesteps=k, layers=tuple(layers))

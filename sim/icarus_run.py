"""Run the exported Verilog on Icarus Verilog through cocotb 2.x: the Icarus names of
:mod:`sim.cocotb_run` (which also runs Verilator), kept for existing callers.

Icarus language generation (``-g2005``) and the build cache are described in
:mod:`sim.cocotb_run`.
"""

from __future__ import annotations

from .cocotb_run import build_root, run_layer_cocotb, run_network_cocotb

__all__ = ["run_network_icarus", "run_layer_icarus", "build_root"]


def run_network_icarus(net, x, **kwargs):
    """:func:`sim.cocotb_run.run_network_cocotb` on Icarus (same keywords but ``simulator``).

    Returns
    -------
    RtlResult
    """
    return run_network_cocotb(net, x, simulator="icarus", **kwargs)


def run_layer_icarus(net, name, tokens, **kwargs):
    """:func:`sim.cocotb_run.run_layer_cocotb` on Icarus (same keywords but ``simulator``).

    Returns
    -------
    dict
        ``tokens``, ``counters``, ``overflow``, ``cycles``, ``mismatches``.
    """
    return run_layer_cocotb(net, name, tokens, simulator="icarus", **kwargs)

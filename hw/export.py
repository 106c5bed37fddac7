"""Verilog export of the hardware (Amaranth → RTLIL → Verilog through Amaranth's builtin Yosys).

Ports keep Amaranth's flattened names (``pixels__payload``, ``result__valid``, ``tap_0__payload``
…); struct payloads are single vectors, LSB first in field order (see ``hw.layout``).
"""

from __future__ import annotations

import os

from amaranth.back import verilog

from golden.errors import MlsnnError

__all__ = ["convert", "network_verilog", "layer_verilog", "write_text"]


def _check_name(name):
    if not isinstance(name, str) or not name.isidentifier():
        raise MlsnnError(f"the Verilog top name must be an identifier, not {name!r}")


def convert(component, *, name="top"):
    """Verilog text of a ``wiring.Component`` with its signature as the port list."""
    _check_name(name)
    return verilog.convert(component, name=name, emit_src=False)


def network_verilog(net, *, name="top", fifo_depth=None, discharge="parallel", synapse="mul",
                    monitor=False, weights="rom", pixels_per_beat=1, ram_width=None,
                    counters=True):
    """Verilog of :class:`hw.network.NetworkTop` for an IR network (``weights="spram"`` or
    ``{layer: "spram"}``: those banks as the simulation model, loaded through ``wload``;
    ``pixels_per_beat``: pixels per beat of the ``pixels`` port; ``ram_width``: memories of at
    most this many bits per word, 18 for ECP5 block RAM; ``counters=False``: no counter read
    port, ``ctr_data`` is 0)."""
    from .network import NetworkTop, check_supported
    _check_name(name)          # everything is checked before the top exists
    check_supported(net)
    if fifo_depth is not None and (not isinstance(fifo_depth, int) or fifo_depth < 1):
        raise MlsnnError(f"fifo_depth must be a positive integer, not {fifo_depth!r}")
    try:
        top = NetworkTop(net, fifo_depth=fifo_depth, discharge=discharge, synapse=synapse,
                         monitor=monitor, weights=weights, pixels_per_beat=pixels_per_beat,
                         ram_width=ram_width, counters=counters)
    except (TypeError, ValueError) as e:
        raise MlsnnError(str(e)) from None
    return convert(top, name=name), top


def layer_verilog(net, layer_name, *, name="top", discharge="parallel", synapse="mul"):
    """Verilog of the core of one layer of ``net`` (the core its kind names: :mod:`hw.cores`)."""
    from .cores import layer_core
    _check_name(name)
    try:
        core = layer_core(net, layer_name, discharge=discharge, synapse=synapse)
    except (TypeError, ValueError) as e:
        raise MlsnnError(str(e)) from None
    return convert(core, name=name), core


def write_text(path, text):
    """Write ``text`` to ``path`` (creating its directory); errors become MlsnnError."""
    d = os.path.dirname(os.path.abspath(path))
    try:
        os.makedirs(d, exist_ok=True)
        with open(path, "w") as f:
            f.write(text)
    except OSError as e:
        raise MlsnnError(f"cannot write {path}: {e.strerror}") from None

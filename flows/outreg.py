"""ECP5 block RAM output registers: move a register that follows a DP16KD into the block RAM.

Why: yosys maps every ECP5 block RAM read port to a DP16KD without its output register
(``REGMODE="NOREG"``), whose clock-to-out is 5.6 ns in nextpnr's timing model for speed grade 6;
with the register (``REGMODE="OUTREG"``) it is under 1 ns. yosys' memory mapper cannot absorb
a second register into the primitive (it would have to emulate every mismatch of enables and
resets), so at 150 MHz (6.67 ns) every path out of an inferred block RAM fails, even one that
goes straight into a flip-flop.

What: this pass rewrites yosys' JSON netlist between synthesis and nextpnr. For each DP16KD port
X (A or B) in NOREG mode whose used data outputs ``DOX<k>`` each drive exactly one input, the
``DI`` of a ``TRELLIS_FF``, and nothing else, with all of these flip-flops

- clocked by the port's clock net, both without inversion,
- enabled by one common net (``CEMUX="CE"``) or always enabled (``CEMUX="1"``),
- never reset (``LSR`` unconnected or constant 0) and initialised to 0 (``REGSET="RESET"``),

and the port's own reset ``RSTX`` constant 0, the flip-flops are deleted, their ``Q`` nets are
driven by the ``DOX<k>`` outputs, ``OCEX`` gets their enable and the port switches to
``REGMODE_X="OUTREG"``. Behaviour is unchanged: in NOREG mode the port's output latch loads the
addressed word when ``CEX`` is high and holds it otherwise, and the flip-flop loaded that latch
when its enable was high; in OUTREG mode the port's output register does exactly that, with
``OCEX`` as its enable. A port that does not match every condition is left as it is.

In the RTL this takes a register right after a block RAM read port with no reset
(``reset_less=True``): ``hw.layer.LayerCore``'s ``k_w`` after the weight memory.

Usage: ``python -m flows.outreg top.json`` (rewrites the file in place, prints what it did).
"""

from __future__ import annotations

import json
import sys

__all__ = ["absorb_output_registers", "absorb_file"]

_ZERO = ("0",)


def _param(params, key, default):
    """A string parameter; yosys' JSON writes strings made of 0/1/x/z with a trailing space."""
    v = params.get(key, default)
    return v.rstrip(" ") if isinstance(v, str) else v


def _bits_zero(bits):
    return bits is None or all(b in _ZERO for b in bits)


def _index(module):
    """``{net bit: [(cell, port)]}`` of every cell input, and the bits of the module's ports."""
    sinks = {}
    for name, cell in module.get("cells", {}).items():
        dirs = cell.get("port_directions", {})
        for port, bits in cell.get("connections", {}).items():
            if dirs.get(port) != "output":
                for b in bits:
                    if isinstance(b, int):
                        sinks.setdefault(b, []).append((name, port))
    port_bits = {b for p in module.get("ports", {}).values() for b in p.get("bits", ())
                 if isinstance(b, int)}
    return sinks, port_bits


def _absorb_port(module, name, x, sinks, port_bits):
    """Absorb the flip-flops after port ``x`` of DP16KD ``name``; return how many (0: none)."""
    cells = module["cells"]
    ram = cells[name]
    params, conn = ram.get("parameters", {}), ram.get("connections", {})
    if _param(params, f"REGMODE_{x}", "NOREG") != "NOREG":
        return 0
    if not _bits_zero(conn.get(f"RST{x}")):
        return 0
    clk = conn.get(f"CLK{x}")
    if _param(params, f"CLK{x}MUX", f"CLK{x}") != f"CLK{x}" or not clk or not isinstance(clk[0], int):
        return 0
    moves = []          # (data output port, flip-flop)
    for k in range(18):
        bits = conn.get(f"DO{x}{k}")
        if not bits or not isinstance(bits[0], int):
            continue
        b = bits[0]
        users = sinks.get(b, [])
        if b in port_bits:
            return 0
        if not users:
            continue
        if len(users) != 1:
            return 0
        ff_name, ff_port = users[0]
        ff = cells[ff_name]
        if ff.get("type") != "TRELLIS_FF" or ff_port != "DI":
            return 0
        moves.append((f"DO{x}{k}", ff_name))
    if not moves:
        return 0
    enable = None
    for _, ff_name in moves:
        ff = cells[ff_name]
        p, c = ff.get("parameters", {}), ff.get("connections", {})
        if _param(p, "CLKMUX", "CLK") != "CLK" or c.get("CLK") != clk:
            return 0
        if _param(p, "REGSET", "RESET") != "RESET" or not _bits_zero(c.get("LSR")):
            return 0
        cemux = _param(p, "CEMUX", "1")
        if cemux == "CE" and c.get("CE"):
            en = tuple(c["CE"])
        elif cemux == "1" or (cemux == "CE" and not c.get("CE")):
            en = ("1",)
        else:
            return 0
        if enable is None:
            enable = en
        elif en != enable:
            return 0
        if not c.get("Q"):
            return 0
    for port, ff_name in moves:
        conn[port] = list(cells[ff_name]["connections"]["Q"])
        del cells[ff_name]
    conn[f"OCE{x}"] = list(enable)
    params[f"REGMODE_{x}"] = "OUTREG"
    return len(moves)


def absorb_output_registers(netlist):
    """Rewrite a yosys JSON netlist (a dict, changed in place); see the module docstring.

    Returns
    -------
    dict
        ``{module name: {"ports": ports switched to OUTREG, "ffs": flip-flops absorbed}}`` for
        every module where something changed.
    """
    done = {}
    for mod_name, module in netlist.get("modules", {}).items():
        rams = [n for n, c in module.get("cells", {}).items() if c.get("type") == "DP16KD"]
        if not rams:
            continue
        ports = ffs = 0
        for name in rams:
            for x in ("A", "B"):
                sinks, port_bits = _index(module)
                n = _absorb_port(module, name, x, sinks, port_bits)
                if n:
                    ports += 1
                    ffs += n
        if ports:
            done[mod_name] = {"ports": ports, "ffs": ffs}
    return done


def absorb_file(path):
    """:func:`absorb_output_registers` on a JSON file, rewritten in place when changed."""
    with open(path) as f:
        netlist = json.load(f)
    done = absorb_output_registers(netlist)
    if done:
        with open(path, "w") as f:
            json.dump(netlist, f)
    return done


def main(argv=None):
    argv = sys.argv[1:] if argv is None else argv
    if len(argv) != 1:
        print("usage: python -m flows.outreg NETLIST.json", file=sys.stderr)
        return 2
    try:
        done = absorb_file(argv[0])
    except (OSError, ValueError) as e:
        print(f"error: {argv[0]}: {e}", file=sys.stderr)
        return 1
    ports = sum(d["ports"] for d in done.values())
    ffs = sum(d["ffs"] for d in done.values())
    print(f"flows.outreg: {ports} DP16KD port(s) switched to OUTREG, {ffs} flip-flop(s) absorbed")
    return 0


if __name__ == "__main__":
    sys.exit(main())

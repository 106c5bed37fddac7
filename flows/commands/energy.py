"""``mlsnn energy``: the Lemaire et al. analytic model (and Dampfhoffer's baselines) against the
exact (golden) and measured (RTL) counts.

Three modes::

    mlsnn energy --ir network.json --inputs x.npz [--measured sim.json] [--tech t.toml]
    mlsnn energy --arch vgg16 --input-shape 3,32,32 --ann
    mlsnn energy --arch vgg16 --input-shape 3,32,32 --snn --timesteps 1 --levels 4 \\
                 (--spike-rate 0.2 | --total-spikes 57000)
    mlsnn energy --breakeven

``--ir`` and ``--arch --snn`` also price seed 002's neuron models (IF/LIF with instantaneous
or current-based synapses, and mlsnn's own leak) on the network, against the naive ANN;
``--neuron-model`` chooses the rows (default: all). ``--breakeven`` prints seed 002's Tables
3.3 and 3.2 and the numbers of §3.3.3, recomputed.

Every mode takes ``--json`` (machine-readable on stdout) and ``--plot out.png``. With
``--measured``, any counter that differs from the golden model is printed on stderr and the exit
status is 1.
"""

import json
import math
import os
import sys

import numpy as np

from golden.errors import MlsnnError

#: Event FIFO depth of the hardware when ``NetworkTop(fifo_depth=None)`` (hw/network.py); the
#: energy of an IR network prices event accesses at the depth the hardware really has.
HW_FIFO_DEPTH = 16

#: ``golden.energy.dampfhoffer.NEURON_MODELS`` (spelled out so that building the parser does
#: not import the energy package, which imports torch).
NEURON_MODELS = ("if-inst", "lif-inst", "if-cont", "lif-cont", "lif-sweep")

NAME = "energy"
HELP = "analytic energy model (Lemaire; Dampfhoffer baselines) vs exact and measured counters"


def add_arguments(p):
    mode = p.add_mutually_exclusive_group()
    mode.add_argument("--ir", metavar="NETWORK_JSON",
                      help="IR network (network.json or its directory)")
    mode.add_argument("--arch", metavar="NAME",
                      help="vgg16, resnet18 (SEW), sew-resnet18, sparse-resnet18, or a JSON file "
                           "of layers")
    mode.add_argument("--breakeven", action="store_true",
                      help="Dampfhoffer's break-even spikes per synapse (seed 002 Table 3.3), "
                           "Table 3.2 and the neuron-update shares of §3.3.3, recomputed")
    mode.add_argument("--paper-table3", action="store_true",
                      help="seed 000 Table 3 beside mlsnn's VGG16 per term, with ratios (Table "
                           "3's conventions unless --conv-addressing/--pixels/--pool-events say)")
    p.add_argument("--inputs", metavar="X_NPZ", help="inputs .npz with key 'x', [B, *shape]")
    p.add_argument("--measured", metavar="SIM_JSON",
                   help="output of 'mlsnn simulate --json' on the same network and inputs")
    p.add_argument("--tech", metavar="FILE", help="technology overrides (.toml or .json)")
    p.add_argument("--sram", choices=("linear", "packed64"),
                   help="SRAM model (overrides the technology table)")
    p.add_argument("--fifo-depth", type=int, metavar="D",
                   help=f"event FIFO depth (default: {HW_FIFO_DEPTH}, the hardware's, with --ir; "
                        f"the technology table's with --arch)")
    p.add_argument("--input-shape", metavar="C,H,W", default="3,32,32",
                   help="input shape for --arch (default 3,32,32)")
    p.add_argument("--classes", type=int, default=10, help="classes for --arch (default 10)")
    kind = p.add_mutually_exclusive_group()
    kind.add_argument("--ann", action="store_true", help="--arch: the ANN only")
    kind.add_argument("--snn", action="store_true", help="--arch: the SNN (and the ANN)")
    p.add_argument("--timesteps", type=int, default=1, metavar="T")
    p.add_argument("--levels", type=int, default=1, metavar="N")
    p.add_argument("--spike-rate", metavar="R",
                   help="events per neuron per timestep: one number, or layer=rate,... "
                        "(with '*=rate' for the rest)")
    p.add_argument("--total-spikes", type=float, metavar="S",
                   help="spikes per inference, spread at one uniform rate")
    p.add_argument("--input-density", type=float, default=1.0,
                   help="fraction of nonzero input pixels for --arch (default 1)")
    p.add_argument("--mean-level", type=float, default=1.0,
                   help="average spike value z for the exact Σz ACC count with --arch "
                        "(default 1)")
    p.add_argument("--join", choices=("sew", "barrier"), default="sew",
                   help="residual join of resnet18 (default sew)")
    p.add_argument("--conv-addressing", choices=("per-synapse", "per-kernel"),
                   help="addressing ACC of a conv event: theta*C_out*K^2 (per-synapse, default: "
                        "Lemaire et al.'s equation, the hardware) or theta*K^2 (per-kernel: the "
                        "public implementation, what seed 000 Table 3 fits)")
    p.add_argument("--synapse", choices=("mul", "serial"),
                   help="z*w datapath priced by the '(hardware z*w)' rows: mul (shift-add of two "
                        "halves) or serial (z additions); default: the one the --measured run "
                        "used if it says, else mul")
    p.add_argument("--pixels", choices=("mac", "acc", "none"),
                   help="--arch --snn: price input pixels' synaptic updates as MACs (default), "
                        "as ACCs (a binary first layer) or not at all (the public "
                        "implementation)")
    p.add_argument("--pool-events", choices=("priced", "free"),
                   help="--arch --snn: pooling priced as a layer (default) or free (Table 3)")
    p.add_argument("--neuron-model", action="append", choices=NEURON_MODELS + ("all",),
                   metavar="MODEL",
                   help="--ir or --arch --snn: seed 002's neuron-model rows to give against "
                        "the naive ANN (repeatable): if-inst (eq. 3.4), lif-inst (3.7), "
                        "if-cont (3.10), lif-cont (3.10 + MAC), lif-sweep (mlsnn's leak: one "
                        "ACC per neuron per timestep t<T), all (the default)")
    p.add_argument("--json", action="store_true", help="print JSON")
    p.add_argument("--plot", metavar="PNG",
                   help="write the breakdown and per-layer, per-term stacked bars")


#: Options that apply to some modes only: (attribute, option, default, modes). A mode is "ir",
#: "ann" (--arch without --snn), "snn" (--arch --snn) or "breakeven".
_APPLIES = (
    ("inputs", "--inputs", None, ("ir",)),
    ("measured", "--measured", None, ("ir",)),
    ("fifo_depth", "--fifo-depth", None, ("ir", "snn")),
    ("input_shape", "--input-shape", "3,32,32", ("ann", "snn")),
    ("classes", "--classes", 10, ("ann", "snn")),
    ("join", "--join", "sew", ("ann", "snn")),
    ("ann", "--ann", False, ("ann",)),
    ("snn", "--snn", False, ("snn",)),
    ("timesteps", "--timesteps", 1, ("ann", "snn")),
    ("levels", "--levels", 1, ("ann", "snn")),
    ("spike_rate", "--spike-rate", None, ("snn",)),
    ("total_spikes", "--total-spikes", None, ("snn",)),
    ("input_density", "--input-density", 1.0, ("snn",)),
    ("mean_level", "--mean-level", 1.0, ("snn",)),
    ("plot", "--plot", None, ("ir", "ann", "snn")),
    ("conv_addressing", "--conv-addressing", None, ("ir", "snn", "paper")),
    ("synapse", "--synapse", None, ("ir", "snn", "paper")),
    ("pixels", "--pixels", None, ("snn", "paper")),
    ("pool_events", "--pool-events", None, ("snn", "paper")),
    ("neuron_model", "--neuron-model", None, ("ir", "snn")),
)

_MODE_NAMES = {"ir": "--ir", "ann": "--arch without --snn", "snn": "--arch --snn",
               "breakeven": "--breakeven", "paper": "--paper-table3"}


def _check_options(args):
    """Every option is valid and applies to the chosen mode (before any work)."""
    from flows.io import check_fifo_depth, check_number, check_output_file

    mode = ("breakeven" if args.breakeven else "paper" if args.paper_table3 else
            "ir" if args.ir else ("snn" if args.snn else "ann") if args.arch else None)
    if mode is not None:
        for attr, opt, default, modes in _APPLIES:
            if mode not in modes and getattr(args, attr) != default:
                if mode == "ann" and attr in ("spike_rate", "total_spikes"):
                    raise MlsnnError(f"{opt} needs --snn (an --arch estimate is the ANN only "
                                     f"without it)")
                where = " or ".join(_MODE_NAMES[m] for m in modes)
                raise MlsnnError(f"{opt} does not apply to {_MODE_NAMES[mode]} (only to "
                                 f"{where})")
    check_fifo_depth(args.fifo_depth)
    if args.timesteps < 1 or args.levels < 1:
        raise MlsnnError("--timesteps and --levels must be positive integers")
    if args.classes < 1:
        raise MlsnnError(f"--classes must be at least 1, not {args.classes}")
    check_number(args.total_spikes, "--total-spikes", minimum=0)
    check_number(args.input_density, "--input-density", minimum=0, maximum=1)
    check_number(args.mean_level, "--mean-level (average spike value, 1..N)", minimum=1,
                 maximum=args.levels)
    _rates(args.spike_rate)
    if args.plot:
        if not os.path.splitext(args.plot)[1] and not os.path.isdir(args.plot):
            args.plot += ".png"             # what matplotlib would write; report that path
        ext = os.path.splitext(args.plot)[1].lower()
        if not os.path.isdir(args.plot) and ext not in (".png", ".pdf", ".svg"):
            raise MlsnnError(f"--plot {args.plot}: the file must end in .png, .pdf or .svg")
        check_output_file(args.plot, "--plot")


def _tech(args):
    from golden.energy.tech import DEFAULT, load_tech

    tech = load_tech(args.tech) if args.tech else DEFAULT
    if args.sram:
        tech = tech.replace(sram={"model": args.sram})
    return tech


def _shape(text):
    parts = text.replace("x", ",").split(",")
    if not all(p.strip().isdigit() for p in parts):
        raise MlsnnError(f"--input-shape must be integers like 3,32,32, not {text!r}")
    shape = tuple(int(p) for p in parts)
    if len(shape) not in (1, 3) or min(shape) < 1:
        raise MlsnnError(f"--input-shape must be N or C,H,W of positive integers, not {text!r}")
    return shape


def _rates(text):
    if text is None:
        return None
    try:
        if "=" not in text:
            out = float(text)
            values = [out]
        else:
            out = {}
            for part in text.split(","):
                k, v = part.split("=")
                out[k.strip()] = float(v)
            values = list(out.values())
    except ValueError:
        raise MlsnnError(f"--spike-rate must be a number or layer=rate,..., not {text!r}") \
            from None
    for v in values:
        if not math.isfinite(v) or v < 0:
            raise MlsnnError(f"--spike-rate must be finite and >= 0 (events per neuron per "
                             f"timestep), not {v:g} in {text!r}")
    return out


def _check_rate_layers(rates, arch, name):
    """A layer=rate entry must name a layer of the architecture (or '*')."""
    if not isinstance(rates, dict):
        return
    names = [spec.name for spec in arch.layers]
    unknown = sorted(set(rates) - set(names) - {"*"})
    if unknown:
        shown = ", ".join(names[:12]) + (", ..." if len(names) > 12 else "")
        raise MlsnnError(f"--spike-rate names layer(s) {', '.join(unknown)} that {name} does not "
                         f"have (its layers: {shown}; '*' for the rest)")


def _neuron_models(args):
    """The rows of ``--neuron-model`` (None: all of them)."""
    chosen = args.neuron_model
    if not chosen or "all" in chosen:
        return None
    return list(dict.fromkeys(chosen))


def _load_inputs(path):
    from flows.io import load_inputs

    return load_inputs(path)


def _emit(args, report, text):
    if args.plot:
        from flows.energy_report import plot_report

        plot_report(report, args.plot)
    if args.json:
        json.dump(report, sys.stdout, indent=1, default=_default)
        sys.stdout.write("\n")
    else:
        print(text)
        if args.plot:
            print(f"\nplot written to {args.plot}")


def _default(o):
    if isinstance(o, np.generic):
        return o.item()
    raise TypeError(f"not JSON serialisable: {type(o).__name__}")


def run(args):
    from flows import energy_report

    _check_options(args)
    if args.breakeven:
        from golden.energy.dampfhoffer import breakeven, fig_3_2, table_3_2, table_3_3

        tech = _tech(args)
        rows = breakeven(tech)
        table = table_3_3(tech)
        t32, f32 = table_3_2(tech), fig_3_2(tech)
        if args.json:
            json.dump({"model": "dampfhoffer", "breakeven": rows, "table_3_3": table,
                       "table_3_2": t32, "fig_3_2": f32}, sys.stdout, indent=1)
            sys.stdout.write("\n")
        else:
            print(energy_report.format_breakeven(rows))
            print()
            print(energy_report.format_table_3_3(table))
            print()
            print(energy_report.format_table_3_2(t32))
            print()
            print(energy_report.format_fig_3_2(f32))
        return 0
    if args.paper_table3:
        from golden.energy.report import paper_table3

        table = paper_table3(_tech(args), addressing=args.conv_addressing or "per-kernel",
                             pixels=args.pixels or "none", pool_events=args.pool_events or "free",
                             synapse=args.synapse or "mul")
        if args.json:
            json.dump({"model": "lemaire", "paper_table3": table}, sys.stdout, indent=1)
            sys.stdout.write("\n")
        else:
            print(energy_report.format_paper_table3(table))
        return 0
    if args.ir:
        return _run_ir(args, energy_report)
    if args.arch:
        return _run_arch(args, energy_report)
    raise MlsnnError("choose one of --ir, --arch or --breakeven (or --paper-table3)")


def _run_ir(args, energy_report):
    from golden.energy.compare import ir_report
    from golden.ir import load

    if not args.inputs:
        raise MlsnnError("--ir needs --inputs x.npz (key 'x', shape [B, *input_shape])")
    net = load(args.ir)
    x = _load_inputs(args.inputs)
    report = ir_report(net, x, measured=args.measured, tech=_tech(args),
                       fifo_depth=args.fifo_depth or _hw_fifo_depth(),
                       addressing=args.conv_addressing or "per-synapse", synapse=args.synapse,
                       neuron_models=_neuron_models(args))
    _emit(args, report, energy_report.format_report(report))
    m = report.get("measured")
    if m is not None and not m["equals_exact"]:
        for mm in m["mismatches"]:
            print(f"mlsnn energy: MISMATCH layer '{mm['layer']}' counter {mm['counter']}: "
                  f"measured {mm['measured']} != exact {mm['exact']}", file=sys.stderr)
        print(f"mlsnn energy: error: measured counters differ from the golden model in "
              f"{len(m['mismatches'])} place(s)", file=sys.stderr)
        return 1
    return 0


def _hw_fifo_depth():
    try:
        import hw.network as hwn
    except ImportError:
        return HW_FIFO_DEPTH
    return int(getattr(hwn, "DEFAULT_FIFO_DEPTH", HW_FIFO_DEPTH))


def _run_arch(args, energy_report):
    from golden.energy.arch import named
    from golden.energy.report import arch_report

    arch = named(args.arch, _shape(args.input_shape), classes=args.classes, levels=args.levels,
                 join=args.join)
    _check_rate_layers(_rates(args.spike_rate), arch, args.arch)
    tech = _tech(args)
    if args.ann or not args.snn:
        if args.spike_rate or args.total_spikes:
            raise MlsnnError("--spike-rate/--total-spikes need --snn")
        report = arch_report(arch, ann_only=True, tech=tech)
    else:
        if (args.spike_rate is None) == (args.total_spikes is None):
            raise MlsnnError("--snn needs exactly one of --spike-rate or --total-spikes")
        report = arch_report(arch, timesteps=args.timesteps, rates=_rates(args.spike_rate),
                             total_spikes=args.total_spikes, input_density=args.input_density,
                             mean_level=args.mean_level, tech=tech, fifo_depth=args.fifo_depth,
                             addressing=args.conv_addressing or "per-synapse",
                             synapse=args.synapse or "mul",
                             pixels=args.pixels or "mac",
                             pool_events=args.pool_events or "priced",
                             neuron_models=_neuron_models(args))
    _emit(args, report, energy_report.format_report(report))
    return 0

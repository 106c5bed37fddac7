"""The nightly random regression behind ``mlsnn regress``.

Every seed is one :class:`RegressConfig`: a random network (``golden.fixtures.random_network``
with the corner-case options drawn from the seed), random inputs, and the hardware variant and
test-bench conditions it runs under (discharge, synapse, FIFO depth, input gaps, output stalls,
queue throttling). :func:`run_seed` runs one seed through the golden model and the RTL and judges
the result; :func:`run_seeds` runs many, in-process or on a ``dask.distributed`` cluster
(:func:`dask_client`, shared with ``mlsnn sweep``), and
:func:`summary_json` / :func:`junit_xml` report them.

Everything is a function of the seed, so a failure is reproduced by its seed alone
(:meth:`RegressConfig.to_cli` gives the two ``mlsnn`` commands).
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import shlex
import shutil
import tempfile
import time
import traceback
from dataclasses import dataclass
from typing import Optional
from xml.etree import ElementTree as ET

import numpy as np

from golden.errors import MlsnnError

__all__ = ["RegressConfig", "SIMULATORS", "parse_seeds", "parse_shard", "shard_seeds",
           "judge", "judge_cycles", "run_seed", "run_seeds", "dask_client", "save_failure", "summary_json",
           "junit_xml"]

SIMULATORS = ("amaranth", "icarus", "verilator")

#: Seed of the config draw, mixed with the network seed (the network itself uses the bare seed).
_CONFIG_SALT = 0x6D6C736E


@dataclass(frozen=True)
class RegressConfig:
    """Everything one regression network runs with; a pure function of ``seed``.

    Members
    -------
    seed : the network seed (``random_network(seed, ...)``, ``random_inputs(..., seed=seed)``)
        and the seed of the random gaps, stalls and throttling.
    kind, max_neurons, in_bits, non_square, conv_readout, negative_v0, wide_stream_weights,
    narrow_width, pool, hard_reset, leaky, lanes, early_exit, bitserial, narrow_fire : options of
        :func:`golden.fixtures.random_network` (``kind=None``, ``in_bits=None``: drawn by it;
        the serial synapse takes z cycles per update, so with it the inputs are at most 4
        bits). Only combinations the hardware builds are drawn: ``bitserial`` without pool,
        hard_reset, leaky, narrow_width, lanes and early_exit. ``kind`` is ``"residual"`` on
        some early-exit seeds only (random_network draws dense or conv for an early exit), and
        an early-exit seed keeps a drawn ``pool`` with probability 0.4 (both drawn last, so
        that the other seeds keep their networks). ``narrow_fire`` (fewer fire units than
        lanes) is drawn after them, on about half of the ``lanes`` seeds.
    discharge, synapse, fifo_depth : hardware variant (``fifo_depth=None``: sized from the IR).
    gap, stall, throttle : probabilities of an input idle cycle, an output stall, a throttled
        queue per cycle (``throttle`` only on the Amaranth simulator).
    """

    seed: int
    kind: Optional[str] = None
    max_neurons: int = 48
    in_bits: Optional[int] = None
    non_square: bool = False
    conv_readout: bool = False
    negative_v0: bool = False
    wide_stream_weights: bool = False
    narrow_width: bool = False
    pool: bool = False
    hard_reset: bool = False
    leaky: bool = False
    lanes: bool = False
    early_exit: bool = False
    bitserial: bool = False
    narrow_fire: bool = False
    discharge: str = "parallel"
    synapse: str = "mul"
    fifo_depth: Optional[int] = None
    gap: float = 0.0
    stall: float = 0.0
    throttle: float = 0.0

    NET_FLAGS = ("non_square", "conv_readout", "negative_v0", "wide_stream_weights",
                 "narrow_width", "pool", "hard_reset", "leaky", "lanes", "early_exit",
                 "bitserial", "narrow_fire")

    #: What ``bitserial`` switches off (random_network refuses them together).
    _EXCLUDES = {"bitserial": ("pool", "hard_reset", "leaky", "narrow_width", "lanes",
                               "early_exit")}
    #: Probabilities that an early-exit seed is residual (barrier and SEW joins) and that it
    #: keeps a drawn ``pool`` (docs/early-exit.md: joins and pools take part in the exit).
    EXIT_RESIDUAL, EXIT_POOL = 0.3, 0.4

    @classmethod
    def from_seed(cls, seed):
        """The configuration of regression seed ``seed`` (deterministic)."""
        rng = np.random.default_rng([_CONFIG_SALT, int(seed)])
        pick = lambda seq: seq[int(rng.integers(len(seq)))]  # noqa: E731
        synapse = pick(["mul", "serial"])
        cfg = dict(
            seed=int(seed),
            max_neurons=int(pick([8, 12, 16, 24])),
            in_bits=int(pick([2, 4])) if synapse == "serial" else None,
            non_square=bool(rng.random() < 0.5),
            conv_readout=bool(rng.random() < 0.3),
            negative_v0=bool(rng.random() < 0.4),
            wide_stream_weights=bool(rng.random() < 0.5),
            narrow_width=bool(rng.random() < 0.25),
            discharge=pick(["parallel", "serial"]),
            synapse=synapse,
            fifo_depth=pick([None, None, 1, 2]),
            gap=float(pick([0.0, 0.1, 0.3])),
            stall=float(pick([0.0, 0.1, 0.3])),
            throttle=float(pick([0.0, 0.0, 0.1, 0.3])),
            pool=bool(rng.random() < 0.5),      # drawn after the others: earlier seeds keep
            hard_reset=bool(rng.random() < 0.3),    # their values
            leaky=bool(rng.random() < 0.4),
            lanes=bool(rng.random() < 0.3),
            early_exit=bool(rng.random() < 0.25),
            bitserial=bool(rng.random() < 0.15),
        )
        exit_residual = bool(rng.random() < cls.EXIT_RESIDUAL)    # drawn last, like the above
        exit_pool = bool(rng.random() < cls.EXIT_POOL)
        narrow_fire = bool(rng.random() < 0.5)              # drawn after the above
        for flag, off in cls._EXCLUDES.items():
            if cfg[flag]:
                cfg.update({f: False for f in off})
        cfg["narrow_fire"] = narrow_fire and cfg["lanes"]
        if cfg["early_exit"]:
            cfg["kind"] = "residual" if exit_residual else None
            cfg["pool"] = cfg["pool"] and exit_pool
        return cls(**cfg)

    def network(self):
        from golden import fixtures
        return fixtures.random_network(self.seed, kind=self.kind, max_neurons=self.max_neurons,
                                       in_bits=self.in_bits,
                                       **{f: getattr(self, f) for f in self.NET_FLAGS})

    def inputs(self, net, images):
        from golden import fixtures
        return fixtures.random_inputs(net, images, seed=self.seed)

    def sim_options(self, sim):
        """Keyword arguments of the RTL runner of ``sim``."""
        opts = dict(seed=self.seed, gap=self.gap, stall=self.stall, fifo_depth=self.fifo_depth,
                    discharge=self.discharge, synapse=self.synapse)
        if sim == "amaranth":
            opts["throttle"] = self.throttle
        return opts

    def describe(self):
        """Short text of what is not the default, for messages."""
        parts = [f"seed {self.seed}"] + ([f"kind {self.kind}"] if self.kind else [])
        parts.append(f"max_neurons {self.max_neurons}")
        if self.in_bits is not None:
            parts.append(f"in_bits {self.in_bits}")
        parts += [f for f in self.NET_FLAGS if getattr(self, f)]
        parts += [f"discharge {self.discharge}", f"synapse {self.synapse}",
                  f"fifo_depth {self.fifo_depth or 'auto'}", f"gap {self.gap:g}",
                  f"stall {self.stall:g}", f"throttle {self.throttle:g}"]
        return ", ".join(parts)

    def to_cli(self, sim="amaranth", images=3, directory=None):
        """The reproducer: ``mlsnn random-network ... && mlsnn simulate ...`` (one line)."""
        d = directory or f"regress-seed{self.seed}"
        gen = ["mlsnn", "random-network", "--seed", str(self.seed)]
        if self.kind is not None:
            gen += ["--kind", self.kind]
        gen += ["--max-neurons", str(self.max_neurons)]
        if self.in_bits is not None:
            gen += ["--in-bits", str(self.in_bits)]
        gen += [f"--{f.replace('_', '-')}" for f in self.NET_FLAGS if getattr(self, f)]
        gen += ["--batch", str(images), "-o", d]
        return " ".join(shlex.quote(a) for a in gen) + " && " + self.simulate_cli(sim, d)

    def simulate_cli(self, sim, directory):
        """``mlsnn simulate`` on the network saved (or regenerated) in ``directory``."""
        cmd = ["mlsnn", "simulate", "--ir", directory, "--inputs",
               os.path.join(directory, "inputs.npz"), "--sim", sim,
               "--discharge", self.discharge, "--synapse", self.synapse]
        if self.fifo_depth is not None:
            cmd += ["--fifo-depth", str(self.fifo_depth)]
        cmd += ["--seed", str(self.seed), "--gaps", f"{self.gap:g}", "--stalls", f"{self.stall:g}"]
        if sim == "amaranth" and self.throttle:
            cmd += ["--throttle", f"{self.throttle:g}"]
        return " ".join(shlex.quote(a) for a in cmd)


# -- command-line parsing --------------------------------------------------------------------

def parse_seeds(text):
    """``"A:B"`` → ``range(A, B)`` with 0 <= A < B; ``"S"`` → ``range(S, S + 1)``."""
    parts = str(text).split(":")
    try:
        if len(parts) == 1:
            a = int(parts[0])
            b = a + 1
        elif len(parts) == 2:
            a, b = int(parts[0]), int(parts[1])
        else:
            raise ValueError
    except ValueError:
        raise MlsnnError(f"--seeds must be A:B (integers, 0 <= A < B), not {text!r}") from None
    if a < 0 or b <= a:
        raise MlsnnError(f"--seeds must be A:B with 0 <= A < B, not {text!r}")
    return range(a, b)


def parse_shard(text):
    """``"i/n"`` → ``(i, n)`` with n >= 1 and 0 <= i < n."""
    try:
        i, n = (int(v) for v in str(text).split("/"))
    except ValueError:
        raise MlsnnError(f"--shard must be i/n (integers, 0 <= i < n), not {text!r}") from None
    if n < 1:
        raise MlsnnError(f"--shard i/n needs n >= 1, not {text!r}")
    if not 0 <= i < n:
        raise MlsnnError(f"--shard i/n needs 0 <= i < n (i in 0..{n - 1}), not {text!r}")
    return i, n


def shard_seeds(seeds, shard=None):
    """The seeds of shard ``(i, n)``: seed s belongs to shard s mod n."""
    if shard is None:
        return list(seeds)
    i, n = shard
    return [s for s in seeds if s % n == i]


# -- one seed --------------------------------------------------------------------------------

def judge(net, golden, rtl, x):
    """``(status, messages)`` of an RTL run (:func:`sim.scoreboard.verdict`): status is
    ``match``, ``mismatch`` (the mismatch lines) or ``undetermined`` (saturation where the
    result depends on the event arrival order; the lines saying where)."""
    from sim.scoreboard import verdict
    v = verdict(net, golden, rtl, x)
    return v.status, list(v.messages if v.status == "mismatch" else v.undetermined)


def judge_cycles(cfg, net, x, golden, rtl):
    """``(cycles, messages)``: the RTL's cycles per image and every core's ``cycles`` counter
    against the cycle model (:func:`golden.cycles.network_cycles`, docs/cycles.md).

    ``cycles`` is ``"match"``, ``"mismatch"`` (``messages`` says where) or ``"not compared: "``
    and why: random gaps, stalls or throttling (the model assumes none), or the model refuses
    the network (one line, e.g. an early exit it does not cover yet): the seed's other
    comparisons still decide its status, but it is not counted as a cycle match.
    """
    if cfg.gap or cfg.stall or cfg.throttle:
        return "not compared: random gaps, stalls or throttling", []
    from golden.cycles import network_cycles
    try:
        rep = network_cycles(net, x, discharge=cfg.discharge, synapse=cfg.synapse,
                             fifo_depth=cfg.fifo_depth, golden=golden)
    except MlsnnError as e:
        return f"not compared: {e}", []
    msgs = []
    for b, (g, e) in enumerate(zip(np.asarray(rtl.cycles).tolist(), rep.cycles.tolist())):
        if int(g) != int(e):
            msgs.append(f"image {b}: RTL {int(g)} cycles, cycle model {int(e)}")
    for layer in net.layers:
        got = np.asarray(rtl.counters[layer.name]["cycles"]).tolist()
        want = rep.layers[layer.name].tolist()
        for b, (g, e) in enumerate(zip(got, want)):
            if int(g) != int(e):
                msgs.append(f"image {b}, layer '{layer.name}', counter cycles: RTL {int(g)}, "
                            f"cycle model {int(e)}")
    return ("mismatch" if msgs else "match"), msgs


def _rtl_runner(sim):
    """The function running a network on ``sim``: ``f(net, x, golden, build_dir, **opts)``."""
    if sim == "amaranth":
        from sim.amaranth_run import run_network

        def run(net, x, golden, build_dir, **opts):
            return run_network(net, x, **opts)
        return run
    if sim in ("icarus", "verilator"):
        from sim.cocotb_run import run_network_cocotb

        def run(net, x, golden, build_dir, **opts):
            return run_network_cocotb(net, x, simulator=sim, golden=golden,
                                      build_dir=build_dir, **opts)
        return run
    raise MlsnnError(f"--sim must be one of {', '.join(SIMULATORS)}, not {sim!r}")


def check_simulator(sim):
    """Raise :class:`MlsnnError` now (before any network) when ``sim`` cannot run here."""
    _rtl_runner(sim)
    if sim == "icarus" and (shutil.which("iverilog") is None or shutil.which("vvp") is None):
        raise MlsnnError("Icarus Verilog (iverilog, vvp) is not on PATH; install it "
                         "('sudo apt-get install iverilog') or use --sim amaranth")
    if sim == "verilator":
        from sim.verilator_env import setup
        setup()         # the verilator package, perl, make and g++ (one-line error otherwise)


def run_seed(seed, sim="amaranth", images=3, *, worker_threads=None, build_root=None):
    """Run regression seed ``seed``; return a JSON-ready dict.

    Keys: ``seed``, ``status`` (``match``, ``mismatch``, ``undetermined`` or ``error``: the run
    itself failed, e.g. a simulation timeout), ``messages`` (at most 20 lines), ``seconds``,
    ``cpu_seconds`` (this process and its simulator children), ``config`` (the
    :class:`RegressConfig` fields), ``network`` (a short description), ``cycles`` (after the
    RTL ran: :func:`judge_cycles`' ``match``, ``mismatch`` or ``not compared: why``).
    ``worker_threads`` sets torch's threads (1 on Dask workers); ``build_root`` is where the
    cocotb build directory of this network is made (default: the local temp dir); it is
    removed after a match.
    """
    t0 = time.monotonic()
    cpu0 = _cpu_seconds()
    if worker_threads is not None:
        import torch
        torch.set_num_threads(worker_threads)
    cfg = RegressConfig.from_seed(seed)
    out = {"seed": int(seed), "config": dataclasses.asdict(cfg), "network": ""}
    bdir = None
    try:
        from golden.reference import run as golden_run
        net = cfg.network()
        out["network"] = _describe_net(net)
        x = cfg.inputs(net, images)
        golden = golden_run(net, x)
        runner = _rtl_runner(sim)
        if sim != "amaranth":
            root = build_root or os.path.join(tempfile.gettempdir(),
                                              f"mlsnn-regress-{os.getuid()}")
            os.makedirs(root, exist_ok=True)
            bdir = tempfile.mkdtemp(prefix=f"seed{seed}-", dir=root)
        rtl = runner(net, x, golden, bdir, **cfg.sim_options(sim))
        status, msgs = judge(net, golden, rtl, x)
        if status == "match":
            out["cycles"], msgs = judge_cycles(cfg, net, x, golden, rtl)
            status = "mismatch" if msgs else status
        else:
            out["cycles"] = f"not compared: the tokens and counters are {status}"
    except MlsnnError as e:
        status, msgs = "error", [f"error: {e}"]
    except Exception as e:      # a crash of the simulation is a failure of this seed, not the run
        tb = traceback.extract_tb(e.__traceback__)
        where = f" ({tb[-1].filename}:{tb[-1].lineno})" if tb else ""
        status, msgs = "error", [f"error: {type(e).__name__}: {e}{where}"]
    if bdir and status in ("match", "undetermined"):
        shutil.rmtree(bdir, ignore_errors=True)
    out.update(status=status, messages=msgs[:20], seconds=round(time.monotonic() - t0, 3),
               cpu_seconds=round(_cpu_seconds() - cpu0, 3))
    return out


def _cpu_seconds():
    """CPU time of this process and its finished children (the Icarus/Verilator runs): the
    cost of a network on a loaded machine, where wall-clock seconds mostly measure the load."""
    import resource
    ch = resource.getrusage(resource.RUSAGE_CHILDREN)
    return time.process_time() + ch.ru_utime + ch.ru_stime


def _describe_net(net):
    parts = []
    for layer in net.layers:
        k = layer.label
        parts.append(f"{layer.name}:{k}{tuple(net.info(layer.name).out_shape)}")
    return f"T={net.timesteps} in{tuple(net.input.shape)} " + " ".join(parts)


# -- many seeds ------------------------------------------------------------------------------

class _NoDask(MlsnnError):
    pass


def _dask():
    try:
        import distributed  # noqa: F401
    except ImportError:
        raise _NoDask("--jobs > 1 and --scheduler need dask.distributed: pip install "
                      "'mlsnn[regress]' (or 'dask[distributed]')") from None
    import distributed
    return distributed


@contextlib.contextmanager
def dask_client(jobs=1, scheduler=None):
    """A ``dask.distributed.Client``: on a new ``LocalCluster`` of ``jobs`` worker processes
    (one thread each) or, with ``scheduler``, on the existing cluster at that address (it must
    answer within 3 s and have a worker within 60 s). The client, and the local cluster, are
    closed on leaving the ``with`` block, whatever the cause (also ``KeyboardInterrupt``).

    Raises
    ------
    MlsnnError
        No dask.distributed, an unreachable scheduler or one without workers (one line each).
    """
    distributed = _dask()
    import logging
    cluster = None
    if scheduler is None:
        cluster = distributed.LocalCluster(n_workers=jobs, threads_per_worker=1,
                                           processes=True, dashboard_address=":0",
                                           silence_logs=logging.ERROR)
        client = distributed.Client(cluster)
    else:
        try:
            client = distributed.Client(scheduler, timeout="3s")
        except (OSError, TimeoutError, ValueError) as e:
            raise MlsnnError(f"cannot reach the Dask scheduler at {scheduler}: "
                             f"{type(e).__name__}: {e}") from None
        except Exception as e:      # something answered, but not a Dask scheduler
            raise MlsnnError(f"cannot reach the Dask scheduler at {scheduler}: the address "
                             f"did not answer as a Dask scheduler ({type(e).__name__})") from None
        try:
            client.wait_for_workers(1, timeout=60)
        except (TimeoutError, OSError):
            client.close()
            raise MlsnnError(f"the Dask scheduler at {scheduler} has no workers (start some "
                             f"with 'dask worker {scheduler}')") from None
    try:
        yield client
    finally:
        client.close()
        if cluster is not None:
            cluster.close()


def run_seeds(seeds, sim="amaranth", images=3, *, jobs=1, scheduler=None, on_result=None):
    """Run every seed; call ``on_result(result)`` as each finishes; return the results in
    seed order.

    ``jobs == 1`` and no ``scheduler``: in this process. Otherwise on a ``dask.distributed``
    cluster: a ``LocalCluster`` of ``jobs`` worker processes (one thread each) or the existing
    cluster at ``scheduler``. Workers build in their own local temp dirs.
    """
    seeds = list(seeds)
    results = {}

    def done(res):
        results[res["seed"]] = res
        if on_result:
            on_result(res)

    if jobs == 1 and scheduler is None:
        for s in seeds:
            done(run_seed(s, sim, images))
        return [results[s] for s in seeds]

    distributed = _dask()
    with dask_client(jobs, scheduler) as client:
        futs = {client.submit(run_seed, s, sim, images, worker_threads=1, pure=False,
                              key=f"mlsnn-regress-{sim}-{s}-{os.getpid()}"): s for s in seeds}
        for fut in distributed.as_completed(futs):
            s = futs[fut]
            try:
                res = fut.result()
            except Exception as e:      # the worker died (or the task could not run)
                res = {"seed": s, "config": dataclasses.asdict(RegressConfig.from_seed(s)),
                       "network": "", "status": "error", "seconds": 0.0,
                       "messages": [f"error: the Dask task failed: {type(e).__name__}: {e}"]}
            done(res)
    return [results[s] for s in seeds]


def save_failure(result, directory, sim, images):
    """Save a failing seed's network and inputs (regenerated from the seed) under
    ``directory/seed<S>``; return that path. Also writes ``regress.json`` (config, messages)."""
    import json
    from flows.io import save_inputs
    from golden import ir
    cfg = RegressConfig(**result["config"])
    d = os.path.join(directory, f"seed{cfg.seed}")
    try:
        net = cfg.network()
    except MlsnnError:
        return None
    ir.save(net, d)
    save_inputs(os.path.join(d, "inputs.npz"), cfg.inputs(net, images))
    with open(os.path.join(d, "regress.json"), "w") as f:
        json.dump({"sim": sim, "images": images, "status": result["status"],
                   "config": result["config"], "messages": result["messages"],
                   "reproducer": cfg.simulate_cli(sim, d)}, f, indent=1)
        f.write("\n")
    return d


def failed(result):
    return result["status"] in ("mismatch", "error")


def summary_json(results, seconds):
    """The ``--json`` document (``failures`` carry ``reproducer`` and ``network_dir``)."""
    n = len(results)
    return {
        "networks": n,
        "passed": sum(r["status"] == "match" for r in results),
        "failed": sum(failed(r) for r in results),
        "undetermined": sum(r["status"] == "undetermined" for r in results),
        "cycles_compared": sum(r.get("cycles") in ("match", "mismatch") for r in results),
        "cycles_not_compared": sum(str(r.get("cycles", "")).startswith("not compared")
                                   for r in results),
        "cycles_refused": sum(str(r.get("cycles", "")).startswith("not compared: cycle model")
                              for r in results),
        "seconds": round(seconds, 3),
        "seconds_per_network": round(seconds / n, 3) if n else 0.0,
        "cpu_seconds_per_network": round(sum(r.get("cpu_seconds", 0.0) for r in results) / n, 3)
        if n else 0.0,
        "failures": [{"seed": r["seed"], "reproducer": r.get("reproducer", ""),
                      "network_dir": r.get("network_dir"), "status": r["status"],
                      "message": r["messages"][0] if r["messages"] else ""}
                     for r in results if failed(r)],
    }


def junit_xml(results, sim, seconds):
    """JUnit XML text: one ``testcase`` per network (failure = first mismatch + reproducer;
    undetermined = skipped)."""
    suite = ET.Element("testsuite", name=f"mlsnn-regress-{sim}", tests=str(len(results)),
                       failures=str(sum(r["status"] == "mismatch" for r in results)),
                       errors=str(sum(r["status"] == "error" for r in results)),
                       skipped=str(sum(r["status"] == "undetermined" for r in results)),
                       time=f"{seconds:.3f}")
    for r in results:
        case = ET.SubElement(suite, "testcase", classname=f"regress.{sim}",
                             name=f"seed{r['seed']}", time=f"{r['seconds']:.3f}")
        first = r["messages"][0] if r["messages"] else ""
        if failed(r):
            tag = "failure" if r["status"] == "mismatch" else "error"
            el = ET.SubElement(case, tag, message=first, type=r["status"])
            el.text = "\n".join([first, f"network: {r.get('network', '')}",
                                 f"config: {RegressConfig(**r['config']).describe()}",
                                 f"reproduce: {r.get('reproducer', '')}"]
                                + [f"  {m}" for m in r["messages"][1:]])
        elif r["status"] == "undetermined":
            ET.SubElement(case, "skipped", message=f"undetermined: {first}")
    ET.indent(suite)
    return ET.tostring(suite, encoding="unicode", xml_declaration=True) + "\n"

"""The end-to-end demo (`mlsnn demo`, `make demo`).

Every stage runs the very `mlsnn` command a user would type (as a subprocess, with ``--json``),
so the demo exercises the real command line: train (cached) → export → RTL simulation on Icarus
with a bit-exact check of every image → synthesis for iCE40 UP5K → energy model against the
measured counters → ``report.md`` with PNG plots. A stage that fails is reported (its stderr is
kept in ``logs/``) and the demo goes on with what it can, then exits non-zero.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time

import numpy as np

from golden.errors import MlsnnError

DEFAULT = dict(arch="mlp", timesteps=1, levels=4, epochs=10, hidden=32, seed=0)


class Stage:
    def __init__(self, name, ok, seconds, doc=None, error=None, log=None):
        self.name, self.ok, self.seconds = name, ok, seconds
        self.doc, self.error, self.log = doc, error, log


class Demo:
    """Runs the stages; ``out`` is the output directory (``out/demo``)."""

    def __init__(self, out, *, images=100, sim="icarus", target="ice40-up5k", retrain=False,
                 skip_synth=False, config=None, echo=print):
        self.out = out
        self.images = images
        self.sim = sim
        self.target = target
        self.retrain = retrain
        self.skip_synth = skip_synth
        self.config = dict(DEFAULT, **(config or {}))
        self.echo = echo
        self.stages = {}
        self._check_options()
        os.makedirs(os.path.join(out, "logs"), exist_ok=True)

    def _check_options(self):
        """Every option, before any stage runs (a bad one must not cost a training)."""
        from flows.io import check_output_dir
        c = self.config
        limits = {"images": (self.images, 1, None), "timesteps": (c["timesteps"], 1, 1024),
                  "levels": (c["levels"], 1, 255), "epochs": (c["epochs"], 1, None),
                  "hidden": (c["hidden"], 1, None), "seed": (c["seed"], 0, (1 << 63) - 1)}
        for name, (value, lo, hi) in limits.items():
            if isinstance(value, bool) or not isinstance(value, int) or value < lo or (
                    hi is not None and value > hi):
                span = f"in [{lo}, {hi}]" if hi is not None else f"at least {lo}"
                raise MlsnnError(f"--{name} must be an integer {span}, not {value!r}")
        check_output_dir(self.out)

    # -- plumbing ------------------------------------------------------------------------------
    def _cmd(self, stage, args, *, json_out=True):
        """Run ``mlsnn ARGS`` streaming its stderr (progress) to ours; return the JSON."""
        cmd = [sys.executable, "-m", "flows.cli"] + [str(a) for a in args]
        if json_out:
            cmd.append("--json")
        log = os.path.join(self.out, "logs", f"{stage}.log")
        self.echo(f"[demo] {stage}: mlsnn {' '.join(str(a) for a in args)}")
        t0 = time.monotonic()
        with open(log, "w") as lf:
            lf.write("$ " + " ".join(cmd) + "\n")
            proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                    text=True)
            err_lines = []
            for line in proc.stderr:                  # progress lines, live
                err_lines.append(line)
                lf.write(line)
                sys.stderr.write(f"        {line}")
                sys.stderr.flush()
            out = proc.stdout.read()
            proc.wait()
            lf.write(out)
        dt = time.monotonic() - t0
        if proc.returncode != 0:
            msg = (err_lines[-1].strip() if err_lines else f"exit status {proc.returncode}")
            self.stages[stage] = Stage(stage, False, dt, error=msg, log=log)
            self.echo(f"[demo] {stage}: FAILED after {dt:.0f} s: {msg}")
            return None
        doc = json.loads(out) if json_out and out.strip() else None
        self.stages[stage] = Stage(stage, True, dt, doc=doc, log=log)
        self.echo(f"[demo] {stage}: done in {dt:.0f} s")
        return doc

    def path(self, *parts):
        return os.path.join(self.out, *parts)

    # -- stages --------------------------------------------------------------------------------
    def train(self):
        c = self.config
        model = self.path("model.pt")
        meta = self.path("model.json")
        key = json.dumps(c, sort_keys=True)
        if not self.retrain and os.path.exists(model) and os.path.exists(meta):
            with open(meta) as f:
                cached = json.load(f)
            if cached.get("key") == key:
                self.echo(f"[demo] train: cached {model} (delete it or pass --retrain to "
                          f"train again)")
                self.stages["train"] = Stage("train", True, 0.0, doc=cached["doc"])
                return cached["doc"]
        doc = self._cmd("train", ["train", "--dataset", "digits", "--arch", c["arch"],
                                  "--timesteps", c["timesteps"], "--levels", c["levels"],
                                  "--epochs", c["epochs"], "--hidden", c["hidden"],
                                  "--seed", c["seed"], "-o", model])
        if doc is not None:
            with open(meta, "w") as f:
                json.dump({"key": key, "doc": doc}, f)
        return doc

    def export(self):
        doc = self._cmd("export", ["export", self.path("model.pt"), "-o", self.path("net")])
        if doc is None:
            return None
        data = np.load(self.path("net", "inputs.npz"))
        n = min(self.images, len(data["y"]))
        np.savez(self.path("net", f"test{n}.npz"), x=data["x"][:n], y=data["y"][:n])
        self.subset = self.path("net", f"test{n}.npz")
        return doc

    def simulate(self):
        doc = self._cmd("simulate", ["simulate", "--ir", self.path("net", "network.json"),
                                     "--inputs", self.subset, "--sim", self.sim])
        if doc is not None:
            with open(self.path("simulate.json"), "w") as f:
                json.dump(doc, f, indent=1)
            y = np.load(self.subset)["y"]
            doc["rtl_accuracy"] = float((np.array(doc["predictions"]) == y).mean())
        return doc

    def synth(self):
        if self.skip_synth:
            self.echo("[demo] synth: skipped (--skip-synth)")
            return None
        doc = self._cmd("synth", ["synth", "--ir", self.path("net", "network.json"),
                                  "--target", self.target])
        if doc is not None:
            with open(self.path("synth.json"), "w") as f:
                json.dump(doc, f, indent=1)
        return doc

    def energy(self):
        args = ["energy", "--ir", self.path("net", "network.json"), "--inputs", self.subset,
                "--plot", self.path("energy.png")]
        if self.stages.get("simulate") and self.stages["simulate"].ok:
            args += ["--measured", self.path("simulate.json")]
        doc = self._cmd("energy", args)
        if doc is not None:
            with open(self.path("energy.json"), "w") as f:
                json.dump(doc, f, indent=1)
        return doc

    def golden(self):
        return self._cmd("golden", ["golden", "--ir", self.path("net", "network.json"),
                                    "--inputs", self.subset])

    # -- all -----------------------------------------------------------------------------------
    def run(self):
        t0 = time.monotonic()
        if self.train() is None:
            raise MlsnnError("training failed; see " + self.stages["train"].log)
        if self.export() is None:
            raise MlsnnError("export failed; see " + self.stages["export"].log)
        self.golden()
        self.simulate()
        self.synth()
        self.energy()
        from flows.demo_report import write_report
        report = write_report(self)
        total = time.monotonic() - t0
        self.echo(f"[demo] report: {report} ({total:.0f} s in all)")
        self.print_summary()
        return all(s.ok for s in self.stages.values())

    def print_summary(self):
        exp = self.stages["export"].doc
        sim = self.stages.get("simulate")
        print("")
        print("== mlsnn demo summary ==")
        print(f"network: {exp['arch']} T={exp['timesteps']} N={exp['levels']} "
              f"W_BITS={exp['w_bits']} on scikit-learn digits ({exp['n_test']} test images)")
        print(f"accuracy: float {100 * exp['float_accuracy']:.2f} %, integer golden "
              f"{100 * exp['golden_accuracy']:.2f} %")
        if sim and sim.ok:
            d = sim.doc
            print(f"RTL ({self.sim}): {len(d['predictions'])} images, bit-exact match with "
                  f"golden: {d['match']}, accuracy {100 * d['rtl_accuracy']:.2f} %, "
                  f"{d['cycles'] / len(d['predictions']):.0f} cycles/image")
        syn = self.stages.get("synth")
        if syn and syn.ok:
            d = syn.doc
            print(f"{d['target']}: {d['luts']} LUT4, {d['ffs']} FF, {d['brams']} BRAM, "
                  f"{d['dsps']} DSP, Fmax {d['fmax_mhz']:.1f} MHz")
        en = self.stages.get("energy")
        if en and en.ok:
            tot = en.doc.get("summary") or {}
            if "total" in tot:
                print(f"energy (Lemaire 45 nm model, {tot.get('source')} counts): "
                      f"{tot['total']:.3g} nJ per inference (ANN of the same shape: "
                      f"{tot.get('ann_total', float('nan')):.3g} nJ); measured == exact: "
                      f"{en.doc.get('measured_equals_exact')}")
        failed = [s.name for s in self.stages.values() if not s.ok]
        if failed:
            print(f"FAILED stages: {', '.join(failed)} (logs in {self.path('logs')})")

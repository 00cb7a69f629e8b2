"""Runs TF Serving's own model-server test suite against `python -m server`.

`tensorflow_model_server_test.py` (tensorflow/serving) starts
`$TEST_SRCDIR/tf_serving/tensorflow_serving/model_servers/tensorflow_model_server`
with TF Serving's flags and talks to it over gRPC, REST and a Unix socket. This
runner lays out a `TEST_SRCDIR` in a temporary directory where that binary is
our shim (`tensorflow_model_server` beside this file, which execs
`python -m server`) and the test models are the checkout's own, then runs the
suite's test cases one by one and prints pass / fail / skip per case.

Nothing of the checkout is copied into this repository: give the path of a
tensorflow/serving checkout extracted somewhere else (e.g. /tmp/tfserving)::

    python -m tests.tfserving_suite.run /tmp/tfserving --json /tmp/suite.json

Left out: the TFLite cases (this server serves SavedModels only), the profiler
case (the TensorFlow profiler service is not exposed), and any case whose test
model is absent from the checkout (large files a snapshot may lack).

Each case gets fresh servers: the suite caches one server per argument set for
the whole run; the runner stops them after every case so a run holds one or two
servers at a time instead of a dozen (the cache still serves repeats within a case).
"""
from __future__ import annotations

import argparse
import importlib.util
import json
import os
import signal
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
SHIM = Path(__file__).resolve().parent / "tensorflow_model_server"
SUITE = "tensorflow_serving/model_servers/tensorflow_model_server_test.py"
SUITE_BASE = "tensorflow_serving/model_servers/test_util/tensorflow_model_server_test_base.py"
TESTDATA = "tensorflow_serving/servables/tensorflow/testdata"

# Case name -> why it is not run.
EXCLUDED = {
    "testPredictOnTfLite": "TFLite models are not served (SavedModel only)",
    "testPredictWithSignatureDefOnTfLite": "TFLite models are not served (SavedModel only)",
    "test_profiler_service_with_valid_trace_request": "the TensorFlow profiler service is not exposed",
}
# Case name -> the test model it needs from the checkout.
NEEDS_MODEL = {"test_tf_text": "tf_text_regression/01/saved_model.pb"}

_PORTPICKER = '''"""Stand-in for the portpicker package: a port the kernel just handed out."""
import socket


def pick_unused_port():
    with socket.socket() as s:
        s.bind(("localhost", 0))
        return s.getsockname()[1]
'''

# Runs inside the child interpreter, whose sys.path reaches the overlay package.
_CHILD = r'''
import json, signal, sys, unittest
from absl import flags
signal.signal(signal.SIGTERM, lambda *_: sys.exit(1))  # atexit then kills the suite's servers
from tensorflow_serving.model_servers import tensorflow_model_server_test as suite
from tensorflow_serving.model_servers.test_util import tensorflow_model_server_test_base as base
flags.FLAGS([sys.argv[0], "--test_tmpdir=" + sys.argv[2]])  # absltest defines it on import
# The suite gives a server 60 s to answer; ours imports TensorFlow first, which
# takes longer than that on a loaded machine (the suite's timing, not its checks).
base.WAIT_FOR_SERVER_READY_INT_SECS = 300

results = {}


class Result(unittest.TextTestResult):
    def addSuccess(self, test):
        super().addSuccess(test)
        results[test._testMethodName] = ("pass", "")

    def addFailure(self, test, err):
        super().addFailure(test, err)
        results[test._testMethodName] = ("fail", self._exc_info_to_string(err, test))
        print(results[test._testMethodName][1], file=sys.stderr, flush=True)

    def addError(self, test, err):
        super().addError(test, err)
        results[test._testMethodName] = ("fail", self._exc_info_to_string(err, test))
        print(results[test._testMethodName][1], file=sys.stderr, flush=True)

    def addSkip(self, test, reason):
        super().addSkip(test, reason)
        results[test._testMethodName] = ("skip", reason)

    def stopTest(self, test):
        super().stopTest(test)
        servers = base.TensorflowModelServerTestBase.model_servers_dict
        for proc, *_ in servers.values():
            proc.kill()
            proc.wait()
        servers.clear()
        with open(sys.argv[3], "w") as f:  # after every case: a run cut short still reports
            json.dump(results, f)


# unittest's order (absltest's too): test_distrat_* must set up virtual CPUs
# before any case starts TensorFlow's runtime in this process.
names = sorted(json.loads(sys.argv[1]))
tests = unittest.TestSuite(suite.TensorflowModelServerTest(n) for n in names)
unittest.TextTestRunner(stream=sys.stderr, verbosity=2, resultclass=Result).run(tests)
'''


def case_names(checkout: Path) -> list[str]:
    """The suite's test methods, in file order."""
    names = []
    for line in (checkout / SUITE).read_text().splitlines():
        stripped = line.strip()
        if stripped.startswith("def test") and line.startswith("  def "):
            names.append(stripped[4:].split("(")[0])
    return names


def _overlay(checkout: Path, root: Path) -> tuple[Path, Path]:
    """(TEST_SRCDIR, directory for sys.path) laid out under `root`."""
    srcdir = root / "srcdir"
    tfs = srcdir / "tf_serving" / "tensorflow_serving"
    (tfs / "model_servers").mkdir(parents=True)
    (tfs / "servables").symlink_to(checkout / "tensorflow_serving" / "servables")
    (tfs / "model_servers" / "tensorflow_model_server").symlink_to(SHIM)

    pylib = root / "pylib"
    pkg = pylib / "tensorflow_serving"
    (pkg / "model_servers" / "test_util").mkdir(parents=True)
    installed = importlib.util.find_spec("tensorflow_serving")
    if installed is None or not installed.submodule_search_locations:
        raise SystemExit("tensorflow-serving-api is not installed (pip install tensorflow-serving-api)")
    # The suite imports tensorflow_serving.apis (the pip package) and
    # tensorflow_serving.model_servers (the checkout's test files) from one package.
    (pkg / "__init__.py").write_text(f"__path__.extend({list(installed.submodule_search_locations)!r})\n")
    (pkg / "model_servers" / "__init__.py").write_text("")
    (pkg / "model_servers" / "test_util" / "__init__.py").write_text("")
    (pkg / "model_servers" / "tensorflow_model_server_test.py").symlink_to(checkout / SUITE)
    (pkg / "model_servers" / "test_util" / "tensorflow_model_server_test_base.py").symlink_to(
        checkout / SUITE_BASE)
    if importlib.util.find_spec("portpicker") is None:
        (pylib / "portpicker.py").write_text(_PORTPICKER)
    return srcdir, pylib


def run(checkout: Path, select: list[str] | None = None, log=sys.stderr) -> dict[str, tuple[str, str]]:
    """Run the suite; returns {case: (pass|fail|skip|excluded, reason)}."""
    checkout = checkout.resolve()
    if not (checkout / SUITE).is_file():
        raise SystemExit(f"{checkout} is not a tensorflow/serving checkout (no {SUITE})")
    results: dict[str, tuple[str, str]] = {}
    names = []
    for name in case_names(checkout):
        if select and not any(s in name for s in select):
            continue
        if name in EXCLUDED:
            results[name] = ("excluded", EXCLUDED[name])
        elif name in NEEDS_MODEL and not (checkout / TESTDATA / NEEDS_MODEL[name]).is_file():
            results[name] = ("excluded", f"the checkout lacks its test model {NEEDS_MODEL[name]}")
        else:
            names.append(name)
    with tempfile.TemporaryDirectory(prefix="tfserving-suite-") as tmp:
        root = Path(tmp)
        srcdir, pylib = _overlay(checkout, root)
        (root / "tmp").mkdir()
        env = dict(os.environ, TEST_SRCDIR=str(srcdir), TENSORFLOW_MODEL_SERVER_PYTHON=sys.executable,
                   PYTHONPATH=os.pathsep.join([str(pylib), str(REPO), os.environ.get("PYTHONPATH", "")]),
                   TF_CPP_MIN_LOG_LEVEL="2", TF_USE_LEGACY_KERAS="1")
        report = root / "results.json"
        # The suite's servers inherit the child's stdout: it goes to the log too.
        proc = subprocess.Popen([sys.executable, "-c", _CHILD, json.dumps(names), str(root / "tmp"),
                                 str(report)], env=env, cwd=root, stdout=log, stderr=log)
        try:
            proc.wait()
        finally:  # interrupted: the child stops its servers on SIGTERM
            if proc.poll() is None:
                proc.terminate()
                proc.wait()
            done = json.loads(report.read_text()) if report.exists() else {}
            results.update({k: tuple(v) for k, v in done.items()})
            for name in names:
                results.setdefault(name, ("fail", f"not run: the suite stopped (exit {proc.returncode})"))
    return results


def _reason(text: str) -> str:
    """The last line of a traceback: what failed."""
    lines = [ln for ln in text.strip().splitlines() if ln.strip()]
    return lines[-1][:300] if lines else ""


def main(argv=None) -> int:
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(1))  # `finally` then stops the child
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("checkout", type=Path, help="a tensorflow/serving checkout (not inside this repo)")
    parser.add_argument("-k", action="append", help="run only cases whose name contains this")
    parser.add_argument("--json", type=Path, help="write {case: [outcome, detail]} here")
    args = parser.parse_args(argv)
    results = run(args.checkout, args.k)
    width = max(map(len, results), default=10)
    for name, (outcome, detail) in results.items():
        print(f"{name:<{width}}  {outcome:<8}  {_reason(detail) if outcome == 'fail' else detail}")
    counts = {o: sum(1 for v in results.values() if v[0] == o) for o in ("pass", "fail", "skip", "excluded")}
    print(", ".join(f"{n} {o}" for o, n in counts.items()))
    if args.json:
        args.json.write_text(json.dumps(results, indent=1))
    return 1 if counts["fail"] else 0


if __name__ == "__main__":
    sys.exit(main())

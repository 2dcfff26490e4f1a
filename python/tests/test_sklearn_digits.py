"""examples/sklearn_digits.py end to end: exact resume, and a clean stop on SIGINT.

Needs scikit-learn: without it these tests are skipped ("SKIPPED: scikit-learn is not
installed"), except with CI=true, where they fail so CI cannot pass without running them.
"""
import importlib.util
import json
import os
import pathlib
import signal
import subprocess
import sys
import tempfile
import threading
import unittest

SCRIPT = pathlib.Path(__file__).resolve().parents[2] / "examples" / "sklearn_digits.py"
HAVE_SKLEARN = importlib.util.find_spec("sklearn") is not None
CI = os.environ.get("CI", "").lower() == "true"
TIMEOUT = 120  # seconds; only reached if the script hangs


def start(args, cwd, run_dir=None, resume_from=None):
    """Start the script with a clean backprop environment (none at all unless given)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("BACKPROP_")}
    if run_dir:
        env["BACKPROP_RUN_DIR"] = str(run_dir)
    if resume_from:
        env["BACKPROP_RESUME_FROM"] = str(resume_from)
    return subprocess.Popen([sys.executable, str(SCRIPT), *args], cwd=cwd, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def finish(proc, head=""):
    """Wait for the script: its exit code, protocol objects and stderr, then its plain-text
    stdout lines (`head`: stdout already read)."""
    out, err = proc.communicate(timeout=TIMEOUT)
    lines = (head + out).splitlines()
    objs = [json.loads(line) for line in lines if line.startswith("{")]
    return proc.returncode, objs, err, [line for line in lines if not line.startswith("{")]


def progress(objs):
    return {o["step"]: o for o in objs if "val_loss" in o}


def checkpoints(objs):
    return [o for o in objs if o.get("event") == "checkpoint_saved"]


class SklearnDigitsTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.TemporaryDirectory()
        cls.references = {}
        if HAVE_SKLEARN:  # the uninterrupted reference runs while the tests start theirs
            cls.reference_proc = start(["--steps", "150"], cls.tmp.name,
                                       run_dir=pathlib.Path(cls.tmp.name) / "reference")

    @classmethod
    def tearDownClass(cls):
        if HAVE_SKLEARN and cls.reference_proc.poll() is None:
            cls.reference_proc.kill()
            cls.reference_proc.communicate()
        cls.tmp.cleanup()

    def setUp(self):
        if not HAVE_SKLEARN:
            if CI:
                self.fail("scikit-learn is not installed, and CI=true: install it, these "
                          "tests must run in CI")
            print("SKIPPED: scikit-learn is not installed", file=sys.stderr, flush=True)
            self.skipTest("SKIPPED: scikit-learn is not installed")
        self.dir = pathlib.Path(tempfile.mkdtemp(dir=self.tmp.name))

    def reference(self, steps):
        """Reports of an uninterrupted run of `steps` steps, by step."""
        if steps not in self.references:
            proc = (self.reference_proc if steps == 150
                    else start(["--steps", str(steps)], self.dir, run_dir=self.dir / "ref"))
            code, objs, err, _ = finish(proc)
            self.assertEqual(code, 0, err)
            self.references[steps] = progress(objs)
        return self.references[steps]

    def assert_same_report(self, got, want, step):
        """Bit for bit: floats parsed from repr() round-trip exactly, so compare their hex."""
        self.assertEqual(float(got[step]["val_loss"]).hex(), float(want[step]["val_loss"]).hex(),
                         "val_loss at step %d" % step)
        self.assertEqual(got[step], want[step])

    def test_a_run_stopped_at_100_and_resumed_matches_an_uninterrupted_run(self):
        # Outside backprop (no BACKPROP_* at all): checkpoints go to ./backprop-run/.
        code, objs, err, _ = finish(start(["--steps", "100"], self.dir))
        self.assertEqual(code, 0, err)
        ckpt = self.dir.resolve() / "backprop-run" / "checkpoints" / "ckpt-100.pkl"
        self.assertEqual(checkpoints(objs), [{"event": "checkpoint_saved", "path": str(ckpt),
                                              "step": 100}])
        self.assertTrue(ckpt.is_file())
        first = progress(objs)
        self.assertEqual(sorted(first), [25, 50, 75, 100])

        code, objs, err, _ = finish(start(["--steps", "150", "--resume-from", str(ckpt)], self.dir))
        self.assertEqual(code, 0, err)
        resumed = progress(objs)
        self.assertEqual(sorted(resumed), [125, 150])

        ref = self.reference(150)
        for step in (25, 50, 75, 100):  # the same trajectory up to the stop ...
            self.assertEqual({**first[step], "total_steps": 150}, ref[step])
        for step in (125, 150):  # ... and after the resume
            self.assert_same_report(resumed, ref, step)

    def test_sigint_mid_run_saves_a_checkpoint_and_exits_cleanly(self):
        proc = start(["--steps", "100000", "--eval-every", "5"], self.dir, run_dir=self.dir)
        killer = threading.Timer(TIMEOUT, proc.kill)  # never hang the suite
        killer.start()
        try:
            head = ""
            while '"val_loss"' not in head:  # training is under way
                line = proc.stdout.readline()
                if not line:  # (stderr is read only now: reading it blocks until the end)
                    self.fail("the script ended before reporting: %s" % proc.stderr.read())
                head += line
            os.kill(proc.pid, signal.SIGINT)
            code, objs, err, text = finish(proc, head)
        finally:
            killer.cancel()
        self.assertEqual(code, 0, err)
        self.assertNotIn("Traceback", err)
        *periodic, stop = checkpoints(objs)  # every 200 steps, then the one at the stop
        self.assertEqual(text, ["stop requested: stopped at step %d with a checkpoint" % stop["step"]])
        self.assertTrue(all(c["step"] % 200 == 0 for c in periodic), periodic)
        stopped_at = stop["step"]
        self.assertTrue(5 <= stopped_at < 100000, stopped_at)
        self.assertEqual(stop["path"], str(self.dir / "checkpoints" / ("ckpt-%d.pkl" % stopped_at)))
        self.assertTrue(pathlib.Path(stop["path"]).is_file())

        # The stop checkpoint resumes exactly too (through BACKPROP_RESUME_FROM this time).
        target = max(150, (stopped_at // 25 + 1) * 25)  # an eval step after the stop
        code, objs, err, _ = finish(start(["--steps", str(target)], self.dir, run_dir=self.dir,
                                       resume_from=stop["path"]))
        self.assertEqual(code, 0, err)
        self.assert_same_report(progress(objs), self.reference(target), target)


if __name__ == "__main__":
    unittest.main()

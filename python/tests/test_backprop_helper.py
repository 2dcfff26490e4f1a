"""Unit tests of backprop_helper (standard library only; fast, no real sleeping on clocks)."""
import contextlib
import fractions
import io
import json
import math
import os
import pathlib
import signal
import sys
import tempfile
import threading
import time
import unittest
from unittest import mock

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent.parent))
import backprop_helper as bh  # noqa: E402

ENV_VARS = ["BACKPROP_RUN_ID", "BACKPROP_RUN_DIR", "BACKPROP_ATTEMPT", "BACKPROP_RESUME_FROM",
            "BACKPROP_MAX_RUN_SECONDS", "BACKPROP_TIMEBOX_FILE", "BACKPROP_STOP_SIGNAL"]


def clean_env(**values):
    """os.environ without any backprop variable, plus `values`, for the `with` block."""
    patch = mock.patch.dict(os.environ, values)
    patch.start()
    for name in ENV_VARS:
        if name not in values:
            os.environ.pop(name, None)
    return patch


def captured(fn, *args, **kwargs):
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        fn(*args, **kwargs)
    return out.getvalue()


class EnvTestCase(unittest.TestCase):
    def setUp(self):
        self.env = clean_env()
        self.addCleanup(self.env.stop)


class ReportTest(EnvTestCase):
    def test_writes_step_loss_and_metrics_as_one_json_line(self):
        self.assertEqual(captured(bh.report, step=3, loss=0.5, lr=0.01, epoch=1),
                         '{"step": 3, "loss": 0.5, "lr": 0.01, "epoch": 1}\n')

    def test_writes_only_what_is_given(self):
        self.assertEqual(captured(bh.report, step=7), '{"step": 7}\n')
        self.assertEqual(captured(bh.report, loss=1.25), '{"loss": 1.25}\n')
        self.assertEqual(captured(bh.report, val_acc=0.9), '{"val_acc": 0.9}\n')

    def test_nan_and_infinities_are_written_as_json_dumps_writes_them(self):
        line = captured(bh.report, step=1, loss=math.nan, a=math.inf, b=-math.inf)
        self.assertEqual(line, '{"step": 1, "loss": NaN, "a": Infinity, "b": -Infinity}\n')
        self.assertTrue(math.isnan(json.loads(line)["loss"]))

    def test_other_numeric_types_become_plain_numbers(self):
        self.assertEqual(captured(bh.report, ratio=fractions.Fraction(1, 4)), '{"ratio": 0.25}\n')

    def test_non_numeric_values_raise_type_error_and_print_nothing(self):
        for bad in ("high", None, [1.0], True):
            out = io.StringIO()
            with self.subTest(bad=bad), contextlib.redirect_stdout(out):
                with self.assertRaisesRegex(TypeError, "acc must be a number"):
                    bh.report(step=1, acc=bad)
            self.assertEqual(out.getvalue(), "")
        with self.assertRaisesRegex(TypeError, "loss must be a number"):
            captured(bh.report, loss="0.5")

    def test_prints_and_flushes_without_touching_files(self):
        out = io.StringIO()
        with contextlib.redirect_stdout(out), mock.patch("builtins.open", side_effect=AssertionError):
            for step in range(2000):
                bh.report(step=step, loss=1.0 / (step + 1))
        lines = out.getvalue().splitlines()
        self.assertEqual(len(lines), 2000)
        self.assertEqual(json.loads(lines[-1]), {"step": 1999, "loss": 1.0 / 2000})


class CheckpointSavedTest(EnvTestCase):
    def test_event_with_the_path_as_a_string(self):
        self.assertEqual(captured(bh.checkpoint_saved, "ckpt/ckpt-10.pt"),
                         '{"event": "checkpoint_saved", "path": "ckpt/ckpt-10.pt"}\n')
        self.assertEqual(json.loads(captured(bh.checkpoint_saved, pathlib.Path("/runs/a/c.pt"))),
                         {"event": "checkpoint_saved", "path": "/runs/a/c.pt"})

    def test_extra_fields_are_added(self):
        self.assertEqual(json.loads(captured(bh.checkpoint_saved, "c.pt", step=5, loss=0.1)),
                         {"event": "checkpoint_saved", "path": "c.pt", "step": 5, "loss": 0.1})

    def test_the_event_name_cannot_be_overridden(self):
        with self.assertRaises(TypeError):
            captured(bh.checkpoint_saved, "c.pt", event="other")


class ResumePathTest(EnvTestCase):
    def argv(self, *args):
        patch = mock.patch.object(sys, "argv", ["train.py", *args])
        patch.start()
        self.addCleanup(patch.stop)

    def test_none_without_env_or_argument(self):
        self.argv("--lr", "0.1")
        self.assertIsNone(bh.resume_path())

    def test_from_the_environment_first(self):
        self.argv("--resume-from", "from-argv.pt")
        os.environ["BACKPROP_RESUME_FROM"] = "/runs/x/ckpt-3.pt"
        self.assertEqual(bh.resume_path(), "/runs/x/ckpt-3.pt")

    def test_an_empty_environment_value_falls_back_to_argv(self):
        os.environ["BACKPROP_RESUME_FROM"] = ""
        self.argv("--lr", "0.1", "--resume-from", "a.pt")
        self.assertEqual(bh.resume_path(), "a.pt")

    def test_from_argv_in_both_spellings_last_wins(self):
        self.argv("--resume-from=b.pt")
        self.assertEqual(bh.resume_path(), "b.pt")
        self.argv("--resume-from", "a.pt", "--epochs", "3", "--resume-from=c.pt")
        self.assertEqual(bh.resume_path(), "c.pt")

    def test_a_flag_without_a_value_is_ignored(self):
        self.argv("--resume-from")
        self.assertIsNone(bh.resume_path())
        self.argv("--resume-from=")
        self.assertIsNone(bh.resume_path())


class RunInfoTest(EnvTestCase):
    def test_run_dir_from_the_environment(self):
        os.environ["BACKPROP_RUN_DIR"] = "/home/u/.backprop/runs/r1"
        self.assertEqual(bh.run_dir(), pathlib.Path("/home/u/.backprop/runs/r1"))

    def test_run_dir_outside_backprop_is_created_once_and_stays_put(self):
        old_cwd, old_dir = os.getcwd(), bh._local_run_dir
        tmp = tempfile.TemporaryDirectory()
        try:
            os.chdir(tmp.name)
            bh._local_run_dir = None
            expected = pathlib.Path(tmp.name).resolve() / "backprop-run"
            self.assertFalse(expected.exists())
            self.assertEqual(bh.run_dir(), expected)
            self.assertTrue(expected.is_dir())
            os.chdir(old_cwd)
            self.assertEqual(bh.run_dir(), expected)  # not re-resolved after a chdir
        finally:
            os.chdir(old_cwd)
            bh._local_run_dir = old_dir
            tmp.cleanup()

    def test_run_id_and_attempt(self):
        self.assertIsNone(bh.run_id())
        self.assertEqual(bh.attempt(), 1)
        os.environ.update(BACKPROP_RUN_ID="r-123", BACKPROP_ATTEMPT="3")
        self.assertEqual(bh.run_id(), "r-123")
        self.assertEqual(bh.attempt(), 3)
        os.environ["BACKPROP_ATTEMPT"] = "not-a-number"
        self.assertEqual(bh.attempt(), 1)


T0_MS = 1_700_000_000_000  # epoch ms the attempt started


class TimeLeftTest(EnvTestCase):
    """Fake clocks: `self.wall` (epoch seconds) and `self.mono` (monotonic seconds)."""

    def setUp(self):
        super().setUp()
        self.wall, self.mono = T0_MS / 1000.0, 1000.0
        for name, clock in (("_time", lambda: self.wall), ("_monotonic", lambda: self.mono),
                            ("_timebox_cache", None), ("_imported_at", 1000.0)):
            patch = mock.patch.object(bh, name, clock)
            patch.start()
            self.addCleanup(patch.stop)
        tmp = tempfile.TemporaryDirectory()
        self.addCleanup(tmp.cleanup)
        self.path = os.path.join(tmp.name, "timebox.json")
        os.environ["BACKPROP_TIMEBOX_FILE"] = self.path

    def write(self, paused_ms=0, paused_since_ms=None, max_seconds=60.0):
        tmp = self.path + ".tmp"  # as backprop writes it: temp file + rename
        with open(tmp, "w") as f:
            json.dump({"attempt": 2, "startedMs": T0_MS, "pausedMs": paused_ms,
                       "pausedSinceMs": paused_since_ms, "maxRunSeconds": max_seconds}, f)
        os.replace(tmp, self.path)

    def advance(self, seconds):
        self.wall += seconds
        self.mono += seconds

    def test_running_without_pauses(self):
        self.write()
        self.advance(10)
        self.assertAlmostEqual(bh.time_left(), 50.0)

    def test_a_finished_pause_does_not_count(self):
        self.write(paused_ms=5000)
        self.advance(10)
        self.assertAlmostEqual(bh.time_left(), 55.0)

    def test_an_ongoing_pause_does_not_count(self):
        self.write(paused_ms=5000, paused_since_ms=T0_MS + 8000)
        self.advance(10)  # active: 10 s - 5 s (finished pause) - 2 s (this pause so far)
        self.assertAlmostEqual(bh.time_left(), 57.0)
        self.advance(30)  # still paused: the time left does not move
        self.assertAlmostEqual(bh.time_left(), 57.0)

    def test_never_negative(self):
        self.write(max_seconds=5.0)
        self.advance(10)
        self.assertEqual(bh.time_left(), 0.0)

    def test_the_file_is_read_at_most_every_half_second(self):
        self.write()
        self.advance(10)
        real_read = bh._read_timebox
        with mock.patch.object(bh, "_read_timebox", side_effect=real_read) as read:
            self.assertAlmostEqual(bh.time_left(), 50.0)
            self.write(paused_ms=20000)  # backprop rewrites it (a pause ended)
            for _ in range(1000):
                bh.time_left()
            self.advance(0.1)
            self.assertEqual(read.call_count, 1)
            self.assertAlmostEqual(bh.time_left(), 60.0 - 10.1)  # the cached content, now's clock
            self.advance(0.5)
            self.assertAlmostEqual(bh.time_left(), 60.0 - 10.6 + 20.0)  # re-read
            self.assertEqual(read.call_count, 2)

    def test_missing_file_falls_back_to_max_run_seconds_since_import(self):
        os.environ["BACKPROP_MAX_RUN_SECONDS"] = "100"
        self.advance(30)
        self.assertAlmostEqual(bh.time_left(), 70.0)
        self.advance(100)
        self.assertEqual(bh.time_left(), 0.0)

    def test_malformed_file_falls_back_too(self):
        os.environ["BACKPROP_MAX_RUN_SECONDS"] = "100"
        for content in ("{not json", "[1, 2]", '{"startedMs": "x", "maxRunSeconds": 5}', ""):
            with self.subTest(content=content):
                bh._timebox_cache = None
                with open(self.path, "w") as f:
                    f.write(content)
                self.assertAlmostEqual(bh.time_left(), 100.0)

    def test_no_file_variable_uses_max_run_seconds(self):
        del os.environ["BACKPROP_TIMEBOX_FILE"]
        os.environ["BACKPROP_MAX_RUN_SECONDS"] = "42.5"
        self.advance(2.5)
        self.assertAlmostEqual(bh.time_left(), 40.0)

    def test_infinite_without_any_timebox(self):
        del os.environ["BACKPROP_TIMEBOX_FILE"]
        self.assertEqual(bh.time_left(), math.inf)


class StopTest(EnvTestCase):
    SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGUSR1, signal.SIGUSR2)

    def setUp(self):
        super().setUp()
        saved = {sig: signal.getsignal(sig) for sig in self.SIGNALS}
        self.addCleanup(lambda: [signal.signal(sig, h) for sig, h in saved.items()])
        for name in ("_stop_flag", "_stop_installed"):
            patch = mock.patch.object(bh, name, False)
            patch.start()
            self.addCleanup(patch.stop)

    def kill_and_wait(self, sig):
        """Send `sig` to this process and wait (at most 5 s) until the handler has run."""
        os.kill(os.getpid(), sig)
        deadline = time.monotonic() + 5
        while not bh._stop_flag and time.monotonic() < deadline:
            time.sleep(0.001)  # Python runs signal handlers between bytecodes in the main thread

    def test_sigint_sets_the_flag_instead_of_interrupting(self):
        self.assertFalse(bh.stop_requested())
        self.kill_and_wait(signal.SIGINT)
        self.assertTrue(bh.stop_requested())

    def test_sigterm_sets_the_flag(self):
        self.assertFalse(bh.stop_requested())
        self.kill_and_wait(signal.SIGTERM)
        self.assertTrue(bh.stop_requested())

    def test_the_signal_named_in_backprop_stop_signal(self):
        for name, sig in (("SIGUSR1", signal.SIGUSR1), ("usr2", signal.SIGUSR2),
                          (str(int(signal.SIGUSR1)), signal.SIGUSR1)):
            with self.subTest(name=name):
                bh._stop_flag = bh._stop_installed = False
                os.environ["BACKPROP_STOP_SIGNAL"] = name
                self.assertFalse(bh.stop_requested())
                self.kill_and_wait(sig)
                self.assertTrue(bh.stop_requested())

    def test_other_signals_are_left_alone(self):
        before = signal.getsignal(signal.SIGUSR1)
        bh.install_stop_handler()
        self.assertIs(signal.getsignal(signal.SIGUSR1), before)

    def test_an_unknown_stop_signal_name_is_reported_and_ignored(self):
        os.environ["BACKPROP_STOP_SIGNAL"] = "SIGBOGUS"
        err = io.StringIO()
        with contextlib.redirect_stderr(err):
            bh.install_stop_handler()
        self.assertIn("BACKPROP_STOP_SIGNAL='SIGBOGUS'", err.getvalue())
        self.kill_and_wait(signal.SIGTERM)
        self.assertTrue(bh.stop_requested())

    def test_a_second_sigint_interrupts_as_usual(self):
        self.assertFalse(bh.stop_requested())
        self.kill_and_wait(signal.SIGINT)
        self.assertTrue(bh.stop_requested())
        with self.assertRaises(KeyboardInterrupt):
            os.kill(os.getpid(), signal.SIGINT)
            time.sleep(5)  # the handler raises at once; the sleep only runs out on failure
        self.assertIs(signal.getsignal(signal.SIGINT), signal.default_int_handler)

    def test_a_second_sigterm_only_keeps_the_flag(self):
        bh.install_stop_handler()
        self.kill_and_wait(signal.SIGTERM)
        self.kill_and_wait(signal.SIGTERM)
        self.assertTrue(bh.stop_requested())

    def test_install_is_idempotent(self):
        bh.install_stop_handler()
        handler = signal.getsignal(signal.SIGINT)
        bh.install_stop_handler()
        self.assertIs(signal.getsignal(signal.SIGINT), handler)
        self.assertIsNot(handler, signal.default_int_handler)

    def test_other_threads_must_not_be_first(self):
        results = []

        def worker():
            try:
                results.append(bh.stop_requested())
            except RuntimeError as err:
                results.append(err)
        thread = threading.Thread(target=worker)
        thread.start()
        thread.join()
        self.assertIsInstance(results[0], RuntimeError)
        self.assertIn("call install_stop_handler() from the main thread first", str(results[0]))
        # Once installed from the main thread, any thread may ask.
        bh.install_stop_handler()
        self.kill_and_wait(signal.SIGTERM)
        thread = threading.Thread(target=worker)
        thread.start()
        thread.join()
        self.assertIs(results[1], True)


if __name__ == "__main__":
    unittest.main()

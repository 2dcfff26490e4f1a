"""Helpers for training scripts run by backprop (standard library only, Python >= 3.8).

They speak backprop's stdout protocol and read the environment backprop sets, and they
degrade gracefully when the script runs on its own (no backprop around it)::

    from backprop_helper import (report, checkpoint_saved, resume_path, run_dir,
                                 stop_requested, time_left)

    step = load(resume_path()) if resume_path() else 0
    while step < total and not stop_requested():     # SIGINT/SIGTERM set a flag
        loss = train_one_step()
        step += 1
        report(step=step, loss=loss, lr=lr)           # {"step": .., "loss": .., "lr": ..}
    path = run_dir() / "checkpoints" / f"ckpt-{step}.pt"
    save(path)
    checkpoint_saved(path, step=step)                 # backprop records the checkpoint

Outside backprop: run_dir() is ./backprop-run (created on first call), run_id() is None,
attempt() is 1, and time_left() is math.inf unless BACKPROP_MAX_RUN_SECONDS is set.
"""
import json
import math
import numbers
import os
import pathlib
import signal
import sys
import threading
import time

__all__ = ["report", "checkpoint_saved", "resume_path", "run_dir", "run_id", "attempt",
           "time_left", "stop_requested", "install_stop_handler"]

# Clocks as module attributes so tests can replace them.
_monotonic = time.monotonic
_time = time.time
_imported_at = time.monotonic()


def _emit(obj):
    print(json.dumps(obj), flush=True)


def _number(name, value):
    """The value as an int or float, or TypeError: backprop only records numeric metrics."""
    if type(value) in (int, float):  # the common case first: report() may run in a hot loop
        return value
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError("backprop_helper.report(): %s must be a number (int or float), got %s %r"
                        % (name, type(value).__name__, value))
    # numpy and other numeric scalars: json.dumps only knows the built-in types.
    return int(value) if isinstance(value, numbers.Integral) else float(value)


def report(step=None, loss=None, **metrics):
    """Print one progress line: {"step": .., "loss": .., <metrics>} (only what is given).

    NaN and infinities are written as json.dumps writes them (NaN, Infinity), which backprop
    accepts. A non-numeric value raises TypeError.
    """
    obj = {}
    if step is not None:
        obj["step"] = _number("step", step)
    if loss is not None:
        obj["loss"] = _number("loss", loss)
    for name, value in metrics.items():
        obj[name] = _number(name, value)
    _emit(obj)


def checkpoint_saved(path, **extra):
    """Tell backprop a checkpoint was written: {"event": "checkpoint_saved", "path": ..}.

    A relative path is taken from the script's working directory. `extra` (e.g. step=...)
    is added to the event and must be JSON-serialisable.
    """
    obj = {"event": "checkpoint_saved", "path": os.fsdecode(path)}
    if "event" in extra:
        raise TypeError("backprop_helper.checkpoint_saved(): 'event' cannot be overridden")
    obj.update(extra)
    _emit(obj)


def resume_path():
    """The checkpoint to resume from, as a str, or None.

    BACKPROP_RESUME_FROM when set and non-empty (backprop sets it on every resume), else the
    last `--resume-from P` / `--resume-from=P` in sys.argv (backprop appends one; the last
    wins, as with argparse).
    """
    env = os.environ.get("BACKPROP_RESUME_FROM")
    if env:
        return env
    found = None
    argv = sys.argv[1:]
    for i, arg in enumerate(argv):
        if arg == "--resume-from" and i + 1 < len(argv):
            found = argv[i + 1]
        elif arg.startswith("--resume-from="):
            found = arg[len("--resume-from="):]
    return found or None


_local_run_dir = None


def run_dir():
    """The directory for this run's files (checkpoints, logs) as a pathlib.Path.

    BACKPROP_RUN_DIR under backprop; otherwise ./backprop-run, made absolute and created on
    the first call (later calls return the same directory even after a chdir).
    """
    global _local_run_dir
    env = os.environ.get("BACKPROP_RUN_DIR")
    if env:
        return pathlib.Path(env)
    if _local_run_dir is None:
        path = pathlib.Path("backprop-run").resolve()
        path.mkdir(parents=True, exist_ok=True)
        _local_run_dir = path
    return _local_run_dir


def run_id():
    """BACKPROP_RUN_ID, or None outside backprop."""
    return os.environ.get("BACKPROP_RUN_ID") or None


def attempt():
    """BACKPROP_ATTEMPT (1 for the first attempt, 2 after the first resume, ...); 1 outside
    backprop or if the variable does not parse."""
    try:
        return int(os.environ.get("BACKPROP_ATTEMPT", "1"))
    except ValueError:
        return 1


_TIMEBOX_REREAD_SECONDS = 0.5
_timebox_cache = None  # (monotonic time of the read, file path, parsed file or None)


def _read_timebox(path):
    """The timebox file as (startedMs, pausedMs, pausedSinceMs or None, maxRunSeconds), or
    None if it is missing, unreadable or malformed."""
    try:
        with open(path, encoding="utf-8") as f:
            data = json.load(f)
        since = data.get("pausedSinceMs")
        return (float(data["startedMs"]), float(data.get("pausedMs") or 0),
                None if since is None else float(since), float(data["maxRunSeconds"]))
    except (OSError, ValueError, TypeError, KeyError, AttributeError):
        return None


def time_left():
    """Seconds left in the timebox (float, >= 0); math.inf when there is no timebox.

    Counts active time as backprop does: time spent paused (thermal pauses) is not counted.
    Reads BACKPROP_TIMEBOX_FILE at most every 0.5 s, so it is cheap in a tight loop; without
    a readable file, BACKPROP_MAX_RUN_SECONDS minus the wall time since this module was
    imported; without either, math.inf.
    """
    global _timebox_cache
    path = os.environ.get("BACKPROP_TIMEBOX_FILE")
    now_mono = _monotonic()
    if path:
        cache = _timebox_cache
        if cache is None or cache[1] != path or now_mono - cache[0] >= _TIMEBOX_REREAD_SECONDS:
            cache = _timebox_cache = (now_mono, path, _read_timebox(path))
        timebox = cache[2]
        if timebox is not None:
            started_ms, paused_ms, paused_since_ms, max_seconds = timebox
            now_ms = _time() * 1000.0
            active_ms = now_ms - started_ms - paused_ms
            if paused_since_ms is not None:
                active_ms -= now_ms - paused_since_ms
            return max(0.0, max_seconds - active_ms / 1000.0)
    try:
        max_seconds = float(os.environ["BACKPROP_MAX_RUN_SECONDS"])
    except (KeyError, ValueError):
        return math.inf
    return max(0.0, max_seconds - (now_mono - _imported_at))


_stop_flag = False
_stop_installed = False


def _signal_from_name(name):
    """signal.Signals for "SIGUSR1", "usr1" or "10"; None if there is no such signal."""
    name = name.strip()
    if name.isdigit():
        try:
            return signal.Signals(int(name))
        except ValueError:
            return None
    name = name.upper()
    return getattr(signal.Signals, name if name.startswith("SIG") else "SIG" + name, None)


def _on_stop_signal(signum, frame):
    global _stop_flag
    if _stop_flag and signum == signal.SIGINT:
        # A second Ctrl-C: the user means it. Interrupt now, and from now on as Python does.
        signal.signal(signal.SIGINT, signal.default_int_handler)
        raise KeyboardInterrupt
    _stop_flag = True


def install_stop_handler():
    """Make SIGINT, SIGTERM and the signal named in BACKPROP_STOP_SIGNAL (if set) set the
    flag that stop_requested() returns, instead of interrupting. Once the flag is set, a
    further SIGINT raises KeyboardInterrupt (and restores Python's default handler), so
    Ctrl-C twice still interrupts a script run by hand. Idempotent; must be called from the
    main thread (a restriction of the signal module)."""
    global _stop_installed
    if _stop_installed:
        return
    if threading.current_thread() is not threading.main_thread():
        raise RuntimeError("backprop_helper: signal handlers can only be installed from the "
                           "main thread; call install_stop_handler() from the main thread first")
    signals = [signal.SIGINT, signal.SIGTERM]
    extra = os.environ.get("BACKPROP_STOP_SIGNAL")
    if extra:
        sig = _signal_from_name(extra)
        if sig is None:
            print("backprop_helper: ignoring unknown BACKPROP_STOP_SIGNAL=%r" % extra,
                  file=sys.stderr, flush=True)
        elif sig not in signals:
            signals.append(sig)
    for sig in signals:
        try:
            signal.signal(sig, _on_stop_signal)
        except (OSError, ValueError) as err:  # SIGKILL/SIGSTOP cannot be caught
            print("backprop_helper: cannot handle %s: %s" % (sig.name, err),
                  file=sys.stderr, flush=True)
    _stop_installed = True


def stop_requested():
    """True once a stop signal (SIGINT, SIGTERM, BACKPROP_STOP_SIGNAL) has arrived.

    The first call installs the handlers (see install_stop_handler()), so call it once from
    the main thread before training; then the loop can finish its step, save and return.
    """
    if not _stop_installed:
        install_stop_handler()
    return _stop_flag

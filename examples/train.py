#!/usr/bin/env python3
"""A small, genuine training script for backprop (pure Python, standard library only).

Trains logistic regression with gradient descent on a seeded synthetic dataset and speaks
backprop's stdout protocol: one JSON object per line for progress, `checkpoint_saved` events
for checkpoints, plain text for everything else. Runs fine without backprop too:

    python3 examples/train.py                       # writes into ./runs-local/<stamp>/
    backprop run examples/train.py -m 1             # timeboxed; `backprop resume <id>` continues

SIGINT / SIGTERM (the timebox) save a checkpoint and exit 130; SIGUSR1 asks for a checkpoint
at the next step (backprop's optional `checkpointSignal`). Resuming from a checkpoint replays
the exact trajectory an uninterrupted run would have taken.
"""
import argparse
import json
import math
import os
import random
import signal
import sys
import tempfile
import time

N_SAMPLES, N_FEATURES = 1000, 8


def emit(obj):
    print(json.dumps(obj), flush=True)


def make_dataset(seed):
    """1,000 samples x 8 features with deliberately unequal scales (so the loss keeps falling
    for thousands of steps), labels drawn from a fixed "true" logistic model (label noise)."""
    rng = random.Random(seed)
    true_w = [rng.gauss(0.0, 1.5) for _ in range(N_FEATURES)]
    scales = [2.0 ** (-j / 2) for j in range(N_FEATURES)]  # 1.0 down to ~0.09
    xs, ys = [], []
    for _ in range(N_SAMPLES):
        x = [rng.gauss(0.0, 1.0) * s for s in scales]
        z = sum(wi * xi for wi, xi in zip(true_w, x)) + 0.3
        xs.append(x)
        ys.append(1.0 if rng.random() < 1.0 / (1.0 + math.exp(-z)) else 0.0)
    return xs, ys


def softplus(z):  # log(1 + e^z) without overflow
    return max(z, 0.0) + math.log1p(math.exp(-abs(z)))


def sigmoid(z):  # 1 / (1 + e^-z) without overflow
    return 1.0 / (1.0 + math.exp(-z)) if z >= 0 else 1.0 - 1.0 / (1.0 + math.exp(z))


def evaluate(w, b, xs, ys):
    """Full-dataset mean log-loss and accuracy."""
    loss, correct = 0.0, 0
    for x, y in zip(xs, ys):
        z = sum(wi * xi for wi, xi in zip(w, x)) + b
        loss += softplus(z) - y * z
        correct += (z > 0) == (y > 0.5)
    return loss / len(xs), correct / len(xs)


def batch_indices(step, batch_size, seed):
    """Sample indices used by `step` (1-based). A pure function of the step, so a resumed run
    sees the same batches; the full dataset (the default) makes this plain gradient descent."""
    if batch_size >= N_SAMPLES:
        return range(N_SAMPLES)
    per_epoch = N_SAMPLES // batch_size
    epoch, k = divmod(step - 1, per_epoch)
    order = list(range(N_SAMPLES))
    random.Random(seed * 100003 + epoch).shuffle(order)
    return order[k * batch_size:(k + 1) * batch_size]


def epoch_of(step, batch_size):
    """Passes over the data so far (equal to the step for full-batch gradient descent)."""
    epoch = step * min(batch_size, N_SAMPLES) / N_SAMPLES
    return int(epoch) if epoch.is_integer() else round(epoch, 3)


def learning_rate(step, base_lr):
    """Gentle inverse-time decay: a function of the step only, so resuming is exact."""
    return base_lr / (1.0 + step / 2000.0)


def gd_step(w, b, step, xs, ys, args):
    """One gradient-descent update; returns new weights (never mutates the old ones)."""
    idx = batch_indices(step, args.batch_size, args.seed)
    errs = [sigmoid(sum(wi * xi for wi, xi in zip(w, xs[i])) + b) - ys[i] for i in idx]
    gw = [sum(e * xs[i][j] for e, i in zip(errs, idx)) for j in range(N_FEATURES)]
    lr, n = learning_rate(step, args.lr), len(errs)
    return [wi - lr * g / n for wi, g in zip(w, gw)], b - lr * sum(errs) / n


def save_checkpoint(ckpt_dir, state, args, xs, ys):
    """Write ckpt-step<N>.json atomically (temp file + os.replace) and announce it."""
    step, w, b = state
    loss, acc = evaluate(w, b, xs, ys)
    data = {"step": step, "weights": w, "bias": b, "loss": loss,
            "optimizer": {"name": "gd", "base_lr": args.lr, "schedule": "base_lr/(1+step/2000)",
                          "batch_size": args.batch_size},
            "seed": args.seed, "total_steps": args.steps}
    path = os.path.join(ckpt_dir, "ckpt-step%d.json" % step)
    fd, tmp = tempfile.mkstemp(dir=ckpt_dir, prefix=".tmp-ckpt-")
    try:
        with os.fdopen(fd, "w") as f:
            json.dump(data, f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    emit({"event": "checkpoint_saved", "path": path, "step": step, "loss": loss, "accuracy": acc})
    return path


def run_dir():
    """BACKPROP_RUN_DIR, else ./runs-local/<stamp>, else a temp dir."""
    if os.environ.get("BACKPROP_RUN_DIR"):
        return os.environ["BACKPROP_RUN_DIR"]
    try:
        d = os.path.join("runs-local", time.strftime("%Y%m%d-%H%M%S-") + str(os.getpid()))
        os.makedirs(d)
        return os.path.abspath(d)
    except OSError:
        return tempfile.mkdtemp(prefix="train-")


def parse_args():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--steps", type=int, default=3000, help="total optimisation steps")
    p.add_argument("--lr", type=float, default=0.5, help="base learning rate")
    p.add_argument("--batch-size", type=int, default=N_SAMPLES, help="default: full batch (plain GD)")
    p.add_argument("--seed", type=int, default=0, help="dataset / shuffling seed")
    p.add_argument("--step-delay", type=float, default=0.01, help="extra seconds per step (simulated work)")
    p.add_argument("--log-every", type=int, default=10, help="report progress every N steps")
    env_every = os.environ.get("BACKPROP_CHECKPOINT_EVERY_SECONDS")
    p.add_argument("--checkpoint-every", type=float, default=float(env_every) if env_every else 2.0,
                   help="seconds between checkpoints (default: $BACKPROP_CHECKPOINT_EVERY_SECONDS or 2)")
    p.add_argument("--resume-from", default=os.environ.get("BACKPROP_RESUME_FROM") or None,
                   help="checkpoint to continue from (default: $BACKPROP_RESUME_FROM)")
    return p.parse_args()


def main():
    args = parse_args()
    ckpt_dir = os.path.join(run_dir(), "checkpoints")
    os.makedirs(ckpt_dir, exist_ok=True)

    def on_term(signum, frame):  # SIGTERM behaves like Ctrl-C / the timebox's SIGINT
        raise KeyboardInterrupt
    want_ckpt = []  # SIGUSR1 appends here; the loop checkpoints at the next step boundary
    # SIGINT may be inherited as ignored (`cmd &` in a shell script): make it interrupt again.
    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.signal(signal.SIGTERM, on_term)
    signal.signal(signal.SIGUSR1, lambda signum, frame: want_ckpt.append(signum))

    xs, ys = make_dataset(args.seed)
    # (step, weights, bias) is replaced as a whole, so an interrupt never sees half an update.
    state = (0, [0.0] * N_FEATURES, 0.0)
    if args.resume_from:
        with open(args.resume_from) as f:
            ck = json.load(f)
        if ck.get("seed", args.seed) != args.seed:
            print("warning: checkpoint was trained with seed %s, not %s" % (ck["seed"], args.seed), flush=True)
        state = (ck["step"], ck["weights"], ck["bias"])
        print("resumed from %s at step %d" % (args.resume_from, state[0]), flush=True)
    try:
        if state[0] == 0:
            loss, acc = evaluate(state[1], state[2], xs, ys)
            emit({"step": 0, "loss": loss, "accuracy": acc, "lr": args.lr, "epoch": 0, "total_steps": args.steps})
        last_ckpt = time.monotonic()
        while state[0] < args.steps:
            step = state[0] + 1
            w, b = gd_step(state[1], state[2], step, xs, ys, args)
            state = (step, w, b)
            if step % args.log_every == 0 or step == args.steps:
                loss, acc = evaluate(w, b, xs, ys)
                emit({"step": step, "loss": loss, "accuracy": acc, "lr": learning_rate(step, args.lr),
                      "epoch": epoch_of(step, args.batch_size),
                      "total_steps": args.steps})
            if want_ckpt or time.monotonic() - last_ckpt >= args.checkpoint_every:
                del want_ckpt[:]
                save_checkpoint(ckpt_dir, state, args, xs, ys)
                last_ckpt = time.monotonic()
            time.sleep(args.step_delay)
    except KeyboardInterrupt:
        signal.signal(signal.SIGINT, signal.SIG_IGN)  # don't let a second signal spoil the save
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        save_checkpoint(ckpt_dir, state, args, xs, ys)
        print("interrupted at step %d, checkpoint saved" % state[0], flush=True)
        return 130
    path = save_checkpoint(ckpt_dir, state, args, xs, ys)
    loss, acc = evaluate(state[1], state[2], xs, ys)
    emit({"event": "done", "step": state[0], "loss": loss, "accuracy": acc, "checkpoint": path})
    return 0


if __name__ == "__main__":
    sys.exit(main())

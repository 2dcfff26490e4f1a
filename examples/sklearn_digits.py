#!/usr/bin/env python3
"""Train a small MLP on scikit-learn's bundled digits data (8x8 images, no download) with
mini-batch `MLPClassifier.partial_fit`, speaking backprop's protocol through backprop_helper.

    python3 examples/sklearn_digits.py --steps 300             # on its own: ./backprop-run/
    backprop run examples/sklearn_digits.py -m 1 -- --hidden 128
    backprop resume <run-id>                                   # continues the same trajectory

Every --eval-every steps it reports the training loss (log loss on the whole training split),
val_loss and val_acc. Checkpoints (pickle: model, data-order RNG state, step) go to
<run dir>/checkpoints/ckpt-<step>.pkl every 200 steps, at the end, and when a stop signal
arrives (SIGINT, SIGTERM, BACKPROP_STOP_SIGNAL): then the script finishes its step, saves and
exits normally; backprop decides the run's status. Resuming is exact: a resumed run reports
the same numbers at the same steps as an uninterrupted one.
Only resume from checkpoints you wrote yourself: loading a pickle can run arbitrary code.
"""
import argparse
import os
import pickle
import sys
from pathlib import Path

try:
    import backprop_helper as bh
except ImportError:  # not pip-installed: use the copy in this repository
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "python"))
    import backprop_helper as bh

# Before the slow imports below, so a stop signal during them is a clean exit, not a traceback.
bh.install_stop_handler()

import numpy as np  # noqa: E402
from sklearn.datasets import load_digits  # noqa: E402
from sklearn.metrics import log_loss  # noqa: E402
from sklearn.model_selection import train_test_split  # noqa: E402
from sklearn.neural_network import MLPClassifier  # noqa: E402

CLASSES = np.arange(10)
CHECKPOINT_EVERY = 200  # steps


def positive_int(text):
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError("must be at least 1, got %d" % value)
    return value


def parse_args():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--hidden", type=positive_int, default=64, help="hidden units (one layer)")
    p.add_argument("--lr", type=float, default=1e-3, help="Adam learning_rate_init")
    p.add_argument("--alpha", type=float, default=1e-4, help="L2 penalty")
    p.add_argument("--batch-size", type=positive_int, default=64)
    p.add_argument("--steps", type=positive_int, default=2700, help="total mini-batch steps")
    p.add_argument("--eval-every", type=positive_int, default=25, help="steps between reports")
    p.add_argument("--seed", type=int, default=0, help="split, initial weights and batch order")
    p.add_argument("--resume-from", metavar="PATH",
                   help="checkpoint to continue from (default: $BACKPROP_RESUME_FROM)")
    return p.parse_args()


def load_split(seed):
    """The fixed, seeded, stratified 80/20 train/validation split, pixels scaled to [0, 1]."""
    x, y = load_digits(return_X_y=True)
    return train_test_split(x / 16.0, y, test_size=0.2, random_state=seed, stratify=y)


def next_batch(order, n, batch_size):
    """Indices of the next mini-batch. Each epoch draws a new permutation from the order's own
    RNG; the last partial batch is dropped so every step has the same size. All of `order`
    goes into checkpoints, which is what makes resuming exact."""
    if order["pos"] + batch_size > n:
        order["perm"] = order["rng"].permutation(n)
        order["pos"] = 0
        order["epoch"] += 1
    idx = order["perm"][order["pos"]:order["pos"] + batch_size]
    order["pos"] += batch_size
    return idx


def save_checkpoint(ckpt_dir, step, model, order, config):
    """Pickle everything the trajectory depends on, atomically (temp file + rename), and
    announce it to backprop."""
    path = ckpt_dir / ("ckpt-%d.pkl" % step)
    tmp = path.with_name(path.name + ".tmp")
    state = {"step": step, "model": model, "config": config,
             "rng_state": order["rng"].bit_generator.state,
             "perm": order["perm"], "pos": order["pos"], "epoch": order["epoch"]}
    with open(tmp, "wb") as f:
        pickle.dump(state, f, protocol=pickle.HIGHEST_PROTOCOL)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)
    bh.checkpoint_saved(path, step=step)


def main():
    args = parse_args()
    config = {"hidden": args.hidden, "lr": args.lr, "alpha": args.alpha,
              "batch_size": args.batch_size, "seed": args.seed}
    resume_from = args.resume_from or bh.resume_path()
    if resume_from:
        with open(resume_from, "rb") as f:
            ck = pickle.load(f)
        if ck["config"] != config:
            print("using the checkpoint's settings %s (not %s)" % (ck["config"], config), flush=True)
        config, step, model = ck["config"], ck["step"], ck["model"]
        rng = np.random.Generator(np.random.PCG64())
        rng.bit_generator.state = ck["rng_state"]
        order = {"rng": rng, "perm": ck["perm"], "pos": ck["pos"], "epoch": ck["epoch"]}
        print("resumed from %s at step %d" % (resume_from, step), flush=True)
    else:
        step = 0
        model = MLPClassifier(hidden_layer_sizes=(config["hidden"],),
                              learning_rate_init=config["lr"], alpha=config["alpha"],
                              batch_size=config["batch_size"],
                              shuffle=False,  # the batch order is ours, see next_batch()
                              random_state=config["seed"])
        # pos past the end: the first step draws the first epoch's permutation.
        order = {"rng": np.random.default_rng(config["seed"]), "perm": None,
                 "pos": sys.maxsize, "epoch": 0}

    x_train, x_val, y_train, y_val = load_split(config["seed"])
    ckpt_dir = bh.run_dir() / "checkpoints"
    ckpt_dir.mkdir(parents=True, exist_ok=True)
    saved_step = step  # the step of the newest checkpoint (the resumed one counts)

    while step < args.steps and not bh.stop_requested():
        idx = next_batch(order, len(y_train), config["batch_size"])
        model.partial_fit(x_train[idx], y_train[idx], classes=CLASSES)
        step += 1
        if step % args.eval_every == 0 or step == args.steps:
            val_proba = model.predict_proba(x_val)
            bh.report(step=step,
                      loss=log_loss(y_train, model.predict_proba(x_train), labels=CLASSES),
                      val_loss=log_loss(y_val, val_proba, labels=CLASSES),
                      val_acc=float(np.mean(CLASSES[val_proba.argmax(axis=1)] == y_val)),
                      epoch=order["epoch"], total_steps=args.steps)
        if step % CHECKPOINT_EVERY == 0:
            save_checkpoint(ckpt_dir, step, model, order, config)
            saved_step = step

    if step != saved_step:  # the end, or a stop: keep the work done since the last save
        save_checkpoint(ckpt_dir, step, model, order, config)
    if bh.stop_requested():
        print("stop requested: stopped at step %d with a checkpoint" % step, flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())

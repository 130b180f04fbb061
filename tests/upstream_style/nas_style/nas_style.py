"""An upstream-style script (jboat's own, for the test suite): the usage pattern of
JBOAT's neural-architecture-search example against jboat, on scikit-learn's digits.

    python nas_style.py --steps 3 [--na_op FD] [--fo_op ALTO]

As upstream: one ``Network`` object is both levels, ``lower_level_var =
list(model.parameters())`` (BatchNorm statistics included), ``upper_level_var =
model.arch_parameters()`` (hidden in a dict), SGD with momentum and weight decay below,
Adam above, float targets, ``model.train()`` before each step, ``run_iter`` then a forward
pass of the real model, ``plot_losses()`` at the end.
"""

import argparse
import json
import os
import sys

import numpy as np

import jittor as jit
from jittor import nn

import jboat as boat
from model_style import Network

HERE = os.path.dirname(os.path.abspath(__file__))


def main(argv=None):
    parser = argparse.ArgumentParser()
    parser.add_argument("--batch_size", type=int, default=16)
    parser.add_argument("--steps", type=int, default=3)
    parser.add_argument("--init_channels", type=int, default=2)
    parser.add_argument("--gm_op", default=None)
    parser.add_argument("--na_op", default=None)
    parser.add_argument("--fo_op", default=None)
    args = parser.parse_args(argv)
    jit.set_global_seed(2)
    from sklearn.datasets import load_digits
    X, y = load_digits(return_X_y=True)
    X = (X / 16.0).astype(np.float32).reshape(-1, 1, 8, 8)
    criterion = nn.CrossEntropyLoss()
    model = Network(args.init_channels, 10, criterion)
    optimizer = jit.optim.SGD(model.parameters(), 0.025, momentum=0.9, weight_decay=3e-4)
    outer_opt = jit.optim.Adam(model.arch_parameters(), lr=3e-3, betas=(0.5, 0.999),
                               weight_decay=1e-3)
    with open(os.path.join(HERE, "configs_style", "boat_config.json")) as fh:
        boat_config = json.load(fh)
    with open(os.path.join(HERE, "configs_style", "loss_config.json")) as fh:
        loss_config = json.load(fh)
    for key in ("gm_op", "na_op", "fo_op"):
        if getattr(args, key):
            boat_config[key] = getattr(args, key).split(",")
    boat_config.update(lower_level_model=model, upper_level_model=model,
                       lower_level_var=list(model.parameters()),
                       upper_level_var=list(model.arch_parameters()),
                       lower_level_opt=optimizer, upper_level_opt=outer_opt,
                       loss_log_path=os.path.join(os.getcwd(), "loss_log.json"))
    b_optimizer = boat.Problem(boat_config, loss_config)
    b_optimizer.build_ll_solver()
    b_optimizer.build_ul_solver()
    bs = args.batch_size
    for step in range(args.steps):
        model.train()
        lo, hi = 2 * step * bs, (2 * step + 1) * bs
        ll_feed_dict = {"data": jit.array(X[lo:hi]), "target": jit.array(y[lo:hi], dtype="float32")}
        ul_feed_dict = {"data": jit.array(X[hi:hi + bs]),
                        "target": jit.array(y[hi:hi + bs], dtype="float32")}
        loss, run_time = b_optimizer.run_iter(ll_feed_dict, ul_feed_dict, current_iter=step)
        jit.sync_all()
        logits = model(ll_feed_dict["data"])
        obj = criterion(logits, ll_feed_dict["target"]).item()
        print(step, "step_time:", round(run_time, 3), "train_obj:", round(obj, 4))
    b_optimizer.plot_losses()
    print("genotype =", model.genotype())
    return {"alphas": model.arch_parameters()[0].numpy().copy(), "obj": obj,
            "problem": b_optimizer, "model": model}


if __name__ == "__main__":
    sys.exit(0 if main() else 1)

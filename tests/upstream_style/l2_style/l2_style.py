"""An upstream-style script (jboat's own, for the test suite): the usage pattern of
JBOAT's L2-regularisation example against jboat, with synthetic data.

    python l2_style.py --gm_op DI,GDA,NGD --na_op CG        # or --fo_op VFO

It does what a JBOAT user's script does: ``import jboat as boat``, read a boat_config and
a loss_config JSON (dotted paths resolved from this folder), inject the runtime objects
under upstream's keys (``list(model.parameters())`` as variables, ``jit.nn.SGD`` /
``jit.nn.Adam``), ``Problem(boat_config, loss_config)``, ``build_ll_solver()``,
``build_ul_solver()``, set DM's ``strategy`` on ``_ll_solver.gradient_instances[-1]``,
``run_iter`` returning ``(loss, run_time)``, and evaluate on the real models.
"""

import argparse
import json
import os
import sys

import numpy as np

import jittor as jit

import jboat as boat

HERE = os.path.dirname(os.path.abspath(__file__))


def make_data(seed=0, n=48, d=12, classes=3):
    rng = np.random.RandomState(seed)
    centres = rng.randn(classes, d) * (rng.rand(d) < 0.5)
    def split(m):
        t = np.arange(m) % classes
        X = centres[t] + rng.randn(m, d)
        return jit.array(X.astype(np.float32)), jit.array(t.astype(np.int32))
    return split(n), split(n), split(n)


class UpperModel(jit.Module):
    def __init__(self, n_feats):
        self.x = jit.init.constant([n_feats], "float32", 0.0).clone()

    def execute(self):
        return self.x


class LowerModel(jit.Module):
    def __init__(self, n_feats, num_classes):
        self.y = jit.zeros([n_feats, num_classes])
        jit.init.kaiming_normal_(self.y, a=0, mode="fan_in", nonlinearity="leaky_relu")

    def execute(self):
        return self.y


def evaluate(w, testset):
    X, t = testset
    logits = X @ w
    loss = jit.nn.cross_entropy_loss(logits, t).item()
    acc = float((logits.numpy().argmax(-1) == t.numpy()).mean())
    return loss, acc


def main(argv=None):
    parser = argparse.ArgumentParser()
    parser.add_argument("--gm_op", default="NGD")
    parser.add_argument("--na_op", default="RAD")
    parser.add_argument("--fo_op", default=None)
    parser.add_argument("--iterations", type=int, default=2)
    args = parser.parse_args(argv)
    jit.set_global_seed(1)
    with open(os.path.join(HERE, "configs_style", "boat_config.json")) as fh:
        boat_config = json.load(fh)
    with open(os.path.join(HERE, "configs_style", "loss_config.json")) as fh:
        loss_config = json.load(fh)
    trainset, valset, testset = make_data()
    upper_model = UpperModel(trainset[0].shape[-1])
    lower_model = LowerModel(trainset[0].shape[-1], 3)
    upper_opt = jit.nn.Adam(upper_model.parameters(), lr=0.01)
    lower_opt = jit.nn.SGD(lower_model.parameters(), lr=0.1)
    gm_op = args.gm_op.split(",") if args.gm_op else None
    na_op = args.na_op.split(",") if args.na_op else None
    if na_op is not None and "RGT" in na_op:
        boat_config["RGT"]["truncate_iter"] = 1
    boat_config.update(gm_op=gm_op, na_op=na_op, fo_op=args.fo_op,
                       lower_level_model=lower_model, upper_level_model=upper_model,
                       lower_level_opt=lower_opt, upper_level_opt=upper_opt,
                       lower_level_var=list(lower_model.parameters()),
                       upper_level_var=list(upper_model.parameters()),
                       loss_log_path=os.path.join(os.getcwd(), "loss_log.json"))
    b_optimizer = boat.Problem(boat_config, loss_config)
    b_optimizer.build_ll_solver()
    b_optimizer.build_ul_solver()
    ul_feed_dict = {"data": trainset[0], "target": trainset[1]}
    ll_feed_dict = {"data": valset[0], "target": valset[1]}
    dm_gda = "DM" in (gm_op or []) and "GDA" in (gm_op or []) and args.fo_op is None
    for x_itr in range(args.iterations + (1 if dm_gda else 0)):
        if dm_gda:
            b_optimizer._ll_solver.gradient_instances[-1].strategy = "s" + str(x_itr % 3 + 1)
        loss, run_time = b_optimizer.run_iter(ll_feed_dict, ul_feed_dict, current_iter=x_itr)
    test_loss, test_acc = evaluate(lower_model(), testset)
    print(f"[info] test loss {test_loss:.4f} test acc {test_acc:.4f} time {run_time:.3f}")
    return {"test_loss": test_loss, "test_acc": test_acc, "loss": loss,
            "x": upper_model().numpy().copy(), "y": lower_model().numpy().copy(),
            "problem": b_optimizer}


if __name__ == "__main__":
    sys.exit(0 if main() else 1)

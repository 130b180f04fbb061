"""Objectives in the upstream signature (jboat's own, written for this test): multinomial
logistic regression with per-feature L2 penalties exp(x_i)."""

import jittor as jit
import jittor.nn as nn


def ul_loss(ul_feed_dict, upper_model, lower_model, weights=0.0, **kwargs):
    return nn.cross_entropy_loss(jit.matmul(ul_feed_dict["data"], lower_model(**kwargs)),
                                 ul_feed_dict["target"])


def ll_loss(ll_feed_dict, upper_model, lower_model, weights=0.0, **kwargs):
    w = lower_model(**kwargs)
    fit = nn.cross_entropy_loss(jit.matmul(ll_feed_dict["data"], w), ll_feed_dict["target"])
    return fit + 0.5 * (w.pow(2) * upper_model().view(-1, 1).exp()).mean()


def gda_loss(ll_feed_dict, ul_feed_dict, upper_model, lower_model, weights=0.0, **kwargs):
    a = ll_feed_dict["alpha"]
    return (a * ll_loss(ll_feed_dict, upper_model, lower_model, **kwargs)
            + (1 - a) * ul_loss(ul_feed_dict, upper_model, lower_model, **kwargs))

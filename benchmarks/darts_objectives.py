"""Objectives of the DARTS benchmark in the upstream signature (importable by JBOAT's
``loss_config`` and by jboat alike): cross entropy of the supernet's logits."""

import jittor as jt


def ll_loss(ll_feed_dict, upper_model, lower_model, **kwargs):
    return jt.nn.cross_entropy_loss(lower_model(ll_feed_dict["data"], **kwargs),
                                    ll_feed_dict["target"])


def ul_loss(ul_feed_dict, upper_model, lower_model, **kwargs):
    return jt.nn.cross_entropy_loss(lower_model(ul_feed_dict["data"], **kwargs),
                                    ul_feed_dict["target"])

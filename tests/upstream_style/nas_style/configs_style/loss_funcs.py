"""Objectives in the upstream NAS signature (jboat's own, written for this test): they reach
the criterion through the lower model's private ``_criterion`` attribute."""


def ul_loss(ul_feed_dict, upper_model, lower_model, weights=0.0, **kwargs):
    return lower_model._criterion(lower_model(ul_feed_dict["data"], **kwargs),
                                  ul_feed_dict["target"])


def ll_loss(ll_feed_dict, upper_model, lower_model, weights=0.0, **kwargs):
    return lower_model._criterion(lower_model(ll_feed_dict["data"], **kwargs),
                                  ll_feed_dict["target"])


def gda_loss(ll_feed_dict, ul_feed_dict, upper_model, lower_model, weights=0.0, **kwargs):
    a = ll_feed_dict["alpha"]
    return (a * ll_loss(ll_feed_dict, upper_model, lower_model, **kwargs)
            + (1 - a) * ul_loss(ul_feed_dict, upper_model, lower_model, **kwargs))

"""Analysis instruments. So far: query sensitivities (von Oswald et al. 2022) and order sensitivity."""

from iclab.analysis.sensitivity import order_sensitivity, query_sensitivity, sensitivity_cosine

__all__ = ["order_sensitivity", "query_sensitivity", "sensitivity_cosine"]

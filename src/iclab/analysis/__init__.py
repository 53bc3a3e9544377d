"""Analysis instruments. So far: query sensitivities (von Oswald et al. 2022)."""

from iclab.analysis.sensitivity import query_sensitivity, sensitivity_cosine

__all__ = ["query_sensitivity", "sensitivity_cosine"]

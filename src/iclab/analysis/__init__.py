"""Analysis instruments: which learning algorithm is a trained model running, and where?

- :mod:`~iclab.analysis.cache`: activation capture by hook name (``run_with_cache``, ``ActivationCache``), and
  interventions by hook name (``run_with_hooks`` with ``zero_ablation``, ``mean_ablation``, ``patch_with``);
- :mod:`~iclab.analysis.probes`: linear and MLP probes per layer, with a random-initialisation control;
- :mod:`~iclab.analysis.alignment`: SPD, ILWD, weight recovery, sensitivity similarity;
- :mod:`~iclab.analysis.attention`: attention patterns, linear self-attention weight products;
- :mod:`~iclab.analysis.pasting`: Guo et al.'s pasting of upper layers onto a fresh embedding;
- :mod:`~iclab.analysis.sensitivity`: query sensitivities and order sensitivity;
- :mod:`~iclab.analysis.instruments`: the registry of what ``iclab analyze`` runs (``INSTRUMENTS``);
- :mod:`~iclab.analysis.analyze`: all of them on a run folder (``iclab analyze RUN``);
- :mod:`~iclab.analysis.memory_capacity`, :mod:`~iclab.analysis.step_size`: a memory rule's capacity, GD step sizes.
"""

import iclab.analysis.program_instruments  # noqa: F401  (registers the circuit instrument)
import iclab.analysis.spectrum  # noqa: F401  (registers the spectrum instrument)
import iclab.analysis.token_instruments  # noqa: F401  (registers the token instruments after the built-ins)
from iclab.analysis.alignment import (
    alignment_table,
    ilwd,
    implicit_weights,
    query_inputs,
    sensitivity_alignment,
    spd,
    weight_recovery,
)
from iclab.analysis.analyze import analyze_run
from iclab.analysis.attention import attention_patterns, lsa_products
from iclab.analysis.cache import ActivationCache, run_with_cache
from iclab.analysis.instruments import (
    INSTRUMENTS,
    Context,
    Figure,
    Inapplicable,
    Note,
    Result,
    Table,
    instrument,
)
from iclab.analysis.pasting import paste
from iclab.analysis.probes import fit_probe, probe_model, probe_target
from iclab.analysis.sensitivity import (
    order_sensitivity,
    query_sensitivity,
    sensitivity_cosine,
)
from iclab.models.hooks import mean_ablation, patch_with, run_with_hooks, zero_ablation

__all__ = [
    "INSTRUMENTS",
    "ActivationCache",
    "Context",
    "Figure",
    "Inapplicable",
    "Note",
    "Result",
    "Table",
    "analyze_run",
    "instrument",
    "alignment_table",
    "attention_patterns",
    "fit_probe",
    "ilwd",
    "implicit_weights",
    "lsa_products",
    "order_sensitivity",
    "paste",
    "probe_model",
    "probe_target",
    "query_inputs",
    "query_sensitivity",
    "run_with_cache",
    "run_with_hooks",
    "zero_ablation",
    "mean_ablation",
    "patch_with",
    "sensitivity_alignment",
    "sensitivity_cosine",
    "spd",
    "weight_recovery",
]

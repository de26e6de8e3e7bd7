"""analysis: which classes are fragile to label noise or to less data, how nonlinearly, how sure.

Reads a sweep's Parquet results (``OUT/confusion``, ``OUT/trials``; ``OUT/probs`` and ``OUT/epochs``
when present) with pandas/pyarrow only; never
imports torch or Ray. Every function takes the table from :func:`load_results` first, options
keyword-only, and returns a tidy DataFrame sorted as its docstring says.

Glossary: K classes; a *cell* is a grid point (model, noise_fraction, train_fraction) with one trial
per seed; the *baseline* is noise_fraction 0 at the largest train_fraction of the same model; *recall*
of a class is count(true -> true) / count(true -> anything); a *rate* is any row-normalized entry.
Seeds pair across cells (common random numbers), so every comparison is a per-seed difference.
"""

from .accuracy import accuracy_table
from .confusion import directional_confusions, directional_trends, mean_confusion, relative_confusion
from .curves import breakpoints, class_curves
from .findings import findings
from .learning import learned_first, load_epochs, memorisation_curves, memorisation_order
from .load import load_results
from .misclassified import load_probs, misclassified_examples
from .ranking import class_table, model_comparison, sensitivity_ranking
from .replication import reproducibility
from .settle import settle_check
from .synthetic import SyntheticSpec, synthetic_results, write_synthetic_epochs, write_synthetic_results
from .tradeoffs import exchange_rate, noise_vs_reduction


def write_report(results_path, *, to=None, **options):
    """Write the HTML report; see :func:`analysis.report.write_report` (imported lazily: matplotlib)."""
    from .report import write_report as _write_report

    return _write_report(results_path, to=to, **options)


__all__ = [
    "load_results", "mean_confusion", "relative_confusion", "directional_confusions", "directional_trends",
    "sensitivity_ranking", "model_comparison", "class_table", "class_curves", "breakpoints",
    "noise_vs_reduction", "exchange_rate", "findings", "write_report", "load_probs", "misclassified_examples",
    "SyntheticSpec", "synthetic_results", "write_synthetic_results", "write_synthetic_epochs", "settle_check",
    "load_epochs", "memorisation_curves", "memorisation_order", "learned_first", "accuracy_table", "reproducibility",
]

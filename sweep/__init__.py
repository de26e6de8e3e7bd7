"""sweep: the trial engine (pure PyTorch) and the Ray Tune layer that runs grids of trials.

Start at ``sweep.engine.trial.run_trial`` (one trial) or ``sweep run`` (a grid); see the README.
"""

from importlib import metadata as _metadata

try:
    __version__ = _metadata.version("class-fragility-sweep")
except _metadata.PackageNotFoundError:  # running from a source tree that is not installed
    __version__ = "0+unknown"

"""``deepbn sweep``: a grid of deepbn runs described in a TOML file.

:mod:`~deepbn.sweep.spec` reads and checks the spec and expands it into runs,
:mod:`~deepbn.sweep.execute` runs them (here, or on Ray) each in its own folder,
resumably, and :mod:`~deepbn.sweep.pool` pools their numbers into ``results.csv``,
``results.md`` and plots.
"""

from deepbn.sweep.execute import Outcome, finished, run_folder, run_local, run_ray
from deepbn.sweep.pool import write_plots, write_results
from deepbn.sweep.spec import Run, SweepSpec, expand, load_spec, parse_spec, run_name

__all__ = ["Outcome", "Run", "SweepSpec", "expand", "finished", "load_spec", "parse_spec",
           "run_folder", "run_local", "run_name", "run_ray", "write_plots", "write_results"]

"""``babyvlm sweep``: developmental curves (``sweep age CONFIG --ages 12,18,24,32``, training on the data
recorded up to each age via the ``data.max_age_months`` filter), seed sweeps (``sweep seed CONFIG --seeds
0,1,2``: mean ± sd per entry and the uses-vision verdict) and ablation grids (``sweep CONFIG
--grid key=v1,v2 ...``), one results table (markdown + JSON) and one plot per sweep.

Python: ``babyvlm.plugins.sweep.run_sweep(config, work_dir, points, run_point=...)`` with points from
``age_points`` / ``grid_points(parse_grid([...]))``. Importing this package (plugin discovery) imports
neither click's command module nor torch.
"""

from babyvlm.core.hookspecs import hookimpl
from babyvlm.plugins import lazy_exports

__all__ = ["AGE_KEY", "Point", "across_seeds", "age_points", "grid_points", "parse_grid", "run_sweep", "seed_points",
           "sweep_markdown"]
__getattr__ = lazy_exports(__name__, {"AGE_KEY": "grid", "Point": "grid", "age_points": "grid",
                                      "grid_points": "grid", "parse_grid": "grid", "run_sweep": "runner",
                                      "seed_points": "grid", "across_seeds": "runner",
                                      "sweep_markdown": "runner"})


@hookimpl
def register_commands(register):
    register("sweep", "babyvlm.plugins.sweep.commands:sweep_command",
             short_help="Run a config at several settings: an age sweep or an ablation grid.")

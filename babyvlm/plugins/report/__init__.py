"""The ``markdown`` reporter: a run's results -> report.md, a self-contained report.html, scores.json
and PNG plots (accuracy per entry vs blind twin vs chance vs random/oracle, loss curves, the DINO k-NN
probe, the developmental curve).

The component lives in ``reporter.py``; importing this package (plugin discovery) imports neither
matplotlib nor torch.
"""

from babyvlm.core.hookspecs import hookimpl
from babyvlm.plugins import lazy_exports

__all__ = ["MarkdownReporter"]
__getattr__ = lazy_exports(__name__, dict.fromkeys(__all__, "reporter"))


@hookimpl
def register_reporters(register):
    register("markdown", "babyvlm.plugins.report.reporter:MarkdownReporter",
             description="report.md + self-contained report.html + PNG plots")

"""HTML reports with plots: ``learnscope report RUN [RUN ...] [--sweep S] [-o FILE.html]``.

One self-contained HTML file (PNG images embedded as data URIs, no network needed) and every
plot also saved as a PNG in ``<FILE>_files/`` for papers. See :mod:`learnscope.report.build`
for the panels.
"""

from learnscope.lazy import exports

# matplotlib on first use, not when a command that draws nothing imports the package
__getattr__, __dir__ = exports(
    __name__, dict.fromkeys(["Report", "build_report"], "learnscope.report.build")
)

__all__ = ["Report", "build_report"]

"""HTML reports with plots: ``learnscope report RUN [RUN ...] [--sweep S] [-o FILE.html]``.

One self-contained HTML file (PNG images embedded as data URIs, no network needed) and every
plot also saved as a PNG in ``<FILE>_files/`` for papers. See :mod:`learnscope.report.build`
for the panels.
"""

from learnscope.report.build import Report, build_report

__all__ = ["Report", "build_report"]

"""The command line, and the only place that prints: Typer apps (:mod:`~learnscope.cli.app`:
run, recipes, ls, show, report, probe; :mod:`~learnscope.cli.sweep`: sweep), the live view and
progress bars (:mod:`~learnscope.cli.live`), and what they share (:mod:`~learnscope.cli.common`).
"""

from learnscope.cli.app import app, main

__all__ = ["app", "main"]

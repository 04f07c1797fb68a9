"""learnscope: can this network, trained this way, learn this task — when, how, and what
happens inside while it does?

The public API, re-exported explicitly::

    from learnscope import make_task, load_config, execute, Store

and, for notebooks (:mod:`learnscope.notebook`)::

    import learnscope as ls
    result = ls.run("grokking-mlp", train__steps=500)   # trains, with a progress bar
    ls.runs()                                            # one row a run, columns flattened
    ls.metrics(result.run_id)                            # step, name, value

Every run goes through one pipeline, :mod:`learnscope.runner` (``execute`` for one run,
``execute_ensemble`` for several same-shaped runs trained at once); the README's "How the
code is laid out" names the layers and what each may import.
"""

from learnscope.config import RunConfig, load_config, validate_config
from learnscope.errors import UserError
from learnscope.notebook import metrics, run, runs
from learnscope.runner import RunResult, build, execute, execute_ensemble
from learnscope.store import Store
from learnscope.tasks import make_task

__version__ = "0.1.0"

__all__ = [
    "RunConfig",
    "RunResult",
    "Store",
    "UserError",
    "build",
    "execute",
    "execute_ensemble",
    "load_config",
    "make_task",
    "metrics",
    "run",
    "runs",
    "validate_config",
]

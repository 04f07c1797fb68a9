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

from learnscope.lazy import exports

#: the public API: name -> the module it lives in, imported on first use (PEP 562), so that
#: ``import learnscope`` (and the commands that train nothing) do not pay for torch
__getattr__, __dir__ = exports(
    __name__,
    {
        "RunConfig": "learnscope.config",
        "load_config": "learnscope.config",
        "validate_config": "learnscope.config",
        "UserError": "learnscope.errors",
        "examples": "learnscope.notebook",
        "metrics": "learnscope.notebook",
        "run": "learnscope.notebook",
        "runs": "learnscope.notebook",
        "RunResult": "learnscope.runner",
        "build": "learnscope.runner",
        "execute": "learnscope.runner",
        "execute_ensemble": "learnscope.runner",
        "Store": "learnscope.store",
        "make_task": "learnscope.tasks",
    },
)

__version__ = "0.1.0"

__all__ = [
    "RunConfig",
    "RunResult",
    "Store",
    "UserError",
    "build",
    "examples",
    "execute",
    "execute_ensemble",
    "load_config",
    "make_task",
    "metrics",
    "run",
    "runs",
    "validate_config",
]

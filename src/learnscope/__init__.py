"""learnscope: can this network, trained this way, learn this task — when, how, and what
happens inside while it does?

The public API, re-exported explicitly::

    from learnscope import make_task, load_config, execute, Store
"""

from learnscope.config import RunConfig, load_config, validate_config
from learnscope.errors import UserError
from learnscope.runner import RunResult, build, execute
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
    "load_config",
    "make_task",
    "validate_config",
]

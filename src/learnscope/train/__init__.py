"""Training: the loop (:mod:`~learnscope.train.loop`), the stacked ensemble engine
(:mod:`~learnscope.train.ensemble`), the callbacks every run gets
(:mod:`~learnscope.train.callbacks`), objectives, optimisers and regularisers. Nothing here
prints, and nothing here knows about sweeps or the CLI: ``learnscope.runner`` assembles a run.
"""

from learnscope.train.loop import Callback, Trainer, resolve_device

__all__ = ["Callback", "Trainer", "resolve_device"]

"""Training: the loop, its callbacks, objectives, optimisers and checkpoints."""

from learnscope.train.loop import Callback, Trainer, resolve_device

__all__ = ["Callback", "Trainer", "resolve_device"]

"""Procedurally generated tasks with exact answers: ``make_task(name, **params)``."""

from learnscope.tasks import (
    addition,
    arithmetic,
    icl_modular,
    lis,
    modular,
    modular_seq,
    multiplication,
    parity,
    pcfg,
    prototypes,
    pvr,
    relational,
    views,
)
from learnscope.tasks.base import TASKS, Split, Task, TaskParams, make_task, validate_task_params

__all__ = [
    "TASKS",
    "Split",
    "Task",
    "TaskParams",
    "make_task",
    "validate_task_params",
    "modular",
    "modular_seq",
    "multiplication",
    "addition",
    "parity",
    "lis",
    "pvr",
    "arithmetic",
    "relational",
    "icl_modular",
    "views",
    "pcfg",
    "prototypes",
]

"""luasched: a distributed task scheduler on Redis whose every state change is one atomic Lua script."""

from .errors import (
    ConnectionLost,
    GroupNotFound,
    LuaschedError,
    NotReplicated,
    ResultTimeout,
    ScriptError,
    SerializationError,
    TaskCancelled,
    TaskFailed,
    TaskNotFound,
    UnknownTask,
)
from .ops import Audit, Outcome
from .processor import Processor
from .scheduler import Args, Group, Scheduler, TaskHandle
from .sharded import Sharded
from .states import State
from .tasks import TaskInfo, current_task

__version__ = "0.1.0"

__all__ = [
    "Args",
    "Audit",
    "ConnectionLost",
    "Group",
    "GroupNotFound",
    "LuaschedError",
    "NotReplicated",
    "Outcome",
    "Processor",
    "ResultTimeout",
    "Scheduler",
    "ScriptError",
    "SerializationError",
    "Sharded",
    "State",
    "TaskCancelled",
    "TaskFailed",
    "TaskHandle",
    "TaskInfo",
    "TaskNotFound",
    "UnknownTask",
    "current_task",
]

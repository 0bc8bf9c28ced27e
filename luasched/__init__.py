"""luasched: a distributed task scheduler on Redis whose every state change is one atomic Lua script."""

from ._sync.handles import Group, TaskHandle
from ._sync.processor import Processor
from ._sync.scheduler import Scheduler
from .core.audit import Audit
from .core.base import Args
from .core.explain import Explanation
from .core.replies import Outcome
from .core.schedules import ScheduleInfo
from .core.states import State
from .core.tasks import TaskInfo, current_task
from .errors import (
    ConnectionLost,
    DependencyFailed,
    GroupNotFound,
    LuaschedError,
    NotReplicated,
    QueueFull,
    ResultTimeout,
    ScheduleNotFound,
    ScriptError,
    SerializationError,
    ServerRefused,
    TaskCancelled,
    TaskExpired,
    TaskFailed,
    TaskNotFound,
    UniqueKeyError,
    UnknownLimiter,
    UnknownTask,
    UnsupportedServer,
)
from .sharded import Sharded

__version__ = "0.1.0"

__all__ = [
    "Args",
    "Audit",
    "ConnectionLost",
    "Explanation",
    "Group",
    "GroupNotFound",
    "LuaschedError",
    "NotReplicated",
    "Outcome",
    "Processor",
    "QueueFull",
    "ResultTimeout",
    "ScheduleInfo",
    "ScheduleNotFound",
    "Scheduler",
    "ScriptError",
    "SerializationError",
    "ServerRefused",
    "Sharded",
    "State",
    "TaskCancelled",
    "TaskExpired",
    "DependencyFailed",
    "TaskFailed",
    "TaskHandle",
    "TaskInfo",
    "TaskNotFound",
    "UniqueKeyError",
    "UnknownLimiter",
    "UnknownTask",
    "UnsupportedServer",
    "current_task",
]

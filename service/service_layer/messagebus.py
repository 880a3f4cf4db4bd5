"""Each command type has one handler; the bus finds it by the command's type.

After Cosmic Python's message bus: the Kafka edge neither knows nor cares which action a
record carries, and a new action is a command type and a handler registered here.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from typing import Any

from service.domain.commands import Command
from service.service_layer.outcome import Outcome

Handler = Callable[[Any], Awaitable[Outcome]]


class MessageBus:
    def __init__(self, handlers: Mapping[type[Command], Handler]) -> None:
        self._handlers = dict(handlers)

    async def handle(self, command: Command) -> Outcome:
        handler = self._handlers.get(type(command))
        if handler is None:
            raise LookupError(f"no handler for {type(command).__name__}")
        return await handler(command)

"""What one Kafka record holds, for the results and events the service writes.

The broker's and the producer's default limit is 1 MiB (`message.max.bytes`,
`max_request_size`). A message over it is refused every time: a command whose answer or
event it is could never be answered, and its partition would wait behind it for good. So
what could grow past it is bounded where it is decided: a list's page is cut short, a
search or an unregistration that would not fit is refused, and ids and commands have
caps of their own.
"""

from __future__ import annotations

from pydantic import BaseModel
from pydantic_core import to_json

# Under the limit with room for the record's own framing, its key and its headers.
MAX_MESSAGE_BYTES = 1_000_000


def message_bytes(message: BaseModel) -> int:
    """The bytes of the message's value on the log, encoded as the publisher encodes it
    (FastStream writes a message's JSON form with pydantic's `to_json`)."""
    return len(to_json(message.model_dump(mode="json")))

"""What every sans-IO protocol core shares (the h11 shape): the ``NEED_DATA`` sentinel.

``next_event()`` returns ``NEED_DATA`` while the bytes received so far hold no complete event.
It is an enum member so that ``event is NEED_DATA`` narrows the event's type for mypy.
"""

from __future__ import annotations

import enum
from typing import Final


class NeedData(enum.Enum):
    """Type of ``NEED_DATA``: no complete event until more bytes arrive."""

    NEED_DATA = enum.auto()

    def __repr__(self) -> str:
        return "NEED_DATA"


NEED_DATA: Final = NeedData.NEED_DATA

"""The path and query parameters portal pages share: row ids and keyset cursors (64-bit, positive)."""

from __future__ import annotations

from typing import Annotated

from fastapi import Path, Query

ROW_ID_MAX = 2**63 - 1
RowId = Annotated[int, Path(ge=1, le=ROW_ID_MAX)]
Cursor = Annotated[int | None, Query(ge=1, le=ROW_ID_MAX, description="Show items older than this id")]

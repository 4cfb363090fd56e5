"""Why a TAMP message was refused, as the RFC 5934 status code a store answers with."""

from __future__ import annotations

from mpki.asn1.tamp import MsgRef, StatusCode
from mpki.domain import MpkiError


class TampRefused(MpkiError):
    """A message was refused; `status` is the RFC 5934 code, `msg_type` and `msg_ref` what could be read of it."""

    def __init__(
        self,
        status: StatusCode,
        message: str,
        msg_type: str | None = None,
        msg_ref: MsgRef | None = None,
    ) -> None:
        super().__init__(f"{status.name}: {message}")
        self.status = status
        self.msg_type = msg_type
        self.msg_ref = msg_ref

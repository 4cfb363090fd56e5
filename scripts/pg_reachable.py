"""Exit 0 when the PostgreSQL URL given accepts a connection within two seconds, else 1."""

from __future__ import annotations

import sys

from sqlalchemy import create_engine, text


def main() -> int:
    url = sys.argv[1]
    try:
        engine = create_engine(url, connect_args={"connect_timeout": 2})
        with engine.connect() as connection:
            connection.execute(text("SELECT 1"))
    except Exception:
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())

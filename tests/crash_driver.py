"""A victim for the crash-safety test: issue a large batch and report progress until someone kills us.

    python tests/crash_driver.py CSR_FILE [PROFILE]

CSR_FILE holds one hex-encoded DER CSR per line. The installation comes from the environment
(MPKI_HOME, MPKI_DATABASE_URL, MPKI_ISSUANCE_CHUNK_SIZE, ...). Prints `ready N` once the orders are
loaded, then `progress DONE TOTAL` after every committed chunk, flushed at once so the test can time its
SIGKILL. With CRASH_DRIVER_SIGN_DELAY_MS set, every signature takes that much longer, like a slow HSM,
which widens the window between a chunk's reservations and its certificates.
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path
from typing import Any


def main(argv: list[str]) -> int:
    import mpki.ca.authority as authority_module
    from mpki.ca import IssuanceOrder
    from mpki.ca.runtime import open_authority
    from mpki.config import load_settings

    csr_file = Path(argv[1])
    profile = argv[2] if len(argv) > 2 else "smki-device"
    delay = float(os.environ.get("CRASH_DRIVER_SIGN_DELAY_MS", "0")) / 1000
    if delay:
        real_sign = authority_module.sign_certificate

        def slow_sign(*args: Any, **kwargs: Any) -> Any:
            time.sleep(delay)
            return real_sign(*args, **kwargs)

        authority_module.sign_certificate = slow_sign  # type: ignore[assignment]

    orders = [
        IssuanceOrder(profile, bytes.fromhex(line), approved_by="crash-driver")
        for line in csr_file.read_text().split()
        if line
    ]
    ca = open_authority(load_settings())
    print(f"ready {len(orders)}", flush=True)

    def progress(done: int, total: int) -> None:
        print(f"progress {done} {total}", flush=True)

    results = ca.issue_many(orders, actor="crash-driver", progress=progress)
    print(f"finished {sum(1 for r in results if r.ok)}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))

"""Fetch htmx (the portals' one JavaScript dependency) from the npm registry into the package's static
folder, and refuse it unless its SHA-256 is the pinned one. Run by `make install`; idempotent."""

from __future__ import annotations

import hashlib
import io
import json
import sys
import tarfile
import urllib.request
from pathlib import Path

VERSION = "2.0.8"
SHA256 = "22283ef68cb7545914f0a88a1bdedc7256a703d1d580c1d255217d0a50d31313"
TARGET = Path(__file__).resolve().parent.parent / "src" / "mpki" / "web" / "static" / "vendor" / "htmx.min.js"
REGISTRY = "https://registry.npmjs.org"


def main() -> int:
    if TARGET.is_file() and hashlib.sha256(TARGET.read_bytes()).hexdigest() == SHA256:
        return 0
    with urllib.request.urlopen(f"{REGISTRY}/htmx.org/{VERSION}", timeout=60) as answer:
        tarball = json.load(answer)["dist"]["tarball"]
    with urllib.request.urlopen(tarball, timeout=120) as answer:
        archive = answer.read()
    with tarfile.open(fileobj=io.BytesIO(archive), mode="r:gz") as tar:
        member = tar.extractfile("package/dist/htmx.min.js")
        if member is None:
            print("htmx: the package has no dist/htmx.min.js", file=sys.stderr)
            return 1
        body = member.read()
    digest = hashlib.sha256(body).hexdigest()
    if digest != SHA256:
        print(f"htmx {VERSION}: SHA-256 {digest} is not the pinned {SHA256}", file=sys.stderr)
        return 1
    TARGET.parent.mkdir(parents=True, exist_ok=True)
    TARGET.write_bytes(body)
    print(f"htmx {VERSION} -> {TARGET}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

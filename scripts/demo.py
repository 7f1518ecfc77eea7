"""Show what the connector offers: its configuration fields (spec) and its streams (discover).

Runs the installed `source-klaviyo` command; nothing is sent to Klaviyo.
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
from pathlib import Path

CONNECTOR = str(Path(sys.executable).with_name("source-klaviyo"))


def messages(*args: str) -> list[dict]:
    output = subprocess.run([CONNECTOR, *args], check=True, capture_output=True, text=True).stdout
    return [json.loads(line) for line in output.splitlines() if line.startswith("{")]


def main() -> None:
    print("== spec: configuration fields")
    (spec,) = [m["spec"] for m in messages("spec") if m["type"] == "SPEC"]
    for name, field in spec["connectionSpecification"]["properties"].items():
        print(f"  {name:22} {field['title']}")

    with tempfile.TemporaryDirectory() as folder:
        config = Path(folder) / "config.json"
        config.write_text(json.dumps({"api_key": "pk_demo_00000000000000000000000000"}))
        print("== discover: streams")
        (catalog,) = [m["catalog"] for m in messages("discover", "--config", str(config)) if m["type"] == "CATALOG"]
    for stream in catalog["streams"]:
        modes = "+".join(stream["supported_sync_modes"])
        cursor = ",".join(stream.get("default_cursor_field") or []) or "-"
        print(f"  {stream['name']:16} {modes:26} cursor={cursor}")


if __name__ == "__main__":
    main()

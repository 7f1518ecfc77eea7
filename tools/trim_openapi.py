"""Copy the part of Klaviyo's OpenAPI specs this project uses into klaviyo_spec/openapi/.

    python tools/trim_openapi.py ../shared/klaviyo-openapi

Klaviyo publishes one spec per revision (github.com/klaviyo/openapi). The
simulator and the tests need only the operations the connector calls and the
simulator serves, with the components they reference: a fraction of the whole.
Keeping that part in the repository lets both run on a clone without anything
beside it. A test checks the copy still equals a fresh trim when the full specs
are present.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

OUT_DIR = Path(__file__).resolve().parents[1] / "klaviyo_spec" / "openapi"
REVISIONS = ("2026-07-15", "2023-10-15")
# Path (after /api/, without the trailing slash 2023-10-15 adds) -> method. Templated paths are
# written as the spec writes them; a revision without the path (forms in 2023-10-15) just lacks it.
OPERATIONS = {
    "campaigns": "get",
    "campaigns/{id}/campaign-messages": "get",
    "templates": "get",
    "profiles": "get",
    "events": "get",
    "metrics": "get",
    "lists": "get",
    "lists/{id}/profiles": "get",
    "segments": "get",
    "segments/{id}/profiles": "get",
    "flows": "get",
    "flows/{id}/flow-actions": "get",
    "flow-actions/{id}/flow-messages": "get",
    "tags": "get",
    "tag-groups": "get",
    "coupons": "get",
    "coupons/{id}/coupon-codes": "get",
    "coupon-codes": "get",
    "forms": "get",
    "catalog-items": "get",
    "catalog-variants": "get",
    "catalog-categories": "get",
    "metric-aggregates": "post",
    "accounts": "get",
    "campaign-values-reports": "post",
    "flow-values-reports": "post",
    "flow-series-reports": "post",
    "form-values-reports": "post",
    "form-series-reports": "post",
    "segment-values-reports": "post",
    "segment-series-reports": "post",
}


def _references(node: Any, found: set[str]) -> set[str]:
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "$ref":
                found.add(value)
            else:
                _references(value, found)
    elif isinstance(node, list):
        for value in node:
            _references(value, found)
    return found


def trim(document: dict[str, Any]) -> dict[str, Any]:
    paths: dict[str, Any] = {}
    for name, method in OPERATIONS.items():
        for path in (f"/api/{name}", f"/api/{name}/"):
            if path in document["paths"]:
                paths[path] = {method: document["paths"][path][method]}
    components: dict[str, dict[str, Any]] = {"securitySchemes": document["components"]["securitySchemes"]}
    pending, seen = _references(paths, set()), set()
    while pending:
        reference = pending.pop()
        seen.add(reference)
        section, name = reference.removeprefix("#/components/").split("/")
        target = document["components"][section][name]
        components.setdefault(section, {})[name] = target
        pending |= _references(target, set()) - seen
    return {
        "openapi": document["openapi"],
        "info": document["info"],
        "servers": document["servers"],
        "paths": paths,
        "components": {section: dict(sorted(items.items())) for section, items in sorted(components.items())},
    }


def trimmed_text(spec_dir: Path, revision: str) -> str:
    document = json.loads((spec_dir / f"openapi-{revision}.json").read_text())
    return json.dumps(trim(document), indent=1, sort_keys=False) + "\n"


def main(spec_dir: str) -> None:
    OUT_DIR.mkdir(parents=True, exist_ok=True)
    for revision in REVISIONS:
        target = OUT_DIR / f"openapi-{revision}.json"
        target.write_text(trimmed_text(Path(spec_dir), revision))
        print(f"wrote {target} ({target.stat().st_size // 1024} KiB)")


if __name__ == "__main__":
    main(sys.argv[1])

"""Write the API's OpenAPI document to docs/openapi.json (a test holds it equal to what
`hive api` serves at /openapi.json): python scripts/openapi.py"""

from __future__ import annotations

import json
from pathlib import Path

from hive.api import create_app

TARGET = Path(__file__).resolve().parent.parent / "docs" / "openapi.json"


def main() -> None:
    document = create_app().openapi()
    TARGET.write_text(json.dumps(document, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    print(f"wrote {TARGET}")


if __name__ == "__main__":
    main()

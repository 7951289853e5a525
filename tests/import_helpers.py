"""Files for the import tests, written the way real datasets are (UTF-8, one JSON object per line)."""

import json


def jsonl(*records) -> bytes:
    return "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records).encode()

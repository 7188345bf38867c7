"""Where the time goes: py-spy samples of a running process, summarised.

Used by `bench/run.py --profile` (after the measured phases, so sampling never touches a figure);
also on its own for a collapsed-stack file py-spy wrote earlier:

    python bench/profiling.py profile-api.txt

py-spy is not a project dependency; install it anywhere and point BENCH_PY_SPY at it, e.g.
`pip install --target /tmp/pyspy py-spy` and `BENCH_PY_SPY=/tmp/pyspy/bin/py-spy`.

Two views of the active (non-idle) samples:

- `by_layer`: the share of samples whose *leaf* frame (where the CPU was) is in each layer:
  SQLAlchemy ORM, SQLAlchemy Core/engine, asyncpg, FastAPI/Starlette, pydantic, uvicorn/httptools,
  httpx/httpcore, PyJWT/cryptography, arq/redis, Countersign's own code, the standard library
  (asyncio, json, ...), other;
- `countersign_inclusive`: for each Countersign function, the share of samples with it anywhere on
  the stack (what a call costs with everything it calls), the top 25.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import sys
from collections import Counter
from pathlib import Path
from typing import Any

# (layer, path fragment), first match wins.
LAYERS = (
    ("sqlalchemy orm", "/sqlalchemy/orm/"),
    ("sqlalchemy core/engine", "/sqlalchemy/"),
    ("asyncpg", "/asyncpg/"),
    ("fastapi/starlette", "/fastapi/"),
    ("fastapi/starlette", "/starlette/"),
    ("pydantic", "/pydantic"),
    ("uvicorn/httptools", "/uvicorn/"),
    ("uvicorn/httptools", "/httptools/"),
    ("httpx/httpcore", "/httpx/"),
    ("httpx/httpcore", "/httpcore/"),
    ("jwt/cryptography", "/jwt/"),
    ("jwt/cryptography", "/cryptography/"),
    ("arq/redis", "/arq/"),
    ("arq/redis", "/redis/"),
    ("countersign", "/countersign/"),
    ("stdlib asyncio", "/asyncio/"),
    ("stdlib", "/lib/python3"),
)
FRAME = re.compile(r"^(?P<function>.*) \((?P<file>[^()]*?)(?::(?P<line>\d+))?\)$")


def py_spy() -> str | None:
    found = os.environ.get("BENCH_PY_SPY") or shutil.which("py-spy")
    if found is None:
        candidate = Path(sys.executable).with_name("py-spy")
        found = str(candidate) if candidate.exists() else None
    return found


def layer(file: str) -> str:
    for name, fragment in LAYERS:
        if fragment in file:
            return name
    return "other"


def summarise(path: Path, top: int = 25) -> dict[str, Any]:
    """The two views of a py-spy `--format raw` file (one `frame;frame;... count` per line)."""
    layers: Counter[str] = Counter()
    inclusive: Counter[str] = Counter()
    total = 0
    for line in path.read_text(errors="replace").splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not stack or not count_text.isdigit():
            continue
        count = int(count_text)
        total += count
        frames = [FRAME.match(f) for f in stack.split(";")]
        parsed = [(m["function"], m["file"]) for m in frames if m is not None]
        if not parsed:
            continue
        layers[layer(parsed[-1][1])] += count
        seen = set()
        for function, file in parsed:
            if "/countersign/" not in file:
                continue
            module = (
                file.split("/countersign/", 1)[1].removesuffix(".py").replace("/", ".")
            )
            name = f"{module}.{function}"
            if name not in seen:
                seen.add(name)
                inclusive[name] += count
    if not total:
        return {"samples": 0}
    return {
        "samples": total,
        "by_layer": {k: round(v / total, 3) for k, v in layers.most_common()},
        "countersign_inclusive": {
            k: round(v / total, 3) for k, v in inclusive.most_common(top)
        },
    }


def main() -> None:
    sys.stdout.write(json.dumps(summarise(Path(sys.argv[1])), indent=2) + "\n")


if __name__ == "__main__":
    main()

"""Runs one of the matrix-js-sdk scripts under tests/interop/js against a
server and returns the JSON object it printed."""

from __future__ import annotations

import asyncio
import json
import shutil
from pathlib import Path
from typing import Any

import pytest

JS_DIR = Path(__file__).parent / "js"
TIMEOUT = 120


async def run_node_script(script: Path, url: str, *args: str) -> dict[str, Any]:
    node = shutil.which("node")
    if node is None:
        pytest.fail("Node.js (`node`) is not on PATH; the matrix-js-sdk tests need Node.js 20+")
    if not (JS_DIR / "node_modules" / "matrix-js-sdk").is_dir():
        pytest.fail(
            f"{JS_DIR / 'node_modules'} is missing matrix-js-sdk: run `make test`, "
            "which installs it (npm ci in tests/interop/js)"
        )
    proc = await asyncio.create_subprocess_exec(
        node,
        str(script),
        url,
        *args,
        cwd=JS_DIR,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        stdout, stderr = await asyncio.wait_for(proc.communicate(), TIMEOUT)
    except TimeoutError:
        proc.kill()
        await proc.wait()
        pytest.fail(f"{script.name} did not finish within {TIMEOUT}s")
    err = stderr.decode(errors="replace")
    assert proc.returncode == 0, f"{script.name} exited {proc.returncode}:\n{err[-20000:]}"
    try:
        result: dict[str, Any] = json.loads(stdout)
    except ValueError:
        pytest.fail(f"{script.name} printed no JSON:\n{stdout!r}\nstderr:\n{err[-20000:]}")
    return result

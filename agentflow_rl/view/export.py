"""``agentflow view PATH --export DIR``: the same page as files that open without a server.

Browsers refuse ``fetch`` from ``file://`` pages, so each API path becomes a script,
``data/<path>.js``, that hands its JSON to ``AF_DATA(path, value)``; the page loads them with
``<script src>`` using relative URLs, which file pages may do. The data is a JSON literal (valid
JavaScript), never markup, so it is still shown as text only.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from agentflow_core import UsageError
from agentflow_rl.view.api import ViewData, dumps
from agentflow_rl.view.server import STATIC

SERVE_MODE = '<meta name="agentflow-mode" content="serve">'
EXPORT_MODE = '<meta name="agentflow-mode" content="export">'


def export_site(data: ViewData, target: Path) -> int:
    """Write the site into ``target``; returns the number of data files."""
    if target.exists() and not target.is_dir():
        raise UsageError(f"--export {target}: not a directory")
    if target.is_dir() and any(target.iterdir()) and not (target / "index.html").is_file():
        raise UsageError(f"--export {target}: the directory is not empty and holds no earlier export")
    target.mkdir(parents=True, exist_ok=True)
    page = (STATIC / "index.html").read_text(encoding="utf-8")
    if SERVE_MODE not in page:
        raise RuntimeError("index.html lost its agentflow-mode marker")
    (target / "index.html").write_text(page.replace(SERVE_MODE, EXPORT_MODE), encoding="utf-8")
    shutil.copytree(STATIC, target / "static", dirs_exist_ok=True, ignore=shutil.ignore_patterns("index.html"))
    count = 0
    for path in data.paths():
        out = target / "data" / f"{path}.js"
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(f"AF_DATA({json.dumps(path)}, {dumps(data.get(path))});\n", encoding="utf-8")
        count += 1
    return count

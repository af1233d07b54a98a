"""mkdocs hook: the schedules page's plots, drawn from the code at every docs build.

Runs ``docs/examples/plot_schedules.py`` into a temporary folder and adds each PNG to
the site as ``assets/schedules/<name>.png``, so the figures always show what the
installed ``optref.schedules`` computes; no plot is committed.
"""

from __future__ import annotations

import importlib.util
import tempfile
from pathlib import Path
from typing import Any

from mkdocs.structure.files import File, Files

SCRIPT = Path(__file__).resolve().parent.parent / "examples" / "plot_schedules.py"
DESTINATION = "assets/schedules"

_folder = tempfile.TemporaryDirectory(prefix="optref-schedule-plots-")


def _plot(out: Path) -> list[Path]:
    spec = importlib.util.spec_from_file_location("plot_schedules", SCRIPT)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.main(out)


def on_files(files: Files, config: Any) -> Files:
    for png in _plot(Path(_folder.name)):
        uri = f"{DESTINATION}/{png.name}"
        existing = files.get_file_from_path(uri)
        if existing is not None:
            files.remove(existing)
        files.append(File.generated(config, uri, abs_src_path=str(png)))
    return files

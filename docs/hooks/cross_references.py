"""mkdocs hook: Sphinx-style roles in docstrings become links to the API pages.

Docstrings name other objects as ``:func:`scale_by_adam``` or ``:class:`~optref.core.Chain```,
which mkdocstrings renders as the literal role followed by code. This hook replaces each
with the code alone, linked to the object's entry on its API page when one documents it:
every name in ``optref.<package>.__all__`` has an entry ``#optref.<package>.<name>`` on
``api/<package>/`` (``tests/test_docs.py`` checks it). A short name is looked up in the
page's own package first, then in the others.
"""

from __future__ import annotations

import importlib
import re
from typing import Any

PACKAGES = ("core", "schedules", "linesearch", "masking", "compat", "audit")
ROLE = re.compile(r":(?:func|class|meth|attr|mod|data|obj|exc):<code>~?([^<]+?)(?:\(\))?</code>")


def _documented() -> dict[str, str]:
    """``optref.<package>.<name>`` -> the site path of its API page."""
    return {
        f"optref.{package}.{name}": f"api/{package}/"
        for package in PACKAGES
        for name in importlib.import_module(f"optref.{package}").__all__
    }


def _link(name: str, here: str, package: str, documented: dict[str, str]) -> str:
    shown = name.rsplit(".", 1)[-1] if name.startswith("optref.") else name
    code = f"<code>{shown}</code>"
    candidates = [name] if name.startswith("optref.") else [f"optref.{package}.{name}"]
    candidates += [f"optref.{p}.{name}" for p in PACKAGES]
    for candidate in candidates:
        if candidate in documented:
            target = documented[candidate]
            prefix = "" if target == here else "../" * here.count("/") + target
            return f'<a href="{prefix}#{candidate}">{code}</a>'
    return code


def on_page_content(html: str, page: Any, config: Any, files: Any) -> str:
    documented = _documented()
    package = page.file.src_uri.removeprefix("api/").removesuffix(".md")
    return ROLE.sub(lambda m: _link(m.group(1), page.url, package, documented), html)

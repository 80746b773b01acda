"""Vendored JavaScript: pinned, unmodified, licensed, served from here and never a CDN."""

from __future__ import annotations

import hashlib
import re

from .conftest import REPO

UPLOT = REPO / "static" / "vendor" / "uplot"


def test_uplot_is_the_pinned_release_with_its_license():
    js = (UPLOT / "uPlot.iife.min.js").read_bytes()
    assert js.startswith(b"/*! https://github.com/leeoniya/uPlot (v1.6.32) */")
    # The npm tarball's dist/uPlot.iife.min.js, byte for byte.
    assert hashlib.sha256(js).hexdigest() == (
        "19c8d4c6ad88929a79f4ae49d6f7161566dfd0ba3d15cc495e974f787eb78f1f"
    )
    assert len(js) < 60_000 and (UPLOT / "uPlot.min.css").stat().st_size < 5_000
    assert "MIT License" in (UPLOT / "LICENSE").read_text()


def test_pages_load_scripts_from_static_deferred_and_nothing_from_elsewhere():
    base = (REPO / "templates" / "base.html").read_text()
    assert "{% static 'vendor/uplot/uPlot.iife.min.js' %}\" defer" in base
    assert "{% static 'js/dashboard.js' %}\" defer" in base
    # Nothing is loaded from elsewhere: no script, image, style sheet or frame. A link a user
    # follows (a model's Hugging Face page) loads nothing until it is clicked.
    loads = re.compile(r"""(<link\b[^>]*\bhref|\bsrc|@import\s+url\()=?["']?(https?:)?//""")
    for path in (REPO / "templates").rglob("*.html"):
        assert not loads.search(path.read_text()), path
    assert loads.search('<script src="https://cdn.example/x.js">')
    assert loads.search('<link rel="stylesheet" href="//cdn.example/x.css">')
    assert not loads.search('<a href="https://huggingface.co/x">')

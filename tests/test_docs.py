"""The plugin guide's code is the example package's code, which the suite runs.

Every Python and TOML block in ``docs/writing-plugins.md`` must stand, to the
letter, in a file of ``plugins/tl-bitfit/`` (whose tests run with the suite);
a block labelled with a file name must be that whole file.
"""

from __future__ import annotations

import re

import pytest
from conftest import ROOT

GUIDE = ROOT / "docs" / "writing-plugins.md"
PACKAGE = ROOT / "plugins" / "tl-bitfit"
# A block right below a line that is only "`path`:" is that whole file.
_BLOCK = re.compile(r"(?:^`(?P<label>[\w./-]+)`:\s*\n\s*\n)?^```(?P<lang>python|toml)\n(?P<code>.*?)^```", re.S | re.M)


def _blocks() -> list[tuple[str | None, str, str]]:
    return [(m["label"], m["lang"], m["code"]) for m in _BLOCK.finditer(GUIDE.read_text())]


def test_the_guide_has_code_blocks() -> None:
    labels = [label for label, _, _ in _blocks()]
    assert "pyproject.toml" in labels and "tl_bitfit/__init__.py" in labels


@pytest.mark.parametrize(("label", "lang", "code"), _blocks(), ids=lambda v: str(v)[:30])
def test_block_is_the_example_package_code(label: str | None, lang: str, code: str) -> None:
    if label:
        assert code == (PACKAGE / label).read_text(), f"the guide's {label} differs from {PACKAGE / label}"
        return
    files = [p for p in PACKAGE.rglob("*.py" if lang == "python" else "*.toml") if ".egg-info" not in str(p)]
    assert any(code in p.read_text() for p in files), f"this {lang} block is in no file of {PACKAGE}:\n{code}"

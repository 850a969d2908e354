"""README's settings table is the one generated from the Settings class."""

from __future__ import annotations

from pathlib import Path

from reckon.streams.core.settings import Settings
from reckon.streams.core.settings_doc import BEGIN, END, markdown_table, readme_section

README = Path(__file__).resolve().parents[3] / "README.md"


def test_readme_has_the_generated_table() -> None:
    text = README.read_text()
    assert text.count(BEGIN) == 1 and text.count(END) == 1
    assert readme_section() in text, "README's settings table drifted: paste `reckon settings --markdown`"


def test_every_setting_is_documented() -> None:
    table = markdown_table()
    for name, field in Settings.model_fields.items():
        assert field.description, f"RECKON_{name.upper()} has no description"
        assert f"| `RECKON_{name.upper()}` |" in table

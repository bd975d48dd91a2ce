"""A web process compiles every template and imports every view before its first request."""

from __future__ import annotations

import pytest
from django.template import TemplateSyntaxError, engines

from rubricstudio import warm


def test_every_studio_template_compiles_and_is_kept_for_the_first_request() -> None:
    names = warm.studio_templates()
    assert "base.html" in names and "scoring/run.html" in names and len(names) > 40
    assert warm.warm() == len(names)
    engine = engines["django"]
    for name in names:  # the compiled template is the one each request is then served
        assert engine.get_template(name).template is engine.get_template(name).template


def test_a_template_that_does_not_compile_stops_the_start(tmp_path, settings) -> None:  # type: ignore[no-untyped-def]
    (tmp_path / "templates").mkdir()
    (tmp_path / "templates" / "broken.html").write_text("{% if %}")
    settings.BASE_DIR = tmp_path
    settings.TEMPLATES = [{**settings.TEMPLATES[0], "DIRS": [tmp_path / "templates"]}]
    with pytest.raises(TemplateSyntaxError):
        warm.warm()

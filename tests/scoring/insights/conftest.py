"""Fixtures of the analytics tests."""

from __future__ import annotations

import pytest

from scoring.judges import services as judge_services


@pytest.fixture
def judge(project, owner, fake_llm):  # type: ignore[no-untyped-def]
    """The offline fake judge as one of the project's endpoints."""
    data = {"name": "judge", "base_url": fake_llm.url + "/v1", "model": "fake-judge"}
    return judge_services.endpoint_save(project=project, actor=owner, data=data)

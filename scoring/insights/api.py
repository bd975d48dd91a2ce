"""The Analytics tab's figures of a run over the API (viewers and up, as the page)."""

from __future__ import annotations

from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import extend_schema
from rest_framework.request import Request
from rest_framework.response import Response as DRFResponse
from rest_framework.views import APIView

from annotation.errors import ApplicationError
from annotation.projects.api import ProjectScopedMixin
from scoring.insights import services as insights_services
from scoring.runs import selectors as run_selectors


class NotComputed(ApplicationError):
    status_code = 409


class RunAnalyticsApi(ProjectScopedMixin, APIView):
    """Every figure of a finished run's analytics, as the worker stored them: ``criteria``
    (hit rates overall and per source, saturation, discrimination, label agreement, noise,
    flags with reasons), ``redundant``, ``snr``, ``tail``, ``leaderboard``, ``bias``. An
    undefined figure is ``{"value": null, "why": …}``. 409 while they are not computed."""

    @extend_schema(responses=OpenApiTypes.OBJECT)
    def get(self, request: Request, slug: str, pk: int) -> DRFResponse:
        run = run_selectors.run_get(project=self.get_project(), run_id=pk)
        insights = insights_services.insights_of(run=run)
        if insights is None or insights.error:
            why = insights.error if insights else "not computed yet"
            raise NotComputed(f"This run's analytics are {why}.")
        return DRFResponse(
            {
                "run": run.pk,
                "computed_at": insights.computed_at,
                "seconds": insights.seconds,
                **insights.figures,
            }
        )

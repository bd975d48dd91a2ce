"""Thin DRF views for expert reviews, with the pages' permissions: viewers and up list review
queues with their progress and read the agreement figures; editors and owners make a queue
from the project's imported preference pairs (a queue of a pairwise run's pairs is made on
the run: ``api-run-review-queue``). Scoped through the project selector (outsiders 404)."""

from __future__ import annotations

from typing import Any

from django.db.models import QuerySet
from drf_spectacular.utils import OpenApiParameter, extend_schema, extend_schema_field
from rest_framework import generics, serializers, status
from rest_framework.request import Request
from rest_framework.response import Response as DRFResponse
from rest_framework.views import APIView

from annotation.errors import ApplicationError
from annotation.http import api_user
from annotation.projects.api import ProjectScopedMixin
from annotation.reviews import queues as queue_services
from annotation.reviews import selectors as review_selectors
from annotation.reviews.agreement import Comparison, Figure, agreement_report, reference_name
from annotation.reviews.forms import QUEUE_PLAN_CHOICES
from annotation.reviews.models import ReviewQueue


class QueueProgressSerializer(serializers.Serializer[Any]):
    items = serializers.IntegerField(help_text="Pairs in the queue.")
    total = serializers.IntegerField(help_text="Reviews to make (pairs × reviewers per pair).")
    done = serializers.IntegerField()
    held = serializers.IntegerField(help_text="Pairs a reviewer has open now.")
    final = serializers.IntegerField(help_text="Pairs with a final label.")
    to_adjudicate = serializers.IntegerField()


class ReviewQueueSerializer(serializers.ModelSerializer[ReviewQueue]):
    progress = serializers.SerializerMethodField()

    class Meta:
        model = ReviewQueue
        fields = [
            "id", "name", "origin", "plan", "sample_size", "overlap", "lock_minutes",
            "show_sources", "source_run", "judge_name", "template_version", "created_at",
            "progress",
        ]  # fmt: skip
        read_only_fields = fields

    @extend_schema_field(QueueProgressSerializer)
    def get_progress(self, queue: ReviewQueue) -> dict[str, int]:
        return review_selectors.queue_progress(queue=queue)


class QueueCreateSerializer(serializers.Serializer[Any]):
    """A queue of the project's imported preference pairs, as the Reviews page makes it."""

    name = serializers.CharField(required=False, allow_blank=True, default="", max_length=200)
    plan = serializers.ChoiceField(choices=QUEUE_PLAN_CHOICES, default=ReviewQueue.Plan.ALL)
    k = serializers.IntegerField(
        min_value=1, required=False, allow_null=True, default=None, help_text="Pairs to sample."
    )
    overlap = serializers.IntegerField(min_value=1, default=2, help_text="Reviewers per pair.")
    lock_minutes = serializers.IntegerField(min_value=1, default=15)
    show_sources = serializers.BooleanField(default=False)
    seed = serializers.IntegerField(required=False, allow_null=True, default=None)


class ReviewQueueListApi(ProjectScopedMixin, generics.ListAPIView[ReviewQueue]):
    serializer_class = ReviewQueueSerializer

    def get_queryset(self) -> QuerySet[ReviewQueue]:
        return review_selectors.review_queues_of(project=self.get_project())  # type: ignore[return-value]

    @extend_schema(request=QueueCreateSerializer, responses={201: ReviewQueueSerializer})
    def post(self, request: Request, slug: str) -> DRFResponse:
        project = self.get_project()  # access first: 404/403 never depend on the body
        serializer = QueueCreateSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        data = serializer.validated_data
        labels = list(review_selectors.preference_pairs(project=project))
        if not labels:
            raise ApplicationError(
                "This project has no imported preference pairs yet: import some, then make a "
                "queue (or make one of a pairwise run's pairs on the run)."
            )
        queue = queue_services.queue_from_labels(
            project=project,
            actor=api_user(request),
            labels=labels,
            name=data["name"],
            plan=data["plan"],
            sample_size=data["k"] if data["plan"] != ReviewQueue.Plan.ALL else None,
            overlap=data["overlap"],
            lock_minutes=data["lock_minutes"],
            show_sources=data["show_sources"],
            seed=data["seed"],
        )
        return DRFResponse(ReviewQueueSerializer(queue).data, status=status.HTTP_201_CREATED)


class ReviewQueueDetailApi(ProjectScopedMixin, APIView):
    @extend_schema(responses=ReviewQueueSerializer)
    def get(self, request: Request, slug: str, pk: int) -> DRFResponse:
        queue = review_selectors.review_queue_get(project=self.get_project(), queue_id=pk)
        return DRFResponse(ReviewQueueSerializer(queue).data)


# --- agreement ----------------------------------------------------------------------------


class FigureSerializer(serializers.Serializer[Any]):
    value = serializers.FloatField(allow_null=True)
    why = serializers.CharField(help_text="Why the value is undefined, when it is.")


class ComparisonSerializer(serializers.Serializer[Any]):
    """The reference's verdicts against the human labels over one group."""

    name = serializers.CharField()
    n = serializers.IntegerField(help_text="(verdict, human label) pairs compared.")
    n_items = serializers.IntegerField()
    accuracy = FigureSerializer()
    kappa = FigureSerializer(help_text="Cohen's κ.")
    labels = serializers.ListField(child=serializers.CharField())
    matrix = serializers.ListField(
        child=serializers.ListField(child=serializers.IntegerField()),
        help_text="Rows: the reference's label; columns: the humans' (order of labels).",
    )


class PairRowSerializer(serializers.Serializer[Any]):
    rater_a = serializers.CharField()
    rater_b = serializers.CharField()
    n_items = serializers.IntegerField()
    agreement = FigureSerializer()
    kappa = FigureSerializer()


class HumansSerializer(serializers.Serializer[Any]):
    """One queue's reviewers among themselves."""

    queue = serializers.IntegerField()
    name = serializers.CharField()
    reviewers = serializers.IntegerField()
    alpha = FigureSerializer(help_text="Krippendorff's α (nominal).")
    agreement = FigureSerializer(help_text="Share of same-pair reviews that agree.")
    pairs = PairRowSerializer(many=True)


class AgreementSerializer(serializers.Serializer[Any]):
    reference = serializers.CharField(help_text="judge, dataset label, or either.")
    queue = serializers.IntegerField(allow_null=True)
    n_reviews = serializers.IntegerField()
    n_items = serializers.IntegerField()
    n_reviewers = serializers.IntegerField()
    unjudged = serializers.IntegerField(help_text="Reviews of pairs without a reference verdict.")
    overall = ComparisonSerializer()
    final = ComparisonSerializer(help_text="Against the final labels.")
    by_rubric = ComparisonSerializer(many=True)
    by_endpoint = ComparisonSerializer(many=True)
    by_template = ComparisonSerializer(many=True)
    by_criterion = ComparisonSerializer(many=True)
    by_rubric_version = ComparisonSerializer(many=True)
    humans = HumansSerializer(many=True)


def _figure(figure: Figure) -> dict[str, Any]:
    return {"value": figure.value, "why": figure.why}


def _comparison(comparison: Comparison) -> dict[str, Any]:
    rows = comparison.rows()
    return {
        "name": comparison.name,
        "n": comparison.n,
        "n_items": comparison.n_items,
        "accuracy": _figure(comparison.accuracy),
        "kappa": _figure(comparison.kappa),
        "labels": [label for label, _, _ in rows],
        "matrix": [list(counts) for _, counts, _ in rows],
    }


class AgreementApi(ProjectScopedMixin, APIView):
    """The Agreement page's figures: the reference (judge or dataset label) against the
    reviewers overall, against the final labels and per rubric, endpoint, template,
    criterion and rubric version; and the reviewers among themselves per queue (α, pairwise
    agreement and κ). ``?queue=<id>`` narrows them to one queue."""

    @extend_schema(
        parameters=[OpenApiParameter("queue", int, required=False)],
        responses=AgreementSerializer,
    )
    def get(self, request: Request, slug: str) -> DRFResponse:
        project = self.get_project()
        raw = request.query_params.get("queue", "")
        queue = None
        if raw:
            if not raw.isdigit():
                raise ApplicationError(f"“{raw}” is not a review queue id.")
            queue = review_selectors.review_queue_get(project=project, queue_id=int(raw))
        queues = list(review_selectors.review_queues_of(project=project))
        report = agreement_report(project=project, queue=queue)
        body = {
            "reference": reference_name(queues if queue is None else [queue]),
            "queue": queue.pk if queue else None,
            "n_reviews": report.n_reviews,
            "n_items": report.n_items,
            "n_reviewers": report.n_reviewers,
            "unjudged": report.unjudged,
            "overall": _comparison(report.overall),
            "final": _comparison(report.final),
            **{
                name: [_comparison(c) for c in getattr(report, name)]
                for name in (
                    "by_rubric",
                    "by_endpoint",
                    "by_template",
                    "by_criterion",
                    "by_rubric_version",
                )
            },  # fmt: skip
            "humans": [
                {
                    "queue": h.queue.pk,
                    "name": h.queue.name,
                    "reviewers": h.summary.n_raters,
                    "alpha": _figure(h.alpha),
                    "agreement": _figure(h.agreement),
                    "pairs": [
                        {
                            "rater_a": p.rater_a,
                            "rater_b": p.rater_b,
                            "n_items": p.n_items,
                            "agreement": _figure(p.agreement),
                            "kappa": _figure(p.kappa),
                        }
                        for p in h.pairs
                    ],
                }
                for h in report.humans
            ],
        }
        return DRFResponse(AgreementSerializer(body).data)

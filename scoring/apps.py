from django.apps import AppConfig


class ScoringConfig(AppConfig):
    default_auto_field = "django.db.models.BigAutoField"
    name = "scoring"
    verbose_name = "Scoring"

    def ready(self) -> None:
        from annotation.reviews.signals import queue_settled
        from scoring import checks  # noqa: F401 - registers the system checks
        from scoring.insights.services import on_queue_settled, on_run_finished
        from scoring.probes.services import on_run_finished as on_probe_run_finished
        from scoring.runs.signals import run_finished
        from scoring.runs.summary import on_run_finished as on_run_finished_summary

        run_finished.connect(on_run_finished, dispatch_uid="scoring.insights.run")
        run_finished.connect(on_probe_run_finished, dispatch_uid="scoring.probes.run")
        run_finished.connect(on_run_finished_summary, dispatch_uid="scoring.runs.summary")
        queue_settled.connect(on_queue_settled, dispatch_uid="scoring.insights.queue")

"""/healthz: database and broker status, for load balancers and compose healthchecks."""

from __future__ import annotations

from django.db import connection
from django.http import HttpRequest, JsonResponse
from django.views.decorators.http import require_safe


@require_safe
def healthz(request: HttpRequest) -> JsonResponse:
    checks: dict[str, dict[str, str]] = {}
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
        checks["database"] = {"status": "ok", "vendor": connection.vendor}
    except Exception as exc:  # noqa: BLE001 - report any failure, never raise
        checks["database"] = {"status": "error", "error": type(exc).__name__}
    try:
        from rubricstudio.celery import app

        with app.connection_for_write() as conn:
            conn.ensure_connection(max_retries=1, timeout=2)
            transport = conn.transport_cls if isinstance(conn.transport_cls, str) else "ok"
        checks["broker"] = {"status": "ok", "transport": str(transport)}
    except Exception as exc:  # noqa: BLE001
        checks["broker"] = {"status": "error", "error": type(exc).__name__}
    healthy = all(c["status"] == "ok" for c in checks.values())
    return JsonResponse(
        {"status": "ok" if healthy else "error", "checks": checks}, status=200 if healthy else 503
    )

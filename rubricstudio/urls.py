from django.contrib import admin
from django.contrib.auth import views as auth_views
from django.urls import include, path, reverse_lazy
from django.views.decorators.http import require_http_methods
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerSplitView

from rubricstudio.health import healthz

urlpatterns = [
    path("healthz", healthz, name="healthz"),
    path("admin/", admin.site.urls),
    path("login/", auth_views.LoginView.as_view(), name="login"),
    path("logout/", auth_views.LogoutView.as_view(), name="logout"),
    # The one-time link an owner hands a colleague whose account they made (no e-mail).
    path(
        "set-password/<uidb64>/<token>/",
        require_http_methods(["GET", "HEAD", "POST"])(
            auth_views.PasswordResetConfirmView.as_view(
                template_name="registration/set_password.html",
                success_url=reverse_lazy("login"),
            )
        ),
        name="set_password",
    ),
    # Read-only: GET and HEAD; any other method is a 405. The docs page loads its
    # initialising script from its own URL (?script), so no inline script is needed.
    path(
        "api/schema/",
        SpectacularAPIView.as_view(http_method_names=["get", "head"]),
        name="api-schema",
    ),
    path(
        "api/docs/",
        SpectacularSwaggerSplitView.as_view(
            url_name="api-schema", http_method_names=["get", "head"]
        ),
        name="api-docs",
    ),
    path("api/", include("annotation.api_urls")),
    path("api/", include("scoring.api_urls")),
    path("", include("scoring.urls")),
    path("", include("annotation.urls")),
]

"""URL map: browser pages, the REST API under /api/, health and schema."""

from django.contrib import admin
from django.contrib.auth import views as auth_views
from django.urls import include, path
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerView

from core.api import TokenObtainApi
from core.metrics import metrics
from core.views import healthz

api_patterns = [
    path("auth/token/", TokenObtainApi.as_view(), name="api-token"),
    path("", include("annotation.api_urls")),
    path("", include("training.api_urls")),
    path("", include("review.api_urls")),
    path("schema/", SpectacularAPIView.as_view(), name="api-schema"),
    path("docs/", SpectacularSwaggerView.as_view(url_name="api-schema"), name="api-docs"),
]

urlpatterns = [
    path("healthz", healthz, name="healthz"),
    path("metrics", metrics, name="metrics"),
    path("api/", include(api_patterns)),
    path("admin/", admin.site.urls),
    path("login/", auth_views.LoginView.as_view(redirect_authenticated_user=True), name="login"),
    path("logout/", auth_views.LogoutView.as_view(), name="logout"),
    path("i18n/", include("django.conf.urls.i18n")),
    path("", include("annotation.urls")),
    path("", include("training.urls")),
    path("", include("review.urls")),
]

handler404 = "core.errors.handler404"
handler500 = "core.errors.handler500"

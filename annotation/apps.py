from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


class AnnotationConfig(AppConfig):
    name = "annotation"
    verbose_name = _("Annotation")
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self):
        from annotation.metrics import collect
        from core.metrics import collectors_add

        collectors_add("annotation", collect)

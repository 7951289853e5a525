from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


class AnnotationConfig(AppConfig):
    name = "annotation"
    verbose_name = _("Annotation")
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self):
        from axes.signals import user_locked_out

        from annotation.login_audit import lockout_record
        from annotation.metrics import collect
        from core.metrics import collectors_add

        collectors_add("annotation", collect)
        user_locked_out.connect(lockout_record, dispatch_uid="annotation.login_audit")

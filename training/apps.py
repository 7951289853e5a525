from django.apps import AppConfig


class TrainingConfig(AppConfig):
    name = "training"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self):
        # What the lower layers ask of training (core.hooks).
        from core.hooks import PROJECT_SETTINGS_CHECK, hook_fill
        from core.metrics import collectors_add

        from .metrics import collect
        from .project_settings import project_settings_check

        hook_fill(PROJECT_SETTINGS_CHECK, project_settings_check)
        collectors_add("training", collect)

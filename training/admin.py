from django.contrib import admin

from .models import HandoverTicket, ModelVersion


@admin.register(ModelVersion)
class ModelVersionAdmin(admin.ModelAdmin):
    list_display = ["name", "project", "status", "base_model", "adapter_path", "created_at", "deployed_at"]
    list_filter = ["status", "project"]
    # Status changes go through the services (deploy / rollback), which audit them.
    readonly_fields = ["status", "deployed_at", "created_at", "created_by"]


@admin.register(HandoverTicket)
class HandoverTicketAdmin(admin.ModelAdmin):
    list_display = ["pk", "project", "item", "confidence", "model_version", "created_at"]
    list_filter = ["project"]
    readonly_fields = [f.name for f in HandoverTicket._meta.fields]

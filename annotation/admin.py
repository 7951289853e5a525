from django.contrib import admin

from annotation.models import AuditEvent, Item, Membership, Project


class MembershipInline(admin.TabularInline):
    model = Membership
    extra = 0
    autocomplete_fields = ["user"]


@admin.register(Project)
class ProjectAdmin(admin.ModelAdmin):
    list_display = ["name", "slug", "review_tiers", "retrain_threshold", "created_at"]
    search_fields = ["name", "slug"]
    prepopulated_fields = {"slug": ["name"]}
    inlines = [MembershipInline]


@admin.register(Item)
class ItemAdmin(admin.ModelAdmin):
    list_display = ["pk", "project", "status", "source", "priority", "created_at"]
    list_filter = ["status", "source", "project"]
    search_fields = ["input", "external_id"]
    # Status changes go through the transition services only; the admin shows it, never edits it.
    readonly_fields = ["status", "version", "content_hash"]


@admin.register(AuditEvent)
class AuditEventAdmin(admin.ModelAdmin):
    list_display = ["created_at", "action", "target_type", "target_id", "actor", "from_state", "to_state"]
    list_filter = ["action"]

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False

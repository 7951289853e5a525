from django.contrib import admin

from review.models import ReviewDecision


@admin.register(ReviewDecision)
class ReviewDecisionAdmin(admin.ModelAdmin):
    list_display = ["created_at", "item", "stage", "decision", "reviewer"]
    list_filter = ["stage", "decision"]

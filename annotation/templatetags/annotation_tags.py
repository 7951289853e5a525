from django import template

from annotation.models import ItemStatus

register = template.Library()


@register.filter
def item_status_label(status: str) -> str:
    """The translated label of an item status value."""
    return dict(ItemStatus.choices).get(status, status)

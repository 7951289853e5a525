"""The item page: its conversation, metadata, drafts and timeline (the workbench is review's)."""

from django.contrib.auth.decorators import login_required
from django.http import Http404
from django.shortcuts import render

from annotation import selectors
from annotation.workflow import chat
from core.errors import NotFound


@login_required
def item_detail(request, item_id: int):
    try:
        item = selectors.item_get_for_user(user=request.user, item_id=item_id)
    except NotFound:
        raise Http404 from None
    request.nav_project_id = item.project_id  # the project's menu, as on its other pages
    current = item.current_revision
    return render(
        request,
        "annotation/item_detail.html",
        {
            "project": item.project,
            "item": item,
            "chat": chat.conversation_view(
                messages=item.messages,
                system=item.system,
                tools=item.tools,
                edits=current.turn_edits if current else {},
                reply_extra=item.reference_extra,
            ),
            "metadata": chat.metadata_view(item.metadata),
            "show_changes": True,
            "timeline": selectors.item_history(
                item=item, show_gold=selectors.is_project_admin(request.user, item.project)
            ),
            "drafts": item.drafts.order_by("rank"),
        },
    )

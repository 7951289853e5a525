"""Websocket consumers: a member of a project watches its live events."""

from channels.db import database_sync_to_async
from channels.generic.websocket import AsyncJsonWebsocketConsumer
from django.template.loader import render_to_string

from core.realtime import project_group

# Events the browser swaps into the page with htmx's ws extension; each has a fragment template.
HTML_EVENTS = {"state_counts": "annotation/_state_counts.html"}


class ProjectConsumer(AsyncJsonWebsocketConsumer):
    async def connect(self):
        self.project_id = int(self.scope["url_route"]["kwargs"]["project_id"])
        user = self.scope.get("user")
        if not user or not user.is_authenticated or not await self._is_member(user):
            await self.close(code=4403)
            return
        self.group = project_group(self.project_id)
        await self.channel_layer.group_add(self.group, self.channel_name)
        await self.accept()

    async def disconnect(self, code):
        if hasattr(self, "group"):
            await self.channel_layer.group_discard(self.group, self.channel_name)

    async def project_event(self, message):
        event, payload = message["event"], message["payload"]
        if event in HTML_EVENTS:
            html = render_to_string(HTML_EVENTS[event], {"project_id": self.project_id, **payload})
            await self.send(text_data=html)
        else:
            await self.send_json({"event": event, "payload": payload})

    @database_sync_to_async
    def _is_member(self, user) -> bool:
        from annotation.selectors import project_visible_to

        return project_visible_to(user=user, project_id=self.project_id)

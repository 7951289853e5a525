"""Events pushed to browsers over Channels: one group per project, sent after the transaction commits."""

from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer


def project_group(project_id: int) -> str:
    return f"project.{project_id}"


def project_event_send(project_id: int, event: str, payload: dict) -> None:
    """Send `event` to every browser watching the project; call it from on_commit or a task."""
    layer = get_channel_layer()
    async_to_sync(layer.group_send)(
        project_group(project_id), {"type": "project.event", "event": event, "payload": payload}
    )

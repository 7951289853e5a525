"""API token authentication that remembers, for a few seconds, which user a token belongs to.

DRF's TokenAuthentication reads the token and its user on every request. On the work queue's hot
path that read was a fifth of a claim's CPU (docs/PERFORMANCE.md), so each process keeps the answer
for HANDOVER_TOKEN_CACHE_SECONDS. The price: a deleted token, or a user made inactive, keeps working
for at most that long in a process that saw it recently. Roles are not cached; every endpoint still
checks them against the database.
"""

import copy
import time

from django.conf import settings
from rest_framework.authentication import TokenAuthentication

_MAX_ENTRIES = 10_000
_known: dict[str, tuple[float, object, object]] = {}  # key -> (valid until, user, token)


class CachedTokenAuthentication(TokenAuthentication):
    def authenticate_credentials(self, key):
        known = _remembered(key)
        if known is not None:
            return _fresh(known[1]), known[2]
        user, token = super().authenticate_credentials(key)  # raises AuthenticationFailed
        if settings.HANDOVER_TOKEN_CACHE_SECONDS > 0:
            if len(_known) >= _MAX_ENTRIES:
                _known.clear()
            _known[key] = (time.monotonic() + settings.HANDOVER_TOKEN_CACHE_SECONDS, user, token)
        return _fresh(user), token


def cached_user_id(key: str) -> int | None:
    """The id of the user a token belongs to, if this process checked the token within the last
    HANDOVER_TOKEN_CACHE_SECONDS; None when it has to ask the database."""
    known = _remembered(key)
    return known[1].pk if known is not None else None


def _remembered(key: str) -> tuple | None:
    known = _known.get(key)
    return known if known is not None and known[0] > time.monotonic() else None


def _fresh(user):
    """A copy per request, since requests may set attributes on their user (Django caches permissions
    there); copy.copy of a model instance pickles it, which cost a quarter of a millisecond."""
    clone = user.__class__.__new__(user.__class__)
    clone.__dict__.update(user.__dict__)
    clone._state = copy.copy(user._state)
    clone._state.fields_cache = {}
    return clone

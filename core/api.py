"""API endpoints of the platform itself: token issue."""

from drf_spectacular.utils import extend_schema, inline_serializer
from rest_framework import exceptions, serializers
from rest_framework.authtoken.models import Token
from rest_framework.authtoken.serializers import AuthTokenSerializer
from rest_framework.permissions import AllowAny
from rest_framework.response import Response
from rest_framework.throttling import AnonRateThrottle
from rest_framework.views import APIView

from .errors import error_body
from .login_security import lockout_message, lockout_of, retry_after_seconds


class LoginThrottle(AnonRateThrottle):
    """A flood guard per address only: failed logins lock per account and address, per account and
    per address in django-axes (core/login_security.py). High enough for a class behind one office
    address to fetch its tokens at once."""

    rate = "300/min"


class TokenObtainApi(APIView):
    """Exchange a username and password for the user's API token. Too many failed attempts lock the
    account (from that address, or from all) or the address: 429 with Retry-After."""

    authentication_classes: list = []
    permission_classes = [AllowAny]
    throttle_classes = [LoginThrottle]

    @extend_schema(
        request=AuthTokenSerializer, responses=inline_serializer("Token", {"token": serializers.CharField()})
    )
    def post(self, request):
        serializer = AuthTokenSerializer(data=request.data, context={"request": request})
        if not serializer.is_valid():
            if getattr(request, "axes_locked_out", False):  # set by axes while it authenticated
                lockout = lockout_of(request)
                retry_after = retry_after_seconds(lockout)
                body = error_body("locked_out", lockout_message(lockout), {"retry_after": retry_after})
                return Response(
                    body, status=429, headers={"Retry-After": str(retry_after)} if retry_after else {}
                )
            raise exceptions.ValidationError(serializer.errors)
        token, _ = Token.objects.get_or_create(user=serializer.validated_data["user"])
        return Response({"token": token.key})

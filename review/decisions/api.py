"""REST endpoint of review decisions."""

from drf_spectacular.utils import extend_schema
from rest_framework.response import Response
from rest_framework.views import APIView

from annotation.workflow.serializers import ItemSerializer
from review.decisions import services
from review.decisions.serializers import ReviewSerializer


class ItemReviewApi(APIView):
    @extend_schema(request=ReviewSerializer, responses=ItemSerializer)
    def post(self, request, item_id: int):
        serializer = ReviewSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        item = services.item_review(item_id=item_id, user=request.user, **serializer.validated_data)
        return Response(ItemSerializer(item).data)

"""REST endpoints for projects and members: authenticate, validate, call one service or selector."""

from drf_spectacular.utils import extend_schema
from rest_framework import status
from rest_framework.generics import GenericAPIView
from rest_framework.response import Response

from annotation import selectors, services
from annotation.permissions import check_project_admin
from annotation.projects.serializers import (
    PROJECT_SETTINGS,
    MembershipAddSerializer,
    MembershipSerializer,
    ProjectSerializer,
)


class ProjectListCreateApi(GenericAPIView):
    serializer_class = ProjectSerializer

    def get_queryset(self):
        return selectors.project_list_for_user(user=self.request.user)

    def get_serializer_context(self):
        return {
            **super().get_serializer_context(),
            "roles_by_project": selectors.roles_by_project(user=self.request.user),
        }

    @extend_schema(operation_id="projects_list")
    def get(self, request):
        page = self.paginate_queryset(self.get_queryset())
        return self.get_paginated_response(self.get_serializer(page, many=True).data)

    def post(self, request):
        serializer = self.get_serializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        data = serializer.validated_data
        project = services.project_create(
            created_by=request.user, **{k: data[k] for k in PROJECT_SETTINGS if k in data}
        )
        return Response(self.get_serializer(project).data, status=status.HTTP_201_CREATED)


class ProjectDetailApi(GenericAPIView):
    serializer_class = ProjectSerializer

    def get_serializer_context(self):
        return {
            **super().get_serializer_context(),
            "roles_by_project": selectors.roles_by_project(user=self.request.user),
        }

    def get(self, request, project_id: int):
        project = selectors.project_get_for_user(user=request.user, project_id=project_id)
        return Response(self.get_serializer(project).data)

    def patch(self, request, project_id: int):
        project = selectors.project_get_for_user(user=request.user, project_id=project_id)
        check_project_admin(user=request.user, project=project)
        serializer = self.get_serializer(project, data=request.data, partial=True)
        serializer.is_valid(raise_exception=True)
        project = services.project_update(project=project, actor=request.user, **serializer.validated_data)
        return Response(self.get_serializer(project).data)


class ProjectMembersApi(GenericAPIView):
    serializer_class = MembershipSerializer

    def get(self, request, project_id: int):
        project = selectors.project_get_for_user(user=request.user, project_id=project_id)
        check_project_admin(user=request.user, project=project)
        members = selectors.project_members(project=project)
        return Response(MembershipSerializer(members, many=True).data)

    @extend_schema(
        request=MembershipAddSerializer, responses={201: MembershipSerializer, 200: MembershipSerializer}
    )
    def post(self, request, project_id: int):
        project = selectors.project_get_for_user(user=request.user, project_id=project_id)
        check_project_admin(user=request.user, project=project)
        serializer = MembershipAddSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        result = services.membership_add(project=project, actor=request.user, **serializer.validated_data)
        return Response(
            MembershipSerializer(result.membership).data,
            status=status.HTTP_201_CREATED if result.created else status.HTTP_200_OK,
        )

"""Admin actions that change something are offered only to staff who may change the model.

Django offers an action to anyone who may view the changelist unless the action names its
permissions: an auditor given view permissions only could rotate the signing key, approve
requests, suspend or revoke credentials, or end everyone's sessions.
"""

from __future__ import annotations

import pytest
from django.contrib import admin
from django.contrib.auth.models import Permission
from django.test import RequestFactory

from tests.factories import UserFactory

pytestmark = pytest.mark.django_db


def _admins_with_actions():
    for model, model_admin in admin.site._registry.items():
        names = [name for name in (model_admin.actions or ()) if name != "delete_selected"]
        if names:
            yield model, model_admin, names


def test_every_changing_action_needs_the_change_permission():
    admins = list(_admins_with_actions())
    assert len(admins) >= 5  # signing keys, requests, pending approvals, API keys, M2M apps, users
    for model, model_admin, names in admins:
        opts = model._meta
        viewer = UserFactory(email=f"viewer-{opts.model_name}@portal.test", is_staff=True)
        viewer.user_permissions.add(
            Permission.objects.get(content_type__app_label=opts.app_label, codename=f"view_{opts.model_name}")
        )
        changer = UserFactory(email=f"changer-{opts.model_name}@portal.test", is_staff=True)
        changer.user_permissions.add(
            *Permission.objects.filter(
                content_type__app_label=opts.app_label,
                codename__in=[f"view_{opts.model_name}", f"change_{opts.model_name}"],
            )
        )
        for user, expected in ((viewer, set()), (changer, set(names))):
            request = RequestFactory().get("/admin/")
            request.user = user
            offered = set(model_admin.get_actions(request)) - {"delete_selected"}
            assert offered == expected, (opts.label, user.email, offered)

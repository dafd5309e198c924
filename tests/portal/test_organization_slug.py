"""Organisation slugs are unique ignoring letter case: `ACME` beside `acme` is two tenants a person,
or a resource server comparing the `org_id` claim without case, could take for one."""

from __future__ import annotations

import pytest
from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction

from portal.models import Organization

pytestmark = pytest.mark.django_db


def test_a_slug_differing_only_in_case_is_refused(organization):
    twin = Organization(slug=organization.slug.upper(), name="Shadow")
    with pytest.raises(ValidationError) as refused:
        twin.full_clean()  # what the admin's form runs
    assert "other letter case" in str(refused.value)
    with pytest.raises(IntegrityError), transaction.atomic():
        Organization.objects.create(slug=organization.slug.upper(), name="Shadow")

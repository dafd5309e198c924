"""Dashboard forms for webhook endpoints."""

from __future__ import annotations

from django import forms
from django.core.exceptions import ValidationError
from django.utils.translation import gettext_lazy as _

from credentials.forms import OverlapHoursField
from credentials.webhooks.destinations import parse_url
from credentials.webhooks.models import EventType
from portal.submissions import OnceForm


class _EventsForm(forms.Form):
    event_types = forms.MultipleChoiceField(
        label=_("Events"),
        choices=EventType.choices,
        widget=forms.CheckboxSelectMultiple,
        help_text=_("Sent as <code>credential.&lt;event&gt;</code>, e.g. <code>credential.rotated</code>."),
    )
    description = forms.CharField(label=_("Description"), required=False, max_length=200)


class WebhookEndpointCreateForm(OnceForm, _EventsForm):
    url = forms.CharField(
        label=_("URL"),
        max_length=500,
        help_text=_("HTTPS, reachable from the internet. Each delivery is a signed POST."),
        widget=forms.URLInput(attrs={"placeholder": "https://example.com/hooks/portal"}),
    )

    field_order = ["url", "description", "event_types"]

    def clean_url(self) -> str:
        url = self.cleaned_data["url"].strip()
        try:
            parse_url(url)
        except ValidationError as exc:
            raise ValidationError(exc.messages) from None
        return url


class WebhookEndpointEditForm(_EventsForm):
    active = forms.BooleanField(
        label=_("Active"), required=False, help_text=_("A disabled endpoint gets no new events.")
    )


class WebhookSecretRotateForm(OnceForm):
    overlap_hours = OverlapHoursField(
        old="secret",
        label=_("Overlap"),
        help_text=_(
            "While it lasts, each delivery is signed with both secrets, so you can switch at any time."
        ),
    )

"""The relative-time tag: words people read, the exact time on hover."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from django.template import Context, Template
from django.utils import timezone

from portal.templatetags.portal_format import relative_time


def _render(value, **kwargs) -> str:
    return str(relative_time(value, **kwargs))


def test_past_time_reads_as_ago_with_the_exact_time_on_hover():
    value = timezone.now() - timedelta(hours=3, minutes=5)
    html = _render(value)
    assert ">3\xa0hours ago</time>" in html
    assert f'datetime="{value.isoformat()}"' in html
    assert f'title="{value.astimezone(UTC):%Y-%m-%d %H:%M:%S} UTC"' in html


@pytest.mark.parametrize(
    ("offset", "text"),
    [
        (timedelta(seconds=-20), "just now"),
        (timedelta(seconds=20), "just now"),
        (timedelta(days=2, hours=1), "in 2\xa0days"),
        (timedelta(days=-40), "1\xa0month ago"),
        # Rounded to the nearest unit, not truncated (issue 17, item 7).
        (timedelta(days=90, minutes=-1), "in 3\xa0months"),
        (timedelta(days=14, minutes=-1), "in 14\xa0days"),
        (timedelta(days=-6, hours=-20), "7\xa0days ago"),
        (timedelta(hours=23, minutes=50), "in 24\xa0hours"),
        (timedelta(days=365 * 2 - 10), "in 2\xa0years"),
        (timedelta(minutes=-61), "61\xa0minutes ago"),
    ],
)
def test_words_for_each_distance(offset, text):
    assert f">{text}</time>" in _render(timezone.now() + offset)


def test_missing_time_shows_the_default_escaped():
    assert _render(None) == "—"
    html = Template("{% load portal_format %}{% relative_time value default=label %}").render(
        Context({"value": None, "label": "<never>"})
    )
    assert html == "&lt;never&gt;"


def test_values_in_another_time_zone_show_utc_on_hover():
    value = datetime(2026, 1, 2, 12, 0, tzinfo=timezone.get_fixed_timezone(120))
    assert 'title="2026-01-02 10:00:00 UTC"' in _render(value)

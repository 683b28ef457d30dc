"""Topic templates: names bind whole levels; a level that is neither literal nor {name} is refused."""

from __future__ import annotations

import pytest

from ingest.profiles.topics import TopicTemplate


def test_names_bind_levels() -> None:
    template = TopicTemplate("lab/{gateway}/+/{device}/state")
    assert template.filter == "lab/+/+/+/state"
    assert template.match("lab/gw-1/x/m1/state") == {"gateway": "gw-1", "device": "m1"}
    assert template.match("lab/gw-1/x/m1/state\n") is None


@pytest.mark.parametrize(
    "template", ["lab/{gateway}\n/x", "lab/{gateway}/{Device}", "lab/#/x", "lab/{a}/{a}"]
)
def test_bad_levels_are_refused(template: str) -> None:
    with pytest.raises(ValueError, match="lab/"):
        TopicTemplate(template)

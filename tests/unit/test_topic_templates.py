"""Topic templates: names bind whole levels; a level that is neither literal nor {name} is refused."""

from __future__ import annotations

import re
import time
from pathlib import Path

import pytest

from ingest.profiles import load_profiles
from ingest.profiles.fill import device_topic_filters, fill_template
from ingest.profiles.topics import TopicTemplate

REPO = Path(__file__).resolve().parents[2]


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


# --- {name:path}: a user-set prefix of several levels (Shelly Gen2 topic_prefix) ---------------------

SHELLY_STATUS = "lab/{gateway}/{device:path}/status/{component}"


@pytest.mark.parametrize(
    ("topic", "device", "component"),
    [
        ("lab/gw/shellyplus1pm-a8032ab12345/status/switch:0", "shellyplus1pm-a8032ab12345", "switch:0"),
        ("lab/gw/shellies/plus1pm/status/switch:0", "shellies/plus1pm", "switch:0"),
        ("lab/gw/home/floor1/pm/status/em1:0", "home/floor1/pm", "em1:0"),
        ("lab/gw/a/status/b/status/em:0", "a/status/b", "em:0"),  # greedy: the last levels are the kind
        ("lab/gw/" + "/".join("l" * 16) + "/status/em:0", "/".join("l" * 16), "em:0"),
    ],
)
def test_a_path_binds_every_level_of_the_prefix(topic: str, device: str, component: str) -> None:
    assert TopicTemplate(SHELLY_STATUS).match(topic) == {
        "gateway": "gw",
        "device": device,
        "component": component,
    }


@pytest.mark.parametrize(
    "topic",
    [
        "lab/gw/status/em:0",  # no prefix
        "lab/gw//status/em:0",  # an empty level
        "lab/gw/a/status/em:0/x",
        "lab/gw/" + "/".join("l" * 17) + "/status/em:0",  # beyond MAX_PATH_LEVELS
    ],
)
def test_a_path_does_not_bind_what_is_no_prefix(topic: str) -> None:
    assert TopicTemplate(SHELLY_STATUS).match(topic) is None


def test_a_long_topic_is_refused_in_microseconds() -> None:
    """Topics over 512 characters are routed afresh per message: 64 KB of levels took ~5 ms per
    template with a backtracking path (and 1.5 ms with a plain {device} on one 64 KB level)."""
    template = TopicTemplate(SHELLY_STATUS)
    topics = ["lab/gw/" + "a/status/" * 7000, "lab/gw/" + "a" * 65_000, "lab/gw/" + "a/" * 32_000 + "x"]
    started = time.process_time()
    for _ in range(20):
        for topic in topics:
            assert template.match(topic) is None
    assert (time.process_time() - started) / 60 < 0.5e-3  # measured ~0.07 ms at worst


def test_a_path_ends_the_subscription_filter() -> None:
    assert TopicTemplate(SHELLY_STATUS).filter == "lab/+/#"
    assert TopicTemplate("lab/{gateway}/{device:path}/events/rpc").path == "device"
    assert TopicTemplate("lab/{gateway}/{device}/events/rpc").path is None


@pytest.mark.parametrize(
    ("template", "complaint"),
    [
        ("lab/{a:path}/{b:path}/x", "one {name:path}"),
        ("lab/{a:path}/#", "ambiguous"),
        ("lab/{a:paths}/x", "must be a literal"),
    ],
)
def test_ambiguous_paths_are_refused(template: str, complaint: str) -> None:
    with pytest.raises(ValueError, match=re.escape(complaint)):
        TopicTemplate(template)


@pytest.mark.parametrize(
    ("values", "expected"),
    [
        ({"gateway": "gw", "device": "home/floor1/pm"}, "lab/gw/home/floor1/pm/status/+"),
        ({"gateway": "gw", "device": "shellypro3em-1"}, "lab/gw/shellypro3em-1/status/+"),
        ({"gateway": "gw"}, "lab/gw/#"),  # an unbound path: MQTT has no filter for "some levels" within
    ],
)
def test_fill_writes_a_path_in(values: dict[str, str], expected: str) -> None:
    assert fill_template(TopicTemplate(SHELLY_STATUS), values) == expected


@pytest.mark.parametrize("device", ["home//pm", "home/+/pm", "a/#", "/a", ""])
def test_fill_refuses_a_path_with_wildcards_or_empty_levels(device: str) -> None:
    with pytest.raises(ValueError, match="topic levels"):
        fill_template(TopicTemplate(SHELLY_STATUS), {"gateway": "gw", "device": device})


def test_the_shelly_gen2_profile_binds_the_whole_prefix() -> None:
    shelly = load_profiles(REPO / "device_profiles").by_id["shelly-gen2"]
    filters = device_topic_filters(shelly, gateway="gw", device="home/floor1/pm")
    assert filters == ["lab/gw/home/floor1/pm/status/+", "lab/gw/home/floor1/pm/events/rpc"]

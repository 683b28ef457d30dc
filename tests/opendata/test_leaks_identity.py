"""Who a ledger value belongs to (ingest/opendata/sources.Identities), pure: the registry's assignment history
decides, the name tags only where it cannot."""

from __future__ import annotations

import datetime as dt

from ingest.opendata.sources import Identities, Span

T0 = dt.datetime(2025, 3, 11, 11, 0, tzinfo=dt.UTC)
QUARTER = dt.timedelta(minutes=15)
NOON = T0 + dt.timedelta(hours=1)


def identities() -> Identities:
    return Identities(
        spans={
            "meter-1": (Span(T0 - dt.timedelta(days=9), None, 7, 1),),
            # one native id behind two gateways (unique only per gateway in the registry)
            "shared": (
                Span(T0 - dt.timedelta(days=9), None, 7, 1),
                Span(T0 - dt.timedelta(days=9), None, 8, 2),
            ),
            # moved from household 7 to household 9 (another building) at noon
            "mover": (Span(T0 - dt.timedelta(days=9), NOON, 7, 1), Span(NOON, None, 9, 2)),
            "roof": (Span(T0 - dt.timedelta(days=9), None, None, 2),),
        },
        households={("Müller (neu)", "Nordhaus"): 7, ("Schmidt", "Südhaus"): 8, ("Weber", "Südhaus"): 9},
        buildings={"Nordhaus": 1, "Südhaus": 2},
        building_names={1: "Nordhaus", 2: "Südhaus"},
    )


def test_the_assignment_names_the_household_whatever_the_tags_say() -> None:
    who = identities().contributor("meter-1", "Müller", "Haus Nord", T0, T0 + QUARTER)  # names before renames
    assert who == ("id:7", "Nordhaus")
    assert identities().contributor("roof", "", "Haus Süd", T0, T0 + QUARTER) == ("", "Südhaus")


def test_a_move_follows_the_assignment_history() -> None:
    before = identities().contributor("mover", "Müller", "Nordhaus", NOON - QUARTER, NOON)
    after = identities().contributor("mover", "Weber", "Südhaus", NOON, NOON + QUARTER)
    assert (before, after) == (("id:7", "Nordhaus"), ("id:9", "Südhaus"))


def test_an_ambiguous_device_is_decided_by_the_tags_then_by_the_names() -> None:
    found = identities()
    assert found.contributor("shared", "Schmidt", "Südhaus", T0, T0 + QUARTER) == ("id:8", "Südhaus")
    # the tags match neither place (both renamed since): not guessed, the tag itself is the key
    assert found.contributor("shared", "Alt", "Altbau", T0, T0 + QUARTER) == ("tag:Alt@Altbau", "Altbau")


def test_an_unknown_device_falls_back_to_the_current_names() -> None:
    found = identities()
    assert found.contributor("ev-unregistered", "Weber", "Südhaus", T0, T0 + QUARTER) == ("id:9", "Südhaus")
    assert found.contributor("ev-unregistered", "Gone", "Südhaus", T0, T0 + QUARTER) == (
        "tag:Gone@Südhaus",
        "Südhaus",
    )

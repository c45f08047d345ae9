"""The timeline of the top (kamikaze web): one band per top, in order, an
expired top ending at its expire time, and bounded memory."""

from __future__ import annotations

from kamikaze.package import Package
from kamikaze.web.timeline import LABEL_LIMIT, Timeline

T0 = 1_800_000_000.0


def package(payload: str, priority: float = 1, expire_time: float | None = None) -> Package:
    return Package.create(payload, priority, expire_time)


def labels(timeline: Timeline) -> list[tuple[str, float, float | None]]:
    return [(band.payload, band.start, band.end) for band in timeline.bands]


def test_one_band_per_top_in_order_the_current_one_open() -> None:
    timeline = Timeline()
    a, b = package("a", 5), package("b", 1)
    timeline.observe(a, T0)
    timeline.observe(a, T0 + 1)  # a push below the top: the same top
    timeline.observe(b, T0 + 2)
    timeline.observe(a, T0 + 3)  # b removed: a is on top again, a new band
    assert labels(timeline) == [("a", T0, T0 + 2), ("b", T0 + 2, T0 + 3), ("a", T0 + 3, None)]
    assert timeline.since == T0


def test_an_expired_top_ends_at_its_expire_time_not_when_it_was_read() -> None:
    timeline = Timeline()
    timeline.observe(package("short", 1, expire_time=T0 + 5), T0)
    timeline.observe(package("next", 2), T0 + 5.3)
    assert labels(timeline) == [("short", T0, T0 + 5), ("next", T0 + 5, None)]


def test_an_empty_queue_has_no_band() -> None:
    timeline = Timeline()
    timeline.observe(None, T0)
    timeline.observe(package("a"), T0 + 1)
    timeline.observe(None, T0 + 2)
    timeline.observe(None, T0 + 3)
    assert labels(timeline) == [("a", T0 + 1, T0 + 2)]


def test_the_same_payload_pushed_again_is_another_band() -> None:
    timeline = Timeline()
    timeline.observe(package("a", 1, expire_time=T0 + 60), T0)
    timeline.observe(package("a", 1, expire_time=T0 + 61), T0 + 1)
    assert [band.start for band in timeline.bands] == [T0, T0 + 1]


def test_what_ended_before_the_window_is_forgotten() -> None:
    timeline = Timeline(window=100)
    timeline.observe(package("old"), T0)
    timeline.observe(package("new"), T0 + 10)
    timeline.observe(package("newer"), T0 + 111)  # "old" ended at T0 + 10 < T0 + 11
    assert [band.payload for band in timeline.bands] == ["new", "newer"]


def test_bands_labels_and_gaps_are_bounded() -> None:
    timeline = Timeline(max_bands=10, max_gaps=3)
    for i in range(100):
        timeline.observe(package(f"p{i}", i), T0 + i)
        timeline.lost(T0 + i + 0.5)
        timeline.back(T0 + i + 0.6)
    assert [band.payload for band in timeline.bands] == [f"p{i}" for i in range(90, 100)]
    assert len(timeline.gaps) == 3
    timeline.observe(package("x" * 10_000, -1), T0 + 200)
    assert len(timeline.bands[-1].payload) == LABEL_LIMIT
    assert timeline.bands[-1].payload.endswith("\u2026")


def test_an_outage_is_a_gap_from_loss_to_return() -> None:
    timeline = Timeline()
    timeline.observe(package("a"), T0)
    timeline.lost(T0 + 1)
    timeline.lost(T0 + 2)  # still the same outage
    timeline.back(T0 + 5)
    assert [(gap.start, gap.end) for gap in timeline.gaps] == [(T0 + 1, T0 + 5)]
    assert timeline.as_json()["gaps"] == [{"start": T0 + 1, "end": T0 + 5}]


def test_a_change_of_top_sends_only_the_bands_it_changed() -> None:
    timeline = Timeline()
    for i in range(5):
        timeline.observe(package(f"p{i}", -i), T0 + i)
    assert timeline.take_changes() == 1
    timeline.observe(package("p5", -5), T0 + 5)  # closes p4's band, opens p5's
    changed = timeline.take_changes()
    delta = timeline.as_json(changed)
    assert [(band["payload"], band["end"]) for band in delta["bands"]] == [
        ("p4", T0 + 5),
        ("p5", None),
    ]
    assert delta["whole"] is False and delta["first"] == 1
    assert timeline.take_changes() is None
    assert timeline.as_json(None)["bands"] == []  # nothing changed: no band
    whole = timeline.as_json()
    assert whole["whole"] is True and len(whole["bands"]) == 6


def test_first_says_which_bands_the_page_may_drop() -> None:
    timeline = Timeline(max_bands=3)
    for i in range(5):
        timeline.observe(package(f"p{i}", -i), T0 + i)
    assert timeline.as_json(timeline.take_changes())["first"] == 3

"""The pure helpers of :mod:`harness.analytics.indicators` (periods, targets, figures, French rendering, bit masks),
each branch pinned: what the journal-driven tests in ``test_indicators.py`` do not reach. No journal here."""

from __future__ import annotations

import sqlite3
from datetime import date

import pytest

from harness.analytics import indicators as I
from harness.analytics.indicators import (
    BY_KEY,
    DEFAULT_TARGETS,
    Figure,
    IndicatorReport,
    Kind,
    Period,
    Source,
    TargetStatus,
    add_months,
    campaign_periods,
    first_period,
    format_value,
    last_day,
    months_between,
    parse_month,
    parse_target_options,
    period_ending,
    resolve_targets,
)

RATE = next(k for k, d in BY_KEY.items() if d.kind is Kind.RATE)
COUNT = next(k for k, d in BY_KEY.items() if d.kind is Kind.COUNT)
P = Period(end="2025-03", start="2025-01")


def figure(
    numerator: int, denominator: int | None, target: float | None, indicator: str = RATE, **kw: object
) -> Figure:
    return Figure(indicator, P, kw.pop("essms", None), numerator, denominator, target, kw.pop("observed", True), **kw)  # type: ignore[arg-type]


# ------------------------------------------------------------------------------------------------ months, periods


@pytest.mark.parametrize(
    "text", ["2025-13", "2025-00", "2025-1", "25-01", "2025-01-01", " 2025-01", "", None, "abcd-ef"]
)
def test_parse_month_refuses(text: str | None) -> None:
    with pytest.raises(ValueError, match="AAAA-MM"):
        parse_month(text)  # type: ignore[arg-type]


@pytest.mark.parametrize("text", ["2025-01", "2025-09", "2025-10", "2025-12", "1999-11"])
def test_parse_month_accepts(text: str) -> None:
    assert parse_month(text) == text


def test_month_arithmetic() -> None:
    assert add_months("2025-01", 0) == "2025-01"
    assert add_months("2025-01", 1) == "2025-02"
    assert add_months("2025-12", 1) == "2026-01"
    assert add_months("2025-11", 14) == "2027-01"
    assert add_months("2025-01", -1) == "2024-12"
    assert add_months("0999-12", 1) == "1000-01"  # four digits kept
    assert months_between("2025-11", "2026-02") == ["2025-11", "2025-12", "2026-01", "2026-02"]
    assert months_between("2025-03", "2025-03") == ["2025-03"]
    assert months_between("2025-04", "2025-03") == []
    assert last_day("2025-02") == date(2025, 2, 28) and last_day("2024-02") == date(2024, 2, 29)
    assert last_day("2025-12") == date(2025, 12, 31) and last_day("2025-04") == date(2025, 4, 30)
    assert [last_day(m) for m in ("2025-09", "2025-10", "2025-11")] == [
        date(2025, 9, 30),
        date(2025, 10, 31),
        date(2025, 11, 30),
    ]


def test_period_properties() -> None:
    assert P.months == ("2025-01", "2025-02", "2025-03")
    assert (P.first_day, P.last_day) == (date(2025, 1, 1), date(2025, 3, 31))
    assert (P.label, P.initial) == ("2025-01..2025-03", True)
    single = Period(end="2025-04", start="2025-04")
    assert (single.label, single.initial, single.months) == ("2025-04", False, ("2025-04",))
    autumn = Period(end="2026-01", start="2025-11")
    assert (autumn.first_day, autumn.last_day, autumn.months) == (
        date(2025, 11, 1),
        date(2026, 1, 31),
        ("2025-11", "2025-12", "2026-01"),
    )
    assert sorted([single, P]) == [P, single]  # ordered by end first


def test_first_period_and_campaign_periods() -> None:
    assert first_period("2025-01") == P
    with pytest.raises(ValueError):
        first_period("2025-13")
    assert campaign_periods("2025-01", "2025-02") == []
    assert campaign_periods("2025-01", "2025-03") == [P]
    assert campaign_periods("2025-01", "2025-04") == [P, Period(end="2025-04", start="2025-04")]
    with pytest.raises(ValueError):
        campaign_periods("2025-01", "2025-13")


def test_campaign_longer_than_ten_periods() -> None:
    """Two years of measures: 22 periods, each month after the first three once, in order."""
    periods = campaign_periods("2025-01", "2026-12")
    assert len(periods) == 22 and periods[0] == P
    assert [p.end for p in periods[1:]] == months_between("2025-04", "2026-12")
    assert all(p.start == p.end for p in periods[1:]) and periods == sorted(periods)


def test_period_ending() -> None:
    assert period_ending("2025-01", "2025-03") == P
    assert period_ending("2025-01", "2025-04") == Period(end="2025-04", start="2025-04")
    assert period_ending("2025-01", "2027-01") == Period(end="2027-01", start="2027-01")
    with pytest.raises(ValueError, match="3 mois"):
        period_ending("2025-01", "2025-02")
    with pytest.raises(ValueError, match="AAAA-MM"):
        period_ending("2025-01", "2025-13")  # not a month: refused, not taken for a later one
    with pytest.raises(ValueError, match="AAAA-MM"):
        period_ending("2025-13", "2026-01")


# ------------------------------------------------------------------------------------------------ targets


def test_resolve_targets() -> None:
    assert resolve_targets() == dict(DEFAULT_TARGETS) and resolve_targets(None) == dict(DEFAULT_TARGETS)
    got = resolve_targets({RATE: "75,5 %", COUNT: 12})
    assert got[RATE] == 75.5 and got[COUNT] == 12.0
    for blank in (None, "", " none ", "Aucune", "aucun", "NONE"):
        assert resolve_targets({RATE: blank})[RATE] is None
    assert resolve_targets({RATE: 0})[RATE] == 0.0 and resolve_targets({RATE: "100"})[RATE] == 100.0
    assert resolve_targets({COUNT: 500})[COUNT] == 500.0  # a count has no 0-100 bound
    with pytest.raises(ValueError, match="hors bornes"):
        resolve_targets({RATE: "100.5"})
    with pytest.raises(ValueError, match="hors bornes"):
        resolve_targets({RATE: -1})
    with pytest.raises(ValueError, match="cible invalide"):
        resolve_targets({RATE: "beaucoup"})
    with pytest.raises(ValueError, match="indicateur inconnu"):
        resolve_targets({"nope": 1})


def test_parse_target_options() -> None:
    assert parse_target_options([" mssante = 75 ", "dmp=", "a=b=c"]) == {"mssante": "75", "dmp": "", "a": "b=c"}
    assert parse_target_options([]) == {}
    with pytest.raises(ValueError, match="NOM=VALEUR"):
        parse_target_options(["mssante"])


# ------------------------------------------------------------------------------------------------ figures


def test_value_and_status_at_the_target_exactly() -> None:
    assert figure(7, 10, 70.0).status is TargetStatus.MET  # exactly the target: met
    assert figure(2, 3, 200 / 3).status is TargetStatus.MET  # 66.666...: float rounding does not fail it
    assert figure(69, 100, 70.0).status is TargetStatus.NOT_MET
    assert figure(1, 1000, 0.1).status is TargetStatus.MET
    assert figure(0, 1000, 0.001).status is TargetStatus.NOT_MET  # the tolerance is far below any real gap
    assert figure(3, 4, None).status is TargetStatus.NO_TARGET
    assert figure(0, 0, 70.0).status is TargetStatus.NOT_COMPUTABLE and figure(0, 0, 70.0).value is None
    assert figure(0, 5, 1e-9).status is TargetStatus.MET  # within the 1e-9 tolerance: reached, not missed
    assert figure(0, None, 70.0).value is None
    assert figure(3, 4, 70.0).value == 75.0 and figure(0, 4, 0.0).status is TargetStatus.MET
    count = figure(12, None, 10.0, indicator=COUNT)
    assert count.value == 12.0 and count.status is TargetStatus.MET
    assert figure(9, None, 10.0, indicator=COUNT).status is TargetStatus.NOT_MET
    assert figure(0, None, None, indicator=COUNT).status is TargetStatus.NO_TARGET


@pytest.mark.parametrize(
    ("numerator", "denominator", "text"),
    [
        (2, 3, "66,7 %"),
        (3, 4, "75 %"),
        (1, 3, "33,3 %"),
        (1, 8, "12,5 %"),
        (0, 5, "0 %"),
        (1, 1, "100 %"),
        (3, 2, "150 %"),
        (1, 1000, "0,1 %"),
        (999, 1000, "99,9 %"),
        (1, 100_000, "0 %"),
        (0, 0, "—"),
    ],
)
def test_format_value_in_french(numerator: int, denominator: int, text: str) -> None:
    assert format_value(figure(numerator, denominator, None)) == text


def test_format_value_of_counts() -> None:
    assert format_value(figure(12, None, None, indicator=COUNT)) == "12"
    assert format_value(figure(0, None, None, indicator=COUNT)) == "0"
    assert format_value(figure(10, None, None, indicator=COUNT)) == "10"


def test_figure_to_dict_keys_and_values() -> None:
    d = BY_KEY[RATE]
    got = figure(2, 3, 70.0, essms="990000016", outside=1).to_dict()
    assert list(got) == [
        "indicator", "label", "kind", "period", "essms", "scope", "numerator", "denominator", "numerator_definition",
        "denominator_definition", "value", "unit", "target", "status", "status_label", "observed",
        "outside_file_active", "project_total", "source", "quote", "section",
    ]  # fmt: skip
    assert got["period"] == {
        "start": "2025-01", "end": "2025-03", "label": "2025-01..2025-03", "first_day": "2025-01-01",
        "last_day": "2025-03-31",
    }  # fmt: skip
    assert (got["indicator"], got["label"], got["kind"], got["unit"]) == (RATE, d.label, "rate", "%")
    assert (got["essms"], got["scope"], got["numerator"], got["denominator"]) == ("990000016", "essms", 2, 3)
    assert (got["numerator_definition"], got["denominator_definition"]) == (d.numerator, d.denominator)
    assert (got["value"], got["target"], got["status"]) == (66.6667, 70.0, "not_met")
    assert (got["observed"], got["outside_file_active"], got["source"]) == (True, 1, d.source.describe())
    assert (got["status_label"], got["project_total"]) == (I.STATUS_LABELS[TargetStatus.NOT_MET], None)
    assert (got["quote"], got["section"]) == (d.quote, d.section)
    assert figure(5, None, None, indicator=COUNT, project_total=12).to_dict()["project_total"] == 12
    grappe = figure(0, 0, None, indicator=COUNT, observed=False).to_dict()
    assert (grappe["scope"], grappe["essms"], grappe["unit"], grappe["kind"]) == ("grappe", None, "count", "count")
    assert (grappe["value"], grappe["observed"], grappe["status"]) == (0.0, False, "no_target")
    assert figure(1, 0, 50.0).to_dict()["value"] is None
    assert Figure(RATE, P, None, 1, 2, None, True).outside == 0  # nobody outside the file active unless counted


def test_source_describe() -> None:
    assert Source("mssante", ("smtp.submit",)).describe() == "mssante / smtp.submit (accepted)"
    two = Source("mssante", ("smtp.submit", "smtp.relay"))
    assert two.describe() == "mssante / smtp.submit + smtp.relay (accepted)" and two.operation == "smtp.submit"
    prefix = Source("eparcours", operation_prefix="cdl.")
    assert prefix.describe() == "eparcours / cdl.* (accepted)" and prefix.operation is None


def test_report_lookup_series_and_dict() -> None:
    april = Period(end="2025-04", start="2025-04")
    figures = (
        figure(1, 2, None, essms="A"),
        Figure(RATE, april, "A", 2, 2, None, True),
        Figure(RATE, april, None, 3, 4, None, True),
        Figure(COUNT, april, None, 5, None, None, False),
    )
    report = IndicatorReport("2025-01", (P, april), ("A",), figures, {RATE: True, COUNT: False}, {RATE: None})
    assert report.get(RATE, april, "A") is figures[1] and report.get(RATE, "2025-04") is figures[2]
    with pytest.raises(LookupError) as info:
        report.get(RATE, "2025-05")
    assert str(info.value) == f"aucune valeur pour {RATE} / 2025-05 / grappe"
    with pytest.raises(LookupError):
        report.get(COUNT, P)
    assert report.series(RATE, "A") == [figures[0], figures[1]] and report.series(RATE) == [figures[2]]
    assert report.unobserved == [COUNT]
    d = report.to_dict()
    assert list(d) == ["campaign_start", "periods", "essms", "targets", "observed", "readings", "figures"]
    assert [r["name"] for r in d["readings"]] == [r.name for r in I.READINGS]
    for reading, shown in zip(I.READINGS, d["readings"], strict=True):
        assert shown == {
            "name": reading.name,
            "choice": reading.default,
            "default": reading.default,
            "meaning": reading.choices[reading.default],
            "quote": reading.quote,
            "section": reading.section,
        }
    assert (d["campaign_start"], d["periods"], d["essms"]) == ("2025-01", ["2025-01..2025-03", "2025-04"], ["A"])
    assert d["figures"] == [f.to_dict() for f in figures] and d["observed"] == {RATE: True, COUNT: False}


# ------------------------------------------------------------------------------------------------ bit masks


@pytest.mark.parametrize("mask", [0, 1, 5, 1023, 1024, 1025, (1 << 10) | 1, (1 << 22) - 1, 1 << 30, (1 << 37) | 0b101])
def test_spread_puts_bit_k_in_lane_k(mask: int) -> None:
    """More than 10 periods (masks of 11 bits and more) go through the chunked path."""
    lane = I._LANE
    expected = sum(1 << (lane * k) for k in range(mask.bit_length()) if mask >> k & 1)
    assert I._spread(mask) == expected


def test_spread_sums_count_each_period() -> None:
    masks = [0b1, 0b11, (1 << 12) | 1, 1 << 12]
    total = sum(I._spread(m) for m in masks)
    lanes = [(total >> (I._LANE * k)) & ((1 << I._LANE) - 1) for k in range(13)]
    assert lanes == [3, 1] + [0] * 10 + [2]


@pytest.mark.parametrize(
    ("low", "high", "bits"), [(0, 0, 0b1), (1, 3, 0b1110), (2, 1, 0), (0, 11, (1 << 12) - 1), (5, 5, 32)]
)
def test_range_mask_sql(low: int, high: int, bits: int) -> None:
    with sqlite3.connect(":memory:") as con:
        assert con.execute(f"SELECT {I._range_mask(str(low), str(high))}").fetchone()[0] == bits


def test_by_person_ors_the_masks_of_one_person() -> None:
    rows = [("A", "p1", 0, 0b001), ("A", "p2", 0, 0b010), ("B", "p1", 0, 0b100)]
    assert I._by_person(rows) == {("A", "p1"): 1, ("A", "p2"): 2, ("B", "p1"): 4}
    twice = [*rows, ("A", "p1", 1, 0b100)]
    assert I._by_person(twice) == {("A", "p1"): 0b101, ("A", "p2"): 2, ("B", "p1"): 4}
    assert I._by_person([]) == {}

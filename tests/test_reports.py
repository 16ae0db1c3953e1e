"""The report writers, fed a synthetic event stream."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from lxml import etree
from lxml import html as lhtml
from markupsafe import escape

from harness.core.events import (
    Event,
    Evidence,
    RunFinished,
    RunStarted,
    ScenarioFinished,
    ScenarioStarted,
    Status,
    StepFinished,
    event_from_json,
)
from harness.reports import WRITERS, CucumberWriter, HtmlWriter, JsonWriter, JUnitWriter, writers_for
from harness.reports.html import EVIDENCE_LIMIT

F1 = "Messagerie sécurisée MSSanté"
F2 = "Identité nationale de santé (INS)"
SCRIPT = '<script>alert("été")</script>'
BIG = "x" * (EVIDENCE_LIMIT + 500) + "FIN-NON-AFFICHÉE"

# (feature, scenario id, name, status, message, steps)
SCENARIOS = [
    (
        F1,
        "s1",
        "Envoi d'un message à un professionnel",
        Status.PASSED,
        "",
        [
            ("Étant donné", "un DUI connecté à l'opérateur", Status.PASSED, "", []),
            (
                "Quand",
                "le DUI envoie un message",
                Status.PASSED,
                "",
                [Evidence("SMTP submission", "Subject: Compte-rendu élève", exchange_id="ex-1")],
            ),
        ],
    ),
    (
        F1,
        "s2",
        "Accusé de réception — élément manquant",
        Status.FAILED,
        "Disposition-Notification-To absent",
        [
            ("Quand", "le DUI envoie un message", Status.PASSED, "", []),
            (
                "Alors",
                "le message demande un accusé",
                Status.FAILED,
                "Disposition-Notification-To absent",
                [
                    Evidence("Corps reçu", f"corps: {SCRIPT} \x1b[31m fin", exchange_id="ex-2", media_type="text/html"),
                    Evidence("Gros journal", BIG),
                ],
            ),
        ],
    ),
    (
        F2,
        "s3",
        "Appel INSi : qualification de l'identité",
        Status.ERROR,
        "TimeoutError: pilote SUT",
        [
            ("Étant donné", "un patient « Zoé Lefèvre »", Status.ERROR, "TimeoutError: pilote SUT", []),
        ],
    ),
    (F2, "s4", "Téléservice indisponible", Status.SKIPPED, "non applicable", []),
]


def events() -> list[Event]:
    out: list[Event] = [
        RunStarted(
            run_id="run-42",
            started_at="2025-01-02T10:00:00+01:00",
            sut="DUI Démo",
            journal_url="sqlite:///j.sqlite",
            harness_version="0.1.0",
            scenarios_dir="scenarios",
            endpoints={"mssante": {"smtp": "127.0.0.1:2525"}},
        )
    ]
    for feature, sid, name, status, message, steps in SCENARIOS:
        out.append(ScenarioStarted(sid, feature, name, tags=["mssante"], feature_file="f.feature"))
        out += [StepFinished(sid, kw, text, st, 0.25, msg, ev) for kw, text, st, msg, ev in steps]
        out.append(ScenarioFinished(sid, feature, name, status, 1.5, message, tags=["mssante"]))
    out.append(RunFinished("run-42", "2025-01-02T10:00:06+01:00", 6.0, counts={"passed": 1}))
    # Go through the wire format, as the CLI does.
    return [event_from_json(e.to_json()) for e in out]


def run(writer_cls: type, tmp_path: Path) -> Path:
    writer = writer_cls(tmp_path / "out")
    for event in events():
        writer.handle(event)
    writer.close()
    return writer.path


def test_registry(tmp_path: Path) -> None:
    assert set(WRITERS) == {"junit", "json", "html", "cucumber"}
    handlers = writers_for(tmp_path)
    assert [type(h) for h in handlers] == [JUnitWriter, JsonWriter, HtmlWriter, CucumberWriter]
    assert writers_for(tmp_path, ["json"])[0] is not handlers[1]  # fresh instances
    with pytest.raises(ValueError, match="pdf"):
        writers_for(tmp_path, ["pdf"])
    for handler in handlers:
        for event in events():
            handler.handle(event)
        handler.close()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["cucumber.json", "junit.xml", "report.html", "results.json"]


def test_junit(tmp_path: Path) -> None:
    path = run(JUnitWriter, tmp_path)
    assert path.name == "junit.xml"
    root = etree.parse(str(path)).getroot()
    assert root.tag == "testsuites"
    assert {k: root.get(k) for k in ("tests", "failures", "errors", "skipped")} == {
        "tests": "4",
        "failures": "1",
        "errors": "1",
        "skipped": "1",
    }
    suites = root.findall("testsuite")
    assert [s.get("name") for s in suites] == [F1, F2]
    assert [(s.get("tests"), s.get("failures"), s.get("errors"), s.get("skipped")) for s in suites] == [
        ("2", "1", "0", "0"),
        ("2", "0", "1", "1"),
    ]
    cases = {c.get("name"): c for c in root.iter("testcase")}
    assert all(c.get("classname") in (F1, F2) and c.get("time") == "1.500" for c in cases.values())
    passed, failed = cases[SCENARIOS[0][2]], cases[SCENARIOS[1][2]]
    error, skipped = cases[SCENARIOS[2][2]], cases[SCENARIOS[3][2]]
    assert passed.find("failure") is None and passed.find("error") is None and passed.find("skipped") is None
    assert failed.find("failure").get("message") == "Disposition-Notification-To absent"
    assert failed.find("error") is None
    assert error.find("error").get("message") == "TimeoutError: pilote SUT"
    assert skipped.find("skipped") is not None
    out = failed.findtext("system-out")
    assert "[failed] Alors le message demande un accusé" in out
    assert SCRIPT in out and "ex-2" in out  # evidence text round-trips as XML text
    assert "\x1b" not in out  # control characters replaced, so the file stays valid XML
    assert "Compte-rendu élève" in passed.findtext("system-out")


def test_json(tmp_path: Path) -> None:
    path = run(JsonWriter, tmp_path)
    raw = path.read_text(encoding="utf-8")
    assert "MSSanté" in raw and "\n  " in raw  # ensure_ascii=False, pretty-printed
    data = json.loads(raw)
    r = data["run"]
    assert (r["run_id"], r["sut"], r["harness_version"], r["duration"]) == ("run-42", "DUI Démo", "0.1.0", 6.0)
    assert r["finished_at"] == "2025-01-02T10:00:06+01:00" and r["endpoints"]["mssante"]["smtp"] == "127.0.0.1:2525"
    assert r["counts"] == {"total": 4, "passed": 1, "failed": 1, "error": 1, "skipped": 1}
    assert [(s["id"], s["feature"], s["status"]) for s in data["scenarios"]] == [
        ("s1", F1, "passed"),
        ("s2", F1, "failed"),
        ("s3", F2, "error"),
        ("s4", F2, "skipped"),
    ]
    s2 = data["scenarios"][1]
    assert s2["tags"] == ["mssante"] and s2["message"] == "Disposition-Notification-To absent"
    step = s2["steps"][1]
    assert (step["keyword"], step["status"], step["duration"]) == ("Alors", "failed", 0.25)
    assert step["evidence"][0] == {
        "label": "Corps reçu",
        "text": f"corps: {SCRIPT} \x1b[31m fin",
        "exchange_id": "ex-2",
        "media_type": "text/html",
    }
    assert data["scenarios"][3]["steps"] == []


def test_html(tmp_path: Path) -> None:
    path = run(HtmlWriter, tmp_path)
    text = path.read_text(encoding="utf-8")
    assert "<script" not in text.lower() and "&lt;script&gt;" in text  # evidence escaped, no JS at all
    assert "<link" not in text and "src=" not in text  # self-contained
    for _, _, name, *_ in SCENARIOS:
        assert str(escape(name)) in text
    assert "Résultats" in text and "DUI Démo" in text and "run-42" in text
    doc = lhtml.fromstring(text)
    details = {d.find("summary").text_content(): d for d in doc.iter("details") if "scenario" in d.get("class", "")}
    assert len(details) == 4
    opened = {name for _, _, name, *_ in SCENARIOS for n, d in details.items() if name in n and "open" in d.attrib}
    assert opened == {SCENARIOS[1][2], SCENARIOS[2][2]}  # failed and error open; passed and skipped closed
    failed = next(d for n, d in details.items() if SCENARIOS[1][2] in n)
    pres = [p.text_content() for p in failed.iter("pre")]
    assert f"corps: {SCRIPT}" in pres[0]
    assert len(pres[1]) == EVIDENCE_LIMIT and "FIN-NON-AFFICHÉE" not in text
    assert "Tronqué" in failed.text_content() and "ex-2" in failed.text_content()
    totals = doc.find_class("totals")[0].text_content()
    for label in ("1 réussis", "1 échoués", "1 erreurs", "1 ignorés"):
        assert label in " ".join(totals.split())


def test_unfinished_scenario_is_an_error(tmp_path: Path) -> None:
    writer = JsonWriter(tmp_path)
    writer.handle(ScenarioStarted("s9", F1, "Interrompu"))
    writer.handle(StepFinished("s9", "Quand", "ça plante", Status.PASSED, 0.1))
    writer.close()  # no ScenarioFinished nor RunFinished
    (scenario,) = json.loads(writer.path.read_text(encoding="utf-8"))["scenarios"]
    assert scenario["status"] == "error" and "did not finish" in scenario["message"]
    assert len(scenario["steps"]) == 1


def test_coverage_by_tag_timestamps_and_configuration(tmp_path: Path) -> None:
    from harness.core.events import RunStarted, ScenarioFinished, ScenarioStarted, Status
    from harness.reports import writers_for

    writers = writers_for(tmp_path)
    events = [
        RunStarted(
            "r1",
            "2026-11-23T10:00:00+00:00",
            "reference",
            "sqlite:///j",
            "0.1.0",
            "/s",
            {},
            {"sut": "reference", "step_timeout": 10.0},
        ),
        ScenarioStarted("a", "F", "A", ["mssante", "exigence:MSS-1"], "f.feature", "2026-11-23T10:00:01+00:00"),
        ScenarioFinished(
            "a", "F", "A", Status.PASSED, 0.1, "", ["mssante", "exigence:MSS-1"], "2026-11-23T10:00:02+00:00"
        ),
        ScenarioStarted("b", "F", "B", ["mssante"], "f.feature", "2026-11-23T10:00:03+00:00"),
        ScenarioFinished("b", "F", "B", Status.FAILED, 0.1, "non", ["mssante"], "2026-11-23T10:00:04+00:00"),
    ]
    for writer in writers:
        for event in events:
            writer.handle(event)
        writer.close()
    results = json.loads((tmp_path / "results.json").read_text(encoding="utf-8"))
    assert results["run"]["coverage"]["mssante"] == {"total": 2, "passed": 1, "failed": 1, "error": 0, "skipped": 0}
    assert results["run"]["coverage"]["exigence:MSS-1"]["passed"] == 1
    assert results["run"]["config"]["step_timeout"] == 10.0
    assert results["scenarios"][0]["started_at"] == "2026-11-23T10:00:01+00:00"
    page = (tmp_path / "report.html").read_text(encoding="utf-8")
    assert "Couverture par étiquette" in page and "@exigence:MSS-1" in page and "step_timeout" in page
    assert "23/11/2026 11:00:03 → 23/11/2026 11:00:04" in page  # Europe/Paris, UTC+1 in November


def test_html_summary_per_service_warnings_and_paris_time(tmp_path: Path) -> None:
    from harness.core.events import RunFinished, RunStarted, ScenarioFinished, ScenarioStarted

    writer = HtmlWriter(tmp_path)
    stream = [
        RunStarted(
            "r9",
            "2026-12-01T10:00:00+00:00",
            "reference",
            "sqlite://",
            "0.1",
            "scenarios",
            endpoints={"mssante": {"smtp": "127.0.0.1:2587"}},
        ),
        ScenarioStarted("a", "Envoi", "A", ["mssante"], "a.feature"),
        ScenarioFinished("a", "Envoi", "A", Status.PASSED, 0.1, "", ["mssante"]),
        ScenarioStarted("b", "Envoi", "B", ["mssante"], "a.feature"),
        ScenarioFinished(
            "b", "Envoi", "B", Status.PASSED, 0.1, "avertissement / warning : INS non qualifié", ["mssante"]
        ),
        ScenarioStarted("c", "DMP", "C", ["dmp"], "b.feature"),
        ScenarioFinished("c", "DMP", "C", Status.FAILED, 0.1, "refusé", ["dmp"]),
        ScenarioStarted("d", "Divers", "D", [], "c.feature"),
        ScenarioFinished("d", "Divers", "D", Status.SKIPPED, 0.0, "non observé", []),
        RunFinished("r9", "2026-12-01T10:00:02+00:00", 2.0, {}),
    ]
    for event in stream:
        writer.handle(event)
    assert writer.services() == {
        "mssante": {"total": 2, "passed": 2, "failed": 0, "error": 0, "skipped": 0, "warnings": 1},
        "dmp": {"total": 1, "passed": 0, "failed": 1, "error": 0, "skipped": 0, "warnings": 0},
        "autre": {"total": 1, "passed": 0, "failed": 0, "error": 0, "skipped": 1, "warnings": 0},
    }
    writer.close()
    page = (tmp_path / "report.html").read_text(encoding="utf-8")
    assert "1 réussis avec avertissement" in page
    assert "01/12/2026 11:00:00" in page and "2026-12-01T10:00:00" not in page  # Paris time, not UTC
    assert "<details><summary>1 service(s)</summary>" in page  # endpoints folded
    assert page.count('class="badge warned">avertissement') == 1

"""Per-request work that does not grow with data that is not the request's own (issue 18: a flat cost per request
as the run's data grows): other persons' DMP documents, other establishments' prescriptions, the messages the
run sent before the one an MDN answers, the other sessions' tokens of a PSC logout.

Each test counts the work a request does on records that are not its own — attribute reads of other persons'
documents, journal rows read — never a wall time: the count is zero whatever the store holds, and an index that would fall behind
the store (an operation applied, a restore, a reset) shows as a wrong answer; the prescriptions of the run and
the realm's tokens are watched as a whole (any pass over them counts)."""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from fhir_access import essms, presenting
from simulator_context import bare_context
from starlette.testclient import TestClient

from harness.core.journal import Direction, Exchange, JournalFilter, Outcome, SQLiteJournal
from harness.core.state import StateHub
from harness.fields.identity import INS
from harness.fields.testdata import load_testdata
from mock_services.dmp.store import DmpStore, StoredDocument
from mock_services.eparcours.service import EparcoursService, EparcoursSettings
from mock_services.eprescription import EprescriptionSimulator
from mock_services.mssante.mailflow import INBOUND, InboundIndex
from mock_services.psc.model import load_fixtures
from mock_services.psc.realm import AuthRequest, CodeGrant, Realm, Session, Settings

REPO = Path(__file__).resolve().parents[1]
TESTDATA = load_testdata(REPO / "fixtures")


# DMP registry: ITI-18 FindDocuments reads the patient's documents only ----------------------------------------------
def _document(n: int, ins: INS, cls: type[StoredDocument] = StoredDocument) -> StoredDocument:
    return cls(
        entry_uuid=f"urn:uuid:{n}",
        unique_id=f"1.2.{n}",
        patient=ins.value,
        patient_oid=ins.oid,
        patient_cx=ins.to_xds(),
        repository_unique_id="r",
        mime_type="text/xml",
        data=b"<ClinicalDocument/>",
        hash="h",
        size=19,
        type_code="t",
        metadata=b"<rim:ExtrinsicObject/>",
        essms=None,
    )


def test_find_documents_reads_none_of_the_other_patients_documents() -> None:
    reads: list[str] = []

    @dataclass(frozen=True)
    class Watched(StoredDocument):
        """Another patient's document that notes every attribute read of it."""

        def __getattribute__(self, name: str) -> Any:
            if not name.startswith("__"):
                reads.append(name)
            return super().__getattribute__(name)

    mine, same_digits = TESTDATA.persons[0].ins, TESTDATA.persons[1].ins
    nia = INS(same_digits.number, same_digits.key, "1.2.250.1.213.1.4.9")  # the same 15 digits, another DMP
    store = DmpStore()
    store.register([_document(n, TESTDATA.persons[2 + n % 3].ins, Watched) for n in range(100)])
    store.register([_document(100, mine), _document(101, same_digits)])
    store.register([_document(n, TESTDATA.persons[2 + n % 3].ins, Watched) for n in range(102, 200)])
    store.register([_document(200, mine), _document(201, nia), _document(202, mine)], deprecate=["urn:uuid:100"])
    store.unregister(["urn:uuid:202"], restore=["urn:uuid:100"])  # an ITI-41 whose exchange was not journaled
    store.change_status("urn:uuid:200", "urn:oasis:names:tc:ebxml-regrep:StatusType:Deprecated")
    reads.clear()

    assert [(d.unique_id, d.status.rpartition(":")[2]) for d in store.documents(mine)] == [
        ("1.2.100", "Approved"),
        ("1.2.200", "Deprecated"),
    ]
    assert [d.unique_id for d in store.documents(same_digits)] == ["1.2.101"]
    assert [d.unique_id for d in store.documents(nia)] == ["1.2.201"]
    assert store.documents(INS(mine.number, mine.key, nia.oid)) == []  # no document under that OID
    assert reads == []  # not one attribute of the 198 other patients' documents

    again = DmpStore()  # a restored registry (another serving process's snapshot) keeps the same answers
    again.restore(store.snapshot())
    assert [d.unique_id for d in again.documents(mine)] == ["1.2.100", "1.2.200"]
    assert [d.unique_id for d in again.documents(nia)] == ["1.2.201"]
    assert len(again.documents()) == 202
    again.restore({"persons": [], "documents": []})
    assert (again.documents(mine), again.documents()) == ([], [])


# e-Prescription: a Patient read resolves its establishment without going through the run's prescriptions -----------
class Passes(dict):  # type: ignore[type-arg]
    """The prescriptions of the run, counting every pass over them."""

    def __init__(self, *args: Any) -> None:
        super().__init__(*args)
        self.passes = 0

    def __iter__(self) -> Any:
        self.passes += 1
        return super().__iter__()

    def values(self) -> Any:
        self.passes += 1
        return super().values()

    def items(self) -> Any:
        self.passes += 1
        return super().items()


def test_a_patient_read_goes_through_none_of_the_runs_prescriptions(tmp_path: Path) -> None:
    journal = SQLiteJournal(tmp_path / "journal.sqlite")
    ctx = bare_context("eprescription", journal, TESTDATA)
    simulator = EprescriptionSimulator(ctx)
    service = simulator.service
    mine = TESTDATA.persons[0]
    elsewhere = next(e.finess for e in TESTDATA.establishments if e.finess != mine.essms)
    others = [service.issue(service.other_person(elsewhere), lines=1) for _ in range(30)]
    first = service.issue(mine, lines=1)
    service.issue(mine, lines=1)
    service.prescriptions = Passes(service.prescriptions)
    try:
        with TestClient(presenting(simulator.http_app(), essms(mine.essms))) as client:
            assert client.get(f"/fhir/Patient/{first.ids['patient']}").status_code == 200
            assert client.get(f"/fhir/Patient/{others[-1].ids['patient']}").status_code == 404  # another's person
        assert service.prescriptions.passes == 0

        snapshot = service.snapshot()  # a restored state (another serving process's) resolves the same way
        service.restore({"prescriptions": [], "retrieved": [], "confirmed": {}})
        with TestClient(presenting(simulator.http_app(), essms(mine.essms))) as client:
            assert client.get(f"/fhir/Patient/{first.ids['patient']}").status_code == 404  # no prescription now
            service.restore(snapshot)
            assert client.get(f"/fhir/Patient/{first.ids['patient']}").status_code == 200
            assert client.get(f"/fhir/Patient/{others[0].ids['patient']}").status_code == 404
    finally:
        journal.close()


# MSSanté: the original of an MDN is found without reading the run's earlier messages again ------------------------
class Rows:
    """A journal that counts the exchanges its queries return."""

    def __init__(self, journal: SQLiteJournal) -> None:
        self.journal = journal
        self.read = 0

    def query(self, flt: JournalFilter) -> list[Exchange]:
        found = self.journal.query(flt)
        self.read += len(found)
        return found

    def last_seq(self) -> int:
        return self.journal.last_seq()


def _inbound(run: str, message_id: str, operation: str = INBOUND) -> Exchange:
    return Exchange(
        service="mssante",
        operation=operation,
        direction=Direction.TO_DUI,
        outcome=Outcome.ACCEPTED,
        run_id=run,
        details={"message_id": message_id, "to": "dui@ehpad-tilleuls.mssante.fr"},
    )


def test_the_original_of_an_mdn_is_read_from_what_was_journaled_since_the_previous_mdn(tmp_path: Path) -> None:
    journal = SQLiteJournal(tmp_path / "journal.sqlite")
    try:
        journal.record_many([_inbound("r1", f"<{n}@x>") for n in range(300)])
        journal.record_many([_inbound("r2", f"<{n}@x>") for n in range(100)])  # another run, the same Message-IDs
        journal.record_many([_inbound("r1", f"<{n}@x>", "smtp.submit") for n in range(100)])  # not inbound
        rows = Rows(journal)
        index = InboundIndex(rows, "mssante")  # type: ignore[arg-type]

        def journal_answer(run: str, message_id: str) -> list[str]:  # what MailFlow.originals read before
            run_inbound = journal.query(JournalFilter(service="mssante", operation=INBOUND, run_id=run))
            return [e.id for e in run_inbound if e.details.get("message_id") == message_id]

        [first] = index.find("r1", "<7@x>")
        assert [first.id] == journal_answer("r1", "<7@x>")
        assert rows.read == 300  # the run's inbound exchanges, once

        sent = journal.record(_inbound("r1", "<new@x>"))
        journal.record_many([_inbound("r1", "<mdn@x>", "smtp.mdn"), _inbound("r2", "<new@x>")])
        again = journal.record(_inbound("r1", "<7@x>"))  # the same message sent again
        rows.read = 0
        assert [e.id for e in index.find("r1", "<new@x>")] == [sent.id] == journal_answer("r1", "<new@x>")
        assert [e.id for e in index.find("r1", "<7@x>")] == [first.id, again.id] == journal_answer("r1", "<7@x>")
        assert rows.read == 4  # what was journaled since the first MDN, not the run's 300 inbound exchanges

        assert index.find("r1", "<unknown@x>") == []  # none known: the run is read again, the journal's answer
        assert [e.id for e in index.find("r2", "<new@x>")] == journal_answer("r2", "<new@x>")  # another run
        assert [e.run_id for e in index.find("r1", "<3@x>")] == ["r1"]
    finally:
        journal.close()


# PSC: a logout revokes the session's tokens without going through every live token of the realm ---------------------
def test_a_logout_goes_through_the_sessions_tokens_only(tmp_path: Path) -> None:
    journal = SQLiteJournal(tmp_path / "journal.sqlite")
    ctx = bare_context("psc", journal, TESTDATA)
    try:
        realm = Realm(ctx, load_fixtures(REPO / "fixtures" / "psc"), Settings())
        client = realm.clients["dui-reference"]
        now = 1_700_000_000.0
        sessions = []
        for n in range(40):
            auth = AuthRequest(client, client.redirect_uris[0], ("openid",), f"st{n}", f"no{n}", None, None, ())
            session = Session(f"sid-{n}", realm.users()[n % 4], client.client_id, int(now), "eidas1", nonce=f"no{n}")
            realm.open_session(session, f"code-{n}", CodeGrant(auth, session.sid, now + 60))
            realm.redeem(f"code-{n}", client.client_id)
            realm.add_tokens(session, client.client_id, ("openid",), f"jti-{n}", f"refresh-{n}", now)
            sessions.append(session)
        realm.add_tokens(sessions[3], client.client_id, ("openid",), "jti-3b", "refresh-3b", now)  # a refresh
        realm.rotate_refresh("refresh-3", client.client_id)  # spent: no longer active
        realm.add_tokens(sessions[5], client.client_id, ("openid",), "jti-3b", "refresh-5b", now)  # jti issued again
        realm.access, realm.refresh = Passes(realm.access), Passes(realm.refresh)

        assert realm.revoke_session("sid-3") == {"access_tokens": 1, "refresh_tokens": 1}
        assert realm.revoke_session("sid-3") == {"access_tokens": 0, "refresh_tokens": 0}
        assert realm.revoke_session("sid-unknown") == {"access_tokens": 0, "refresh_tokens": 0}
        assert (realm.access.passes, realm.refresh.passes) == (0, 0)
        assert [j for j, a in realm.access.items() if not a.active] == ["jti-3"]
        assert [t for t, r in realm.refresh.items() if not r.active] == ["refresh-3", "refresh-3b"]

        again = Realm(
            replace(ctx, state=StateHub()), load_fixtures(REPO / "fixtures" / "psc"), Settings()
        )  # another process's restore
        again.restore_grants(realm.snapshot_grants())
        again.access, again.refresh = Passes(again.access), Passes(again.refresh)
        assert again.revoke_session("sid-5") == {"access_tokens": 2, "refresh_tokens": 2}
        assert (again.access.passes, again.refresh.passes) == (0, 0)
        again.restore_grants({**realm.snapshot_grants(), "access": [], "refresh": []})
        assert again.revoke_session("sid-6") == {"access_tokens": 0, "refresh_tokens": 0}
    finally:
        journal.close()


# e-Parcours: a partner's note finds the platform's Patient through the identifier index, not every Patient ------------
def test_a_partner_note_goes_through_none_of_the_other_patients(tmp_path: Path) -> None:
    journal = SQLiteJournal(tmp_path / "journal.sqlite")
    try:
        service = EparcoursService(bare_context("eparcours", journal, TESTDATA), EparcoursSettings())
        person = TESTDATA.persons[0]
        with service.store.exclusive() as uow:  # other persons of the cahier de liaison, one with the same INS value
            for n in range(300):  # under another system: the index is looked up by value, the system checked after
                uow.create(
                    "Patient",
                    {
                        "resourceType": "Patient",
                        "identifier": [{"system": "urn:oid:1.2.3", "value": person.ins.value if n == 7 else f"x{n}"}],
                    },
                )
            uow.commit()
        assert service.store.count("Patient") == 300
        reads: list[str] = []
        whole = service.store.all

        def all_of(resource_type: str) -> list[Any]:
            reads.append(resource_type)
            return whole(resource_type)

        service.store.all = all_of  # type: ignore[method-assign]
        first = service.publish_note(person, text="Chute ce matin, pas de blessure.")
        second = service.publish_note(person, text="Repas pris en entier.")

        assert reads == []
        assert first.resource["subject"] == second.resource["subject"]
        ins = person.ins.to_fhir_identifier()
        patients = [
            v.id
            for v in whole("Patient")
            if any(
                i.get("system") == ins["system"] and i.get("value") == ins["value"] for i in v.resource["identifier"]
            )
        ]
        assert [f"Patient/{i}" for i in patients] == [first.resource["subject"]["reference"]]
    finally:
        journal.close()

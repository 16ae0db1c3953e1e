"""The MSSanté mail store keeps bodies once, outside the heap (issue 15 item 4), and answers its quota."""

from __future__ import annotations

from pathlib import Path

from mock_services.mssante.store import BodyStore, MailStore

BODY = b"Message-ID: <m1@ehpad.mssante.fr>\r\nSubject: DLU\r\n\r\n" + b"x" * 100_000


def test_a_body_is_stored_once_for_every_copy_and_goes_with_the_last(tmp_path: Path) -> None:
    store = MailStore(bodies=BodyStore(tmp_path / "bodies"))
    a = store.deliver("a@x.mssante.fr", BODY, prefix=b"Received: by smtp.mssante.test for a\r\n")
    b = store.deliver("b@x.mssante.fr", BODY, prefix=b"Received: by smtp.mssante.test for b\r\n")
    sent = store.deliver("dui@x.mssante.fr", BODY, folder="Sent")
    assert store.bodies.count() == 1 and len(list((tmp_path / "bodies").iterdir())) == 1
    assert a.data == b"Received: by smtp.mssante.test for a\r\n" + BODY and sent.data == BODY
    assert (a.message_id, b.message_id, sent.message_id) == ("<m1@ehpad.mssante.fr>",) * 3
    assert a.size == len(a.data) and store.size("a@x.mssante.fr") == a.size
    copied = store.copy("a@x.mssante.fr", "INBOX", a.uid, "Trash", move=True)
    assert store.get("a@x.mssante.fr", "Trash", copied or 0).data == a.data
    assert store.size("a@x.mssante.fr") == a.size  # moved, not doubled
    for address, folder, uid in (("a@x.mssante.fr", "Trash", copied), ("b@x.mssante.fr", "INBOX", b.uid)):
        store.expunge(address, folder, [uid or 0])
    assert store.bodies.count() == 1  # the Sent copy still holds it
    store.expunge("dui@x.mssante.fr", "Sent", [sent.uid])
    assert store.bodies.count() == 0 and list((tmp_path / "bodies").iterdir()) == []
    assert store.size("a@x.mssante.fr") == 0


def test_the_quota_counts_each_mailbox_copies() -> None:
    store = MailStore(quota_bytes=250_000)
    assert not store.over_quota("a@x.mssante.fr")
    store.deliver("a@x.mssante.fr", BODY)
    store.deliver("a@x.mssante.fr", BODY.replace(b"m1@", b"m2@"))
    assert not store.over_quota("a@x.mssante.fr") and store.over_quota("a@x.mssante.fr", incoming=60_000)
    store.deliver("a@x.mssante.fr", BODY.replace(b"m1@", b"m3@"))
    assert store.over_quota("a@x.mssante.fr") and not store.over_quota("b@x.mssante.fr")
    assert MailStore().over_quota("a@x.mssante.fr", incoming=10**12) is False  # no quota configured
    directory = store.bodies.directory
    store.close()
    assert not directory.exists()


def test_a_full_mailbox_is_answered_552_5_2_2(tmp_path: Path) -> None:
    import smtplib
    import ssl

    from harness.core.config import HarnessConfig, package_root
    from harness.core.journal import JournalFilter, Outcome
    from harness.fields.testdata import load_testdata
    from harness.runtime.environment import SocleEnvironment
    from harness.sut.documents import build_message

    sender, doctor = "dui@ehpad-tilleuls.mssante.fr", "jean.dupont@medecin.mssante.fr"
    config = HarnessConfig(
        run_dir=tmp_path,
        journal=f"sqlite:///{tmp_path}/j.sqlite",
        services=("mssante",),
        settings={"mssante": {"mailbox_quota_bytes": 1000}},
    )
    env = SocleEnvironment(config)
    try:
        port = int(env.start()["mssante"]["smtp"].rpartition(":")[2])
        testdata = load_testdata(package_root() / "fixtures")
        person = testdata.person("P001")
        built = build_message(person, testdata.establishment(person.essms), sender, [doctor])
        message = built.as_bytes(policy=built.policy.clone(linesep="\r\n"))
        with smtplib.SMTP("127.0.0.1", port, timeout=15) as smtp:
            smtp.starttls(context=ssl.create_default_context(cafile=str(env.pki.ca_bundle_path)))
            smtp.login(sender, "dui-tilleuls-test")
            assert smtp.sendmail(sender, [doctor], message) == {}  # under the quota: accepted, now beyond it
            smtp.mail(sender)
            code, text = smtp.rcpt(doctor)
        assert (code, text.decode().split()[0]) == (552, "5.2.2")
        rows = env.journal.query(JournalFilter(service="mssante", run_id=env.run_id, outcome=Outcome.REJECTED))
        assert [r.error_code for r in rows] == ["552 5.2.2"]
    finally:
        env.stop()


def test_a_captured_snapshot_is_the_state_at_capture_time(tmp_path: Path) -> None:
    """``capture()`` (taken under the replica's lock, harness.core.state) copies what later changes would alter:
    its ``build()``, run afterwards outside the locks, gives the state at capture time, not the current one."""
    from harness.core.state import Deferred, encode_snapshot

    org = "secretariat@ehpad-tilleuls.mssante.fr"
    store = MailStore(bodies=BodyStore(tmp_path / "bodies"))
    store.ensure_mailbox(org)
    store.deliver(org, BODY)
    store.deliver(org, b"Subject: deux\r\n\r\ncorps\r\n", flags=["\\Seen"])
    before = store.snapshot()
    captured = store.capture()
    assert isinstance(captured, Deferred)
    store.deliver(org, b"Subject: trois\r\n\r\ncorps\r\n")  # a message, a change-log entry, usage
    store.set_flags(org, "INBOX", 1, ["\\Flagged"])  # replaces a message, bumps the folder's modseq
    store.expunge(org, "INBOX", [2])
    store.create_folder(org, "Archives")
    store.rename_folder(org, "Archives", "Classés")
    built = captured.build()
    assert built == before != store.snapshot()
    assert encode_snapshot(captured) == encode_snapshot(before)  # what Replica.do writes

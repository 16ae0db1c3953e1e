"""The host's admin fault endpoint (issue 13 item 2, issue 15 item 2): every service declares its faults
``<service>.<fault>``; ``/_harness/faults`` lists them and injects only declared ones, with the admin token."""

from __future__ import annotations

import ssl
from collections.abc import Iterator

import httpx
import pytest

from harness.core.config import HarnessConfig
from harness.core.journal import JournalFilter, Outcome
from harness.host.admin import admin_headers
from harness.runtime.environment import SocleEnvironment


@pytest.fixture(scope="module")
def env(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SocleEnvironment]:
    tmp = tmp_path_factory.mktemp("faults")
    env = SocleEnvironment(
        HarnessConfig(run_dir=tmp, journal=f"sqlite:///{tmp}/j.sqlite", services=("tddui", "eparcours", "psc"))
    )
    env.start()
    yield env
    env.stop()


def _client(env: SocleEnvironment, certificate: str | None = None) -> httpx.Client:
    context = ssl.create_default_context(cafile=str(env.pki.ca_bundle_path))
    if certificate:
        issued = env.pki.client(certificate)
        context.load_cert_chain(str(issued.cert_path), str(issued.key_path))
    return httpx.Client(verify=context, timeout=15)


def test_catalogues_and_injection_need_the_admin_token(env: SocleEnvironment) -> None:
    url = env.endpoints["harness"]["base"] + "/_harness/faults"
    with _client(env) as http:
        assert http.get(url).status_code == 401
        assert http.post(url, json={"service": "eparcours", "kind": "eparcours.indisponible"}).status_code == 401
        catalogues = http.get(url, headers=admin_headers(env.admin_token)).json()
        assert {name: sorted(kinds) for name, kinds in catalogues.items()} == {
            "eparcours": ["eparcours.indisponible"],
            "psc": sorted(
                ["psc.down", "psc.code-expired", "psc.wrong-state", "psc.acr-not-met", "psc.no-activity",
                 "psc.introspection-inactive", "psc.wrong-audience"]
            ),
            "tddui": ["tddui.reply"],
        }  # fmt: skip
        assert all(kind.startswith(f"{name}.") for name, kinds in catalogues.items() for kind in kinds)
        undeclared = http.post(
            url, json={"service": "eparcours", "kind": "psc.down"}, headers=admin_headers(env.admin_token)
        )
        assert undeclared.status_code == 400
    rows = env.journal.query(JournalFilter(service="harness", operation="admin.fault"))
    assert [(r.outcome, r.error_code) for r in rows] == [
        (Outcome.REJECTED, "invalid_request"),
        (Outcome.REJECTED, "invalid_request"),
        (Outcome.REJECTED, "400"),
    ]


def test_an_injected_outage_answers_503_then_the_service_is_back(env: SocleEnvironment) -> None:
    url = env.endpoints["harness"]["base"] + "/_harness/faults"
    with _client(env) as http:
        injected = http.post(
            url,
            json={"service": "eparcours", "kind": "eparcours.indisponible", "count": 2},
            headers=admin_headers(env.admin_token),
        )
        assert injected.status_code == 201
    metadata = env.endpoints["eparcours"]["fhir"] + "/metadata"
    with _client(env, "ESSMS-990000016") as essms:
        answers = [essms.get(metadata) for _ in range(3)]
    assert [a.status_code for a in answers] == [503, 503, 200]
    assert answers[0].headers["retry-after"] == "30" and answers[0].json()["issue"][0]["code"] == "transient"
    rows = env.journal.query(JournalFilter(service="eparcours", operation="fhir.capabilities"))
    assert [(r.outcome, r.error_code, r.essms) for r in rows] == [
        (Outcome.REJECTED, "FHIR-INDISPONIBLE", "990000016"),
        (Outcome.REJECTED, "FHIR-INDISPONIBLE", "990000016"),
        (Outcome.ACCEPTED, None, "990000016"),
    ]

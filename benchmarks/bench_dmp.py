"""DMP ITI-41 throughput with full validation, vs a bare Starlette endpoint measured in the same run.

Both servers run in a :class:`harness.host.service_host.ServiceHost` (same uvicorn, same mutual TLS with the test PKI, same
httptools protocol) and receive the same pre-built ITI-41 requests (SOAP 1.2 + WS-Addressing + MTOM, VIHF signed by the
organisation certificate, XAdES signature document). The sink reads the whole ``multipart/related`` body and
answers a fixed RegistryResponse; the DMP simulator parses MTOM, checks VIHF (XML signature), the French XDS
metadata, validates the CDA (XSD + French header, and the volet's schematron when configured), journals the
exchange (SQLite) and stores the documents.

Figures (each with the process CPU time per document: client, event loop, DMP worker and Saxon together, the
steadier measure on a shared machine, and what it adds to the sink's):
  xsd+header   50 KB structured DLU built by the reference DUI, a fresh VIHF per request; then the same with one
               VIHF for the session (its signature verified once);
  xsd+sch DLU  the same 50 KB DLU with XSD + header + its CI-SIS DLU schematron (the reference DLU passes it),
               against the sink of the same run (needs ../shared/corpus or SOCLE_CORPUS); issue 18 goal: >= 200
               documents/s (checked for this figure and for xsd+header);
  schematron   the 52 KB corpus DLU-FLUDT example with its CI-SIS schematron (needs ../shared/corpus);
  1 MB DLU     the 1.1 MB corpus DLU example, XSD + header;
  compile      CI-SIS schematron compile time: cold (Saxon start + skeleton + volet), another volet, cached.

Run from the repository root:  python benchmarks/bench_dmp.py [--documents N] [--json FILE]
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import ssl
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import httpx
from lxml import etree
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from harness.core.config import package_root
from harness.core.journal import open_journal
from harness.fields.identity import parse_ins
from harness.fields.pki import TestPKI
from harness.fields.testdata import load_testdata
from harness.host.service_host import BackgroundHost, HostOptions, ServiceHost
from harness.host.simulator import RunState, Simulator
from harness.sut import dmp_messages as M
from harness.sut.documents import build_cda
from harness.validators import ebrim as E
from harness.validators.schematron import SchematronEngine
from mock_services.dmp import DMPSimulator
from mock_services.dmp.store import Authorisation, DmpState

ROOT = Path(__file__).resolve().parents[1]
CORPUS = Path(os.environ.get("SOCLE_CORPUS") or ROOT.parent / "shared" / "corpus") / "cisis-cda"
ITI41 = "urn:ihe:iti:2007:ProvideAndRegisterDocumentSet-b"
GOAL = 200.0  # documents/s, 50 KB DLU, XSD + header + schematron (issue 18)
TIME_CAP = 20.0
HL7 = "urn:hl7-org:v3"
SUCCESS = b"ResponseStatusType:Success"


class SinkSimulator(Simulator):
    """The baseline: a bare Starlette endpoint that reads the body and answers a fixed RegistryResponse."""

    name = "sink"
    title = "sink"
    ANSWER = (
        b'<?xml version="1.0"?><e:Envelope xmlns:e="http://www.w3.org/2003/05/soap-envelope"><e:Body>'
        b'<rs:RegistryResponse xmlns:rs="urn:oasis:names:tc:ebxml-regrep:xsd:rs:3.0" '
        b'status="urn:oasis:names:tc:ebxml-regrep:ResponseStatusType:Success"/></e:Body></e:Envelope>'
    )

    def http_app(self) -> Starlette:
        async def sink(request: Request) -> Response:
            await request.body()
            return Response(self.ANSWER, media_type="application/soap+xml")

        return Starlette(routes=[Route("/si-dmp-server/v2/services/repository", sink, methods=["POST"])])

    def http_endpoints(self) -> dict[str, str]:
        return {"repository": "/si-dmp-server/v2/services/repository"}


def _requests(
    person,
    establishment,
    credentials,
    url: str,
    cdas: list[bytes],
    *,
    session_vihf: bool = False,
    format_code: str | None = None,
) -> list[tuple[bytes, str]]:  # noqa: ANN001
    """Pre-built requests; ``session_vihf``: one VIHF for all of them (a DUI session), else a fresh one each;
    ``format_code``: the DocumentEntry formatCode when the CDA is not a DLU (ASS_A11: FLUDT -> fludt:2017)."""
    out = []
    shared = M.build_vihf(person, establishment, credentials) if session_vihf else None
    for cda in cdas:
        body, attachments, entry_id, _ = M.build_iti41(person, establishment, "DLU", cda, credentials)
        for classification in body.iter(E.rim("Classification")) if format_code else ():
            if classification.get("classificationScheme") == E.FORMAT_CODE and (
                classification.get("classifiedObject") == entry_id
            ):
                classification.set("nodeRepresentation", format_code)
        vihf = copy.deepcopy(shared) if shared is not None else M.build_vihf(person, establishment, credentials)
        out.append(M.mtom(M.envelope(ITI41, url, body, vihf), attachments, ITI41))
    return out


def _corpus_copies(path: Path, count: int) -> list[bytes]:
    """``count`` copies of a corpus CDA, each with its own ClinicalDocument/id (uniqueId)."""
    source = path.read_bytes()
    copies = []
    for index in range(count):
        root = etree.fromstring(source)
        doc_id = root.find(f"{{{HL7}}}id")
        doc_id.set("root", f"{doc_id.get('root')}.{index + 1}")
        copies.append(etree.tostring(root, xml_declaration=True, encoding="UTF-8"))
    return copies


def _measure(url: str, requests: list[tuple[bytes, str]], context: ssl.SSLContext) -> dict[str, Any]:
    accepted = 0
    started = time.perf_counter()
    cpu_started = time.process_time()  # every thread of the process: client, event loop, DMP worker, Saxon
    done = 0
    with httpx.Client(verify=context, timeout=60) as client:
        for content, content_type in requests:
            response = client.post(url, content=content, headers={"Content-Type": content_type})
            accepted += SUCCESS in response.content
            done += 1
            if time.perf_counter() - started > TIME_CAP:
                break
    elapsed = time.perf_counter() - started
    cpu = time.process_time() - cpu_started
    return {
        "documents": done,
        "accepted": accepted,
        "seconds": round(elapsed, 3),
        "per_second": round(done / elapsed, 1),
        "cpu_ms_per_document": round(cpu * 1000 / done, 2),
    }


def _cpu(figure: dict[str, Any], sink: dict[str, Any]) -> str:
    """The process CPU time per document, and what the server adds to the sink's (client + HTTP + TLS)."""
    return (
        f"CPU {figure['cpu_ms_per_document']:.2f} ms/document, "
        f"{figure['cpu_ms_per_document'] - sink['cpu_ms_per_document']:+.2f} ms vs the sink"
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--documents", type=int, default=400)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    corpus = CORPUS.is_dir()
    figures: dict[str, Any] = {"corpus": corpus}
    testdata = load_testdata(package_root() / "fixtures")
    with tempfile.TemporaryDirectory(prefix="bench-dmp-") as tmp_name:
        tmp = Path(tmp_name)
        pki = TestPKI.ensure(tmp / "pki")
        person = testdata.persons[0]
        establishment = testdata.establishment(person.essms)
        # the structure's own organisation certificate: the DMP checks TLS certificate = VIHF signer = structure
        client_cert = pki.issue_client(f"ESSMS-{establishment.finess}", structure_id=f"1{establishment.finess}")
        credentials = M.OrgCredentials(str(client_cert.cert_path), str(client_cert.key_path))
        context = ssl.create_default_context(cafile=str(pki.ca_bundle_path))
        context.load_cert_chain(credentials.cert_path, credentials.key_path)
        settings: dict[str, Any] = {}
        if corpus:
            settings = {
                "cda_xsd_dir": str(CORPUS / "infrastructure" / "cda"),
                "schematron_dir": str(CORPUS / "schematrons"),
            }
        journal = open_journal(f"sqlite:///{tmp}/journal.sqlite")
        host = ServiceHost(
            journal,
            pki,
            testdata,
            HostOptions(services=["dmp", "sink"], settings={"dmp": settings}),
            RunState("bench-dmp"),
            registry={"dmp": DMPSimulator, "sink": SinkSimulator},
        )
        background = BackgroundHost(host)
        endpoints = background.start()
        try:
            dmp: DMPSimulator = host.simulators["dmp"]  # type: ignore[assignment]
            n = args.documents
            print(f"building {n} ITI-41 requests (50 KB DLU, signed VIHF, XAdES signature document)...", flush=True)
            cdas = [build_cda(person, establishment, "DLU", padding=48_000) for _ in range(n)]
            print(
                f"  CDA size {len(cdas[0]) // 1024} KB, request size {len(_requests(person, establishment, credentials, 'x', cdas[:1])[0][0]) // 1024} KB"
            )
            for name, url in (
                ("sink", endpoints["sink"]["repository"]),
                ("xsd+header", endpoints["dmp"]["repository"]),
            ):
                requests = _requests(person, establishment, credentials, url, cdas)
                schematron, dmp.schematron = dmp.schematron, None  # layer (1) only
                figures[name] = _measure(url, requests, context)
                dmp.schematron = schematron
                print(
                    f"  {name:12s} {figures[name]['per_second']:8.1f} documents/s ({figures[name]['accepted']}/{figures[name]['documents']} accepted; "
                    f"{_cpu(figures[name], figures['sink'])})"
                )
            requests = _requests(
                person,
                establishment,
                credentials,
                endpoints["dmp"]["repository"],
                [build_cda(person, establishment, "DLU", padding=48_000) for _ in range(n)],
                session_vihf=True,
            )
            schematron, dmp.schematron = dmp.schematron, None
            figures["xsd+header, session VIHF"] = _measure(endpoints["dmp"]["repository"], requests, context)
            dmp.schematron = schematron
            print(
                f"  {'same, one VIHF per session':12s} {figures['xsd+header, session VIHF']['per_second']:8.1f} documents/s "
                f"(the VIHF signature is verified once, then cached by digest; {_cpu(figures['xsd+header, session VIHF'], figures['sink'])})"
            )
            ratio = figures["xsd+header"]["per_second"] / figures["sink"]["per_second"]
            figures["ratio_to_sink"] = round(ratio, 3)
            figures["goal_met"] = figures["xsd+header"]["per_second"] >= GOAL
            figures["goal_met_session_vihf"] = figures["xsd+header, session VIHF"]["per_second"] >= GOAL
            print(
                f"  xsd+header = {ratio:.0%} of the sink; goal >= {GOAL:.0f}/s: fresh VIHF {'met' if figures['goal_met'] else 'NOT met'}, "
                f"session VIHF {'met' if figures['goal_met_session_vihf'] else 'NOT met'}"
                + ("" if corpus else " (no corpus: XSD layer not configured)")
            )
            if corpus:
                # the reference DUI's 50 KB DLU with XSD + header + CI-SIS_DLU-EHPAD-DLU_2022.01 (it passes it), in the
                # same run as the sink above
                dmp.schematron.compile("DLU-EHPAD-DLU_2022.01")  # compile outside the measurement
                requests = _requests(
                    person,
                    establishment,
                    credentials,
                    endpoints["dmp"]["repository"],
                    [build_cda(person, establishment, "DLU", padding=48_000) for _ in range(n)],
                )
                figures["xsd+schematron DLU"] = _measure(endpoints["dmp"]["repository"], requests, context)
                figures["xsd+schematron DLU"]["ratio_to_sink"] = round(
                    figures["xsd+schematron DLU"]["per_second"] / figures["sink"]["per_second"], 3
                )
                print(
                    f"  {'xsd+sch DLU':12s} {figures['xsd+schematron DLU']['per_second']:8.1f} documents/s (reference "
                    f"50 KB DLU, XSD + header + DLU schematron; {figures['xsd+schematron DLU']['accepted']}/"
                    f"{figures['xsd+schematron DLU']['documents']} accepted; "
                    f"{figures['xsd+schematron DLU']['ratio_to_sink']:.0%} of the sink; "
                    f"{_cpu(figures['xsd+schematron DLU'], figures['sink'])})"
                )
                figures["goal_met_schematron"] = figures["xsd+schematron DLU"]["per_second"] >= GOAL
                print(
                    f"  goal >= {GOAL:.0f}/s with XSD + schematron: "
                    f"{'met' if figures['goal_met_schematron'] else 'NOT met'}"
                )
                fludt = CORPUS / "examples" / "DLU-EHPAD-FLUDT_2022.01.xml"
                root = etree.fromstring(fludt.read_bytes())
                ins_el = root.find(f"{{{HL7}}}recordTarget/{{{HL7}}}patientRole/{{{HL7}}}id")
                corpus_person = replace(person, ins=parse_ins(ins_el.get("extension"), ins_el.get("root")))
                dmp.set_person(corpus_person.ins, state=DmpState.ACTIVE, authorisation=Authorisation.VALID)
                count = max(20, n // 4)
                requests = _requests(
                    corpus_person,
                    establishment,
                    credentials,
                    endpoints["dmp"]["repository"],
                    _corpus_copies(fludt, count),
                    format_code="urn:asip:ci-sis:fludt:2017",
                )
                dmp.schematron.compile("DLU-EHPAD-FLUDT_2022.01")  # compile outside the measurement
                figures["schematron"] = _measure(endpoints["dmp"]["repository"], requests, context)
                print(
                    f"  {'schematron':12s} {figures['schematron']['per_second']:8.1f} documents/s (52 KB corpus FLUDT, XSD + header + schematron; "
                    f"{figures['schematron']['accepted']}/{figures['schematron']['documents']} accepted; "
                    f"{_cpu(figures['schematron'], figures['sink'])})"
                )
                big = CORPUS / "examples" / "DLU-EHPAD-DLU_2022.01.xml"
                requests = _requests(
                    corpus_person, establishment, credentials, endpoints["dmp"]["repository"], _corpus_copies(big, 30)
                )
                schematron, dmp.schematron = dmp.schematron, None
                figures["1MB DLU"] = _measure(endpoints["dmp"]["repository"], requests, context)
                dmp.schematron = schematron
                print(
                    f"  {'1 MB DLU':12s} {figures['1MB DLU']['per_second']:8.1f} documents/s (1.1 MB corpus DLU, XSD + header; "
                    f"{figures['1MB DLU']['accepted']}/{figures['1MB DLU']['documents']} accepted)"
                )
                engine = SchematronEngine(CORPUS / "schematrons")
                t0 = time.perf_counter()
                engine.compile("DLU-EHPAD-DLU_2022.01")
                t1 = time.perf_counter()
                engine.compile("LDL-SES_2022.01")
                t2 = time.perf_counter()
                engine.compile("DLU-EHPAD-DLU_2022.01")
                t3 = time.perf_counter()
                figures["compile_ms"] = {
                    "cold": round((t1 - t0) * 1000, 1),
                    "second_volet": round((t2 - t1) * 1000, 1),
                    "cached": round((t3 - t2) * 1000, 4),
                }
                print(
                    f"  schematron compile: cold {figures['compile_ms']['cold']} ms (Saxon + ISO skeleton + DLU volet), "
                    f"another volet {figures['compile_ms']['second_volet']} ms, cached {figures['compile_ms']['cached']} ms"
                )
        finally:
            background.stop()
            journal.close()
    if args.json:
        args.json.write_text(json.dumps(figures, indent=2), encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())

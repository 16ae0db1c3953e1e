"""FHIR search time as the store grows: the index path vs the store scan it replaced, same run, same stores.

The shared FHIR layer (harness.fhir: FhirServer over a ResourceStore, in process, requests through Starlette's
TestClient, journal callback kept trivial) holds S notes (DocumentReference) over 200 persons (Patient), S = 1 000
and 50 000 by default; one person has exactly 10 notes. Searches, each timed over R requests (median per request):

  chain   DocumentReference?patient.identifier=<INS>&type=OBS&_count=10   (10 matches)
  ref     DocumentReference?subject=Patient/<id>&_count=10                 (10 matches)
  page    DocumentReference?type=OBS&_count=10&_total=none                 (every note matches; first page only)
  counted DocumentReference?type=OBS&_count=10&_total=accurate            (every note matches; total counted)

Each is run on the server as it is (**index**: the reference index gives the candidate ids, read directly; a chain
resolved on the target type is not evaluated again; ``_total=none`` stops at the page) and on a **scan** server
whose search is the one before issue 18 (every current version of the type listed, then filtered by the index,
then matched, every match counted). Goal: the index path flat (within 20 %) from the small to the large store for
a fixed number of matches (chain, ref, page), judged on the minimum per request (the median moves with the
load of a shared machine; both are printed). ``counted`` reads every match by definition (a full count was asked):
it grows with the store on both paths and has no goal.

Run from the repository root:  python benchmarks/bench_fhir_search.py [--sizes 1000,50000] [--requests R] [--json F]
"""

from __future__ import annotations

import argparse
import gc
import json
import statistics
import sys
import time
from typing import Any

from starlette.testclient import TestClient

from harness.fhir import FhirHooks, FhirServer, Interaction, ResourceStore, ResourceType
from harness.fhir.interaction import FhirInteraction, RequestInfo
from harness.fhir.search import (
    Matcher,
    ParamType,
    SearchParam,
    SearchQuery,
    Total,
    resolver_of,
    run_search,
    searchset,
)
from harness.fhir.store import UnitOfWork, instant

INS_SYSTEM = "urn:oid:1.2.250.1.213.1.4.10"
TYPE_SYSTEM = "https://mos.esante.gouv.fr/NOS/TRE_R234-TypeNote/FHIR/TRE-R234-TypeNote"
PERSONS = 200
TARGET_NOTES = 10
TIME_CAP = 20.0
GOAL = 0.20  # flat within 20 %
SEARCHES = {
    "chain": "patient.identifier={system}%7C{ins}&type=OBS&_count=10",
    "ref": "subject=Patient/{pid}&_count=10",
    "page": "type=OBS&_count=10&_total=none",
    "counted": "type=OBS&_count=10&_total=accurate",
}
FLAT = ("chain", "ref", "page")


class ScanServer(FhirServer):
    """The search before issue 18: every current version of the type, filtered by the reference index, the
    visibility rule on every candidate, every match evaluated and counted."""

    def do_search(
        self, item: FhirInteraction, query: SearchQuery, uow: UnitOfWork, info: RequestInfo, *, query_string: str
    ) -> FhirInteraction:
        matcher = Matcher(self.registry, resolver_of(uow.current))
        candidates = uow.all(query.resource_type)
        narrowed = self._by_reference(query, uow, Matcher(self.registry, resolver_of(uow.current)))
        if narrowed is not None:
            candidates = [v for v in candidates if v.id in narrowed]
        candidates = [v for v in candidates if self.hooks.visible(v, request=info)]
        if query.count is None:
            query.count = self.limits.max_search_results
        found = run_search(query, candidates, matcher, total=Total.ACCURATE)
        item.matches, item.total = found.matches, found.total
        item.response = searchset(
            self.base_url(),
            query_string,
            query.resource_type,
            found.matches,
            [],
            found.total,
            query.warnings,
            "b",
            instant(uow.now),
        )
        return item


def _server(cls: type[FhirServer], store: ResourceStore) -> FhirServer:
    everything = frozenset(Interaction) - {Interaction.INVALID}
    return cls(
        resources=[
            ResourceType("Patient", everything, (SearchParam("identifier", ParamType.TOKEN, ("identifier",)),)),
            ResourceType(
                "DocumentReference",
                everything,
                (
                    SearchParam("patient", ParamType.REFERENCE, ("subject",), ("Patient",)),
                    SearchParam("subject", ParamType.REFERENCE, ("subject",), ("Patient",)),
                    SearchParam("type", ParamType.TOKEN, ("type",)),
                ),
            ),
        ],
        store=store,
        hooks=FhirHooks(),
        record=lambda exchanges: None,
        base_url=lambda: "https://bench/fhir",
    )


def _seed(size: int) -> tuple[ResourceStore, str, str]:
    """``size`` notes over PERSONS persons; the first person has exactly TARGET_NOTES of them."""
    store = ResourceStore()
    uow = store.begin()
    pids = []
    for n in range(PERSONS):
        ins = f"2{n:014d}"
        patient = {"resourceType": "Patient", "identifier": [{"system": INS_SYSTEM, "value": ins}]}
        pids.append(uow.create("Patient", patient).id)
    for n in range(size):
        owner = pids[0] if n % (size // TARGET_NOTES) == 0 and n // (size // TARGET_NOTES) < TARGET_NOTES else None
        subject = owner or pids[1 + n % (PERSONS - 1)]
        uow.create(
            "DocumentReference",
            {
                "resourceType": "DocumentReference",
                "status": "current",
                "subject": {"reference": f"Patient/{subject}"},
                "type": {"coding": [{"system": TYPE_SYSTEM, "code": "OBS"}]},
                "date": "2025-02-03T08:30:00+01:00",
                "content": [{"attachment": {"contentType": "text/plain", "data": "Tm9ldA=="}}],
            },
        )
    uow.commit()
    return store, f"2{0:014d}", pids[0]


def _time(client: TestClient, url: str, requests: int, expect: int) -> tuple[float, float]:
    """(minimum, median) seconds per request (each answer checked: 200 and ``expect`` entries)."""
    samples: list[float] = []
    deadline = time.monotonic() + TIME_CAP
    for _ in range(requests):
        start = time.perf_counter()
        response = client.get(url)
        samples.append(time.perf_counter() - start)
        body = response.json()
        if response.status_code != 200 or len(body.get("entry", [])) != expect:
            raise RuntimeError(f"{url}: {response.status_code} {len(body.get('entry', []))} entries")
        if time.monotonic() > deadline:
            break
    return min(samples), statistics.median(samples)


def run(sizes: list[int], requests: int) -> dict[str, Any]:
    out: dict[str, Any] = {"sizes": sizes, "per_request_ms": {}}
    table = out["per_request_ms"]
    for size in sizes:
        start = time.perf_counter()
        store, ins, pid = _seed(size)
        gc.collect()  # the seeding's garbage is not the searches' cost
        print(f"store of {size} notes seeded in {time.perf_counter() - start:.1f} s", flush=True)
        for path, cls in (("index", FhirServer), ("scan", ScanServer)):
            with TestClient(_server(cls, store).app()) as client:
                for name, template in SEARCHES.items():
                    url = "/DocumentReference?" + template.format(system=INS_SYSTEM, ins=ins, pid=pid)
                    client.get(url)  # warm-up
                    heavy = name == "counted" or path == "scan"  # reads the whole store: fewer requests
                    low, mid = _time(client, url, max(3, requests // 4) if heavy else requests, TARGET_NOTES)
                    table.setdefault(name, {}).setdefault(path, {})[str(size)] = {
                        "min": low * 1000,
                        "median": mid * 1000,
                    }
    small, large = str(sizes[0]), str(sizes[-1])
    print(
        f"\nper request, ms (min / median of up to {requests})"
        + "".join(f"{s:>16}" for s in sizes)
        + "   large/small (min)"
    )
    verdicts = {}
    for name in SEARCHES:
        for path in ("scan", "index"):
            row = table[name][path]
            growth = row[large]["min"] / row[small]["min"]
            cells = "".join(f"{row[str(s)]['min']:>8.2f} /{row[str(s)]['median']:>6.1f}" for s in sizes)
            print(f"  {name:<8} {path:<6}" + " " * 24 + cells + f"   {growth:>6.2f}×")
        if name in FLAT:
            verdicts[name] = table[name]["index"][large]["min"] / table[name]["index"][small]["min"] <= 1 + GOAL
    out["flat_within_goal"] = verdicts
    print(
        "\nindex path flat within 20 % (chain, ref, page): "
        + ", ".join(f"{k} {'yes' if v else 'NO'}" for k, v in verdicts.items())
    )
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", default="1000,50000", help="store sizes in notes, comma-separated")
    parser.add_argument("--requests", type=int, default=30, help="requests per search and store (median)")
    parser.add_argument("--json", default=None, help="also write the figures as JSON to this file")
    args = parser.parse_args(argv)
    sizes = sorted(int(s) for s in args.sizes.split(","))
    if not sizes or sizes[0] < 10 * TARGET_NOTES or sizes[-1] > 200_000 or not 1 <= args.requests <= 1000:
        parser.error("--sizes within 100..200000, --requests within 1..1000")
    out = run(sizes, args.requests)
    if args.json:
        with open(args.json, "w", encoding="utf-8") as fh:
            json.dump(out, fh, indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main())

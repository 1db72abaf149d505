"""Every endpoint × every role: allowed (2xx) or refused (403; 401 without a key).

The expected cells are written out by hand from the access policy of issue 5 (roles, grant
levels) and the grants of the test deployment: enroller ``enrol``, searcher ``search``,
reviewer ``view_images`` on the gallery; admin and auditor hold no grant; the operator (a
role held alone) only creates organisations and manages administrators. The test gallery is
shared (redacted) with a second organisation, whose searcher's searches give the leads
released in the matrix. Destructive calls
get a fresh target for each cell, so cells do not depend on one another.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

from faceledger.access import AgreementTerms, Role
from faceledger.api.concurrency import SerialEngine
from faceledger.audit import utc_now
from faceledger.gallery.workspace import local_operator
from faceledger.usecases import (
    CreateGallery,
    SearchRequest,
    create_gallery,
    name_cluster,
    search,
)
from tests.api.live import GALLERY, Deployment, Live, deploy, serve
from tests.api.synthetic_documents import passport

API = "/api/v1"
ROLES = ("anonymous", "admin", "enroller", "searcher", "reviewer", "auditor", "operator")
PARTNER = "partner"
"""A second organisation, which the test gallery is shared with (redacted) under an agreement
allowing the purpose ``matrix``; its searcher ``psearcher`` searches it."""
_counter = itertools.count(1)


@dataclass
class World:
    """The deployment under test and what the cells act on."""

    dep: Deployment
    live: Live
    london: dict[str, bytes]
    template_id: int = 0
    search_id: str = ""
    receipt_seq: int = 0
    report: str = "eval.html"
    extra: dict[str, Any] = field(default_factory=dict)

    def fresh(self, prefix: str) -> str:
        return f"{prefix}{next(_counter)}"

    def image(self) -> bytes:
        """An image not yet enrolled (each enrolment needs one)."""
        stems = self.extra.setdefault("unused", sorted(self.london)[-20:])
        return self.london[stems.pop()]


Prepare = Callable[[World], dict[str, Any]]


@dataclass(frozen=True)
class Cell:
    method: str
    path: str
    allowed: frozenset[str]
    prepare: Prepare = lambda w: {}
    denied: Mapping[str, str] = field(default_factory=dict)
    """Statuses other than 401/403 for some roles that may not call it (a video job is
    404 to those who may not see it: its id is not revealed)."""


def _img(data: bytes, name: str = "image") -> dict[str, Any]:
    return {"files": {name: ("i.jpg", data, "image/jpeg")}}


def _new_user(w: World) -> dict[str, Any]:
    uid = w.fresh("u")
    w.dep.ws.access.create_user(uid, ["searcher"], by=w.dep.user("admin"))
    return {"user": uid}


def _new_key(w: World) -> dict[str, Any]:
    uid = _new_user(w)["user"]
    key = w.dep.ws.access.issue_api_key(uid, by=w.dep.user("admin"))
    return {"key": key.key_id}


def _new_grant(w: World) -> dict[str, Any]:
    uid = _new_user(w)["user"]
    w.dep.ws.access.grant(uid, GALLERY, "search", by=w.dep.user("admin"))
    return {"user": uid}


def _new_gallery(w: World) -> dict[str, Any]:
    name = w.fresh("g")
    create_gallery(w.dep.ws, w.dep.user("admin"), CreateGallery(name, legal_basis="other"))
    return {"name": name}


def _agreement_json(gallery: str) -> dict[str, Any]:
    now = utc_now()
    return {
        "gallery": gallery,
        "grantee_org": PARTNER,
        "purposes": ["matrix"],
        "legal_basis": "matrix agreement",
        "starts_at": (now - timedelta(hours=1)).isoformat(),
        "expires_at": (now + timedelta(days=1)).isoformat(),
        "redacted": True,
    }


def _new_agreement(w: World) -> dict[str, Any]:
    gallery = _new_gallery(w)["name"]
    body = _agreement_json(gallery)
    terms = AgreementTerms(
        gallery=gallery,
        grantee_org=PARTNER,
        purposes=("matrix",),
        legal_basis=body["legal_basis"],
        starts_at=datetime.fromisoformat(body["starts_at"]),
        expires_at=datetime.fromisoformat(body["expires_at"]),
    )
    made = w.dep.ws.orgs.create_agreement(terms, by=w.dep.user("admin"))
    return {"agreement_id": made.id}


def _partner_search(w: World) -> dict[str, Any]:
    """A fresh search of the shared gallery by the partner's searcher: its lead 1 is
    redacted until a reviewer of the gallery's owner releases it."""
    req = SearchRequest(w.london["001_smiling"], (GALLERY,), "matrix", "M-P")
    found = search(w.dep.ws, w.dep.user("psearcher"), req)
    assert found.redacted == {GALLERY} and found.faces[0].candidates
    return {"search_id": found.search_id, "json": {"note": "matrix release"}}


def _fresh_search(w: World) -> dict[str, Any]:
    """A new search by the searcher, whose lead 1 no one has looked at yet."""
    req = SearchRequest(w.london["001_smiling"], (GALLERY,), "matrix", "M-F")
    found = search(w.dep.ws, w.dep.user("searcher"), req)
    assert found.faces[0].candidates
    return {"search_id": found.search_id, "json": {"judgement": "same"}}


def _new_video_job(w: World) -> str:
    """A video search job of the searcher's, still waiting or running: the job pool runs one
    at a time, and a long enough video keeps each busy while the cell is called. The job
    made for the previous role is cancelled first, so jobs do not pile up."""
    with w.live.client() as c:
        for old in w.extra.pop("jobs", []):
            c.delete(f"{API}/video-searches/{old}", headers=w.dep.headers("searcher"))
        r = c.post(
            f"{API}/video-searches",
            files={"video": ("v.mp4", w.extra["slow_video"], "video/mp4")},
            data={"galleries": [GALLERY], "purpose": "matrix", "case_ref": "M-V", "sample_fps": 25},
            headers=w.dep.headers("searcher"),
        )
    assert r.status_code == 202, r.text
    job = str(r.json()["job_id"])
    w.extra["jobs"] = [job]
    return job


def _new_subject(w: World) -> dict[str, Any]:
    g = w.dep.ws.store.get_gallery_by_name(GALLERY)
    ext = w.fresh("s")
    w.dep.ws.store.add_subject(g.id, ext, enrolled_by="enroller")
    return {"subject": ext}


def _kept_set(w: World, who: str, stems: tuple[str, ...]) -> dict[str, Any]:
    """A fresh cluster set of ``stems``, kept by ``who`` (over HTTP)."""
    with w.live.client() as c:
        r = c.post(
            f"{API}/clusterings",
            files=[("images", (f"{s}.jpg", w.london[s], "image/jpeg")) for s in stems],
            data={"purpose": "matrix", "case_ref": "M-C", "keep": "true"},
            headers=w.dep.headers(who),
        )
    assert r.status_code == 200, r.text
    return {"set_id": r.json()["cluster_set_id"], "clusters": r.json()["clusters"]}


TWO_PEOPLE = ("001_neutral", "001_smiling", "005_neutral", "005_smiling")


def _searchers_set(w: World) -> dict[str, Any]:
    """The searcher's set of two clusters: its review actions are the searcher's (its
    creator's) and the reviewers' of the searcher's organisation."""
    return {"set_id": _kept_set(w, "searcher", TWO_PEOPLE)["set_id"]}


def _shown_set(w: World) -> dict[str, Any]:
    if "set_id" not in w.extra:
        w.extra["set_id"] = _searchers_set(w)["set_id"]
    return {"set_id": w.extra["set_id"]}


def _split(w: World) -> dict[str, Any]:
    kept = _kept_set(w, "searcher", TWO_PEOPLE)
    return {"set_id": kept["set_id"], "json": {"cluster": 0, "faces": kept["clusters"][0][:1]}}


def _undo(w: World) -> dict[str, Any]:
    made = _searchers_set(w)
    name_cluster(w.dep.ws, w.dep.user("searcher"), made["set_id"], 0, "matrix")
    return made


def _enrollers_set(w: World) -> dict[str, Any]:
    """The enroller's set of one person not enrolled elsewhere in the matrix: only its
    enroller (creator, with ``enrol`` on the gallery) may enrol it."""
    kept = _kept_set(w, "enroller", ("007_neutral", "007_smiling"))
    body = {"cluster": 0, "gallery": GALLERY, "subject": w.fresh("k"), "legal_basis": "consent"}
    return {"set_id": kept["set_id"], "json": body}


CELLS: list[Cell] = [
    Cell("GET", "/health", frozenset(ROLES)),
    Cell("GET", "/me", frozenset(ROLES) - {"anonymous"}),
    Cell("GET", "/orgs", frozenset(ROLES) - {"anonymous"}),
    Cell(
        "POST",
        "/orgs",
        frozenset({"operator"}),
        lambda w: {"json": {"org_id": w.fresh("o"), "display_name": "Matrix org"}},
    ),
    Cell("GET", "/orgs/{org}/purposes", frozenset({"admin", "auditor"})),
    Cell(
        "POST",
        "/orgs/{org}/purposes",
        frozenset({"admin"}),
        lambda w: {"json": {"name": w.fresh("purpose "), "description": "matrix"}},
    ),
    Cell("GET", "/agreements", frozenset({"admin", "auditor"})),
    Cell("GET", "/agreements/{agreement_id}", frozenset({"admin", "auditor"})),
    Cell(
        "POST",
        "/agreements",
        frozenset({"admin"}),
        lambda w: {"json": _agreement_json(_new_gallery(w)["name"])},
    ),
    Cell(
        "PATCH",
        "/agreements/{agreement_id}",
        frozenset({"admin"}),
        lambda w: {"json": {"legal_basis": w.fresh("changed basis ")}},
    ),
    Cell(
        "POST",
        "/agreements/{agreement_id}/revoke",
        frozenset({"admin"}),
        lambda w: {**_new_agreement(w), "json": {"reason": "matrix"}},
    ),
    Cell("GET", "/users", frozenset({"admin", "operator"})),
    Cell(
        "POST",
        "/users",
        frozenset({"admin"}),
        lambda w: {"json": {"id": w.fresh("n"), "roles": ["auditor"]}},
    ),
    Cell("POST", "/users/{user}/deactivate", frozenset({"admin"}), _new_user),
    Cell("POST", "/users/{user}/reactivate", frozenset({"admin"}), _new_user),
    Cell("POST", "/retention/apply", frozenset({"admin"})),
    Cell(
        "POST", "/users/{user}/keys", frozenset({"admin"}), lambda w: {**_new_user(w), "json": {}}
    ),
    Cell("GET", "/users/{user}/keys", frozenset({"admin"}), _new_user),
    Cell("DELETE", "/keys/{key}", frozenset({"admin"}), _new_key),
    Cell("GET", "/galleries/{gallery}/grants", frozenset({"admin"})),
    Cell(
        "PUT",
        "/galleries/{gallery}/grants/{user}",
        frozenset({"admin"}),
        lambda w: {**_new_user(w), "json": {"level": "search"}},
    ),
    Cell("DELETE", "/galleries/{gallery}/grants/{user}", frozenset({"admin"}), _new_grant),
    Cell("GET", "/galleries", frozenset(ROLES) - {"anonymous", "operator"}),
    Cell(
        "POST",
        "/galleries",
        frozenset({"admin"}),
        lambda w: {"json": {"name": w.fresh("c"), "legal_basis": "consent"}},
    ),
    Cell("GET", "/galleries/{gallery}", frozenset({"admin", "enroller", "searcher", "reviewer"})),
    Cell(
        "DELETE",
        "/galleries/{name}",
        frozenset({"admin"}),
        lambda w: {**_new_gallery(w), "params": {"reason": "test"}},
    ),
    Cell("GET", "/galleries/{gallery}/subjects", frozenset({"enroller", "reviewer"})),
    Cell("GET", "/galleries/{gallery}/subjects/001", frozenset({"enroller", "reviewer"})),
    Cell(
        "DELETE",
        "/galleries/{gallery}/subjects/{subject}",
        frozenset({"enroller"}),
        lambda w: {**_new_subject(w), "params": {"reason": "test"}},
    ),
    Cell("GET", "/galleries/{gallery}/subjects/001/export", frozenset({"enroller", "reviewer"})),
    Cell(
        "GET",
        "/galleries/{gallery}/templates/{template_id}/image",
        frozenset({"enroller", "reviewer"}),
    ),
    Cell(
        "GET",
        "/galleries/{gallery}/templates/{template_id}/aligned",
        frozenset({"enroller", "reviewer"}),
    ),
    Cell("GET", "/erasures/{receipt_seq}", frozenset({"auditor"})),
    Cell(
        "POST",
        "/galleries/{gallery}/subjects/{subject}/images",
        frozenset({"enroller"}),
        lambda w: {"subject": w.fresh("e"), **_img(w.image())},
    ),
    Cell(
        "POST",
        "/galleries/{gallery}/enrolments",
        frozenset({"enroller"}),
        lambda w: {
            "files": [("images", ("i.jpg", w.image(), "image/jpeg"))],
            "data": {"subjects": [w.fresh("b")]},
        },
    ),
    Cell(
        "POST",
        "/galleries/{gallery}/subjects/001/verify",
        frozenset({"searcher"}),
        lambda w: {**_img(w.london["001_smiling"]), "data": {"purpose": "p", "case_ref": "c"}},
    ),
    Cell(
        "POST",
        "/detect",
        frozenset({"enroller", "searcher", "reviewer"}),
        lambda w: _img(w.london["002_smiling"]),
    ),
    Cell(
        "POST",
        "/verify",
        frozenset({"searcher"}),
        lambda w: {
            "files": {
                "image_a": ("a.jpg", w.london["001_neutral"], "image/jpeg"),
                "image_b": ("b.jpg", w.london["001_smiling"], "image/jpeg"),
            },
            "data": {"purpose": "p", "case_ref": "c"},
        },
    ),
    Cell(
        "POST",
        "/documents/read",
        frozenset({"enroller", "searcher", "reviewer"}),
        lambda w: {"files": {"image": ("d.png", w.extra["document"], "image/png")}},
    ),
    Cell(
        "POST",
        "/documents/check",
        frozenset({"searcher"}),
        lambda w: {
            "files": {
                "document": ("d.png", w.extra["document"], "image/png"),
                "live": ("l.jpg", w.london["001_smiling"], "image/jpeg"),
            },
            "data": {"purpose": "matrix", "case_ref": "M-D"},
        },
    ),
    Cell(
        "POST",
        "/search",
        frozenset({"searcher"}),
        lambda w: {
            **_img(w.london["001_smiling"]),
            "data": {"galleries": [GALLERY], "purpose": "matrix", "case_ref": "M-1"},
        },
    ),
    Cell(
        "POST",
        "/video-searches",
        frozenset({"searcher"}),
        lambda w: {
            "files": {"video": ("v.mp4", w.extra["video"], "video/mp4")},
            "data": {"galleries": [GALLERY], "purpose": "matrix", "case_ref": "M-V"},
        },
    ),
    Cell(
        "GET",
        "/video-searches/{job_id}",
        frozenset({"searcher", "auditor"}),
        lambda w: {"job_id": w.extra["job_id"]},
        {"admin": "404", "enroller": "404", "reviewer": "404", "operator": "404"},
    ),
    Cell(
        "DELETE",
        "/video-searches/{job_id}",
        frozenset({"searcher"}),
        lambda w: {"job_id": _new_video_job(w)},
        {"admin": "404", "enroller": "404", "reviewer": "404", "operator": "404"},
    ),
    Cell(
        "POST",
        "/clusterings",
        frozenset({"enroller", "searcher", "reviewer"}),
        lambda w: {
            **_img(w.london["002_smiling"], "images"),
            "data": {"purpose": "matrix", "case_ref": "M-C"},
        },
    ),
    Cell("GET", "/cluster-sets", frozenset({"enroller", "searcher", "reviewer"})),
    Cell("GET", "/cluster-sets/{set_id}", frozenset({"searcher", "reviewer"}), _shown_set),
    Cell(
        "GET",
        "/cluster-sets/{set_id}/faces/{face}/crop",
        frozenset({"searcher", "reviewer"}),
        lambda w: {**_shown_set(w), "face": 0},
    ),
    Cell(
        "POST",
        "/cluster-sets/{set_id}/merge",
        frozenset({"searcher", "reviewer"}),
        lambda w: {**_searchers_set(w), "json": {"into": 0, "other": 1}},
    ),
    Cell("POST", "/cluster-sets/{set_id}/split", frozenset({"searcher", "reviewer"}), _split),
    Cell(
        "POST",
        "/cluster-sets/{set_id}/name",
        frozenset({"searcher", "reviewer"}),
        lambda w: {**_searchers_set(w), "json": {"cluster": 0, "label": "matrix"}},
    ),
    Cell(
        "POST",
        "/cluster-sets/{set_id}/dismiss",
        frozenset({"searcher", "reviewer"}),
        lambda w: {**_searchers_set(w), "json": {"cluster": 1, "reason": "matrix"}},
    ),
    Cell("POST", "/cluster-sets/{set_id}/undo", frozenset({"searcher", "reviewer"}), _undo),
    Cell("POST", "/cluster-sets/{set_id}/enrol", frozenset({"enroller"}), _enrollers_set),
    Cell("GET", "/searches", frozenset({"searcher", "reviewer", "auditor"})),
    Cell("GET", "/reviews/queue", frozenset({"searcher", "reviewer", "auditor"})),
    Cell("GET", "/searches/{search_id}", frozenset({"searcher", "reviewer", "auditor"})),
    Cell("GET", "/searches/{search_id}/probe", frozenset({"searcher", "reviewer"})),
    Cell("GET", "/searches/{search_id}/probe/faces/0/aligned", frozenset({"searcher", "reviewer"})),
    Cell(
        "POST",
        "/searches/{search_id}/leads/1/first-look",
        frozenset({"reviewer"}),
        _fresh_search,
    ),
    Cell(
        "POST",
        "/searches/{search_id}/leads/1/decisions",
        frozenset({"reviewer"}),
        lambda w: {"json": {"verdict": "inconclusive", "note": "matrix"}},
    ),
    Cell(
        "POST",
        "/searches/{search_id}/leads/1/release",
        frozenset({"reviewer"}),
        _partner_search,
    ),
    Cell("GET", "/audit/entries", frozenset({"auditor"})),
    Cell("GET", "/audit/entries/1", frozenset({"auditor"})),
    Cell("GET", "/audit/verify", frozenset({"auditor"})),
    Cell("GET", "/audit/head", frozenset({"auditor"})),
    Cell("GET", "/audit/export", frozenset({"auditor"})),
    Cell("GET", "/audit/report", frozenset({"auditor"})),
    Cell("GET", "/audit/report/orgs", frozenset({"auditor"})),
    Cell("GET", "/reports", frozenset({"admin", "auditor"})),
    Cell("GET", "/reports/{report}", frozenset({"admin", "auditor"})),
]


@pytest.fixture(scope="module")
def world(
    tmp_path_factory: pytest.TempPathFactory,
    serial_engine: SerialEngine,
    london: dict[str, bytes],
    data_dir: Path,
) -> Iterator[World]:
    root: Path = tmp_path_factory.mktemp("matrix")
    # who may call what: the blind first look before a verdict is the review tests' subject
    dep = deploy(root / "ws", serial_engine, blind_review=False)
    reports = dep.settings.data_dir / "reports"
    reports.mkdir(parents=True)
    (reports / "eval.html").write_text("<html><body><h1>FNMR</h1></body></html>")
    _organisations(dep)
    with serve(dep) as live, live.client() as c:
        w = World(dep, live, london)
        w.extra["agreement_id"] = dep.ws.orgs.agreements()[0].id
        w.extra["video"] = (data_dir / "video/h264_aac.mp4").read_bytes()
        w.extra["slow_video"] = (data_dir / "video/video_02.mp4").read_bytes()
        w.extra["document"] = passport(data_dir / "london" / "images", "001").png
        r = c.post(
            f"{API}/video-searches",
            files={"video": ("v.mp4", w.extra["video"], "video/mp4")},
            data={"galleries": [GALLERY], "purpose": "matrix", "case_ref": "M-V0"},
            headers=dep.headers("searcher"),
        )
        w.extra["job_id"] = r.json()["job_id"]
        r = c.post(
            f"{API}/galleries/{GALLERY}/enrolments",
            files=[
                ("images", ("1.jpg", london["001_neutral"], "image/jpeg")),
                ("images", ("2.jpg", london["002_neutral"], "image/jpeg")),
            ],
            data={"subjects": ["001", "002"]},
            headers=dep.headers("enroller"),
        )
        w.template_id = r.json()["items"][0]["template_id"]
        r = c.post(
            f"{API}/search",
            files={"image": ("p.jpg", london["001_smiling"], "image/jpeg")},
            data={"galleries": [GALLERY], "purpose": "matrix", "case_ref": "M-0"},
            headers=dep.headers("searcher"),
        )
        w.search_id = r.json()["search_id"]
        erased = _new_subject(w)["subject"]
        r = c.delete(
            f"{API}/galleries/{GALLERY}/subjects/{erased}",
            params={"reason": "setup"},
            headers=dep.headers("enroller"),
        )
        w.receipt_seq = r.json()["receipt_seq"]
        yield w
    dep.ws.close()


def _organisations(dep: Deployment) -> None:
    """The deployment's operator (an account of its own, as no other role may be held with
    it), the partner organisation with its searcher, and the agreement sharing the test
    gallery with it."""
    root = local_operator(dep.ws, "matrix")
    dep.ws.access.create_user("operator", [Role.OPERATOR], by=root)
    dep.tokens["operator"] = dep.ws.access.issue_api_key("operator", by=root).token
    dep.ws.orgs.create_org(PARTNER, "Partner force", by=root)
    dep.ws.access.create_user("psearcher", [Role.SEARCHER], by=root, org=PARTNER)
    admin = dep.user("admin")
    dep.ws.orgs.define_purpose("default", "matrix", "the permission matrix", by=admin)
    now = utc_now()
    terms = AgreementTerms(
        gallery=GALLERY,
        grantee_org=PARTNER,
        purposes=("matrix",),
        legal_basis="matrix agreement",
        starts_at=now - timedelta(hours=1),
        expires_at=now + timedelta(days=365),
        redacted=True,
    )
    dep.ws.orgs.create_agreement(terms, by=admin)
    dep.ws.access.grant("psearcher", GALLERY, "search", by=root)


def _call(w: World, cell: Cell, who: str, client: httpx.Client) -> httpx.Response:
    values = {
        "org": "default",
        "agreement_id": w.extra["agreement_id"],
        "gallery": GALLERY,
        "template_id": w.template_id,
        "search_id": w.search_id,
        "receipt_seq": w.receipt_seq,
        "report": w.report,
    }
    kwargs = cell.prepare(w)
    request_parts = {"json", "files", "data", "params"}
    values.update({k: kwargs.pop(k) for k in list(kwargs) if k not in request_parts})
    path = API + cell.path.format(**values)
    headers = {} if who == "anonymous" else w.dep.headers(who)
    return client.request(cell.method, path, headers=headers, **kwargs)


@pytest.mark.parametrize("cell", CELLS, ids=[f"{c.method} {c.path}" for c in CELLS])
def test_endpoint_by_role(world: World, cell: Cell) -> None:
    results: dict[str, int] = {}
    with world.live.client() as client:
        for who in ROLES:
            results[who] = _call(world, cell, who, client).status_code
    expected = {
        who: "allowed"
        if who in cell.allowed
        else cell.denied.get(who, "401" if who == "anonymous" else "403")
        for who in ROLES
    }
    got = {
        who: "allowed" if 200 <= status < 300 else str(status) for who, status in results.items()
    }
    assert got == expected, results


def test_the_matrix_covers_every_operation_of_the_api(world: World) -> None:
    with world.live.client() as c:
        doc = c.get(f"{API}/openapi.json").json()
    documented = {
        (method.upper(), path.removeprefix(API))
        for path, item in doc["paths"].items()
        for method in item
    }
    covered = set()
    for cell in CELLS:
        template = cell.path
        for path_ in {p for _, p in documented}:
            if _matches(path_, template):
                covered.add((cell.method, path_))
    assert covered == documented


def _matches(documented: str, cell_path: str) -> bool:
    a, b = documented.split("/"), cell_path.split("/")
    if len(a) != len(b):
        return False
    return all(x == y or x.startswith("{") for x, y in zip(a, b, strict=True))

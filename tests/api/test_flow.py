"""The service end to end over HTTP on real images: enrol (one and many), search with purpose
(and what its scores are), two-person review, audit, kept images, erasure, pagination, 1:1
verification and detection, subject ids holding "/"."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from urllib.parse import quote

import httpx
import pytest
import sqlalchemy as sa

from faceledger.api.concurrency import SerialEngine
from faceledger.audit import verify_jsonl
from faceledger.gallery.images import ImageStore, enrolled_images
from faceledger.store import NewTemplate
from faceledger.types import Template
from tests.api.live import GALLERY, Deployment, Live, deploy, serve
from tests.conftest import TemplateSet

API = "/api/v1"
WHY = {"purpose": "identity check", "case_ref": "T-1"}
"""Every audited 1:1 comparison states a purpose and a case (issue #19)."""


def _jpeg(name: str, data: bytes) -> tuple[str, bytes, str]:
    return (f"{name}.jpg", data, "image/jpeg")


def _enrol_bulk(
    c: httpx.Client, dep: Deployment, london: dict[str, bytes], stems: list[str]
) -> httpx.Response:
    files = [("images", _jpeg(s, london[s])) for s in stems]
    return c.post(
        f"{API}/galleries/{GALLERY}/enrolments",
        files=files,
        data={"subjects": [s.split("_")[0] for s in stems]},
        headers=dep.headers("enroller"),
    )


def _search(c: httpx.Client, dep: Deployment, image: bytes, **form: object) -> httpx.Response:
    data = {"galleries": [GALLERY], "purpose": "missing person", "case_ref": "CASE-1", **form}
    return c.post(
        f"{API}/search",
        files={"image": ("probe.jpg", image, "image/jpeg")},
        data={k: v for k, v in data.items() if v is not None},
        headers=dep.headers("searcher"),
    )


def test_given_enrolled_gallery_when_searched_and_reviewed_twice_then_lead_is_confirmed(
    live: Live, deployment: Deployment, london: dict[str, bytes], blank_png: bytes
) -> None:
    dep = deployment
    with live.client() as c:
        # bulk: four subjects, one image without a face, and one repeated image
        stems = ["001_neutral", "002_neutral", "003_neutral", "004_neutral"]
        files = [("images", _jpeg(s, london[s])) for s in stems]
        files.append(("images", ("blank.png", blank_png, "image/png")))
        files.append(("images", _jpeg("again", london["001_neutral"])))
        r = c.post(
            f"{API}/galleries/{GALLERY}/enrolments",
            files=files,
            data={"subjects": ["001", "002", "003", "004", "005", "001"]},
            headers=dep.headers("enroller"),
        )
        assert r.status_code == 200, r.text
        bulk = r.json()
        assert (bulk["enrolled"], bulk["duplicates"], bulk["rejected"]) == (4, 1, 1)
        statuses = {i["file"]: (i["status"], i["code"]) for i in bulk["items"]}
        assert statuses["blank.png"] == ("rejected", "no_face")
        assert statuses["again.jpg"] == ("duplicate", "conflict")

        # one more image of subject 002 through the single-image endpoint
        r = c.post(
            f"{API}/galleries/{GALLERY}/subjects/002/images",
            files={"image": _jpeg("002_smiling", london["002_smiling"])},
            data={"display_name": "Subject Two", "attributes": json.dumps({"source": "test"})},
            headers=dep.headers("enroller"),
        )
        assert r.status_code == 201, r.text
        single = r.json()
        assert single["subject"] == "002" and single["image_kept"] is True
        assert single["image_sha256"] == hashlib.sha256(london["002_smiling"]).hexdigest()
        assert single["face"]["quality"]["flags"] == []

        r = c.get(f"{API}/galleries/{GALLERY}", headers=dep.headers("searcher"))
        assert (r.json()["subjects"], r.json()["templates"]) == (4, 5)

        # search with purpose: the smiling image of 001 finds 001 first, with its FMR
        r = _search(c, dep, london["001_smiling"])
        assert r.status_code == 200, r.text
        result = r.json()
        (face,) = result["faces"]
        assert face["outcome"] == "candidates"
        top = face["candidates"][0]
        assert top["subject"] == "001" and top["rank"] == 1
        assert 0 < top["fmr"]["value"] < 0.01 and top["fmr"]["impostor_pairs"] > 1000
        assert top["score"] >= face["threshold"]
        assert result["probe_kept"] is True
        search_id = result["search_id"]
        # what the score is: 5 templates, under the 200 the calibration normalises, so the score is
        # the cosine itself and the threshold comes from the 1:1 table, not a fitted tail
        n = result["templates_searched"]
        assert n == 5
        assert face["normalisation"] == "none" and face["threshold_extrapolated"] is False
        fpir = result["target_fpir"]
        assert face["comparison_fmr"] == pytest.approx(1 - (1 - fpir) ** (1 / n), rel=1e-9)
        for cand in face["candidates"]:
            assert -1.0 <= cand["similarity"] <= 1.0
            assert cand["similarity"] == pytest.approx(cand["score"], abs=2e-6)
            assert cand["fpir"] == pytest.approx(1 - (1 - cand["fmr"]["value"]) ** n, rel=1e-6)
            assert cand["fmr"]["value"] <= cand["fpir"] < 1

        # the same search without a purpose is refused with a stable code
        r = _search(c, dep, london["001_smiling"], purpose=None)
        assert r.status_code == 422
        assert r.json()["code"] == "purpose_required"

        # the searcher may not review their own search
        body = {"verdict": "confirmed", "note": "same person"}
        url = f"{API}/searches/{search_id}/leads/1/decisions"
        r = c.post(url, json=body, headers=dep.headers("searcher"))
        assert r.status_code == 403 and r.json()["code"] == "permission_denied"

        # reviewer 1 sees probe and enrolled image, confirms: one of two
        r = c.get(f"{API}/searches/{search_id}", headers=dep.headers("reviewer"))
        assert r.status_code == 200
        rec = r.json()
        assert rec["purpose"] == "missing person" and rec["two_person_rule"] is True
        # the record says what its leads' scores are, from the search's audit entry
        assert rec["normalisation"] == "none"
        assert rec["threshold"] == pytest.approx(face["threshold"], abs=1e-6)
        # blind review: before the reviewer's first look, nothing that could sway them
        assert [x["blind"] for x in rec["leads"]] == [True] * len(rec["leads"])
        assert {x["score"] for x in rec["leads"]} == {None}
        assert {x["status"] for x in rec["leads"]} == {None}
        r = c.post(url, json=body, headers=dep.headers("reviewer"))
        assert r.status_code == 409 and "first look" in r.json()["detail"]
        look = f"{API}/searches/{search_id}/leads/1/first-look"
        for who in ("reviewer", "reviewer2"):
            r = c.post(look, json={"judgement": "same"}, headers=dep.headers(who))
            assert r.status_code == 201, r.text
            assert r.json()["blind"] is False and r.json()["score"] is not None
        r = c.post(look, json={"judgement": "different"}, headers=dep.headers("reviewer"))
        assert r.status_code == 409  # one first look each, and it stays on record
        rec = c.get(f"{API}/searches/{search_id}", headers=dep.headers("reviewer")).json()
        assert rec["leads"][0]["blind"] is False
        assert [f["judgement"] for f in rec["leads"][0]["first_looks"]] == ["same", "same"]
        assert [x["score"] for x in rec["leads"][:1]] == [face["candidates"][0]["score"]]
        assert rec["probe_faces"][0]["quality"]["score"] > 0
        probe = c.get(f"{API}/searches/{search_id}/probe", headers=dep.headers("reviewer"))
        assert probe.status_code == 200 and probe.content == london["001_smiling"]
        img = c.get(
            f"{API}/galleries/{GALLERY}/templates/{top['template_id']}/image",
            headers=dep.headers("reviewer"),
        )
        assert img.status_code == 200 and img.content == london["001_neutral"]
        assert img.headers["content-type"] == "image/jpeg"
        # a search-level grant shows scores but no faces
        hidden = c.get(
            f"{API}/galleries/{GALLERY}/templates/{top['template_id']}/image",
            headers=dep.headers("searcher"),
        )
        assert hidden.status_code == 403

        r = c.post(url, json=body, headers=dep.headers("reviewer"))
        assert r.status_code == 201, r.text
        assert r.json()["status"] == "awaiting_second_confirmation"
        assert r.json()["confirmations_needed"] == 1
        # the same reviewer confirming again does not make two people
        r = c.post(url, json=body, headers=dep.headers("reviewer"))
        assert r.json()["status"] == "awaiting_second_confirmation"
        r = c.post(
            url, json={"verdict": "confirmed", "note": "agree"}, headers=dep.headers("reviewer2")
        )
        assert r.status_code == 201
        lead = r.json()
        assert lead["status"] == "confirmed"
        assert lead["confirmed_by"] == ["reviewer", "reviewer2"]
        assert lead["open"] is False

        # the audit log holds the search, both reviews and the image views; it verifies
        r = c.get(f"{API}/audit/verify", headers=dep.headers("auditor"))
        assert r.json()["ok"] is True
        r = c.get(
            f"{API}/audit/entries", params={"operation": "review"}, headers=dep.headers("auditor")
        )
        reviews = r.json()["items"]
        assert [e["details"]["status"] for e in reviews][-1] == "confirmed"
        assert {e["actor"] for e in reviews} == {"reviewer", "reviewer2"}
        r = c.get(
            f"{API}/audit/entries", params={"operation": "search"}, headers=dep.headers("auditor")
        )
        (search_entry,) = r.json()["items"]
        assert search_entry["purpose"] == "missing person"
        assert search_entry["case_ref"] == "CASE-1"
        assert search_entry["probe_sha256"] == hashlib.sha256(london["001_smiling"]).hexdigest()
        views = c.get(
            f"{API}/audit/entries",
            params={"operation": "image_view"},
            headers=dep.headers("auditor"),
        ).json()["items"]
        assert views and views[0]["actor"] == "reviewer"

        # the export verifies without the database
        r = c.get(f"{API}/audit/export", headers=dep.headers("auditor"))
        assert r.status_code == 200
        assert verify_jsonl(r.text.splitlines()).ok

        r = c.get(f"{API}/audit/report", headers=dep.headers("auditor"))
        report = r.json()
        assert report["searches"]["by_purpose"] == {"missing person": 1}
        assert report["reviews"]["leads_confirmed"] == 1


@pytest.mark.parametrize("database", ["sqlite", "postgresql"])
def test_given_subject_with_kept_images_when_erased_then_images_go_with_it(
    database: str,
    request: pytest.FixtureRequest,
    tmp_path: Path,
    serial_engine: SerialEngine,
    london: dict[str, bytes],
) -> None:
    url = None
    if database == "postgresql":
        url = request.getfixturevalue("pg").create_schema()
    dep = deploy(tmp_path / "ws", serial_engine, database_url=url)
    try:
        _erasure(dep, london)
        images = ImageStore(dep.ws.db)
        images.compact()
        assert images.count() == 1  # subject 002's image
        if database == "sqlite":
            # after compaction not a byte run of the erased images is left in the files
            dep.ws.store.compact()
            db = dep.settings.data_dir / "faceledger.db"
            held = b"".join(
                p.read_bytes() for p in (db, db.with_name(db.name + "-wal")) if p.exists()
            )
            # (001_smiling was also a search's probe afterwards: kept as that search's probe)
            gone = london["001_neutral"]
            assert gone[len(gone) // 2 : len(gone) // 2 + 48] not in held
            kept = london["002_neutral"]
            assert kept[len(kept) // 2 : len(kept) // 2 + 48] in held
    finally:
        dep.ws.close()


def _erasure(dep: Deployment, london: dict[str, bytes]) -> None:
    with serve(dep) as live, live.client() as c:
        r = _enrol_bulk(c, dep, london, ["001_neutral", "001_smiling", "002_neutral"])
        assert r.json()["enrolled"] == 3
        detail = c.get(
            f"{API}/galleries/{GALLERY}/subjects/001", headers=dep.headers("reviewer")
        ).json()
        ids = [t["id"] for t in detail["templates"]]
        assert len(ids) == 2 and all(t["image_kept"] for t in detail["templates"])

        r = c.delete(
            f"{API}/galleries/{GALLERY}/subjects/001",
            params={"reason": "subject asked for erasure"},
            headers=dep.headers("enroller"),
        )
        assert r.status_code == 200, r.text
        receipt = r.json()
        assert sorted(receipt["template_ids"]) == sorted(ids)
        assert receipt["enrolled_images_removed"] == 2

        for tid in ids:
            r = c.get(
                f"{API}/galleries/{GALLERY}/templates/{tid}/image", headers=dep.headers("reviewer")
            )
            assert r.status_code == 404
        with dep.ws.db.connect() as conn:
            left = conn.execute(
                sa.select(sa.func.count())
                .select_from(enrolled_images)
                .where(enrolled_images.c.template_id.in_(ids))
            ).scalar()
        assert left == 0
        check = c.get(
            f"{API}/erasures/{receipt['receipt_seq']}", headers=dep.headers("auditor")
        ).json()
        assert check["ok"] is True and check["enrolled_images_still_held"] == []

        # no search returns the erased subject
        r = _search(c, dep, london["001_smiling"])
        subjects = [x["subject"] for f in r.json()["faces"] for x in f["candidates"]]
        assert "001" not in subjects
        # the other subject's image is still there
        other = c.get(
            f"{API}/galleries/{GALLERY}/subjects/002", headers=dep.headers("reviewer")
        ).json()
        assert other["templates"][0]["image_kept"] is True


def test_given_pages_when_followed_then_every_item_is_seen_once(
    live: Live, deployment: Deployment, london: dict[str, bytes]
) -> None:
    dep = deployment
    with live.client() as c:
        stems = [f"{i:03d}_neutral" for i in range(1, 6)]
        assert _enrol_bulk(c, dep, london, stems).json()["enrolled"] == 5
        seen: list[str] = []
        cursor = None
        for _ in range(10):
            params: dict[str, str | int] = {"limit": 2}
            if cursor:
                params["cursor"] = cursor
            page = c.get(
                f"{API}/galleries/{GALLERY}/subjects",
                params=params,
                headers=dep.headers("reviewer"),
            ).json()
            seen += [s["external_id"] for s in page["items"]]
            cursor = page["next_cursor"]
            if cursor is None:
                break
        assert seen == ["001", "002", "003", "004", "005"]

        seqs: list[int] = []
        cursor = None
        for _ in range(100):
            params = {"limit": 3}
            if cursor:
                params["cursor"] = cursor
            page = c.get(f"{API}/audit/entries", params=params, headers=dep.headers("auditor"))
            seqs += [e["seq"] for e in page.json()["items"]]
            cursor = page.json()["next_cursor"]
            if cursor is None:
                break
        head = c.get(f"{API}/audit/head", headers=dep.headers("auditor")).json()
        assert seqs == list(range(1, head["seq"] + 1))

        bad = c.get(
            f"{API}/galleries/{GALLERY}/subjects",
            params={"cursor": "99999999999999999999999"},
            headers=dep.headers("reviewer"),
        )
        assert bad.status_code == 400 and bad.json()["code"] == "invalid_argument"


def test_given_two_images_when_verified_then_decision_has_fmr_and_is_audited(
    live: Live, deployment: Deployment, london: dict[str, bytes]
) -> None:
    dep = deployment
    with live.client() as c:
        same = c.post(
            f"{API}/verify",
            files={
                "image_a": _jpeg("a", london["003_neutral"]),
                "image_b": _jpeg("b", london["003_smiling"]),
            },
            data={"fmr": "0.001", **WHY},
            headers=dep.headers("searcher"),
        )
        assert same.status_code == 200, same.text
        other = c.post(
            f"{API}/verify",
            files={
                "image_a": _jpeg("a", london["003_neutral"]),
                "image_b": _jpeg("b", london["004_neutral"]),
            },
            data=WHY,
            headers=dep.headers("searcher"),
        )
        assert same.json()["decision"]["outcome"] == "match"
        assert other.json()["decision"]["outcome"] == "no_match"
        assert same.json()["decision"]["fmr"]["value"] < other.json()["decision"]["fmr"]["value"]
        entry = c.get(
            f"{API}/audit/entries/{same.json()['audit_seq']}", headers=dep.headers("auditor")
        ).json()
        assert entry["operation"] == "verify" and entry["actor"] == "searcher"

        # 1:1 against an enrolled subject
        assert _enrol_bulk(c, dep, london, ["003_neutral"]).json()["enrolled"] == 1
        r = c.post(
            f"{API}/galleries/{GALLERY}/subjects/003/verify",
            files={"image": _jpeg("p", london["003_smiling"])},
            data=WHY,
            headers=dep.headers("searcher"),
        )
        assert r.status_code == 200, r.text
        assert r.json()["decision"]["outcome"] == "match"

        # detection reports every face with its quality
        r = c.post(
            f"{API}/detect",
            files={"image": _jpeg("d", london["004_smiling"])},
            headers=dep.headers("reviewer"),
        )
        assert r.status_code == 200
        (found,) = r.json()["faces"]
        assert found["quality"]["score"] > 50 and r.json()["width"] == 600


def test_given_gallery_listing_then_users_see_only_galleries_they_hold_grants_on(
    live: Live, deployment: Deployment
) -> None:
    dep = deployment
    with live.client() as c:
        r = c.post(
            f"{API}/galleries",
            json={"name": "second", "legal_basis": "statute", "retention_days": 30},
            headers=dep.headers("admin"),
        )
        assert r.status_code == 201
        names = {
            who: [
                g["name"]
                for g in c.get(f"{API}/galleries", headers=dep.headers(who)).json()["items"]
            ]
            for who in ("admin", "searcher", "auditor")
        }
        assert names == {"admin": ["second", GALLERY], "searcher": [GALLERY], "auditor": []}
        r = c.get(f"{API}/galleries/second", headers=dep.headers("searcher"))
        assert r.status_code == 403
        created = c.get(
            f"{API}/audit/entries",
            params={"operation": "gallery_create"},
            headers=dep.headers("auditor"),
        ).json()["items"]
        assert [e["galleries"] for e in created] == [[GALLERY], ["second"]]


@pytest.mark.slow
def test_given_gallery_of_cohort_size_when_searched_then_scores_say_they_are_normalised(
    deployment: Deployment, london_templates: TemplateSet, london: dict[str, bytes]
) -> None:
    """Every London image but the probe (203 templates, above the calibration's smallest
    normalised gallery of 200) is stored from the session's real templates: the search
    normalises, and the answer keeps the normalised score apart from the cosine behind it."""
    dep = deployment
    g = dep.ws.store.get_gallery_by_name(GALLERY)
    ids: dict[str, int] = {}
    news = []
    for path, subj, vec in zip(
        london_templates.paths, london_templates.subjects, london_templates.vectors, strict=True
    ):
        if Path(path).stem == "001_smiling":
            continue
        if subj not in ids:
            ids[subj] = dep.ws.store.add_subject(g.id, subj, enrolled_by="enroller").id
        sha = hashlib.sha256(Path(path).read_bytes()).hexdigest()
        news.append(NewTemplate(ids[subj], sha, Template("dlib-resnet-v1", vec)))
    dep.ws.store.add_templates(news)
    assert len(news) >= 200
    with serve(dep) as live, live.client() as c:
        r = _search(c, dep, london["001_smiling"])
        assert r.status_code == 200, r.text
        result = r.json()
        (face,) = result["faces"]
        n = result["templates_searched"]
        assert n == len(news)
        assert face["normalisation"] == "asnorm"
        fpir = result["target_fpir"]
        assert face["comparison_fmr"] == pytest.approx(1 - (1 - fpir) ** (1 / n), rel=1e-9)
        top = face["candidates"][0]
        assert top["subject"] == "001"
        # the tail model is used exactly when the rate is below ten measured impostor pairs
        measured = 10 / top["fmr"]["impostor_pairs"]
        assert face["threshold_extrapolated"] is (face["comparison_fmr"] < measured)
        # a normalised score is not a cosine: a mate stands several spreads above the cohort
        assert -1.0 <= top["similarity"] <= 1.0
        assert top["score"] > 1.0 and abs(top["score"] - top["similarity"]) > 0.1
        for cand in face["candidates"]:
            assert -1.0 <= cand["similarity"] <= 1.0
            assert cand["score"] >= face["threshold"]
            assert cand["fpir"] == pytest.approx(1 - (1 - cand["fmr"]["value"]) ** n, rel=1e-6)

        # the searcher's view (a reviewer sees no score before their blind first look)
        rec = c.get(f"{API}/searches/{result['search_id']}", headers=dep.headers("searcher"))
        assert rec.json()["normalisation"] == "asnorm"
        assert rec.json()["leads"][0]["score"] == top["score"]
        entry = c.get(
            f"{API}/audit/entries/{result['audit_seq']}", headers=dep.headers("auditor")
        ).json()
        assert entry["details"]["normalisation"] == "asnorm"


def test_given_subject_ids_with_slashes_then_every_subject_route_reaches_them(
    live: Live, deployment: Deployment, london: dict[str, bytes]
) -> None:
    dep = deployment
    base = f"{API}/galleries/{GALLERY}/subjects"
    sid, encoded = "case/7/a", quote("case/7/a", safe="")
    with live.client() as c:
        # enrol as the web UI addresses it (%2F) ...
        r = c.post(
            f"{base}/{encoded}/images",
            files={"image": _jpeg("a", london["006_neutral"])},
            headers=dep.headers("enroller"),
        )
        assert r.status_code == 201, r.text
        assert r.json()["subject"] == sid
        # ... and with the slashes as they are; an id ending in a route's own word too
        r = c.post(
            f"{base}/x/images/images",
            files={"image": _jpeg("b", london["007_neutral"])},
            headers=dep.headers("enroller"),
        )
        assert r.status_code == 201, r.text
        assert r.json()["subject"] == "x/images"

        for path in (f"{base}/{sid}", f"{base}/{encoded}"):
            detail = c.get(path, headers=dep.headers("reviewer"))
            assert detail.status_code == 200, detail.text
            assert detail.json()["external_id"] == sid and len(detail.json()["templates"]) == 1
        other = c.get(f"{base}/x/images", headers=dep.headers("reviewer")).json()
        assert other["external_id"] == "x/images"
        assert c.get(f"{base}/case/7", headers=dep.headers("reviewer")).status_code == 404
        listed = c.get(base, headers=dep.headers("reviewer")).json()["items"]
        assert sorted(x["external_id"] for x in listed) == [sid, "x/images"]
        export = c.get(f"{base}/{sid}/export", headers=dep.headers("reviewer"))
        assert export.status_code == 200 and export.json()["subject"]["external_id"] == sid

        r = c.post(
            f"{base}/{sid}/verify",
            files={"image": _jpeg("p", london["006_smiling"])},
            data=WHY,
            headers=dep.headers("searcher"),
        )
        assert r.status_code == 200, r.text
        assert r.json()["subject"] == sid and r.json()["decision"]["outcome"] == "match"
        r = _search(c, dep, london["006_smiling"])
        assert r.json()["faces"][0]["candidates"][0]["subject"] == sid

        r = c.delete(
            f"{base}/{encoded}", params={"reason": "asked"}, headers=dep.headers("enroller")
        )
        assert r.status_code == 200, r.text
        assert r.json()["subject"] == sid
        assert c.get(f"{base}/{sid}", headers=dep.headers("reviewer")).status_code == 404
        assert c.get(f"{base}/x/images", headers=dep.headers("reviewer")).status_code == 200
        check = c.get(
            f"{API}/erasures/{r.json()['receipt_seq']}", headers=dep.headers("auditor")
        ).json()
        assert check["ok"] is True

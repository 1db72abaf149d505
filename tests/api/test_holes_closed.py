"""Regression tests of issue #19's items on the real service (a live loopback server, real
images): the numbers are the issue's items."""

from __future__ import annotations

from pathlib import Path

from faceledger.api import ServiceOptions
from tests.api.live import GALLERY, Deployment, Live, serve
from tests.api.test_flow import API, _enrol_bulk, _jpeg, _search

WITHOUT = ({}, {"purpose": "check"}, {"case_ref": "C-1"}, {"purpose": " ", "case_ref": "C"})
"""Forms without a purpose and a case reference."""


def test_3_every_audited_1_to_1_states_a_purpose(
    live: Live, deployment: Deployment, london: dict[str, bytes]
) -> None:
    dep = deployment
    with live.client() as c:
        assert _enrol_bulk(c, dep, london, ["003_neutral"]).json()["enrolled"] == 1
        before = dep.ws.audit.head().seq
        pair = {
            "image_a": _jpeg("a", london["003_neutral"]),
            "image_b": _jpeg("b", london["003_smiling"]),
        }
        for path, files in (
            ("/verify", pair),
            (
                f"/galleries/{GALLERY}/subjects/003/verify",
                {"image": _jpeg("p", london["003_smiling"])},
            ),
        ):
            for data in WITHOUT:
                r = c.post(API + path, files=files, data=data, headers=dep.headers("searcher"))
                assert r.status_code == 422 and r.json()["code"] == "purpose_required", r.text
        assert dep.ws.audit.head().seq == before  # nothing was compared, nothing audited
        r = c.post(
            API + "/verify",
            files=pair,
            data={"purpose": "identity check", "case_ref": "C-1"},
            headers=dep.headers("searcher"),
        )
        assert r.status_code == 200
        entry = dep.ws.audit.get(r.json()["audit_seq"])
        assert (entry.record.purpose, entry.record.case_ref) == ("identity check", "C-1")


def test_7_a_gallery_name_the_service_cannot_address_is_refused(
    live: Live, deployment: Deployment
) -> None:
    with live.client() as c:
        for name in ("a/b", "a\u202eb", "x" * 101):
            r = c.post(
                f"{API}/galleries",
                json={"name": name, "legal_basis": "consent"},
                headers=deployment.headers("admin"),
            )
            assert r.status_code == 422, r.text
        r = c.post(
            f"{API}/galleries",
            json={"name": "big", "legal_basis": "consent", "retention_days": 3_000_000},
            headers=deployment.headers("admin"),
        )
        assert r.status_code == 422


def test_8_the_review_queue_pages_through_every_search(
    deployment: Deployment, london: dict[str, bytes]
) -> None:
    dep = deployment
    with serve(dep, ServiceOptions(keep_probes=False)) as live, live.client() as c:
        _enrol_bulk(c, dep, london, ["001_neutral", "002_neutral", "003_neutral"])
        ids = []
        for stem in ("001_smiling", "002_smiling", "003_smiling", "001_smiling", "002_smiling"):
            r = _search(c, dep, london[stem])
            assert r.json()["faces"][0]["outcome"] == "candidates"
            ids.append(r.json()["search_id"])
        seen: list[str] = []
        cursor = None
        while True:
            params = {"limit": 2, **({"cursor": cursor} if cursor else {})}
            page = c.get(
                f"{API}/reviews/queue", params=params, headers=dep.headers("reviewer")
            ).json()
            assert len(page["items"]) <= 2
            seen += [x["search_id"] for x in page["items"]]
            cursor = page["next_cursor"]
            if cursor is None:
                break
        assert seen == ids  # oldest first, each once, none lost past the first page


def test_10_accounts_searches_and_methods(
    live: Live, deployment: Deployment, london: dict[str, bytes]
) -> None:
    dep = deployment
    admin = dep.user("admin")
    dep.ws.access.create_user("other", ["searcher"], by=admin)
    dep.ws.access.grant("other", GALLERY, "search", by=admin)
    other = dep.ws.access.issue_api_key("other", by=admin).token
    with live.client() as c:
        h = dep.headers("admin")
        r = c.post(f"{API}/users/admin/deactivate", headers=h)
        assert r.status_code == 403 and dep.user("admin").active
        assert c.post(f"{API}/users/searcher/deactivate", headers=h).status_code == 200
        assert c.get(f"{API}/me", headers=dep.headers("searcher")).status_code in (401, 403)
        assert c.post(f"{API}/users/searcher/reactivate", headers=h).json()["active"] is True
        assert c.get(f"{API}/me", headers=dep.headers("searcher")).status_code == 200

        _enrol_bulk(c, dep, london, ["001_neutral"])
        sid = _search(c, dep, london["001_smiling"]).json()["search_id"]
        mine = c.get(f"{API}/searches/{sid}", headers=dep.headers("searcher"))
        assert mine.status_code == 200
        theirs = c.get(f"{API}/searches/{sid}", headers={"Authorization": f"Bearer {other}"})
        assert theirs.status_code == 403  # a searcher sees only their own searches
        assert c.get(f"{API}/searches/{sid}", headers=dep.headers("reviewer")).status_code == 200

        r = c.put(f"{API}/galleries/{GALLERY}", headers=h)
        assert r.status_code == 405
        assert set(r.headers["allow"].split(", ")) == {"DELETE", "GET", "HEAD"}


def test_14_answers_say_which_face_was_used_and_how_many_others(
    live: Live, deployment: Deployment, london: dict[str, bytes], data_dir: Path
) -> None:
    dep = deployment
    two = (data_dir / "fr_examples/two_people.jpg").read_bytes()
    with live.client() as c:
        found = c.post(
            f"{API}/detect", files={"image": _jpeg("two", two)}, headers=dep.headers("searcher")
        ).json()["faces"]
        assert len(found) == 2
        assert [f["face_index"] for f in found] == [0, 1]
        assert {(f["faces_in_image"], f["selection"]) for f in found} == {(2, None)}
        r = c.post(
            f"{API}/verify",
            files={"image_a": _jpeg("a", two), "image_b": _jpeg("b", london["001_neutral"])},
            data={"purpose": "identity check", "case_ref": "C-14"},
            headers=dep.headers("searcher"),
        )
        assert r.status_code == 200, r.text
        a, b = r.json()["faces"]
        assert (a["faces_in_image"], a["selection"]) == (2, "primary")
        assert a["face_index"] in (0, 1) and (b["faces_in_image"], b["face_index"]) == (1, 0)
        entry = dep.ws.audit.get(r.json()["audit_seq"])
        assert entry.record.details["faces_in_probe"] == 2

        _enrol_bulk(c, dep, london, ["001_neutral"])
        one = _search(c, dep, two).json()["faces"]
        assert len(one) == 1 and one[0]["face"]["faces_in_image"] == 2
        assert one[0]["face"]["selection"] == "primary"
        every = _search(c, dep, two, all_faces="true").json()["faces"]
        assert [f["face"]["face_index"] for f in every] == [0, 1]
        assert {f["face"]["selection"] for f in every} == {None}


def test_2_account_names_have_one_spelling(live: Live, deployment: Deployment) -> None:
    h = deployment.headers("admin")
    with live.client() as c:
        r = c.post(f"{API}/users", json={"id": "Main", "roles": ["reviewer"]}, headers=h)
        assert r.status_code == 201 and r.json()["id"] == "main", r.text
        for twin in ("MAIN", "main", "REVIEWER"):
            r = c.post(f"{API}/users", json={"id": twin, "roles": ["reviewer"]}, headers=h)
            assert r.status_code == 409, (twin, r.text)
        for bad in ("ma\u200bin", "a\u202eb", "m\u0430in"):
            r = c.post(f"{API}/users", json={"id": bad, "roles": ["reviewer"]}, headers=h)
            assert r.status_code == 422, (bad, r.text)


def test_13_one_face_under_two_subject_ids_is_reported(
    live: Live, deployment: Deployment, london: dict[str, bytes]
) -> None:
    dep = deployment
    with live.client() as c:
        assert _enrol_bulk(c, dep, london, ["001_neutral"]).json()["enrolled"] == 1
        r = c.post(
            f"{API}/galleries/{GALLERY}/subjects/P-7/images",
            files={"image": _jpeg("p7", london["001_smiling"])},
            headers=dep.headers("enroller"),
        )
        assert r.status_code == 201, r.text
        (dup,) = r.json()["near_duplicates"]
        assert dup["other_subject"] == "001" and dup["fmr"] <= 1e-5
        r = c.post(
            f"{API}/galleries/{GALLERY}/enrolments",
            files=[
                ("images", _jpeg("a", london["002_neutral"])),
                ("images", _jpeg("b", london["002_smiling"])),
            ],
            data={"subjects": ["002", "Q-2"]},
            headers=dep.headers("enroller"),
        )
        items = r.json()["items"]
        assert [i["status"] for i in items] == ["enrolled", "enrolled"]
        assert items[0]["detail"] is None and "subject 002" in items[1]["detail"]

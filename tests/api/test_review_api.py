"""The examiner's endpoints over HTTP: the searcher picks faces of a two-person photo (from
``/detect``) and each lead says its face; a reviewer's queue filters; blind leads carry no
score until the reviewer's first look."""

from __future__ import annotations

import io

from PIL import Image

from tests.api.live import GALLERY, Deployment, Live

API = "/api/v1"


def _pair(london: dict[str, bytes]) -> bytes:
    left, right = (
        Image.open(io.BytesIO(london[f"{sid}_smiling"])).convert("RGB") for sid in ("030", "008")
    )
    pair = Image.new("RGB", (left.width + right.width, max(left.height, right.height)))
    pair.paste(left, (0, 0))
    pair.paste(right, (left.width, 0))
    out = io.BytesIO()
    pair.save(out, format="JPEG", quality=92)
    return out.getvalue()


def test_picked_faces_blind_leads_and_queue_filters(
    live: Live, deployment: Deployment, london: dict[str, bytes]
) -> None:
    dep = deployment
    pair = _pair(london)
    with live.client() as c:
        r = c.post(
            f"{API}/galleries/{GALLERY}/enrolments",
            files=[
                ("images", (f"{s}.jpg", london[f"{s}_neutral"], "image/jpeg")) for s in ("008",)
            ],
            data={"subjects": ["008"]},
            headers=dep.headers("enroller"),
        )
        assert r.status_code in (200, 201), r.text
        faces = c.post(
            f"{API}/detect",
            files={"image": ("pair.jpg", pair, "image/jpeg")},
            headers=dep.headers("searcher"),
        ).json()["faces"]
        assert len(faces) == 2
        right = max(faces, key=lambda f: f["box"]["left"])["face_index"]
        left = min(faces, key=lambda f: f["box"]["left"])["face_index"]

        def search(picked: list[int]) -> dict[str, object]:
            r = c.post(
                f"{API}/search",
                files={"image": ("pair.jpg", pair, "image/jpeg")},
                data={
                    "galleries": [GALLERY],
                    "purpose": "robbery",
                    "case_ref": "R-7",
                    "faces": picked,
                },
                headers=dep.headers("searcher"),
            )
            assert r.status_code == 200, r.text
            out: dict[str, object] = r.json()
            return out

        only_left = search([left])
        faces_out = only_left["faces"]
        assert isinstance(faces_out, list) and len(faces_out) == 1
        assert faces_out[0]["face"]["face_index"] == left and not faces_out[0]["candidates"]
        found = search([left, right])
        sid = found["search_id"]
        r = c.post(
            f"{API}/search",
            files={"image": ("pair.jpg", pair, "image/jpeg")},
            data={"galleries": [GALLERY], "purpose": "p", "case_ref": "c", "faces": [9]},
            headers=dep.headers("searcher"),
        )
        assert r.status_code == 400 and r.json()["code"] == "invalid_argument"

        rec = c.get(f"{API}/searches/{sid}", headers=dep.headers("reviewer")).json()
        (lead,) = rec["leads"]
        assert lead["face_index"] == right and lead["subject"] == "008"
        assert lead["blind"] and lead["score"] is None and lead["status"] is None
        queue = c.get(
            f"{API}/reviews/queue", params={"gallery": GALLERY}, headers=dep.headers("reviewer")
        ).json()["items"]
        assert sid in [q["search_id"] for q in queue]
        assert all(x["score"] is None for q in queue for x in q["leads"])
        none = c.get(
            f"{API}/reviews/queue",
            params={"until": "2000-01-01T00:00:00Z"},
            headers=dep.headers("reviewer"),
        ).json()["items"]
        assert none == []
        r = c.get(
            f"{API}/reviews/queue", params={"since": "2000-01-01"}, headers=dep.headers("reviewer")
        )
        assert r.status_code == 422  # a time without a zone is ambiguous
        r = c.post(
            f"{API}/searches/{sid}/leads/1/first-look",
            json={"judgement": "same"},
            headers=dep.headers("reviewer"),
        )
        assert r.status_code == 201 and r.json()["score"] is not None
        assert r.json()["first_looks"][0]["judgement"] == "same"

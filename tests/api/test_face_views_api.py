"""Aligned crops over HTTP: a search's probe face beside the lead's enrolled face, both PNGs
at the model's input size, the landmarks in ``X-Landmarks``."""

from __future__ import annotations

import io

from PIL import Image

from tests.api.live import GALLERY, Deployment, Live

API = "/api/v1"


def _landmarks(header: str) -> list[tuple[float, float]]:
    return [(float(x), float(y)) for x, y in (p.split(",") for p in header.split(";"))]


def test_probe_face_and_lead_are_served_as_aligned_pngs(
    deployment: Deployment, live: Live, london: dict[str, bytes]
) -> None:
    dep = deployment
    size = dep.ws.engine.card.align.size
    with live.client() as c:
        r = c.post(
            f"{API}/galleries/{GALLERY}/subjects/001/images",
            files={"image": ("1.jpg", london["001_neutral"], "image/jpeg")},
            headers=dep.headers("enroller"),
        )
        assert r.status_code == 201, r.text
        r = c.post(
            f"{API}/search",
            files={"image": ("p.jpg", london["001_smiling"], "image/jpeg")},
            data={"galleries": [GALLERY], "purpose": "review ui", "case_ref": "FV-2"},
            headers=dep.headers("searcher"),
        )
        assert r.status_code == 200, r.text
        found = r.json()
        lead = found["faces"][0]["candidates"][0]
        face_index = found["faces"][0]["face"]["face_index"]
        urls = (
            f"{API}/searches/{found['search_id']}/probe/faces/{face_index}/aligned",
            f"{API}/galleries/{GALLERY}/templates/{lead['template_id']}/aligned",
        )
        for url in urls:
            r = c.get(url, headers=dep.headers("reviewer"))
            assert r.status_code == 200, r.text
            assert r.headers["content-type"] == "image/png"
            assert r.headers["cache-control"] == "no-store"
            assert len(r.headers["x-image-sha256"]) == 64
            with Image.open(io.BytesIO(r.content)) as im:
                assert im.size == (size, size)
            points = _landmarks(r.headers["x-landmarks"])
            reference = dep.ws.engine.card.align.reference
            assert len(points) == 5
            assert all(
                abs(x - rx) < 8 and abs(y - ry) < 8
                for (x, y), (rx, ry) in zip(points, reference, strict=True)
            )
        r = c.get(urls[0], params={"size": 300}, headers=dep.headers("reviewer"))
        with Image.open(io.BytesIO(r.content)) as im:
            assert im.size == (300, 300)
        assert (
            c.get(urls[0], params={"size": 5000}, headers=dep.headers("reviewer")).status_code
            == 422
        )
        assert c.get(urls[1], headers=dep.headers("searcher")).status_code == 403
        missing = f"{API}/searches/{found['search_id']}/probe/faces/9/aligned"
        assert c.get(missing, headers=dep.headers("reviewer")).status_code == 404

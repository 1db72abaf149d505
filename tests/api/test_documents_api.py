"""``POST /documents/read`` and ``POST /documents/check`` on a live service: synthetic TD3
passports rendered around London portraits (``faceledger.document.synth``), read by the real
Tesseract, compared by the real model. What each check decides, what its audit entry holds
(the document number only as a keyed hash, no names), and the typed errors of bad inputs."""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from faceledger.api.concurrency import SerialEngine
from faceledger.document.mrz import UNCHECKED_FIELDS, MrzFormat
from faceledger.usecases import document_number_hmac
from tests.api.live import Deployment, Live, deploy, serve
from tests.api.synthetic_documents import (
    EXPIRED_HOLDER,
    HOLDER,
    Document,
    passport,
    side_by_side,
)

API = "/api/v1"
MAX_IMAGE_BYTES = 2_500_000
"""The deployment's image limit: the rendered documents are 0.2-1.2 MB."""


@dataclass
class Site:
    dep: Deployment
    live: Live
    http: httpx.Client
    london: dict[str, bytes]
    docs: dict[str, Document]

    def read(self, image: bytes, who: str = "searcher") -> httpx.Response:
        return self.http.post(
            f"{API}/documents/read",
            files={"image": ("document.png", image, "image/png")},
            headers=self.dep.headers(who),
        )

    def check(
        self, document: bytes, live: bytes, who: str = "searcher", **form: Any
    ) -> httpx.Response:
        data = {"purpose": "border control", "case_ref": "GATE-7", **form}
        return self.http.post(
            f"{API}/documents/check",
            files={
                "document": ("document.png", document, "image/png"),
                "live": ("live.jpg", live, "image/jpeg"),
            },
            data={k: v for k, v in data.items() if v is not None},
            headers=self.dep.headers(who),
        )


@pytest.fixture(scope="module")
def site(
    tmp_path_factory: pytest.TempPathFactory,
    serial_engine: SerialEngine,
    london: dict[str, bytes],
    data_dir: Path,
) -> Iterator[Site]:
    images = data_dir / "london" / "images"
    docs = {
        "td3": passport(images, "001"),
        "broken": passport(images, "001", break_check="document_number"),
        "small": passport(images, "001", px_per_mm=5.0),
        "expired": passport(images, "003", EXPIRED_HOLDER),
    }
    dep = deploy(
        tmp_path_factory.mktemp("documents") / "ws", serial_engine, max_image_bytes=MAX_IMAGE_BYTES
    )
    with serve(dep) as live, live.client() as http:
        yield Site(dep, live, http, london, docs)
    dep.ws.close()


def _problem(r: httpx.Response, status: int, code: str) -> dict[str, Any]:
    assert r.status_code == status, r.text
    assert r.headers["content-type"].startswith("application/problem+json")
    body: dict[str, Any] = r.json()
    assert body["code"] == code, body
    return body


# -- read -------------------------------------------------------------------------------------


def test_read_gives_the_printed_fields_every_check_and_the_portrait(site: Site) -> None:
    truth = site.docs["td3"].rendered
    r = site.read(site.docs["td3"].png)
    assert r.status_code == 200, r.text
    body = r.json()
    mrz = body["mrz"]
    assert mrz["format"] == "TD3" and mrz["valid"] is True and mrz["expired"] is False
    assert mrz["lines"] == list(truth.lines)
    fields = mrz["fields"]
    assert {k: fields[k] for k in dataclasses.asdict(HOLDER)} == dataclasses.asdict(HOLDER)
    assert fields["birth_date_iso"] == "1974-08-12"
    assert fields["expiry_date_iso"] == "2034-04-15"
    names = [c["name"] for c in mrz["checks"]]
    assert names == ["document_number", "birth_date", "expiry_date", "personal_number", "composite"]
    assert all(c["ok"] and c["expected"] for c in mrz["checks"])
    assert mrz["unchecked_fields"] == sorted(UNCHECKED_FIELDS[MrzFormat.TD3])
    portrait = body["portrait"]
    assert portrait["faces_on_document"] >= 1 and portrait["small"] is False
    assert portrait["quality"]["inter_eye_px"] >= 60
    assert len(body["image_sha256"]) == 64


def test_read_refuses_what_is_not_one_document(site: Site) -> None:
    _problem(site.read(b"this is not an image"), 400, "bad_image")
    _problem(site.read(site.london["001_neutral"]), 422, "no_mrz")
    two = side_by_side(site.docs["td3"].rendered, site.docs["expired"].rendered)
    _problem(site.read(two), 422, "ambiguous_mrz")
    _problem(site.read(os.urandom(MAX_IMAGE_BYTES + 1)), 413, "too_large")


def test_read_is_neither_stored_nor_audited(site: Site) -> None:
    before = site.dep.ws.audit.head()
    assert site.read(site.docs["td3"].png).status_code == 200
    assert site.dep.ws.audit.head() == before


# -- check ------------------------------------------------------------------------------------


def test_same_person_passes_and_the_audit_entry_keeps_no_number_or_name(site: Site) -> None:
    r = site.check(site.docs["td3"].png, site.london["001_smiling"])
    assert r.status_code == 200, r.text
    body = r.json()
    # the portrait printed at 10 px/mm has ~70 px between the eyes: not "small"
    assert body["decision"] == "pass" and body["reasons"] == ["match"], body
    assert body["portrait"]["small"] is False and body["portrait"]["notes"] == []
    assert body["mrz"]["valid"] is True and body["mrz_error"] is None
    comparison = body["comparison"]
    assert comparison["outcome"] == "match"
    assert comparison["score"] >= comparison["threshold"]
    assert comparison["fmr"] <= comparison["target_fmr"] == site.dep.settings.default_fmr
    assert isinstance(comparison["fmr_upper_bound"], bool)
    assert body["live"]["quality"]["passes"] is True

    entry = site.http.get(
        f"{API}/audit/entries/{body['audit_seq']}", headers=site.dep.headers("auditor")
    ).json()
    assert entry["operation"] == "document_check" and entry["actor"] == "searcher"
    assert (entry["purpose"], entry["case_ref"]) == ("border control", "GATE-7")
    assert entry["probe_sha256"] == body["live_sha256"]
    details = entry["details"]
    assert details["decision"] == "pass" and details["reasons"] == ["match"]
    assert details["document_sha256"] == body["document_sha256"]
    expected_hmac = document_number_hmac(site.dep.ws, "UTO", HOLDER.document_number)
    assert details["mrz"]["document_number_hmac"] == expected_hmac
    assert "document_number" not in details["mrz"]
    text = str(entry)
    for secret in (HOLDER.document_number, HOLDER.surname, "ANNA", "MARIA", "740812"):
        assert secret not in text, secret


def test_nothing_of_the_document_is_kept_in_the_workspace(site: Site) -> None:
    assert site.check(site.docs["td3"].png, site.london["001_smiling"]).status_code == 200
    for path in site.dep.settings.data_dir.rglob("*"):
        if path.is_file():
            data = path.read_bytes()
            for secret in (b"L898902C3", b"ERIKSSON", b"MUSTERMANN"):
                assert secret not in data, (path, secret)


def test_another_person_is_no_match(site: Site) -> None:
    body = site.check(site.docs["td3"].png, site.london["002_smiling"]).json()
    assert body["decision"] == "refer" and body["reasons"] == ["no_match"], body
    assert body["comparison"]["outcome"] == "no_match"
    assert body["comparison"]["score"] < body["comparison"]["threshold"]


def test_an_expired_document_is_referred(site: Site) -> None:
    body = site.check(site.docs["expired"].png, site.london["003_smiling"]).json()
    assert body["decision"] == "refer" and body["reasons"] == ["expired", "match"], body
    assert body["mrz"]["valid"] is True and body["mrz"]["expired"] is True
    assert body["mrz"]["fields"]["expiry_date_iso"] == "2020-01-01"


def test_a_broken_check_digit_is_mrz_invalid(site: Site) -> None:
    body = site.check(site.docs["broken"].png, site.london["001_smiling"]).json()
    assert body["decision"] == "refer" and body["reasons"] == ["mrz_invalid", "match"], body
    assert body["mrz"]["valid"] is False
    assert [c["name"] for c in body["mrz"]["checks"] if not c["ok"]] == ["document_number"]
    entry = site.http.get(
        f"{API}/audit/entries/{body['audit_seq']}", headers=site.dep.headers("auditor")
    ).json()
    assert entry["details"]["mrz"]["failed_checks"] == ["document_number"]


def test_a_small_portrait_is_low_quality_even_when_it_matches(site: Site) -> None:
    body = site.check(site.docs["small"].png, site.london["001_smiling"]).json()
    assert body["decision"] == "refer" and body["reasons"] == ["low_quality", "match"], body
    assert body["portrait"]["small"] is True
    assert body["portrait"]["quality"]["inter_eye_px"] < 60
    assert "false non-match rate" in body["portrait"]["notes"][0]


def test_a_document_without_mrz_is_still_compared(site: Site) -> None:
    body = site.check(site.london["001_neutral"], site.london["001_smiling"]).json()
    assert body["reasons"] == ["mrz_invalid", "match"], body
    assert body["mrz"] is None and body["mrz_error"] == "no_mrz"


def test_check_refuses_bad_requests(site: Site) -> None:
    doc, face = site.docs["td3"].png, site.london["001_smiling"]
    before = site.dep.ws.audit.head()
    _problem(site.check(doc, face, purpose=None), 422, "purpose_required")
    _problem(site.check(doc, face, case_ref=" "), 422, "purpose_required")
    _problem(site.check(doc, face, who="reviewer"), 403, "permission_denied")
    _problem(site.check(b"not an image", face), 400, "bad_image")
    _problem(site.check(doc, os.urandom(MAX_IMAGE_BYTES + 1)), 413, "too_large")
    two = side_by_side(site.docs["td3"].rendered, site.docs["expired"].rendered)
    _problem(site.check(two, face), 422, "ambiguous_mrz")
    r = site.http.post(
        f"{API}/documents/check",
        files={"document": ("d.png", doc, "image/png")},
        data={"purpose": "p", "case_ref": "c"},
        headers=site.dep.headers("searcher"),
    )
    assert r.status_code == 422, r.text  # no live photo
    _problem(site.check(doc, face, fmr="2"), 422, "invalid_argument")
    assert site.dep.ws.audit.head() == before  # refused checks write nothing

"""The command line and the service call the same use cases: each use case is run once from
the CLI (in process, as ``faceledger ...`` would run it) and once over HTTP on a live server,
on two workspaces prepared alike, and what they answer and what they write to the audit log
must agree (``faceledger.usecases``)."""

from __future__ import annotations

import json
import re
import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from typer.testing import CliRunner

from faceledger.api.concurrency import SerialEngine
from faceledger.cli.app import app
from faceledger.config import Settings
from faceledger.gallery import open_workspace
from tests.api.live import GALLERY, Deployment, deploy, serve

API = "/api/v1"
KEEP = {"FACELEDGER_KEEP_ENROLLED_IMAGES": "1", "FACELEDGER_KEEP_PROBE_IMAGES": "1"}
"""The service keeps enrolled and probe images by default; the CLI is told to do the same."""


@dataclass
class Both:
    """One CLI workspace and one served workspace, prepared alike by ``deploy``."""

    cli_dir: Path
    cli_keys: dict[str, str]
    api: Deployment
    http: httpx.Client
    images: Path

    def cli(self, who: str, *args: str) -> str:
        """``faceledger`` as the account ``who`` (its key in FACELEDGER_API_KEY), as the
        service acts for a request carrying that key."""
        result = CliRunner().invoke(
            app,
            ["--data-dir", str(self.cli_dir), "--operator", who, *args],
            env={**KEEP, "FACELEDGER_API_KEY": self.cli_keys[who]},
        )
        assert result.exit_code == 0, result.output
        return result.stdout

    def cli_json(self, who: str, *args: str) -> Any:
        return self.cli_data(who, *args, "--json")

    def cli_data(self, who: str, *args: str) -> Any:
        return json.loads(self.cli(who, *args))

    def call(self, who: str, method: str, path: str, **kw: Any) -> Any:
        r = self.http.request(method, API + path, headers=self.api.headers(who), **kw)
        assert r.status_code < 300, r.text
        return r.json() if r.content else None

    def image(self, stem: str) -> Path:
        return self.images / f"{stem}.jpg"

    def upload(self, stem: str) -> tuple[str, bytes, str]:
        return (f"{stem}.jpg", self.image(stem).read_bytes(), "image/jpeg")


@pytest.fixture
def both(tmp_path: Path, serial_engine: SerialEngine, data_dir: Path) -> Iterator[Both]:
    cli_dep = deploy(tmp_path / "cli", serial_engine)
    cli_dep.ws.close()
    api_dep = deploy(tmp_path / "api", serial_engine)
    try:
        with serve(api_dep) as live, live.client() as http:
            yield Both(
                tmp_path / "cli", cli_dep.tokens, api_dep, http, data_dir / "london" / "images"
            )
    finally:
        api_dep.ws.close()


def _candidates(face: dict[str, Any], fmr_key: str) -> list[tuple[Any, ...]]:
    return [
        (c["subject"], c["gallery"], round(c["score"], 5), c[fmr_key]["value"], c["fpir"])
        for c in face["candidates"]
    ]


def _face_outcome(face: dict[str, Any], fmr_key: str) -> tuple[Any, ...]:
    return (
        face["outcome"],
        round(face["threshold"], 6),
        face["threshold_source"],
        face["normalisation"],
        _candidates(face, fmr_key),
    )


def _audit_shape(settings: Settings, after: int) -> list[tuple[Any, ...]]:
    """What each audit entry past ``after`` records, without values that differ by nature
    (ids, hashes of chains, times)."""
    ws = open_workspace(settings)
    try:
        return [
            (
                e.record.operation,
                e.record.actor,
                e.record.purpose,
                e.record.case_ref,
                e.record.galleries,
                tuple(sorted(e.record.details)),
                len(e.record.candidates),
            )
            for e in ws.audit.entries(after_seq=after)
        ]
    finally:
        ws.close()


def test_every_use_case_answers_alike_from_the_cli_and_the_api(both: Both, tmp_path: Path) -> None:
    start = both.api.ws.audit.head().seq
    assert (
        _audit_shape(Settings(data_dir=both.cli_dir), 0)[:start]
        == _audit_shape(both.api.settings, 0)[:start]
    )

    # galleries: create, show, list
    both.cli(
        "admin", "gallery", "create", "g2", "--legal-basis", "consent", "--retention-days", "30"
    )
    both.call(
        "admin",
        "POST",
        "/galleries",
        json={"name": "g2", "legal_basis": "consent", "retention_days": 30},
    )
    shown = both.cli_json("admin", "gallery", "show", "g2")
    served = both.call("admin", "GET", "/galleries/g2")
    for key in ("name", "model_id", "legal_basis", "retention_days", "subjects", "templates"):
        assert shown[key] == served[key], key

    # enrolment: one image, then several at once
    both.cli("enroller", "enroll", GALLERY, str(both.image("001_neutral")), "--subject", "001")
    both.call(
        "enroller",
        "POST",
        f"/galleries/{GALLERY}/subjects/001/images",
        files={"image": both.upload("001_neutral")},
    )
    folder = tmp_path / "people"
    subjects = ["002", "003", "004", "005", "006"]
    for sid in subjects:
        (folder / sid).mkdir(parents=True)
        shutil.copy(both.image(f"{sid}_neutral"), folder / sid / f"{sid}_neutral.jpg")
    report = tmp_path / "report.json"
    both.cli("enroller", "enroll", GALLERY, str(folder), "--report", str(report))
    bulk = both.call(
        "enroller",
        "POST",
        f"/galleries/{GALLERY}/enrolments",
        files=[("images", both.upload(f"{sid}_neutral")) for sid in subjects],
        data={"subjects": subjects},
    )
    rep = json.loads(report.read_text())
    assert (
        (rep["enrolled"], rep["duplicates"], len(rep["rejected"]))
        == (
            bulk["enrolled"],
            bulk["duplicates"],
            bulk["rejected"],
        )
        == (5, 0, 0)
    )
    assert rep["own_fpir_searches"] == bulk["own_fpir_searches"]

    # 1:N search: a mated and a non-mated probe
    for stem in ("003_smiling", "070_smiling"):
        args = ("--gallery", GALLERY, "--purpose", "congruence", "--case", "C-1")
        cli = both.cli_json("searcher", "search", str(both.image(stem)), *args)
        api = both.call(
            "searcher",
            "POST",
            "/search",
            files={"image": both.upload(stem)},
            data={"galleries": [GALLERY], "purpose": "congruence", "case_ref": "C-1"},
        )
        assert cli["templates_searched"] == api["templates_searched"] == 6
        assert [_face_outcome(f, "estimated_fmr") for f in cli["faces"]] == [
            _face_outcome(f, "fmr") for f in api["faces"]
        ]
        if stem == "003_smiling":
            assert cli["faces"][0]["candidates"][0]["subject"] == "003"
            cli_search, api_search = cli["search_id"], api["search_id"]
        else:
            assert cli["faces"][0]["outcome"] == "no_candidate"

    # 1:1: two images, and an image against an enrolled subject
    pair = both.cli_json(
        "searcher",
        "verify",
        str(both.image("004_neutral")),
        str(both.image("004_smiling")),
        "--purpose",
        "congruence",
        "--case",
        "C-2",
    )
    served = both.call(
        "searcher",
        "POST",
        "/verify",
        files={"image_a": both.upload("004_neutral"), "image_b": both.upload("004_smiling")},
        data={"purpose": "congruence", "case_ref": "C-2"},
    )["decision"]
    assert (pair["outcome"], pair["score"], pair["threshold"]) == (
        served["outcome"],
        served["score"],
        served["threshold"],
    )
    one = both.cli_json(
        "searcher",
        "subject",
        "verify",
        GALLERY,
        "005",
        str(both.image("005_smiling")),
        "--purpose",
        "congruence",
        "--case",
        "C-3",
    )
    served = both.call(
        "searcher",
        "POST",
        f"/galleries/{GALLERY}/subjects/005/verify",
        files={"image": both.upload("005_smiling")},
        data={"purpose": "congruence", "case_ref": "C-3"},
    )
    assert (one["outcome"], one["score"], one["template_id"]) == (
        served["decision"]["outcome"],
        served["decision"]["score"],
        served["template_id"],
    )

    # review: the queue, then a verdict
    queue = both.cli_json("reviewer", "review", "list")
    served = both.call("reviewer", "GET", "/reviews/queue")["items"]
    assert [[(x["subject"], x["status"]) for x in q["leads"]] for q in queue] == [
        [(x["subject"], x["status"]) for x in q["leads"]] for q in served
    ]
    assert [q["search_id"] for q in queue] == [cli_search]
    both.cli("reviewer", "review", "look", cli_search, "1", "same")
    both.call(
        "reviewer",
        "POST",
        f"/searches/{api_search}/leads/1/first-look",
        json={"judgement": "same"},
    )
    out = both.cli("reviewer", "review", "decide", cli_search, "1", "confirmed", "--note", "same")
    lead = both.call(
        "reviewer",
        "POST",
        f"/searches/{api_search}/leads/1/decisions",
        json={"verdict": "confirmed", "note": "same"},
    )
    assert lead["status"] in out

    # subject access request
    exported = both.cli_data("reviewer", "subject", "export", GALLERY, "003")
    served = both.call("reviewer", "GET", f"/galleries/{GALLERY}/subjects/003/export")

    def held(d: dict[str, Any]) -> tuple[Any, ...]:
        return (
            [(t["image_sha256"], t["quality_score"]) for t in d["templates"]],
            len(d["enrolled_images_kept"]),
            len(d["appeared_in_searches"]),
        )

    assert held(exported) == held(served) == (held(served)[0], 1, 1)

    # erasure and its check
    out = both.cli("enroller", "subject", "delete", GALLERY, "006", "--reason", "request")
    found = re.search(r"receipt = audit entry (\d+)", out)
    assert found is not None, out
    erased = both.call(
        "enroller", "DELETE", f"/galleries/{GALLERY}/subjects/006", params={"reason": "request"}
    )
    checked = both.cli_data("auditor", "subject", "verify-erased", found.group(1))
    served = both.call("auditor", "GET", f"/erasures/{erased['receipt_seq']}")
    skip = {"erased_at", "receipt_seq"}
    assert {k: v for k, v in checked.items() if k not in skip} == {
        k: v for k, v in served.items() if k not in skip
    }
    assert checked["ok"] and checked["enrolled_images_still_held"] == []

    # retention, deletion and listing of galleries
    assert both.cli_json("admin", "retention", "apply") == both.call(
        "admin", "POST", "/retention/apply"
    )
    both.cli("admin", "gallery", "delete", "g2", "--reason", "done", "--yes")
    assert both.call("admin", "DELETE", "/galleries/g2", params={"reason": "done"}) == {
        "templates_removed": 0
    }
    listed = both.cli_json("admin", "gallery", "list")
    served = both.call("admin", "GET", "/galleries")["items"]
    assert [(g["name"], g["subjects"], g["templates"]) for g in listed] == [
        (g["name"], g["subjects"], g["templates"]) for g in served
    ]

    # both entry points wrote the same audit trail; bulk enrolment differs by design: the
    # CLI enrols a folder as one resumable job (an ``enrol_batch`` entry per committed batch,
    # then one ``enrol`` entry for the job), the API a request's uploads one by one (an
    # ``enrol`` entry each), since the service never opens a path
    enrolling = ("enrol", "enrol_batch")
    cli_trail = _audit_shape(Settings(data_dir=both.cli_dir), start)
    api_trail = _audit_shape(both.api.settings, start)
    one_image = next(t for t in api_trail if t[0] == "enrol")
    (job_entry,) = (t for t in cli_trail if t[0] == "enrol" and "job_id" in t[5])
    batches = [t for t in cli_trail if t[0] == "enrol_batch"]
    assert batches and all(t[1:5] == job_entry[1:5] for t in batches)
    assert [t for t in cli_trail if t[0] in enrolling] == [one_image, *batches, job_entry]
    assert [t for t in api_trail if t[0] in enrolling] == [one_image] * 6
    assert [t for t in cli_trail if t[0] not in enrolling] == [
        t for t in api_trail if t[0] not in enrolling
    ]
    assert [t[0] for t in api_trail].count("search") == 2

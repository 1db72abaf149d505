"""Errors at the HTTP boundary: one mapping of the error tree to statuses, problem+json bodies
with stable codes, request size limits, and no client-named path is ever opened."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from faceledger import errors as e
from faceledger.api import ServiceOptions
from faceledger.api.concurrency import SerialEngine
from faceledger.api.problems import PROBLEM_TYPE, status_for
from faceledger.errors import AuthenticationFailed
from tests.api.live import GALLERY, Deployment, Live, deploy, serve

API = "/api/v1"

EXPECTED_STATUS = {
    AuthenticationFailed: 401,
    e.PermissionDenied: 403,
    e.PolicyError: 403,
    e.PurposeOutsideAgreement: 403,
    e.PurposeRequired: 422,
    e.RetentionError: 409,
    e.RateLimited: 429,
    e.NotFound: 404,
    e.Conflict: 409,
    e.Cancelled: 409,
    e.NearDuplicateFace: 409,
    e.CannotLink: 409,
    e.TooLarge: 413,
    e.BadImage: 400,
    e.BadVideo: 400,
    e.VideoStalled: 400,
    e.NoMrz: 422,
    e.AmbiguousMrz: 422,
    e.UnreadableMrz: 422,
    e.OcrUnavailable: 503,
    e.InvalidArgument: 400,
    e.InputError: 400,
    e.NoFace: 422,
    e.AmbiguousFace: 422,
    e.QualityRejected: 422,
    e.CalibrationError: 422,
    e.ModelMismatch: 409,
    e.ModelFileError: 503,
    e.ModelError: 500,
    e.StoreError: 503,
    e.IntegrityError: 500,
    e.EncryptionKeyError: 503,
    e.AuditError: 500,
    e.ChainBroken: 500,
    e.FaceLedgerError: 500,
}


def _all_error_classes() -> set[type[e.FaceLedgerError]]:
    found: set[type[e.FaceLedgerError]] = set()
    todo: list[type[e.FaceLedgerError]] = [e.FaceLedgerError]
    while todo:
        cls = todo.pop()
        if cls.__module__ in ("faceledger.errors", "faceledger.api.keys"):
            found.add(cls)
        todo.extend(cls.__subclasses__())
    return found


def _make(cls: type[e.FaceLedgerError]) -> e.FaceLedgerError:
    if cls is e.ChainBroken:
        return e.ChainBroken("broken", 3)
    return cls("message")


def test_every_error_class_has_its_status_and_a_distinct_stable_code() -> None:
    classes = _all_error_classes()
    assert classes == set(EXPECTED_STATUS), "a new error class needs a row in the HTTP mapping"
    for cls, status in EXPECTED_STATUS.items():
        assert status_for(_make(cls)) == status, cls.__name__
    codes = [cls.code for cls in classes]
    assert len(codes) == len(set(codes))


@pytest.fixture
def small_live(deployment: Deployment) -> Iterator[Live]:
    with serve(deployment, ServiceOptions(max_request_bytes=200_000)) as server:
        yield server


def _problem(r: httpx.Response, status: int, code: str) -> dict[str, object]:
    assert r.status_code == status, r.text
    assert r.headers["content-type"] == PROBLEM_TYPE
    body = r.json()
    assert body["status"] == status and body["code"] == code
    assert body["type"] == f"urn:faceledger:problem:{code}"
    assert isinstance(body["detail"], str) and body["detail"]
    return dict(body)


def test_given_bad_requests_then_each_answer_is_a_problem_with_its_code(
    small_live: Live, deployment: Deployment, blank_png: bytes, london: dict[str, bytes]
) -> None:
    dep = deployment
    with small_live.client() as c:
        r = c.get(f"{API}/me")
        _problem(r, 401, "unauthenticated")
        assert r.headers["www-authenticate"].startswith("Bearer")
        _problem(
            c.get(f"{API}/me", headers={"X-API-Key": "flk_0123456789ab_nope"}),
            401,
            "unauthenticated",
        )
        _problem(c.get(f"{API}/galleries/nope", headers=dep.headers("admin")), 404, "not_found")
        _problem(c.get(f"{API}/no/such/route"), 404, "not_found")
        r = c.put(f"{API}/health")
        _problem(r, 405, "method_not_allowed")
        assert "GET" in r.headers["allow"]
        _problem(
            c.post(f"{API}/galleries", json={"name": "x"}, headers=dep.headers("admin")),
            422,
            "invalid_argument",
        )
        detect = f"{API}/detect"
        h = dep.headers("searcher")
        _problem(
            c.post(detect, files={"image": ("x.jpg", b"not an image", "image/jpeg")}, headers=h),
            400,
            "bad_image",
        )
        _problem(
            c.post(
                f"{API}/search",
                files={"image": ("b.png", blank_png, "image/png")},
                data={"galleries": [GALLERY], "purpose": "p", "case_ref": "c"},
                headers=h,
            ),
            422,
            "no_face",
        )
        _problem(
            c.post(
                f"{API}/search",
                files={"image": ("b.png", blank_png, "image/png")},
                data={"galleries": [GALLERY]},
                headers=h,
            ),
            422,
            "purpose_required",
        )
        # a body over the service's limit, declared or streamed without a length
        big = b"\xff" * 300_000
        r = c.post(detect, files={"image": ("big.jpg", big, "image/jpeg")}, headers=h)
        _problem(r, 413, "too_large")

        def chunks() -> Iterator[bytes]:
            yield (
                b"--zz\r\nContent-Disposition: form-data; name=image; filename=a.jpg\r\n"
                b"Content-Type: image/jpeg\r\n\r\n"
            )
            for _ in range(30):
                yield b"x" * 10_000

        r = c.post(
            detect,
            content=chunks(),
            headers={**h, "Content-Type": "multipart/form-data; boundary=zz"},
        )
        _problem(r, 413, "too_large")
        # the London image fits the request limit (about 70 kB)
        ok = c.post(
            detect, files={"image": ("l.jpg", london["005_neutral"], "image/jpeg")}, headers=h
        )
        assert ok.status_code == 200


def test_given_image_over_the_byte_limit_then_too_large(
    tmp_path: Path, serial_engine: SerialEngine, london: dict[str, bytes]
) -> None:
    dep = deploy(tmp_path / "ws", serial_engine, max_image_bytes=10_000)
    try:
        with serve(dep) as live, live.client() as c:
            r = c.post(
                f"{API}/detect",
                files={"image": ("l.jpg", london["005_neutral"], "image/jpeg")},
                headers=dep.headers("searcher"),
            )
            _problem(r, 413, "too_large")
    finally:
        dep.ws.close()


def test_given_a_path_instead_of_an_upload_then_the_server_opens_nothing(
    live: Live, deployment: Deployment, data_dir: Path
) -> None:
    """A path or URL sent where an image belongs is refused as malformed; no file is read."""
    real = str(data_dir / "london" / "images" / "001_neutral.jpg")
    h = deployment.headers("searcher")
    with live.client() as c:
        for value in (real, "file://" + real, "http://127.0.0.1:9/x.jpg"):
            r = c.post(f"{API}/detect", data={"image": value}, headers=h)
            _problem(r, 422, "invalid_argument")
            r = c.post(
                f"{API}/search",
                data={"image": value, "galleries": [GALLERY], "purpose": "p", "case_ref": "c"},
                headers=h,
            )
            _problem(r, 422, "invalid_argument")
        # a path as the *content* of an upload is just bytes that are not an image
        r = c.post(
            f"{API}/detect", files={"image": ("p.jpg", real.encode(), "image/jpeg")}, headers=h
        )
        _problem(r, 400, "bad_image")


def test_given_an_unexpected_failure_then_500_without_details(
    live: Live, deployment: Deployment
) -> None:
    """A bug must not leak its message: the body says only ``internal_error``."""

    def broken() -> None:
        raise RuntimeError("secret internal state")

    live.app.add_api_route(f"{API}/broken-for-test", broken)
    with live.client() as c:
        r = c.get(f"{API}/broken-for-test")
    body = _problem(r, 500, "internal_error")
    assert "secret" not in r.text and "RuntimeError" not in str(body)

"""schemathesis against the service's own OpenAPI document: generated requests (valid and
invalid) to every operation never get a 5xx, and every answer conforms to the document
(status, content type, body schema). Bounded: a few examples per operation.

``positive_data_acceptance`` (schema-valid data must be accepted) is left out: what an upload
holds (an image with a face) and what a calibration can measure (a very small FPIR) are not
things a JSON schema can say, so a well-formed request may rightly get 400 or 422.
"""

from __future__ import annotations

import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis import Case, GenerationMode
from schemathesis.core.result import Ok
from schemathesis.specs.openapi.checks import positive_data_acceptance

from faceledger.api.concurrency import SerialEngine
from tests.api.live import GALLERY, Deployment, Live, deploy, serve

POSITIVE_EXAMPLES = 5
NEGATIVE_EXAMPLES = 3


@pytest.fixture(scope="module")
def target(
    tmp_path_factory: pytest.TempPathFactory,
    serial_engine: SerialEngine,
    london: dict[str, bytes],
) -> Iterator[tuple[Live, Deployment]]:
    root: Path = tmp_path_factory.mktemp("schema")
    # one user holding every role and every grant, so requests get past authorisation
    dep = deploy(root / "ws", serial_engine, users=("admin",))
    admin = dep.user("admin")
    dep.ws.access.set_roles(
        "admin", ["admin", "enroller", "searcher", "reviewer", "auditor"], by=admin
    )
    dep.ws.access.grant("admin", GALLERY, "enrol", by=dep.user("admin"))
    with serve(dep) as live:
        yield live, dep
    dep.ws.close()


def test_generated_requests_get_no_server_error_and_conform_to_the_schema(
    target: tuple[Live, Deployment],
) -> None:
    live, dep = target
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        schema = schemathesis.openapi.from_url(f"{live.url}/api/v1/openapi.json")
    headers = dep.headers("admin")
    operations = []
    for result in schema.get_all_operations():
        assert isinstance(result, Ok), f"the service's OpenAPI document is invalid: {result}"
        operations.append(result.ok())
    assert len(operations) >= 30
    tried = 0
    for op in operations:
        for mode, examples in (
            (GenerationMode.POSITIVE, POSITIVE_EXAMPLES),
            (GenerationMode.NEGATIVE, NEGATIVE_EXAMPLES),
        ):

            @settings(
                max_examples=examples,
                deadline=None,
                database=None,
                derandomize=True,
                suppress_health_check=list(HealthCheck),
            )
            @given(case=op.as_strategy(mode))
            def check(case: Case[Any]) -> None:
                nonlocal tried
                tried += 1
                case.call_and_validate(
                    base_url=live.url,
                    headers=headers,
                    timeout=60,
                    excluded_checks=[positive_data_acceptance],
                )

            try:
                check()
            except Unsatisfiable:
                # an operation with nothing to get wrong (no parameters, no body)
                assert mode is GenerationMode.NEGATIVE
    print(f"{tried} generated requests over {len(operations)} operations")
    assert tried >= len(operations) * 3

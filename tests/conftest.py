"""Shared fixtures: the data folder beside the repo, one Engine, real templates computed once,
throw-away SQLite and PostgreSQL databases, a throw-away Milvus server."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import numpy.typing as npt
import pytest
import sqlalchemy as sa

from faceledger import Engine, Settings
from faceledger.batch import embed_paths
from faceledger.store.database import open_database
from tests.milvus_server import (
    FAST_TICKS,
    MilvusServer,
    MilvusUnavailable,
    server_version,
    unpack_binaries,
    unsupported_reason,
)
from tests.postgres import PostgresCluster, PostgresUnavailable

REPO = Path(__file__).resolve().parents[1]
DATA = REPO.parent / "shared" / "data"


@dataclass(frozen=True)
class TemplateSet:
    """Real dlib templates of a labelled image set (images without a usable face dropped)."""

    paths: list[str]
    subjects: list[str]
    vectors: npt.NDArray[np.float32]
    failed: list[str]
    face_counts: dict[str, int]
    """Faces the detector found in every input image (also the failed ones)."""


@pytest.fixture(scope="session")
def data_dir() -> Path:
    if not (DATA / "README.md").is_file():
        pytest.fail(
            f"test data not found at {DATA}: the shared data folder must sit beside the repo"
        )
    return DATA


@pytest.fixture(scope="session")
def settings() -> Settings:
    return Settings()


@pytest.fixture(scope="session")
def engine(settings: Settings) -> Engine:
    return Engine(settings)


def _template_set(paths: list[Path], subjects: list[str], settings: Settings) -> TemplateSet:
    outcomes = embed_paths(paths, settings, workers=2)
    keep = [i for i, o in enumerate(outcomes) if o.result is not None and o.result.template]
    vectors = np.stack(
        [outcomes[i].result.template.vector for i in keep]  # type: ignore[union-attr]
    ).astype(np.float32)
    return TemplateSet(
        paths=[str(paths[i]) for i in keep],
        subjects=[subjects[i] for i in keep],
        vectors=vectors,
        failed=[str(o.path) for o in outcomes if o.result is None],
        face_counts={str(o.path): o.faces for o in outcomes},
    )


@pytest.fixture(scope="session")
def orl_templates(data_dir: Path, settings: Settings) -> TemplateSet:
    """All 400 ORL images (40 subjects ``s1``..``s40``)."""
    paths = sorted((data_dir / "orl").glob("s*/*.pgm"))
    return _template_set(paths, [p.parent.name for p in paths], settings)


@pytest.fixture(scope="session")
def london_templates(data_dir: Path, settings: Settings) -> TemplateSet:
    """All 204 London images; subject = the three-digit id before the underscore."""
    paths = sorted((data_dir / "london" / "images").glob("*.jpg"))
    return _template_set(paths, [p.name.split("_")[0] for p in paths], settings)


@pytest.fixture(scope="session")
def pg_cluster() -> Iterator[PostgresCluster]:
    """One throw-away PostgreSQL 15 server (initdb in a temp dir, Unix socket) per run."""
    try:
        cluster = PostgresCluster()
        cluster.start()
    except PostgresUnavailable as exc:
        pytest.fail(f"these tests need a PostgreSQL server (scripts/test.sh installs one): {exc}")
    yield cluster
    cluster.stop()


@pytest.fixture(params=["sqlite", "postgresql"])
def db_engine(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[sa.Engine]:
    """A fresh, empty database on a real SQLite file and on the session's PostgreSQL server,
    for behaviour where the dialect matters (locks, triggers, types).

    Named apart from ``engine`` (the face Engine). Narrow a test to SQLite with
    ``pytest.mark.parametrize("db_engine", ["sqlite"], indirect=True)``.
    """
    if request.param == "sqlite":
        eng = open_database(str(tmp_path / "faceledger.db"))
    else:
        cluster: PostgresCluster = request.getfixturevalue("pg_cluster")
        eng = open_database(cluster.create_database())
    yield eng
    eng.dispose()


@pytest.fixture(scope="session")
def milvus_binaries(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """The Milvus server binary of the ``milvus`` wheel, unpacked once per run (~5 s,
    250 MB, deleted afterwards). Skips, saying why, only where the binary cannot run."""
    reason = unsupported_reason()
    if reason is not None:
        pytest.skip(f"no Milvus server on this platform: {reason}")
    folder = tmp_path_factory.mktemp("milvus-bin")
    try:
        unpack_binaries(folder)
    except MilvusUnavailable as exc:
        pytest.skip(f"no Milvus server on this platform: {exc}")
    except ImportError as exc:
        pytest.fail(f"the Milvus server tests need the 'milvus' extra (scripts/test.sh): {exc}")
    yield folder
    shutil.rmtree(folder, ignore_errors=True)


@pytest.fixture(scope="session")
def milvus_server(
    milvus_binaries: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[MilvusServer]:
    """One Milvus standalone server (the real binary, its own etcd and local storage) per
    run, on free loopback ports; tests keep apart by gallery (partition) or model
    (collection) names of their own. Tests that kill a server start their own."""
    server = MilvusServer(
        tmp_path_factory.mktemp("milvus-server"), binaries=milvus_binaries, settings=FAST_TICKS
    )
    server.start()
    print(
        f"Milvus {server_version()} standalone at {server.uri}, "
        f"started in {server.start_seconds:.1f} s"
    )
    yield server
    server.kill()  # its data is thrown away: no need for its slow graceful shutdown
    server.remove_data()

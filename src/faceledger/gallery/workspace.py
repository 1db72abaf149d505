"""A workspace: one database (store + audit + access + reviews), its indexes and an Engine."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime

import sqlalchemy as sa

from faceledger.access import AccessControl, Organisations, Role, User
from faceledger.access.names import LOCAL_PREFIX, SERVICE_PREFIX, canonical_name, local_name
from faceledger.access.policy import GrantLevel
from faceledger.audit import AuditLog, load_signing_key, utc_now
from faceledger.config import Settings
from faceledger.errors import InvalidArgument
from faceledger.gallery.images import ImageStore
from faceledger.gallery.indexes import IndexManager
from faceledger.pipeline import Engine
from faceledger.review import Reviews
from faceledger.review.cluster_sets import ClusterSets
from faceledger.store import Gallery, SqlStore, TemplateCipher, open_database


@dataclass
class Workspace:
    settings: Settings
    db: sa.Engine
    store: SqlStore
    audit: AuditLog
    access: AccessControl
    reviews: Reviews
    indexes: IndexManager
    images: ImageStore
    """Kept enrolled and probe images (encrypted with the template key when one is set)."""
    cluster_sets: ClusterSets
    """Kept cluster sets of a case's unknown faces (encrypted likewise)."""
    clock: Callable[[], datetime] = field(default=utc_now)
    _engine: Engine | None = None

    @property
    def orgs(self) -> Organisations:
        """Organisations, gallery owners and sharing agreements."""
        return self.access.orgs

    @property
    def engine(self) -> Engine:
        if self._engine is None:
            self._engine = Engine(self.settings)
        return self._engine

    def engine_for(self, gallery: Gallery) -> Engine:
        """The engine of ``gallery``'s model: its probes and new members are embedded with
        the model and recipe its templates were made with."""
        return self.engine.for_model(gallery.model_id)

    def close(self) -> None:
        self.indexes.save_all()
        self.indexes.close()
        self.db.dispose()


def _read_key_file(settings: Settings) -> TemplateCipher | None:
    if settings.template_key is None:
        return None
    try:
        text = settings.template_key.read_text(encoding="ascii")
    except (OSError, UnicodeDecodeError) as exc:
        raise InvalidArgument(f"cannot read template key {settings.template_key}: {exc}") from exc
    return TemplateCipher.from_text(text)


def open_workspace(
    settings: Settings,
    *,
    clock: Callable[[], datetime] = utc_now,
    engine: Engine | None = None,
    check_encryption: bool = True,
) -> Workspace:
    """Open (creating if needed) the database and indexes named by ``settings``.

    With a template key configured, every stored template must be encrypted with it
    (``EncryptionKeyError`` otherwise) unless ``check_encryption`` is off, for migrating.
    """
    try:
        settings.data_dir.mkdir(parents=True, exist_ok=True)
    except (FileExistsError, NotADirectoryError):
        raise InvalidArgument(f"data dir {settings.data_dir} is a file, not a folder") from None
    except OSError as exc:
        raise InvalidArgument(f"cannot use data dir {settings.data_dir}: {exc}") from None
    url = settings.database_url or str(settings.data_dir / "faceledger.db")
    db = open_database(url)
    signing = None
    if settings.audit_signing_key is not None:
        try:
            signing = load_signing_key(settings.audit_signing_key.read_bytes())
        except OSError as exc:
            raise InvalidArgument(f"cannot read audit signing key: {exc}") from exc
    cipher = _read_key_file(settings)
    store = SqlStore(db, cipher=cipher, clock=clock)
    if check_encryption:
        store.check_encryption()
    # probe images never enter the hash chain (they could not be deleted from it); a kept
    # probe goes to the image store, where retention and erasure reach it
    audit = AuditLog(db, clock=clock, signing_key=signing)
    ws = Workspace(
        settings=settings,
        db=db,
        store=store,
        audit=audit,
        access=AccessControl(audit),
        reviews=Reviews(
            audit,
            two_person_rule=settings.two_person_rule,
            blind_review=settings.blind_review,
        ),
        indexes=IndexManager(store, settings.data_dir / "indexes", shared_uri=settings.index_uri),
        images=ImageStore(db, cipher=cipher),
        cluster_sets=ClusterSets(audit, cipher=cipher),
        clock=clock,
        _engine=engine,
    )
    return ws


def local_operator(ws: Workspace, name: str) -> User:
    """The person at the command line of a local workspace.

    Whoever can open the database file already holds every right over it, so the CLI acts
    with every role and an ``enrol`` grant on every gallery; what it does is still audited,
    under ``local:<name>`` (no credential backs the name: :mod:`faceledger.access.names`).
    It stands above every organisation (``org=None``), as the database's holder does.
    A local operator may not record review verdicts, and their searches need two reviewers'
    confirmations whatever the workspace's setting. The service (``faceledger serve``), and
    the CLI given an account's API key, act as that account with its real roles.
    """
    grants = {g.name: GrantLevel.ENROL for g in ws.store.list_galleries()}
    recorded = local_name(name)
    return User(
        id=recorded,
        roles=frozenset(Role),
        grants=grants,
        display_name=f"{recorded.removeprefix(LOCAL_PREFIX)} (local, no credential)",
        local=True,
        org=None,
    )


def service_actor(task: str) -> User:
    """The service acting on its own, on no one's request: what its background ``task``
    (``"retention"``) does is audited under ``service:<task>``.

    It holds the administrator role only, for what a timer may do (applying retention
    periods), and no grant: it can see no gallery's images, search, enrol or review. No
    credential backs it, as none backs the CLI's local operator; whoever runs the service
    already holds the database.
    """
    recorded = SERVICE_PREFIX + canonical_name(task)
    return User(
        id=recorded,
        roles=frozenset({Role.ADMIN}),
        display_name=f"the service's {recorded.removeprefix(SERVICE_PREFIX)} task",
        org=None,
    )

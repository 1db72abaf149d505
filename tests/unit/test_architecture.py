"""The layers of docs/architecture.md, enforced: every import between faceledger's packages
must point down the table, and the public names of the package and of its application layer
are pinned (a change to them is a change to the API, made on purpose)."""

from __future__ import annotations

import ast
from collections.abc import Iterable, Iterator
from pathlib import Path

import faceledger
import faceledger.usecases

SRC = Path(faceledger.__file__).resolve().parent

LAYERS: list[set[str]] = [
    {"errors", "version"},
    {"types", "config"},
    {"io", "models", "serialize", "datasets", "audit", "store", "index"},
    {"detect", "quality", "align", "match", "cluster", "access"},
    {"embed", "review"},
    {"pipeline"},
    {"video", "document"},
    {"cache"},
    {"batch"},
    {"evaluate"},
    {"gallery"},
    {"usecases"},
    {"api"},
    {"cli"},
    {"faceledger", "__main__"},
]
"""docs/architecture.md's table, bottom first."""

MACHINERY = {"faceledger.gallery.ranking", "faceledger.gallery.selfcal", "faceledger.gallery.enrol"}
"""Reached only through a use case: the entry points may not import these."""


def _unit(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else "faceledger"


def _modules() -> Iterator[tuple[str, Path]]:
    for path in sorted(SRC.rglob("*.py")):
        rel = path.relative_to(SRC.parent).with_suffix("")
        name = ".".join(rel.parts)
        yield name.removesuffix(".__init__"), path


def _imports(path: Path) -> Iterator[str]:
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            if node.module.startswith("faceledger"):
                base = SRC.joinpath(*node.module.split(".")[1:])
                for a in node.names:  # a submodule imported by name is an arrow to it
                    if (base / a.name).is_dir() or (base / f"{a.name}.py").is_file():
                        yield f"{node.module}.{a.name}"
                    else:
                        yield node.module
        elif isinstance(node, ast.Import):
            yield from (a.name for a in node.names if a.name.startswith("faceledger"))


def _layer(unit: str) -> int:
    for i, names in enumerate(LAYERS):
        if unit in names:
            return i
    raise AssertionError(f"package {unit!r} is in no layer of docs/architecture.md")


def test_every_package_has_a_layer() -> None:
    units = {_unit(name) for name, _ in _modules()}
    assert {u: _layer(u) for u in units}  # raises for a package missing from the table


def _violations(modules: Iterable[tuple[str, Path]]) -> list[str]:
    wrong = []
    for name, path in modules:
        src = _unit(name)
        for target in _imports(path):
            dst = _unit(target)
            if dst != src and _layer(dst) >= _layer(src):
                wrong.append(f"{name} imports {target} ({src} -> {dst})")
            if src in {"cli", "api"} and any(
                target == m or target.startswith(m + ".") for m in MACHINERY
            ):
                wrong.append(f"{name} imports {target} (use-case machinery)")
    return sorted(set(wrong))


def test_imports_point_down_the_layers() -> None:
    wrong = _violations(_modules())
    assert not wrong, "imports against docs/architecture.md:\n" + "\n".join(wrong)


def test_the_checker_sees_a_wrong_arrow(tmp_path: Path) -> None:
    """An upward import, a same-layer one and the CLI reaching the ranking are all caught."""
    up = tmp_path / "up.py"
    up.write_text("from faceledger.usecases import search\n")
    side = tmp_path / "side.py"
    side.write_text("import faceledger.index.exact\n")
    cli = tmp_path / "cli.py"
    cli.write_text("from faceledger.gallery.ranking import rank\n")
    found = _violations(
        [("faceledger.store.up", up), ("faceledger.audit.side", side), ("faceledger.cli.x", cli)]
    )
    assert {f.split()[0] for f in found} == {
        "faceledger.store.up",
        "faceledger.audit.side",
        "faceledger.cli.x",
    }, found
    assert _violations([("faceledger.usecases.ok", up), ("faceledger.cli.ok", up)]) == []


def test_public_names_are_pinned() -> None:
    assert sorted(faceledger.__all__) == [
        "Box",
        "Decision",
        "DecodedImage",
        "Detection",
        "Engine",
        "FMREstimate",
        "FaceLedgerError",
        "FaceResult",
        "Landmarks",
        "Outcome",
        "QualityGates",
        "QualityReport",
        "Settings",
        "Template",
        "VerifyResult",
        "__version__",
    ]
    for name in faceledger.__all__:
        assert hasattr(faceledger, name), name


def test_use_cases_are_pinned() -> None:
    assert sorted(faceledger.usecases.__all__) == sorted(
        [
            "Alert",
            "ClusterImages",
            "ClusteredFace",
            "ImagesClustered",
            "cluster_images",
            "clusters_json",
            "render_clusters_html",
            "ClusterEnrolled",
            "EnrolCluster",
            "cluster_face_crop",
            "cluster_set_json",
            "cluster_set_summary_json",
            "list_cluster_sets",
            "dismiss_cluster",
            "enrol_cluster",
            "merge_clusters",
            "name_cluster",
            "purge_expired_cluster_sets",
            "show_cluster_set",
            "split_cluster",
            "undo_cluster_action",
            "AuditQuery",
            "FaceCrop",
            "enrolled_face_crop",
            "probe_face_crop",
            "OrgReport",
            "OrgReportRequest",
            "audit_entries",
            "audit_entry",
            "audit_use_report",
            "export_audit",
            "org_report",
            "render_org_report_html",
            "ChangeAgreement",
            "CreateOrg",
            "DefinePurpose",
            "ReleaseLead",
            "change_agreement",
            "create_agreement",
            "create_org",
            "define_purpose",
            "list_agreements",
            "list_orgs",
            "list_purposes",
            "release_lead",
            "revoke_agreement",
            "show_agreement",
            "ApplyRetention",
            "BulkReport",
            "CheckDocument",
            "CheckReason",
            "DocumentChecked",
            "DocumentRead",
            "ReadDocument",
            "check_document",
            "document_number_hmac",
            "read_document",
            "DEFAULT_EARLY_HITS",
            "CreateGallery",
            "DecideLead",
            "DeleteGallery",
            "EnrolFolder",
            "EnrolImage",
            "EnrolUploads",
            "Enrolled",
            "EraseSubject",
            "NearDuplicate",
            "Erased",
            "ErasureCheck",
            "ErasureReceipt",
            "GalleryInfo",
            "PairVerified",
            "RetentionRun",
            "SearchPage",
            "SearchRequest",
            "SearchResult",
            "ShowGallery",
            "SubjectDetail",
            "SubjectVerified",
            "TrackOutcome",
            "Upload",
            "UploadOutcome",
            "UploadsEnrolled",
            "VerifyChain",
            "VerifyPair",
            "VerifySubject",
            "VideoProgress",
            "VideoSearchRequest",
            "VideoSearchResult",
            "VideoWatchRequest",
            "VisibleSearch",
            "WatchSummary",
            "apply_retention",
            "check_erasure",
            "create_gallery",
            "decide_lead",
            "delete_gallery",
            "enrol_folder",
            "enrol_image",
            "enrol_uploads",
            "enrolled_image",
            "erase_subject",
            "export_subject",
            "list_galleries",
            "list_grants",
            "FirstLookAt",
            "QueueFilter",
            "record_first_look",
            "list_searches",
            "list_subjects",
            "probe_image",
            "read_search",
            "review_queue",
            "search",
            "search_video",
            "show_gallery",
            "subject_detail",
            "verify_chain",
            "verify_pair",
            "verify_subject",
            "watch_video",
        ]
    )
    for name in faceledger.usecases.__all__:
        assert hasattr(faceledger.usecases, name), name

"""Build a small workspace with the code on the path, for upgrade tests of later releases.

    PYTHONPATH=/tmp/fl-old/src python scripts/make_release_workspace.py OUT_DIR \
        [--database postgresql://...] [--data ../shared/data]

Meant to run with an *older* release's code on ``PYTHONPATH`` (``git worktree add``), so it
uses only the public use cases that release already had (``faceledger.usecases``:
``create_gallery``, ``enrol_image``, ``search``; ``ws.access.create_user``/``grant``/
``issue_api_key``; ``ws.reviews.decide``). It writes:

- ``OUT_DIR/workspace/``: the data folder (``faceledger.db`` unless ``--database`` names
  another database, and the gallery's index files);
- ``OUT_DIR/keys.json``: each user's API key, the gallery, the search id and its lead.

The workspace: a bootstrap ``admin``; ``enroller``, ``searcher``, ``reviewer`` and ``auditor``
each with one role and an API key; a gallery ``mugshots`` of three London subjects (005, 008,
030, from their ``*_neutral.jpg``); one search by the searcher (purpose and case reference)
of ``005_smiling.jpg``, whose top lead the reviewer confirms (one decision).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from faceledger import Settings
from faceledger.gallery import open_workspace
from faceledger.usecases import (
    CreateGallery,
    EnrolImage,
    SearchRequest,
    create_gallery,
    enrol_image,
    search,
)

REPO = Path(__file__).resolve().parents[1]
GALLERY = "mugshots"
SUBJECTS = ("005", "008", "030")
PROBE_SUBJECT = "005"
PURPOSE = "investigation of a burglary"
CASE_REF = "CASE-2026-0042"
USERS = {
    "enroller": ("enroller", "enrol"),
    "searcher": ("searcher", "search"),
    "reviewer": ("reviewer", "view_images"),
    "auditor": ("auditor", None),
}


def build(out: Path, data: Path, database: str | None) -> dict[str, object]:
    images = data / "london" / "images"
    settings = Settings(data_dir=out / "workspace", database_url=database)
    ws = open_workspace(settings)
    try:
        admin = ws.access.create_user("admin", ["admin"], by=None, display_name="Admin")
        keys = {"admin": ws.access.issue_api_key("admin", by=admin, label="fixture").token}
        create_gallery(
            ws,
            admin,
            CreateGallery(GALLERY, "statute", description="upgrade fixture"),
        )
        for name, (role, level) in USERS.items():
            ws.access.create_user(name, [role], by=admin, display_name=name.title())
            if level is not None:
                ws.access.grant(name, GALLERY, level, by=admin)
            keys[name] = ws.access.issue_api_key(name, by=admin, label="fixture").token
        enroller = ws.access.authenticate(keys["enroller"])
        for subject in SUBJECTS:
            enrol_image(
                ws,
                enroller,
                EnrolImage(GALLERY, subject, images / f"{subject}_neutral.jpg", source="london"),
            )
        searcher = ws.access.authenticate(keys["searcher"])
        found = search(
            ws,
            searcher,
            SearchRequest(
                image=images / f"{PROBE_SUBJECT}_smiling.jpg",
                galleries=(GALLERY,),
                purpose=PURPOSE,
                case_ref=CASE_REF,
            ),
        )
        record = ws.reviews.search(found.search_id)
        if not record.leads:
            raise SystemExit("the search found no lead: the fixture needs one")
        top = record.leads[0]
        reviewer = ws.access.authenticate(keys["reviewer"])
        decided = ws.reviews.decide(
            reviewer, found.search_id, top.rank, "confirmed", "same scar above the left eye"
        )
        return {
            "keys": keys,
            "gallery": GALLERY,
            "subjects": list(SUBJECTS),
            "grants": {n: lvl for n, (_, lvl) in USERS.items() if lvl is not None},
            "roles": {"admin": ["admin"], **{n: [r] for n, (r, _) in USERS.items()}},
            "search": {
                "search_id": found.search_id,
                "audit_seq": found.audit_seq,
                "purpose": PURPOSE,
                "case_ref": CASE_REF,
                "lead_rank": top.rank,
                "lead_subject": top.lead.subject_id,
                "lead_status": str(decided.status),
            },
            "audit_entries": len(list(ws.audit.entries())),
        }
    finally:
        ws.close()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out", type=Path, help="folder to create (must not hold a workspace)")
    parser.add_argument("--database", default=None, help="database URL (default: SQLite file)")
    parser.add_argument("--data", type=Path, default=REPO.parent / "shared" / "data")
    args = parser.parse_args(argv)
    if (args.out / "workspace").exists():
        parser.error(f"{args.out / 'workspace'} exists already")
    args.out.mkdir(parents=True, exist_ok=True)
    summary = build(args.out, args.data, args.database)
    text = json.dumps(summary, indent=2, sort_keys=True) + "\n"
    (args.out / "keys.json").write_text(text, encoding="utf-8")
    sys.stdout.write(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""``faceledger demo``: the main job on real photographs, right after installing.

Enrols a gallery of the bundled sample (or ``../shared/data/london`` beside the checkout) in a
fresh workspace, searches it with a purpose for a person who is enrolled and for one who is
not, shows the candidate list with its false-match and false-positive identification rates
and the explicit "no candidate", records two reviewers' verdicts under the two-person rule,
verifies the audit chain, and ends with commands to try on that workspace. Every step goes
through the same use cases as the CLI's own commands and the service.
"""

from __future__ import annotations

import dataclasses
import tempfile
import time
from importlib import resources
from pathlib import Path
from typing import Annotated

import typer

from faceledger import usecases as uc
from faceledger.access import GrantLevel, Role, User
from faceledger.cli.output import console, fmr_text, guarded, print_search
from faceledger.cli.workspace_ctx import operator_name
from faceledger.config import Settings
from faceledger.errors import FaceLedgerError, InvalidArgument
from faceledger.gallery import Workspace, local_operator, open_workspace
from faceledger.store.records import LegalBasis
from faceledger.types import Outcome

SHARED_LONDON = Path("../shared/data/london/images")
GALLERY = "demo"
PURPOSE = "demo: find a missing person"
CASE = "DEMO-1"


def sample_dir() -> Path:
    """The small CC BY 4.0 sample of London Set faces shipped inside the package."""
    return Path(str(resources.files("faceledger") / "sample"))


def _pick_images(data: Path) -> list[tuple[str, Path, Path]]:
    """(subject, neutral, smiling) triples found in ``data``."""
    triples = []
    for neutral in sorted(data.glob("*_neutral.jpg")):
        sid = neutral.name.split("_")[0]
        smiling = data / f"{sid}_smiling.jpg"
        if smiling.is_file():
            triples.append((sid, neutral, smiling))
    return triples


def demo(
    ctx: typer.Context,
    data: Annotated[
        Path | None,
        typer.Option(help="Folder of London-Set-style images (<id>_neutral/_smiling.jpg)."),
    ] = None,
    people: Annotated[
        int, typer.Option(help="How many people to use (0: all; the sample has ten).")
    ] = 0,
    into: Annotated[
        Path | None,
        typer.Option(help="Workspace folder to create (default: a new temporary folder)."),
    ] = None,
) -> None:
    """The main job on real photographs: enrol, search with a purpose, review, audit."""
    settings: Settings = ctx.obj
    folder = data or (SHARED_LONDON if SHARED_LONDON.is_dir() else sample_dir())
    triples = _pick_images(folder)
    triples = triples[:people] if people > 0 else triples
    if len(triples) < 3:
        console.print(f"[red]need at least three people in {folder}[/]")
        raise typer.Exit(2)

    def run() -> None:
        if into is not None and into.exists() and any(into.iterdir()):
            raise InvalidArgument(f"{into} is not empty: the demo makes a new workspace")
        where = into or Path(tempfile.mkdtemp(prefix="faceledger-demo-"))
        started = time.perf_counter()
        ws = open_workspace(dataclasses.replace(settings, data_dir=where, database_url=None))
        try:
            Tour(ws, operator_name(settings), folder, triples).run()
        finally:
            ws.close()
        console.rule("try next")
        console.print(
            f"The workspace is in {where} (delete it when done). "
            f"The demo took {time.perf_counter() - started:.0f} s.\n"
            f"  faceledger --data-dir {where} search YOUR_PHOTO.jpg -g {GALLERY} "
            f'--purpose "..." --case ...\n'
            f"  faceledger --data-dir {where} gallery show {GALLERY}\n"
            f"  faceledger --data-dir {where} audit export | tail -3"
        )

    guarded(run)


@dataclasses.dataclass
class Tour:
    ws: Workspace
    operator: str
    folder: Path
    triples: list[tuple[str, Path, Path]]

    def run(self) -> None:
        self.model()
        enrolled, stranger = self.triples[:-1], self.triples[-1]
        me = self.enrol(enrolled)
        self.verify_one(me, enrolled[0], enrolled[1])
        console.rule(f"3. 1:N search for someone enrolled ({enrolled[0][0]}, another photo)")
        found = self.search(me, enrolled[0][2])
        console.rule(f"4. 1:N search for someone not enrolled ({stranger[0]})")
        self.search(me, stranger[2])
        self.review(me, found)
        self.audit(me)

    def model(self) -> None:
        engine = self.ws.engine
        card = engine.card
        console.rule("[bold]faceledger demo")
        console.print(f"images: {self.folder} ({len(self.triples)} people)")
        runtime = engine.runtime
        console.print(
            f"model: {card.id} ({card.name}), run by "
            f"{runtime.runtime if runtime else card.backend}"
            + (f" ({runtime.note})" if runtime and runtime.note else "")
        )
        cal = card.calibration
        if cal is not None:
            console.print(
                f"calibration: {cal.overall.impostor_pairs:,} impostor pairs; every score "
                "below comes with the false-match rate measured there"
            )

    def enrol(self, enrolled: list[tuple[str, Path, Path]]) -> User:
        console.rule(f"1. enrol a gallery of {len(enrolled)} people (neutral photos)")
        local = local_operator(self.ws, self.operator)
        uc.create_gallery(
            self.ws,
            local,
            uc.CreateGallery(
                GALLERY, LegalBasis.CONSENT, "faceledger demo: sample people", retention_days=30
            ),
        )
        me = local_operator(self.ws, self.operator)  # now with a grant on the new gallery
        for sid, neutral, _ in enrolled:
            res = uc.enrol_image(self.ws, me, uc.EnrolImage(GALLERY, sid, neutral))
            q = res.face.quality
            console.print(
                f"subject {sid}: {neutral.name}, face {res.face.detection.box.width:.0f} px, "
                f"quality {q.score:.0f}/100"
            )
        console.print(f"[dim]enrolled by {me.id}: a local operator, recorded as such[/]")
        return me

    def verify_one(self, me: User, a: tuple[str, Path, Path], b: tuple[str, Path, Path]) -> None:
        console.rule("2. 1:1 verification at target FMR 1e-3")
        for label, other in ((f"{a[0]} vs {a[0]}", a[2]), (f"{a[0]} vs {b[0]}", b[2])):
            req = uc.VerifyPair(a[1], other, 1e-3, PURPOSE, CASE)
            d = uc.verify_pair(self.ws, me, req).result.decision
            verdict = "MATCH" if d.outcome is Outcome.MATCH else "no match"
            console.print(
                f"{label}: {verdict} (similarity {d.score:.4f}, threshold {d.threshold:.4f}, "
                f"estimated FMR of this score {fmr_text(d.fmr)})"
            )

    def search(self, me: User, probe: Path) -> uc.SearchResult:
        res = uc.search(self.ws, me, uc.SearchRequest(probe, (GALLERY,), PURPOSE, CASE))
        console.print(f'probe {probe.name}; purpose "{PURPOSE}", case {CASE}')
        print_search(res)
        return res

    def review(self, me: User, found: uc.SearchResult) -> None:
        console.rule("5. human review: two people, neither of them the searcher")
        leads = [c for f in found.faces for c in f.candidates]
        if not leads:
            console.print("the search returned no candidate: nothing to review")
            return
        admin = self.ws.access.create_user("demo-admin", [Role.ADMIN], by=None)
        reviewers = []
        for name in ("reviewer-a", "reviewer-b"):
            self.ws.access.create_user(name, [Role.REVIEWER], by=admin)
            reviewers.append(self.ws.access.grant(name, GALLERY, GrantLevel.VIEW_IMAGES, by=admin))
        top = leads[0]
        decide_as = [
            (me, "I searched, so I confirm"),
            (reviewers[0], "same person: eyes, brows and ear shape agree"),
            (reviewers[1], "agree after comparing both photos independently"),
        ]
        for who, note in decide_as:
            req = uc.DecideLead(found.search_id, top.rank, "confirmed", note)
            look = uc.FirstLookAt(found.search_id, top.rank, "same")
            try:
                # blind review: the two faces are judged before the score is shown
                uc.record_first_look(self.ws, who, look)
                console.print(
                    f"{who.id} looks at the probe and the candidate's photo, no score shown: "
                    '"same person"'
                )
                state = uc.decide_lead(self.ws, who, req)
            except FaceLedgerError as exc:
                console.print(f"{who.id} tries to confirm lead #{top.rank}: [red]refused[/]: {exc}")
                continue
            console.print(
                f'{who.id} confirms lead #{top.rank} (subject {top.external_id}): "{note}" '
                f"-> lead is [bold]{state.status}[/]"
            )

    def audit(self, me: User) -> None:
        console.rule("6. the audit log: every step above, hash-chained")
        for entry in self.ws.audit.entries():
            r = entry.record
            what = f" purpose={r.purpose!r} case={r.case_ref}" if r.purpose else ""
            console.print(f"  #{entry.seq} {r.operation} by {r.actor}{what}")
        rep = uc.verify_chain(self.ws, me, uc.VerifyChain())
        if rep.ok:
            console.print(f"audit verify: OK, {rep.entries} entries, chain intact")
        else:
            console.print(f"[red]audit verify: BROKEN at entry {rep.first_bad_position}[/]")
            raise typer.Exit(1)


def register(app: typer.Typer) -> None:
    app.command()(demo)

"""A gallery keeps the model and template recipe it was created with.

The default recipe changed (issue #27: flip-averaged templates, card ``dlib-resnet-v1-flip``);
a workspace made before holds ``dlib-resnet-v1`` galleries, whose templates must never be
compared with templates of another recipe and whose calibration is their own card's. Opening
it with the new default must keep enrolling and searching those galleries with their model,
put new galleries on the new one, and refuse to search both kinds in one request.
"""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pytest

from faceledger import Settings
from faceledger.errors import InvalidArgument
from faceledger.gallery import local_operator, open_workspace
from faceledger.models import ModelRegistry
from faceledger.pipeline import Engine
from faceledger.usecases import (
    CreateGallery,
    EnrolFolder,
    EnrolImage,
    SearchRequest,
    VerifySubject,
    create_gallery,
    enrol_folder,
    enrol_image,
    search,
    verify_subject,
)

PLAIN = "dlib-resnet-v1"
FLIP = "dlib-resnet-v1-flip"


def test_flip_card_is_the_plain_cards_recipe_sibling() -> None:
    reg = ModelRegistry()
    plain, flip = reg.get(PLAIN), reg.get(FLIP)
    assert not plain.flip_average and flip.flip_average
    assert plain.files == flip.files  # the same weights
    assert reg.resolve(PLAIN, True).id == FLIP
    assert reg.resolve(FLIP, False).id == PLAIN
    assert reg.resolve(FLIP, None).id == FLIP


def test_flip_templates_average_the_mirror_image(data_dir: Path) -> None:
    image = data_dir / "london/images/001_neutral.jpg"
    plain = Engine(Settings(model_id=PLAIN))
    flip = Engine(Settings(model_id=FLIP))
    a, b = plain.embed(image).template, flip.embed(image).template
    assert a is not None and b is not None
    assert (a.model_id, b.model_id) == (PLAIN, FLIP)
    assert 0.99 < float(a.vector @ b.vector) < 0.99999  # same face, not the same vector
    # by hand: the normalised sum of the chip's and the mirrored chip's plain embeddings
    from faceledger.align import align_face, mirror

    img = plain.load(image)
    chip = align_face(img.pixels, plain.embed(image).detection, plain.card.align)
    raw = plain.embedder._raw([chip, mirror(chip)])
    expected = raw.sum(axis=0) / np.linalg.norm(raw.sum(axis=0))
    assert float(expected @ b.vector) > 0.9999


def test_galleries_keep_their_model_after_the_default_changes(
    tmp_path: Path, data_dir: Path
) -> None:
    img = data_dir / "london/images"
    old = open_workspace(Settings(data_dir=tmp_path, model_id=PLAIN))
    me = local_operator(old, "t")
    create_gallery(old, me, CreateGallery("old", "statute"))
    me = local_operator(old, "t")  # its grants now include the new gallery
    for sid in ("001", "004", "005"):
        enrol_image(old, me, EnrolImage("old", sid, img / f"{sid}_neutral.jpg"))
    old.close()

    ws = open_workspace(Settings(data_dir=tmp_path, model_id=FLIP))
    me = local_operator(ws, "t")
    # enrolment into the old gallery makes the old recipe's templates, one image or a folder
    enrol_image(ws, me, EnrolImage("old", "006", img / "006_neutral.jpg"))
    folder = tmp_path / "more.csv"
    with folder.open("w", newline="") as fh:
        csv.writer(fh).writerows([["image", "subject"], [str(img / "008_neutral.jpg"), "008"]])
    enrol_folder(ws, me, EnrolFolder("old", folder, "statute"))
    old_gallery = ws.store.get_gallery_by_name("old")
    stored = ws.store.get_templates(
        [
            t.id
            for s in ws.store.list_subjects(old_gallery.id).items
            for t in ws.store.list_templates(s.id)
        ]
    )
    assert len(stored) == 5 and {t.info.model_id for t in stored.values()} == {PLAIN}
    plain_probe = Engine(Settings(model_id=PLAIN)).embed(img / "006_neutral.jpg").template
    assert plain_probe is not None
    assert any(float(t.vector @ plain_probe.vector) > 0.99999 for t in stored.values()), (
        "the old gallery's new member was not embedded with the old recipe"
    )

    # searching it embeds the probe with its model, and finds the person
    res = search(
        ws, me, SearchRequest(img / "005_smiling.jpg", ("old",), purpose="t", case_ref="c")
    )
    assert res.model_id == PLAIN
    assert res.faces[0].candidates and res.faces[0].candidates[0].external_id == "005"
    assert (
        verify_subject(
            ws, me, VerifySubject("old", "004", img / "004_smiling.jpg", purpose="t", case_ref="c")
        ).decision.outcome.value
        == "match"
    )

    # a new gallery is made with the new default, and one search may not mix the two
    create_gallery(ws, me, CreateGallery("new", "statute"))
    me = local_operator(ws, "t")
    enrol_image(ws, me, EnrolImage("new", "025", img / "025_neutral.jpg"))
    assert ws.store.get_gallery_by_name("new").model_id == FLIP
    res = search(
        ws, me, SearchRequest(img / "025_smiling.jpg", ("new",), purpose="t", case_ref="c")
    )
    assert res.model_id == FLIP and res.faces[0].candidates[0].external_id == "025"
    with pytest.raises(InvalidArgument, match="one model at a time"):
        search(
            ws,
            me,
            SearchRequest(img / "025_smiling.jpg", ("old", "new"), purpose="t", case_ref="c"),
        )
    ws.close()

"""Protocol CSV readers: paths relative to the CSV, groups, and malformed rows named by line."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from faceledger.errors import InvalidArgument
from faceledger.evaluate.protocols import read_image_list, read_labels, read_pairs


@pytest.fixture()
def folder(tmp_path: Path) -> Path:
    """A protocol folder beside an image folder (the readers only check the files exist)."""
    (tmp_path / "img").mkdir()
    for name in ("a.jpg", "b.jpg", "c.jpg"):
        (tmp_path / "img" / name).write_bytes(b"x")
    (tmp_path / "protocols").mkdir()
    return tmp_path


def write(folder: Path, name: str, text: str) -> Path:
    p = folder / "protocols" / name
    p.write_text(text, encoding="utf-8")
    return p


def test_pairs_paths_are_relative_to_the_csv_folder(folder: Path) -> None:
    p = write(
        folder,
        "pairs.csv",
        "\ufeffa,b,same\n../img/a.jpg,../img/b.jpg,0\n\n../img/a.jpg,../img/a.jpg,1\n",
    )
    proto = read_pairs(p)
    assert [(x.a.name, x.b.name, x.same, x.line) for x in proto.pairs] == [
        ("a.jpg", "b.jpg", False, 2),
        ("a.jpg", "a.jpg", True, 4),
    ]
    assert proto.pairs[0].a == (folder / "img" / "a.jpg").resolve()
    assert not proto.has_groups
    assert [i.name for i in proto.images()] == ["a.jpg", "b.jpg"]


def test_pairs_with_groups(folder: Path) -> None:
    p = write(folder, "g.csv", "a,b,same,group_a,group_b\n../img/a.jpg,../img/b.jpg,0,f,m\n")
    proto = read_pairs(p)
    assert proto.has_groups
    assert (proto.pairs[0].group_a, proto.pairs[0].group_b) == ("f", "m")


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("a,b\n../img/a.jpg,../img/b.jpg\n", "line 1: header lacks column"),
        ("a,b,same\n../img/a.jpg,../img/b.jpg,1\n../img/a.jpg,1\n", "line 3: expected 3 fields"),
        ("a,b,same\n../img/a.jpg,../img/b.jpg,maybe\n", "line 2: 'same' must be 1 or 0"),
        ("a,b,same\n../img/a.jpg,../img/zzz.jpg,1\n", "line 2: image '../img/zzz.jpg' not found"),
        ("a,b,same\n,../img/b.jpg,1\n", "line 2: empty image path"),
        ("a,b,same,group_a\n../img/a.jpg,../img/b.jpg,1,f\n", "group_a and group_b"),
        ("a,b,same\n", "has no pairs"),
        ("", "is empty"),
    ],
)
def test_malformed_pairs_files_name_the_line(folder: Path, text: str, message: str) -> None:
    p = write(folder, "bad.csv", text)
    with pytest.raises(InvalidArgument, match=re.escape(message)) as info:
        read_pairs(p)
    assert str(p) in info.value.message


def test_missing_protocol_file(tmp_path: Path) -> None:
    with pytest.raises(InvalidArgument, match="does not exist"):
        read_pairs(tmp_path / "nope.csv")


def test_image_list_with_and_without_groups(folder: Path) -> None:
    g = read_image_list(write(folder, "g.csv", "image,subject\n../img/a.jpg,s1\n../img/b.jpg,s2\n"))
    assert [(e.image.name, e.subject, e.group) for e in g.entries] == [
        ("a.jpg", "s1", ""),
        ("b.jpg", "s2", ""),
    ]
    assert g.subjects == {"s1", "s2"} and not g.has_groups
    p = read_image_list(write(folder, "p.csv", "image,subject,group\n../img/c.jpg,s9,x\n"))
    assert p.has_groups and p.entries[0].group == "x"
    with pytest.raises(InvalidArgument, match="line 2: empty subject"):
        read_image_list(write(folder, "e.csv", "image,subject\n../img/c.jpg,\n"))


def test_labels_every_row_a_different_person(folder: Path) -> None:
    labels = read_labels(
        write(folder, "l.csv", "image,age,gender,race\n../img/a.jpg,30,f,x\n../img/b.jpg,4,m,y\n")
    )
    assert labels.columns == ("age", "gender", "race")
    assert labels.images[1].labels == {"age": "4", "gender": "m", "race": "y"}
    dup = "line 3: image '../img/a.jpg' already listed on line 2"
    with pytest.raises(InvalidArgument, match=re.escape(dup)):
        read_labels(write(folder, "d.csv", "image,race\n../img/a.jpg,x\n../img/a.jpg,y\n"))
    with pytest.raises(InvalidArgument, match="at least two images"):
        read_labels(write(folder, "one.csv", "image,race\n../img/a.jpg,x\n"))


def test_absolute_paths_are_kept(folder: Path) -> None:
    a = (folder / "img" / "a.jpg").resolve()
    g = read_image_list(write(folder, "abs.csv", f"image,subject\n{a},s1\n"))
    assert g.entries[0].image == a

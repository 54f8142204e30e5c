import hashlib
import io
import re
import tarfile

import pandas as pd
import pytest
from helpers import build_archive

from pipeline import download
from pipeline.core.config import write_params
from pipeline.download import ArchiveError, fetch, read_archive, verify_checksum


def test_archive_becomes_a_tidy_table_with_unlabelled_kept_apart(small_archive):
    labelled, unlabelled = read_archive(small_archive)
    assert list(labelled.columns) == ["id", "split", "label", "rating", "movie_id", "text"]
    assert len(labelled) == 160 and len(unlabelled) == 10
    assert labelled.groupby(["split", "label"]).size().tolist() == [40, 40, 40, 40]
    assert (labelled[labelled.label == 1].rating >= 7).all()
    assert (labelled[labelled.label == 0].rating <= 4).all()
    assert list(unlabelled.columns) == ["id", "split", "movie_id", "text"]


def test_each_review_gets_the_movie_of_its_line_in_the_urls_file(small_archive):
    """Line i of aclImdb/<split>/urls_<label>.txt is review <i>_<rating>.txt's movie."""
    expected, texts = {}, {}
    with tarfile.open(small_archive) as archive:
        for member in archive:
            if found := re.fullmatch(r"aclImdb/(\w+)/urls_(\w+)\.txt", member.name):
                lines = archive.extractfile(member).read().decode().splitlines()
                for i, line in enumerate(lines):
                    expected[(*found.groups(), i)] = re.search(r"/title/(tt\d+)/", line)[1]
            elif found := re.fullmatch(r"aclImdb/(\w+)/(\w+)/(\d+)_\d+\.txt", member.name):
                split, label, i = found.groups()
                texts[split, label, int(i)] = archive.extractfile(member).read().decode()
    labelled, unlabelled = read_archive(small_archive)
    folders = labelled.label.map({1: "pos", 0: "neg"})
    got = {**{(r.split, f, r.id): (r.movie_id, r.text)
              for r, f in zip(labelled.itertuples(), folders, strict=True)},
           **{(r.split, "unsup", r.id): (r.movie_id, r.text) for r in unlabelled.itertuples()}}
    assert got == {key: (expected[key], text) for key, text in texts.items()}
    # several reviews per movie, and no movie in both train and test, as in IMDB
    assert labelled.movie_id.nunique() < len(labelled) / 1.5
    train, test = (set(labelled.movie_id[labelled.split == s]) for s in ("train", "test"))
    assert train and test and not train & test


def test_archive_without_urls_files_is_refused_naming_the_missing_file(tmp_path):
    archive = build_archive(tmp_path / "no-urls.tar.gz", per_folder=3, unlabelled=2, urls=False)
    with pytest.raises(ArchiveError, match=r"has no aclImdb/test/urls_neg.txt, which gives the "
                                           r"movie of each review in aclImdb/test/neg/: the "
                                           r"archive is incomplete; download it again"):
        read_archive(archive)


def test_table_does_not_depend_on_member_order(tmp_path, small_archive):
    # reversed, the urls files come before the reviews they describe
    with tarfile.open(small_archive) as src:
        members = [(m, src.extractfile(m).read() if m.isfile() else None) for m in src]
    reordered = tmp_path / "reordered.tar.gz"
    with tarfile.open(reordered, "w:gz") as dst:
        for member, data in reversed(members):
            dst.addfile(member, io.BytesIO(data) if data is not None else None)
    pd.testing.assert_frame_equal(read_archive(reordered)[0], read_archive(small_archive)[0])


def test_checksum_mismatch_names_file_and_both_digests(small_archive):
    actual = hashlib.sha256(small_archive.read_bytes()).hexdigest()
    with pytest.raises(ArchiveError) as err:
        verify_checksum(small_archive, "0" * 64)
    assert str(small_archive) in str(err.value)
    assert "0" * 64 in str(err.value) and actual in str(err.value)


def test_truncated_archive_is_rejected(tmp_path, small_archive):
    truncated = tmp_path / "truncated.tar.gz"
    truncated.write_bytes(small_archive.read_bytes()[:5000])
    with pytest.raises(ArchiveError, match="truncated or corrupt"):
        read_archive(truncated)


def test_not_an_archive_is_rejected(tmp_path):
    junk = tmp_path / "junk.tar.gz"
    junk.write_bytes(b"<html>404 not found</html>")
    with pytest.raises(ArchiveError, match=str(junk)):
        read_archive(junk)


def _link(name, target, kind=tarfile.SYMTYPE):
    info = tarfile.TarInfo(name)
    info.type, info.linkname = kind, target
    return info


@pytest.mark.parametrize("member", [
    _link("aclImdb/train/pos/99_9.txt", "/etc/passwd"),
    _link("aclImdb/train/pos/98_9.txt", "aclImdb/README", tarfile.LNKTYPE),
    tarfile.TarInfo("../escape.txt"),
    tarfile.TarInfo("/abs/path.txt"),
])
def test_unsafe_members_are_refused(tmp_path, member):
    archive = build_archive(tmp_path / "evil.tar.gz", per_folder=2, extra_members=[member])
    with pytest.raises(ArchiveError, match="refusing"):
        read_archive(archive)


def test_non_utf8_review_is_reported_by_name(tmp_path):
    bad = tarfile.TarInfo("aclImdb/train/pos/7_8.txt")
    payload = "caf\xe9".encode("latin-1")
    bad.size = len(payload)
    path = tmp_path / "latin1.tar.gz"
    with tarfile.open(path, "w:gz") as archive:
        archive.addfile(bad, io.BytesIO(payload))
    with pytest.raises(ArchiveError, match="7_8.txt is not valid UTF-8"):
        read_archive(path)


@pytest.mark.parametrize("as_url", [False, True])
def test_local_copy_is_fetched_from_path_or_file_url(tmp_path, small_archive, as_url):
    source = small_archive.as_uri() if as_url else str(small_archive)
    fetch(source, tmp_path / "copy.tar.gz")
    assert (tmp_path / "copy.tar.gz").read_bytes() == small_archive.read_bytes()


def test_missing_local_copy_is_named(tmp_path):
    with pytest.raises(ArchiveError, match="archive not found.*nowhere.tar.gz"):
        fetch(str(tmp_path / "nowhere.tar.gz"), tmp_path / "copy.tar.gz")


def test_unreachable_url_fails_after_retries(tmp_path, monkeypatch):
    monkeypatch.setattr(download.time, "sleep", lambda _: None)
    with pytest.raises(ArchiveError, match="after 2 attempts.*IMDB_ARCHIVE"):
        fetch("http://127.0.0.1:9/aclImdb_v1.tar.gz", tmp_path / "a.tar.gz", retries=1)


def test_stage_leaves_no_output_on_checksum_mismatch(tmp_path, small_archive, monkeypatch):
    write_params(download.Path(__file__).parents[2] / "params.small.yaml",
                 tmp_path / "params.yaml")
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("IMDB_ARCHIVE", str(small_archive))
    monkeypatch.setenv("IMDB_ARCHIVE_SHA256", "f" * 64)
    with pytest.raises(ArchiveError, match="checksum mismatch"):
        download.main()
    assert not (tmp_path / "data").exists()

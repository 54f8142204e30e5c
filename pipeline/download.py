"""Stage `download`: fetch the IMDB archive, verify it, and write the reviews as tidy tables.

The archive is read member by member straight from the tar stream: nothing is extracted to
disk, and a member that is a link or whose path would escape the archive's root is refused.

Each review keeps its movie: line i (0-based) of `aclImdb/<split>/urls_<label>.txt` is the IMDB
page of review `<i>_<rating>.txt` in `aclImdb/<split>/<label>/`, and its title id (`tt0406816`
in `http://www.imdb.com/title/tt0406816/usercomments`) becomes the `movie_id` column. IMDB's
train and test splits share no movie; `prepare` keeps its validation set apart by movie too.
"""

from __future__ import annotations

import hashlib
import logging
import os
import re
import shutil
import tarfile
import tempfile
import time
from pathlib import Path
from urllib.parse import urlparse

import pandas as pd
import requests
from tqdm import tqdm

from pipeline import UserError
from pipeline.core.config import load_params
from pipeline.core.io import write_parquet
from pipeline.core.paths import REVIEWS_PATH, UNLABELLED_PATH
from pipeline.core.stage import stage_app

log = logging.getLogger(__name__)

ARCHIVE_ENV, SHA256_ENV = "IMDB_ARCHIVE", "IMDB_ARCHIVE_SHA256"
_MEMBER = re.compile(r"^aclImdb/(train|test)/(pos|neg|unsup)/(\d+)_(\d+)\.txt$")
_URLS = re.compile(r"^aclImdb/(train|test)/urls_(pos|neg|unsup)\.txt$")
_MOVIE_URL = re.compile(r"/title/(tt\d+)/")
LABELLED_COLUMNS = ["id", "split", "label", "rating", "movie_id", "text"]
UNLABELLED_COLUMNS = ["id", "split", "movie_id", "text"]


class ArchiveError(UserError):
    """The archive is missing, corrupt, unsafe or fails its checksum."""


def sha256_of(path: Path, chunk_size: int = 1 << 20) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(chunk_size):
            digest.update(chunk)
    return digest.hexdigest()


def verify_checksum(path: Path, expected: str) -> None:
    actual = sha256_of(path)
    if actual != expected.lower():
        raise ArchiveError(
            f"checksum mismatch for {path}: expected sha256 {expected.lower()}, got {actual}. "
            "The file is corrupt, truncated or not the IMDB archive; download it again, or set "
            f"{SHA256_ENV} to the digest of the copy you trust.")


def fetch(source: str, destination: Path, retries: int = 3) -> None:
    """Copy `source` (http(s) URL, file:// URL or local path) to `destination`."""
    parsed = urlparse(source)
    if parsed.scheme in ("http", "https"):
        _download(source, destination, retries)
        return
    local = Path(parsed.path if parsed.scheme == "file" else source).expanduser()
    if not local.is_file():
        raise ArchiveError(f"archive not found: {local} (from {source!r})")
    shutil.copyfile(local, destination)


def _download(url: str, destination: Path, retries: int) -> None:
    for attempt in range(retries + 1):
        try:
            with requests.get(url, stream=True, timeout=30) as response:
                response.raise_for_status()
                total = int(response.headers.get("content-length", 0)) or None
                with open(destination, "wb") as f, tqdm(
                    total=total, unit="B", unit_scale=True, desc=Path(url).name
                ) as bar:
                    for chunk in response.iter_content(chunk_size=1 << 20):
                        f.write(chunk)
                        bar.update(len(chunk))
            return
        except requests.RequestException as err:
            if attempt == retries:
                raise ArchiveError(
                    f"could not download {url} after {retries + 1} attempts: {err}. "
                    f"Without network access, point {ARCHIVE_ENV} at a local copy.") from err
            wait = 2**attempt
            log.warning("download failed (%s); retrying in %d s", err, wait)
            time.sleep(wait)


def read_archive(path: Path) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Return (labelled reviews, unlabelled reviews) from an archive in the aclImdb layout.

    Columns: id, split, label (1 = pos), rating, movie_id, text; the unlabelled table has no
    label or rating. The urls files may come anywhere in the tar stream.
    """
    rows, urls = [], {}
    try:
        with tarfile.open(path, "r:gz") as archive:
            for member in tqdm(archive, desc="reading reviews", unit=" files"):
                _refuse_unsafe(member, path)
                if member.isfile() and (found_urls := _URLS.match(member.name)):
                    raw = archive.extractfile(member).read()
                    urls[found_urls.groups()] = _decode(raw, member.name).splitlines()
                    continue
                match = _MEMBER.match(member.name)
                if not member.isfile() or not match:
                    continue
                split, label, review_id, rating = match.groups()
                raw = archive.extractfile(member).read()
                rows.append((int(review_id), split, label, int(rating), _decode(raw, member.name)))
            # tarfile stops at the end-of-archive marker; reading on to the end makes gzip
            # check its CRC and length trailer, which catches a corrupt copy.
            while archive.fileobj.read(1 << 20):
                pass
    except (tarfile.TarError, EOFError, OSError) as err:
        raise ArchiveError(f"{path} is not a readable .tar.gz archive ({err}): "
                           "it is truncated or corrupt; download it again") from err
    table = pd.DataFrame(rows, columns=["id", "split", "label", "rating", "text"])
    if table.empty:
        raise ArchiveError(f"{path} holds no reviews in the aclImdb/{{train,test}}/{{pos,neg}} "
                           "layout")
    found = set(zip(table.split, table.label, strict=True))
    missing = [f"aclImdb/{split}/{label}/" for split in ("train", "test")
               for label in ("pos", "neg") if (split, label) not in found]
    if missing:
        raise ArchiveError(f"{path} has no reviews in {', '.join(missing)}: the archive is "
                           "incomplete; download it again")
    table["movie_id"] = _movie_ids(table, urls, path)
    labelled = _tidy(table[table.label != "unsup"])[LABELLED_COLUMNS]
    labelled["label"] = (labelled.label == "pos").astype("int8")
    unlabelled = _tidy(table[table.label == "unsup"])[UNLABELLED_COLUMNS]
    return labelled, unlabelled


def _movie_ids(table: pd.DataFrame, urls: dict[tuple[str, str], list[str]],
               archive: Path) -> pd.Series:
    """Each review's IMDB title id, from line <id> of its folder's urls file."""
    movie_ids = pd.Series("", index=table.index)
    for (split, label), folder in table.groupby(["split", "label"], sort=True):
        name = f"aclImdb/{split}/urls_{label}.txt"
        if (split, label) not in urls:
            raise ArchiveError(f"{archive} has no {name}, which gives the movie of each review "
                               f"in aclImdb/{split}/{label}/: the archive is incomplete; "
                               "download it again")
        lines = urls[split, label]
        ids = []
        for number, line in enumerate(lines, start=1):
            match = _MOVIE_URL.search(line)
            if not match:
                raise ArchiveError(f"{archive}: {name} line {number} is not an IMDB title URL "
                                   f"(.../title/tt<digits>/...): {line[:80]!r}; the archive is "
                                   "corrupt; download it again")
            ids.append(match.group(1))
        beyond = folder[folder.id >= len(ids)]
        if len(beyond):
            first = beyond.sort_values("id").iloc[0]
            raise ArchiveError(
                f"{archive}: {name} has {len(ids)} lines, so review aclImdb/{split}/{label}/"
                f"{first.id}_{first.rating}.txt has no movie (it needs line {first.id + 1}): the "
                "archive is incomplete or corrupt; download it again")
        movie_ids.loc[folder.index] = [ids[i] for i in folder.id]
    return movie_ids


def _refuse_unsafe(member: tarfile.TarInfo, archive: Path) -> None:
    name = member.name
    if member.issym() or member.islnk():
        raise ArchiveError(f"{archive}: refusing link member {name!r} -> {member.linkname!r}")
    parts = Path(name).parts
    if name.startswith(("/", "\\")) or ".." in parts or (parts and ":" in parts[0]):
        raise ArchiveError(f"{archive}: refusing member {name!r}, its path leaves the archive")
    if not (member.isfile() or member.isdir()):
        raise ArchiveError(f"{archive}: refusing special member {name!r}")


def _decode(raw: bytes, name: str) -> str:
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as err:
        raise ArchiveError(f"{name} is not valid UTF-8 ({err})") from None


def _tidy(table: pd.DataFrame) -> pd.DataFrame:
    # Sorted so the same reviews give byte-identical tables whatever the archive's member order.
    return table.sort_values(["split", "label", "id"]).reset_index(drop=True)




def main() -> None:
    params = load_params().download
    source = os.environ.get(ARCHIVE_ENV) or params.url
    expected = os.environ.get(SHA256_ENV) or params.sha256
    if os.environ.get(ARCHIVE_ENV) and not os.environ.get(SHA256_ENV):
        raise SystemExit(f"{ARCHIVE_ENV} is set but {SHA256_ENV} is not: give the sha256 of "
                         "your copy so it can be verified")
    with tempfile.TemporaryDirectory(prefix="imdb-download-") as tmp:
        archive = Path(tmp) / "aclImdb_v1.tar.gz"
        log.info("fetching %s", source)
        fetch(source, archive, params.retries)
        verify_checksum(archive, expected)
        labelled, unlabelled = read_archive(archive)
    write_parquet(labelled, REVIEWS_PATH)
    write_parquet(unlabelled, UNLABELLED_PATH)
    log.info("wrote %d labelled reviews to %s and %d unlabelled to %s",
             len(labelled), REVIEWS_PATH, len(unlabelled), UNLABELLED_PATH)


if __name__ == "__main__":
    stage_app(__doc__, main)()

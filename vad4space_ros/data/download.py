# Copyright 2026 The vad4space_ros Authors
#
# Licensed under the Apache License, Version 2.0 (the "License");
# you may not use this file except in compliance with the License.
# You may obtain a copy of the License at
#
#     http://www.apache.org/licenses/LICENSE-2.0
#
# Unless required by applicable law or agreed to in writing, software
# distributed under the License is distributed on an "AS IS" BASIS,
# WITHOUT WARRANTIES OR CONDITIONS OF ANY KIND, either express or implied.
# See the License for the specific language governing permissions and
# limitations under the License.

"""Fetch the real benchmark archives from Zenodo, resumably, and unpack them into the layout.

The file list comes from the Zenodo records API (``GET {base}/api/records/{id}``: JSON with
``files[]`` entries holding ``key``, ``size`` and ``checksum`` = ``"md5:<hex>"``); each file is
fetched from ``{base}/api/records/{id}/files/{key}/content``. ``base`` is
``https://zenodo.org`` unless a mirror is given (``url_base``).

* LROCNet, record 7041842: per-class/per-split zip archives (seen: ``ejecta_train.zip``,
  ``oldcrater_train.zip``, ``none_train1..4.zip``, ``test.zip`` and the validation archives).
  Each image's split and class come from folder names inside the archive when present, else
  from the archive name (``<class>_<split>[N].zip``), and it lands in
  ``<root>/<split>/<class>/``.
* Mastcam, record 3732485: ``train_typical.zip``, ``validation_typical.zip``,
  ``test_typical.zip``, ``test_novel.zip``; each unpacks to the folder of its name.

Downloads go to ``<root>/.downloads/<key>.part`` and resume with an HTTP ``Range`` request
after an interruption; a finished file is checked against the record's size and md5 (a
mismatch deletes it and raises DownloadError) before it is unpacked. Files of the record that
are not archives (e.g. a README) are copied to ``<root>``. Zip and tar members that
would land outside the target folder are refused.
"""
from __future__ import annotations

from dataclasses import dataclass
import hashlib
import json
from pathlib import Path
import re
import shutil
import tarfile
from urllib.error import HTTPError, URLError
from urllib.parse import quote
from urllib.request import Request, urlopen
import zipfile

from tqdm import tqdm

from vad4space_ros.data import lroc, mastcam
from vad4space_ros.data.datasets import load_dataset
from vad4space_ros.data.samples import Dataset, IMAGE_SUFFIXES

ZENODO_BASE = 'https://zenodo.org'
RECORDS = {'lroc': 7041842, 'mastcam': 3732485}
CHUNK_BYTES = 1 << 20
TIMEOUT_S = 60
DOWNLOAD_DIR = '.downloads'


class DownloadError(RuntimeError):
    """A download failed, was incomplete or did not match its checksum."""


@dataclass(frozen=True)
class RemoteFile:
    """One file of a Zenodo record."""

    key: str
    size: int
    md5: str
    url: str


def fetch_record(record_id: int, url_base: str = ZENODO_BASE) -> list[RemoteFile]:
    """Return the files of a Zenodo record from its API JSON."""
    base = url_base.rstrip('/')
    url = f'{base}/api/records/{record_id}'
    try:
        with urlopen(Request(url, headers={'Accept': 'application/json'}),
                     timeout=TIMEOUT_S) as response:
            record = json.load(response)
    except (HTTPError, URLError, OSError, ValueError) as error:
        raise DownloadError(f'cannot read record {url}: {error}') from error
    files = record.get('files')
    if not isinstance(files, list) or not files:
        raise DownloadError(f'record {url} lists no files')
    result = []
    for entry in files:
        checksum = str(entry.get('checksum', ''))
        if not checksum.startswith('md5:') or 'key' not in entry or 'size' not in entry:
            raise DownloadError(f'record {url}: unexpected file entry {entry}')
        result.append(RemoteFile(
            entry['key'], int(entry['size']), checksum[4:].lower(),
            f'{base}/api/records/{record_id}/files/{quote(entry["key"])}/content'))
    return result


def md5sum(path: Path) -> str:
    """Return the hex md5 of a file."""
    digest = hashlib.md5()
    with open(path, 'rb') as handle:
        for chunk in iter(lambda: handle.read(CHUNK_BYTES), b''):
            digest.update(chunk)
    return digest.hexdigest()


def download_file(remote: RemoteFile, target: Path, progress: bool = True) -> Path:
    """Download ``remote`` to ``target``, resuming ``target.part``; verify size and md5."""
    if target.exists() and target.stat().st_size == remote.size and md5sum(
            target) == remote.md5:
        return target
    part = target.with_name(target.name + '.part')
    offset = part.stat().st_size if part.exists() else 0
    if offset > remote.size:
        part.unlink()
        offset = 0
    if offset < remote.size:
        headers = {'Range': f'bytes={offset}-'} if offset else {}
        try:
            with urlopen(Request(remote.url, headers=headers), timeout=TIMEOUT_S) as response:
                if offset and response.status != 206:
                    offset = 0  # the server ignored the range: start again
                with open(part, 'ab' if offset else 'wb') as handle, tqdm(
                        total=remote.size, initial=offset, unit='B', unit_scale=True,
                        desc=remote.key, disable=not progress) as bar:
                    for chunk in iter(lambda: response.read(CHUNK_BYTES), b''):
                        handle.write(chunk)
                        bar.update(len(chunk))
        except (HTTPError, URLError, OSError) as error:
            raise DownloadError(
                f'download of {remote.url} failed ({error}); run again to resume') from error
    size = part.stat().st_size
    if size != remote.size:
        raise DownloadError(f'{remote.key}: got {size} bytes, expected {remote.size}; '
                            'run again to resume')
    digest = md5sum(part)
    if digest != remote.md5:
        part.unlink()
        raise DownloadError(f"{remote.key}: md5 {digest} does not match the record's "
                            f'{remote.md5}; the partial file was deleted')
    part.replace(target)
    return target


def _safe_member(base: Path, name: str) -> Path:
    target = (base / name).resolve()
    if base.resolve() not in target.parents and target != base.resolve():
        raise DownloadError(f'archive member {name!r} would be written outside {base}')
    return target


def extract_archive(archive: Path, destination: Path) -> None:
    """Unpack a zip or tar archive into ``destination``, refusing unsafe member paths."""
    destination.mkdir(parents=True, exist_ok=True)
    if zipfile.is_zipfile(archive):
        with zipfile.ZipFile(archive) as bundle:
            for name in bundle.namelist():
                _safe_member(destination, name)
            bundle.extractall(destination)
    elif tarfile.is_tarfile(archive):
        with tarfile.open(archive) as bundle:
            for member in bundle.getmembers():
                _safe_member(destination, member.name)
            bundle.extractall(destination, filter='data')
    else:
        raise DownloadError(f'{archive.name} is neither a zip nor a tar archive')


def _archive_stem(key: str) -> str:
    return re.sub(r'(\.tar\.gz|\.tgz|\.tar|\.zip)$', '', key)


def _place_lroc(staging: Path, root: Path, key: str) -> int:
    stem = _archive_stem(key)
    match = re.fullmatch(r'(ejecta|oldcrater|none)_(train|val|test)\d*', stem)
    moved = 0
    for path in sorted(staging.rglob('*')):
        if not path.is_file() or path.suffix.lower() not in IMAGE_SUFFIXES:
            continue
        parts = path.relative_to(staging).parts[:-1]
        split = next((p for p in parts if p in lroc.SPLITS), None) or (
            match.group(2) if match else (stem if stem in lroc.SPLITS else None))
        category = next((p for p in parts if p in lroc.CLASSES), None) or (
            match.group(1) if match else None)
        if split is None or category is None:
            raise DownloadError(f'{key}: cannot tell the split/class of {path.name}')
        target = root / split / category / path.name
        target.parent.mkdir(parents=True, exist_ok=True)
        path.replace(target)
        moved += 1
    return moved


def _place_mastcam(staging: Path, root: Path, key: str) -> int:
    stem = _archive_stem(key)
    folders = set(mastcam.TYPICAL_FOLDERS.values()) | {mastcam.NOVEL_FOLDER}
    found = [p for p in staging.rglob('*') if p.is_dir() and p.name in folders]
    sources = ({p.name: p for p in found} if found
               else {stem: staging} if stem in folders else {})
    if not sources:
        raise DownloadError(f'{key}: no Mastcam folder ({sorted(folders)}) inside')
    moved = 0
    for name, source in sources.items():
        for path in sorted(source.rglob('*')):
            if path.is_file():
                target = root / name / path.relative_to(source)
                target.parent.mkdir(parents=True, exist_ok=True)
                path.replace(target)
                moved += 1
    return moved


def download_dataset(dataset: str, root: Path | str, url_base: str = ZENODO_BASE,
                     progress: bool = True, keep_archives: bool = False) -> Dataset:
    """Download, verify and unpack ``lroc`` or ``mastcam`` into ``root``; return it loaded."""
    if dataset not in RECORDS:
        raise ValueError(f'unknown dataset {dataset!r}: expected one of {sorted(RECORDS)}')
    root = Path(root)
    downloads = root / DOWNLOAD_DIR
    downloads.mkdir(parents=True, exist_ok=True)
    place = _place_lroc if dataset == 'lroc' else _place_mastcam
    for remote in fetch_record(RECORDS[dataset], url_base):
        archive = download_file(remote, downloads / remote.key, progress)
        if not (zipfile.is_zipfile(archive) or tarfile.is_tarfile(archive)):
            shutil.copyfile(archive, root / remote.key)  # e.g. a README of the record
            continue
        staging = downloads / f'{remote.key}.extract'
        shutil.rmtree(staging, ignore_errors=True)
        extract_archive(archive, staging)
        place(staging, root, remote.key)
        shutil.rmtree(staging)
        if not keep_archives:
            archive.unlink()
    if not keep_archives:
        shutil.rmtree(downloads, ignore_errors=True)
    return load_dataset(dataset, root)

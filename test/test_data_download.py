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

"""``download_dataset`` against a local Zenodo-like server on 127.0.0.1 (loopback only)."""
import hashlib
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
import io
import json
from pathlib import Path
import shutil
import threading
import zipfile

import numpy as np
from PIL import Image
import pytest

from vad4space_ros.data import download, synthetic
from vad4space_ros.data.download import download_dataset, DownloadError


class ZenodoLikeServer:
    """Serve ``/api/records/<id>`` JSON and file contents with HTTP Range support."""

    def __init__(self):
        self.files: dict[str, bytes] = {}
        self.md5_override: dict[str, str] = {}
        self.ranges: list[str] = []
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_GET(self):  # noqa: N802 (http.server API)
                parts = self.path.strip('/').split('/')
                if len(parts) == 3:
                    entries = [{'key': key, 'size': len(data), 'checksum': 'md5:' + (
                        server.md5_override.get(key) or hashlib.md5(data).hexdigest())}
                        for key, data in server.files.items()]
                    body = json.dumps({'id': int(parts[2]), 'files': entries}).encode()
                    self.send_response(200)
                    self.send_header('Content-Length', str(len(body)))
                    self.end_headers()
                    self.wfile.write(body)
                    return
                data = server.files[parts[4]]
                start = 0
                if 'Range' in self.headers:
                    server.ranges.append(self.headers['Range'])
                    start = int(self.headers['Range'].split('=')[1].split('-')[0])
                    self.send_response(206)
                    self.send_header('Content-Range', f'bytes {start}-{len(data) - 1}/{len(data)}')
                else:
                    self.send_response(200)
                self.send_header('Content-Length', str(len(data) - start))
                self.end_headers()
                self.wfile.write(data[start:])

        self.httpd = ThreadingHTTPServer(('127.0.0.1', 0), Handler)
        self.url = f'http://127.0.0.1:{self.httpd.server_address[1]}'
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def close(self):
        """Stop serving and release the port."""
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def server():
    instance = ZenodoLikeServer()
    yield instance
    instance.close()


def _zip_folder(folder: Path, arcroot: str) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, 'w') as bundle:
        for path in sorted(folder.rglob('*')):
            if path.is_file():
                bundle.write(path, f'{arcroot}/{path.relative_to(folder)}')
    return buffer.getvalue()


@pytest.fixture(scope='module')
def mastcam_archives(tmp_path_factory) -> dict[str, bytes]:
    root = tmp_path_factory.mktemp('src')
    synthetic.generate('mastcam', root, seed=9, size='tiny', progress=False)
    return {f'{name}.zip': _zip_folder(root / name, name)
            for name in ('train_typical', 'validation_typical', 'test_typical', 'test_novel')}


def test_mastcam_download_unpacks_the_published_layout(server, mastcam_archives, tmp_path):
    server.files.update(mastcam_archives)
    dataset = download_dataset('mastcam', tmp_path / 'data', url_base=server.url,
                               progress=False)
    assert len(dataset.select(split='train')) == synthetic.MASTCAM_TINY_TYPICAL['train']
    assert len(dataset.select(label=1)) == 16
    assert not (tmp_path / 'data' / download.DOWNLOAD_DIR).exists()


def test_interrupted_download_resumes_with_a_range_request(server, mastcam_archives, tmp_path):
    key = 'test_typical.zip'
    data = mastcam_archives[key]
    server.files[key] = data
    downloads = tmp_path / 'data' / download.DOWNLOAD_DIR
    downloads.mkdir(parents=True)
    (downloads / f'{key}.part').write_bytes(data[:len(data) // 2])
    [remote] = download.fetch_record(download.RECORDS['mastcam'], server.url)
    result = download.download_file(remote, downloads / key, progress=False)
    assert server.ranges == [f'bytes={len(data) // 2}-']
    assert result.read_bytes() == data and not (downloads / f'{key}.part').exists()


def test_checksum_mismatch_is_an_error_and_drops_the_partial_file(
        server, mastcam_archives, tmp_path):
    key = 'train_typical.zip'
    server.files[key] = mastcam_archives[key]
    server.md5_override[key] = '0' * 32
    with pytest.raises(DownloadError, match='md5'):
        download_dataset('mastcam', tmp_path / 'data', url_base=server.url, progress=False)
    assert not list((tmp_path / 'data' / download.DOWNLOAD_DIR).glob('*.part'))


def test_lroc_archives_are_sorted_by_archive_name_and_inner_folders(server, tmp_path):
    def jpeg_zip(names_by_folder):
        buffer = io.BytesIO()
        with zipfile.ZipFile(buffer, 'w') as bundle:
            for folder, names in names_by_folder.items():
                for name in names:
                    image = io.BytesIO()
                    Image.fromarray(np.zeros((8, 8), np.uint8), 'L').save(image, 'JPEG')
                    bundle.writestr(f'{folder}{name}', image.getvalue())
        return buffer.getvalue()

    server.files['ejecta_train.zip'] = jpeg_zip({'': ['e1.jpg', 'e2.jpg']})
    server.files['none_train1.zip'] = jpeg_zip({'none_train1/': ['n1.jpg']})
    server.files['oldcrater_train.zip'] = jpeg_zip({'': ['o1.jpg']})
    server.files['val.zip'] = jpeg_zip({f'val/{c}/': [f'v{c}.jpg'] for c in
                                        ('ejecta', 'oldcrater', 'none')})
    server.files['test.zip'] = jpeg_zip({f'test/{c}/': [f't{c}.jpg'] for c in
                                         ('ejecta', 'oldcrater', 'none')})
    server.files['README.txt'] = b'about the record'
    dataset = download_dataset('lroc', tmp_path / 'lroc', url_base=server.url, progress=False)
    assert dataset.counts()[('train', 'ejecta')] == 2
    assert (tmp_path / 'lroc' / 'train' / 'none' / 'n1.jpg').is_file()
    assert (tmp_path / 'lroc' / 'test' / 'oldcrater' / 'toldcrater.jpg').is_file()
    assert (tmp_path / 'lroc' / 'README.txt').read_bytes() == b'about the record'


def test_archive_member_outside_the_target_is_refused(tmp_path):
    archive = tmp_path / 'evil.zip'
    with zipfile.ZipFile(archive, 'w') as bundle:
        bundle.writestr('../escape.txt', 'x')
    with pytest.raises(DownloadError, match='outside'):
        download.extract_archive(archive, tmp_path / 'out')
    assert not (tmp_path / 'escape.txt').exists()
    shutil.rmtree(tmp_path / 'out', ignore_errors=True)

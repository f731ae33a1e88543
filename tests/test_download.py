"""The downloader against a file server on 127.0.0.1."""

import functools
import hashlib
import http.server
import io
import threading

import pytest

from deqbench.download import DownloadError, download

PAYLOAD = bytes(range(256)) * 4096  # 1 MiB


class RangeHandler(http.server.SimpleHTTPRequestHandler):
    """Serves files, honouring a single ``Range: bytes=N-`` header."""

    def log_message(self, *args):
        pass

    def send_head(self):
        spec = self.headers.get("Range")
        if not spec:
            return super().send_head()
        path = self.translate_path(self.path)
        data = open(path, "rb").read()
        start = int(spec.split("=")[1].rstrip("-"))
        if start >= len(data):
            self.send_error(416)
            return None
        self.send_response(206)
        self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
        self.send_header("Content-Length", str(len(data) - start))
        self.end_headers()
        return io.BytesIO(data[start:])


@pytest.fixture
def server(tmp_path):
    root = tmp_path / "served"
    root.mkdir()
    (root / "data.bin").write_bytes(PAYLOAD)
    handler = functools.partial(RangeHandler, directory=str(root))
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}", root
    httpd.shutdown()


SHA = hashlib.sha256(PAYLOAD).hexdigest()


def test_download_verifies_and_renames(server, tmp_path):
    url, _ = server
    target = download(f"{url}/data.bin", tmp_path / "out" / "data.bin", SHA)
    assert target.read_bytes() == PAYLOAD
    assert not (tmp_path / "out" / "data.bin.part").exists()


def test_partial_file_is_resumed(server, tmp_path):
    url, _ = server
    target = tmp_path / "data.bin"
    (tmp_path / "data.bin.part").write_bytes(PAYLOAD[:1000])
    download(f"{url}/data.bin", target, SHA)
    assert target.read_bytes() == PAYLOAD


def test_corrupted_download_is_removed_with_a_clear_error(server, tmp_path):
    url, root = server
    (root / "data.bin").write_bytes(PAYLOAD[:-1] + b"\x00")
    with pytest.raises(DownloadError, match="sha256 mismatch"):
        download(f"{url}/data.bin", tmp_path / "data.bin", SHA)
    assert not (tmp_path / "data.bin").exists() and not (tmp_path / "data.bin.part").exists()


def test_existing_verified_file_is_not_fetched_again(tmp_path):
    target = tmp_path / "data.bin"
    target.write_bytes(PAYLOAD)
    assert download("http://127.0.0.1:9/unreachable", target, SHA) == target


def test_missing_file_names_the_url(server, tmp_path):
    url, _ = server
    with pytest.raises(DownloadError, match="data-missing.bin: HTTP 404"):
        download(f"{url}/data-missing.bin", tmp_path / "x.bin", SHA)

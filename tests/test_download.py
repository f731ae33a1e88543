"""The downloader, and the datasets it fetches, against a file server on 127.0.0.1."""

import functools
import hashlib
import http.server
import io
import threading
import zipfile

import h5py
import numpy as np
import pytest
import torch
import yaml

from deqbench.config import ROOT
from deqbench.datasets import load_spec, prepare, to_unit_square
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


def test_short_download_is_kept_for_a_resume(server, tmp_path):
    """A server that stops early: the pinned size names what is missing, the resume
    then completes the same file."""
    url, root = server
    (root / "data.bin").write_bytes(PAYLOAD[:5000])
    with pytest.raises(DownloadError, match=f"incomplete, 5000 of {len(PAYLOAD)} bytes"):
        download(f"{url}/data.bin", tmp_path / "data.bin", SHA, size=len(PAYLOAD))
    assert (tmp_path / "data.bin.part").stat().st_size == 5000
    (root / "data.bin").write_bytes(PAYLOAD)
    assert download(f"{url}/data.bin", tmp_path / "data.bin", SHA, size=len(PAYLOAD)).read_bytes() == PAYLOAD


def test_existing_verified_file_is_not_fetched_again(tmp_path):
    target = tmp_path / "data.bin"
    target.write_bytes(PAYLOAD)
    assert download("http://127.0.0.1:9/unreachable", target, SHA) == target


def test_missing_file_names_the_url(server, tmp_path):
    url, _ = server
    with pytest.raises(DownloadError, match="data-missing.bin: HTTP 404"):
        download(f"{url}/data-missing.bin", tmp_path / "x.bin", SHA)


def test_lodopab_end_to_end_from_pinned_archives(server, tmp_path):
    """The shipped lodopab spec, pointed at fake archives with pinned digests: download,
    members read in name order, first slices of each split resized."""
    url, root = server
    rng = np.random.default_rng(0)
    slices, archives = {}, {}
    for split, name in [("train", "train"), ("val", "validation"), ("test", "test")]:
        archive = root / f"ground_truth_{name}.zip"
        with zipfile.ZipFile(archive, "w") as zipped:
            zipped.writestr("README.txt", "not an image")
            members = {f"ground_truth_{name}_{i:03d}.hdf5": rng.uniform(size=(4, 30, 30)) for i in range(3)}
            for member in sorted(members, reverse=True):
                buffer = io.BytesIO()
                with h5py.File(buffer, "w") as handle:
                    handle["data"] = members[member]
                zipped.writestr(member, buffer.getvalue())
        slices[split] = np.concatenate([members[m] for m in sorted(members)])
        archives[split] = archive.read_bytes()
    spec = yaml.safe_load((ROOT / "datasets" / "lodopab" / "dataset.yaml").read_text())
    spec.update(image_size=16, splits={"train": 6, "val": 2, "test": 12})
    spec["prepare"]["cache"] = str(tmp_path / "cache")
    for entry in spec["prepare"]["files"]:
        entry["url"] = f"{url}/{entry['url'].rsplit('/', 1)[1]}"
        entry["size"] = len(archives[entry["split"]])
        del entry["md5"]
        algorithm = "md5" if entry["split"] == "test" else "sha256"
        entry[algorithm] = hashlib.new(algorithm, archives[entry["split"]]).hexdigest()
    (tmp_path / "lodopab").mkdir()
    (tmp_path / "lodopab" / "dataset.yaml").write_text(yaml.safe_dump(spec))
    prepared = prepare(load_spec(tmp_path / "lodopab"), seed=0)
    for split, count in spec["splits"].items():
        expected = np.stack([to_unit_square(s, 16) for s in slices[split][:count]])
        assert torch.equal(prepared[split], torch.from_numpy(expected))
    assert sorted(p.name for p in (tmp_path / "cache").iterdir()) == [
        "ground_truth_test.zip", "ground_truth_train.zip", "ground_truth_validation.zip"]

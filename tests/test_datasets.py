"""Datasets: determinism, value range, split hygiene."""

import hashlib

import h5py
import numpy as np
import pytest
import torch
import yaml

from deqbench.config import ROOT, ConfigError, load_yaml, validate
from deqbench.datasets import ellipse_phantom, fastmri_volumes, load_spec, prepare, split_rng, to_unit_square
from deqbench.io import save_torch


def sha256(path):
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_ellipses_same_seed_same_bytes(tmp_path):
    spec = load_spec(ROOT / "datasets" / "ellipses", {"image_size": 32, "splits": {"train": 4, "val": 2, "test": 2}})
    save_torch(prepare(spec, seed=0), tmp_path / "a.pt")
    save_torch(prepare(spec, seed=0), tmp_path / "b.pt")
    save_torch(prepare(spec, seed=1), tmp_path / "c.pt")
    assert sha256(tmp_path / "a.pt") == sha256(tmp_path / "b.pt")
    assert sha256(tmp_path / "a.pt") != sha256(tmp_path / "c.pt")


def test_ellipse_splits_are_independent():
    """Growing the training split does not change the test images."""
    small = prepare(load_spec(ROOT / "datasets" / "ellipses", {"image_size": 32, "splits": {"train": 2, "test": 2}}), 0)
    large = prepare(load_spec(ROOT / "datasets" / "ellipses", {"image_size": 32, "splits": {"train": 5, "test": 2}}), 0)
    assert torch.equal(small["test"], large["test"])
    assert not torch.equal(small["train"][:2], small["test"])


@pytest.mark.parametrize("name", ["ellipses", "mni-brain", "dicom-ct", "dicom-mr"])
def test_images_are_in_unit_range(name):
    overrides = {"image_size": 32, "splits": {"train": 3, "val": 2, "test": 2}} if name == "ellipses" else {"image_size": 32}
    splits = prepare(load_spec(ROOT / "datasets" / name, overrides), 0)
    for images in splits.values():
        assert images.dtype == torch.float32 and images.shape[1:] == (32, 32)
        assert images.min() >= 0 and images.max() == pytest.approx(1.0)


def test_ellipse_background_stays_zero():
    """As in dival: pixels in no ellipse are 0, so the border of most phantoms is 0
    (before, every value was shifted by the most negative sum)."""
    rng = split_rng(0, "test")
    phantoms = np.stack([ellipse_phantom(rng, 32) for _ in range(20)])
    border = np.concatenate([phantoms[:, 0], phantoms[:, -1], phantoms[:, :, 0], phantoms[:, :, -1]], axis=1)
    assert np.median(border) == 0 and (phantoms.min(axis=(1, 2)) == 0).all()
    assert np.allclose(phantoms.max(axis=(1, 2)), 1)


def test_mni_slices_never_neighbour_across_splits():
    spec = load_spec(ROOT / "datasets" / "mni-brain", {"image_size": 16})
    params = spec["prepare"]
    first, last = params["slice_range"]
    owner = {}
    for start in range(first, last, params["block"]):
        split = params["pattern"][(start - first) // params["block"] % len(params["pattern"])]
        for z in range(start, min(start + params["block"], last) - params["gap"]):
            owner[z] = split
    for z, split in owner.items():
        assert owner.get(z + 1, split) == split, f"slices {z} and {z + 1} fall in different splits"
    counts = {split: len(images) for split, images in prepare(spec, 0).items()}
    assert counts == {s: list(owner.values()).count(s) for s in ("train", "val", "test")}


def test_bad_dataset_yaml_names_file_and_key(tmp_path):
    folder = tmp_path / "broken"
    folder.mkdir()
    (folder / "dataset.yaml").write_text("name: broken\ndescription: x\nsource: x\nlicence: x\nimage_size: four\nsplits: {test: 1}\nprepare: {generator: ellipses}\n")
    with pytest.raises(ConfigError, match=r"broken/dataset.yaml: key 'image_size'"):
        load_spec(folder)


@pytest.fixture
def fake_fastmri(tmp_path):
    """Ten single-coil volumes in fastMRI's layout, 14 to 16 slices each, random data."""
    rng = np.random.default_rng(0)
    folder = tmp_path / "singlecoil_train"
    folder.mkdir()
    for i in range(10):
        with h5py.File(folder / f"file{i:04d}.h5", "w") as handle:
            slices = 14 + i % 3
            handle["kspace"] = rng.normal(size=(slices, 24, 20)) + 1j * rng.normal(size=(slices, 24, 20))
            handle["reconstruction_esc"] = rng.uniform(size=(slices, 24, 24)).astype(np.float32)
    return folder


def fastmri_spec(folder, splits=None):
    return load_spec(ROOT / "datasets" / "fastmri", {"path": str(folder), "image_size": 16,
                                                     "splits": splits or {"train": None, "val": None, "test": None}})


def test_fastmri_splits_by_volume(fake_fastmri):
    spec = fastmri_spec(fake_fastmri)
    volumes = fastmri_volumes(spec, seed=0)
    assigned = [f.name for files in volumes.values() for f in files]
    assert sorted(assigned) == sorted(f.name for f in fake_fastmri.glob("*.h5")) and len(set(assigned)) == 10
    assert all(volumes[split] for split in ("train", "val", "test"))
    edge = spec["prepare"]["edge_slices"]
    splits = prepare(spec, seed=0)
    for split, files in volumes.items():
        expected = []
        for file in files:
            with h5py.File(file, "r") as handle:
                expected.extend(to_unit_square(s, 16) for s in handle["reconstruction_esc"][edge:-edge])
        assert torch.equal(splits[split], torch.from_numpy(np.stack(expected)))


def test_fastmri_is_deterministic(fake_fastmri):
    spec = fastmri_spec(fake_fastmri, {"train": 10, "val": 3, "test": 3})
    first, again = prepare(spec, seed=0), prepare(spec, seed=0)
    assert all(torch.equal(first[s], again[s]) for s in first)
    assert [len(first[s]) for s in ("train", "val", "test")] == [10, 3, 3]
    assert fastmri_volumes(spec, 0) != fastmri_volumes(spec, 1)


def test_fastmri_path_comes_from_the_config(fake_fastmri):
    config = load_yaml(ROOT / "config" / "config.yaml")
    config["datasets"]["fastmri"] = {"path": str(fake_fastmri)}
    validate(config, "config", "config.yaml")


def test_fastmri_without_path_names_file_key_and_agreement(tmp_path):
    with pytest.raises(ConfigError, match=r"fastmri/dataset.yaml: key 'path'.*fastMRI data sharing agreement"):
        prepare(load_spec(ROOT / "datasets" / "fastmri"), 0)
    with pytest.raises(ConfigError, match=r"fastmri/dataset.yaml: key 'path': no .h5 files"):
        prepare(fastmri_spec(tmp_path), 0)


DOWNLOADED = [p.parent.name for p in sorted((ROOT / "datasets").glob("*/dataset.yaml"))
              if load_yaml(p)["prepare"]["generator"] == "download_hdf5"]


def test_lodopab_is_a_download():
    assert "lodopab" in DOWNLOADED


@pytest.mark.parametrize("name", DOWNLOADED)
def test_download_spec_has_url_size_and_digest(name):
    """Every shipped archive names its URL, size and a pinned digest."""
    for entry in load_spec(ROOT / "datasets" / name)["prepare"]["files"]:
        assert entry["url"].startswith("https://") and entry["size"] > 0
        assert entry.get("sha256") or entry.get("md5")


def test_an_unpinned_digest_is_refused_before_downloading(tmp_path):
    spec = load_yaml(ROOT / "datasets" / "lodopab" / "dataset.yaml")
    spec["prepare"]["files"][2]["md5"] = None
    spec["prepare"]["files"][2]["url"] = "http://127.0.0.1:9/unreachable.zip"
    (tmp_path / "dataset.yaml").write_text(yaml.safe_dump(spec))
    with pytest.raises(ConfigError, match=r"key 'prepare.files.2.md5': no digest pinned .*"
                                          "pin the digest of a verified copy"):
        prepare(load_spec(tmp_path, {"splits": {"test": 2}}), 0)


def test_a_malformed_digest_names_its_key(tmp_path):
    spec = load_yaml(ROOT / "datasets" / "lodopab" / "dataset.yaml")
    spec["prepare"]["files"][1]["md5"] = "not-a-digest"
    (tmp_path / "dataset.yaml").write_text(yaml.safe_dump(spec))
    with pytest.raises(ConfigError, match=r"dataset.yaml: key 'prepare.files.1.md5'"):
        load_spec(tmp_path)

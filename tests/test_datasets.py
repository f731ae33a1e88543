"""Datasets: determinism, value range, split hygiene."""

import hashlib

import pytest
import torch

from deqbench.config import ROOT, ConfigError
from deqbench.datasets import load_spec, prepare
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

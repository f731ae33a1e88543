"""Image sets: each a folder ``datasets/<name>/`` with a ``dataset.yaml``.

A dataset is prepared once into ``results/data/<name>.pt``: a mapping from split name
to a float32 tensor of shape ``(n, H, W)`` with values in ``[0, 1]``, plus a JSON
manifest holding its sha256. Five generators exist:

- ``ellipses``: random-ellipse phantoms (the dival protocol), one seed per split;
- ``nifti_slices``: axial slices of a NIfTI volume shipped in a Python package, with
  contiguous slice blocks assigned to splits and a gap between blocks of different
  splits, so no two neighbouring slices fall into different splits;
- ``dicom``: frames of DICOM files shipped in a Python package (held-out test images);
- ``fastmri_slices``: centre slices of fastMRI volumes (``.h5``) in a folder the user
  gives (the data needs the fastMRI agreement), whole volumes assigned to splits;
- ``download_hdf5``: slices of the HDF5 files inside zip archives fetched by
  :func:`deqbench.download.download` with a pinned digest (LoDoPaB-CT).
"""

from __future__ import annotations

import importlib.util
import io
import itertools
import urllib.parse
import zipfile
import zlib
from collections.abc import Iterable, Iterator
from pathlib import Path

import numpy as np
import torch
from skimage.transform import resize

from deqbench.config import ConfigError, load_validated
from deqbench.download import download

SPLITS = ("train", "val", "test")


def load_spec(dataset_dir: str | Path, overrides: dict | None = None) -> dict:
    """Read ``dataset.yaml``, apply the profile's overrides (image_size, splits, path) and
    keep the file's path under ``file`` for error messages."""
    path = Path(dataset_dir) / "dataset.yaml"
    spec = load_validated(path, "dataset")
    for key, value in (overrides or {}).items():
        spec[key] = {**spec[key], **value} if isinstance(value, dict) else value
    spec["file"] = str(path)
    return spec


def split_rng(seed: int, split: str) -> np.random.Generator:
    """An independent generator per (seed, split): adding a split changes no other."""
    return np.random.default_rng([seed, zlib.crc32(split.encode())])


def ellipse_phantom(rng: np.random.Generator, size: int, mean_ellipses: int = 40,
                    max_ellipses: int = 70) -> np.ndarray:
    """One random-ellipse phantom on a ``size x size`` grid over ``[-1, 1]^2``.

    Following dival's ``EllipsesDataset``: the number of ellipses is
    ``min(Poisson(mean_ellipses), max_ellipses)``; each has an additive value
    ``v ~ U(-0.4, 1)``, semi-axes ``0.2 * Exp(1)``, centre ``U(-0.9, 0.9)^2`` and a
    uniform rotation. As in dival, the background (pixels in no ellipse) stays at zero:
    the covered pixels are shifted by the image's minimum (zero when no sum is negative)
    and the image is scaled to ``[0, 1]``, so rotations (EI) bring in no background that
    the images do not have.
    """
    count = min(rng.poisson(mean_ellipses), max_ellipses)
    values = rng.uniform(-0.4, 1.0, count)
    axes = 0.2 * rng.exponential(1.0, (count, 2))
    centres = rng.uniform(-0.9, 0.9, (count, 2))
    angles = rng.uniform(0.0, 2 * np.pi, count)
    coords = (np.arange(size) + 0.5) / size * 2 - 1
    yy, xx = np.meshgrid(coords, coords, indexing="ij")
    image, covered = np.zeros((size, size)), np.zeros((size, size), dtype=bool)
    for v, (a, b), (cx, cy), t in zip(values, axes, centres, angles):
        u = (xx - cx) * np.cos(t) + (yy - cy) * np.sin(t)
        w = -(xx - cx) * np.sin(t) + (yy - cy) * np.cos(t)
        inside = (u / a) ** 2 + (w / b) ** 2 <= 1
        image[inside] += v
        covered |= inside
    image[covered] -= image.min()
    peak = image.max()
    return (image / peak if peak > 0 else image).astype(np.float32)


def generate_ellipses(spec: dict, seed: int) -> dict[str, np.ndarray]:
    params = spec["prepare"]
    out = {}
    for split, count in spec["splits"].items():
        if count is None:
            raise ConfigError(f"dataset '{spec['name']}': splits.{split} needs a count")
        rng = split_rng(seed, split)
        out[split] = np.stack([
            ellipse_phantom(rng, spec["image_size"], params.get("mean_ellipses", 40),
                            params.get("max_ellipses", 70))
            for _ in range(count)
        ])
    return out


def package_file(package: str, relative: str) -> Path:
    """Path of a data file shipped inside an installed Python package."""
    found = importlib.util.find_spec(package)
    if found is None or not found.submodule_search_locations:
        raise ConfigError(f"package '{package}' is not installed (it ships the data)")
    path = Path(list(found.submodule_search_locations)[0]) / relative
    if not path.is_file():
        raise ConfigError(f"package '{package}' has no file '{relative}'")
    return path


def to_unit_square(image: np.ndarray, size: int) -> np.ndarray:
    """Centre-crop to a square, resize with anti-aliasing, scale to ``[0, 1]``."""
    h, w = image.shape
    side = min(h, w)
    top, left = (h - side) // 2, (w - side) // 2
    image = image[top:top + side, left:left + side].astype(np.float64)
    image = resize(image, (size, size), anti_aliasing=True, order=1)
    image -= image.min()
    peak = image.max()
    return (image / peak if peak > 0 else image).astype(np.float32)


def generate_nifti_slices(spec: dict, seed: int) -> dict[str, np.ndarray]:
    import nibabel

    params = spec["prepare"]
    volume = nibabel.load(package_file(params["package"], params["file"])).get_fdata()
    first, last = params["slice_range"]
    block, gap, pattern = params["block"], params["gap"], params["pattern"]
    assignment: dict[str, list[int]] = {split: [] for split in spec["splits"]}
    for start in range(first, last, block):
        split = pattern[(start - first) // block % len(pattern)]
        stop = min(start + block, last)
        # Drop `gap` slices at the end of each block so that neighbouring blocks,
        # whatever their splits, never share adjacent slices.
        assignment[split].extend(range(start, max(start, stop - gap)))
    out = {}
    for split, limit in spec["splits"].items():
        indices = assignment[split][:limit] if limit is not None else assignment[split]
        out[split] = np.stack([
            to_unit_square(np.rot90(volume[:, :, z]), spec["image_size"]) for z in indices
        ])
    return out


def generate_dicom(spec: dict, seed: int) -> dict[str, np.ndarray]:
    import pydicom

    params = spec["prepare"]
    frames = []
    for name in params["files"]:
        pixels = pydicom.dcmread(package_file(params["package"], name)).pixel_array
        pixels = pixels[None] if pixels.ndim == 2 else pixels
        frames.extend(to_unit_square(frame, spec["image_size"]) for frame in pixels)
    ((split, limit),) = spec["splits"].items()
    return {split: np.stack(frames[:limit] if limit is not None else frames)}


def first_images(slices: Iterable[np.ndarray], limit: int | None, size: int,
                 where: str) -> np.ndarray:
    """The first ``limit`` slices (all when None) through :func:`to_unit_square`."""
    images = [to_unit_square(s, size) for s in itertools.islice(slices, limit)]
    if len(images) < (limit or 1):
        raise ConfigError(f"{where}: {len(images)} images available, {limit or 'at least 1'} needed")
    return np.stack(images)


def fastmri_volumes(spec: dict, seed: int) -> dict[str, list[Path]]:
    """The ``.h5`` files of the user's folder, sorted, shuffled with the seed and cut
    into the shares of ``prepare.volumes``: every volume lies in one split."""
    if not spec.get("path"):
        raise ConfigError(
            f"{spec['file']}: key 'path': not set. fastMRI needs the signed fastMRI data "
            "sharing agreement (https://fastmri.med.nyu.edu); set 'path' to the folder of "
            "its single-coil .h5 files there or in the config "
            f"(datasets: {{{spec['name']}: {{path: ...}}}})")
    files = sorted(Path(spec["path"]).expanduser().glob("*.h5"))
    if not files:
        raise ConfigError(f"{spec['file']}: key 'path': no .h5 files in {spec['path']}")
    shares = spec["prepare"]["volumes"]
    for split in spec["splits"]:
        if split not in shares:
            raise ConfigError(f"{spec['file']}: key 'prepare.volumes': no share for split '{split}'")
    order = [files[i] for i in np.random.default_rng(seed).permutation(len(files))]
    cumulative = np.cumsum([0, *shares.values()]) / sum(shares.values())
    bounds = np.rint(cumulative * len(files)).astype(int)
    volumes = {split: order[a:b] for split, a, b in zip(shares, bounds[:-1], bounds[1:])}
    for split in spec["splits"]:
        if not volumes[split]:
            raise ConfigError(f"{spec['file']}: key 'prepare.volumes': {len(files)} volumes "
                              f"in {spec['path']} leave none for split '{split}'")
    return volumes


def fastmri_slices(files: list[Path], keys: list[str], edge: int) -> Iterator[np.ndarray]:
    """Magnitude slices of each volume, ``edge`` slices dropped at either end."""
    import h5py

    for file in files:
        with h5py.File(file, "r") as handle:
            key = next((k for k in keys if k in handle), None)
            if key is None:
                raise ConfigError(f"{file}: has none of the datasets {keys} "
                                  "(fastMRI test files hold k-space only)")
            volume = handle[key]
            yield from np.abs(volume[edge:volume.shape[0] - edge])


def generate_fastmri_slices(spec: dict, seed: int) -> dict[str, np.ndarray]:
    params = spec["prepare"]
    volumes = fastmri_volumes(spec, seed)
    return {
        split: first_images(fastmri_slices(volumes[split], params["keys"], params["edge_slices"]),
                            limit, spec["image_size"], f"{spec['file']}: split '{split}'")
        for split, limit in spec["splits"].items()
    }


def pinned_archives(spec: dict) -> list[tuple[dict, str]]:
    """The archives of the asked-for splits and their digest algorithm; refuses, before
    anything is downloaded, an archive whose digest is not pinned."""
    archives = []
    for index, entry in enumerate(spec["prepare"]["files"]):
        if entry["split"] not in spec["splits"]:
            continue
        algorithm = "sha256" if "sha256" in entry else "md5"
        if entry[algorithm] is None:
            raise ConfigError(
                f"{spec['file']}: key 'prepare.files.{index}.{algorithm}': no digest pinned for "
                f"{entry['url']}; pin the digest of a verified copy before downloading")
        archives.append((entry, algorithm))
    return archives


def hdf5_slices(archives: list[Path], key: str) -> Iterator[np.ndarray]:
    """Slices of dataset ``key`` of the HDF5 members of zip archives, in name order;
    a member is read (into memory) only when its slices are reached."""
    import h5py

    for archive in archives:
        with zipfile.ZipFile(archive) as zipped:
            for member in sorted(n for n in zipped.namelist() if n.endswith((".hdf5", ".h5"))):
                with h5py.File(io.BytesIO(zipped.read(member)), "r") as handle:
                    yield from handle[key]


def generate_download_hdf5(spec: dict, seed: int) -> dict[str, np.ndarray]:
    params = spec["prepare"]
    archives: dict[str, list[Path]] = {split: [] for split in spec["splits"]}
    for entry, algorithm in pinned_archives(spec):
        target = Path(params["cache"]) / Path(urllib.parse.urlparse(entry["url"]).path).name
        print(f"{entry['url']} ({entry['size'] or 'unknown'} bytes) -> {target}", flush=True)
        archives[entry["split"]].append(download(entry["url"], target, entry[algorithm], algorithm,
                                                     entry["size"]))
    return {
        split: first_images(hdf5_slices(archives[split], params["key"]), limit,
                            spec["image_size"], f"{spec['file']}: split '{split}'")
        for split, limit in spec["splits"].items()
    }


GENERATORS = {
    "ellipses": generate_ellipses,
    "nifti_slices": generate_nifti_slices,
    "dicom": generate_dicom,
    "fastmri_slices": generate_fastmri_slices,
    "download_hdf5": generate_download_hdf5,
}


def prepare(spec: dict, seed: int) -> dict[str, torch.Tensor]:
    """Generate every split of a dataset as float32 tensors ``(n, H, W)``."""
    arrays = GENERATORS[spec["prepare"]["generator"]](spec, seed)
    return {split: torch.from_numpy(np.ascontiguousarray(a)) for split, a in arrays.items()}

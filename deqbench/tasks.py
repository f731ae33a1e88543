"""Inverse problems: a deepinv physics, a noise model and simulated measurements.

Two kinds of task are declared in the config:

- ``tomography``: sparse-view parallel-beam CT, :math:`y = A x + \\epsilon` with
  :math:`A` deepinv's normalised Radon transform (:math:`\\|A\\| = 1`) over ``angles``
  equispaced views in :math:`[0, 180)` and :math:`\\epsilon \\sim \\mathcal{N}(0, \\sigma^2 I)`;
- ``mri``: Cartesian MRI, :math:`y = M F x + \\epsilon` with a random column mask
  :math:`M` (``acceleration``, fully sampled ``center_fraction``) drawn once from the
  task seed, and complex Gaussian noise on the sampled k-space (deepinv's ``MRI.noise``,
  the physics' own noise model); images are complex with two channels (real,
  imaginary), the ground truth being real. With ``coils`` :math:`N > 1` it is
  multi-coil, :math:`y_c = M F S_c x + \\epsilon_c` for :math:`c = 1, \\dots, N` (deepinv
  ``MultiCoilMRI``, the same mask for every coil, noise on every coil), with smooth
  simulated sensitivity maps :math:`S_c` drawn from the task seed (:func:`simulated_coil_maps`);
  :math:`\\sum_c |S_c|^2 = 1` keeps :math:`\\|A\\| \\le 1` and gives the coil-combined
  noise :math:`A^H \\epsilon` the single-coil level.

Measurements are simulated once, with a fixed seed, and cached in
``results/tasks/<task>.pt``. Where the dataset is stored at ``k`` times the task's
resolution, CT measurements come from the fine image (detector bins averaged ``k`` by
``k``) while the ground truth is the ``k x k`` average of the fine image, so the
reconstruction operator never generated its own data (no "inverse crime").
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from deepinv.physics import MRI, GaussianNoise, LinearPhysics, MultiCoilMRI, Tomography
from deepinv.physics.generator import RandomMaskGenerator

from deqbench.config import ConfigError

OPERATOR_NORM = 1.0  # ||A|| of every task (normalised CT, masked unitary FFT, sum_c |S_c|^2 = 1)
COIL_RADIUS, COIL_WIDTH = 1.2, 0.6  # of the simulated coils, in image half-widths


def channels(task_cfg: dict) -> int:
    """Number of image channels: 2 (real, imaginary) for MRI, 1 for CT."""
    return 2 if task_cfg["physics"] == "mri" else 1


def coils(task_cfg: dict) -> int:
    """Number of MRI receiver coils (1: single-coil MRI, and for CT)."""
    return task_cfg.get("coils", 1)


def tomography(angles: int | torch.Tensor, image_size: int, normalize: bool = True,
               device: str | torch.device = "cpu", kind: type = Tomography, **kwargs) -> Tomography:
    """deepinv parallel-beam CT (or a subclass ``kind``); serial angles are faster on CPU
    beyond a few dozen.

    deepinv estimates the operator norm by power iteration from the *global* torch RNG:
    it is run under a fixed, forked seed so that the operator does not depend on what
    was drawn before (and draws nothing from the caller's stream).
    """
    with warnings.catch_warnings(), torch.random.fork_rng(devices=[]):
        warnings.simplefilter("ignore")
        torch.manual_seed(0)
        return kind(angles=angles, img_width=image_size, normalize=normalize,
                    parallel_computation=torch.device(device).type == "cuda", device=device, **kwargs)


class SparseProduct(torch.autograd.Function):
    r""":math:`x \mapsto x M^\top` for a sparse :math:`M` (rows of ``x`` are images), whose
    gradient is :math:`g \mapsto g M`, with :math:`M^\top` given precomputed (``transpose``)."""

    @staticmethod
    def forward(ctx, x: torch.Tensor, matrix: torch.Tensor, transpose: torch.Tensor) -> torch.Tensor:
        ctx.transpose = transpose
        return (matrix @ x.T).T.contiguous()

    @staticmethod
    def backward(ctx, grad: torch.Tensor):
        return (ctx.transpose @ grad.T).T.contiguous(), None, None


MATRIX_CHUNK = 256  # basis images projected at once while building the matrix


class MatrixTomography(Tomography):
    r"""deepinv's :class:`Tomography` whose :math:`A` and :math:`A^\top` are products with
    its exact sparse matrix (CSR), built by projecting the pixel basis with deepinv's own
    :math:`A` (``matrix`` given: reused, e.g. from the cached task). :math:`A^\top` is the
    matrix's transpose, the exact adjoint deepinv computes by autograd; FBP uses it too.

    Written here, not taken from deepinv, because it is much faster on CPU: at 64 x 64 with
    30 views, one thread, batch 4, 1.6 ms against 14 ms for :math:`A` and 38 ms for
    :math:`A^\top` (``benchmarks/ct_operator.py``), equal to 2e-7 relative.
    """

    matrix: torch.Tensor | None = None  # None while deepinv's constructor estimates the norm

    def __init__(self, *args, matrix: torch.Tensor | None = None, **kwargs):
        super().__init__(*args, **kwargs)
        zeros = torch.zeros(1, 1, self.img_width, self.img_width, device=self.angles.device)
        self.sinogram_shape = super().A(zeros).shape[-2:]
        self.matrix = (self.project_basis() if matrix is None else matrix).to(self.angles.device)
        self.transpose = self.matrix.to_sparse_coo().t().coalesce().to_sparse_csr()

    @torch.no_grad()
    def project_basis(self) -> torch.Tensor:
        """The (measurements x pixels) CSR matrix of deepinv's :math:`A`, column by column."""
        pixels, rows, columns, values = self.img_width ** 2, [], [], []
        for start in range(0, pixels, MATRIX_CHUNK):
            count = min(MATRIX_CHUNK, pixels - start)
            basis = torch.zeros(count, pixels, device=self.angles.device)
            basis[torch.arange(count), torch.arange(start, start + count)] = 1
            projected = super().A(basis.view(count, 1, self.img_width, self.img_width)).flatten(1)
            image, measurement = projected.nonzero(as_tuple=True)
            rows.append(measurement)
            columns.append(image + start)
            values.append(projected[image, measurement])
        indices = torch.stack([torch.cat(rows), torch.cat(columns)])
        shape = (self.sinogram_shape.numel(), pixels)
        return torch.sparse_coo_tensor(indices, torch.cat(values), shape).coalesce().to_sparse_csr()

    def A(self, x: torch.Tensor, **kwargs) -> torch.Tensor:
        if self.matrix is None:
            return super().A(x, **kwargs)
        products = SparseProduct.apply(x.flatten(1), self.matrix, self.transpose)
        return products.view(len(x), 1, *self.sinogram_shape)

    def A_adjoint(self, y: torch.Tensor, **kwargs) -> torch.Tensor:
        if self.matrix is None:
            return super().A_adjoint(y, **kwargs)
        products = SparseProduct.apply(y.flatten(1), self.transpose, self.matrix)
        return products.view(len(y), 1, self.img_width, self.img_width)

    def angle_subset(self, indices: torch.Tensor) -> MatrixTomography:
        """The operator over the views ``indices`` alone, its rows of this matrix (so
        scaled by this operator's norm, which its FBP undoes as this operator's does).
        Selected sparse, never densified: the dense matrix takes 268 MB at 180 views of
        64 x 64, 0.6 GB at the paper profile's CT (50 views of 128 x 128)."""
        detectors, views = self.sinogram_shape
        entries = self.matrix.to_sparse_coo().coalesce()
        rows, columns = entries.indices()
        position = torch.full((views,), -1, dtype=torch.long, device=rows.device)
        position[indices] = torch.arange(len(indices), device=rows.device)
        kept = position[rows % views] >= 0  # row = detector * views + view
        subset_rows = rows[kept] // views * len(indices) + position[rows[kept] % views]
        matrix = torch.sparse_coo_tensor(torch.stack([subset_rows, columns[kept]]), entries.values()[kept],
                                         (detectors * len(indices), entries.shape[1])).coalesce().to_sparse_csr()
        subset = tomography(self.angles[indices], self.img_width, normalize=False, device=self.angles.device,
                            kind=MatrixTomography, matrix=matrix)
        if self.normalize:
            subset.register_buffer("operator_norm", self.operator_norm.detach().clone())
            subset.normalize = True
        return subset


def draw_mri_mask(task_cfg: dict, seed: int) -> torch.Tensor:
    """A Cartesian column mask ``(1, H, W)`` drawn from the task seed."""
    size = task_cfg["image_size"]
    generator = RandomMaskGenerator((size, size), acceleration=task_cfg["acceleration"],
                                    center_fraction=task_cfg["center_fraction"],
                                    rng=torch.Generator().manual_seed(seed))
    return generator.step(batch_size=1, seed=seed)["mask"][0]


def simulated_coil_maps(count: int, size: int, seed: int) -> torch.Tensor:
    r"""Smooth complex coil sensitivity maps ``(count, size, size)``, deterministic in ``seed``.

    Coil :math:`c < N` (``count``) has a Gaussian profile of width ``COIL_WIDTH`` centred
    outside the image, at radius ``COIL_RADIUS`` and angle :math:`2\pi (c + u) / N` (the
    image spans :math:`[-1, 1]^2`), and the linear phase :math:`\phi_c + \pi \langle k_c, r \rangle`, with
    :math:`u \sim U[0, 1)`, :math:`\phi_c \sim U[0, 2\pi)`, :math:`k_c \sim U[-\tfrac12, \tfrac12)^2`.
    The maps are divided by :math:`\sqrt{\sum_c |S_c|^2}`, so that :math:`\sum_c |S_c(r)|^2 = 1`
    at every pixel: :math:`\|A x\|^2 = \sum_c \|M F S_c x\|^2 \le \|x\|^2`.
    """
    generator = torch.Generator().manual_seed(seed)
    angle = (torch.arange(count) + torch.rand(1, generator=generator)) * (2 * math.pi / count)
    offset = 2 * math.pi * torch.rand(count, 1, 1, generator=generator)
    slope = torch.rand(count, 2, 1, 1, generator=generator) - 0.5
    grid = torch.linspace(-1, 1, size)
    rows, cols = torch.meshgrid(grid, grid, indexing="ij")
    centre_x, centre_y = (COIL_RADIUS * f(angle)[:, None, None] for f in (torch.cos, torch.sin))
    profile = torch.exp(-((cols - centre_x) ** 2 + (rows - centre_y) ** 2) / (2 * COIL_WIDTH ** 2))
    maps = torch.polar(profile, offset + math.pi * (slope[:, 0] * cols + slope[:, 1] * rows))
    return maps / maps.abs().pow(2).sum(dim=0).sqrt()


def build_physics(task_cfg: dict, mask: torch.Tensor | None = None, noise_seed: int = 0,
                  device: str | torch.device = "cpu", coil_maps: torch.Tensor | None = None,
                  operator: torch.Tensor | None = None) -> LinearPhysics:
    """The task's forward operator with its noise model (seeded for reproducibility);
    MRI needs its ``mask`` and, multi-coil, its ``coil_maps``; CT is a
    :class:`MatrixTomography`, whose ``operator`` matrix is built when not given."""
    if task_cfg["physics"] == "tomography":
        physics = tomography(task_cfg["angles"], task_cfg["image_size"], device=device, kind=MatrixTomography,
                             matrix=operator)
    elif task_cfg["physics"] == "mri":
        if mask is None:
            raise ConfigError("an MRI task needs its sampling mask")
        size = task_cfg["image_size"]
        if coils(task_cfg) == 1:
            physics = MRI(mask=mask.to(device), img_size=(size, size), device=device)
        elif coil_maps is None:
            raise ConfigError("a multi-coil MRI task needs its coil maps")
        else:
            physics = MultiCoilMRI(mask=mask.to(device), coil_maps=coil_maps.to(device), img_size=(size, size),
                                   device=device)
    else:
        raise ConfigError(f"unknown physics '{task_cfg['physics']}'")
    physics.noise_model = GaussianNoise(
        sigma=task_cfg["noise_sigma"],
        rng=torch.Generator(device).manual_seed(noise_seed),
    )
    return physics


def initial_reconstruction(y: torch.Tensor, physics: LinearPhysics) -> torch.Tensor:
    """Filtered back-projection for CT, zero-filled inverse FFT for MRI (multi-coil:
    combined with the conjugate coil maps, :math:`A^H y`)."""
    if isinstance(physics, Tomography):
        return physics.A_dagger(y, fbp=True)
    return physics.A_adjoint(y)


def magnitude(x: torch.Tensor) -> torch.Tensor:
    """Real image ``(B, H, W)`` to score: the modulus for two-channel complex images."""
    return x.pow(2).sum(dim=1).sqrt() if x.shape[1] == 2 else x[:, 0]


def simulate(task_cfg: dict, images: dict[str, torch.Tensor], seed: int) -> dict:
    """Ground truth and noisy measurements for every split of ``images``.

    ``images`` maps split to ``(n, R, R)`` tensors, ``R`` an integer multiple ``k`` of
    the task's ``image_size``. Returns ``{"mask": ..., "splits": {split: {"x", "y"}}}``,
    plus ``"coil_maps"`` for multi-coil MRI (``y`` then ``(n, 2, coils, H, W)``) and
    ``"operator"``, the CT matrix (:class:`MatrixTomography`), built once here.
    """
    size = task_cfg["image_size"]
    mask = draw_mri_mask(task_cfg, seed) if task_cfg["physics"] == "mri" else None
    maps = simulated_coil_maps(coils(task_cfg), size, seed) if coils(task_cfg) > 1 else None
    physics = build_physics(task_cfg, mask=mask, noise_seed=seed, coil_maps=maps)
    splits = {}
    for split, fine in images.items():
        factor = fine.shape[-1] // size
        if fine.shape[-1] != factor * size:
            raise ConfigError(f"task image_size {size} does not divide the stored "
                              f"image size {fine.shape[-1]} of split '{split}'")
        fine = fine[:, None]
        x = F.avg_pool2d(fine, factor) if factor > 1 else fine
        if task_cfg["physics"] == "mri":
            x = torch.cat([x, torch.zeros_like(x)], dim=1)
            clean = physics.A(x)
        elif factor > 1:
            clean = fine_tomography(task_cfg, fine, factor, physics)
        else:
            clean = physics.A(x)
        splits[split] = {"x": x, "y": physics.noise(clean)}  # MRI: noise on sampled k-space only
    return ({"mask": mask, "splits": splits} | ({} if maps is None else {"coil_maps": maps})
            | ({"operator": physics.matrix} if isinstance(physics, MatrixTomography) else {}))


def fine_tomography(task_cfg: dict, fine: torch.Tensor, factor: int,
                    physics: Tomography) -> torch.Tensor:
    """Sinogram of a ``factor`` times finer image, resampled to the coarse detector grid.

    Both detector grids are centred on the rotation axis; a coarse bin is ``factor``
    fine bins wide, so each coarse value is the mean of the fine sinogram sampled at
    ``factor`` evenly spaced points across the bin (linear interpolation, zero outside),
    divided by ``factor`` to turn fine-pixel line integrals into coarse-pixel units,
    then by the coarse operator norm.
    """
    sinogram = tomography(task_cfg["angles"], fine.shape[-1], normalize=False).A(fine)
    size = task_cfg["image_size"]
    coarse_bins = physics.radon(torch.zeros(1, 1, size, size)).shape[-2]
    fine_bins = sinogram.shape[-2]
    centres = (fine_bins - 1) / 2 + factor * (torch.arange(coarse_bins) - (coarse_bins - 1) / 2)
    points = (centres[:, None] + torch.arange(factor) - (factor - 1) / 2).flatten()
    padded = F.pad(sinogram, (0, 0, 1, 1))  # zero beyond the fine detector
    points = (points + 1).clamp(0, fine_bins + 1 - 1e-6)
    below = points.floor().long()
    weight = (points - below)[:, None]
    samples = padded[..., below, :] * (1 - weight) + padded[..., below + 1, :] * weight
    binned = samples.unflatten(-2, (coarse_bins, factor)).mean(dim=-2) / factor
    return binned / physics.operator_norm


@dataclass
class Task:
    """A simulated task as the methods see it: config, physics and data splits."""

    name: str
    config: dict
    physics: LinearPhysics
    splits: dict[str, dict[str, torch.Tensor]]

    @property
    def channels(self) -> int:
        return channels(self.config)

    @property
    def image_size(self) -> int:
        return self.config["image_size"]


def load_task(name: str, task_cfg: dict, data: dict, noise_seed: int,
              device: str | torch.device = "cpu") -> Task:
    """Assemble a :class:`Task` from its config and cached simulation."""
    physics = build_physics(task_cfg, mask=data["mask"], noise_seed=noise_seed, device=device,
                            coil_maps=data.get("coil_maps"), operator=data.get("operator"))
    return Task(name=name, config=task_cfg, physics=physics, splits=data["splits"])

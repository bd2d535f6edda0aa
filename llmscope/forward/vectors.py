"""Cosines over vectors: pairwise, against every row of a large matrix, and a 2-D PCA picture.

torch is imported inside the functions: importing this module costs nothing.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:  # pragma: no cover
    import torch


def unit(x: torch.Tensor) -> torch.Tensor:
    """Each vector (last dimension) scaled to length 1; a zero vector stays zero."""
    import torch

    return x / torch.linalg.vector_norm(x, dim=-1, keepdim=True).clamp_min(1e-12)


def cosine_matrix(vectors: torch.Tensor) -> list[list[float]]:
    """(n, hidden) -> the n x n cosines, in float64."""
    u = unit(vectors.double())
    return (u @ u.T).clamp(-1, 1).tolist()


Ranked = list[tuple[int, float]]  # (id, cosine), best first


def nearest_rows(
    weight: torch.Tensor, queries: torch.Tensor, exclude: list[set[int]], k: int
) -> tuple[list[Ranked], list[list[tuple[int, int, float]]]]:
    """The K vocabulary rows with the highest cosine to each query, leaving out the ids in ``exclude``,
    and for each left-out id the (id, rank, cosine) it would have had.

    One normalised matrix product: (vocab, hidden) @ (hidden, queries), divided by the row norms.
    Weights kept in half precision are scored in float32, a slice of rows at a time.
    """
    import torch

    vocab, hidden = weight.shape
    q = unit(queries.to(device=weight.device, dtype=torch.float32)).T  # (hidden, queries)
    step = vocab if weight.dtype == torch.float32 else max(1, 2**26 // hidden)
    scores = torch.empty(vocab, q.shape[1], dtype=torch.float32, device=weight.device)  # (vocab, queries)
    with torch.inference_mode():
        for start in range(0, vocab, step):
            rows = weight[start : start + step].float()  # (rows, hidden)
            norms = torch.linalg.vector_norm(rows, dim=1, keepdim=True).clamp_min(1e-12)
            scores[start : start + step] = (rows @ q) / norms
        left_out = []
        for column, ids in enumerate(exclude):
            column_scores = scores[:, column]  # (vocab,)
            ranks = [(i, int((column_scores > column_scores[i]).sum()) + 1, float(column_scores[i])) for i in ids]
            left_out.append(sorted(ranks, key=lambda r: r[1]))
            if ids:
                scores[list(ids), column] = float("-inf")
        top = torch.topk(scores, min(k, vocab), dim=0)  # (k, queries)
    values, indices = top.values.T.tolist(), top.indices.T.tolist()
    found = [[(i, v) for i, v in zip(row_i, row_v) if v != float("-inf")] for row_i, row_v in zip(indices, values)]
    return found, left_out


def pca_2d(vectors: torch.Tensor) -> tuple[list[tuple[float, float]], list[float]]:
    """The unit vectors projected on their first two principal components, and each axis's share of
    the variance (SVD of the centred matrix; each axis's sign fixed: its largest weight positive)."""
    import torch

    x = unit(vectors.double())
    x = x - x.mean(dim=0, keepdim=True)
    u, s, vh = torch.linalg.svd(x, full_matrices=False)
    coords = u[:, :2] * s[:2]  # (vectors, 2)
    for axis in range(coords.shape[1]):
        if vh[axis, vh[axis].abs().argmax()] < 0:
            coords[:, axis] = -coords[:, axis]
    if coords.shape[1] < 2:
        coords = torch.cat([coords, torch.zeros_like(coords)], dim=1)
    variance = s**2
    share = (variance[:2] / variance.sum().clamp_min(1e-300)).tolist()
    return [(float(a), float(b)) for a, b in coords.tolist()], share

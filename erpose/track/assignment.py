"""Gated one-to-one assignment on a similarity matrix (Hungarian, via scipy)."""

from __future__ import annotations

import numpy as np
from scipy.optimize import linear_sum_assignment

# A pair below the gate gets this cost: large enough that the solver takes it only when nothing
# else is left, and such pairs are then dropped.
_FORBIDDEN = 1e6


def gated_assignment(similarity: np.ndarray, threshold: float) -> tuple[np.ndarray, np.ndarray]:
    """Maximum-similarity one-to-one matching that keeps only pairs with similarity >= ``threshold``.

    Args:
        similarity: (n, t) in [0, 1] (OKS or IoU).
        threshold: least similarity of a kept pair.

    Returns:
        ``(rows, cols)``: (m,) int64 indices of the matched pairs, rows ascending.
    """
    empty = np.zeros(0, dtype=np.int64)
    if similarity.size == 0:
        return empty, empty
    allowed = similarity >= threshold
    if not allowed.any():
        return empty, empty
    cost = np.where(allowed, 1.0 - similarity, _FORBIDDEN)
    rows, cols = linear_sum_assignment(cost)
    keep = allowed[rows, cols]
    return rows[keep].astype(np.int64), cols[keep].astype(np.int64)

"""Scenario reduction by forward selection (Heitsch and Roemisch's fast forward selection, after
Dupacova, Groewe-Kuska and Roemisch): k of a large scenario set's scenarios are kept, each
dropped scenario's probability goes to its nearest kept one, and the Kantorovich distance
between the original and the reduced distribution is reported (models/formulation.md,
Scenarios, "Scenario reduction").

A scenario is the vector of every number it gives the model (`formulation.data.
parametric_view`: capacities, demands, unit and spot prices, spot availabilities, rule
right-hand sides), standardised coordinate by coordinate and weighted so that each family of
numbers (a capacity, a price, ...) counts the same however many coordinates it has.

Reads the instance and its model data; builds no model, solves nothing.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from offtake.domain.schema import Instance
from offtake.domain.transforms import to_data
from offtake.formulation.data import build_data, parametric_view

MAX_SCENARIOS = 5000
"""Largest set reduced: the distance matrix holds S x S numbers (200 MB at 5,000)."""


class ReductionError(ValueError):
    pass


@dataclass
class Reduction:
    kept: list[str]
    """Kept scenarios, in the order forward selection chose them."""
    probability: dict[str, float]
    """New probability of each kept scenario: its own plus those of the scenarios merged
    into it."""
    assigned: dict[str, str]
    """Every original scenario -> the kept scenario it is merged into (itself when kept)."""
    distance: list[float]
    """Kantorovich distance between the original and the reduced distribution after each
    step (k = 1, 2, ...), in standardised units."""
    coordinates: dict[str, int] = field(default_factory=dict)
    """Family -> coordinates that vary between scenarios (those the distance reads)."""
    scenarios: int = 0

    @property
    def relative(self) -> float | None:
        """The final distance as a share of the distance of keeping one scenario."""
        if not self.distance or self.distance[0] == 0:
            return None
        return self.distance[-1] / self.distance[0]

    def as_dict(self) -> dict[str, Any]:
        return {"scenarios": self.scenarios, "kept": self.kept,
                "probability": self.probability, "distance": self.distance,
                "relative_distance": self.relative, "coordinates": self.coordinates,
                "merged_into": self.assigned}


def scenario_vectors(inst: Instance) -> tuple[list[str], np.ndarray, np.ndarray,
                                              dict[str, int]]:
    """(scenario ids, probabilities, vectors S x C, varying coordinates per family): each
    coordinate x_k standardised, (x_k - mu_k) / sigma_k (probability-weighted mean and
    standard deviation), and divided by sqrt(n_f), n_f the varying coordinates of its
    family; coordinates equal in every scenario are left out."""
    d = build_data(inst)
    try:
        view = parametric_view(d, "s", lambda i: 0.0)
    except ValueError as exc:  # rules in expectation
        raise ReductionError(str(exc)) from exc
    ids = list(d.SCENARIOS)
    p = np.array([d.probability[s] for s in ids])
    x = np.array([view.values[s] for s in ids], dtype=float).reshape(len(ids), -1)
    mu = p @ x
    sigma = np.sqrt(p @ (x - mu) ** 2)
    scale = np.maximum(1.0, np.abs(mu))
    varying = sigma > 1e-9 * scale
    families = [name for name, _ in view.slots]
    counts: dict[str, int] = {}
    for k in np.flatnonzero(varying):
        counts[families[k]] = counts.get(families[k], 0) + 1
    weight = np.array([1.0 / np.sqrt(counts[families[k]]) for k in np.flatnonzero(varying)])
    z = (x[:, varying] - mu[varying]) / sigma[varying] * weight
    return ids, p, z, counts


def distances(z: np.ndarray) -> np.ndarray:
    """Euclidean distance between every pair of rows."""
    sq = np.sum(z * z, axis=1)
    d2 = np.maximum(sq[:, None] + sq[None, :] - 2.0 * z @ z.T, 0.0)
    np.fill_diagonal(d2, 0.0)
    return np.sqrt(d2)


def forward_selection(c: np.ndarray, p: np.ndarray, k: int) -> tuple[list[int], list[float]]:
    """Indices kept by forward selection on the cost matrix `c` with probabilities `p`, and
    the Kantorovich distance D(J) = sum over dropped i of p_i min_{j in J} c_ij after each
    step. Each step keeps the scenario u that makes D(J + {u}) smallest (ties: the first)."""
    n = len(p)
    k = min(k, n)
    nearest = np.full(n, np.inf)
    kept: list[int] = []
    dist: list[float] = []
    for _ in range(k):
        # sum_i p_i min(nearest_i, c_iu): kept i have nearest 0 and u itself c_uu = 0
        score = p @ np.minimum(nearest[:, None], c)
        score[kept] = np.inf
        u = int(np.argmin(score))
        kept.append(u)
        nearest = np.minimum(nearest, c[:, u])
        nearest[u] = 0.0
        dist.append(float(p @ nearest))
    return kept, dist


def reduce_scenarios(inst: Instance, k: int) -> Reduction:
    """Forward selection of k scenarios of `inst` (module doc)."""
    if k < 1:
        raise ReductionError("k must be at least 1")
    n = len(inst.scenarios)
    if n > MAX_SCENARIOS:
        raise ReductionError(f"{n} scenarios: at most {MAX_SCENARIOS} can be reduced (the "
                             "distance matrix grows with the square)")
    ids, p, z, counts = scenario_vectors(inst)
    c = distances(z)
    kept_idx, dist = forward_selection(c, p, k)
    kept = [ids[i] for i in kept_idx]
    # each scenario to its nearest kept one (ties: the one chosen first)
    nearest = np.argmin(c[:, kept_idx], axis=1)
    assigned = {ids[i]: kept[int(j)] for i, j in enumerate(nearest)}
    for s in kept:
        assigned[s] = s
    prob = dict.fromkeys(kept, 0.0)
    for i, s in enumerate(ids):
        prob[assigned[s]] += float(p[i])
    return Reduction(kept, prob, assigned, dist, counts, n)


def reduced_instance(inst: Instance, red: Reduction) -> Instance:
    """`inst` over the kept scenarios with their new probabilities (validated)."""
    raw = to_data(inst)
    by_id = {sc["id"]: sc for sc in raw["scenarios"]}
    raw["scenarios"] = [{**by_id[s], "probability": red.probability[s]} for s in red.kept]
    return Instance.model_validate(raw)

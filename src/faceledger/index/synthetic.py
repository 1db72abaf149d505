"""Face-like synthetic templates for sizing indexes at scales no real data set here reaches.

A two-level Gaussian model fitted to real labelled templates: identity centres are drawn from
N(mean, B) (between-identity covariance), each template is its centre plus N(0, W)
(within-identity covariance), then L2-normalised like a real embedding. B and W are the
classic one-way random-effects (LDA) estimates, shrunk a little towards isotropy because a
few hundred identities underdetermine a 128x128 covariance. Uniform random unit vectors are
nearly orthogonal to each other and have no identity structure, so they make recall figures
meaningless; this model reproduces the real genuine and impostor score distributions.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt

from faceledger.errors import InvalidArgument

F64 = npt.NDArray[np.float64]
F32 = npt.NDArray[np.float32]


def _psd_factor(cov: F64) -> F64:
    """A matrix L with L @ L.T equal to ``cov`` after clipping negative eigenvalues."""
    vals, vecs = np.linalg.eigh((cov + cov.T) / 2)
    vals = np.clip(vals, 0.0, None)
    factor: F64 = vecs * np.sqrt(vals)
    return factor


def _shrink(cov: F64, alpha: float) -> F64:
    d = cov.shape[0]
    out: F64 = (1 - alpha) * cov + alpha * (np.trace(cov) / d) * np.eye(d)
    return out


def score_summary(vectors: F32, labels: npt.ArrayLike) -> dict[str, float]:
    """Mean, std and tail quantiles of genuine (same label) and impostor cosine scores."""
    lab = np.asarray(labels)
    v = vectors.astype(np.float64)
    s = v @ v.T
    same = lab[:, None] == lab[None, :]
    upper = np.triu(np.ones_like(same, dtype=bool), k=1)
    gen = s[same & upper]
    imp = s[~same & upper]
    out = {
        "impostor_mean": float(imp.mean()),
        "impostor_std": float(imp.std()),
        "impostor_p99": float(np.quantile(imp, 0.99)),
        "impostor_p999": float(np.quantile(imp, 0.999)),
    }
    if gen.size:
        out.update(
            genuine_mean=float(gen.mean()),
            genuine_std=float(gen.std()),
            genuine_p01=float(np.quantile(gen, 0.01)),
        )
    return out


@dataclass(frozen=True, eq=False)
class Identities:
    """Synthetic identities: centres (n, d) and each one's within-identity spread factor."""

    centres: F64 = field(repr=False)
    spread: F64 = field(repr=False)

    def __len__(self) -> int:
        return int(self.centres.shape[0])


@dataclass(frozen=True, eq=False)
class FaceLikeModel:
    """Fitted identity model: ``identities()`` draws people, ``templates()`` draws their faces.

    Within-identity spread is heteroscedastic like real data (some people, and some photos,
    vary much more than others): the residual of template j of identity i is
    ``s_i · t_j · L_W z`` with log-normal factors s_i, t_j of unit mean square.
    """

    mean: F64 = field(repr=False)
    between: F64 = field(repr=False)
    """Factor L_B of the between-identity covariance (B = L_B L_Bᵀ)."""
    within: F64 = field(repr=False)
    """Factor L_W of the within-identity covariance."""
    sigma_identity: float = 0.0
    """Log-sd of the per-identity spread factor s_i."""
    sigma_template: float = 0.0
    """Log-sd of the per-template spread factor t_j."""
    fitted_on: dict[str, Any] = field(default_factory=dict)

    @property
    def dimension(self) -> int:
        return int(self.mean.shape[0])

    @classmethod
    def fit(
        cls, vectors: npt.ArrayLike, labels: npt.ArrayLike, *, shrinkage: float = 0.05
    ) -> FaceLikeModel:
        """Estimate mean, B, W and the spread factors from real templates.

        Identities with one template only inform the centre distribution.
        """
        x = np.asarray(vectors, dtype=np.float64)
        lab = np.asarray(labels)
        if x.ndim != 2 or lab.shape != (x.shape[0],):
            raise InvalidArgument("fit needs an (n, d) array and n labels")
        if not 0.0 <= shrinkage < 1.0:
            raise InvalidArgument("shrinkage must be in [0, 1)")
        uniq, inverse, counts = np.unique(lab, return_inverse=True, return_counts=True)
        multi = counts >= 2
        if multi.sum() < 2:
            raise InvalidArgument("need at least two identities with two or more templates each")
        d = x.shape[1]
        means = np.zeros((uniq.size, d))
        np.add.at(means, inverse, x)
        means /= counts[:, None]
        resid = x - means[inverse]
        in_multi = multi[inverse]
        dof = int(in_multi.sum() - multi.sum())
        within = resid[in_multi].T @ resid[in_multi] / dof
        centre = means.mean(axis=0)
        cov_means = np.cov(means, rowvar=False)
        between = cov_means - float(np.mean(1.0 / counts)) * within
        l_within = _psd_factor(_shrink(within, shrinkage))
        sig_id, sig_t = _spread_sigmas(resid, inverse, counts, l_within)
        return cls(
            mean=centre,
            between=_psd_factor(_shrink(between, shrinkage)),
            within=l_within,
            sigma_identity=sig_id,
            sigma_template=sig_t,
            fitted_on={
                "templates": int(x.shape[0]),
                "identities": int(uniq.size),
                "identities_with_2plus": int(multi.sum()),
                "shrinkage": shrinkage,
                "between_trace": float(np.trace(between)),
                "within_trace": float(np.trace(within)),
                "sigma_identity": sig_id,
                "sigma_template": sig_t,
            },
        )

    def identities(self, n: int, rng: np.random.Generator) -> Identities:
        """``n`` new identities (centres are not normalised: they are never templates)."""
        z = rng.standard_normal((n, self.dimension))
        s = self.sigma_identity
        return Identities(
            centres=self.mean + z @ self.between.T,
            spread=np.exp(s * rng.standard_normal(n) - s * s),
        )

    def templates(
        self,
        people: Identities,
        rows: npt.ArrayLike,
        rng: np.random.Generator,
        *,
        chunk: int = 65536,
    ) -> F32:
        """One L2-normalised float32 template per entry of ``rows`` (indices into ``people``)."""
        idx = np.asarray(rows, dtype=np.int64)
        out = np.empty((idx.size, self.dimension), dtype=np.float32)
        t = self.sigma_template
        for a in range(0, idx.size, chunk):
            b = min(idx.size, a + chunk)
            who = idx[a:b]
            scale = people.spread[who] * np.exp(t * rng.standard_normal(b - a) - t * t)
            z = rng.standard_normal((b - a, self.dimension))
            v = people.centres[who] + (z @ self.within.T) * scale[:, None]
            v /= np.linalg.norm(v, axis=1, keepdims=True)
            out[a:b] = v
        return out


def _log_spread(resid: F64, inverse: npt.NDArray[np.intp], counts: npt.NDArray[np.intp]) -> F64:
    n = counts[inverse]
    out: F64 = np.log((resid**2).sum(axis=1) * n / (n - 1))
    return out


def _variance_parts(
    le: F64, inverse: npt.NDArray[np.intp], counts: npt.NDArray[np.intp]
) -> tuple[float, float]:
    """(between-identity variance of mean log-spread, pooled within-identity variance)."""
    g = counts.size
    idm = np.zeros(g)
    np.add.at(idm, inverse, le)
    idm /= counts
    three = counts >= 3  # with two templates both residuals are equal: no within information
    in3 = three[inverse]
    within = float(((le - idm[inverse])[in3] ** 2).sum() / max(1, in3.sum() - three.sum()))
    between = float(idm.var() - np.mean(within / counts))
    return between, within


def _spread_sigmas(
    resid: F64, inverse: npt.NDArray[np.intp], counts: npt.NDArray[np.intp], l_within: F64
) -> tuple[float, float]:
    """Log-sds of identity and template spread factors beyond the Gaussian model's own noise."""
    multi = counts >= 2
    keep = multi[inverse]
    remap = np.cumsum(multi) - 1
    inv = remap[inverse[keep]]
    cnt = counts[multi]
    between, within = _variance_parts(_log_spread(resid[keep], inv, cnt), inv, cnt)
    # the same statistics on data from the homoscedastic model measure its chi-square noise
    rng = np.random.default_rng(0)
    sim_counts = np.full(200, 8)
    sim_inv = np.repeat(np.arange(200), 8)
    sim = rng.standard_normal((sim_inv.size, l_within.shape[0])) @ l_within.T
    sim_means = np.zeros((200, sim.shape[1]))
    np.add.at(sim_means, sim_inv, sim)
    sim_resid = sim - sim_means[sim_inv] / 8
    _, noise = _variance_parts(_log_spread(sim_resid, sim_inv, sim_counts), sim_inv, sim_counts)
    sig_t = float(np.sqrt(max(0.0, within - noise) / 4))
    sig_id = float(np.sqrt(max(0.0, between) / 4))
    return sig_id, sig_t

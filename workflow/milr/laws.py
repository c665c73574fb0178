"""Which law? The paper's depth x width law beside its rivals, fitted and compared the same way.

Every law here is log η* = log C - a · log depth - b · log width, with (a, b) constrained:

- ``product``: a = b = α, the paper's C · (depth · width)^(-α);
- ``separate``: a and b free, so the data can say whether a = b (the interval of a - b);
- ``depth``: b = 0, a free: Chen, Wu, Wang & Hanin (ICLR 2024) derive depth^(-3/2) with no
  width term for an MLP;
- ``depth_3/2``: b = 0 and a = 3/2 fixed, their exponent itself (only C is fitted).

(Haas et al., NeurIPS 2025, predict b = 1/2 under standard parametrisation: the ``separate``
law's interval for b tests it.) A law is ``fixed + M · θ`` in (a, b), with θ its free
exponents, so one least-squares fit serves all four: regressors -[log d, log w] · M, offset
-fixed · [log d, log w].

Data: one point per architecture, the mean over its seeds of log η* (each seed's bracket
midpoint, :func:`eta_point`). An architecture with a censored seed (no probe reached t, or the
top of the bracket never failed) is left out whole and counted: a mean over its other seeds
would be biased, and a network that never reaches t at any rate down to ``search.min_rate`` has
no η* to put on a law; a bound placed at that floor would make the fit move with the floor.

Every law is fitted twice, to every architecture (``all``) and without depth 1
(``no_depth_1``): a conclusion that one group of points carries shows up as a difference.

Intervals: the least-squares t-intervals, β ± t_{n-p} · s · sqrt(diag((XᵀX)⁻¹)),
s² = RSS / (n - p): exact under independent normal scatter of the architecture means about the
law (architecture scatter plus seed noise), and measured to cover 95% ± 2 points on the demo's
and the wide study's grids (tests/test_laws.py).

Comparison: each architecture predicted by the law refitted without it. ``loo_rmse`` is the
root mean square of log(measured / predicted) (exp of it: the root-mean-square factor by which
the law misses an unseen architecture); it is NaN, with the reason, unless every fold fits, so
that laws are compared on the same folds. The law with the lowest is the ``leader``; it is
called ``best`` only where its squared fold errors are lower than every other law's by more
than their uncertainty (paired t-tests over the folds, Holm-adjusted over the comparisons).
AICc (Akaike's criterion with the small-sample correction) is reported beside it.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy import stats

from milr import MilrError
from milr.names import LAW_NAMES
from milr.settings import FitOptions

MIN_ARCHITECTURES = 4
LEVEL = 0.95  # the intervals' nominal coverage
ALPHA = 1 - LEVEL  # the tests' level, after Holm's adjustment
# The architectures each law is fitted to: all, and all but depth 1 (does depth 1 carry it?).
SUBSETS = {"all": 1, "no_depth_1": 2}  # name -> smallest depth kept
SUBSET_WORDS = {"all": "all depths", "no_depth_1": "without depth 1"}


@dataclass(frozen=True)
class LawSpec:
    """A constraint on the exponents: (a, b) = fixed + M · θ."""

    name: str
    formula: str
    M: tuple[tuple[float, ...], tuple[float, ...]]  # 2 x (free exponents)
    fixed: tuple[float, float] = (0.0, 0.0)
    source: str = ""

    @property
    def free(self) -> int:
        return len(self.M[0])


LAWS: dict[str, LawSpec] = {
    spec.name: spec
    for spec in (
        LawSpec("product", "C·(depth·width)^-α", ((1.0,), (1.0,)), source="Iyer et al. 2023"),
        LawSpec("separate", "C·depth^-a·width^-b", ((1.0, 0.0), (0.0, 1.0))),
        LawSpec("depth", "C·depth^-a", ((1.0,), (0.0,)), source="Chen et al. 2024 (a free)"),
        LawSpec("depth_3/2", "C·depth^-3/2", ((), ()), (1.5, 0.0), "Chen et al. 2024"),
    )
}


@dataclass(frozen=True)
class Points:
    """One point per measured architecture: log depth, log width, the mean log η* over its
    seeds."""

    log_d: np.ndarray
    log_w: np.ndarray
    log_y: np.ndarray

    def __len__(self) -> int:
        return len(self.log_y)

    def subset(self, keep: np.ndarray) -> Points:
        return Points(self.log_d[keep], self.log_w[keep], self.log_y[keep])


@dataclass(frozen=True)
class LawFit:
    """A fitted law: coefficients β = (log C, θ), their covariance, and its quality."""

    spec: LawSpec
    beta: np.ndarray
    cov: np.ndarray  # of beta, scaled to the t-interval's s²
    dof: int  # n - p
    residual_sd: float
    n: int
    r2: float
    log_d_range: tuple[float, float]
    log_w_range: tuple[float, float]
    log_dw_range: tuple[float, float]
    aicc: float = math.nan
    loo_errors: tuple[float, ...] = ()  # log(measured / predicted), one per fold, in order
    loo_note: str = ""  # why leave-one-out is undefined, when it is

    @property
    def loo_rmse(self) -> float:
        """Root mean square of the fold errors; NaN unless every fold fitted."""
        if not self.loo_errors:
            return math.nan
        return float(np.sqrt(np.mean(np.square(self.loo_errors))))

    def t(self, level: float = LEVEL) -> float:
        return float(stats.t.ppf((1 + level) / 2, self.dof))

    def exponents(self) -> np.ndarray:
        """(a, b)."""
        return np.array(self.spec.fixed) + np.array(self.spec.M).reshape(2, -1) @ self.beta[1:]

    def _exponent_se(self, weights: Sequence[float]) -> tuple[float, float]:
        w = np.asarray(weights, float)
        g = np.concatenate([[0.0], w @ np.array(self.spec.M).reshape(2, -1)])  # d/dβ
        return float(w @ self.exponents()), math.sqrt(max(float(g @ self.cov @ g), 0.0))

    def exponent_interval(self, weights: Sequence[float], level: float = LEVEL) -> tuple:
        """Estimate and interval of weights · (a, b): (1, 0) is a, (0, 1) is b, (1, -1) a - b."""
        centre, se = self._exponent_se(weights)
        half = self.t(level) * se
        return centre, centre - half, centre + half

    def exponent_p(self, weights: Sequence[float], value: float = 0.0) -> float:
        """Two-sided p of the t-test that weights · (a, b) = ``value`` (NaN for a fixed one)."""
        centre, se = self._exponent_se(weights)
        if se == 0:
            return math.nan
        return float(2 * stats.t.sf(abs(centre - value) / se, self.dof))

    def log_c_interval(self, level: float = LEVEL) -> tuple[float, float, float]:
        half = self.t(level) * math.sqrt(float(self.cov[0, 0]))
        return float(self.beta[0]), float(self.beta[0] - half), float(self.beta[0] + half)

    def predict(self, depth: int, width: int, level: float = LEVEL) -> tuple[float, float, float]:
        """η* and its ``level`` prediction interval for a new architecture: the fit's own
        uncertainty plus the scatter of architectures about the law."""
        x, offset = design(self.spec, np.log([depth]), np.log([width]))
        centre = float(x[0] @ self.beta + offset[0])
        spread = math.sqrt(self.residual_sd**2 + float(x[0] @ self.cov @ x[0]))
        half = self.t(level) * spread
        return math.exp(centre), math.exp(centre - half), math.exp(centre + half)


def design(spec: LawSpec, log_d: np.ndarray, log_w: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Regressors [1, -[log d, log w] · M] and the fixed part's offset."""
    logs = np.column_stack([log_d, log_w])
    m = np.array(spec.M).reshape(2, -1)
    x = np.column_stack([np.ones(len(log_d)), -logs @ m])
    return x, -logs @ np.array(spec.fixed)


def _aicc(log_likelihood: float, k: int, n: int) -> float:
    """AIC with the small-sample correction; NaN where it is undefined (n <= k + 1)."""
    if n <= k + 1:
        return math.nan
    return -2 * log_likelihood + 2 * k + 2 * k * (k + 1) / (n - k - 1)


def fit_law(spec: LawSpec, points: Points, with_loo: bool = True) -> LawFit:
    """Fit ``spec`` to ``points`` by least squares (with its leave-one-out errors)."""
    n, p = len(points), spec.free + 1
    x, offset = design(spec, points.log_d, points.log_w)
    if n < max(MIN_ARCHITECTURES, p + 1) or np.linalg.matrix_rank(x) < p:
        raise MilrError(
            f"not fitted: {n} architectures with a measured η*; the {spec.name} "
            f"law needs at least {max(MIN_ARCHITECTURES, p + 1)} that vary in "
            f"{'depth and width' if spec.free == 2 else 'the law' + chr(39) + 's variable'}"
        )
    y = points.log_y - offset
    beta, *_ = np.linalg.lstsq(x, y, rcond=None)
    residual = y - x @ beta
    rss = float(residual @ residual)
    s2 = rss / (n - p)
    sigma_ml = math.sqrt(rss / n)
    log_likelihood = float(stats.norm.logpdf(residual, scale=max(sigma_ml, 1e-300)).sum())
    total = points.log_y - points.log_y.mean()
    fit = LawFit(
        spec=spec,
        beta=beta,
        cov=s2 * np.linalg.inv(x.T @ x),
        dof=n - p,
        residual_sd=math.sqrt(s2),
        n=n,
        r2=1 - rss / float(total @ total),
        log_d_range=_range(points.log_d),
        log_w_range=_range(points.log_w),
        log_dw_range=_range(points.log_d + points.log_w),
        aicc=_aicc(log_likelihood, p + 1, n),
    )
    if not with_loo:
        return fit
    errors, note = loo_errors(spec, points)
    return dataclasses.replace(fit, loo_errors=errors, loo_note=note)


def _range(values: np.ndarray) -> tuple[float, float]:
    return float(values.min()), float(values.max())


def loo_errors(spec: LawSpec, points: Points) -> tuple[tuple[float, ...], str]:
    """Each architecture predicted by the law refitted without it: log(measured / predicted),
    fold by fold; none, and the reason, when a fold cannot be fitted (a law scored on fewer
    folds would be compared with the others on different data)."""
    errors = []
    for i in range(len(points)):
        try:
            fit = fit_law(spec, points.subset(np.arange(len(points)) != i), with_loo=False)
        except MilrError as err:
            depth, width = math.exp(points.log_d[i]), math.exp(points.log_w[i])
            return (), f"leave-one-out undefined: without {depth:.0f}x{width:.0f}, {err}"
        x, offset = design(spec, points.log_d[[i]], points.log_w[[i]])
        errors.append(float(points.log_y[i] - (x[0] @ fit.beta + offset[0])))
    return tuple(errors), ""


def paired_loo(law: LawFit, leader: LawFit) -> tuple[float, float, float]:
    """How much worse ``law`` predicts than ``leader`` on the same folds: the mean over folds of
    the difference of squared log errors, its standard error, and the two-sided p of a paired
    t-test that the mean is 0 (folds treated as independent, an approximation: each fold's
    refit shares all but two architectures with another's)."""
    diff = np.square(law.loo_errors) - np.square(leader.loo_errors)
    n = len(diff)
    if n < 3 or len(law.loo_errors) != len(leader.loo_errors):
        return math.nan, math.nan, math.nan
    mean, se = float(diff.mean()), float(diff.std(ddof=1) / math.sqrt(n))
    if se == 0:
        return mean, 0.0, 1.0 if mean == 0 else 0.0
    return mean, se, float(2 * stats.t.sf(abs(mean) / se, n - 1))


def holm(pvalues: Sequence[float]) -> list[float]:
    """Holm's step-down adjustment (family-wise error): NaNs stay NaN and do not count."""
    p = np.asarray(pvalues, float)
    finite = np.flatnonzero(np.isfinite(p))
    adjusted = np.full(len(p), math.nan)
    order = finite[np.argsort(p[finite], kind="stable")]
    running = 0.0
    for rank, i in enumerate(order):
        running = max(running, min(1.0, (len(order) - rank) * p[i]))
        adjusted[i] = running
    return adjusted.tolist()


assert tuple(LAWS) == LAW_NAMES, "milr.names.LAW_NAMES lists the laws defined here"


# --- from η* jobs to architecture points ------------------------------------------------------


def eta_point(table: pd.DataFrame) -> pd.Series:
    """The value fitted for each η* job: the geometric midpoint of its final bracket, NaN when
    η* is censored (no success, or the bracket's top never failed)."""
    censored = table["no_success"].astype(bool) | table["hit_upper_bound"].astype(bool)
    low, high = table["bracket_low"].astype(float), table["bracket_high"].astype(float)
    ok = ~censored & (low > 0) & np.isfinite(high)
    return pd.Series(np.where(ok, np.sqrt(low.where(ok, 1.0) * high.where(ok, 1.0)), np.nan),
                     index=table.index)  # fmt: skip


def select_points(
    table: pd.DataFrame, options: FitOptions, subset: str = "all"
) -> tuple[pd.DataFrame, int]:
    """Jobs that may enter a fit: the subset's depths, width/depth above the ratio and, for
    measured η*, a bracket narrow enough (a censored job has no bracket to judge: it is counted
    as censored, not here). The count is of jobs condition (i) or the bracket rule left out."""
    table = table[table["depth"] >= SUBSETS[subset]]
    keep = table["width"] / table["depth"] >= options.min_width_over_depth
    if "relative_bracket" in table and options.max_relative_bracket is not None:
        censored = table["no_success"].astype(bool) | table["hit_upper_bound"].astype(bool)
        keep &= censored | (table["relative_bracket"] <= options.max_relative_bracket)
    return table[keep], int((~keep).sum())


def job_kinds(table: pd.DataFrame) -> pd.Series:
    """Each job's kind: value, below (no probe reached t: η* is below the bracket's top) or
    above (the top never failed: η* is above its bottom)."""
    below = table["no_success"].astype(bool)
    above = table["hit_upper_bound"].astype(bool) & ~below
    return pd.Series(np.where(below, "below", np.where(above, "above", "value")), table.index)


def architecture_table(eta: pd.DataFrame) -> pd.DataFrame:
    """One row per architecture of one (dataset, variant, threshold): the mean log η* over its
    seeds (NaN when a seed is censored), the geometric means of their brackets, and its kind
    (``value``; ``below`` or ``above`` when a seed is censored that way; ``mixed``)."""
    if eta.empty:  # condition (i) or the subset kept no job
        columns = ["depth", "width", "log_y", "log_low", "log_high", "seeds", "censored_seeds"]
        return pd.DataFrame({c: pd.Series(dtype=float) for c in columns}).assign(
            kind=pd.Series(dtype=str)
        )
    jobs = eta.assign(
        log_y=np.log(eta_point(eta)),
        kind=job_kinds(eta),
        log_low=np.log(eta.bracket_low.astype(float).where(lambda v: v > 0)),
        log_high=np.log(eta.bracket_high.astype(float)),
    )

    def arch_kind(kinds: pd.Series) -> str:
        censored = set(kinds) - {"value"}
        return "value" if not censored else censored.pop() if len(censored) == 1 else "mixed"

    return jobs.groupby(["depth", "width"], as_index=False).agg(
        log_y=("log_y", lambda v: v.mean(skipna=False)),
        log_low=("log_low", "mean"),
        log_high=("log_high", "mean"),
        seeds=("seed", "count"),
        censored_seeds=("kind", lambda k: int((k != "value").sum())),
        kind=("kind", arch_kind),
    )


def fitted(archs: pd.DataFrame) -> pd.DataFrame:
    """The architectures a fit uses: every seed measured."""
    return archs[(archs.kind == "value") & np.isfinite(archs.log_y)]


def to_points(archs: pd.DataFrame) -> Points:
    """The points of the architectures a fit uses."""
    chosen = fitted(archs)
    return Points(
        np.log(chosen.depth.to_numpy(float)),
        np.log(chosen.width.to_numpy(float)),
        chosen.log_y.to_numpy(float),
    )


def censor_counts(archs: pd.DataFrame) -> dict[str, object]:
    """What censoring did to a fit: censored jobs, and the architectures left out for them."""
    censored = archs[archs.kind != "value"]
    return {
        "n_censored": int(archs.censored_seeds.sum()),
        "n_left_out": len(censored),
        "censored": " ".join(f"{d}x{w}:{k}" for d, w, k in zip(censored.depth, censored.width,
                                                               censored.kind, strict=True)),
    }  # fmt: skip


def points_for(
    eta: pd.DataFrame, options: FitOptions, subset: str = "all"
) -> tuple[pd.DataFrame, Points, int]:
    """The architectures of one law's η* jobs, the points its fit uses, and how many jobs the
    selection (condition (i), bracket width) left out."""
    chosen, dropped = select_points(eta, options, subset)
    archs = architecture_table(chosen)
    return archs, to_points(archs), dropped


# --- the laws table ---------------------------------------------------------------------------

LAW_COLUMNS = [
    "dataset", "variant", "threshold", "subset", "law", "formula", "source", "n_architectures",
    "architectures", "n_censored", "n_left_out", "censored", "n_selected_out", "a", "a_low",
    "a_high", "b", "b_low", "b_high", "a_minus_b", "a_minus_b_low", "a_minus_b_high",
    "a_minus_b_p", "C", "C_low", "C_high", "r2", "residual_sd", "loo_rmse", "loo_folds",
    "aicc", "delta_aicc", "leader", "vs_leader", "vs_leader_se", "vs_leader_p",
    "vs_leader_p_holm", "best", "loo_note", "error",
]  # fmt: skip


def law_row(fit: LawFit) -> dict[str, object]:
    """A fitted law as a laws.csv row (exponents with their 95% intervals; fixed ones exact)."""
    row: dict[str, object] = {}
    for name, weights in (("a", (1, 0)), ("b", (0, 1)), ("a_minus_b", (1, -1))):
        centre, low, high = fit.exponent_interval(weights)
        row.update({name: centre, f"{name}_low": low, f"{name}_high": high})
    row["a_minus_b_p"] = fit.exponent_p((1, -1))
    log_c, low, high = fit.log_c_interval()
    row.update(C=math.exp(log_c), C_low=math.exp(low), C_high=math.exp(high))
    row.update(r2=fit.r2, residual_sd=fit.residual_sd, loo_rmse=fit.loo_rmse, aicc=fit.aicc)
    row.update(n_architectures=fit.n, loo_folds=len(fit.loo_errors), loo_note=fit.loo_note)
    row["error"] = ""
    return row


def fit_every_law(points: Points) -> tuple[dict[str, LawFit], dict[str, str]]:
    """Every law fitted to ``points``: the fits, and why each law that could not be fitted was
    not."""
    fits, errors = {}, {}
    for spec in LAWS.values():
        try:
            fits[spec.name] = fit_law(spec, points)
        except MilrError as err:
            errors[spec.name] = str(err)
    return fits, errors


def best_law(points: Points) -> str | None:
    """The law called best on ``points`` (its leave-one-out errors lower than every other
    law's by more than their uncertainty), or None where no law is."""
    marks = ranking(fit_every_law(points)[0])
    return next((law for law, mark in marks.items() if mark["best"]), None)


def ranking(fits: dict[str, LawFit]) -> dict[str, dict[str, object]]:
    """The leader (lowest leave-one-out error) and each other law's paired difference from it;
    the leader is ``best`` only where every difference is positive at Holm-adjusted ALPHA."""
    scored = {name: f for name, f in fits.items() if math.isfinite(f.loo_rmse)}
    out: dict[str, dict[str, object]] = {name: {"leader": False, "best": False} for name in fits}
    if len(scored) < 2:
        return out
    leader = min(scored, key=lambda name: scored[name].loo_rmse)
    others = [name for name in scored if name != leader]
    tests = {name: paired_loo(scored[name], scored[leader]) for name in others}
    adjusted = holm([tests[name][2] for name in others])
    for name, p_holm in zip(others, adjusted, strict=True):
        mean, se, p = tests[name]
        out[name].update(vs_leader=mean, vs_leader_se=se, vs_leader_p=p, vs_leader_p_holm=p_holm)
    beaten = [tests[n][0] > 0 and p < ALPHA for n, p in zip(others, adjusted, strict=True)]
    out[leader].update(leader=True, best=all(beaten))
    return out


def laws_for(eta: pd.DataFrame, options: FitOptions) -> list[dict[str, object]]:
    """Every law fitted to one (dataset, variant, threshold), with all depths and without
    depth 1, each fit's leader and (where it is distinguishable) best law marked."""
    rows = []
    for subset in SUBSETS:
        archs, points, dropped = points_for(eta, options, subset)
        chosen = fitted(archs)
        names = " ".join(f"{d}x{w}" for d, w in zip(chosen.depth, chosen.width, strict=True))
        common = {"subset": subset, "n_selected_out": dropped, "architectures": names,
                  **censor_counts(archs)}  # fmt: skip
        fits, errors = fit_every_law(points)
        group = []
        for spec in LAWS.values():
            row = {"law": spec.name, "formula": spec.formula, "source": spec.source, **common}
            if spec.name in fits:
                row.update(law_row(fits[spec.name]))
            else:
                row.update(n_architectures=len(points), error=errors[spec.name])
            group.append(row)
        marks = ranking(fits)
        aiccs = [f.aicc for f in fits.values() if np.isfinite(f.aicc)]
        for row in group:
            fit = fits.get(row["law"])
            row.update(marks.get(row["law"], {"leader": False, "best": False}))
            row["delta_aicc"] = fit.aicc - min(aiccs) if fit is not None and aiccs else math.nan
        rows += group
    return rows


def per_fit_table(
    eta: pd.DataFrame,
    options: FitOptions,
    rows_for: Callable[[pd.DataFrame, FitOptions], list[dict[str, object]]],
    columns: list[str],
) -> pd.DataFrame:
    """``rows_for`` of every (dataset, variant, threshold) of the finished η* jobs, labelled."""
    rows = []
    ok = eta[eta.status == "ok"] if "status" in eta else eta
    for (dataset, variant, threshold), group in ok.groupby(["dataset", "variant", "threshold"]):
        labels = {"dataset": dataset, "variant": variant, "threshold": float(threshold)}
        rows += [{**labels, **row} for row in rows_for(group, options)]
    return pd.DataFrame(rows, columns=columns)


def laws_table(eta: pd.DataFrame, options: FitOptions) -> pd.DataFrame:
    """``laws.csv``: every law for every dataset x variant x threshold x subset."""
    return per_fit_table(eta, options, laws_for, LAW_COLUMNS)

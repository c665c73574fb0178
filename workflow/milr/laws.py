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
midpoint, :func:`milr.fit.eta_point`). A censored seed (no probe reached t, or the top of the
bracket never failed) makes its architecture's mean a bound, not a value. ``censoring``:

- ``exclude`` (default): architectures with a censored seed are left out whole and counted. A
  mean over the other seeds would be biased (it drops the seed that could not be measured), and
  in practice "no success" means the network never reached t at any rate down to
  ``search.min_rate``: it cannot be trained to t at all, which is no point on a law of η*.
- ``bounds``: they enter as bounds (a Tobit likelihood: normal scatter about the law, a bound
  contributes the probability of lying beyond it); architectures censored both ways are left
  out. Unbiased where a censored η* really is below (or above) the rates tried.

Intervals: with no bound in the fit, the least-squares t-intervals, β ± t_{n-p} · s ·
sqrt(diag((XᵀX)⁻¹)), s² = RSS / (n - p): exact under independent normal scatter of the
architecture means about the law (architecture scatter plus seed noise), and measured to cover
95% ± 2 points from 4 to 12 architectures (tests/test_laws.py). With bounds, the maximum-
likelihood estimate and its observed-information covariance, scaled by n / (n - p) so that it
equals the least-squares one when nothing is censored.

Comparison: ``loo_rmse``, the root mean square of log(measured / predicted) for each
architecture predicted by the law refitted without it (exp of it: the typical factor by which
the law misses an unseen architecture), and AICc (Akaike's criterion with the small-sample
correction; lower is better, differences above ~2 matter).
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy import optimize, stats

from milr import MilrError
from milr.names import LAW_NAMES
from milr.settings import FitOptions

MIN_ARCHITECTURES = 4
LEVEL = 0.95  # the intervals' nominal coverage


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
    """One point per architecture: log depth, log width, the mean log η* over its seeds and
    what kind of number that mean is (``value``; ``below``/``above``: a bound)."""

    log_d: np.ndarray
    log_w: np.ndarray
    log_y: np.ndarray
    kind: np.ndarray  # "value", "below", "above"

    def __len__(self) -> int:
        return len(self.log_y)

    def subset(self, keep: np.ndarray) -> Points:
        return Points(self.log_d[keep], self.log_w[keep], self.log_y[keep], self.kind[keep])

    @property
    def exact(self) -> np.ndarray:
        return self.kind == "value"


@dataclass(frozen=True)
class LawFit:
    """A fitted law: coefficients β = (log C, θ), their covariance, and its quality."""

    spec: LawSpec
    beta: np.ndarray
    cov: np.ndarray  # of beta, scaled to the t-interval's s²
    dof: int  # n - p
    residual_sd: float
    n: int
    n_bounds: int
    r2: float
    log_d_range: tuple[float, float]
    log_w_range: tuple[float, float]
    log_dw_range: tuple[float, float]
    loo_rmse: float = math.nan
    aicc: float = math.nan

    def t(self, level: float = LEVEL) -> float:
        return float(stats.t.ppf((1 + level) / 2, self.dof))

    def exponents(self) -> np.ndarray:
        """(a, b)."""
        return np.array(self.spec.fixed) + np.array(self.spec.M).reshape(2, -1) @ self.beta[1:]

    def exponent_interval(self, weights: Sequence[float], level: float = LEVEL) -> tuple:
        """Estimate and interval of weights · (a, b): (1, 0) is a, (0, 1) is b, (1, -1) a - b."""
        w = np.asarray(weights, float)
        m = np.array(self.spec.M).reshape(2, -1)
        centre = float(w @ self.exponents())
        g = np.concatenate([[0.0], w @ m])  # gradient in beta
        half = self.t(level) * math.sqrt(max(float(g @ self.cov @ g), 0.0))
        return centre, centre - half, centre + half

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
    """Fit ``spec`` to ``points``: least squares, or the Tobit likelihood where bounds enter."""
    n, p = len(points), spec.free + 1
    x, offset = design(spec, points.log_d, points.log_w)
    exact = points.exact
    if int(exact.sum()) < max(MIN_ARCHITECTURES, p + 1) or np.linalg.matrix_rank(x[exact]) < p:
        raise MilrError(
            f"not fitted: {int(exact.sum())} architectures with a measured η*; the {spec.name} "
            f"law needs at least {max(MIN_ARCHITECTURES, p + 1)} that vary in "
            f"{'depth and width' if spec.free == 2 else 'the law' + chr(39) + 's variable'}"
        )
    y = points.log_y - offset
    beta, *_ = np.linalg.lstsq(x[exact], y[exact], rcond=None)
    if exact.all():
        residual = y - x @ beta
        rss = float(residual @ residual)
        s2 = rss / (n - p)
        cov = s2 * np.linalg.inv(x.T @ x)
        sigma_ml = math.sqrt(rss / n)
        log_likelihood = float(stats.norm.logpdf(residual, scale=max(sigma_ml, 1e-300)).sum())
    else:
        beta, cov, s2, log_likelihood = _tobit(x, y, points.kind, beta)
    total = points.log_y[exact] - points.log_y[exact].mean()
    fitted = x[exact] @ beta + offset[exact]
    r2 = 1 - float(np.sum((points.log_y[exact] - fitted) ** 2)) / float(total @ total)
    fit = LawFit(
        spec=spec,
        beta=beta,
        cov=cov,
        dof=n - p,
        residual_sd=math.sqrt(s2),
        n=n,
        n_bounds=int((~exact).sum()),
        r2=r2,
        log_d_range=_range(points.log_d),
        log_w_range=_range(points.log_w),
        log_dw_range=_range(points.log_d + points.log_w),
        aicc=_aicc(log_likelihood, p + 1, n),
    )
    if not with_loo:
        return fit
    return dataclasses.replace(fit, loo_rmse=loo_rmse(spec, points))


def _range(values: np.ndarray) -> tuple[float, float]:
    return float(values.min()), float(values.max())


def _tobit(x, y, kind, start) -> tuple[np.ndarray, np.ndarray, float, float]:
    """Maximum likelihood with bounds: β, its covariance (scaled n / (n - p)), s², log L."""
    n, p = x.shape
    exact, below, above = kind == "value", kind == "below", kind == "above"

    def nll(params: np.ndarray) -> float:
        beta, log_sigma = params[:-1], params[-1]
        sigma = math.exp(log_sigma)
        z = (y - x @ beta) / sigma
        total = stats.norm.logpdf(z[exact]).sum() - exact.sum() * log_sigma
        total += stats.norm.logcdf(z[below]).sum() + stats.norm.logsf(z[above]).sum()
        return -float(total)

    residual = y[exact] - x[exact] @ start
    sigma0 = max(float(np.sqrt(np.mean(residual**2))), 1e-3)
    settings = {"xatol": 1e-10, "fatol": 1e-12, "maxiter": 20000}
    start_params = np.append(start, math.log(sigma0))
    result = optimize.minimize(nll, start_params, method="Nelder-Mead", options=settings)
    params = result.x
    hessian = _numerical_hessian(nll, params)
    try:
        cov_all = np.linalg.inv(hessian)
    except np.linalg.LinAlgError as err:
        raise MilrError("not fitted: the censored fit's information matrix is singular") from err
    scale = n / (n - p)
    sigma = math.exp(params[-1])
    return params[:-1], cov_all[:p, :p] * scale, sigma**2 * scale, -float(result.fun)


def _numerical_hessian(f, at: np.ndarray, step: float = 1e-4) -> np.ndarray:
    """Central second differences of ``f`` at ``at``."""
    k = len(at)
    h = np.zeros((k, k))
    for i in range(k):
        for j in range(i, k):
            ei, ej = np.eye(k)[i] * step, np.eye(k)[j] * step
            value = f(at + ei + ej) - f(at + ei - ej) - f(at - ei + ej) + f(at - ei - ej)
            h[i, j] = h[j, i] = value / (4 * step * step)
    return h


def loo_rmse(spec: LawSpec, points: Points) -> float:
    """Each measured architecture predicted by the law refitted without it (bounds stay in)."""
    errors = []
    for i in np.flatnonzero(points.exact):
        keep = np.arange(len(points)) != i
        try:
            fit = fit_law(spec, points.subset(keep), with_loo=False)
        except MilrError:
            continue
        x, offset = design(spec, points.log_d[[i]], points.log_w[[i]])
        errors.append(points.log_y[i] - float(x[0] @ fit.beta + offset[0]))
    return float(np.sqrt(np.mean(np.square(errors)))) if errors else math.nan


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


def select_points(table: pd.DataFrame, options: FitOptions) -> tuple[pd.DataFrame, int]:
    """Jobs that may enter a fit: width/depth above the ratio and, for measured η*, a bracket
    narrow enough (a censored job has no bracket to judge: censoring counts it, not this)."""
    keep = table["width"] / table["depth"] >= options.min_width_over_depth
    if "relative_bracket" in table and options.max_relative_bracket is not None:
        censored = table["no_success"].astype(bool) | table["hit_upper_bound"].astype(bool)
        keep &= censored | (table["relative_bracket"] <= options.max_relative_bracket)
    return table[keep], int((~keep).sum())


def job_kinds(table: pd.DataFrame) -> tuple[pd.Series, pd.Series]:
    """Each job's log η* (or log bound) and its kind: value, below (no probe reached t: η* is
    below the bracket's top) or above (the top never failed: η* is above its bottom)."""
    below = table["no_success"].astype(bool)
    above = table["hit_upper_bound"].astype(bool) & ~below
    kind = pd.Series(np.where(below, "below", np.where(above, "above", "value")), table.index)
    value = eta_point(table)
    bound = np.where(below, table["bracket_high"].astype(float),
                     table["bracket_low"].astype(float))  # fmt: skip
    with np.errstate(divide="ignore"):
        log_y = np.log(np.where(kind == "value", value, bound))
    return pd.Series(log_y, table.index), kind


def architecture_table(eta: pd.DataFrame) -> pd.DataFrame:
    """One row per architecture of one (dataset, variant, threshold): the mean log η* over its
    seeds, the geometric means of their brackets, and its kind (``value``; ``below`` or
    ``above`` when a seed is censored that way, the mean then being a bound; ``mixed``)."""
    log_y, kind = job_kinds(eta)
    jobs = eta.assign(
        log_y=log_y,
        kind=kind,
        log_low=np.log(eta.bracket_low.astype(float).where(lambda v: v > 0)),
        log_high=np.log(eta.bracket_high.astype(float)),
    )

    def arch_kind(kinds: pd.Series) -> str:
        censored = set(kinds) - {"value"}
        return "value" if not censored else censored.pop() if len(censored) == 1 else "mixed"

    table = jobs.groupby(["depth", "width"], as_index=False).agg(
        log_y=("log_y", "mean"),
        log_low=("log_low", "mean"),
        log_high=("log_high", "mean"),
        seeds=("seed", "count"),
        censored_seeds=("kind", lambda k: int((k != "value").sum())),
        kind=("kind", arch_kind),
    )
    return table


def fitted(archs: pd.DataFrame, censoring: str) -> pd.DataFrame:
    """The architectures a fit uses under ``censoring``: exclude keeps measured ones only,
    bounds keeps the one-sided bounds as well."""
    keep = archs.kind == "value" if censoring == "exclude" else archs.kind != "mixed"
    return archs[keep & np.isfinite(archs.log_y)]


def to_points(archs: pd.DataFrame, censoring: str) -> Points:
    """The points of the architectures a fit uses under ``censoring``."""
    chosen = fitted(archs, censoring)
    return Points(
        np.log(chosen.depth.to_numpy(float)),
        np.log(chosen.width.to_numpy(float)),
        chosen.log_y.to_numpy(float),
        chosen.kind.to_numpy(str),
    )


def censor_counts(archs: pd.DataFrame, censoring: str) -> dict[str, object]:
    """What censoring did to a fit: censored jobs, architectures, and which were left out."""
    censored = archs[archs.kind != "value"]
    left_out = censored if censoring == "exclude" else censored[censored.kind == "mixed"]
    return {
        "censoring": censoring,
        "n_censored": int(archs.censored_seeds.sum()),
        "n_censored_architectures": len(censored),
        "censored": " ".join(f"{d}x{w}:{k}" for d, w, k in zip(censored.depth, censored.width,
                                                               censored.kind, strict=True)),
        "n_left_out": len(left_out),
    }  # fmt: skip


# --- the laws table ---------------------------------------------------------------------------

LAW_COLUMNS = [
    "dataset", "variant", "threshold", "law", "formula", "source", "n_architectures",
    "n_bounds", "censoring", "n_censored", "n_censored_architectures", "n_left_out", "censored",
    "n_selected_out", "a", "a_low", "a_high", "b", "b_low", "b_high", "a_minus_b",
    "a_minus_b_low", "a_minus_b_high", "C", "C_low", "C_high", "r2", "residual_sd", "loo_rmse",
    "aicc", "delta_aicc", "best", "error",
]  # fmt: skip


def law_row(fit: LawFit) -> dict[str, object]:
    """A fitted law as a laws.csv row (exponents with their 95% intervals; fixed ones exact)."""
    row: dict[str, object] = {}
    for name, weights in (("a", (1, 0)), ("b", (0, 1)), ("a_minus_b", (1, -1))):
        centre, low, high = fit.exponent_interval(weights)
        row.update({name: centre, f"{name}_low": low, f"{name}_high": high})
    log_c, low, high = fit.log_c_interval()
    row.update(C=math.exp(log_c), C_low=math.exp(low), C_high=math.exp(high))
    row.update(r2=fit.r2, residual_sd=fit.residual_sd, loo_rmse=fit.loo_rmse, aicc=fit.aicc)
    row.update(n_architectures=fit.n, n_bounds=fit.n_bounds)
    return row


def laws_for(eta: pd.DataFrame, options: FitOptions) -> list[dict[str, object]]:
    """Every law fitted to one (dataset, variant, threshold), best (lowest loo_rmse) marked."""
    archs, points, dropped = points_for(eta, options)
    common = {"n_selected_out": dropped, **censor_counts(archs, options.censoring)}
    rows = []
    for spec in LAWS.values():
        row = {"law": spec.name, "formula": spec.formula, "source": spec.source, **common}
        try:
            row.update(law_row(fit_law(spec, points)), error="")
        except MilrError as err:
            row.update(n_architectures=len(points), error=str(err))
        rows.append(row)
    fitted = [r for r in rows if not r["error"]]
    aiccs = [r["aicc"] for r in fitted if np.isfinite(r["aicc"])]
    losses = [r["loo_rmse"] for r in fitted if np.isfinite(r["loo_rmse"])]
    for row in rows:
        row["delta_aicc"] = row["aicc"] - min(aiccs) if aiccs and not row["error"] else math.nan
        row["best"] = bool(losses) and not row["error"] and row["loo_rmse"] == min(losses)
    return rows


def laws_table(eta: pd.DataFrame, options: FitOptions) -> pd.DataFrame:
    """``laws.csv``: every law for every dataset x variant x threshold."""
    rows = []
    ok = eta[eta.status == "ok"] if "status" in eta else eta
    for (dataset, variant, threshold), group in ok.groupby(["dataset", "variant", "threshold"]):
        labels = {"dataset": dataset, "variant": variant, "threshold": float(threshold)}
        rows += [{**labels, **row} for row in laws_for(group, options)]
    return pd.DataFrame(rows, columns=LAW_COLUMNS)


def points_for(eta: pd.DataFrame, options: FitOptions) -> tuple[pd.DataFrame, Points, int]:
    """The architectures of one law's η* jobs, the points its fit uses, and how many jobs the
    selection (condition (i), bracket width) left out."""
    chosen, dropped = select_points(eta, options)
    archs = architecture_table(chosen)
    return archs, to_points(archs, options.censoring), dropped

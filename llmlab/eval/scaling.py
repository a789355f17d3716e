"""Scaling laws: Kaplan et al. (2020) and Chinchilla (Hoffmann et al. 2022), predicted and fitted.

Loss is cross-entropy in nats per token; N is parameters, D training tokens, C training FLOPs.

Kaplan et al. 2020, "Scaling Laws for Neural Language Models" (N = non-embedding parameters):
    L(N)    = (N_c / N)^alpha_N            alpha_N = 0.076, N_c = 8.8e13   (eq. 1.1)
    L(D)    = (D_c / D)^alpha_D            alpha_D = 0.095, D_c = 5.4e13   (eq. 1.2)
    L(N, D) = [(N_c/N)^(alpha_N/alpha_D) + D_c/D]^alpha_D                  (eq. 1.5)
              with its own joint fit (Table 2): alpha_N = 0.076, alpha_D = 0.103,
              N_c = 6.4e13, D_c = 1.8e13.

Chinchilla (approach 3): L(N, D) = E + A / N^alpha + B / D^beta, three published constant sets:
    "chinchilla"     the paper's text (rounded):  E=1.69, A=406.4, B=410.7, alpha=0.34, beta=0.28
    "chinchilla-tex" the same fit unrounded, from the paper's TeX source as transcribed by
                     Besiroglu et al. 2024: E=1.6934, alpha=0.3392, beta=0.2849 (A, B as above)
    "epoch"          Epoch AI's refit on data reconstructed from the paper (Besiroglu et al.
                     2024, "Chinchilla Scaling: A replication attempt"): E=1.8172, A=482.01,
                     B=2085.43, alpha=0.3478, beta=0.3658 (E is often quoted rounded, 1.82)
Which published numbers each set reproduces at Gopher's budget C = 5.76e23 FLOPs (tested):
    "epoch"          N* ~ 72B, D* ~ 1.3T (~18 tokens/param): Chinchilla's own 70B / 1.4T, and
                     approaches 1 and 2 of the paper (67B at this budget, Table 3).
    "chinchilla-tex" N* ~ 40B: the paper's approach-3 projection for Gopher (Figure 4), and its
                     approach-3 exponents a = 0.46, b = 0.54 (Table 2).
    "chinchilla"     N* ~ 32B: the rounding alone moves the optimum by 20%, which is one of the
                     discrepancies Besiroglu et al. point out.
Compute-optimal allocation under C = 6ND has a closed form (Hoffmann et al. eq. 4):
    G = (alpha A / (beta B))^(1/(alpha+beta)),  N* = G (C/6)^(beta/(alpha+beta)),  D* = (C/6) / N*.

Fitting (`fit_scaling_law`) follows Chinchilla's recipe: minimise the Huber loss (delta = 1e-3)
between the predicted and observed log-loss, with L-BFGS started from the best points of a grid
of initialisations; the objective is summed, not averaged (averaging shrinks it ~N-fold and, as
Besiroglu et al. found, makes L-BFGS stop early). scipy is not needed: torch's LBFGS does it.
"""

from __future__ import annotations

import csv
import itertools
import json
import math
import warnings
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from llmlab.errors import ConfigError, DataError, json_error
from llmlab.units import parse_count  # noqa: F401  (public here since wave 1: llmlab.eval.scaling.parse_count)

# ----------------------------------------------------------------------------------------------
# Constants
# ----------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class KaplanLaw:
    """Kaplan et al. 2020 constants; N counts non-embedding parameters."""

    alpha_N: float
    N_c: float
    alpha_D: float
    D_c: float
    source: str = ""


# Separate fits, eqs. 1.1 and 1.2 (the constants the lesson's listing uses).
KAPLAN_SEPARATE = KaplanLaw(0.076, 8.8e13, 0.095, 5.4e13, "Kaplan et al. 2020, eqs. 1.1-1.2")
# Joint fit of eq. 1.5 (Table 2).
KAPLAN_JOINT = KaplanLaw(0.076, 6.4e13, 0.103, 1.8e13, "Kaplan et al. 2020, eq. 1.5 / Table 2")


@dataclass(frozen=True)
class ChinchillaLaw:
    """L(N, D) = E + A / N^alpha + B / D^beta."""

    E: float
    A: float
    B: float
    alpha: float
    beta: float
    name: str = "custom"
    source: str = ""

    def loss(self, N: Any, D: Any) -> Any:
        N, D = _positive_array(N, "N"), _positive_array(D, "D")
        out = self.E + self.A / N**self.alpha + self.B / D**self.beta
        return float(out) if np.ndim(out) == 0 else out

    @property
    def exponents(self) -> tuple[float, float]:
        """(a, b) with N* ∝ C^a and D* ∝ C^b."""
        s = self.alpha + self.beta
        return self.beta / s, self.alpha / s

    def compute_optimal(self, C: float) -> tuple[float, float]:
        """(N*, D*) minimising the loss subject to 6 N D = C (closed form)."""
        C = _positive(C, "C (FLOPs)")
        a, _ = self.exponents
        G = (self.alpha * self.A / (self.beta * self.B)) ** (1.0 / (self.alpha + self.beta))
        n_opt = G * (C / 6.0) ** a
        return n_opt, (C / 6.0) / n_opt

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


CHINCHILLA = ChinchillaLaw(1.69, 406.4, 410.7, 0.34, 0.28, "chinchilla",
                           "Hoffmann et al. 2022, approach 3 (eq. 10, rounded as printed)")
CHINCHILLA_TEX = ChinchillaLaw(1.6934, 406.4, 410.7, 0.3392, 0.2849, "chinchilla-tex",
                               "Hoffmann et al. 2022, approach 3, unrounded (TeX source, via Besiroglu et al. 2024)")
EPOCH = ChinchillaLaw(1.8172, 482.01, 2085.43, 0.3478, 0.3658, "epoch",
                      "Besiroglu et al. 2024 (Epoch AI), Chinchilla replication refit")
LAWS: dict[str, ChinchillaLaw] = {law.name: law for law in (CHINCHILLA, CHINCHILLA_TEX, EPOCH)}
ALL_LAW_NAMES = ("kaplan", *LAWS)

GOPHER_FLOPS = 5.76e23  # Gopher's (and Chinchilla's) training budget, Hoffmann et al. Table 3

# The lesson's example list, names as the lesson gives them. (In the GPT-3 paper 1.3B is "GPT-3
# XL" and 6.7B "GPT-3 6.7B"; "Medium" is 350M and "Large" 760M. All were trained on 300B tokens.)
LESSON_MODELS = [
    ("GPT-3 Small", 125e6, 300e9),
    ("GPT-3 Medium", 1.3e9, 300e9),
    ("GPT-3 Large", 6.7e9, 300e9),
    ("GPT-3", 175e9, 300e9),
]
# The same models by the GPT-3 paper's Table 2.1 names, which `llmlab presets` follows.
LESSON_MODEL_PRESETS = {"GPT-3 Small": "gpt3-small", "GPT-3 Medium": "gpt3-xl", "GPT-3 Large": "gpt3-6.7b",
                        "GPT-3": "gpt3-175b"}


# ----------------------------------------------------------------------------------------------
# Predictions
# ----------------------------------------------------------------------------------------------


def _positive(x: Any, name: str) -> float:
    try:
        v = float(x)
    except (TypeError, ValueError):
        raise ConfigError(f"{name} must be a number, got {x!r}") from None
    if not math.isfinite(v) or v <= 0:
        raise ConfigError(f"{name} must be a positive finite number, got {x!r}")
    return v


def _positive_array(x: Any, name: str) -> Any:
    if np.ndim(x) == 0:
        return _positive(x, name)
    arr = np.asarray(x, dtype=np.float64)
    if not np.all(np.isfinite(arr)) or np.any(arr <= 0):
        raise ConfigError(f"{name} must contain only positive finite numbers")
    return arr


def _scalar_or_array(out: Any) -> Any:
    return float(out) if np.ndim(out) == 0 else out


def kaplan_loss_n(N: Any, law: KaplanLaw = KAPLAN_SEPARATE) -> Any:
    """L(N) = (N_c/N)^alpha_N: models trained to convergence on ample data (Kaplan eq. 1.1)."""
    return _scalar_or_array((law.N_c / _positive_array(N, "N")) ** law.alpha_N)


def kaplan_loss_d(D: Any, law: KaplanLaw = KAPLAN_SEPARATE) -> Any:
    """L(D) = (D_c/D)^alpha_D: large models early-stopped on D tokens (Kaplan eq. 1.2)."""
    return _scalar_or_array((law.D_c / _positive_array(D, "D")) ** law.alpha_D)


def kaplan_loss(N: Any, D: Any, law: KaplanLaw = KAPLAN_JOINT) -> Any:
    """Joint L(N, D) = [(N_c/N)^(alpha_N/alpha_D) + D_c/D]^alpha_D (Kaplan eq. 1.5)."""
    N, D = _positive_array(N, "N"), _positive_array(D, "D")
    inner = (law.N_c / N) ** (law.alpha_N / law.alpha_D) + law.D_c / D
    return _scalar_or_array(inner**law.alpha_D)


def get_law(law: str | ChinchillaLaw) -> ChinchillaLaw:
    if isinstance(law, ChinchillaLaw):
        return law
    try:
        return LAWS[law]
    except KeyError:
        raise ConfigError(f"unknown scaling law {law!r}; choose from {', '.join(LAWS)}") from None


def chinchilla_loss(N: Any, D: Any, law: str | ChinchillaLaw = "epoch") -> Any:
    """E + A/N^alpha + B/D^beta with a named constant set ("chinchilla", "chinchilla-tex", "epoch")."""
    return get_law(law).loss(N, D)


def predict_loss(N: float, D: float, law: str = "kaplan") -> float:
    """Loss predicted by any named law: "kaplan" (eq. 1.5, joint fit) or a Chinchilla set."""
    if law == "kaplan":
        return kaplan_loss(N, D)
    return get_law(law).loss(N, D)


def limit_loss(N: Any = None, D: Any = None, law: str = "kaplan") -> Any:
    """Loss when only one resource limits: L(N) for N parameters with unlimited data, or L(D)
    for D tokens with an unlimited model. Kaplan: its own separate fits (eqs. 1.1, 1.2);
    Chinchilla sets: E + A/N^alpha or E + B/D^beta (the other term goes to zero)."""
    if (N is None) == (D is None):
        raise ConfigError("give exactly one of N and D (use predict_loss for both)")
    if law == "kaplan":
        return kaplan_loss_n(N) if D is None else kaplan_loss_d(D)
    fit = get_law(law)
    if D is None:
        return _scalar_or_array(fit.E + fit.A / _positive_array(N, "N") ** fit.alpha)
    return _scalar_or_array(fit.E + fit.B / _positive_array(D, "D") ** fit.beta)


def compute_optimal(C: float, law: str | ChinchillaLaw = "epoch") -> dict[str, float]:
    """Compute-optimal N and D for a FLOP budget C = 6ND, and the loss there."""
    fit = get_law(law)
    n_opt, d_opt = fit.compute_optimal(C)
    a, b = fit.exponents
    return {"flops": float(C), "params": n_opt, "tokens": d_opt, "tokens_per_param": d_opt / n_opt,
            "loss": fit.loss(n_opt, d_opt), "a": a, "b": b}


def training_flops(N: float, D: float) -> float:
    """C ≈ 6 N D: forward (2ND) plus backward (4ND) FLOPs of a dense transformer (Kaplan §2.1)."""
    return 6.0 * _positive(N, "N") * _positive(D, "D")


def compute_scaling_law(N: float | None, D: float | None, C: float | None = None, *,
                        law: str = "kaplan", rtol: float = 0.1) -> float:
    """Expected loss (nats/token) of a model with N parameters trained on D tokens.

    The lesson's name and signature, with the correct joint prediction. The lesson's listing
    returns min(L(N), L(D)) of Kaplan's two separate laws; that is wrong twice over: each separate
    law assumes the *other* resource is unlimited, so a model limited by both is worse than
    either alone (the real loss is at least the max, never the min), and the min makes every
    model on 300B tokens score the same data-limited loss (1.638 for GPT-3 Small, Medium and
    Large alike). Kaplan's eq. 1.5 combines both limits in one law, which is what this returns
    (`law="kaplan"`, with its joint-fit constants). `law` may also name a Chinchilla constant set
    ("chinchilla", "chinchilla-tex", "epoch"), whose N counts all parameters.

    C (training FLOPs) is optional and only used for consistency: if D (or N) is None it is
    derived from C = 6ND; if all three are given and C is more than `rtol` away from 6ND, a
    warning says so (the lesson passes C = N*D, which omits the factor 6), and the prediction
    still uses N and D.
    """
    if D is None and N is None:
        raise ConfigError("give N and D, or one of them together with C")
    if D is None or N is None:
        if C is None:
            raise ConfigError("give both N and D, or C to derive the missing one from C = 6ND")
        C = _positive(C, "C (FLOPs)")
        if D is None:
            D = C / (6.0 * _positive(N, "N"))
        else:
            N = C / (6.0 * _positive(D, "D"))
    elif C is not None:
        expected = training_flops(N, D)
        if abs(_positive(C, "C (FLOPs)") - expected) > rtol * expected:
            warnings.warn(
                f"C={C:.3g} is not 6*N*D={expected:.3g} FLOPs; the prediction uses N and D "
                "(training compute is about 6ND: 2ND forward, 4ND backward)", UserWarning, stacklevel=2)
    return float(predict_loss(N, D, law))


def lesson_scaling_law(N: float, D: float, C: float | None = None) -> float:
    """The lesson's listing as written (min of Kaplan's separate L(N) and L(D)), for comparison only."""
    return min(kaplan_loss_n(N), kaplan_loss_d(D))


# ----------------------------------------------------------------------------------------------
# Fitting
# ----------------------------------------------------------------------------------------------

FIT_FORMS = ("chinchilla", "kaplan")


@dataclass
class FitResult:
    """A law fitted to (N, D, loss) runs. `params` holds the fitted constants by name."""

    form: str
    params: dict[str, float]
    objective: float  # summed Huber loss on log-loss at the optimum
    rmse_log: float  # root-mean-square error of log-loss
    n_points: int
    delta: float
    n_starts: int
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def law(self) -> ChinchillaLaw | KaplanLaw:
        p = self.params
        if self.form == "chinchilla":
            return ChinchillaLaw(p["E"], p["A"], p["B"], p["alpha"], p["beta"], "fit", "fit_scaling_law")
        return KaplanLaw(p["alpha_N"], p["N_c"], p["alpha_D"], p["D_c"], "fit_scaling_law")

    def predict(self, N: Any, D: Any) -> Any:
        law = self.law
        return law.loss(N, D) if isinstance(law, ChinchillaLaw) else kaplan_loss(N, D, law)

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        if self.form == "chinchilla":
            a, b = self.law.exponents  # type: ignore[union-attr]
            out["a"], out["b"] = a, b
        return out


def _huber(r: Any, delta: float) -> Any:
    import torch

    a = r.abs()
    return torch.where(a <= delta, 0.5 * r * r, delta * (a - 0.5 * delta))


def _log_pred_chinchilla(theta: Any, logN: Any, logD: Any) -> Any:
    import torch

    a, b, e, alpha, beta = theta.unbind(-1)
    terms = torch.stack([a[..., None] - alpha[..., None] * logN, b[..., None] - beta[..., None] * logD,
                         e[..., None] + 0.0 * (logN + logD)], dim=-1)
    return torch.logsumexp(terms, dim=-1)


def _log_pred_kaplan(theta: Any, logN: Any, logD: Any) -> Any:
    import torch

    lnc, ldc, alpha_n, alpha_d = theta.unbind(-1)
    ratio = alpha_n[..., None] / alpha_d[..., None]
    terms = torch.stack([ratio * (lnc[..., None] - logN), ldc[..., None] - logD], dim=-1)
    return alpha_d[..., None] * torch.logsumexp(terms, dim=-1)


def _default_grid(form: str) -> list[tuple[float, ...]]:
    if form == "chinchilla":  # Hoffmann et al. Appendix D.2's grid over (alpha, beta, e, a, b)
        alphas = np.arange(0.0, 2.01, 0.5)
        es = np.arange(-1.0, 1.01, 0.5)
        ab = np.arange(0.0, 25.01, 5.0)
        return [(a, b, e, al, be) for al, be, e, a, b in itertools.product(alphas, alphas, es, ab, ab)]
    # kaplan: log N_c, log D_c, alpha_N, alpha_D
    return [(lnc, ldc, an, ad) for lnc, ldc, an, ad in itertools.product(
        np.arange(20.0, 40.01, 5.0), np.arange(20.0, 40.01, 5.0), (0.03, 0.08, 0.2, 0.5), (0.03, 0.1, 0.3, 0.6))]


def fit_scaling_law(
    N: Sequence[float], D: Sequence[float], loss: Sequence[float], *, form: str = "chinchilla",
    delta: float = 1e-3, n_starts: int = 5, max_iter: int = 500,
) -> FitResult:
    """Fit a scaling law to runs with a Huber loss on log-loss (Chinchilla's approach 3).

    form="chinchilla": log L = LSE(a - alpha log N, b - beta log D, e), A = e^a, B = e^b, E = e^e.
    form="kaplan": Kaplan eq. 1.5 with free N_c, D_c, alpha_N, alpha_D.
    The whole initialisation grid is scored in one vectorised pass; L-BFGS (strong Wolfe line
    search, float64) then runs from the `n_starts` best grid points and the best result wins.
    """
    import torch

    if form not in FIT_FORMS:
        raise ConfigError(f"unknown fit form {form!r}; choose from {', '.join(FIT_FORMS)}")
    n_arr = _runs_array(N, "N")
    d_arr = _runs_array(D, "D")
    l_arr = _runs_array(loss, "loss")
    if not (n_arr.size == d_arr.size == l_arr.size):
        raise DataError(f"N, D and loss must have the same length ({n_arr.size}, {d_arr.size}, {l_arr.size})")
    n_params = 5 if form == "chinchilla" else 4
    if n_arr.size < n_params + 1:
        raise DataError(f"fitting the {form} form needs at least {n_params + 1} runs, got {n_arr.size}")
    if delta <= 0:
        raise ConfigError(f"delta must be positive, got {delta}")

    predict = _log_pred_chinchilla if form == "chinchilla" else _log_pred_kaplan
    logN = torch.tensor(np.log(n_arr), dtype=torch.float64)
    logD = torch.tensor(np.log(d_arr), dtype=torch.float64)
    logL = torch.tensor(np.log(l_arr), dtype=torch.float64)

    grid = torch.tensor(_default_grid(form), dtype=torch.float64)
    with torch.no_grad():
        grid_obj = _huber(predict(grid, logN, logD) - logL, delta).sum(-1)
        grid_obj = torch.nan_to_num(grid_obj, nan=float("inf"))
    starts = grid[torch.argsort(grid_obj)[:n_starts]]

    best_theta, best_obj = None, float("inf")
    for start in starts:
        theta = start.clone().requires_grad_(True)
        opt = torch.optim.LBFGS([theta], lr=1.0, max_iter=max_iter, tolerance_grad=1e-10,
                                tolerance_change=1e-13, history_size=20, line_search_fn="strong_wolfe")

        def closure(opt: Any = opt, theta: Any = theta) -> Any:  # bound now, not at loop end
            opt.zero_grad()
            obj = _huber(predict(theta, logN, logD) - logL, delta).sum()
            obj.backward()
            return obj

        opt.step(closure)
        with torch.no_grad():
            obj = float(_huber(predict(theta, logN, logD) - logL, delta).sum())
        if math.isfinite(obj) and obj < best_obj:
            best_obj, best_theta = obj, theta.detach().clone()
    if best_theta is None:
        raise DataError("the scaling-law fit did not converge from any starting point")

    with torch.no_grad():
        resid = predict(best_theta, logN, logD) - logL
    rmse = float(resid.pow(2).mean().sqrt())
    t = best_theta.tolist()
    if form == "chinchilla":
        params = {"E": math.exp(t[2]), "A": math.exp(t[0]), "B": math.exp(t[1]), "alpha": t[3], "beta": t[4]}
    else:
        params = {"N_c": math.exp(t[0]), "D_c": math.exp(t[1]), "alpha_N": t[2], "alpha_D": t[3]}
    return FitResult(form, params, best_obj, rmse, int(n_arr.size), delta, int(len(starts)))


def _runs_array(values: Sequence[float], name: str) -> np.ndarray:
    arr = np.asarray(values, dtype=np.float64).reshape(-1)
    if arr.size == 0:
        raise DataError(f"no runs: {name} is empty")
    if not np.all(np.isfinite(arr)) or np.any(arr <= 0):
        raise DataError(f"{name} must contain only positive finite numbers")
    return arr


# ----------------------------------------------------------------------------------------------
# Runs files and plots
# ----------------------------------------------------------------------------------------------

_ALIASES = {
    "N": ("n", "params", "parameters", "num_params", "n_params", "model_size"),
    "D": ("d", "tokens", "num_tokens", "n_tokens", "data", "dataset_size"),
    "loss": ("loss", "l", "val_loss", "eval_loss", "final_loss"),
}


def _pick(record: dict[str, Any], key: str, where: str) -> float:
    lowered = {str(k).strip().lower(): v for k, v in record.items()}
    for alias in _ALIASES[key]:
        if alias in lowered and lowered[alias] not in (None, ""):
            try:
                return parse_count(lowered[alias])
            except ConfigError as exc:
                raise DataError(f"{where}: {exc}") from None
    raise DataError(f"{where}: no {key} column (accepted names: {', '.join(_ALIASES[key])})")


def load_runs(path: str | Path) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Read (N, D, loss) runs from a CSV (header row) or JSONL file; returns three arrays.

    Columns are matched case-insensitively: N|params|parameters, D|tokens, loss|val_loss.
    Numbers may use suffixes (70M, 1.4T).
    """
    path = Path(path)
    if not path.is_file():
        raise DataError(f"runs file not found: {path}")
    text = path.read_text(encoding="utf-8")
    records: list[tuple[dict[str, Any], str]] = []
    if path.suffix.lower() in (".jsonl", ".json", ".ndjson"):
        for i, line in enumerate(text.splitlines(), 1):
            if line.strip():
                try:
                    rec = json.loads(line)
                except json.JSONDecodeError as exc:
                    raise DataError(json_error(path, exc, i)) from None
                if not isinstance(rec, dict):
                    raise DataError(f"{path}:{i}: expected a JSON object per line")
                records.append((rec, f"{path}:{i}"))
    else:
        reader = csv.DictReader(text.splitlines())
        for i, rec in enumerate(reader, 2):
            if any((v or "").strip() for v in rec.values() if isinstance(v, str)):
                records.append((rec, f"{path}:{i}"))
    if not records:
        raise DataError(f"{path} holds no runs")
    rows = [(_pick(r, "N", w), _pick(r, "D", w), _pick(r, "loss", w)) for r, w in records]
    arr = np.array(rows, dtype=np.float64)
    if np.any(arr <= 0):
        raise DataError(f"{path}: N, D and loss must all be positive")
    return arr[:, 0], arr[:, 1], arr[:, 2]


def plot_fit(fit: FitResult, N: Sequence[float], D: Sequence[float], loss: Sequence[float],
             path: str | Path, title: str | None = None) -> Path:
    """PNG with two panels: observed loss vs compute with the fitted compute-optimal frontier,
    and predicted vs observed loss (parity)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    n, d, lo = (np.asarray(x, dtype=np.float64) for x in (N, D, loss))
    pred = np.asarray(fit.predict(n, d))
    flops = 6 * n * d
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(11, 4.5))
    sc = ax1.scatter(flops, lo, c=np.log10(n), cmap="viridis", s=22, label="runs")
    fig.colorbar(sc, ax=ax1, label="log10 N (parameters)")
    if fit.form == "chinchilla":
        law = fit.law
        cs = np.logspace(np.log10(flops.min()), np.log10(flops.max()), 100)
        frontier = [law.loss(*law.compute_optimal(c)) for c in cs]  # type: ignore[union-attr]
        ax1.plot(cs, frontier, "r-", lw=1.5, label="fitted compute-optimal frontier")
    ax1.set_xscale("log")
    ax1.set_yscale("log")
    from matplotlib.ticker import ScalarFormatter

    for axis in (ax1.yaxis,):  # plain numbers on the log loss axis, not 3x10^0
        axis.set_major_formatter(ScalarFormatter())
        axis.set_minor_formatter(ScalarFormatter())
    ax1.set_xlabel("training FLOPs (6ND)")
    ax1.set_ylabel("loss (nats/token)")
    ax1.legend(loc="upper right")
    ax1.set_title("runs and fitted frontier")
    lim = [min(lo.min(), pred.min()) * 0.98, max(lo.max(), pred.max()) * 1.02]
    ax2.plot(lim, lim, "k--", lw=1)
    ax2.scatter(lo, pred, s=18)
    ax2.set_xlabel("observed loss")
    ax2.set_ylabel("fitted loss")
    ax2.set_title(f"parity (RMSE of log-loss {fit.rmse_log:.4f})")
    params = ", ".join(f"{k}={v:.4g}" for k, v in fit.params.items())
    fig.suptitle(title or f"{fit.form} fit: {params}", fontsize=9)
    from llmlab.eval._plot import save_png

    return save_png(fig, path)

"""Lipschitz profiles of flow-matching velocity fields, with the exact marginal velocity of the linear
path from N(0, I) to Gaussian-mixture targets.

(a) ‖∇ₓv_t(X_t)‖_op along trajectories against t (mean and max over particles), next to 1/(1 − t), for a Gaussian,
    a weakly log-concave mixture and a well-separated mixture.
(b) The Lipschitz constant of the flow map Φ: X₀ ↦ X₁, estimated as the largest singular value of DΦ(x₀) over many
    starting points (forward-mode differentiation through an RK4 solve), for two modes ±s·u (covariance σ² I) as the
    separation s grows; also at the centre x₀ = 0, where the 1-D closed form σ exp(s²/2σ²) holds (along u the flow is
    the monotone map between the 1-D marginals). Two fits: log L = a + b s² (exponential growth) and
    log L = a + b log s (polynomial growth); the table reports both slopes and residuals and which fits better.

One seed; the claims are judged on point estimates.

Run `python -m experiments run lipschitz` (or `--quick`); writes results/lipschitz/ (table.md, metrics.json,
profile.png, flow_map.png).
"""

from __future__ import annotations

from dataclasses import dataclass

import diffrax
import jax
import jax.numpy as jnp
import numpy as np
from tqdm.auto import tqdm

import jaxflow as jf
from experiments.claims import Claim
from experiments.common import StudyConfig, figure, fit_line, markdown_table, positive_float, positive_int, require
from experiments.pipeline import Output, Study

PROFILE_TARGETS = ("gaussian", "weakly log-concave", "separated", "near point masses")


@dataclass(frozen=True)
class LipschitzConfig(StudyConfig):
    dim: int = 2
    n_particles: int = 200
    n_steps: int = 400
    """RK4 steps of the trajectories (geometric grid towards t = 1, stopping at 1 − delta)."""
    delta: float = 1e-3
    separations: tuple[float, ...] = (0.5, 1.0, 2.0, 3.0, 4.0, 6.0, 8.0)
    sigma: float = 0.5
    """standard deviation of each mode in (b)."""
    n_starts: int = 400
    map_steps: int = 400
    out_dir: str = "results/lipschitz"


def validate(cfg: LipschitzConfig) -> None:
    positive_int(cfg, "dim", "n_particles", "n_steps", "n_starts", "map_steps")
    positive_float(cfg, "delta", "sigma")
    require(cfg.delta < 0.01, "delta", cfg.delta, "must lie in (0, 0.01): the profile is read on [0.99, 1)")
    require(
        len(cfg.separations) >= 3 and all(x > 0 for x in cfg.separations),
        "separations",
        cfg.separations,
        "at least three positive separations (two fits of two parameters)",
    )


def profile_target(name: str, d: int, key) -> jf.data.GaussianMixture:
    u = jax.random.normal(key, (d,), jnp.float64)
    u = u / jnp.linalg.norm(u)
    eye = jnp.eye(d, dtype=jnp.float64)
    if name == "gaussian":
        return jf.data.GaussianMixture(jnp.ones(1), (0.5 * u)[None], (jnp.diag(jnp.geomspace(0.25, 4.0, d)))[None])
    if name == "weakly log-concave":
        return jf.data.GaussianMixture(jnp.ones(2), jnp.stack([0.5 * u, -0.5 * u]), jnp.stack([0.5 * eye] * 2))
    if name == "separated":
        return two_modes(d, 4.0, 0.2, u)
    if name == "near point masses":
        return two_modes(d, 1.0, 0.01, u)
    raise ValueError(f"unknown target {name!r}; choose one of {PROFILE_TARGETS}")


def two_modes(d, s, sigma, u) -> jf.data.GaussianMixture:
    eye = jnp.eye(d, dtype=jnp.float64)
    return jf.data.GaussianMixture(jnp.ones(2), jnp.stack([s * u, -s * u]), jnp.stack([sigma**2 * eye] * 2))


def geometric_grid(n, delta):
    return 1.0 - delta ** (jnp.arange(n + 1, dtype=jnp.float64) / n)


def _flow(gmm, x0, ts, **kwargs):
    """The RK4 solve of the exact velocity on the grid ts (jaxflow.sample with the library's RK4 solver)."""
    return jf.sample(gmm.velocity, x0, solver=jf.sampling.RK4(), grid=ts, t0=ts[0], t1=ts[-1], **kwargs)


@jax.jit
def jacobian_profile(gmm, x0, ts):
    """Operator norm of ∇ₓv_t at each particle, at every grid time but the last: [T, n]."""

    def opnorm(t, x):
        jac = jax.vmap(jax.jacfwd(lambda xx: gmm.velocity(t, xx[None])[0]))(x)
        return jnp.linalg.svd(jac, compute_uv=False)[:, 0]

    traj = _flow(gmm, x0, ts, save_trajectory=ts).trajectory
    return jax.vmap(opnorm)(ts[:-1], traj[:-1])


@jax.jit
def flow_map_lipschitz(gmm, x0, ts):
    """Largest singular value of DΦ(x₀) per starting point, Φ the RK4 flow map over the grid ts: [n]."""

    def phi(x):
        return _flow(gmm, x[None], ts, adjoint=diffrax.ForwardMode()).x[0]

    jac = jax.vmap(jax.jacfwd(phi))(x0)
    return jnp.linalg.svd(jac, compute_uv=False)[:, 0]


def _fit(x, y):
    slope, _, rss = fit_line(x, y)
    return slope, rss


def run(cfg: LipschitzConfig, key: jax.Array) -> Output:
    d = cfg.dim
    x0 = jax.random.normal(jax.random.fold_in(key, 1), (cfg.n_particles, d), jnp.float64)
    ts = geometric_grid(cfg.n_steps, cfg.delta)
    profiles = {}
    for name in tqdm(PROFILE_TARGETS, desc="profiles", disable=not cfg.progress):
        gmm = profile_target(name, d, jax.random.fold_in(key, 2))
        norms = np.asarray(jacobian_profile(gmm, x0, ts))
        profiles[name] = {
            "t": np.asarray(ts[:-1]).tolist(),
            "mean": norms.mean(1).tolist(),
            "max": norms.max(1).tolist(),
        }

    u = jax.random.normal(jax.random.fold_in(key, 3), (d,), jnp.float64)
    u = u / jnp.linalg.norm(u)
    starts = jax.random.normal(jax.random.fold_in(key, 4), (cfg.n_starts, d), jnp.float64)
    grid = jnp.linspace(0.0, 1.0, cfg.map_steps + 1, dtype=jnp.float64)
    lips, at_centre = [], []
    centre = jnp.zeros((1, d), jnp.float64)  # on the separating hyperplane: where the map must stretch most
    for s in tqdm(cfg.separations, desc="separations", disable=not cfg.progress):
        gmm = two_modes(d, s, cfg.sigma, u)
        lips.append(float(np.asarray(flow_map_lipschitz(gmm, starts, grid)).max()))
        at_centre.append(float(flow_map_lipschitz(gmm, centre, grid)[0]))
    # along u the flow is the 1-D monotone map N(0, 1) → ½N(s, σ²) + ½N(−s, σ²), so T'(0) = φ(0)/p(0) = σ e^{s²/2σ²}
    closed = [cfg.sigma * float(np.exp(s**2 / (2 * cfg.sigma**2))) for s in cfg.separations]
    s_arr = np.asarray(cfg.separations)
    fits = {}
    # the solve resolves the centre value while it stays far below 1/eps (float64); beyond, it saturates
    resolved = np.abs(np.asarray(at_centre) / np.asarray(closed) - 1) < 0.05
    for label, vals, keep in (
        ("random starts", lips, np.ones_like(resolved)),
        ("centre (numerical, resolved values)", at_centre, resolved),
        ("centre (closed form)", closed, np.ones_like(resolved)),
    ):
        l_arr = np.log(np.asarray(vals))[keep]
        exp_slope, exp_rss = _fit(s_arr[keep] ** 2, l_arr)
        pow_slope, pow_rss = _fit(np.log(s_arr[keep]), l_arr)
        fits[label] = dict(
            exp_slope=exp_slope,
            exp_rss=exp_rss,
            pow_slope=pow_slope,
            pow_rss=pow_rss,
            better="polynomial" if pow_rss < exp_rss else "exponential",
        )

    prof_rows = []
    for name, p in profiles.items():
        t = np.asarray(p["t"])
        for target_t in (0.5, 0.9, 0.99, 0.999 - 1e-9):
            i = int(np.argmin(np.abs(t - target_t)))
            prof_rows.append(
                [name, f"{t[i]:.3f}", f"{p['mean'][i]:.3g}", f"{p['max'][i]:.3g}", f"{1 / (1 - t[i]):.3g}"]
            )
    map_rows = [
        [f"{s:g}", f"{lip:.3g}", f"{c:.4g}", f"{cf:.4g}"]
        for s, lip, c, cf in zip(cfg.separations, lips, at_centre, closed, strict=True)
    ]
    fit_text = "".join(
        f"- {label}: log L = a + b s² slope {f['exp_slope']:.3f} (residual {f['exp_rss']:.3g}); "
        f"log L = a + b log s slope {f['pow_slope']:.3f} (residual {f['pow_rss']:.3g}); better fit: "
        f"**{f['better']}**\n"
        for label, f in fits.items()
    )
    text = (
        "# Lipschitz profiles\n\n"
        f"d = {d}; {cfg.n_particles} particles from N(0, I), RK4 on a geometric grid of {cfg.n_steps} steps to "
        f"t = 1 − {cfg.delta:g}.\n\n## (a) ‖∇v_t‖_op along trajectories\n\n"
        + markdown_table(["target", "t", "mean over particles", "max", "1/(1 − t)"], prof_rows)
        + f"\n## (b) Lipschitz constant of the flow map, two modes ±s·u, σ = {cfg.sigma}\n\n"
        f"max over {cfg.n_starts} starts of σ_max(DΦ(x₀)), RK4 with {cfg.map_steps} uniform steps.\n\n"
        + markdown_table(
            ["separation s", "max over random starts", "at the centre x₀ = 0", "closed form σ e^{s²/2σ²}"], map_rows
        )
        + "\nFits of log Lip:\n\n"
        + fit_text
    )
    summary = dict(lips=lips, at_centre=at_centre, closed_form=closed, fits=fits)
    measurements = {}
    for name, p in profiles.items():
        t, mx = np.asarray(p["t"]), np.asarray(p["max"])
        scaled = mx * (1.0 - t)
        late, mid = float(np.max(scaled[t >= 0.99])), float(np.max(scaled[(t >= 0.5) & (t < 0.99)]))
        measurements[f"late_over_mid/{name}"] = late / mid
    f = fits["random starts"]
    measurements["flow_map/polynomial_minus_exponential_rss"] = f["pow_rss"] - f["exp_rss"]
    fig1 = figure(figsize=(5, 3.5))
    ax = fig1.subplots()
    for name, p in profiles.items():
        one_minus = 1 - np.asarray(p["t"])
        ax.loglog(one_minus, p["mean"], label=f"{name} (mean)")
        ax.loglog(one_minus, p["max"], ls="--", alpha=0.6, label=f"{name} (max)")
    ax.loglog(one_minus, 1 / one_minus, "k:", label="1/(1 − t)")
    ax.invert_xaxis()
    ax.set_xlabel("1 − t")
    ax.set_ylabel("‖∇v_t‖_op")
    ax.legend(fontsize=6)
    fig1.tight_layout()
    fig2 = figure(figsize=(4.5, 3.3))
    ax = fig2.subplots()
    ax.semilogy(cfg.separations, lips, "o-", label="max over random starts")
    ax.semilogy(cfg.separations, at_centre, "s-", label="at the centre")
    ax.semilogy(cfg.separations, closed, "k:", label="σ exp(s²/2σ²)")
    ax.set_xlabel("separation s")
    ax.set_ylabel("Lip(Φ) estimate")
    ax.legend(fontsize=7)
    fig2.tight_layout()
    return Output(measurements, text, {"profile": fig1, "flow_map": fig2}, {"profiles": profiles, "flow_map": summary})


PAPER = "Lipschitz-regularity analysis of flow-matching samplers"


def _claims():
    out = [
        Claim(
            f"lipschitz_at_most_inverse_time[{name}]",
            f"the velocity's Lipschitz constant grows at most like 1/(1 − t) near the data end ({name}): the largest "
            "(1 − t)‖∇v_t‖ on [0.99, 1) stays under 1.5× its largest on [0.5, 0.99)",
            f"late_over_mid/{name}",
            "<",
            1.5,
            paper=PAPER,
            paper_value="‖∇v_t‖ ≤ C/(1 − t)",
        )
        for name in PROFILE_TARGETS
    ]
    out.append(
        Claim(
            "flow_map_not_exponential",
            "over typical starting points the flow map's Lipschitz constant grows polynomially, not exponentially, in "
            "the separation of two modes: log L fits a + b log s better (smaller residual) than a + b s²",
            "flow_map/polynomial_minus_exponential_rss",
            "<",
            0.0,
            paper=PAPER,
            paper_value="no exponential blow-up with the target's extent",
            note="at the centre x₀ = 0 the closed form σ e^{s²/2σ²} is exponential (the table shows both)",
        )
    )
    return tuple(out)


CLAIMS = _claims()
STUDY = Study(
    "lipschitz",
    config=LipschitzConfig,
    run=run,
    claims=CLAIMS,
    quick={"n_particles": 100, "n_starts": 200, "n_steps": 200, "map_steps": 200},
    smoke={"n_particles": 30, "n_starts": 40, "n_steps": 100, "map_steps": 100, "separations": (0.5, 1.0, 2.0, 3.0)},
    validate=validate,
    x64=True,
    description="Lipschitz profiles of exact flow-matching velocities and of the flow map.",
)
CONFIG = LipschitzConfig
main = STUDY.main

if __name__ == "__main__":
    main()

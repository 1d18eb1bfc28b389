"""The reference for section 9: Meta's `flow_matching` library (PyTorch, CPU), measured in a fresh process.

`python -m benchmarks.meta_fm_ref TASK REPEATS` prints one JSON line {"seconds": [...], ...} for TASK:
  train        200 training steps of the 2-D task (8 Gaussians → moons, batch 256, MLP 3×64 SELU with t appended,
               AffineProbPath with the Cond-OT scheduler, squared error on dx_t, Adam 1e-3), the library's example loop
  dopri5       sampling 1,000 points with `ODESolver.sample(method="dopri5", atol=rtol=1e-5)` (torchdiffeq)
  exact_ll     `ODESolver.compute_likelihood(exact_divergence=True)` of 1,000 points, midpoint, 100 steps
  hutchinson   the same with `exact_divergence=False` (one Rademacher probe)
  discrete     `MixtureDiscreteEulerSolver.sample` of 1,000 two-token sequences (V = 128), 100 steps, an MLP posterior
  riemannian   `RiemannianODESolver.sample` on the sphere S², 1,000 points, midpoint, 100 steps, projections on
The models are freshly initialised (timings do not depend on the weights); the jaxflow side (benchmarks.meta_fm)
builds the same sizes. torch's default thread count unless THREADS is given (`python -m benchmarks.meta_fm_ref TASK
REPEATS THREADS`).
"""

from __future__ import annotations

import json
import sys
import time

import torch
from flow_matching.path import AffineProbPath, MixtureDiscreteProbPath
from flow_matching.path.scheduler import CondOTScheduler, PolynomialConvexScheduler
from flow_matching.solver import MixtureDiscreteEulerSolver, ODESolver, RiemannianODESolver
from flow_matching.utils import ModelWrapper
from flow_matching.utils.manifolds import Sphere
from torch import nn

N = 1000
BATCH = 256


class MLP(nn.Module):
    """The 2-D MLP of the TorchCFM and Meta examples: x and t concatenated, 3 × 64 SELU."""

    def __init__(self, dim=2, width=64):
        super().__init__()
        self.net = nn.Sequential(
            nn.Linear(dim + 1, width),
            nn.SELU(),
            nn.Linear(width, width),
            nn.SELU(),
            nn.Linear(width, width),
            nn.SELU(),
            nn.Linear(width, dim),
        )

    def forward(self, x, t):
        t = t.reshape(-1, 1).expand(x.shape[0], 1) if t.numel() > 1 else t.reshape(1, 1).expand(x.shape[0], 1)
        return self.net(torch.cat([x, t], dim=1))


class Wrapped(ModelWrapper):
    calls = 0

    def forward(self, x, t, **extras):
        Wrapped.calls += 1  # evaluations of the network (an adaptive solver's count depends on the weights)
        return self.model(x, t)


class TokenMLP(nn.Module):
    def __init__(self, vocab=128, length=2, embed=32, width=128):
        super().__init__()
        self.vocab, self.length = vocab, length
        self.embed = nn.Embedding(vocab, embed)
        self.net = nn.Sequential(
            nn.Linear(length * embed + 1, width),
            nn.SiLU(),
            nn.Linear(width, width),
            nn.SiLU(),
            nn.Linear(width, length * vocab),
        )

    def forward(self, x, t):
        h = torch.cat([self.embed(x).reshape(x.shape[0], -1), t.reshape(-1, 1).expand(x.shape[0], 1)], dim=1)
        return torch.softmax(self.net(h).reshape(x.shape[0], self.length, self.vocab), dim=-1)


def _moons(n):
    from sklearn.datasets import make_moons

    return torch.tensor(make_moons(n, noise=0.2)[0] * 3 - 1, dtype=torch.float32)


def _eight(n):
    centers = (
        torch.tensor(
            [
                [1, 0],
                [-1, 0],
                [0, 1],
                [0, -1],
                [0.7071, 0.7071],
                [0.7071, -0.7071],
                [-0.7071, 0.7071],
                [-0.7071, -0.7071],
            ]
        )
        * 5
    )
    return centers[torch.randint(0, 8, (n,))] + torch.randn(n, 2)


def task_fn(task: str):
    torch.manual_seed(0)
    if task == "train":
        model = MLP()
        opt = torch.optim.Adam(model.parameters(), lr=1e-3)
        path = AffineProbPath(scheduler=CondOTScheduler())

        def run():
            for _ in range(200):
                opt.zero_grad()
                x0, x1 = _eight(BATCH), _moons(BATCH)
                t = torch.rand(BATCH)
                ps = path.sample(x_0=x0, x_1=x1, t=t)
                loss = torch.pow(model(ps.x_t, ps.t) - ps.dx_t, 2).mean()
                loss.backward()
                opt.step()

        return run, {"steps": 200}
    if task in ("dopri5", "exact_ll", "hutchinson"):
        solver = ODESolver(velocity_model=Wrapped(MLP()))
        x = torch.randn(N, 2)
        if task == "dopri5":
            return (lambda: solver.sample(x_init=x, step_size=None, method="dopri5", atol=1e-5, rtol=1e-5)), {}
        gauss = torch.distributions.Independent(torch.distributions.Normal(torch.zeros(2), torch.ones(2)), 1)

        def ll():
            return solver.compute_likelihood(
                x_1=x,
                log_p0=gauss.log_prob,
                step_size=0.01,
                method="midpoint",
                exact_divergence=task == "exact_ll",
                time_grid=torch.tensor([1.0, 0.0]),
            )

        return ll, {"steps": 100}
    if task == "discrete":
        vocab = 128
        model = TokenMLP(vocab)
        path = MixtureDiscreteProbPath(scheduler=PolynomialConvexScheduler(n=2.0))

        class W(ModelWrapper):
            def forward(self, x, t, **extras):
                return self.model(x, t)

        solver = MixtureDiscreteEulerSolver(model=W(model), path=path, vocabulary_size=vocab)
        x0 = torch.randint(0, vocab, (N, 2))
        return (lambda: solver.sample(x_init=x0.clone(), step_size=0.01)), {"steps": 100}
    if task == "riemannian":
        model = MLP(dim=3)
        solver = RiemannianODESolver(manifold=Sphere(), velocity_model=Wrapped(model))
        x = torch.nn.functional.normalize(torch.randn(N, 3), dim=1)
        return (lambda: solver.sample(x_init=x, step_size=0.01, method="midpoint", projx=True, proju=True)), {
            "steps": 100
        }
    raise SystemExit(f"unknown task {task}")


def main(argv):
    task, repeats = argv[0], int(argv[1])
    if len(argv) > 2:
        torch.set_num_threads(int(argv[2]))
    run, info = task_fn(task)
    with torch.no_grad() if task in ("dopri5", "discrete", "riemannian") else torch.enable_grad():
        run()  # warm up
        seconds = []
        Wrapped.calls = 0
        for _ in range(repeats):
            t0 = time.perf_counter()
            run()
            seconds.append(time.perf_counter() - t0)
    nfe = Wrapped.calls / repeats if Wrapped.calls else None
    print(json.dumps({"task": task, "seconds": seconds, "nfe": nfe, **info}))


if __name__ == "__main__":
    main(sys.argv[1:])

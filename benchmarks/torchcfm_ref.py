"""The reference: TorchCFM's published 2-D tutorial loop (PyTorch, CPU), measured in a fresh process.

`python -m benchmarks.torchcfm_ref throughput METHOD STEPS REPEATS [threads=K]` prints one JSON line of steps/s
samples (threads: `torch.set_num_threads(K)`; left out, torch's default).
`python -m benchmarks.torchcfm_ref train METHOD STEPS SEED OUT.npz` trains one model and saves its weights as numpy
arrays (so that jaxflow's evaluation can score it exactly as it scores its own models).

METHOD: icfm (ConditionalFlowMatcher) or otcfm (ExactOptimalTransportConditionalFlowMatcher), σ = 0 (the Cond-OT
path, as jaxflow's), MLP(dim=2, w=64, time_varying=True) (three SELU hidden layers), Adam 1e-3, batch 256,
8gaussians → moons from torchcfm.utils.
"""

from __future__ import annotations

import json
import sys
import time

import numpy as np
import torch
from torchcfm.conditional_flow_matching import ConditionalFlowMatcher, ExactOptimalTransportConditionalFlowMatcher
from torchcfm.models import MLP
from torchcfm.utils import sample_8gaussians, sample_moons

BATCH = 256
MATCHERS = {"icfm": ConditionalFlowMatcher, "otcfm": ExactOptimalTransportConditionalFlowMatcher}


def build(method: str, seed: int):
    torch.manual_seed(seed)
    np.random.seed(seed)  # noqa: NPY002 (the OT plan sampler draws with numpy's global generator)
    model = MLP(dim=2, w=64, time_varying=True)
    return model, torch.optim.Adam(model.parameters(), lr=1e-3), MATCHERS[method](sigma=0.0)


def train_steps(model, opt, fm, steps: int) -> float:
    loss = torch.zeros(())
    for _ in range(steps):
        opt.zero_grad()
        x0, x1 = sample_8gaussians(BATCH), sample_moons(BATCH)
        t, xt, ut = fm.sample_location_and_conditional_flow(x0, x1)
        vt = model(torch.cat([xt, t[:, None]], dim=-1))
        loss = torch.mean((vt - ut) ** 2)
        loss.backward()
        opt.step()
    return float(loss.detach())


def throughput(method: str, steps: int, repeats: int) -> list[float]:
    model, opt, fm = build(method, 0)
    train_steps(model, opt, fm, 20)  # warm-up
    rates = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        train_steps(model, opt, fm, steps)
        rates.append(steps / (time.perf_counter() - t0))
    return rates


def weights(model) -> dict[str, np.ndarray]:
    """Linear layers as (kernel [in, out], bias [out]) pairs, the layout of a Flax Dense."""
    linears = [m for m in model.net if isinstance(m, torch.nn.Linear)]
    out = {}
    for i, lin in enumerate(linears):
        out[f"kernel_{i}"] = lin.weight.detach().numpy().T.copy()
        out[f"bias_{i}"] = lin.bias.detach().numpy().copy()
    return out


def train(method: str, steps: int, seed: int, path: str) -> None:
    model, opt, fm = build(method, seed)
    t0 = time.perf_counter()
    train_steps(model, opt, fm, steps)
    np.savez(path, seconds=time.perf_counter() - t0, **weights(model))


def sample_timing(path: str, n: int, repeats: int) -> dict:
    """Dopri5 through torchdiffeq (the solver family the tutorial uses via torchdyn, whose import is broken by the
    torchvision wheel that comes with it here), atol = rtol = 1e-4, 100 saved times. NFE counted."""
    from torchdiffeq import odeint

    data = np.load(path)
    model = MLP(dim=2, w=64, time_varying=True)
    linears = [m for m in model.net if isinstance(m, torch.nn.Linear)]
    with torch.no_grad():
        for i, lin in enumerate(linears):
            lin.weight.copy_(torch.from_numpy(data[f"kernel_{i}"].T.copy()))
            lin.bias.copy_(torch.from_numpy(data[f"bias_{i}"]))
    calls = [0]

    def field(t, x):
        calls[0] += 1
        return model(torch.cat([x, t.repeat(x.shape[0])[:, None]], 1))

    times = []
    for r in range(repeats + 1):
        torch.manual_seed(r)
        x0 = sample_8gaussians(n)
        calls[0] = 0
        t0 = time.perf_counter()
        with torch.no_grad():
            odeint(field, x0, torch.linspace(0, 1, 100), method="dopri5", atol=1e-4, rtol=1e-4)
        if r:  # first run is a warm-up
            times.append(time.perf_counter() - t0)
    return {"seconds": times, "nfe": calls[0]}


if __name__ == "__main__":
    torch.set_num_threads(torch.get_num_threads())
    what = sys.argv[1]
    if what == "throughput":
        for arg in sys.argv[5:]:
            if arg.startswith("threads="):
                torch.set_num_threads(int(arg.split("=", 1)[1]))
        print(json.dumps({"rates": throughput(sys.argv[2], int(sys.argv[3]), int(sys.argv[4]))}))
    elif what == "train":
        train(sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), sys.argv[5])
    elif what == "sample":
        print(json.dumps(sample_timing(sys.argv[2], int(sys.argv[3]), int(sys.argv[4]))))
    else:
        raise SystemExit(f"unknown command {what!r}")

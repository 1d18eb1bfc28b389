"""diffrax-based samplers: `sample(velocity, x0, solver=...) -> SampleOutput(x, ts, trajectory, nfe, num_steps)`."""

from jaxflow.sampling.ode import SOLVERS, SampleOutput, sample

__all__ = ["SOLVERS", "SampleOutput", "sample"]

"""ODE sampling on a manifold: any diffrax solver, with the state projected back onto the manifold after each step
and the velocity made tangent at the projected point (as Meta's flow_matching does for Euler, midpoint and RK4, whose
stages it also projects: here every stage evaluates the field at `projx` of its point, the same thing)."""

from __future__ import annotations

import diffrax
import jax

from jaxflow.manifolds import Manifold


class ProjectedSolver(diffrax.AbstractWrappedSolver):
    """`solver` whose every step ends with `manifold.projx`; error estimates and dense output are the wrapped
    solver's (isinstance checks forward to it, so an adaptive solver stays adaptive).

    Attributes:
        solver: the wrapped diffrax solver.
        manifold: the `Manifold` to project onto.
    """

    solver: diffrax.AbstractSolver
    manifold: Manifold

    @property
    def term_structure(self):
        return self.solver.term_structure

    @property
    def interpolation_cls(self):  # pyright: ignore
        return self.solver.interpolation_cls

    @property
    def term_compatible_contr_kwargs(self):
        return self.solver.term_compatible_contr_kwargs

    def order(self, terms):
        return self.solver.order(terms)

    def strong_order(self, terms):
        return self.solver.strong_order(terms)

    def error_order(self, terms):
        return self.solver.error_order(terms)

    def init(self, terms, t0, t1, y0, args):
        return self.solver.init(terms, t0, t1, y0, args)

    def step(self, terms, t0, t1, y0, args, solver_state, made_jump):
        y1, y_error, dense_info, solver_state, result = self.solver.step(
            terms, t0, t1, y0, args, solver_state, made_jump
        )
        return jax.tree.map(self.manifold.projx, y1), y_error, dense_info, solver_state, result

    def func(self, terms, t0, y0, args):
        return self.solver.func(terms, t0, y0, args)

"""The engine: runs a spec as stages (core.py), with its parts each in its own module — claims.py (one
worker per stage), models.py (target and bases), lld.py (Gram, aggregated recipes), run.py (one run's
Evaluator, Reweighter, StepLogger) — handed explicit services (services.py), never the engine itself."""

from lldmix_core.engine.core import Engine

__all__ = ["Engine"]

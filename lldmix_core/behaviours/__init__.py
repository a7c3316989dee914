"""How each kind of method chooses its training mixture, as one object per kind (the way estimators.py
holds one pure entry per estimator): its initial weights, its phases, how it re-weights at an LLD schedule
step, whether it needs a spec field, whether it trains a stored recipe. The registry (methods.py) gives
every method its behaviour; the engine, the leaderboard and the spec call the behaviour and never branch on
a method's or a kind's name.

Pure: numpy and mathcore only. What needs the store (building the aggregated recipe, reading its stored
phases) comes in through `MixtureInputs` as callables the engine supplies.
"""

from lldmix_core.behaviours.base import Behaviour, MixtureInputs, Reweighted
from lldmix_core.behaviours.ema import EmaIterative
from lldmix_core.behaviours.fixed import Aggregate, Prior, Recipe, Truth
from lldmix_core.behaviours.iterative import Adjusted, Iterative

__all__ = ["Adjusted", "Aggregate", "Behaviour", "EmaIterative", "Iterative", "MixtureInputs", "Prior", "Recipe",
           "Reweighted", "Truth"]

"""LambdaLab's execution-environment engine: real, jailed, long-lived Lambda environments.

    from sandbox import EnvironmentPool, FunctionSpec

    with EnvironmentPool(on_event=print) as pool:
        result = pool.invoke(FunctionSpec(source=code), {"hello": "world"})

Plain Python: no Django, no Celery.
"""

from .environment import InvokeResult
from .pool import EnvironmentBusy, EnvironmentNotFound, EnvironmentPool, PoolCapacityError, PoolError
from .spec import FunctionSpec

__all__ = [
    "EnvironmentBusy",
    "EnvironmentNotFound",
    "EnvironmentPool",
    "FunctionSpec",
    "InvokeResult",
    "PoolCapacityError",
    "PoolError",
]

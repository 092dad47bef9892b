import pytest

import lb.sched.plugins
import lb.sched.registry


@pytest.fixture(autouse=True)
def isolated_scheduler_registry():
    """Plugins a test registers must not leak into the next test's view of the registry."""
    saved = dict(lb.sched.registry._registry)
    try:
        yield
    finally:
        lb.sched.registry._registry.clear()
        lb.sched.registry._registry.update(saved)
        lb.sched.plugins.entry_point_names.cache_clear()

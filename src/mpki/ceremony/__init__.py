"""Key ceremonies. For now: the scripted development hierarchy behind `mpki init --dev`."""

from mpki.ceremony.dev import DEV_HIERARCHY, CaPlan, create_dev_hierarchy

__all__ = ["DEV_HIERARCHY", "CaPlan", "create_dev_hierarchy"]

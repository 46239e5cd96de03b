"""mtdsl: a declarative language and compiler for multi-task vision models."""

__version__ = "0.1.0"

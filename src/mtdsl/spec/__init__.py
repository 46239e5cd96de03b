"""Validated specs: pydantic models, lowering from the AST, and cross-field checks."""

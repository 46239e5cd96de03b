"""The front end: spec text → AST (grammar, parser, syntax errors)."""

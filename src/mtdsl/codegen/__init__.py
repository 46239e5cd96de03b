"""Code generation: readable Python emitted from the sharing graph."""

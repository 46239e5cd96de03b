"""Renderers: Graphviz diagrams and parameter/cost summaries."""

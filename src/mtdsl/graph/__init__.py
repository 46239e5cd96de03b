"""The sharing graph: task paths, node facts, freezing and serialisation."""

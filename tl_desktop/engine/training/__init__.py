"""training wing of the engine."""

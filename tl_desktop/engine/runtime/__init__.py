"""runtime wing of the engine."""

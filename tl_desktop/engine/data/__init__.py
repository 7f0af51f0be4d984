"""data wing of the engine."""

"""models wing of the engine."""

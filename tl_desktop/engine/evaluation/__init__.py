"""evaluation wing of the engine."""

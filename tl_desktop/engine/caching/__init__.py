"""caching wing of the engine."""

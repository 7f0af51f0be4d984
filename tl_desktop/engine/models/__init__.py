"""Models: backbone specs and builders, weights resolution, freezing, and the model file."""

MODEL_SUFFIX = ".tlmodel"  # the model file's extension (light to import: the window reads run folders early)

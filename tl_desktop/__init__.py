"""tl_desktop: train image classifiers by transfer learning on your own workstation."""

import os

# onnxruntime reports usage over the network unless this is set before its first import; nothing the app
# runs may send anything anywhere, so it is set here, before any module of the app can import it.
os.environ["ORT_DISABLE_TELEMETRY"] = "1"

__version__ = "0.1.0"

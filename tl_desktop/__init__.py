"""tl_desktop: train image classifiers by transfer learning on your own workstation."""

__version__ = "0.1.0"

"""maskdet: a reproducible face-mask detection study kit."""

import os

# TensorFlow's C++ start-up INFO lines would otherwise fill every notebook
# output and report; warnings and errors still show.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

__version__ = "0.1.0"

# The label order is a contract (docs/architecture.md, section 2): spelled as in the public
# Kaggle "Face Mask Detection" set, and every model output follows this order.
LABELS = ("with_mask", "without_mask", "mask_weared_incorrect")
# Its index: the class that training treats apart (the flat band and the zoom
# spare its low-lying evidence) and whose share the Predictor answers for.
INCORRECT = LABELS.index("mask_weared_incorrect")

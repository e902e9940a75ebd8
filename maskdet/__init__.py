"""maskdet: a reproducible face-mask detection study kit."""

__version__ = "0.1.0"

# The label order is a contract (DESIGN.md section 2): spelled as in the public
# Kaggle "Face Mask Detection" set, and every model output follows this order.
LABELS = ("with_mask", "without_mask", "mask_weared_incorrect")

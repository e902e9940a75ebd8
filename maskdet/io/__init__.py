"""Files in and out: images, zip archives, Pascal VOC annotations, the pinned
registry assets, and atomic writes. Imports nothing above it (see
docs/architecture.md)."""

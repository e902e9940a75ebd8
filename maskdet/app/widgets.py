"""Two small anywidgets: the browser's camera, and a file picker that
refuses uploads over the size limit before they are sent.

Frames travel as custom widget messages with a binary buffer (JPEG bytes),
not as a synced trait: no base64, and no ``Bytes`` trait serialisation to get
wrong (docs/architecture.md, section 3). At most ``in_flight`` frames (two) are
unanswered at a time: the page encodes and sends the next frame while the kernel
works on the last, so the browser's work overlaps the model's, and at most one
frame ever waits behind a slow kernel.
"""

from __future__ import annotations

import logging
import traceback
from pathlib import Path

import anywidget
import traitlets

log = logging.getLogger(__name__)


def _asset(name: str) -> str:
    """The widget's front-end code, kept in its own .js / .css file beside this
    module (where editors and linters read it). Read once here as text: a path
    given to anywidget would start a file watcher thread in every kernel."""
    return (Path(__file__).parent / name).read_text()


class WebcamWidget(anywidget.AnyWidget):
    """getUserMedia -> canvas -> JPEG -> kernel -> annotated JPEG back, at most
    ``in_flight`` frames unanswered (1: strictly one at a time).

    ``on_frame(jpeg_bytes) -> (annotated_jpeg_bytes, info_dict)``; ``info``
    must hold ``counts`` (faces per class) and may hold ``labels``, ``ids``
    (the faces' track ids) and ``people`` (people counted per class).
    """

    _esm = _asset("webcam.js")
    _css = _asset("webcam.css")
    max_width = traitlets.Int(640).tag(sync=True)
    jpeg_quality = traitlets.Float(0.8).tag(sync=True)
    # Two: 19.4-20.4 FPS against 14.1-14.2 one at a time, for 12-17 ms more round trip
    # (the browser test, 2 shared cores; docs/dashboard.md).
    in_flight = traitlets.Int(2).tag(sync=True)
    fps = traitlets.Float(0.0).tag(sync=True)
    latency_ms = traitlets.Float(0.0).tag(sync=True)
    frames = traitlets.Int(0).tag(sync=True)

    def __init__(self, on_frame, **kwargs):
        super().__init__(**kwargs)
        self._on_frame = on_frame
        self.on_msg(self._handle)

    def _handle(self, _widget, content, buffers):
        if not isinstance(content, dict) or content.get("type") != "frame":
            return
        try:
            if not buffers:
                raise ValueError("a frame message without image bytes")
            jpeg, info = self._on_frame(bytes(buffers[0]))
        except Exception as exc:  # the page must always get an answer, or it stops sending
            log.error("webcam frame failed: %s", traceback.format_exc())
            self.send({"type": "result", "error": str(exc), "counts": {}})
            return
        self.send({"type": "result", **info}, buffers=[jpeg])


class FilePicker(anywidget.AnyWidget):
    """A file chooser that checks the size in the browser (a selection over
    ``limit_bytes`` is refused there, with a message, and never sent) and sends
    each file as its own binary message, so no websocket message carries more
    than one file. ``on_files([(name, bytes), ...])`` runs once per selection.
    """

    _esm = _asset("picker.js")
    _css = _asset("picker.css")
    description = traitlets.Unicode("Choose files").tag(sync=True)
    accept = traitlets.Unicode("").tag(sync=True)
    multiple = traitlets.Bool(False).tag(sync=True)
    limit_bytes = traitlets.Int(20 * 1024 * 1024).tag(sync=True)
    rejected = traitlets.Unicode("").tag(sync=True)
    rejections = traitlets.Int(0).tag(sync=True)

    def __init__(self, on_files, **kwargs):
        super().__init__(**kwargs)
        self._on_files = on_files
        self._pending: list[tuple[str, bytes]] = []
        self._received, self._over = 0, False
        self.on_msg(self._handle)

    def _handle(self, _widget, content, buffers):
        kind = content.get("type") if isinstance(content, dict) else None
        if kind == "begin":
            self._pending, self._received, self._over = [], 0, False
        elif kind == "file":
            data = bytes(buffers[0]) if buffers else b""  # an empty file may arrive without a buffer
            self._received += len(data)
            # The page refuses a selection over the limit before sending; a client
            # that skips that check is held here, on what actually arrived.
            self._over = self._over or self._received > self.limit_bytes
            if not self._over:
                self._pending.append((str(content.get("name", "upload")), data))
        elif kind == "end":
            files, self._pending = self._pending, []
            if self._over:
                self.rejected = (
                    f"{self._received / 1048576:.1f} MB received: over the {self.limit_bytes / 1048576:.0f} MB "
                    "limit per upload; nothing of it was analysed"
                )
                self.rejections += 1
                return
            self._on_files(files)

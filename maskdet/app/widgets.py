"""Two small anywidgets: the browser's camera, and a file picker that
refuses uploads over the size limit before they are sent.

Frames travel as custom widget messages with a binary buffer (JPEG bytes),
not as a synced trait: no base64, and no ``Bytes`` trait serialisation to get
wrong (docs/architecture.md, section 3). At most one frame is in flight: the page sends
the next only when the annotated answer to the last one has arrived, so frames
never queue up behind a slow kernel.
"""

from __future__ import annotations

import logging
import traceback

import anywidget
import traitlets

log = logging.getLogger(__name__)

_WEBCAM_ESM = r"""
function render({ model, el }) {
  el.classList.add("maskdet-webcam");
  el.innerHTML = `
    <div class="mw-controls">
      <button class="mw-start" type="button">Start camera</button>
      <button class="mw-stop" type="button" disabled>Stop</button>
      <span class="mw-status">camera off</span>
    </div>
    <video class="mw-video" playsinline muted></video>
    <img class="mw-frame" alt="annotated camera frame"/>
    <div class="mw-stats">
      <span class="mw-fps">0.0 FPS</span> · <span class="mw-latency">- ms round trip</span> ·
      <span class="mw-counts">no frame yet</span>
    </div>`;
  const $ = (s) => el.querySelector(s);
  const video = $(".mw-video"), img = $(".mw-frame"), status = $(".mw-status");
  const canvas = document.createElement("canvas");
  let stream = null, running = false, inFlight = false, sentAt = 0, lastUrl = null, frames = 0, lastSync = 0;
  const arrivals = [], latencies = [];

  async function start() {
    if (running) return;
    if (!navigator.mediaDevices || !navigator.mediaDevices.getUserMedia) {
      status.textContent = "no camera API here: open the dashboard on localhost or over HTTPS";
      return;
    }
    status.textContent = "asking for the camera...";
    try {
      stream = await navigator.mediaDevices.getUserMedia(
        { video: { width: { ideal: 640 }, height: { ideal: 480 } }, audio: false });
    } catch (err) {
      status.textContent = `camera unavailable (${err.name}): ${err.message}` +
        (window.isSecureContext ? "" : " - the camera needs localhost or HTTPS");
      return;
    }
    video.srcObject = stream;
    await video.play();
    running = true; inFlight = false;
    $(".mw-start").disabled = true; $(".mw-stop").disabled = false;
    status.textContent = "live";
    requestAnimationFrame(tick);
  }

  function stop() {
    running = false;
    if (stream) stream.getTracks().forEach((t) => t.stop());
    stream = null;
    $(".mw-start").disabled = false; $(".mw-stop").disabled = true;
    status.textContent = "camera off";
  }

  function tick() {
    if (!running) return;
    // a lost answer (kernel restarted) must not stall the loop for ever
    if (inFlight && performance.now() - sentAt > 5000) inFlight = false;
    capture();
    requestAnimationFrame(tick);
  }

  function capture() {
    if (!running || inFlight || video.readyState < 2 || !video.videoWidth) return;
    const scale = Math.min(1, model.get("max_width") / video.videoWidth);
    canvas.width = Math.round(video.videoWidth * scale);
    canvas.height = Math.round(video.videoHeight * scale);
    canvas.getContext("2d").drawImage(video, 0, 0, canvas.width, canvas.height);
    inFlight = true;
    sentAt = performance.now();
    canvas.toBlob(async (blob) => {
      if (!blob || !running) { inFlight = false; return; }
      const buffer = await blob.arrayBuffer();
      sentAt = performance.now();  // the round trip starts when the bytes leave
      model.send({ type: "frame" }, undefined, [buffer]);
    }, "image/jpeg", model.get("jpeg_quality"));
  }

  model.on("msg:custom", (msg, buffers) => {
    if (!msg || msg.type !== "result") return;
    const now = performance.now();
    inFlight = false;
    frames += 1;
    arrivals.push(now);
    while (arrivals.length > 2 && now - arrivals[0] > 3000) arrivals.shift();
    const fps = arrivals.length > 1 ? (arrivals.length - 1) * 1000 / (now - arrivals[0]) : 0;
    latencies.push(now - sentAt);
    if (latencies.length > 100) latencies.shift();
    const sorted = [...latencies].sort((a, b) => a - b);
    const p50 = sorted[Math.floor(sorted.length / 2)];
    if (buffers && buffers.length) {
      const url = URL.createObjectURL(new Blob([buffers[0]], { type: "image/jpeg" }));
      const old = lastUrl;
      img.onload = () => { if (old) URL.revokeObjectURL(old); };
      img.src = url;
      lastUrl = url;
    }
    $(".mw-fps").textContent = `${fps.toFixed(1)} FPS`;
    const kernel = msg.server_ms === undefined ? "" : `; in the kernel ${msg.server_ms.toFixed(0)} ms`;
    $(".mw-latency").textContent = `${(now - sentAt).toFixed(0)} ms round trip (p50 ${p50.toFixed(0)} ms${kernel})`;
    $(".mw-counts").textContent = msg.error ? `error: ${msg.error}` :
      Object.entries(msg.counts).map(([k, v]) => `${k}: ${v}`).join(" · ");
    el.dataset.frames = String(frames);
    el.dataset.labels = (msg.labels || []).join(",");
    if (now - lastSync > 1000) {  // the kernel hears the stats once a second, not once a frame
      lastSync = now;
      model.set("fps", fps);
      model.set("latency_ms", p50);
      model.set("frames", frames);
      model.save_changes();
    }
    capture();  // the next frame now, not at the next animation frame
  });

  $(".mw-start").addEventListener("click", start);
  $(".mw-stop").addEventListener("click", stop);
  return () => stop();
}
export default { render };
"""

_WEBCAM_CSS = """
.maskdet-webcam .mw-video { display: none; }
.maskdet-webcam .mw-frame { display: block; max-width: 100%; min-height: 60px; margin: 8px 0; background: #222; }
.maskdet-webcam .mw-controls button { margin-right: 6px; padding: 4px 12px; }
.maskdet-webcam .mw-stats { font-family: monospace; }
"""


class WebcamWidget(anywidget.AnyWidget):
    """getUserMedia -> canvas -> JPEG -> kernel -> annotated JPEG back, one frame at a time.

    ``on_frame(jpeg_bytes) -> (annotated_jpeg_bytes, info_dict)``; ``info``
    must hold ``counts`` (faces per class) and may hold ``labels``.
    """

    _esm = _WEBCAM_ESM
    _css = _WEBCAM_CSS
    max_width = traitlets.Int(640).tag(sync=True)
    jpeg_quality = traitlets.Float(0.8).tag(sync=True)
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


_PICKER_ESM = r"""
function render({ model, el }) {
  el.classList.add("maskdet-picker");
  el.innerHTML = `<label class="fp-button"><input class="fp-input" type="file"/><span class="fp-label"></span></label>
                  <span class="fp-note"></span>`;
  const input = el.querySelector(".fp-input"), note = el.querySelector(".fp-note");
  const sync = () => {
    input.accept = model.get("accept");
    input.multiple = model.get("multiple");
    el.querySelector(".fp-label").textContent = model.get("description");
  };
  sync();
  model.on("change:description", sync);
  input.addEventListener("change", async () => {
    const files = Array.from(input.files || []);
    input.value = "";  // choosing the same file again fires change again
    if (!files.length) return;
    const total = files.reduce((sum, f) => sum + f.size, 0), limit = model.get("limit_bytes");
    if (total > limit) {
      const text = `${(total / 1048576).toFixed(1)} MB selected: over the ${(limit / 1048576).toFixed(0)} MB ` +
                   "limit per upload; pick fewer or smaller files, or use `maskdet predict` for big batches.";
      note.textContent = text;
      model.set("rejected", text);
      model.set("rejections", model.get("rejections") + 1);
      model.save_changes();
      return;
    }
    note.textContent = `sending ${files.length} file(s)...`;
    model.send({ type: "begin", count: files.length });
    for (const [index, file] of files.entries()) {
      const buffer = await file.arrayBuffer();
      model.send({ type: "file", name: file.name, size: file.size, index }, undefined, [buffer]);
    }
    model.send({ type: "end", count: files.length });
    note.textContent = "";
  });
}
export default { render };
"""

_PICKER_CSS = """
.maskdet-picker .fp-input { position: absolute; width: 1px; height: 1px; opacity: 0; }
.maskdet-picker .fp-button { display: inline-block; padding: 5px 14px; background: #2c6fbb; color: white;
  border-radius: 4px; cursor: pointer; font-weight: 600; }
.maskdet-picker .fp-note { margin-left: 10px; color: #922; }
"""


class FilePicker(anywidget.AnyWidget):
    """A file chooser that checks the size in the browser (a selection over
    ``limit_bytes`` is refused there, with a message, and never sent) and sends
    each file as its own binary message, so no websocket message carries more
    than one file. ``on_files([(name, bytes), ...])`` runs once per selection.
    """

    _esm = _PICKER_ESM
    _css = _PICKER_CSS
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
        self.on_msg(self._handle)

    def _handle(self, _widget, content, buffers):
        kind = content.get("type") if isinstance(content, dict) else None
        if kind == "begin":
            self._pending = []
        elif kind == "file":
            data = bytes(buffers[0]) if buffers else b""  # an empty file may arrive without a buffer
            self._pending.append((str(content.get("name", "upload")), data))
        elif kind == "end":
            files, self._pending = self._pending, []
            self._on_files(files)

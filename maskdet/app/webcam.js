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
  let stream = null, running = false, encoding = false, lastUrl = null, frames = 0, lastSync = 0, lastTime = -1;
  // send times of the frames the kernel has not answered yet, oldest first: the
  // kernel answers in order, so the head of the queue is the next answer's frame
  let pending = [];
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
    running = true; pending = []; encoding = false; lastTime = -1;
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
    if (pending.length && performance.now() - pending[0] > 5000) pending = [];
    capture();
    requestAnimationFrame(tick);
  }

  function capture() {
    // The next frame is read and encoded while the kernel works on the last one
    // (at most ``in_flight`` frames unanswered), so the browser's encoding and
    // the messaging overlap the model instead of adding to it; a frame the
    // camera has not replaced yet is not sent twice.
    if (!running || encoding || pending.length >= model.get("in_flight")) return;
    if (video.readyState < 2 || !video.videoWidth || video.currentTime === lastTime) return;
    lastTime = video.currentTime;
    const scale = Math.min(1, model.get("max_width") / video.videoWidth);
    canvas.width = Math.round(video.videoWidth * scale);
    canvas.height = Math.round(video.videoHeight * scale);
    canvas.getContext("2d").drawImage(video, 0, 0, canvas.width, canvas.height);
    encoding = true;
    canvas.toBlob(async (blob) => {
      if (!blob || !running) { encoding = false; return; }
      const buffer = await blob.arrayBuffer();
      encoding = false;
      pending.push(performance.now());  // the round trip starts when the bytes leave
      el.dataset.maxUnanswered = String(Math.max(pending.length, Number(el.dataset.maxUnanswered || 0)));
      model.send({ type: "frame" }, undefined, [buffer]);
      capture();
    }, "image/jpeg", model.get("jpeg_quality"));
  }

  model.on("msg:custom", (msg, buffers) => {
    if (!msg || msg.type !== "result") return;
    const now = performance.now();
    const sentAt = pending.length ? pending.shift() : now;
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
      Object.entries(msg.counts).map(([k, v]) => `${k}: ${v}${msg.people ? ` (${msg.people[k]} people)` : ""}`).join(" · ");
    el.dataset.frames = String(frames);
    el.dataset.labels = (msg.labels || []).join(",");
    el.dataset.ids = (msg.ids || []).join(",");
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

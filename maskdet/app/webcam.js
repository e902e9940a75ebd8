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

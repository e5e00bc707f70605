// kdcache live: capture frames (camera, video or image), stream them to the server over a WebSocket (/api/stream,
// kdcache/live/stream.py describes the messages) with up to two in flight, and colour the depth that comes back.
// window.kdcacheLive exposes the counters the page shows (and a small per-frame log that tests read).
"use strict";

const CAPTURE_WIDTH = 320;     // for a model without an input size: frames are sent at this width, aspect kept
const MAX_IN_FLIGHT = 2;       // the next frame is sent while the model runs; a third would only wait: drop it
const FPS_WINDOW_MS = 2000;    // the FPS shown is over the frames received in the last 2 s
const LOG_FRAMES = 200;        // per-frame records kept for tests (thumbnail of RGB and depth)

const $ = (id) => document.getElementById(id);
const live = window.kdcacheLive = {
  frames: 0, fps: 0, modelMs: {}, roundTripMs: 0, latencyMs: 0, videoFrames: 0, sent: 0, skipped: 0, dropped: 0,
  frameErrors: 0,
  errors: [], log: [], state: "idle",
};
let token = 0;                 // bumped by stop(): a running loop sees its token change and ends
let stream = null;
let objectUrl = null;
let panels = [];               // [{role, model, canvas, caption}]
let colors = null;             // Uint32Array(256): RGBA of each depth level, from /api/info (depth_colors.lookup_table)
let socket = null;             // the open WebSocket, reused across sources
let nextId = 1;
let lastShown = 0;             // id of the last frame drawn: replies never go backwards
const inFlight = new Map();    // id -> {pixels, captured, sent, token, rgbThumb}
const arrivals = [];

function showMessage(text, kind = "error") {
  const box = $("message");
  box.textContent = text;
  box.className = kind;
  box.hidden = false;
  if (kind === "error") live.errors.push(text);
}

function clearMessage() { $("message").hidden = true; }

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

async function loadInfo() {
  for (;;) {
    let info;
    try {
      info = await (await fetch("/api/info")).json();
    } catch (err) {
      showMessage(`Cannot reach the kdcache live server (${err.message}): is it still running?`);
      return null;
    }
    live.state = info.state;
    if (info.state !== "loading") return info;
    showMessage("Loading the model…", "info");
    await sleep(300);
  }
}

function colorTable(base64) {
  // 256 x RGB bytes -> 256 RGBA pixels as one Uint32 each (little-endian: A B G R), so colouring is one lookup.
  const rgb = Uint8Array.from(atob(base64), (c) => c.charCodeAt(0));
  const table = new Uint32Array(256);
  for (let i = 0; i < 256; i++) table[i] = (255 << 24 | rgb[3 * i + 2] << 16 | rgb[3 * i + 1] << 8 | rgb[3 * i]) >>> 0;
  return table;
}

function buildPanels(info) {
  colors = colorTable(info.lut);
  const main = $("panels");
  panels = info.panels.map((panel) => {
    const figure = document.createElement("figure");
    figure.className = "panel";
    const canvas = document.createElement("canvas");
    canvas.className = "depth";
    canvas.id = `depth-${panel.role}`;
    const caption = document.createElement("figcaption");
    figure.append(canvas, caption);
    main.append(figure);
    const entry = { ...panel, canvas, caption };
    setCaption(entry, null);
    return entry;
  });
  $("models").textContent = info.panels.map((p) => `${p.role}: ${p.model}`).join(" · ");
}

function setCaption(panel, ms) {
  const size = panel.input_size ? ` at ${panel.input_size[0]}x${panel.input_size[1]}` : "";
  const latency = ms == null ? "" : ` — model ${ms.toFixed(1)} ms`;
  const runtime = panel.runtime ? `, ${panel.runtime}` : "";
  panel.caption.textContent = `${panel.role} depth (${panel.model}${size}${runtime})${latency}`;
}

function stop() {
  token += 1;
  if (stream) stream.getTracks().forEach((track) => track.stop());
  stream = null;
  const video = $("video");
  video.pause();
  video.removeAttribute("src");
  video.srcObject = null;
  video.onerror = null;
  if (objectUrl) URL.revokeObjectURL(objectUrl);
  objectUrl = null;
  $("stop").disabled = true;
  inFlight.clear();
  live.state = live.state === "streaming" ? "stopped" : live.state;
}

function cameraError(err) {
  switch (err && err.name) {
    case "NotAllowedError":
    case "SecurityError":
      return "Camera access was not allowed: allow the camera for this page in the browser's site settings " +
        "and press Camera again, or open a video or image instead.";
    case "NotFoundError":
    case "OverconstrainedError":
      return "No camera was found: connect one, or open a video or image instead.";
    case "NotReadableError":
    case "AbortError":
      return "The camera could not be started: another program may be using it.";
    default:
      return `The camera could not be started (${err && err.name}: ${err && err.message}).`;
  }
}

async function startCamera() {
  stop();
  clearMessage();
  if (!navigator.mediaDevices || !navigator.mediaDevices.getUserMedia) {
    showMessage("This browser allows the camera only on https or on localhost: open " +
      `http://localhost:${location.port}/ on the machine running kdcache live, or open a video or image.`);
    return;
  }
  const mine = token;
  try {
    stream = await navigator.mediaDevices.getUserMedia({ video: { width: { ideal: 640 }, height: { ideal: 480 } }, audio: false });
  } catch (err) {
    showMessage(cameraError(err));
    return;
  }
  if (mine !== token) { stream.getTracks().forEach((t) => t.stop()); return; }
  const track = stream.getVideoTracks()[0];
  const { width, height } = track.getSettings();
  if (window.MediaStreamTrackProcessor && width && height) {
    live.frameSource = "track";
    pump(trackFrames(track, width, height), mine);
    return;
  }
  live.frameSource = "video";
  const video = $("video");
  video.srcObject = stream;
  try {
    await video.play();
  } catch (err) {
    showMessage(`The camera stream could not be played (${err.name}: ${err.message}).`);
    return;
  }
  pump(elementFrames(video), mine);
}

function mediaErrorName(error) {
  const names = { 1: "aborted", 2: "network error", 3: "decode error", 4: "format not supported" };
  return error ? `${names[error.code] || "error " + error.code}${error.message ? ": " + error.message : ""}` : "unknown error";
}

function openFile(file) {
  stop();
  clearMessage();
  if (!file) return;
  objectUrl = URL.createObjectURL(file);
  const isImage = file.type.startsWith("image/") || /\.(png|jpe?g|webp|bmp|gif|avif)$/i.test(file.name);
  if (isImage) {
    const image = new Image();
    image.onload = () => pump(elementFrames(image, true), token, true);
    image.onerror = () => showMessage(`Cannot decode the image ${file.name}: open a JPEG, PNG or WebP file.`);
    image.src = objectUrl;
    return;
  }
  const video = $("video");
  const mine = token;
  let reported = false;
  const fail = () => {
    if (reported || mine !== token) return;
    reported = true;
    showMessage(`Cannot decode the video ${file.name} in this browser (${mediaErrorName(video.error)}): ` +
      "re-encode it, e.g. ffmpeg -i IN -c:v libvpx-vp9 OUT.webm, or open an image.");
    stop();
  };
  video.onerror = fail;
  video.loop = true;
  video.src = objectUrl;
  video.play().then(() => pump(elementFrames(video), mine)).catch(fail);
}

function nextVideoFrame(video) {
  // Wait for a frame the page has not sent yet (never send one frame twice); time out for browsers without it.
  // Resolves with the frame's capture time (the camera's own stamp where the browser gives one).
  if (!video.requestVideoFrameCallback) return sleep(15).then(() => performance.now());
  return new Promise((resolve) => {
    const timer = setTimeout(() => resolve(performance.now()), 250);
    video.requestVideoFrameCallback((now, meta) => {
      clearTimeout(timer);
      const stamp = meta && meta.captureTime;
      resolve(stamp && stamp <= now && now - stamp < 1000 ? stamp : now);
    });
  });
}

function elementFrames(source, once = false) {
  // The frames of a <video> (each one once) or of an image (once), with the time each was captured.
  return {
    width: source.videoWidth || source.naturalWidth,
    height: source.videoHeight || source.naturalHeight,
    async next() {
      return { image: source, captured: once ? performance.now() : await nextVideoFrame(source), release() {} };
    },
    cancel() {},
  };
}

function trackFrames(track, width, height) {
  // A camera's frames as they reach the page (MediaStreamTrackProcessor): ~1 ms after capture, where a <video>'s
  // requestVideoFrameCallback comes ~10 ms after, at the page's next render step (bench/live.py measures both).
  // Every frame is closed at once, drawn or not, so the camera never waits for the page.
  const reader = new MediaStreamTrackProcessor({ track, maxBufferSize: 1 }).readable.getReader();
  return {
    width, height,
    async next() {
      let result;
      try {
        result = await reader.read();
      } catch (err) {
        return null;  // the track was stopped
      }
      const frame = result.value;
      return result.done ? null : { image: frame, captured: performance.now(), release: () => frame.close() };
    },
    cancel() { reader.cancel().catch(() => {}); },
  };
}

function thumbnail(rgba, width, height) {
  // 16x12 grey thumbnail (for tests to tell frames apart), sampled from the pixels the page already holds.
  const grey = [];
  for (let y = 0; y < 12; y++) {
    for (let x = 0; x < 16; x++) {
      const i = 4 * (Math.floor((y + 0.5) * height / 12) * width + Math.floor((x + 0.5) * width / 16));
      grey.push(Math.round((rgba[i] + rgba[i + 1] + rgba[i + 2]) / 3));
    }
  }
  return grey;
}

function captureSize(width, height) {
  // The student's input size, so the server resizes nothing; else CAPTURE_WIDTH wide with the source's aspect.
  const size = panels.length && panels[0].input_size;
  if (size) return [size[1], size[0]];
  const w = Math.min(CAPTURE_WIDTH, width);
  return [w, Math.max(1, Math.round(height * w / width))];
}

function connect() {
  // The frame stream; opened on first use and reopened after the server closed an idle one.
  if (socket && socket.readyState === WebSocket.OPEN) return Promise.resolve(socket);
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(`ws://${location.host}/api/stream`);
    ws.binaryType = "arraybuffer";
    ws.onopen = () => { socket = ws; resolve(ws); };
    ws.onerror = () => reject(new Error("the WebSocket to the server could not be opened"));
    ws.onmessage = (event) => receive(event.data);
    ws.onclose = () => {
      if (socket !== ws) return;
      socket = null;
      if (live.state === "streaming") {
        showMessage("Lost the connection to the kdcache live server: is it still running?");
        stop();
      }
    };
  });
}

async function pump(frames, mine, once = false) {
  const { width, height } = frames;
  let ws;
  try {
    ws = await connect();
  } catch (err) {
    showMessage(`Cannot reach the kdcache live server (${err.message}): is it still running?`);
    stop();
    frames.cancel();
    return;
  }
  if (mine !== token) { frames.cancel(); return; }
  // Frames are captured off screen and drawn with their depth, so RGB and depth on the page are the same frame.
  const canvas = document.createElement("canvas");
  [canvas.width, canvas.height] = captureSize(width, height);
  const ctx = canvas.getContext("2d", { willReadFrequently: true });
  const shown = $("rgb");
  shown.width = canvas.width;
  shown.height = canvas.height;
  for (const element of [shown, ...panels.map((p) => p.canvas)]) element.style.aspectRatio = `${width} / ${height}`;
  $("stop").disabled = once;
  live.state = "streaming";
  live.once = once;
  arrivals.length = 0;
  while (mine === token) {
    const frame = await frames.next();
    if (!frame) break;
    if (mine !== token) { frame.release(); break; }
    live.videoFrames += 1;
    if (inFlight.size >= MAX_IN_FLIGHT) { live.skipped += 1; frame.release(); continue; }  // drop, never queue
    const started = performance.now();
    ctx.drawImage(frame.image, 0, 0, canvas.width, canvas.height);
    frame.release();
    send(ws, ctx.getImageData(0, 0, canvas.width, canvas.height), frame.captured, mine, started);
    if (once) break;
  }
  frames.cancel();
}

function send(ws, pixels, captured, mine, started) {
  const id = nextId++;
  const message = new ArrayBuffer(8 + pixels.data.length);
  const header = new DataView(message);
  header.setUint32(0, id, true);
  header.setUint16(4, pixels.height, true);
  header.setUint16(6, pixels.width, true);
  new Uint8Array(message, 8).set(pixels.data);
  const rgbThumb = thumbnail(pixels.data, pixels.width, pixels.height);
  ws.send(message);
  const sent = performance.now();
  inFlight.set(id, { pixels, captured, sent, captureMs: sent - started, token: mine, rgbThumb });
  live.sent += 1;
}

function receive(data) {
  if (typeof data === "string") { notice(JSON.parse(data)); return; }
  const view = new DataView(data);
  const length = view.getUint32(0, true);
  const reply = JSON.parse(new TextDecoder().decode(new Uint8Array(data, 4, length)));
  const frame = inFlight.get(reply.id);
  inFlight.delete(reply.id);
  if (!frame || frame.token !== token || reply.id <= lastShown) return;  // stopped since, or out of order
  lastShown = reply.id;
  const started = performance.now();
  $("rgb").getContext("2d").putImageData(frame.pixels, 0, 0);
  let offset = 4 + length;
  const depthThumbs = reply.panels.map((result, i) => {
    const levels = new Uint8Array(data, offset, result.height * result.width);
    offset += levels.length;
    return draw(panels[i], result, levels);
  });
  frame.drawMs = performance.now() - started;
  show(reply, frame, depthThumbs);
}

function draw(panel, result, levels) {
  // Colour the depth levels with the table and put them on the panel's canvas (the CSS scales it).
  const { canvas } = panel;
  if (canvas.width !== result.width || canvas.height !== result.height) {
    canvas.width = result.width;
    canvas.height = result.height;
  }
  const image = new ImageData(result.width, result.height);
  const out = new Uint32Array(image.data.buffer);
  for (let i = 0; i < levels.length; i++) out[i] = colors[levels[i]];
  canvas.getContext("2d").putImageData(image, 0, 0);
  live.modelMs[result.role] = result.model_ms;
  setCaption(panel, result.model_ms);
  return thumbnail(image.data, result.width, result.height);
}

function notice(reply) {
  // A frame the server answered without depth: dropped for a newer one, still loading, or failed.
  const frame = inFlight.get(reply.id);
  inFlight.delete(reply.id);
  if (!frame || frame.token !== token) return;
  if (reply.dropped) { live.dropped += 1; return; }
  if (reply.retry) { showMessage("Loading the model…", "info"); return; }
  live.frameErrors += 1;
  showMessage(reply.error || "The server could not process a frame.");
  if (live.once) { live.state = "failed"; stop(); }
}

function show(reply, frame, depthThumbs) {
  clearMessage();
  const now = performance.now();
  arrivals.push(now);
  while (arrivals.length && now - arrivals[0] > FPS_WINDOW_MS) arrivals.shift();
  live.frames += 1;
  live.roundTripMs = now - frame.sent;
  live.latencyMs = now - frame.captured;
  live.fps = arrivals.length > 1 ? (arrivals.length - 1) * 1000 / (now - arrivals[0]) : 0;
  live.log.push({ id: reply.id, rgb: frame.rgbThumb, depth: depthThumbs, modelMs: reply.panels.map((p) => p.model_ms),
                  serverMs: reply.server_ms, waitMs: reply.wait_ms, latencyMs: live.latencyMs, roundTripMs: live.roundTripMs,
                  captureMs: frame.captureMs, drawMs: frame.drawMs, t: now });
  if (live.log.length > LOG_FRAMES) live.log.shift();
  $("fps").textContent = live.fps ? live.fps.toFixed(1) : "–";
  $("roundtrip").textContent = `${live.latencyMs.toFixed(0)} ms`;
  $("frames").textContent = String(live.frames);
  if (live.once) { live.state = "shown"; stop(); }
}

async function main() {
  $("camera").addEventListener("click", startCamera);
  $("file").addEventListener("change", (event) => openFile(event.target.files[0]));
  $("stop").addEventListener("click", stop);
  const info = await loadInfo();
  if (!info) return;
  buildPanels(info);
  if (info.state === "error") {
    const failed = info.panels.find((p) => p.state === "error");
    showMessage(`The ${failed.role} model ${failed.model} could not be loaded: ${failed.error}`);
    $("camera").disabled = true;
    return;
  }
  clearMessage();
  live.state = "ready";
  const start = new URLSearchParams(location.search).get("source");
  if (start === "camera") startCamera();
}

main();

// kdcache live: capture frames (camera, video or image), send them to /api/depth one at a time, show the depth.
// window.kdcacheLive exposes the counters the page shows (and a small per-frame log that tests read).
"use strict";

const CAPTURE_WIDTH = 320;     // frames are sent at this width; the height keeps the source's aspect ratio
const JPEG_QUALITY = 0.85;
const FPS_WINDOW_MS = 2000;    // the FPS shown is over the frames received in the last 2 s
const LOG_FRAMES = 200;        // per-frame records kept for tests (thumbnail of RGB and depth)

const $ = (id) => document.getElementById(id);
const live = window.kdcacheLive = { frames: 0, fps: 0, modelMs: {}, roundTripMs: 0, errors: [], log: [], state: "idle" };
let token = 0;                 // bumped by stop(): a running loop sees its token change and ends
let stream = null;
let objectUrl = null;
let panels = [];               // [{role, model, img, caption}]
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

function buildPanels(info) {
  const main = $("panels");
  panels = info.panels.map((panel) => {
    const figure = document.createElement("figure");
    figure.className = "panel";
    const img = document.createElement("img");
    img.alt = `${panel.role} depth`;
    img.id = `depth-${panel.role}`;
    const caption = document.createElement("figcaption");
    figure.append(img, caption);
    main.append(figure);
    const entry = { ...panel, img, caption };
    setCaption(entry, null);
    return entry;
  });
  $("models").textContent = info.panels.map((p) => `${p.role}: ${p.model}`).join(" · ");
}

function setCaption(panel, ms) {
  const size = panel.input_size ? ` at ${panel.input_size[0]}x${panel.input_size[1]}` : "";
  const latency = ms == null ? "" : ` — model ${ms.toFixed(1)} ms`;
  panel.caption.textContent = `${panel.role} depth (${panel.model}${size})${latency}`;
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
  const video = $("video");
  video.srcObject = stream;
  try {
    await video.play();
  } catch (err) {
    showMessage(`The camera stream could not be played (${err.name}: ${err.message}).`);
    return;
  }
  pump(video, token);
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
    image.onload = () => pump(image, token, true);
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
  video.play().then(() => pump(video, mine)).catch(fail);
}

function nextVideoFrame(video) {
  // Wait for a frame the page has not sent yet (never send one frame twice); time out for browsers without it.
  if (!video.requestVideoFrameCallback) return sleep(15);
  return new Promise((resolve) => {
    const timer = setTimeout(resolve, 250);
    video.requestVideoFrameCallback(() => { clearTimeout(timer); resolve(); });
  });
}

function thumbnail(source, width, height) {
  // 16x12 grey thumbnail (for tests to tell frames apart): a tiny canvas read back once per frame.
  const canvas = thumbnail.canvas || (thumbnail.canvas = document.createElement("canvas"));
  canvas.width = 16; canvas.height = 12;
  const ctx = canvas.getContext("2d", { willReadFrequently: true });
  ctx.drawImage(source, 0, 0, width, height, 0, 0, 16, 12);
  const data = ctx.getImageData(0, 0, 16, 12).data;
  const grey = [];
  for (let i = 0; i < data.length; i += 4) grey.push(Math.round((data[i] + data[i + 1] + data[i + 2]) / 3));
  return grey;
}

async function pump(source, mine, once = false) {
  const width = source.videoWidth || source.naturalWidth;
  const height = source.videoHeight || source.naturalHeight;
  // Frames are captured off screen and shown with their depth, so RGB and depth on the page are the same frame.
  const canvas = document.createElement("canvas");
  canvas.width = Math.min(CAPTURE_WIDTH, width);
  canvas.height = Math.max(1, Math.round(height * canvas.width / width));
  const ctx = canvas.getContext("2d");
  const shown = $("rgb");
  shown.width = canvas.width;
  shown.height = canvas.height;
  $("stop").disabled = once;
  live.state = "streaming";
  arrivals.length = 0;
  while (mine === token) {
    if (!once) await nextVideoFrame(source);
    if (mine !== token) break;
    ctx.drawImage(source, 0, 0, canvas.width, canvas.height);
    const rgbThumb = thumbnail(canvas, canvas.width, canvas.height);
    const blob = await new Promise((resolve) => canvas.toBlob(resolve, "image/jpeg", JPEG_QUALITY));
    const sent = performance.now();
    let reply, response;
    try {
      response = await fetch("/api/depth", { method: "POST", body: blob, headers: { "Content-Type": "image/jpeg" } });
      reply = await response.json();
    } catch (err) {
      showMessage(`Lost the connection to the kdcache live server (${err.message}): is it still running?`);
      stop();
      break;
    }
    if (!response.ok) {
      if (reply.retry) { showMessage("Loading the model…", "info"); await sleep(300); continue; }
      showMessage(reply.error || `The server answered ${response.status}.`);
      if (response.status >= 500 || once) { stop(); break; }
      continue;
    }
    if (mine !== token) break;
    shown.getContext("2d").drawImage(canvas, 0, 0);
    await show(reply, performance.now() - sent, rgbThumb);
    if (once) { live.state = "shown"; break; }
  }
}

async function show(reply, roundTrip, rgbThumb) {
  clearMessage();
  const now = performance.now();
  arrivals.push(now);
  while (arrivals.length && now - arrivals[0] > FPS_WINDOW_MS) arrivals.shift();
  live.frames += 1;
  live.roundTripMs = roundTrip;
  live.fps = arrivals.length > 1 ? (arrivals.length - 1) * 1000 / (now - arrivals[0]) : 0;
  const depthThumbs = [];
  await Promise.all(reply.panels.map((result, i) => new Promise((resolve) => {
    const panel = panels[i];
    live.modelMs[result.role] = result.model_ms;
    setCaption(panel, result.model_ms);
    if (panel.img.src === result.image) { depthThumbs[i] = panel.thumb; resolve(); return; }  // no load event
    panel.img.onload = () => {
      depthThumbs[i] = panel.thumb = thumbnail(panel.img, panel.img.naturalWidth, panel.img.naturalHeight);
      resolve();
    };
    panel.img.onerror = () => resolve();
    panel.img.src = result.image;
  })));
  live.log.push({ rgb: rgbThumb, depth: depthThumbs, modelMs: reply.panels.map((p) => p.model_ms), t: now });
  if (live.log.length > LOG_FRAMES) live.log.shift();
  $("fps").textContent = live.fps ? live.fps.toFixed(1) : "–";
  $("roundtrip").textContent = `${roundTrip.toFixed(0)} ms`;
  $("frames").textContent = String(live.frames);
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

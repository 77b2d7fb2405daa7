// openimagine playground: builds one videoInference task from the form, posts it to /v1,
// polls getResponse, and plays the results. Plain browser JavaScript, no build step.
"use strict";

(() => {
  const card = JSON.parse(document.getElementById("card").textContent);
  const $ = (id) => document.getElementById(id);
  const KEY_STORAGE = "openimagine.apiKey";
  const POLL_MS = 500;
  // Server parameters whose error slot is the field of the same name.
  const SAME_NAME = ["apiKey", "resolution", "duration", "outputFormat", "outputQuality",
    "numberResults", "seed"];

  /** The error slot (data-error-for) that shows errors about a server `parameter`. */
  function fieldFor(parameter) {
    if (!parameter) return "form";
    if (SAME_NAME.includes(parameter)) return parameter;
    if (parameter === "positivePrompt") return "prompt";
    if (parameter === "width" || parameter === "height") return "size";
    if (parameter.startsWith("inputs.") || parameter === "frameImages"
        || parameter === "referenceImages") return "media";
    return "form";
  }

  function slot(name) {
    const el = document.querySelector(`[data-error-for="${name}"]`);
    // A slot inside a hidden field (e.g. size in image mode) would hide the message.
    return el && !el.closest("[hidden]") ? el : $("form-error");
  }

  function showError(name, message, code) {
    const el = slot(name);
    el.textContent = el.textContent ? `${el.textContent} ${message}` : message;
    if (code) el.dataset.code = code;
    const field = el.closest(".field");
    const input = field && field.querySelector("input, select, textarea");
    if (input) input.setAttribute("aria-invalid", "true");
  }

  function showServerError(item) {
    showError(fieldFor(item.parameter), item.message || item.code || "Error.", item.code);
  }

  function clearErrors() {
    for (const el of document.querySelectorAll("[data-error-for]")) {
      el.textContent = "";
      delete el.dataset.code;
    }
    for (const el of document.querySelectorAll("[aria-invalid]")) {
      el.removeAttribute("aria-invalid");
    }
  }

  /** A UUID v4 (crypto.randomUUID needs a secure context; a LAN http:// origin is not). */
  function uuid4() {
    const b = crypto.getRandomValues(new Uint8Array(16));
    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
    const h = Array.from(b, (x) => x.toString(16).padStart(2, "0")).join("");
    return `${h.slice(0, 8)}-${h.slice(8, 12)}-${h.slice(12, 16)}-${h.slice(16, 20)}-${h.slice(20)}`;
  }

  function option(select, value, text) {
    const o = document.createElement("option");
    o.value = value;
    o.textContent = text;
    select.append(o);
  }

  function setRange(input, range, value) {
    input.min = range.min;
    input.max = range.max;
    if (value !== undefined) input.value = value;
  }

  function buildForm() {
    $("model-id").textContent = card.model;
    for (const s of card.sizes) {
      option($("size"), `${s.width}x${s.height}`, `${s.width}×${s.height} · ${s.tier} ${s.aspectRatio}`);
    }
    for (const r of card.resolutions) option($("resolution"), r, r);
    $("resolution").value = card.defaultResolution;
    for (const f of card.outputFormats) option($("outputFormat"), f, f);
    $("outputFormat").value = card.defaultOutputFormat;
    setRange($("outputQuality"), card.outputQuality, card.outputQuality.default);
    setRange($("numberResults"), card.numberResults);
    $("duration").value = card.defaultDuration;
    try {
      $("apiKey").value = localStorage.getItem(KEY_STORAGE) || "";
    } catch (_err) {
      // Storage may be disabled; the key then lives in the field only.
    }
  }

  function mode() {
    return document.querySelector('input[name="mode"]:checked').value;
  }

  function applyMode() {
    const m = mode();
    $("size-field").hidden = m !== "text";
    $("resolution-field").hidden = m !== "image";
    $("media-field").hidden = m === "text";
    const video = m === "video";
    $("mediaFile").accept = video ? "video/*" : "image/*";
    $("media-label").textContent = video ? "Source video" : "First frame image";
    $("media-hint").textContent = video
      ? "The clip follows the source video's size and aspect ratio."
      : "Read as a data URI, or give a URL.";
    const range = video ? card.videoDuration : card.duration;
    setRange($("duration"), range);
    $("duration").required = !video;
    $("duration").placeholder = video ? "source length" : "";
    $("duration-hint").textContent = `${range.min}–${range.max} s${video ? ", optional" : ""}`;
  }

  function readDataUri(file) {
    return new Promise((resolve, reject) => {
      const reader = new FileReader();
      reader.onload = () => resolve(reader.result);
      reader.onerror = () => reject(reader.error);
      reader.readAsDataURL(file);
    });
  }

  async function mediaInput() {
    const file = $("mediaFile").files[0];
    if (file) return readDataUri(file);
    return $("mediaUrl").value.trim();
  }

  /** Numbers go to the server as typed: it is the one that validates them. */
  function numberOrUndefined(id) {
    const raw = $(id).value.trim();
    return raw === "" ? undefined : Number(raw);
  }

  async function buildTask() {
    const m = mode();
    const task = {
      taskType: "videoInference",
      taskUUID: uuid4(),
      model: card.model,
      positivePrompt: $("prompt").value,
      duration: numberOrUndefined("duration"),
      outputFormat: $("outputFormat").value,
      outputQuality: numberOrUndefined("outputQuality"),
      numberResults: numberOrUndefined("numberResults"),
      seed: numberOrUndefined("seed"),
      includeCost: true,
    };
    if (m === "text") {
      const [width, height] = $("size").value.split("x").map(Number);
      Object.assign(task, { width, height });
    } else {
      const media = await mediaInput();
      if (!media) throw Object.assign(new Error("Choose a file or give a URL."), { field: "media" });
      if (m === "image") {
        Object.assign(task, { resolution: $("resolution").value, inputs: { frameImages: [media] } });
      } else {
        task.inputs = { video: media };
      }
    }
    return task;
  }

  async function post(key, tasks) {
    const res = await fetch("/v1", {
      method: "POST",
      headers: { Authorization: `Bearer ${key}`, "Content-Type": "application/json" },
      body: JSON.stringify(tasks),
    });
    try {
      return await res.json();
    } catch (_err) {
      throw new Error(`The server answered ${res.status} ${res.statusText} without JSON.`);
    }
  }

  function formatCost(cost) {
    let s = cost.toFixed(3);
    if (s.endsWith("0")) s = s.slice(0, -1);
    return `$${s}`;
  }

  function resultCard(id) {
    let el = document.querySelector(`[data-video-uuid="${id}"]`);
    if (!el) {
      el = document.createElement("figure");
      el.className = "result";
      el.dataset.videoUuid = id;
      $("results").append(el);
    }
    return el;
  }

  function showSuccess(item, format) {
    const el = resultCard(item.videoUUID);
    if (el.dataset.done) return;
    el.dataset.done = "success";
    const video = document.createElement("video");
    video.controls = true;
    video.preload = "metadata";
    video.src = item.videoURL;
    const caption = document.createElement("figcaption");
    const cost = document.createElement("span");
    cost.className = "cost";
    cost.textContent = item.cost === undefined ? "cost not reported" : formatCost(item.cost);
    const seed = document.createElement("span");
    seed.textContent = `seed ${item.seed}`;
    const link = document.createElement("a");
    link.href = item.videoURL;
    link.download = `${item.videoUUID}.${format.toLowerCase()}`;
    link.textContent = "Download";
    caption.append(cost, " · ", seed, " · ", link);
    el.append(video, caption);
  }

  function showFailure(item) {
    const el = resultCard(item.videoUUID || uuid4());
    if (el.dataset.done) return;
    el.dataset.done = "error";
    el.classList.add("failed");
    const message = document.createElement("p");
    message.className = "error result-error";
    message.textContent = item.message || "Generation failed.";
    const code = document.createElement("code");
    code.textContent = item.code || "";
    el.append(message, code);
  }

  function setStatus(text, value) {
    $("status").textContent = text;
    if (value !== undefined) $("progress").value = value;
  }

  const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

  /** Poll getResponse until every result is a success or an error; true if any succeeded. */
  async function poll(key, task) {
    for (;;) {
      const body = await post(key, [{ taskType: "getResponse", taskUUID: task.taskUUID }]);
      const items = body.data || [];
      const errors = body.errors || [];
      const fatal = errors.filter((e) => e.status !== "error");
      if (fatal.length) {
        fatal.forEach(showServerError);
        setStatus("Failed.");
        return false;
      }
      const ok = items.filter((i) => i.status === "success");
      ok.forEach((i) => showSuccess(i, task.outputFormat));
      errors.forEach(showFailure);
      const total = items.length + errors.length;
      const progress = items.reduce((sum, i) => sum + (i.progress || 0), 100 * errors.length);
      const pct = total ? Math.round(progress / total) : 0;
      if (ok.length + errors.length >= total && total > 0) {
        const failed = errors.length ? `, ${errors.length} failed` : "";
        setStatus(`Done: ${ok.length} of ${total} ready${failed}.`, 100);
        return ok.length > 0;
      }
      setStatus(`Generating… ${pct}% (${ok.length + errors.length} of ${total} done)`, pct);
      await sleep(POLL_MS);
    }
  }

  async function submit(event) {
    event.preventDefault();
    clearErrors();
    const key = $("apiKey").value.trim();
    try {
      localStorage.setItem(KEY_STORAGE, key);
    } catch (_err) {
      // See buildForm.
    }
    let task;
    try {
      task = await buildTask();
    } catch (err) {
      showError(err.field || "form", err.message);
      return;
    }
    $("submit").disabled = true;
    try {
      const ack = await post(key, [task]);
      if (ack.errors) {
        ack.errors.forEach(showServerError);
        return;
      }
      $("run").hidden = false;
      $("task-uuid").textContent = task.taskUUID;
      $("results").replaceChildren();
      setStatus("Queued…", 0);
      await poll(key, task);
    } catch (err) {
      showError("form", err.message || String(err));
    } finally {
      $("submit").disabled = false;
    }
  }

  async function showNotice() {
    try {
      const health = await (await fetch("/health")).json();
      if (health.randomWeights) {
        $("notice").textContent = health.notice || "The model has random weights: clips are noise.";
        $("notice").hidden = false;
      }
    } catch (_err) {
      // No notice without /health; the form still works.
    }
  }

  buildForm();
  applyMode();
  for (const radio of document.querySelectorAll('input[name="mode"]')) {
    radio.addEventListener("change", applyMode);
  }
  $("form").addEventListener("submit", submit);
  showNotice();
})();

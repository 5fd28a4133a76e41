// advscale validity: the rating page. Talks to the JSON API of advscale/validity/server.py.
"use strict";
(function () {
  const $ = (id) => document.getElementById(id);
  const params = new URLSearchParams(window.location.search);
  const rater = params.get("rater");
  const token = params.get("token");
  let state = null;
  let tab = null;
  let current = null;
  let shownAt = 0;
  let busy = false;

  function setStatus(message, isError) {
    const el = $("status");
    el.textContent = message || "";
    el.className = isError ? "error" : "";
  }

  async function api(path, options) {
    const response = await fetch(path, Object.assign({ cache: "no-store" }, options || {}));
    let body = null;
    try {
      body = await response.json();
    } catch (e) {
      body = { error: response.statusText };
    }
    if (!response.ok) {
      throw new Error((body && body.error) || "HTTP " + response.status);
    }
    return body;
  }

  function query(extra) {
    return new URLSearchParams(Object.assign({ rater: rater, token: token }, extra)).toString();
  }

  function pct(k, n) {
    return n ? ((100 * k) / n).toFixed(1) + "%" : "\u2014";  // an em dash before any answer
  }

  function setChoicesEnabled(on) {
    document.querySelectorAll(".buttons button").forEach((b) => { b.disabled = !on; });
  }

  function buildChoices() {
    for (const conf of ["low", "high"]) {
      const box = $("choices-" + conf);
      box.textContent = "";
      state.class_names.forEach((name, cls) => {
        const b = document.createElement("button");
        b.type = "button";
        b.id = "choice-" + conf + "-" + cls;
        b.dataset.class = String(cls);
        b.dataset.confidence = conf;
        b.textContent = name;
        b.disabled = true;
        b.addEventListener("click", () => answer(cls, conf));
        box.appendChild(b);
      });
    }
    const img = $("image");
    img.width = state.image_px;
    img.height = state.image_px;
    img.addEventListener("load", () => {
      shownAt = performance.now();
      setChoicesEnabled(!busy);
      document.body.dataset.ready = "1";
    });
    img.addEventListener("error", () => setStatus("Could not load the image; reload the page.", true));
  }

  function renderTabs() {
    const nav = $("tabs");
    nav.textContent = "";
    for (const t of state.tabs) {
      const b = document.createElement("button");
      b.type = "button";
      b.id = "tab-" + t.tab;
      b.textContent = "Tab " + (t.tab + 1);  // tabs count from 1, like pairs
      if (t.next === null) b.classList.add("finished");
      b.setAttribute("aria-current", t.tab === tab ? "true" : "false");
      b.addEventListener("click", () => { tab = t.tab; render(); });
      nav.appendChild(b);
    }
  }

  function render() {
    if (tab === null) tab = state.current_tab === null ? 0 : state.current_tab;
    renderTabs();
    const s = state.stats;
    const t = state.tabs[tab];
    $("who").textContent = "Rater " + state.rater + " — " + state.n_items + " image pairs in " +
      state.tabs.length + " tab(s) of up to " + state.batch + ".";
    $("progress").textContent = state.answered + " of " + state.total + " answers saved; tab " +
      (tab + 1) + ": " + t.done + " of " + (t.stop - t.start) + " pairs done.";
    const frac = (k, n) => pct(k, n) + (n ? " (" + k + " out of " + n + ")" : "");
    $("score-adv").textContent = "Your perturbed-image accuracy is " +
      frac(s.adv_correct, s.pairs) + " and agreement with the model is " +
      frac(s.adv_model_agree, s.pairs) + ".";
    $("score-clean").textContent = "Your original-image accuracy is " +
      frac(s.clean_correct, s.pairs) + " and agreement with the model is " +
      frac(s.clean_model_agree, s.pairs) + ".";
    current = t.next;
    const task = $("task");
    $("all-done").hidden = state.current_tab !== null;
    $("tab-done").hidden = current !== null || state.current_tab === null;
    if (current === null) {
      task.hidden = true;
      task.dataset.item = "";
      task.dataset.version = "";
      return;
    }
    task.hidden = false;
    const position = current.item - t.start + 1;
    $("prompt").textContent = current.version === "adv"
      ? "Pair " + position + " of tab " + tab + ": the first image. Which class is it?"
      : "Pair " + position + " of tab " + tab + ": the second image (the same picture before " +
        "it was perturbed). Which class is it?";
    const src = "/api/image?" + query({ item: String(current.item), version: current.version });
    const img = $("image");
    if (task.dataset.item !== String(current.item) || task.dataset.version !== current.version) {
      document.body.dataset.ready = "0";
      setChoicesEnabled(false);
      task.dataset.item = String(current.item);
      task.dataset.version = current.version;
      img.src = src;
    }
  }

  async function answer(cls, confidence) {
    if (busy || current === null) return;
    busy = true;
    setChoicesEnabled(false);
    const seconds = Math.min(86400, Math.max(0, (performance.now() - shownAt) / 1000));
    const body = {
      rater: rater, token: token, item: current.item, version: current.version,
      class: cls, confidence: confidence, response_s: Math.round(seconds * 1000) / 1000,
    };
    try {
      state = await api("/api/answer", {
        method: "POST",
        headers: { "Content-Type": "application/json" },
        body: JSON.stringify(body),
      });
      setStatus("Saved.");
    } catch (e) {
      setStatus("Not saved: " + e.message, true);
      try { state = await api("/api/state?" + query({})); } catch (e2) { /* keep old state */ }
    }
    busy = false;
    render();
    const img = $("image");
    if (img.complete && img.naturalWidth > 0 && document.body.dataset.ready === "1") {
      setChoicesEnabled(true);
    }
  }

  async function join(event) {
    event.preventDefault();
    const id = $("rater-id").value.trim();
    try {
      const r = await api("/api/join", {
        method: "POST",
        headers: { "Content-Type": "application/json" },
        body: JSON.stringify({ rater: id }),
      });
      window.location.search = "?" + new URLSearchParams({ rater: r.rater, token: r.token });
    } catch (e) {
      setStatus(e.message, true);
    }
  }

  async function start() {
    $("next-tab").addEventListener("click", () => { tab = state.current_tab; render(); });
    if (!rater || !token) {
      $("join").hidden = false;
      $("join-form").addEventListener("submit", join);
      return;
    }
    try {
      state = await api("/api/state?" + query({}));
    } catch (e) {
      setStatus(e.message, true);
      return;
    }
    $("study").hidden = false;
    buildChoices();
    render();
    setStatus("Your personal link (bookmark it to resume): " + window.location.href);
  }

  start();
})();

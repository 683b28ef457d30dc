// Technician pages: validation as you type (device form) and the live commissioning check.
// No framework, no build step. Everything degrades to plain form posts and page reloads.
"use strict";

(function () {
  function deviceForm(form) {
    const url = form.dataset.validate;
    const touched = new Set();
    let timer = null;
    let seq = 0;

    function body() {
      const data = {};
      for (const [key, value] of new FormData(form)) {
        if (key === "csrf_token" || value === "") continue;
        data[key] = /_id$/.test(key) && key !== "native_id" && key !== "profile_id" ? Number(value) : value;
      }
      return data;
    }

    function show(errors) {
      for (const el of form.querySelectorAll(".error[id^='err-']")) {
        const name = el.id.slice(4);
        const input = form.elements.namedItem(name);
        const message = touched.has(name) ? errors[name] || "" : "";
        el.textContent = message;
        if (input) {
          if (message) input.setAttribute("aria-invalid", "true");
          else input.removeAttribute("aria-invalid");
        }
      }
    }

    async function validate() {
      const mine = ++seq;
      let response;
      try {
        response = await fetch(url, {
          method: "POST",
          credentials: "same-origin",
          headers: { "Content-Type": "application/json", "Accept": "application/json" },
          body: JSON.stringify(body()),
        });
      } catch (e) {
        return; // offline: the server checks again on submit
      }
      if (mine !== seq) return; // an answer to an older keystroke
      const errors = {};
      if (response.status === 422) {
        const answer = await response.json();
        for (const item of answer.detail || []) {
          const name = item.loc && item.loc.length > 1 ? String(item.loc[1]) : "form";
          if (!(name in errors)) errors[name] = String(item.msg).replace(/^Value error, /, "");
        }
      }
      show(errors);
    }

    form.addEventListener("input", function (event) {
      if (event.target.name) touched.add(event.target.name);
      clearTimeout(timer);
      timer = setTimeout(validate, 300);
    });
    form.addEventListener("change", function (event) {
      if (event.target.name) touched.add(event.target.name);
      clearTimeout(timer);
      timer = setTimeout(validate, 50);
    });
  }

  function liveRun(box) {
    const phaseEl = document.getElementById("phase");
    const list = document.getElementById("events");
    const countdown = document.getElementById("countdown");
    const names = {};
    const template = document.getElementById("phase-names");
    if (template) {
      for (const span of template.content.querySelectorAll("[data-phase]")) {
        names[span.dataset.phase] = span.textContent;
      }
    }
    let until = box.dataset.until ? Date.parse(box.dataset.until) : null;
    const seen = new Set(Array.from(list ? list.children : []).map((li) => li.dataset.seq));

    function tick() {
      if (!until) { countdown.textContent = ""; return; }
      const left = Math.max(0, Math.round((until - Date.now()) / 1000));
      countdown.textContent = box.dataset.leftText.replace("{s}", String(left));
    }
    const clock = setInterval(tick, 1000);

    function apply(event) {
      if (event.seq !== undefined && seen.has(String(event.seq))) return;
      seen.add(String(event.seq));
      phaseEl.textContent = names[event.phase] || event.phase;
      if (event.until) until = Date.parse(event.until);
      if (list) {
        const li = document.createElement("li");
        li.dataset.seq = String(event.seq);
        // the event texts are English: shown on English pages only (the phase names are translated)
        const detail = box.dataset.eventText === "true" && event.text ? " – " + event.text : "";
        li.textContent = (names[event.phase] || event.phase) + detail;
        list.appendChild(li);
      }
      if (event.phase === "passed" || event.phase === "failed") {
        clearInterval(clock);
        until = null;
        tick();
        window.location.reload(); // the server renders the full report
        return true;
      }
      return false;
    }

    function poll() {
      fetch(box.dataset.status, { credentials: "same-origin", headers: { "Accept": "application/json" } })
        .then((r) => r.json())
        .then((state) => {
          if (state.listening_until) until = Date.parse(state.listening_until);
          let done = false;
          for (const event of state.events || []) done = apply(event) || done;
          if (!done && !state.finished) setTimeout(poll, 2000);
          if (state.finished && !done) window.location.reload();
        })
        .catch(() => setTimeout(poll, 5000));
    }

    if (!window.EventSource) { poll(); return; }
    const source = new EventSource(box.dataset.events);
    const handler = function (message) {
      if (apply(JSON.parse(message.data))) source.close();
    };
    for (const phase of ["starting", "connecting", "listening", "received", "passed", "failed"]) {
      source.addEventListener(phase, handler);
    }
    source.onerror = function () {
      if (source.readyState === EventSource.CLOSED) { poll(); }
    };
  }

  document.addEventListener("DOMContentLoaded", function () {
    const form = document.getElementById("device-form");
    if (form && form.dataset.validate) deviceForm(form);
    const run = document.getElementById("run");
    if (run && run.dataset.finished === "false") liveRun(run);
  });
})();

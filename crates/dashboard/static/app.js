// MT Desk dashboard: progressive enhancement only. Every page works without this file.
// (No confirm() prompts: destructive forms carry their own confirmation checkbox, which also works for
// keyboard, screen-reader and automated users.)
(function () {
  "use strict";
  // Select a freshly shown API token so it can be copied at once.
  var secret = document.getElementById("new-token-secret");
  if (secret) {
    secret.addEventListener("focus", function () { secret.select(); });
  }
  // Keep the latest chat turn in view.
  var latest = document.querySelector(".turn-latest");
  if (latest && latest.scrollIntoView) {
    latest.scrollIntoView({ block: "nearest" });
  }

  // Test chat: stream the answer as it is written. The form is posted (same fields, CSRF token and
  // conversation id) to its data-stream URL, which answers with server-sent events: `delta` ({"text"}),
  // `reset` (discard what was shown: a provider failed mid-answer and the next one answers), then `done`
  // (the full answer with conversation_id and answer_id) or `error`. Once done, the stored conversation
  // page is loaded, which shows the answer with where it came from. If streaming cannot start, the form
  // is submitted normally.
  var form = document.getElementById("chat-form");
  if (!form || !form.getAttribute("data-stream") || !window.fetch || !window.TextDecoder ||
      !window.URLSearchParams || !window.FormData) {
    return;
  }
  var busy = false;

  function element(tag, className, text) {
    var el = document.createElement(tag);
    if (className) { el.className = className; }
    if (text !== undefined) { el.textContent = text; }
    return el;
  }

  // The ids of the previous answer move to the new one.
  function releaseIds() {
    ["question", "answer", "provenance", "source", "answered-by", "notice", "fallbacks", "sources",
      "truncated"].forEach(function (id) {
      var el = document.getElementById(id);
      if (el) { el.removeAttribute("id"); }
    });
    var old = document.querySelector(".turn-latest");
    if (old) { old.classList.remove("turn-latest"); }
  }

  // Parses server-sent events from text chunks; calls onEvent(name, data) for each complete event.
  function sseParser(onEvent) {
    var buffer = "";
    return function (chunk) {
      buffer += chunk.replace(/\r\n?/g, "\n");
      var end;
      while ((end = buffer.indexOf("\n\n")) !== -1) {
        var block = buffer.slice(0, end);
        buffer = buffer.slice(end + 2);
        var name = "message";
        var data = [];
        block.split("\n").forEach(function (line) {
          if (line === "" || line.charAt(0) === ":") { return; }
          var colon = line.indexOf(":");
          var field = colon === -1 ? line : line.slice(0, colon);
          var value = colon === -1 ? "" : line.slice(colon + 1);
          if (value.charAt(0) === " ") { value = value.slice(1); }
          if (field === "event") { name = value; }
          if (field === "data") { data.push(value); }
        });
        if (data.length) { onEvent(name, data.join("\n")); }
      }
    };
  }

  form.addEventListener("submit", function (event) {
    var input = document.getElementById("message");
    // An empty message: let the server show its error next to the field.
    if (busy || !input || !input.value.trim()) { return; }
    event.preventDefault();
    busy = true;
    var send = document.getElementById("send");
    var problem = document.getElementById("stream-error");
    var conversation = document.getElementById("conversation_id");
    var body = new URLSearchParams(new FormData(form));
    var started = false;
    var finished = false;
    var turn, bubble, text;

    function fallBack() {
      // Nothing was answered yet: the ordinary form post does the same without streaming.
      busy = true;
      HTMLFormElement.prototype.submit.call(form);
    }

    function fail(message) {
      busy = false;
      if (send) { send.disabled = false; }
      if (bubble) { bubble.classList.add("bubble-failed"); }
      if (problem) {
        problem.textContent = message;
        problem.hidden = false;
      }
    }

    function show() {
      if (turn) { return; }
      var transcript = document.getElementById("transcript");
      var empty = transcript && transcript.querySelector(".transcript-empty");
      if (empty) { empty.parentNode.removeChild(empty); }
      releaseIds();
      turn = element("div", "turn turn-latest");
      var asked = element("div", "bubble bubble-customer");
      asked.id = "question";
      asked.appendChild(element("span", "who", "Customer"));
      asked.appendChild(document.createTextNode(input.value.trim()));
      bubble = element("div", "bubble bubble-bot answer bubble-streaming");
      bubble.id = "answer";
      bubble.setAttribute("aria-busy", "true");
      bubble.appendChild(element("span", "who", form.getAttribute("data-bot-name") || "Chatbot"));
      text = document.createTextNode("");
      bubble.appendChild(text);
      turn.appendChild(asked);
      turn.appendChild(bubble);
      if (transcript) { transcript.appendChild(turn); }
      if (turn.scrollIntoView) { turn.scrollIntoView({ block: "nearest" }); }
      if (problem) { problem.hidden = true; }
      input.value = "";
    }

    function onEvent(name, data) {
      var payload;
      try { payload = JSON.parse(data); } catch (e) { payload = {}; }
      if (name === "delta") {
        started = true;
        text.appendData(typeof payload.text === "string" ? payload.text : "");
      } else if (name === "reset") {
        text.data = "";
      } else if (name === "done") {
        finished = true;
        text.data = typeof payload.answer === "string" ? payload.answer : text.data;
        bubble.removeAttribute("aria-busy");
        bubble.classList.remove("bubble-streaming");
        if (conversation && payload.conversation_id) { conversation.value = payload.conversation_id; }
        // The stored conversation, with where this answer came from.
        var page = form.getAttribute("data-page");
        if (page && payload.conversation_id && payload.answer_id) {
          window.location.assign(page + "?conversation=" + encodeURIComponent(payload.conversation_id) +
            "&answer=" + encodeURIComponent(payload.answer_id));
        } else {
          busy = false;
          if (send) { send.disabled = false; }
        }
      } else if (name === "error") {
        finished = true;
        bubble.removeAttribute("aria-busy");
        fail(payload.message ? "The answer failed: " + payload.message : "The answer failed. Please try again.");
      }
    }

    if (send) { send.disabled = true; }
    fetch(form.getAttribute("data-stream"), {
      method: "POST",
      body: body,
      credentials: "same-origin",
      headers: { "Accept": "text/event-stream" }
    }).then(function (response) {
      var type = response.headers.get("Content-Type") || "";
      if (!response.ok || !response.body || type.indexOf("text/event-stream") === -1) {
        throw new Error("no stream");
      }
      show();
      started = true;
      var reader = response.body.getReader();
      var decoder = new TextDecoder();
      var feed = sseParser(onEvent);
      function pump() {
        return reader.read().then(function (step) {
          if (step.done) {
            feed(decoder.decode() + "\n\n");
            if (!finished) { fail("The answer was cut off. Please try again."); }
            return;
          }
          feed(decoder.decode(step.value, { stream: true }));
          return pump();
        });
      }
      return pump();
    }).catch(function () {
      if (!started) {
        fallBack();
      } else if (!finished) {
        fail("The connection was lost while answering. Please try again.");
      }
    });
  });
})();

// Knowledge tab (and a source's page): files dropped on the drop zone, or chosen and sent with the
// Upload button, go up with fetch (several at once, the CSRF token first and in X-CSRF-Token); the answer
// lists the refused files with their reasons, and the sources table is reloaded to show the new rows.
// While any source is queued or being processed, status.json is polled every 1.5 s and each row's status,
// progress bar, chunk count and error are updated in place; polling stops once none is active.
(function () {
  "use strict";
  if (!window.fetch || !window.FormData) { return; }
  var POLL_MS = 1500;
  var form = document.getElementById("upload-form");
  var timer = null;

  function sourcesBox() { return document.getElementById("sources"); }

  function element(tag, className, text) {
    var el = document.createElement(tag);
    if (className) { el.className = className; }
    if (text !== undefined) { el.textContent = text; }
    return el;
  }

  // Updates the row of one source; false when the page has no row for it.
  function apply(s) {
    var row = document.getElementById("source-" + s.id);
    if (!row) { return false; }
    row.setAttribute("data-status", s.status);
    var status = row.querySelector(".source-status");
    if (status) {
      status.textContent = s.status_label;
      status.className = "source-status status-" + s.status;
    }
    var bar = row.querySelector(".source-progress");
    if (bar) {
      bar.value = s.percent;
      bar.textContent = s.percent + "%";
    }
    var percent = row.querySelector(".source-percent");
    if (percent) { percent.textContent = s.percent + "%"; }
    var count = row.querySelector(".source-count");
    if (count) { count.textContent = s.total > 0 && s.active ? " · " + s.done + " of " + s.total : ""; }
    var chunks = row.querySelector(".source-chunks");
    if (chunks) { chunks.textContent = Number(s.chunk_count).toLocaleString("en-US"); }
    var error = row.querySelector(".source-error");
    if (error) {
      error.textContent = s.error || "";
      error.hidden = !s.error;
    }
    var sync = row.querySelector(".source-sync");
    if (sync) { sync.disabled = !!s.active; }
    return true;
  }

  function schedule() {
    if (!timer) { timer = window.setTimeout(poll, POLL_MS); }
  }

  function poll() {
    timer = null;
    var box = sourcesBox();
    if (!box || !box.getAttribute("data-status-url")) { return; }
    fetch(box.getAttribute("data-status-url"), {
      credentials: "same-origin",
      headers: { "Accept": "application/json" }
    }).then(function (response) {
      var type = response.headers.get("Content-Type") || "";
      if (!response.ok || type.indexOf("application/json") === -1) { throw new Error("no status"); }
      return response.json();
    }).then(function (data) {
      var missing = false;
      var active = false;
      (data.sources || []).forEach(function (s) {
        var shown = apply(s);
        if (!shown) { missing = true; }
        // On a source's own page only that source counts; on the tab, every source does.
        if (s.active && (shown || form)) { active = true; }
      });
      box.setAttribute("data-active", active ? "true" : "false");
      if (missing && form) {
        refresh();
      } else if (active) {
        schedule();
      } else {
        var hint = document.getElementById("sources-refresh");
        if (hint) { hint.hidden = true; }
      }
    }).catch(function () {
      // The session ended or the server is away: stop; reloading the page starts again.
    });
  }

  // Reloads the sources table from the tab's own page (new rows, their buttons), then polls if needed.
  function refresh() {
    var page = form && form.getAttribute("data-page");
    if (!page || !window.DOMParser) { return; }
    fetch(page, { credentials: "same-origin", headers: { "Accept": "text/html" } })
      .then(function (response) {
        if (!response.ok) { throw new Error("no page"); }
        return response.text();
      }).then(function (html) {
        var fresh = new DOMParser().parseFromString(html, "text/html").getElementById("sources");
        var box = sourcesBox();
        if (!fresh || !box) { return; }
        box.parentNode.replaceChild(document.importNode(fresh, true), box);
        var hint = document.getElementById("sources-refresh");
        if (hint) { hint.hidden = true; }
        if (fresh.getAttribute("data-active") === "true") { schedule(); }
      }).catch(function () {});
  }

  function showResult(body, failed) {
    var target = document.getElementById("upload-result");
    if (!target) { return; }
    while (target.firstChild) { target.removeChild(target.firstChild); }
    var added = body.sources || [];
    var refused = body.errors || [];
    var ok = !failed && added.length > 0;
    var alert = element("div", "alert " + (ok ? "alert-success" : "alert-error"));
    alert.id = "upload-outcome";
    alert.setAttribute("role", ok ? "status" : "alert");
    alert.appendChild(element("p", "", body.message || "The upload failed. Reload the page and try again."));
    if (refused.length) {
      var table = element("table", "table compact");
      table.id = "upload-errors";
      var head = element("tr");
      head.appendChild(element("th", "", "File"));
      head.appendChild(element("th", "", "Why it was refused"));
      var thead = element("thead");
      thead.appendChild(head);
      table.appendChild(thead);
      var tbody = element("tbody");
      refused.forEach(function (e) {
        var tr = element("tr");
        tr.appendChild(element("td", "", e.file));
        tr.appendChild(element("td", "", e.error));
        tbody.appendChild(tr);
      });
      table.appendChild(tbody);
      alert.appendChild(table);
    }
    target.appendChild(alert);
  }

  function upload(files) {
    var token = form.querySelector("input[name='csrf']");
    var input = document.getElementById("upload-files");
    var submit = document.getElementById("upload-submit");
    var busy = document.getElementById("upload-busy");
    if (!token || !files || !files.length) { return; }
    var data = new FormData();
    data.append("csrf", token.value);
    for (var i = 0; i < files.length; i++) { data.append("files", files[i], files[i].name); }
    if (submit) { submit.disabled = true; }
    if (busy) { busy.hidden = false; }
    fetch(form.getAttribute("action"), {
      method: "POST",
      body: data,
      credentials: "same-origin",
      headers: { "Accept": "application/json", "X-CSRF-Token": token.value }
    }).then(function (response) {
      var type = response.headers.get("Content-Type") || "";
      if (type.indexOf("application/json") === -1) {
        throw new Error("status " + response.status);
      }
      return response.json().then(function (body) {
        showResult(body, !response.ok);
        if ((body.sources || []).length) { refresh(); }
      });
    }).catch(function () {
      showResult({ message: "The upload failed. Check your connection, reload the page and try again." }, true);
    }).then(function () {
      if (submit) { submit.disabled = false; }
      if (busy) { busy.hidden = true; }
      if (input) { input.value = ""; }
    });
  }

  if (form) {
    var zone = document.getElementById("dropzone");
    var input = document.getElementById("upload-files");
    form.addEventListener("submit", function (event) {
      // No file chosen: the browser's own check explains it.
      if (!input || !input.files || !input.files.length) { return; }
      event.preventDefault();
      upload(input.files);
    });
    if (zone) {
      ["dragenter", "dragover"].forEach(function (name) {
        zone.addEventListener(name, function (event) {
          event.preventDefault();
          zone.classList.add("is-dragover");
        });
      });
      ["dragleave", "dragend"].forEach(function (name) {
        zone.addEventListener(name, function () { zone.classList.remove("is-dragover"); });
      });
      zone.addEventListener("drop", function (event) {
        event.preventDefault();
        zone.classList.remove("is-dragover");
        if (event.dataTransfer && event.dataTransfer.files) { upload(event.dataTransfer.files); }
      });
      // A file dropped just beside the zone would replace the page with the file: ignore it instead.
      ["dragover", "drop"].forEach(function (name) {
        window.addEventListener(name, function (event) {
          if (!zone.contains(event.target)) { event.preventDefault(); }
        });
      });
    }
  }

  var box = sourcesBox();
  if (box && box.getAttribute("data-active") === "true") {
    // The page keeps itself current: the "Refresh" hint is for visitors without JavaScript.
    var hint = document.getElementById("sources-refresh");
    if (hint) { hint.hidden = true; }
    schedule();
  }
})();

// Inbox and transcript: live updates. The server's SSE stream says when something changed; the page fetches
// itself and swaps the list (or transcript) in place, so nothing is reloaded and typed replies are kept.
(function () {
  "use strict";
  var live = document.querySelector("[data-live]");
  if (!live || !window.EventSource) { return; }
  var targetId = live.getAttribute("data-live-target");
  var busy = false;
  function refresh() {
    if (busy) { return; }
    busy = true;
    fetch(window.location.href, { credentials: "same-origin", headers: { "Accept": "text/html" } })
      .then(function (r) { return r.ok ? r.text() : null; })
      .then(function (html) {
        if (!html) { return; }
        var doc = new DOMParser().parseFromString(html, "text/html");
        var fresh = doc.getElementById(targetId);
        var current = document.getElementById(targetId);
        if (fresh && current) {
          current.innerHTML = fresh.innerHTML;
          current.setAttribute("data-updated", String(Date.now()));
        }
      })
      .catch(function () {})
      .then(function () { busy = false; });
  }
  var source = new EventSource(live.getAttribute("data-live"));
  source.addEventListener("changed", refresh);
})();

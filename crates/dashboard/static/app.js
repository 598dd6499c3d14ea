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

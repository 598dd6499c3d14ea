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
})();

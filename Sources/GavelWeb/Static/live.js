// Re-reads the dashboard's live panel every few seconds and swaps it in place.
// A 401 (the session ended) reloads the page, which then shows the sign-in form.
(function () {
  "use strict";
  var panel = document.getElementById("live");
  if (!panel) { return; }
  var source = panel.getAttribute("data-src");
  var every = parseInt(panel.getAttribute("data-refresh-ms"), 10) || 2000;

  function refresh() {
    fetch(source, { credentials: "same-origin", cache: "no-store" })
      .then(function (response) {
        if (response.status === 401) { window.location.reload(); return null; }
        return response.ok ? response.text() : null;
      })
      .then(function (html) {
        if (html) {
          panel.innerHTML = html;
          panel.setAttribute("data-refreshed", String((parseInt(panel.getAttribute("data-refreshed"), 10) || 0) + 1));
        }
      })
      .catch(function () { /* the next tick tries again */ })
      .then(function () { window.setTimeout(refresh, every); });
  }
  window.setTimeout(refresh, every);
})();

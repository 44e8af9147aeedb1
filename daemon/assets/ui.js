// kubemedic web UI: draws the causal graph with the bundled Mermaid and follows the bus.
// No inline scripts (the pages' Content-Security-Policy forbids them); nothing from the
// network but this daemon.
"use strict";

(function () {
  const graphs = document.querySelectorAll("pre.mermaid");
  if (graphs.length > 0) {
    const s = document.createElement("script");
    s.src = "/ui/assets/mermaid.js";
    s.onload = function () {
      try {
        // strict: labels are text, never HTML, and click handlers are off.
        window.mermaid.initialize({ startOnLoad: false, securityLevel: "strict", theme: "neutral" });
        window.mermaid
          .run({ nodes: graphs })
          .then(function () { document.body.dataset.graph = "rendered"; })
          .catch(function (e) { document.body.dataset.graph = "failed"; console.error(e); });
      } catch (e) {
        document.body.dataset.graph = "failed";
        console.error(e);
      }
    };
    s.onerror = function () { document.body.dataset.graph = "unavailable"; };
    document.head.appendChild(s);
  }

  if (!window.EventSource || document.querySelector("#sign-in")) return;
  const lists = document.querySelector("#lists[data-live]");
  const proposal = document.querySelector("[data-watch-proposal]");
  const incident = document.querySelector("[data-watch-incident]");
  if (!lists && !proposal && !incident) return;
  const events = new EventSource("/ui/events");
  const live = document.querySelector("#live");
  events.onopen = function () { if (live) live.hidden = false; };
  events.onerror = function () { if (live) live.hidden = true; };
  let pending = false;
  events.addEventListener("change", function (e) {
    let change = {};
    try { change = JSON.parse(e.data); } catch (_) { /* a lag marker: refresh */ }
    if (lists && !pending) {
      pending = true;
      fetch(lists.dataset.live, { credentials: "same-origin" })
        .then(function (r) { return r.ok ? r.text() : Promise.reject(r.status); })
        .then(function (html) { lists.innerHTML = html; })
        .catch(function () {})
        .finally(function () { pending = false; });
    }
    if (proposal && (!change.id || change.id === proposal.dataset.watchProposal)) location.reload();
    if (incident && (!change.id || change.incident_id === incident.dataset.watchIncident)) location.reload();
  });
})();

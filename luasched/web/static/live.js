// Live counts for the overview over Server-Sent Events (/events): no polling, no library.
(function () {
  "use strict";
  var script = document.currentScript;
  var root = script.src.replace(/\/static\/live\.js.*$/, "");
  var state = document.getElementById("live-state");
  var banner = document.getElementById("outage");
  var source = new EventSource(root + "/events");
  source.addEventListener("counts", function (event) {
    var data = JSON.parse(event.data);
    document.querySelectorAll("[data-count]").forEach(function (cell) {
      var name = cell.getAttribute("data-count");
      if (name in data.counts) { cell.textContent = String(data.counts[name]); }
    });
    var body = document.querySelector("#queues tbody");
    Object.keys(data.queues).sort().forEach(function (queue) {
      var cell = document.querySelector('[data-queue="' + CSS.escape(queue) + '"]');
      if (!cell && body) {
        var row = document.createElement("tr");
        var name = document.createElement("td");
        name.textContent = queue;
        cell = document.createElement("td");
        cell.setAttribute("data-queue", queue);
        row.appendChild(name);
        row.appendChild(cell);
        body.appendChild(row);
      }
      if (cell) { cell.textContent = String(data.queues[queue]); }
    });
    banner.hidden = true;
    state.textContent = "updated " + new Date().toLocaleTimeString();
  });
  source.addEventListener("outage", function () { banner.hidden = false; state.textContent = "Redis unavailable"; });
  source.onerror = function () { state.textContent = "reconnecting"; };
})();

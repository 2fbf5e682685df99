// Live updates for the dashboard. Pages are whole without this script; it
// only keeps a runs list and a running run's output current. Text from
// the server is written as text, never parsed as HTML, except the runs
// list's rows, which roost rendered and escaped itself.
(function () {
  "use strict";

  var rows = document.getElementById("run-rows");
  var table = document.getElementById("runs");
  if (rows && table && table.dataset.live) {
    var list = new EventSource(table.dataset.live);
    list.addEventListener("rows", function (event) {
      rows.innerHTML = event.data;
      var none = document.getElementById("no-runs");
      if (none && rows.children.length > 0) none.hidden = true;
    });
  }

  var stdout = document.getElementById("stdout");
  if (!stdout || !stdout.dataset.live) return;
  var panes = { stdout: stdout, stderr: document.getElementById("stderr") };
  var follow = new EventSource(stdout.dataset.live);
  var setText = function (id, text) {
    var node = document.getElementById(id);
    if (node) node.textContent = text;
  };
  var showStatus = function (run) {
    var badge = document.getElementById("run-status");
    if (badge) {
      badge.textContent = run.status;
      badge.className = "status status-" + run.status;
    }
    if (run.started) setText("run-started", run.started);
    if (run.finished) setText("run-finished", run.finished);
    if (run.duration) setText("run-duration", run.duration);
    if (run.exit_code) setText("run-exit", run.exit_code);
    if (run.error) {
      setText("run-error", run.error);
      var section = document.getElementById("error-section");
      if (section) section.hidden = false;
    }
  };
  follow.addEventListener("status", function (event) {
    showStatus(JSON.parse(event.data));
  });
  follow.addEventListener("output", function (event) {
    var chunk = JSON.parse(event.data);
    var pane = panes[chunk.stream];
    if (!pane) return;
    // The page already shows the output so far; the stream starts again
    // from its beginning (offset 0), or replaces it after a masking change.
    if (chunk.reset || chunk.offset === 0) pane.textContent = chunk.text;
    else pane.textContent += chunk.text;
  });
  follow.addEventListener("end", function (event) {
    showStatus(JSON.parse(event.data));
    var note = document.getElementById("live-note");
    if (note) note.hidden = true;
    follow.close();
  });
})();

// The batch page's script: while the batch runs, asks for its progress every half second and
// moves the progress bar, the counts and the per-row report on (every value set as text).
// Without it the page reloads itself every few seconds instead (a <noscript> refresh).
(function () {
  'use strict';
  var section = document.getElementById('batch');
  if (!section || section.getAttribute('data-running') !== 'true') return;
  var id = section.getAttribute('data-batch');
  var done = Number(section.getAttribute('data-done')) || 0;
  var body = document.querySelector('#batch-rows tbody');
  var text = function (elementId, value) {
    var element = document.getElementById(elementId);
    if (element) element.textContent = String(value);
  };
  var cell = function (row, content) {
    var td = document.createElement('td');
    if (content instanceof Node) td.appendChild(content); else td.textContent = content;
    row.appendChild(td);
  };
  var badge = function (ok) {
    var span = document.createElement('span');
    span.className = ok ? 'badge ok' : 'badge bad';
    span.textContent = ok ? 'Succeeded' : 'Failed';
    return span;
  };
  var add = function (item) {
    var row = document.createElement('tr');
    row.className = item.ok ? 'ok' : 'bad';
    cell(row, String(item.row));
    if (item.customerId) {
      var link = document.createElement('a');
      link.href = '/console/customers/' + encodeURIComponent(item.customerId);
      link.textContent = item.name;
      cell(row, link);
    } else {
      cell(row, item.name);
    }
    cell(row, badge(item.ok));
    cell(row, item.error || item.status || '');
    body.appendChild(row);
  };
  var poll = function () {
    fetch('/console/batches/' + encodeURIComponent(id) + '/progress?after=' + done, {
      credentials: 'same-origin',
      headers: { accept: 'application/json' }
    }).then(function (response) {
      if (!response.ok) throw new Error('progress: ' + response.status);
      return response.json();
    }).then(function (progress) {
      progress.rows.forEach(add);
      done += progress.rows.length;
      var bar = document.getElementById('batch-progress');
      bar.max = progress.total;
      bar.value = progress.processed;
      bar.textContent = progress.percent + '%';
      text('batch-processed', progress.processed);
      text('batch-total', progress.total);
      text('batch-percent', progress.percent);
      text('batch-succeeded', progress.succeeded);
      text('batch-failed', progress.failed);
      text('batch-state', progress.label);
      document.getElementById('batch-failures').hidden = progress.failed === 0;
      if (progress.state === 'running' || done < progress.processed) {
        setTimeout(poll, 500);
      } else {
        section.setAttribute('data-running', 'false');
      }
    }).catch(function () {
      // The agent restarting or the network gone: try again a little later.
      setTimeout(poll, 2000);
    });
  };
  setTimeout(poll, 300);
})();

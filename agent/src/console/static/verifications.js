// The verification page's script: while the request waits for the holder, asks the agent
// for the result (a long poll: the agent answers when the outcome is recorded, or after 25 s,
// and the script asks again), then shows it: the disclosed values or the reasons it failed
// (every value set as text). Without it the page reloads itself every few seconds instead.
(function () {
  'use strict';
  var section = document.getElementById('verification');
  if (!section || section.getAttribute('data-pending') !== 'true') return;
  var id = section.getAttribute('data-id');
  var show = function (result) {
    var state = document.getElementById('verification-state');
    state.textContent = result.label;
    state.className = 'badge ' + result.state;
    document.getElementById('verification-waiting').hidden = true;
    document.getElementById('verification-request').hidden = true;
    document.getElementById('verification-completed').textContent = result.completed ? 'at ' + result.completed : '';
    var values = document.getElementById('verification-values');
    values.textContent = '';
    result.disclosed.forEach(function (pair) {
      var dt = document.createElement('dt');
      dt.textContent = pair[0];
      var dd = document.createElement('dd');
      dd.textContent = pair[1];
      values.appendChild(dt);
      values.appendChild(dd);
    });
    document.getElementById('verification-disclosed').hidden = result.disclosed.length === 0;
    var reasons = document.getElementById('verification-reasons');
    reasons.textContent = '';
    result.reasons.forEach(function (reason) {
      var li = document.createElement('li');
      li.textContent = reason;
      reasons.appendChild(li);
    });
    document.getElementById('verification-failed').hidden = result.reasons.length === 0;
    section.setAttribute('data-pending', 'false');
  };
  var ask = function () {
    fetch('/console/verifications/' + encodeURIComponent(id) + '/result?wait=25', {
      credentials: 'same-origin',
      headers: { accept: 'application/json' }
    }).then(function (response) {
      if (!response.ok) throw new Error('result: ' + response.status);
      return response.json();
    }).then(function (result) {
      if (result.state === 'pending') ask(); else show(result);
    }).catch(function () {
      // The agent restarting or the network gone: ask again a little later.
      setTimeout(ask, 2000);
    });
  };
  ask();
})();

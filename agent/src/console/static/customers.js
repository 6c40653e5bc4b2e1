// The onboard form: only the medium's fields and the chosen template's values are shown.
// Without the script every field shows, and the server takes only what applies.
(function () {
  'use strict';
  function medium() {
    var checked = document.querySelector('input[data-medium]:checked');
    return checked ? checked.value : 'email';
  }
  function update() {
    var m = medium();
    document.querySelectorAll('[data-for-medium]').forEach(function (el) {
      el.hidden = el.getAttribute('data-for-medium') !== m;
    });
    var choice = document.querySelector('[data-template-choice]');
    var chosen = choice ? choice.value : '';
    document.querySelectorAll('[data-template]').forEach(function (el) {
      el.hidden = el.getAttribute('data-template') !== chosen;
    });
  }
  document.addEventListener('change', function (event) {
    if (event.target.matches('input[data-medium], [data-template-choice]')) update();
  });
  update();
})();

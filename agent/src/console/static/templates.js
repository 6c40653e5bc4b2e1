// The template form's script: "Add a field" appends an empty custom field row (the form
// works without it, with its rows as served).
(function () {
  'use strict';
  var button = document.getElementById('add-field');
  var body = document.querySelector('#custom-fields tbody');
  if (!button || !body) return;
  var max = parseInt(button.getAttribute('data-max'), 10) || 50;
  button.hidden = false;
  button.addEventListener('click', function () {
    var index = body.rows.length;
    if (index >= max) {
      button.disabled = true;
      return;
    }
    var row = body.insertRow();
    [['field_name_', 'Field name ', 64], ['field_description_', 'Description ', 200]].forEach(function (spec) {
      var cell = row.insertCell();
      var input = document.createElement('input');
      input.type = 'text';
      input.id = spec[0] + index;
      input.name = spec[0] + index;
      input.maxLength = spec[2];
      input.setAttribute('aria-label', spec[1] + (index + 1));
      cell.appendChild(input);
    });
    row.cells[0].firstChild.focus();
    if (body.rows.length >= max) button.disabled = true;
  });
})();

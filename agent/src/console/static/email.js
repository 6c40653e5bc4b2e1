// The email template form's script: reads the chosen logo file into the form's hidden
// `logo` field as a data URL (the server checks its type and size).
(function () {
  'use strict';
  var file = document.getElementById('logo_file');
  var field = document.getElementById('logo');
  if (!file || !field) return;
  file.addEventListener('change', function () {
    field.value = '';
    var chosen = file.files && file.files[0];
    if (!chosen) return;
    var reader = new FileReader();
    reader.addEventListener('load', function () {
      field.value = String(reader.result);
    });
    reader.readAsDataURL(chosen);
  });
})();

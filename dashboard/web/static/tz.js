// The login form sends the browser's time zone: the pages then show times as the clock on the wall.
"use strict";
(function () {
  const field = document.getElementById("tz");
  try {
    if (field) field.value = Intl.DateTimeFormat().resolvedOptions().timeZone || "";
  } catch (e) { /* an old browser: the account stays on UTC until set in Settings */ }
})();

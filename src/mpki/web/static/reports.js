// Reports page: htmx shows a report made now in the page; CSV and JSON are downloads, so those submit the
// form normally. A 400 (a bad period) is swapped in too, so its message shows beside the form.
"use strict";
document.addEventListener("htmx:confirm", (event) => {
  const form = event.target.closest && event.target.closest("#report-form");
  if (form && form.elements.format.value !== "html") {
    event.preventDefault();
    form.submit();
  }
});
document.addEventListener("htmx:beforeSwap", (event) => {
  const target = event.detail.target;
  if (target && target.id === "report-result" && event.detail.xhr.status === 400) {
    event.detail.shouldSwap = true;
    event.detail.isError = false;
  }
});
document.addEventListener("htmx:afterSwap", (event) => {
  if (event.detail.target && event.detail.target.id === "report-result") {
    const heading = document.getElementById("report-heading");
    if (heading) heading.focus();
  }
});

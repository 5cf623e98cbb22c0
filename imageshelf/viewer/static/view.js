// imageshelf view: keyboard steps between images (← →) and pages. No build step.
document.addEventListener("keydown", (event) => {
  if (event.target.closest("input, select, textarea") || event.metaKey || event.ctrlKey) return;
  const rel = { ArrowLeft: "prev", ArrowRight: "next" }[event.key];
  const link = rel && document.querySelector(`a[rel="${rel}"]`);
  if (link) window.location.href = link.href;
});

// A paired image over the picture (a mask): its checkbox shows or hides it, its slider
// sets its opacity. The overlay is named by number (data-overlay), never by its role.
function overlayOf(control) {
  return document.getElementById(control.dataset.overlay);
}
document.addEventListener("change", (event) => {
  const toggle = event.target.closest("input.overlay-toggle");
  const overlay = toggle && overlayOf(toggle);
  if (overlay) overlay.setAttribute("visibility", toggle.checked ? "visible" : "hidden");
});
document.addEventListener("input", (event) => {
  const slider = event.target.closest("input.overlay-opacity");
  const overlay = slider && overlayOf(slider);
  if (overlay) overlay.setAttribute("opacity", slider.value);
});

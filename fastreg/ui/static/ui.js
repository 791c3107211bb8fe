// fastreg ui: only enhancements; every page works without this file.
"use strict";

// Copy buttons beside the commands.
document.addEventListener("click", (ev) => {
  const button = ev.target.closest("button.copy");
  if (!button || !navigator.clipboard) return;
  navigator.clipboard.writeText(button.dataset.copy).then(() => {
    const was = button.textContent;
    button.textContent = "copied";
    setTimeout(() => { button.textContent = was; }, 1200);
  });
});

// Keyboard: left/right arrows to the previous/next file or page, u (or Backspace) up a folder.
document.addEventListener("keydown", (ev) => {
  if (ev.altKey || ev.ctrlKey || ev.metaKey || ev.target.closest("input, textarea, select")) return;
  const rel = { ArrowLeft: "prev", ArrowRight: "next", u: "up", Backspace: "up" }[ev.key];
  const link = rel && document.querySelector(`a[rel~="${rel}"]`);
  if (link) {
    ev.preventDefault();
    link.click();
  }
});

// A thumbnail that could not be made (not an image Pillow reads) gives way to a "no preview" mark.
document.addEventListener("error", (ev) => {
  if (ev.target.tagName === "IMG") ev.target.classList.add("broken");
}, true);

// tagarchive serve: the page's only script, served from this origin (no inline script: CSP).
// It sets the report's colours, and keeps a tag's page current: every few seconds it asks the
// server for the tag's newest snapshot and, when that changed, swaps in the new section.
"use strict";

(() => {
  // The report's cards and legend carry their colour as data-style (the CSP forbids style
  // attributes); setting it through the CSSOM is allowed.
  const applyStyles = (root) => {
    for (const el of root.querySelectorAll("[data-style]")) {
      el.style.cssText = el.dataset.style;
    }
  };
  applyStyles(document);

  const live = document.getElementById("live");
  if (!live) {
    return;
  }
  const status = document.getElementById("live-status");
  const every = Math.max(0.2, Number(document.body.dataset.refresh) || 5) * 1000;
  const tag = encodeURIComponent(live.dataset.tag);
  let busy = false;

  const say = (text, problem) => {
    status.textContent = text;
    status.classList.toggle("problem", Boolean(problem));
  };
  const clock = () => new Date().toISOString().slice(11, 19) + " UTC";

  const check = async () => {
    if (busy) {
      return;
    }
    busy = true;
    try {
      const answer = await fetch(`/api/newest?tag=${tag}`, { cache: "no-store" });
      if (!answer.ok) {
        throw new Error(`the server answered ${answer.status}`);
      }
      const newest = await answer.json();
      if ((newest.newest || "") !== live.dataset.newest ||
          String(newest.snapshots) !== live.dataset.snapshots) {
        const reply = await fetch(`/api/section?tag=${tag}`, { cache: "no-store" });
        if (!reply.ok) {
          throw new Error(`the server answered ${reply.status}`);
        }
        const section = await reply.json();
        live.innerHTML = section.html;
        applyStyles(live);
        live.dataset.newest = section.newest || "";
        live.dataset.snapshots = String(section.snapshots);
        live.dataset.generation = String(section.generation);
        say(`${section.snapshots.toLocaleString("en")} snapshots, the newest ` +
            `${section.newest ? section.newest.replace("T", " ").slice(0, 19) + " UTC" : "–"}` +
            ` · updated at ${clock()}`, false);
      }
    } catch (error) {
      say(`Not updated (${error.message}) · last tried at ${clock()}`, true);
    } finally {
      busy = false;
    }
  };
  setInterval(check, every);
})();

// ==UserScript==
// @name         Auto-fix with Fixbox
// @namespace    https://github.com/fixbox-dev/fixbox
// @version      0.1.0
// @description  Adds "Auto-fix with Fixbox" to GitHub issues: it opens the issue in the Fixbox app on this machine, where a local model fixes it in a sandbox and nothing is pushed before you review it.
// @match        https://github.com/*/*/issues/*
// @grant        none
// @run-at       document-idle
// ==/UserScript==

// Also the content script of the browser extension beside it (manifest.json). It reads only the page's
// address: the link carries the owner, the repository and the issue number, nothing of the page's text.
(() => {
  "use strict";
  const BUTTON = "fixbox-autofix";
  // Where the button goes, first match wins: the header actions of GitHub's issue viewer, those of the
  // older issue page, then beside the title.
  const ACTIONS = ['[data-testid="issue-header"] [data-component="PH_Actions"]', ".gh-header-actions"];
  const TITLES = ['[data-testid="issue-title"]', ".js-issue-title"];

  /** The issue the address names: `/owner/repo/issues/123`. */
  function issueAt(path) {
    const found = /^\/([A-Za-z0-9-]+)\/([A-Za-z0-9_.-]+)\/issues\/(\d+)\/?$/.exec(path);
    return found ? { repo: `${found[1]}/${found[2]}`, number: found[3] } : null;
  }

  function place(button) {
    for (const css of ACTIONS) {
      const actions = document.querySelector(css);
      if (actions) {
        actions.prepend(button);
        return true;
      }
    }
    for (const css of TITLES) {
      const title = document.querySelector(css);
      if (title && title.parentElement) {
        title.parentElement.append(button);
        return true;
      }
    }
    return false;
  }

  function update() {
    const issue = issueAt(location.pathname);
    let button = document.getElementById(BUTTON);
    if (!issue) return button?.remove();
    const href = `fixbox://fix?repo=${issue.repo}&issue=${issue.number}`;
    if (button) {
      button.href = href;
      return;
    }
    button = document.createElement("a");
    button.id = BUTTON;
    button.href = href;
    button.className = "btn btn-sm Button Button--secondary Button--small";
    button.setAttribute("role", "button");
    button.textContent = "Auto-fix with Fixbox";
    button.title =
      "Open this issue in Fixbox on this machine: a local model fixes it in a sandbox, and you review the change before a pull request is opened";
    button.style.marginRight = "8px";
    place(button);
  }

  // GitHub changes pages without reloading them: look again after the page changes, once a frame.
  let queued = false;
  new MutationObserver(() => {
    if (queued) return;
    queued = true;
    requestAnimationFrame(() => {
      queued = false;
      update();
    });
  }).observe(document.body, { childList: true, subtree: true });
  document.addEventListener("turbo:load", update);
  window.addEventListener("popstate", update);
  update();
})();

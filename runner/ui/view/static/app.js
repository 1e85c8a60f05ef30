// anytime view: the router: which page the address after # shows (load order: index.html)
// Every text from a ledger or a transcript goes in as a text node (never as HTML).
"use strict";

// ---- routing ----------------------------------------------------------------------------------

async function route() {
  routeSerial += 1;
  const serial = routeSerial;
  clearTimeout(pollTimer);
  setLive("");
  banner.hidden = true;
  const raw = location.hash.replace(/^#/, "") || "/";
  const [path, search] = raw.split("?");
  const params = new URLSearchParams(search || "");
  const parts = path.split("/").filter(Boolean).map(decodeURIComponent);
  document.getElementById("nav-runs").classList.toggle("active", parts[0] !== "compare");
  document.getElementById("nav-compare").classList.toggle("active", parts[0] === "compare");
  try {
    if (!parts.length) await runsPage(serial);
    else if (parts[0] === "run" && parts.length === 2) await runPage(serial, parts[1]);
    else if (parts[0] === "run" && parts[2] === "problems") await problemsPage(serial, parts[1], params);
    else if (parts[0] === "run" && parts[2] === "job" && parts[3]) await jobPage(serial, parts[1], parts[3]);
    else if (parts[0] === "compare") await comparePage(serial, params);
    else showError(`There is no page at #${raw}.`);
  } catch (err) {
    if (serial === routeSerial) showError(err.message);
  }
  // the page for this address is drawn (tests wait on it; a later live refresh redraws in place)
  if (serial === routeSerial) view.dataset.loaded = location.hash;
}

window.addEventListener("hashchange", route);
route();

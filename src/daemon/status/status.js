// The status page: everything is built with textContent (never innerHTML), so no value from the
// cloud or the policy folder is ever parsed as markup. Filtered, sorted and paged here: the table
// holds at most PAGE rows whatever the estate's size.
"use strict";
(function () {
  const PAGE = 100;
  let data = null, rows = [], sortKey = "id", sortDir = 1, page = 0;
  const $ = (id) => document.getElementById(id);
  const el = (tag, text, cls) => {
    const e = document.createElement(tag);
    if (text !== undefined && text !== null) e.textContent = String(text);
    if (cls) e.className = cls;
    return e;
  };
  const file = (g) => (g.source || "").replace(/:\d+:\d+$/, "");
  const who = (c) => (c && c.changedBy) ? [c.changedBy.type, c.changedBy.name].filter(Boolean).join(" ") : "";
  const corr = (g) => g.lastCorrection ? `${g.lastCorrection.time} (${g.lastCorrection.cause}${who(g.lastCorrection) ? ", " + who(g.lastCorrection) : ""})` : "";
  const iso = (g) => g.isolation ? g.isolation.status : "not checked";
  const isoDetail = (i) => !i ? "not checked" : [i.status + ` (${i.members} members)`]
    .concat(i.paths.map((p) => `path: ${p.from} -> ${p.to} on ${p.protocol} ${p.ports} via ${p.group}${p.ruleId ? " rule " + p.ruleId : ""}`))
    .concat(i.unknown.map((u) => `unknown: ${u.reason}`)).join("; ");
  const value = (g, k) => k === "lastCorrection" ? corr(g) : k === "isolation" ? iso(g) : (g[k] === null || g[k] === undefined ? "" : String(g[k]));

  function options(id, values) {
    const s = $(id);
    const keep = s.value;
    while (s.options.length > 1) s.remove(1);
    [...new Set(values)].sort().forEach((v) => { const o = el("option", v === "" ? "(default)" : v); o.value = "=" + v; s.appendChild(o); });
    s.value = keep;
  }

  // 3725 -> "1h 2m 5s": ages and promises as people read them.
  const span = (secs) => {
    if (secs === null || secs === undefined) return "-";
    let t = Math.round(secs), out = [];
    [["d", 86400], ["h", 3600], ["m", 60]].forEach(([u, n]) => { if (t >= n) { out.push(Math.floor(t / n) + u); t %= n; } });
    if (!out.length && secs < 10) return (Math.round(secs * 10) / 10) + "s";
    if (t || !out.length) out.push(t + "s");
    return out.join(" ");
  };

  function summary() {
    const s = data.summary, box = $("summary");
    box.replaceChildren();
    const card = (label, n, warn) => { const c = el("div", null, warn ? "card warn" : "card"); c.appendChild(el("b", n)); c.appendChild(el("span", label)); box.appendChild(c); return c; };
    card("governed", s.governed); card("in sync", s.inSync); card("drifted", s.drifted, s.drifted > 0);
    card(`held (open ${s.heldBy.open}, max-changes ${s.heldBy["max-changes"]}, observe ${s.heldBy.observe}, fight ${s.heldBy.fight})`, s.held, s.held > 0);
    card("failing", s.failing, s.failing > 0); card("not read yet", s.unknown);
    card("not isolated / isolation unknown", `${s.notIsolated} / ${s.isolationUnknown}`, s.notIsolated + s.isolationUnknown > 0);
    card("ungoverned", s.ungoverned === null ? "-" : s.ungoverned, s.ungoverned > 0);
    const v = s.verification;
    card(`oldest verification (promise ${span(v.promiseSeconds)})`, span(v.ageSeconds), v.beyondPromise === true);
    const meta = $("meta");
    meta.replaceChildren();
    const part = (label, text, warn) => { const p = el("span", null, warn ? "part warn" : "part"); if (label) p.appendChild(el("span", label + " ", "label")); p.appendChild(el("span", text)); meta.appendChild(p); };
    part("revision", (data.revision || "-") + (data.commit ? " (commit " + data.commit + ")" : ""));
    part("", s.shard);
    const lp = s.lastPass;
    part("last pass", lp ? `${lp.time} ${lp.trigger}, ${lp.outcome}, ${span(lp.durationSeconds)}` : "-", lp && lp.outcome !== "success");
    Object.entries(s.events).forEach(([k, e]) => part(`events (${k})`, e.reason ? `${e.state}: ${e.reason}` : e.state, e.state === "unavailable"));
  }

  function filtered() {
    // Option values are "=" + the value ("" is "all"), so the default account ("") is selectable.
    const pick = (id) => { const v = $(id).value; return v ? v.slice(1) : null; };
    const f = { state: pick("f-state"), account: pick("f-account"), region: pick("f-region"), file: pick("f-file"), text: $("f-text").value.toLowerCase() };
    const is = (want, got) => want === null || want === got;
    return data.groups.filter((g) =>
      is(f.state, g.state) && is(f.account, g.account) && is(f.region, g.region) && is(f.file, file(g)) &&
      (!f.text || g.id.toLowerCase().includes(f.text) || (g.name || "").toLowerCase().includes(f.text)));
  }

  function render() {
    rows = filtered();
    rows.sort((a, b) => { const x = value(a, sortKey), y = value(b, sortKey); return x < y ? -sortDir : x > y ? sortDir : 0; });
    const pages = Math.max(1, Math.ceil(rows.length / PAGE));
    page = Math.min(page, pages - 1);
    const body = $("groups").tBodies[0];
    const frag = document.createDocumentFragment();
    rows.slice(page * PAGE, page * PAGE + PAGE).forEach((g) => {
      const tr = el("tr");
      const link = el("a", g.id);
      link.href = "#group=" + encodeURIComponent(JSON.stringify([g.account, g.region, g.id]));
      const idCell = el("td"); idCell.appendChild(link); tr.appendChild(idCell);
      ["name", "account", "region", "declared", "observed", "mode"].forEach((k) => tr.appendChild(el("td", value(g, k))));
      tr.appendChild(el("td", g.state, "state-" + g.state));
      ["lastVerified", "lastCorrection", "isolation", "source"].forEach((k) => tr.appendChild(el("td", value(g, k))));
      frag.appendChild(tr);
    });
    body.replaceChildren(frag);
    $("count").textContent = `${rows.length} of ${data.groups.length} groups`;
    $("page").textContent = `page ${page + 1} of ${pages}`;
    $("prev").disabled = page === 0; $("next").disabled = page >= pages - 1;
    document.querySelectorAll("th[data-key]").forEach((th) => { th.classList.toggle("asc", th.dataset.key === sortKey && sortDir > 0); th.classList.toggle("desc", th.dataset.key === sortKey && sortDir < 0); });
  }

  async function showGroup(key) {
    $("list").hidden = true; $("summary").hidden = true; $("group").hidden = false;
    const q = new URLSearchParams({ account: key[0], region: key[1], id: key[2] });
    const r = await fetch("status/group.json?" + q.toString());
    if (!r.ok) { $("g-title").textContent = "no such governed group"; return; }
    const d = await r.json(), g = d.group;
    $("g-title").textContent = `${g.id}${g.name ? " " + g.name : ""} (${g.account ? g.account + "/" : ""}${g.region})`;
    const dl = $("g-facts"); dl.replaceChildren();
    [["state", g.state], ["declared", g.declared], ["observed", g.observed || ""], ["mode", g.mode], ["last verified", g.lastVerified || ""],
     ["last correction", corr(g)], ["isolation", isoDetail(g.isolation)], ["source", g.source]].forEach(([k, v]) => { dl.appendChild(el("dt", k)); dl.appendChild(el("dd", v)); });
    const body = $("history").tBodies[0], frag = document.createDocumentFragment();
    d.history.forEach((h) => { const tr = el("tr"); [h.time, h.what, h.detail, who(h)].forEach((v) => tr.appendChild(el("td", v))); frag.appendChild(tr); });
    if (!d.history.length) { const tr = el("tr"); tr.appendChild(el("td", "nothing yet")); frag.appendChild(tr); }
    body.replaceChildren(frag);
  }

  function route() {
    const m = location.hash.match(/^#group=(.*)$/);
    if (m) {
      try { const key = JSON.parse(decodeURIComponent(m[1])); if (Array.isArray(key) && key.length === 3) { showGroup(key.map(String)); return; } } catch (e) { /* fall through to the list */ }
    }
    $("group").hidden = true; $("list").hidden = false; $("summary").hidden = false;
  }

  async function load() {
    const r = await fetch("status.json");
    data = await r.json();
    summary();
    options("f-state", data.groups.map((g) => g.state));
    options("f-account", data.groups.map((g) => g.account));
    options("f-region", data.groups.map((g) => g.region));
    options("f-file", data.groups.map(file));
    render();
    // The first table on screen, for the Performance API (docs/status.md's figures).
    performance.mark("sgpolicy-table-rendered");
    document.body.dataset.loaded = "true";
  }

  // Anything the Content-Security-Policy blocked is counted where a test (or a person with the
  // developer tools) can see it: the page is meant to need no exception.
  document.addEventListener("securitypolicyviolation", () => {
    document.body.dataset.cspViolations = String(Number(document.body.dataset.cspViolations || 0) + 1);
  });

  document.addEventListener("DOMContentLoaded", () => {
    ["f-state", "f-account", "f-region", "f-file"].forEach((id) => $(id).addEventListener("change", () => { page = 0; render(); }));
    $("f-text").addEventListener("input", () => { page = 0; render(); });
    $("prev").addEventListener("click", () => { page -= 1; render(); });
    $("next").addEventListener("click", () => { page += 1; render(); });
    $("back").addEventListener("click", (e) => { e.preventDefault(); history.pushState(null, "", location.pathname); route(); });
    document.querySelectorAll("th[data-key]").forEach((th) => th.addEventListener("click", () => {
      if (sortKey === th.dataset.key) sortDir = -sortDir; else { sortKey = th.dataset.key; sortDir = 1; }
      render();
    }));
    window.addEventListener("hashchange", route);
    load().then(route);
  });
})();

// The Consort board: one page, drawn from the daemon's /api (the same answers the CLI gets).
// Everything that comes from a job file or a partner is put in the page as text (textContent),
// never as HTML; the only markup inserted is the SVG charts this daemon drew itself.
"use strict";

const CSRF = document.querySelector('meta[name="csrf"]').content;
const READ_ONLY = document.querySelector('meta[name="read-only"]').content === "true";
const main = document.getElementById("main");

// What tests and curious users can read: when the page loaded and how many live updates it
// applied since (a reload would start both again).
window.consortBoard = { loadedAt: Date.now(), updates: 0 };

// ---------- helpers ----------

/** An element with attributes and children (strings become text nodes). */
function el(tag, attrs, ...children) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === undefined || v === null || v === false) continue;
    if (k === "class") e.className = v;
    else if (k.startsWith("on")) e.addEventListener(k.slice(2), v);
    else e.setAttribute(k, v === true ? "" : String(v));
  }
  for (const c of children.flat(Infinity)) {
    if (c === undefined || c === null || c === false) continue;
    e.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return e;
}

function badge(status) {
  return el("span", { class: "badge st-" + status, "data-state": status }, status);
}

function when(ms) {
  if (!ms) return "";
  const d = new Date(ms);
  return d.toISOString().replace("T", " ").slice(0, 19);
}

/** A metric value: integers as they are, others to 4 decimals. */
function num(v) {
  const n = Number(v);
  return Number.isInteger(n) ? String(n) : n.toFixed(4);
}

function seconds(s) {
  if (s === undefined || s === null) return "";
  if (s < 1) return (s * 1000).toFixed(0) + " ms";
  if (s < 120) return s.toFixed(2) + " s";
  return (s / 60).toFixed(1) + " min";
}

/** A job's duration: from submission to its end, or until now while it runs. */
function jobDuration(job) {
  if (job.ended_at_ms) return Math.max(0, job.ended_at_ms - job.submitted_at_ms) / 1000;
  if (job.status === "running" || job.status === "pending") return (Date.now() - job.submitted_at_ms) / 1000;
  return null;
}

async function api(path) {
  const r = await fetch("/api" + path, { credentials: "same-origin" });
  const body = await r.json().catch(() => ({ error: r.statusText }));
  if (!r.ok) throw new Error(body.error || r.statusText);
  return body;
}

async function act(path, body) {
  const r = await fetch("/api" + path, {
    method: "POST",
    credentials: "same-origin",
    headers: { "Content-Type": "application/json", "X-Consort-Csrf": CSRF },
    body: JSON.stringify(body || {}),
  });
  const answer = await r.json().catch(() => ({ error: r.statusText }));
  if (!r.ok) throw new Error(answer.error || r.statusText);
  toast(answer.message || "done");
  return answer;
}

let toastTimer = null;
function toast(text, error) {
  const t = document.getElementById("toast");
  t.textContent = text;
  t.className = "toast" + (error ? " error" : "");
  clearTimeout(toastTimer);
  toastTimer = setTimeout(() => (t.className = "toast hidden"), 5000);
}

/** Dangerous actions clicked once, by action and page, until when a second click confirms:
 *  kept outside the buttons, which live updates redraw. */
const armed = new Map();

/** A button that acts (hidden on a read-only board); a dangerous one asks for a second
 *  click within 4 s. */
function actionButton(label, run, danger) {
  if (READ_ONLY) return null;
  const key = label + "@" + location.hash;
  const isArmed = () => (armed.get(key) || 0) > Date.now();
  const asking = label + "? Click again";
  const b = el("button", {
    class: danger ? "danger" : "",
    "data-action": label.toLowerCase().replace(/ /g, "-"),
    onclick: async () => {
      if (danger && !isArmed()) {
        armed.set(key, Date.now() + 4000);
        b.textContent = asking;
        setTimeout(() => { if (!isArmed() && b.isConnected) b.textContent = label; }, 4100);
        return;
      }
      armed.delete(key);
      b.textContent = label;
      b.disabled = true;
      try { await run(); } catch (e) { toast(label + ": " + e.message, true); } finally { b.disabled = false; }
    },
  }, danger && isArmed() ? asking : label);
  return b;
}

/** Loads an SVG this daemon drew into `holder`. */
async function loadSvg(holder, path) {
  try {
    const r = await fetch("/api" + path, { credentials: "same-origin" });
    if (!r.ok) {
      const body = await r.json().catch(() => ({ error: r.statusText }));
      holder.replaceChildren(el("p", { class: "error" }, body.error || r.statusText));
      return;
    }
    const doc = new DOMParser().parseFromString(await r.text(), "image/svg+xml");
    const svg = doc.documentElement;
    if (svg.nodeName !== "svg") throw new Error("not an SVG");
    holder.replaceChildren(document.importNode(svg, true));
  } catch (e) {
    holder.replaceChildren(el("p", { class: "error" }, "cannot draw: " + e.message));
  }
}

function failure(e) {
  main.replaceChildren(el("h1", {}, "Cannot show this"), el("p", { class: "error" }, e.message));
}

// ---------- live updates ----------

let source = null;
function follow(path, event, onData) {
  if (source) source.close();
  const live = document.getElementById("live");
  source = new EventSource("/api" + path);
  source.addEventListener(event, (m) => {
    live.className = "live on";
    try { onData(JSON.parse(m.data)); } catch (e) { console.error(e); }
  });
  source.onopen = () => (live.className = "live on");
  source.onerror = () => (live.className = "live off");
}

function unfollow() {
  if (source) source.close();
  source = null;
  document.getElementById("live").className = "live off";
}

// ---------- jobs ----------

const STATES = ["all", "pending", "running", "success", "failed", "canceled", "rejected"];

async function viewJobs(params) {
  const filter = params.get("status") || "all";
  const select = el("select", {
    id: "status-filter",
    onchange: (e) => (location.hash = "#/jobs" + (e.target.value === "all" ? "" : "?status=" + e.target.value)),
  }, STATES.map((s) => el("option", { value: s, selected: s === filter }, s)));
  const body = el("tbody");
  const table = el("table", { id: "jobs" },
    el("thead", {}, el("tr", {}, ["job", "name", "status", "initiator", "parties", "submitted", "duration"].map((h) => el("th", {}, h)))),
    body);
  main.replaceChildren(el("h1", {}, "Jobs"), el("div", { class: "toolbar" }, "status ", select), table);
  const draw = (jobs) => {
    const shown = jobs.filter((j) => filter === "all" || j.status === filter);
    body.replaceChildren(...shown.map((j) => {
      const parties = [...new Set(Object.values(j.parties || {}).flat())];
      return el("tr", { class: "clickable", "data-job": j.job_id, "data-status": j.status, onclick: () => (location.hash = "#/job/" + encodeURIComponent(j.job_id)) },
        el("td", {}, el("a", { href: "#/job/" + encodeURIComponent(j.job_id) }, j.job_id)),
        el("td", {}, j.name),
        el("td", {}, badge(j.status)),
        el("td", {}, j.initiator),
        el("td", {}, parties.join(", ")),
        el("td", {}, when(j.submitted_at_ms)),
        el("td", {}, j.ended_at_ms ? seconds(jobDuration(j)) : j.status === "running" || j.status === "pending" ? "running " + seconds(jobDuration(j)) : ""));
    }));
    if (!shown.length) body.replaceChildren(el("tr", {}, el("td", { colspan: 7, class: "muted" }, "no jobs" + (filter === "all" ? "" : " " + filter))));
  };
  draw((await api("/jobs")).jobs);
  follow("/events/jobs", "jobs", draw);
}

async function viewJob(id) {
  const job = await api("/jobs/" + encodeURIComponent(id));
  const seen = new Map(); // task → states seen by this page, in order
  const header = el("div");
  const dag = el("div", { class: "dag", id: "dag" });
  const tasks = el("tbody");
  const detail = el("div", { id: "task-detail" });
  const charts = el("div", { class: "charts", id: "charts" });
  const logs = el("div", { id: "logs" });
  let selected = null;
  let chartsFor = null;

  const parties = [...new Set(Object.values(job.parties || {}).flat())].sort();
  const drawHeader = (j) => {
    const actions = el("div", { class: "toolbar" },
      actionButton("Stop", () => act(`/jobs/${encodeURIComponent(id)}/stop`), true),
      actionButton("Rerun", () => act(`/jobs/${encodeURIComponent(id)}/rerun`)),
      j.status === "pending" ? actionButton("Approve", () => act(`/jobs/${encodeURIComponent(id)}/approve`)) : null,
      j.status === "pending" ? actionButton("Reject", () => act(`/jobs/${encodeURIComponent(id)}/reject`, { reason: prompt("Why?") || "rejected on the board" }), true) : null);
    header.replaceChildren(
      el("h1", { id: "job", "data-job": j.job_id, "data-status": j.status }, j.name || j.job_id, " ", badge(j.status)),
      el("dl", { class: "meta" },
        el("dt", {}, "job"), el("dd", {}, el("code", {}, j.job_id)),
        el("dt", {}, "initiator"), el("dd", {}, j.initiator),
        el("dt", {}, "roles"), el("dd", {}, Object.entries(j.parties || {}).map(([r, ps]) => r + ": " + ps.join(", ")).join(" · ")),
        el("dt", {}, "submitted"), el("dd", {}, when(j.submitted_at_ms)),
        el("dt", {}, "duration"), el("dd", {}, seconds(jobDuration(j)) || "…"),
        j.reason ? el("dt", {}, "reason") : null, j.reason ? el("dd", { class: "error" }, j.reason) : null),
      actions);
  };

  const drawTasks = (j) => {
    for (const t of j.tasks) {
      const s = seen.get(t.name) || [];
      if (s[s.length - 1] !== t.status) s.push(t.status);
      seen.set(t.name, s);
    }
    tasks.replaceChildren(...j.tasks.map((t) => el("tr", {
      class: "clickable" + (t.name === selected ? " selected" : ""),
      "data-task": t.name, "data-status": t.status, "data-seen": seen.get(t.name).join(" "),
      onclick: () => { selected = t.name; drawTasks(j); drawDetail(j); },
    },
    el("td", {}, t.name), el("td", {}, t.component), el("td", {}, badge(t.status)),
    parties.map((p) => {
      const r = t.parties[p];
      return el("td", { "data-party": p, "data-state": r ? r.state : "", "data-attempt": r ? r.attempt : "" },
        r ? [badge(r.state), " #" + r.attempt, r.elapsed_s !== null && r.elapsed_s !== undefined ? " " + seconds(r.elapsed_s) : ""] : "");
    }))));
  };

  const drawDetail = (j) => {
    const t = j.tasks.find((x) => x.name === selected);
    if (!t) { detail.replaceChildren(); return; }
    const errors = Object.entries(t.parties).filter(([, r]) => r.error);
    detail.replaceChildren(el("div", { class: "panel", "data-task-detail": t.name },
      el("h2", {}, "Task " + t.name + " (" + t.component + ")"),
      t.upstream.length ? el("p", {}, "after: " + t.upstream.join(", ")) : null,
      errors.length ? el("div", {}, errors.map(([p, r]) => el("p", { class: "error" }, p + ": " + r.error))) : null,
      el("h3", {}, "Parameters"),
      Object.entries(t.params || {}).map(([run, params]) => [el("div", { class: "muted" }, run), el("pre", {}, JSON.stringify(params, null, 2))])));
  };

  const drawCharts = async () => {
    let metrics;
    try { metrics = (await api(`/jobs/${encodeURIComponent(id)}/metrics`)).metrics; } catch (e) { charts.replaceChildren(el("p", { class: "error" }, e.message)); return; }
    const figs = [];
    const figure = (kind, m, caption, w, h) => {
      const holder = el("div");
      const q = new URLSearchParams({ task: m.task, metric: m.namespace + "/" + m.name, role: m.role, kind, w, h });
      loadSvg(holder, `/jobs/${encodeURIComponent(id)}/chart.svg?${q}`);
      return el("figure", { class: "chart", "data-kind": kind, "data-task": m.task, "data-metric": m.namespace + "/" + m.name, "data-role": m.role, "data-points": m.points.length },
        holder, el("figcaption", {}, caption));
    };
    for (const m of metrics) {
      if (m.name === "roc" && m.points.length) {
        figs.push(figure("roc", m, `ROC · ${m.task} · ${m.role}`, 420, 400));
        if (metrics.some((c) => c.task === m.task && c.role === m.role && c.name === "confusion" && c.meta)) {
          figs.push(figure("ks", m, `KS · ${m.task} · ${m.role}`, 420, 400));
          figs.push(figure("confusion", m, `confusion · ${m.task} · ${m.role}`, 420, 360));
        }
      } else if (m.points.length > 1) {
        figs.push(figure("line", m, `${m.namespace}/${m.name} · ${m.task} · ${m.role} · ${m.points.length} points`, 520, 340));
      }
    }
    const scalars = metrics.filter((m) => m.points.length === 1);
    charts.replaceChildren(...figs);
    if (scalars.length) {
      charts.append(el("table", { id: "scalars" }, el("thead", {}, el("tr", {}, ["task", "role", "metric", "value"].map((h) => el("th", {}, h)))),
        el("tbody", {}, scalars.map((m) => el("tr", { "data-metric": m.namespace + "/" + m.name }, el("td", {}, m.task), el("td", {}, m.role), el("td", {}, m.namespace + "/" + m.name), el("td", {}, String(m.points[0][1])))))));
    }
    if (!figs.length && !scalars.length) charts.replaceChildren(el("p", { class: "muted" }, "no metrics yet"));
  };

  const drawLogs = async (party) => {
    const pick = el("select", { id: "log-party", onchange: (e) => drawLogs(e.target.value) },
      el("option", { value: "" }, "this party"), parties.filter((p) => p !== document.getElementById("party").textContent).map((p) => el("option", { value: p, selected: p === party }, p)));
    let body;
    try {
      const lines = (await api(`/jobs/${encodeURIComponent(id)}/log` + (party ? "?party=" + encodeURIComponent(party) : ""))).lines;
      body = el("pre", { class: "log" }, lines.map((l) => `${when(l.at_ms)} ${l.task} ${l.role}#${l.attempt}  ${l.line}\n`).join("") || "(no lines)");
    } catch (e) {
      body = el("p", { class: "error" }, e.message);
    }
    logs.replaceChildren(el("div", { class: "toolbar" }, "logs of ", pick), body);
  };

  main.replaceChildren(header, el("h2", {}, "DAG"), dag,
    el("h2", {}, "Tasks"),
    el("table", { id: "tasks" }, el("thead", {}, el("tr", {}, ["task", "component", "status", ...parties].map((h) => el("th", {}, h)))), tasks),
    detail, el("h2", {}, "Charts"), charts, el("h2", {}, "Logs"), logs);

  const apply = (j) => {
    drawHeader(j);
    drawTasks(j);
    drawDetail(j);
    loadSvg(dag, `/jobs/${encodeURIComponent(id)}/dag.svg`);
    const key = j.status + ":" + j.tasks.map((t) => t.status).join(",");
    if (key !== chartsFor) {
      chartsFor = key;
      drawCharts();
    }
  };
  apply(job);
  drawLogs("");
  follow("/events/jobs/" + encodeURIComponent(id), "job", (j) => {
    window.consortBoard.updates += 1;
    apply(j);
    if (["success", "failed", "canceled"].includes(j.status)) drawLogs(document.getElementById("log-party")?.value || "");
  });
}

// ---------- models ----------

async function viewModels() {
  const models = (await api("/models")).models;
  const byId = new Map();
  for (const m of models) {
    if (!byId.has(m.model_id)) byId.set(m.model_id, []);
    byId.get(m.model_id).push(m);
  }
  main.replaceChildren(el("h1", {}, "Models"),
    el("table", { id: "models" }, el("thead", {}, el("tr", {}, ["model", "name", "versions", "newest", "parties", "metrics of the newest"].map((h) => el("th", {}, h)))),
      el("tbody", {}, [...byId.entries()].map(([id, vs]) => {
        const newest = vs.reduce((a, b) => (a.created_at_ms >= b.created_at_ms ? a : b));
        return el("tr", { class: "clickable", "data-model": id, onclick: () => (location.hash = "#/model/" + encodeURIComponent(id)) },
          el("td", {}, el("a", { href: "#/model/" + encodeURIComponent(id) }, id)), el("td", {}, newest.name), el("td", {}, vs.length),
          el("td", {}, when(newest.created_at_ms)), el("td", {}, newest.parties.join(", ")),
          el("td", {}, Object.entries(newest.metrics).map(([k, v]) => `${k} ${num(v)}`).join(" · ")));
      }))));
  if (!byId.size) main.append(el("p", { class: "muted" }, "no models here yet"));
}

/** Lanes of a history drawn newest first, as `git log --graph` does. */
function lanes(entries) {
  const open = [];
  return entries.map((e) => {
    let lane = open.indexOf(e.id);
    if (lane < 0) { lane = open.indexOf(null); if (lane < 0) lane = open.length; open[lane] = e.id; }
    const row = open.map((c, i) => (i === lane ? "*" : c ? "|" : " ")).join(" ");
    const parents = e.commit.parents || [];
    open[lane] = parents[0] || null;
    for (const p of parents.slice(1)) if (!open.includes(p)) { const free = open.indexOf(null); if (free < 0) open.push(p); else open[free] = p; }
    for (let i = 0; i < open.length; i++) if (open[i] && open.indexOf(open[i]) !== i) open[i] = null;
    while (open.length && open[open.length - 1] === null) open.pop();
    return row;
  });
}

async function viewModel(id) {
  const entries = (await api(`/models/${encodeURIComponent(id)}/log`)).entries;
  const graph = lanes(entries);
  const pickA = el("select", { id: "diff-a" }, entries.map((e, i) => el("option", { value: e.id, selected: i === 1 }, e.id.slice(0, 12) + " " + e.commit.model_version)));
  const pickB = el("select", { id: "diff-b" }, entries.map((e, i) => el("option", { value: e.id, selected: i === 0 }, e.id.slice(0, 12) + " " + e.commit.model_version)));
  const diff = el("div", { id: "diff" });
  const showDiff = async () => {
    try {
      const d = await api(`/models/diff?a=${encodeURIComponent(id + "@" + pickA.value)}&b=${encodeURIComponent(id + "@" + pickB.value)}`);
      const rows = [];
      for (const section of ["params", "metrics", "artifacts"]) {
        for (const c of d[section] || []) {
          rows.push(el("tr", { "data-section": section },
            el("td", {}, section), el("td", {}, c.key), el("td", { class: { added: "add", removed: "del" }[c.kind] || "chg" }, c.kind),
            el("td", {}, c.old === null || c.old === undefined ? "" : JSON.stringify(c.old)), el("td", {}, c.new === null || c.new === undefined ? "" : JSON.stringify(c.new))));
        }
      }
      diff.replaceChildren(rows.length
        ? el("table", {}, el("thead", {}, el("tr", {}, ["", "key", "change", pickA.value.slice(0, 12), pickB.value.slice(0, 12)].map((h) => el("th", {}, h)))), el("tbody", {}, rows))
        : el("p", { class: "muted" }, "no differences"));
    } catch (e) { diff.replaceChildren(el("p", { class: "error" }, e.message)); }
  };
  main.replaceChildren(el("h1", {}, "Model ", el("code", {}, id)),
    el("h2", {}, "History"),
    el("table", { class: "graph", id: "history" }, el("thead", {}, el("tr", {}, ["", "commit", "version (job)", "refs", "message", "metrics", "when"].map((h) => el("th", {}, h)))),
      el("tbody", {}, entries.map((e, i) => el("tr", { "data-commit": e.id },
        el("td", { class: "lane" }, graph[i]), el("td", {}, el("code", {}, e.id.slice(0, 12))), el("td", {}, e.commit.model_version),
        el("td", {}, e.branches.map((b) => el("span", { class: "branch" }, b)), e.tags.map((t) => el("span", { class: "tag" }, t))),
        el("td", {}, e.commit.message), el("td", {}, Object.entries(e.commit.metrics || {}).map(([k, v]) => `${k} ${num(v)}`).join(" · ")),
        el("td", {}, when(e.commit.created_at_ms)))))),
    el("h2", {}, "Diff"), el("div", { class: "toolbar" }, pickA, " → ", pickB, el("button", { onclick: showDiff }, "Compare")), diff);
  if (entries.length > 1) showDiff();
}

// ---------- serving ----------

async function viewServing() {
  const services = (await api("/serving")).services || [];
  const blocks = await Promise.all(services.map(async (s) => {
    let stats = null;
    try { stats = await api(`/serving/${encodeURIComponent(s.name)}/stats`); } catch (e) { /* a host has no stats */ }
    const byVersion = new Map((stats?.versions || []).map((v) => [v.version, v]));
    return el("div", { class: "panel", "data-service": s.name },
      el("h2", {}, s.name, " ", el("span", { class: "muted" }, `${s.model_id} · ${s.role} · guest ${s.guest} · hosts ${s.hosts.join(", ") || "none"}`)),
      el("table", {}, el("thead", {}, el("tr", {}, ["version", "weight", "requests", "errors", "p50", "p99", "cache hit/miss", "online AUC", "KS", ""].map((h) => el("th", {}, h)))),
        el("tbody", {}, s.versions.map((v) => {
          const st = byVersion.get(v.version) || {};
          return el("tr", { "data-version": v.version, "data-weight": v.weight },
            el("td", {}, el("code", {}, v.version)), el("td", {}, v.weight + " %"), el("td", {}, st.requests ?? ""), el("td", {}, st.errors ?? ""),
            el("td", {}, st.p50_micros !== undefined ? (st.p50_micros / 1000).toFixed(2) + " ms" : ""),
            el("td", {}, st.p99_micros !== undefined ? (st.p99_micros / 1000).toFixed(2) + " ms" : ""),
            el("td", {}, st.cache_hits !== undefined ? `${st.cache_hits}/${st.cache_misses}` : ""),
            el("td", {}, st.auc !== null && st.auc !== undefined ? st.auc.toFixed(4) : ""), el("td", {}, st.ks !== null && st.ks !== undefined ? st.ks.toFixed(4) : ""),
            el("td", {}, v.weight < 100 && s.role === "guest" ? actionButton("Promote", () => act(`/serving/${encodeURIComponent(s.name)}/promote`, { version: v.version }).then(route)) : null));
        }))),
      s.previous && s.role === "guest" ? el("div", { class: "toolbar" }, actionButton("Roll back", () => act(`/serving/${encodeURIComponent(s.name)}/rollback`).then(route), true)) : null,
      stats ? el("p", { class: "muted" }, `quota refusals: ${stats.quota_refused}`) : null);
  }));
  main.replaceChildren(el("h1", {}, "Serving"), ...(blocks.length ? blocks : [el("p", { class: "muted" }, "no services deployed here")]));
}

// ---------- partners ----------

async function viewPartners() {
  const peers = (await api("/partners")).peers;
  main.replaceChildren(el("h1", {}, "Partners"),
    el("table", { id: "partners" }, el("thead", {}, el("tr", {}, ["partner", "connected", "route", "round trip", "last seen", "rejected messages", "addresses", "peer id"].map((h) => el("th", {}, h)))),
      el("tbody", {}, peers.map((p) => el("tr", { "data-partner": p.party, "data-connected": String(p.connected) },
        el("td", {}, p.party), el("td", {}, badge(p.connected ? "success" : "failed")),
        el("td", { class: "route" }, p.connected ? (p.route || "") + (p.remote ? " — " + p.remote : "") : (p.why || "")),
        el("td", {}, p.rtt_ms !== null && p.rtt_ms !== undefined ? p.rtt_ms.toFixed(2) + " ms" : ""),
        el("td", {}, p.last_seen ? when(p.last_seen) : "never"), el("td", {}, p.rejected_messages),
        el("td", {}, (p.addrs || []).join(" ")), el("td", {}, el("code", {}, p.peer_id)))))));
}

// ---------- routing ----------

async function route() {
  unfollow();
  const [path, query] = (location.hash.slice(1) || "/jobs").split("?");
  const params = new URLSearchParams(query || "");
  const parts = path.split("/").filter(Boolean).map(decodeURIComponent);
  for (const a of document.querySelectorAll("header nav a")) {
    a.classList.toggle("active", a.dataset.view === (parts[0] === "job" ? "jobs" : parts[0] === "model" ? "models" : parts[0]));
  }
  try {
    switch (parts[0]) {
      case "job": await viewJob(parts[1]); break;
      case "models": await viewModels(); break;
      case "model": await viewModel(parts[1]); break;
      case "serving": await viewServing(); break;
      case "partners": await viewPartners(); break;
      default: await viewJobs(params);
    }
  } catch (e) {
    failure(e);
  }
}

document.getElementById("mode").textContent = READ_ONLY ? "read-only" : "";
window.addEventListener("hashchange", route);
route();

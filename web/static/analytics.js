/* Parley analytics dashboard: plain JavaScript, no build step; charts by the vendored Chart.js
 * (web/static/vendor/chart.umd.js, the global `Chart`).
 *
 * Everything a customer, an agent or the bot wrote (questions, answers, replies) is rendered as
 * text through ParleyDom.el. The API's figures are read defensively: a missing or malformed
 * field shows "–" and never stops the rest of the page from rendering.
 *
 * Reads /api/v1/admin/analytics/{summary,timeseries,knowledge-gaps,answers,articles,
 * gate-calibration,export.csv} with the filters in the bar (also kept in the page's URL).
 */
(function () {
  "use strict";

  var $ = ParleyDom.$, el = ParleyDom.el, fill = ParleyDom.fill;
  var q = ParleyDom.query, toast = ParleyDom.toast;

  var BASE = "/admin/analytics";
  var ROLES = { admin: "admin", analyst: "analyst" };
  var TODAY_REFRESH_MS = 30000;
  var RELOAD_DELAY_MS = 300;
  var AUDIT_PER_PAGE = 20;
  var DEFAULT_DAYS = 7;
  var HOURLY_UP_TO_DAYS = 2;
  var DASH = "–";
  var COLORS = { accent: "#2563eb", ok: "#16a34a", warn: "#d97706", bad: "#dc2626",
                 violet: "#7c3aed", teal: "#0d9488", slate: "#64748b" };
  var LANG_TEXT = { en: "English", zh: "Chinese" };
  var FILTERS = ["from", "to", "tz", "lang", "intent", "agent", "interval"];

  var S = {
    agent: null,
    seq: 0,              // the latest load; answers to older ones are dropped
    charts: {},          // canvas id -> Chart
    reloadTimer: null,
    todayTimer: null,
    auditPage: 1,
    auditPages: 1,
    errorShown: false    // a failure of this reload has been shown
  };

  // ------------------------------------------------------------------ reading the API's answers

  /** obj's value at a dotted path ("csat.bot.avg"); undefined where any step is missing. */
  function get(obj, path) {
    var parts = path.split(".");
    for (var i = 0; i < parts.length; i++) {
      if (obj === null || obj === undefined || typeof obj !== "object") return undefined;
      obj = obj[parts[i]];
    }
    return obj;
  }

  /** The first of the paths with a value (not null/undefined). */
  function first(obj, paths) {
    for (var i = 0; i < paths.length; i++) {
      var value = get(obj, paths[i]);
      if (value !== null && value !== undefined) return value;
    }
    return undefined;
  }

  function num(value) {
    if (typeof value === "string" && value.trim() !== "") value = Number(value);
    return typeof value === "number" && isFinite(value) ? value : null;
  }

  /** A list from an answer that is a list or holds one under one of the keys. */
  function listOf(data, keys) {
    if (Array.isArray(data)) return data;
    for (var i = 0; i < keys.length; i++) {
      if (data && Array.isArray(data[keys[i]])) return data[keys[i]];
    }
    return [];
  }

  function entries(obj) {
    if (!obj || typeof obj !== "object" || Array.isArray(obj)) return [];
    return Object.keys(obj).map(function (key) { return [key, obj[key]]; });
  }

  function textOf(item) {
    if (item === null || item === undefined) return "";
    if (typeof item !== "object") return String(item);
    var text = first(item, ["text", "question", "sentence", "reply", "body", "title", "id"]);
    return text === undefined ? "" : String(text);
  }

  // ------------------------------------------------------------------ formatting

  function fmtCount(value) {
    var n = num(value);
    return n === null ? DASH : n.toLocaleString("en-US");
  }

  function fmtRate(value) {
    var n = num(value);
    if (n === null) return DASH;
    var pct = n * 100;
    return (Math.abs(pct) >= 10 || pct === 0 ? pct.toFixed(0) : pct.toFixed(1)) + " %";
  }

  function fmtSeconds(value) {
    var s = num(value);
    if (s === null) return DASH;
    if (s < 60) return (s < 10 ? s.toFixed(1) : s.toFixed(0)) + " s";
    if (s < 3600) return (s / 60).toFixed(s < 600 ? 1 : 0) + " min";
    if (s < 86400) return (s / 3600).toFixed(1) + " h";
    return (s / 86400).toFixed(1) + " d";
  }

  function fmtMs(value) {
    var ms = num(value);
    if (ms === null) return DASH;
    return ms < 1000 ? ms.toFixed(0) + " ms" : (ms / 1000).toFixed(ms < 10000 ? 2 : 1) + " s";
  }

  function fmtScore(value) {
    var n = num(value);
    return n === null ? DASH : n.toFixed(n % 1 === 0 ? 0 : 2);
  }

  function fmtCsat(value) {
    var n = num(value);
    return n === null ? DASH : n.toFixed(2) + " / 5";
  }

  function fmtWhen(value) {
    var t = ParleyDom.parseTime(value);
    if (isNaN(t)) return value ? String(value) : DASH;
    return new Date(t).toLocaleString("en-GB", { timeZone: filterValue("tz") || undefined,
      day: "numeric", month: "short", hour: "2-digit", minute: "2-digit" });
  }

  function humanize(key) {
    var text = String(key).replace(/_/g, " ").replace(/\s+/g, " ").trim();
    return text.charAt(0).toUpperCase() + text.slice(1);
  }

  function langText(code) { return LANG_TEXT[code] || String(code || DASH); }

  // ------------------------------------------------------------------ session and API

  var session = ParleySession.create({
    storageKey: "parley.analytics.token",
    adminOnly: null,  // admins and analysts: checked in start()
    onStart: start,
    onClear: stop
  });
  var api = session.api;

  function report(err) {
    if (session.handled(err)) return;
    if (err && err.status === 403) { deny(); return; }
    toast((err && err.message) || "Something went wrong.");
  }

  /** One toast per reload: when the server is down, every section fails at once. */
  function reportOnce(err) {
    if (S.errorShown && !session.handled(err)) return;
    S.errorShown = true;
    report(err);
  }

  // ------------------------------------------------------------------ dates and filters

  function browserZone() {
    try { return Intl.DateTimeFormat().resolvedOptions().timeZone || "UTC"; } catch (e) { return "UTC"; }
  }

  function zones() {
    var list = [];
    try { if (Intl.supportedValuesOf) list = Intl.supportedValuesOf("timeZone"); } catch (e) { list = []; }
    if (!list.length) {
      list = ["Africa/Johannesburg", "America/Chicago", "America/Los_Angeles", "America/New_York",
        "America/Sao_Paulo", "Asia/Kolkata", "Asia/Shanghai", "Asia/Singapore", "Asia/Tokyo",
        "Australia/Sydney", "Europe/Berlin", "Europe/London", "Europe/Paris"];
    }
    var seen = {};
    return ["UTC", browserZone()].concat(list).filter(function (z) {
      if (seen[z]) return false; seen[z] = true; return true;
    });
  }

  /** Today's date (YYYY-MM-DD) in a time zone. */
  function todayIn(tz) {
    var parts = {};
    try {
      new Intl.DateTimeFormat("en-US", { timeZone: tz, year: "numeric", month: "2-digit", day: "2-digit" })
        .formatToParts(new Date()).forEach(function (p) { parts[p.type] = p.value; });
      return parts.year + "-" + parts.month + "-" + parts.day;
    } catch (e) {
      return new Date().toISOString().slice(0, 10);
    }
  }

  function addDays(ymd, days) {
    var m = /^(\d{4})-(\d{2})-(\d{2})$/.exec(ymd || "");
    if (!m) return ymd;
    return new Date(Date.UTC(+m[1], +m[2] - 1, +m[3] + days)).toISOString().slice(0, 10);
  }

  function daysBetween(a, b) {
    return Math.round((Date.parse(b + "T00:00:00Z") - Date.parse(a + "T00:00:00Z")) / 86400000);
  }

  function filterValue(name) {
    var node = $("filter-" + name);
    return node ? node.value : "";
  }

  /** The period sent to the API: from the start of the first day to the start of the day after
   * the last one, local wall times read in `tz` (the end excluded: no endpoint has to guess
   * whether a bare date as `to` includes that day). */
  function rangeParams(fromDay, toDay) {
    return { from: fromDay + "T00:00:00", to: addDays(toDay, 1) + "T00:00:00", tz: filterValue("tz") };
  }

  function interval() {
    var chosen = filterValue("interval");
    if (chosen) return chosen;
    return daysBetween(filterValue("from"), filterValue("to")) < HOURLY_UP_TO_DAYS ? "hour" : "day";
  }

  /** The filters as query parameters, or null (and a message) where the dates do not make a period. */
  function params() {
    var from = filterValue("from"), to = filterValue("to");
    var problem = "";
    if (!from || !to) problem = "Choose both dates.";
    else if (from > to) problem = "The start date is after the end date.";
    $("filter-error").textContent = problem;
    $("filter-error").hidden = !problem;
    if (problem) return null;
    $("filter-note").hidden = !(filterValue("intent") || filterValue("agent"));
    var p = rangeParams(from, to);
    p.lang = filterValue("lang");
    p.intent = filterValue("intent");
    p.agent_id = filterValue("agent");
    return p;
  }

  function ensureOption(select, value, text) {
    if (!value) return;
    for (var i = 0; i < select.options.length; i++) if (select.options[i].value === value) return;
    select.appendChild(el("option", { value: value, text: text || value }));
  }

  function setFilter(name, value) {
    var node = $("filter-" + name);
    if (!node || value === null || value === undefined) return;
    if (node.tagName === "SELECT") ensureOption(node, value, name === "lang" ? langText(value) : value);
    node.value = value;
  }

  function readUrl() {
    var search = new URLSearchParams(window.location.search);
    FILTERS.forEach(function (name) { if (search.get(name)) setFilter(name, search.get(name)); });
  }

  function writeUrl() {
    var values = {};
    FILTERS.forEach(function (name) { values[name] = filterValue(name); });
    if (values.tz === browserZone()) values.tz = "";
    history.replaceState(null, "", window.location.pathname + q(values));
  }

  function initFilters() {
    var tz = $("filter-tz");
    tz.replaceChildren();
    zones().forEach(function (z) { tz.appendChild(el("option", { value: z, text: z.replace(/_/g, " ") })); });
    tz.value = browserZone();
    var today = todayIn(tz.value);
    $("filter-to").value = today;
    $("filter-from").value = addDays(today, -(DEFAULT_DAYS - 1));
    readUrl();
  }

  function loadAgents() {
    return api("GET", "/agents").then(function (agents) {
      var select = $("filter-agent");
      (agents || []).forEach(function (a) { ensureOption(select, String(a.id), a.name); });
      var wanted = new URLSearchParams(window.location.search).get("agent");
      if (wanted) select.value = wanted;
    }).catch(function () { /* the agent filter is a nicety */ });
  }

  function addIntents(intents) {
    var select = $("filter-intent");
    intents.forEach(function (row) {
      var name = typeof row === "string" ? row : first(row, ["intent", "name"]);
      if (name) ensureOption(select, String(name), String(name));
    });
  }

  function addLanguages(langs) {
    langs.forEach(function (code) { ensureOption($("filter-lang"), code, langText(code)); });
  }

  // ------------------------------------------------------------------ loading

  function busy(on) {
    $("dashboard").setAttribute("aria-busy", on ? "true" : "false");
    $("load-status").textContent = on ? "Loading…" : "Updated " +
      new Date().toLocaleTimeString("en-GB", { hour: "2-digit", minute: "2-digit" });
  }

  function reloadSoon() {
    clearTimeout(S.reloadTimer);
    S.reloadTimer = setTimeout(reload, RELOAD_DELAY_MS);
  }

  /** Reload everything for the current filters. */
  function reload() {
    clearTimeout(S.reloadTimer);
    var p = params();
    if (!p) return Promise.resolve();
    writeUrl();
    var seq = ++S.seq;
    S.auditPage = 1;
    S.errorShown = false;
    busy(true);
    var current = function () { return seq === S.seq && !!S.agent; };
    var jobs = [loadSummary(p, current), loadSeries(p, current), loadGaps(p, current),
                loadAudit(p, current), loadArticles(p, current), loadGate(p, current)];
    return Promise.all(jobs).then(function () { if (current()) busy(false); });
  }

  /** Run a request; render its answer if it is still the latest; show its failure in place. */
  function load(path, current, render, onError) {
    return api("GET", path).then(function (data) {
      if (!current()) return;
      try { render(data); } catch (e) { if (window.console) console.error(e); onError(e); }
    }).catch(function (err) {
      if (!current()) return;
      reportOnce(err);
      onError(err);
    });
  }

  function loadSummary(p, current) {
    return load(BASE + "/summary" + q(p), current, renderSummary, function () {
      fill($("cards"), el("p", { className: "empty", text: "The figures could not be loaded." }));
    });
  }

  function loadSeries(p, current) {
    var metrics = ["conversations", "bot_resolved", "handed_off"];
    var iv = interval();
    var results = {};
    var jobs = metrics.map(function (metric) {
      var query = q({ metric: metric, interval: iv, from: p.from, to: p.to, tz: p.tz, lang: p.lang });
      return api("GET", BASE + "/timeseries" + query).then(function (data) {
        results[metric] = listOf(data, ["points"]);
      }).catch(function (err) { results[metric] = []; if (current()) reportOnce(err); });
    });
    return Promise.all(jobs).then(function () {
      if (current()) renderVolume(results, iv);
    });
  }

  function refreshToday() {
    if (!S.agent || document.hidden) return;
    var day = todayIn(filterValue("tz"));
    var p = rangeParams(day, day);
    p.lang = filterValue("lang");
    var seq = S.seq;
    api("GET", BASE + "/summary" + q(p)).then(function (data) {
      if (S.agent && seq === S.seq) renderToday(first(data, ["today"]) || data);
    }).catch(function (err) { if (session.handled(err)) return; /* the next tick tries again */ });
  }

  // ------------------------------------------------------------------ headline cards

  function delta(current, previous, mode, better) {
    var cur = num(current), prev = num(previous);
    if (cur === null || prev === null) return { text: DASH, label: "no figure for the previous period", tone: "none" };
    var diff, text;
    if (mode === "points") {
      diff = (cur - prev) * 100;
      text = (diff > 0 ? "+" : diff < 0 ? "−" : "±") + Math.abs(diff).toFixed(1) + " pp";
    } else if (prev === 0) {
      diff = cur;
      text = cur === 0 ? "±0 %" : "new";
    } else {
      diff = (cur - prev) / prev * 100;
      text = (diff > 0 ? "+" : diff < 0 ? "−" : "±") + Math.abs(diff).toFixed(Math.abs(diff) < 10 ? 1 : 0) + " %";
    }
    var arrow = diff > 0 ? "▲ " : diff < 0 ? "▼ " : "";
    var tone = diff === 0 || !better ? "neutral" : (diff > 0) === (better === "up") ? "good" : "bad";
    return { text: arrow + text, tone: tone, diff: diff,
             label: (diff > 0 ? "up " : diff < 0 ? "down " : "unchanged ") + text.replace(/^[+−±]/, "") + " on the previous period" };
  }

  /** The previous period's figure for a summary path: the API may nest it or flatten it. */
  function previous(summary, path) {
    var prev = summary && summary.previous;
    if (!prev) return undefined;
    var last = path.split(".").slice(1).join(".");
    return first(prev, [path, last, path.split(".").pop()]);
  }

  var CARDS = [
    { id: "conversations", label: "Conversations", path: "counts.conversations", fmt: fmtCount, mode: "relative" },
    { id: "containment", label: "Containment rate", path: "rates.containment_rate", fmt: fmtRate, mode: "points",
      better: "up", hint: "Resolved by the bot, without a person" },
    { id: "handoff", label: "Hand-off rate", path: "rates.handoff_rate", fmt: fmtRate, mode: "points",
      better: "down", hint: "Passed to a person" },
    { id: "abstention", label: "Abstention rate", path: "rates.abstention_rate", fmt: fmtRate, mode: "points",
      better: "down", hint: "Questions the bot declined to answer" },
    { id: "csat", label: "CSAT: bot vs human", pair: [["Bot", "csat.bot"], ["Human", "csat.human"]], fmt: fmtScore },
    { id: "first-response", label: "First response", path: "first_response_s.p50", fmt: fmtSeconds,
      mode: "relative", better: "down", extra: ["p90", "first_response_s.p90"] },
    { id: "resolution", label: "Resolution time", path: "resolution_s.p50", fmt: fmtSeconds,
      mode: "relative", better: "down", extra: ["p90", "resolution_s.p90"] },
    { id: "latency", label: "Turn latency", path: "turn_latency_ms.p50", fmt: fmtMs,
      mode: "relative", better: "down", extra: ["p95", "turn_latency_ms.p95"] }
  ];

  function deltaNode(d, previousText) {
    return el("p", { className: "an-delta", dataset: { tone: d.tone }, "data-testid": "card-delta",
      title: previousText ? "Previous period: " + previousText : null },
      el("span", { "aria-hidden": "true", text: d.text }),
      el("span", { className: "sr-only", text: d.label }),
      d.tone !== "none" ? el("span", { className: "an-muted", "aria-hidden": "true", text: " vs previous" }) : null);
  }

  function card(def, summary) {
    var node = el("article", { className: "an-card", "data-testid": "card-" + def.id,
      "aria-labelledby": "card-" + def.id + "-label" },
      el("h3", { id: "card-" + def.id + "-label", text: def.label }));
    if (def.pair) {
      var row = el("div", { className: "an-pair" });
      def.pair.forEach(function (pair) {
        var avg = get(summary, pair[1] + ".avg"), n = get(summary, pair[1] + ".n");
        var d = delta(avg, previous(summary, pair[1] + ".avg"), "relative", "up");
        row.appendChild(el("div", { className: "an-pair-item", dataset: { who: pair[0].toLowerCase(), value: num(avg) === null ? "" : String(avg) } },
          el("span", { className: "an-pair-label", text: pair[0] }),
          el("span", { className: "an-value", text: def.fmt(avg) }),
          el("span", { className: "an-sub", text: num(n) === null ? "no ratings" : fmtCount(n) + (n === 1 ? " rating" : " ratings") }),
          deltaNode(d)));
      });
      node.appendChild(row);
      return node;
    }
    var value = get(summary, def.path);
    node.dataset.value = num(value) === null ? "" : String(value);
    node.appendChild(el("p", { className: "an-value", "data-testid": "card-value", text: def.fmt(value) }));
    var sub = def.extra ? "p50 · " + def.extra[0] + " " + def.fmt(get(summary, def.extra[1])) : def.hint;
    if (sub) node.appendChild(el("p", { className: "an-sub", text: sub }));
    var prev = previous(summary, def.path);
    node.appendChild(deltaNode(delta(value, prev, def.mode, def.better), def.fmt(prev)));
    return node;
  }

  var TODAY = [["conversations", "Conversations"], ["bot_resolved", "Resolved by the bot"],
               ["handed_off", "Handed off"], ["answers", "Answers"], ["abstained", "Abstained"]];

  function renderToday(today) {
    var list = $("today-cards");
    list.replaceChildren();
    TODAY.forEach(function (pair) {
      var value = first(today, ["counts." + pair[0], pair[0]]);
      list.appendChild(el("div", { className: "an-today-item", "data-testid": "today-" + pair[0].replace(/_/g, "-"),
        dataset: { value: num(value) === null ? "" : String(value) } },
        el("dt", { text: pair[1] }), el("dd", { text: fmtCount(value) })));
    });
    $("today-updated").textContent = "Live · updated " +
      new Date().toLocaleTimeString("en-GB", { hour: "2-digit", minute: "2-digit", second: "2-digit" });
  }

  function renderSummary(summary) {
    summary = summary || {};
    var cards = $("cards");
    cards.replaceChildren();
    CARDS.forEach(function (def) {
      try { cards.appendChild(card(def, summary)); } catch (e) {
        cards.appendChild(el("article", { className: "an-card", "data-testid": "card-" + def.id },
          el("h3", { text: def.label }), el("p", { className: "an-value", text: DASH })));
      }
    });
    $("period-label").textContent = filterValue("from") + " – " + filterValue("to") + " · " +
      (summary.tz || filterValue("tz")) + (summary.lang ? " · " + langText(summary.lang) : "");
    renderToday(first(summary, ["today"]) || {});

    var reasons = entries(summary.handoff_reasons).filter(function (e) { return num(e[1]) !== null; })
      .sort(function (a, b) { return b[1] - a[1]; });
    barChart("chart-reasons", reasons.map(function (e) { return humanize(e[0]); }),
      [{ label: "Hand-offs", data: reasons.map(function (e) { return num(e[1]); }), color: COLORS.warn }], true);

    var langs = entries(summary.by_language);
    addLanguages(langs.map(function (e) { return e[0]; }));
    var langCount = function (path) {
      return langs.map(function (e) { return num(first(e[1], ["counts." + path, path])) || 0; });
    };
    barChart("chart-languages", langs.map(function (e) { return langText(e[0]); }), [
      { label: "Conversations", data: langCount("conversations"), color: COLORS.accent },
      { label: "Resolved by the bot", data: langCount("bot_resolved"), color: COLORS.ok },
      { label: "Handed off", data: langCount("handed_off"), color: COLORS.warn }], false);

    var intents = listOf(summary.intents, ["items"]).filter(function (row) { return row && typeof row === "object"; })
      .map(function (row) { return [String(first(row, ["intent", "name"]) || DASH), num(first(row, ["count", "n"])) || 0]; })
      .sort(function (a, b) { return b[1] - a[1]; }).slice(0, 12);
    if (!filterValue("intent")) addIntents(intents.map(function (e) { return e[0]; }));
    barChart("chart-intents", intents.map(function (e) { return e[0]; }),
      [{ label: "Conversations", data: intents.map(function (e) { return e[1]; }), color: COLORS.violet }], true);

    renderNlu(listOf(summary.nlu, ["versions", "items"]));
  }

  function renderNlu(rows) {
    var body = $("nlu-rows");
    body.replaceChildren();
    rows = rows.slice().sort(function (a, b) { return (a && a.canary ? 1 : 0) - (b && b.canary ? 1 : 0); });
    if (!rows.length) {
      body.appendChild(el("tr", {}, el("td", { colspan: "5", className: "empty", text: "No parses in this period." })));
      return;
    }
    rows.forEach(function (row) {
      var canary = !!(row && row.canary);
      body.appendChild(el("tr", { "data-testid": "nlu-row", dataset: { canary: String(canary) } },
        el("th", { scope: "row", className: "mono", text: String(first(row, ["version", "model"]) || DASH) }),
        el("td", {}, el("span", { className: "badge " + (canary ? "an-canary" : "an-active"), text: canary ? "Canary" : "Active" })),
        el("td", { className: "num", text: fmtCount(first(row, ["parses", "count"])) }),
        el("td", { className: "num", text: fmtRate(row && row.low_confidence_rate) }),
        el("td", { className: "num", text: fmtRate(row && row.fallback_rate) })));
    });
  }

  // ------------------------------------------------------------------ charts

  function chartsReady() { return typeof window.Chart === "function"; }

  function describe(id, text) {
    var canvas = $(id), descId = id + "-desc", desc = $(descId);
    if (!desc) {
      desc = el("p", { id: descId, className: "sr-only" });
      canvas.parentNode.appendChild(desc);
      canvas.setAttribute("aria-describedby", descId);
    }
    desc.textContent = text;
  }

  function setEmpty(id, empty) {
    $(id).parentNode.dataset.empty = empty ? "true" : "false";
  }

  function baseOptions(horizontal) {
    var reduce = window.matchMedia && window.matchMedia("(prefers-reduced-motion: reduce)").matches;
    return {
      responsive: true, maintainAspectRatio: false, animation: reduce ? false : { duration: 250 },
      indexAxis: horizontal ? "y" : "x",
      interaction: { mode: "index", intersect: false },
      plugins: { legend: { position: "bottom", labels: { boxWidth: 12, usePointStyle: true } } },
      scales: {
        x: { grid: { display: !horizontal ? false : true }, beginAtZero: true, ticks: { precision: 0 } },
        y: { beginAtZero: true, ticks: { precision: 0 } }
      }
    };
  }

  function draw(id, type, labels, datasets, options) {
    var empty = !labels.length || datasets.every(function (d) {
      return d.data.every(function (v) { return !v; });
    });
    setEmpty(id, empty);
    describe(id, empty ? "No data for this period." : labels.map(function (label, i) {
      return label + ": " + datasets.map(function (d) {
        return (datasets.length > 1 ? d.label + " " : "") + (d.data[i] === null ? DASH : d.data[i]);
      }).join(", ");
    }).join("; "));
    if (!chartsReady()) return;
    var existing = S.charts[id];
    if (existing) {
      existing.data.labels = labels;
      existing.data.datasets = datasets;
      existing.update();
      return;
    }
    S.charts[id] = new window.Chart($(id), { type: type, data: { labels: labels, datasets: datasets }, options: options });
  }

  function barChart(id, labels, series, horizontal) {
    var datasets = series.map(function (s) {
      return { label: s.label, data: s.data, backgroundColor: s.color, borderRadius: 4, maxBarThickness: 28 };
    });
    var options = baseOptions(horizontal);
    options.plugins.legend.display = series.length > 1;
    draw(id, "bar", labels, datasets, options);
  }

  /** "2025-03-03T14:00:00+01:00" -> sortable key "2025-03-03T14:00" and a short label. */
  function bucket(t, iv) {
    var m = /^(\d{4})-(\d{2})-(\d{2})(?:[T ](\d{2}):(\d{2}))?/.exec(String(t || ""));
    if (!m) return null;
    var date = new Date(Date.UTC(+m[1], +m[2] - 1, +m[3], +(m[4] || 0), +(m[5] || 0)));
    var label = date.toLocaleDateString("en-GB", { timeZone: "UTC", day: "numeric", month: "short" });
    if (iv === "hour") label += " " + (m[4] || "00") + ":" + (m[5] || "00");
    return { key: m[1] + "-" + m[2] + "-" + m[3] + "T" + (m[4] || "00") + ":" + (m[5] || "00"), label: label };
  }

  function renderVolume(results, iv) {
    var keys = {}, values = {};
    Object.keys(results).forEach(function (metric) {
      values[metric] = {};
      results[metric].forEach(function (point) {
        var b = bucket(point && first(point, ["t", "time", "bucket"]), iv);
        if (!b) return;
        keys[b.key] = b.label;
        values[metric][b.key] = (values[metric][b.key] || 0) + (num(point.value) || 0);
      });
    });
    var order = Object.keys(keys).sort();
    var series = [["conversations", "Conversations", COLORS.accent], ["bot_resolved", "Resolved by the bot", COLORS.ok],
                  ["handed_off", "Handed off", COLORS.warn]];
    var datasets = series.map(function (s) {
      return { label: s[1], borderColor: s[2], backgroundColor: s[2], cubicInterpolationMode: "monotone", pointRadius: order.length > 60 ? 0 : 3,
        borderWidth: 2, data: order.map(function (k) { return values[s[0]] ? values[s[0]][k] || 0 : 0; }) };
    });
    var options = baseOptions(false);
    options.scales.x.ticks = { maxRotation: 0, autoSkip: true, maxTicksLimit: 12 };
    draw("chart-volume", "line", order.map(function (k) { return keys[k]; }), datasets, options);
  }

  function destroyCharts() {
    Object.keys(S.charts).forEach(function (id) { S.charts[id].destroy(); });
    S.charts = {};
  }

  // ------------------------------------------------------------------ knowledge gaps

  function loadGaps(p, current) {
    return load(BASE + "/knowledge-gaps" + q(p), current, renderGaps, function () {
      renderGaps([]);
      $("gaps-empty").textContent = "The knowledge gaps could not be loaded.";
    });
  }

  /** The abstention rate before/after an article covered the cluster: {rate, answers} or null. */
  function coverageRate(cluster, which) {
    var rate = first(cluster, ["coverage." + which + ".rate", which + "_abstention_rate", "abstention_rate_" + which]);
    if (rate === undefined) return null;
    return { rate: rate, answers: first(cluster, ["coverage." + which + ".answers"]) };
  }

  function bulletList(items, className, testid, limit) {
    var shown = items.slice(0, limit);
    return el("ul", { className: className, "data-testid": testid },
      shown.map(function (item) {
        var count = item && typeof item === "object" ? num(first(item, ["count", "n"])) : null;
        return el("li", {}, el("span", { text: textOf(item) || DASH }),
          count && count > 1 ? el("span", { className: "an-muted", text: " ×" + count }) : null);
      }),
      items.length > limit ? el("li", { className: "an-muted", text: "and " + (items.length - limit) + " more" }) : null);
  }

  function scoresText(cluster) {
    var mean = num(first(cluster, ["mean_score"])), max = num(first(cluster, ["max_score"]));
    if (mean === null && max === null) return "";
    return "retrieval score " + (mean !== null ? "mean " + mean.toFixed(2) : "") +
      (mean !== null && max !== null ? ", " : "") + (max !== null ? "best " + max.toFixed(2) : "");
  }

  function rateText(part) {
    if (!part) return DASH;
    var answers = num(part.answers);
    return fmtRate(part.rate) + (answers !== null ? " of " + fmtCount(answers) + (answers === 1 ? " answer" : " answers") : "");
  }

  /** The editor's link for a cluster, with this period: the draft is looked up in it. */
  function draftHref(id) {
    var p = params() || {};
    return "/editor" + q({ draft: id, from: p.from, to: p.to, tz: p.tz });
  }

  function gapItem(cluster) {
    var id = first(cluster, ["id", "cluster_id", "key"]);
    var questions = listOf(first(cluster, ["questions", "examples", "samples"]), []);
    var replies = listOf(first(cluster, ["agent_replies", "replies", "human_replies"]), []);
    var count = first(cluster, ["count", "size", "n"]);
    if (num(count) === null) count = questions.length;
    var lang = first(cluster, ["lang", "language"]);
    var title = first(cluster, ["title", "label", "representative", "question"]) || textOf(questions[0]) || "Unnamed gap";
    var headId = "gap-" + String(id).replace(/[^A-Za-z0-9_-]/g, "_") + "-title";
    var coverage = first(cluster, ["coverage"]);
    var before = coverageRate(cluster, "before"), after = coverageRate(cluster, "after");
    var split = [];
    if (num(cluster.abstained) !== null) split.push(fmtCount(cluster.abstained) + " abstained");
    if (num(cluster.handed_off) !== null) split.push(fmtCount(cluster.handed_off) + " handed off");
    var scores = scoresText(cluster);
    var draft = null;
    if (id !== undefined && id !== null) {
      draft = S.agent && S.agent.role === "admin"
        ? el("a", { className: "btn primary small", "data-testid": "gap-draft", href: draftHref(id),
            "aria-describedby": headId, onclick: handOverToEditor, text: "Draft an article" })
        : el("button", { type: "button", className: "btn ghost small", "data-testid": "gap-draft", disabled: true,
            title: "Drafting an article needs the admin role", text: "Draft an article" });
    }
    return el("li", { className: "an-gap", "data-testid": "gap", dataset: { gapId: id === undefined ? "" : String(id) } },
      el("div", { className: "an-gap-head" },
        el("h3", { id: headId, className: "an-gap-title", text: String(title) }),
        el("span", { className: "badge an-count", title: "Gap questions in this period", "data-testid": "gap-count",
          text: fmtCount(count) + "×" }),
        lang ? el("span", { className: "badge lang", text: String(lang).toUpperCase() }) : null,
        el("span", { className: "an-spacer" }), draft),
      questions.length ? el("div", {}, el("h4", { text: "Customers asked" }),
        bulletList(questions, "an-questions", "gap-questions", 6)) : null,
      replies.length ? el("div", {}, el("h4", { text: "Agents replied" }),
        bulletList(replies, "an-replies", "gap-replies", 3)) : null,
      el("p", { className: "an-gap-meta", "data-testid": "gap-meta" },
        split.length ? el("span", { text: split.join(", ") }) : null,
        scores ? el("span", { className: "an-muted", text: (split.length ? " · " : "") + scores }) : null),
      el("p", { className: "an-gap-meta", "data-testid": "gap-coverage" },
        coverage && typeof coverage === "object"
          ? [el("span", { text: "Covered by " }),
             el("strong", { text: String(first(coverage, ["title", "article_id"]) || DASH) }),
             coverage.published_at ? el("span", { className: "an-muted", text: " (published " + fmtWhen(coverage.published_at) + ")" }) : null,
             el("span", { text: ": abstention rate before " }), el("strong", { text: rateText(before) }),
             el("span", { text: " → after " }), el("strong", { text: rateText(after) })]
          : before || after
            ? [el("span", { text: "Abstention rate before " }), el("strong", { text: rateText(before) }),
               el("span", { text: " → after " }), el("strong", { text: rateText(after) })]
            : el("span", { className: "an-muted", text: "No article covers these questions yet." })));
  }

  function renderGaps(data) {
    var clusters = listOf(data, ["clusters", "gaps", "items"]).filter(function (c) { return c && typeof c === "object"; });
    var list = $("gaps-list");
    list.replaceChildren();
    clusters.forEach(function (cluster) { list.appendChild(gapItem(cluster)); });
    $("gaps-count").textContent = String(clusters.length);
    $("gaps-empty").hidden = clusters.length > 0;
    $("gaps-empty").textContent = "No gaps in this period: the bot answered what it was asked.";
  }

  /** The editor keeps its own session (sessionStorage, this tab): give it this one if it has none,
   * so that drafting does not ask to sign in again. */
  function handOverToEditor() {
    try {
      if (!sessionStorage.getItem("parley.editor.token") && session.token()) {
        sessionStorage.setItem("parley.editor.token", session.token());
      }
    } catch (e) { /* the editor asks to sign in */ }
  }

  // ------------------------------------------------------------------ answer audit

  function loadAudit(p, current) {
    p = p || params();
    if (!p) return Promise.resolve();
    current = current || (function (seq) { return function () { return seq === S.seq && !!S.agent; }; })(S.seq);
    var query = Object.assign({}, p, { page: S.auditPage, per_page: AUDIT_PER_PAGE,
                                       abstained: $("audit-abstained").value });
    return load(BASE + "/answers" + q(query), current, renderAudit, function () {
      renderAudit({ items: [] });
    });
  }

  function detail(label, content) {
    return el("div", { className: "an-detail" }, el("dt", { text: label }), el("dd", {}, content));
  }

  function sentences(row, kind) {
    var direct = first(row, [kind + "_sentences", kind, "sentences." + kind]);
    if (direct !== undefined) return listOf(direct, []);
    var all = listOf(first(row, ["sentences"]), []);
    return all.filter(function (s) {
      return s && typeof s === "object" && (kind === "kept" ? s.kept === true : s.kept === false);
    });
  }

  function sourceItem(source) {
    if (!source || typeof source !== "object") return el("li", { text: String(source) });
    var id = first(source, ["source_id", "article_id", "id"]);
    var title = first(source, ["title", "name"]);
    var score = num(first(source, ["score", "similarity"]));
    return el("li", { "data-testid": "audit-source" },
      title ? el("span", { text: String(title) }) : null,
      id ? el("span", { className: "mono an-muted", text: (title ? " " : "") + String(id) }) : null,
      score !== null ? el("span", { className: "an-muted", text: " · score " + score.toFixed(2) }) : null);
  }

  function sentenceItem(s) {
    var reason = s && typeof s === "object" ? first(s, ["reason", "why"]) : null;
    var score = s && typeof s === "object" ? num(first(s, ["score", "support"])) : null;
    return el("li", {}, el("span", { text: textOf(s) || DASH }),
      reason ? el("span", { className: "an-muted", text: " — " + String(reason) }) : null,
      score !== null ? el("span", { className: "an-muted", text: " (" + score.toFixed(2) + ")" }) : null);
  }

  function listOrDash(items, render) {
    return items.length ? el("ul", { className: "an-detail-list" }, items.map(render)) : DASH;
  }

  /** The answer's outcome: a word for the badge and a longer text (abstention, hand-off, bot). */
  function outcomeOf(row) {
    var out = row.outcome;
    var abstained = row.abstained === true;
    if (typeof out === "string") return { key: out, text: humanize(out) };
    var parts = [];
    var key = abstained ? "abstained" : "answered";
    if (abstained) parts.push("Abstained" + (row.abstain_reason ? " (" + humanize(row.abstain_reason) + ")" : ""));
    else parts.push("Answered");
    if (out && typeof out === "object") {
      if (out.handed_off) {
        key = "handed_off";
        parts.push("handed off" + (out.handoff_reason ? " (" + humanize(out.handoff_reason).toLowerCase() + ")" : ""));
      } else if (out.bot_resolved) {
        parts.push("resolved by the bot");
      }
      if (out.reopened) parts.push("reopened");
    }
    return { key: key, text: parts.join(", ") };
  }

  function csatOf(row) {
    var value = first(row, ["outcome.csat", "csat", "csat_score", "rating"]);
    if (value && typeof value === "object") value = first(value, ["score", "value"]);
    return num(value);
  }

  function csatText(row) {
    var csat = csatOf(row);
    if (csat === null) return DASH;
    var by = first(row, ["outcome.csat_by", "csat_by"]);
    return csat + " / 5" + (by ? " (rated the " + by + ")" : "");
  }

  function stagesText(stages) {
    var list = entries(stages).filter(function (e) { return num(e[1]) !== null; });
    return list.length ? list.map(function (e) { return humanize(e[0]) + " " + fmtMs(e[1]); }).join(" · ") : DASH;
  }

  function auditRows(row, index) {
    var detailId = "audit-detail-" + S.auditPage + "-" + index;
    var outcome = outcomeOf(row);
    var generator = first(row, ["generator", "model"]);
    var latency = first(row, ["latency_ms", "duration_ms", "generation_ms"]);
    var csat = csatOf(row);
    var answer = first(row, ["answer", "answer_text", "reply"]);
    var toggle = el("button", { type: "button", className: "btn ghost small an-expand", "aria-expanded": "false",
      "aria-controls": detailId, "data-testid": "audit-expand", "aria-label": "Show details" },
      el("span", { "aria-hidden": "true", text: "▸" }));
    var main = el("tr", { "data-testid": "audit-row", dataset: { outcome: outcome.key } },
      el("td", {}, toggle),
      el("td", { className: "nowrap", text: fmtWhen(first(row, ["at", "created_at", "time", "ts"])) }),
      el("td", { className: "an-question", text: String(first(row, ["question", "text", "query"]) || DASH) }),
      el("td", {}, el("span", { className: "badge an-outcome", dataset: { outcome: outcome.key }, title: outcome.text,
        text: humanize(outcome.key) })),
      el("td", { className: "mono", text: generator ? String(generator) : DASH }),
      el("td", { className: "num", text: fmtMs(latency) }),
      el("td", { className: "num", text: csat === null ? DASH : String(csat) }));
    var more = el("tr", { id: detailId, className: "an-detail-row", "data-testid": "audit-detail", hidden: true },
      el("td", { colspan: "7" }, el("dl", { className: "an-details" },
        answer ? detail("Answer", el("p", { className: "an-answer", text: String(answer) })) : null,
        detail("Sources", listOrDash(listOf(first(row, ["sources", "citations"]), []), sourceItem)),
        detail("Kept sentences", listOrDash(sentences(row, "kept"), sentenceItem)),
        detail("Dropped sentences", listOrDash(sentences(row, "dropped"), sentenceItem)),
        detail("Top retrieval score", fmtScore(first(row, ["top_score", "score"]))),
        detail("Generator", generator ? String(generator) : DASH),
        detail("Latency", fmtMs(latency) + (row.stage_ms ? " — " + stagesText(row.stage_ms) : "")),
        detail("Outcome", outcome.text),
        detail("CSAT", csatText(row)),
        detail("Intent · language", String(first(row, ["intent"]) || DASH) + " · " + String(first(row, ["lang", "language"]) || DASH)),
        detail("Conversation", el("span", { className: "mono", text: String(first(row, ["conversation_id", "conversation"]) || DASH) })))));
    toggle.addEventListener("click", function () {
      var open = toggle.getAttribute("aria-expanded") !== "true";
      toggle.setAttribute("aria-expanded", open ? "true" : "false");
      toggle.setAttribute("aria-label", open ? "Hide details" : "Show details");
      toggle.firstChild.textContent = open ? "▾" : "▸";
      more.hidden = !open;
    });
    return [main, more];
  }

  function renderAudit(data) {
    var rows = listOf(data, ["items", "answers", "rows", "results"]).filter(function (r) { return r && typeof r === "object"; });
    var body = $("audit-rows");
    body.replaceChildren();
    rows.forEach(function (row, i) { auditRows(row, i).forEach(function (tr) { body.appendChild(tr); }); });
    var total = num(first(data, ["total", "count"]));
    var perPage = num(first(data, ["per_page", "page_size"])) || AUDIT_PER_PAGE;
    S.auditPages = total === null ? S.auditPage + (rows.length >= perPage ? 1 : 0)
      : Math.max(1, Math.ceil(total / perPage));
    $("audit-total").textContent = total === null ? String(rows.length) : fmtCount(total);
    $("audit-empty").hidden = rows.length > 0;
    $("audit-page").textContent = "Page " + S.auditPage + (total === null ? "" : " of " + S.auditPages);
    $("audit-prev").disabled = S.auditPage <= 1;
    $("audit-next").disabled = S.auditPage >= S.auditPages;
  }

  function auditGo(step) {
    S.auditPage = Math.max(1, S.auditPage + step);
    loadAudit();
  }

  // ------------------------------------------------------------------ per-article stats and gate calibration

  function loadArticles(p, current) {
    return load(BASE + "/articles" + q(p), current, renderArticles, function () { renderArticles([]); });
  }

  var ARTICLE_COLUMNS = [
    { label: "Article", cell: function (r) {
      var title = first(r, ["title", "name"]), id = first(r, ["id", "article_id", "source_id"]);
      return [title ? el("span", { text: String(title) }) : null,
              el("span", { className: "mono an-muted", text: (title ? " " : "") + String(id || DASH) })];
    } },
    { label: "Citations", num: true, cell: function (r) { return fmtCount(first(r, ["citations", "cited"])); } },
    { label: "Conversations", num: true, cell: function (r) { return fmtCount(r.conversations); } },
    { label: "Hand-off rate", num: true, cell: function (r) { return fmtRate(r.handoff_rate); } },
    { label: "CSAT", num: true, cell: function (r) {
      var rated = num(r.rated);
      return fmtCsat(first(r, ["csat", "csat_avg"])) + (rated ? " (" + rated + ")" : "");
    } }
  ];

  function renderArticles(data) {
    var rows = listOf(data, ["items", "articles", "rows"]).filter(function (r) { return r && typeof r === "object"; });
    fill($("articles-head"), el("tr", {}, ARTICLE_COLUMNS.map(function (c) {
      return el("th", { scope: "col", className: c.num ? "num" : null, text: c.label });
    })));
    fill($("articles-rows"), rows.map(function (row) {
      return el("tr", { "data-testid": "articles-row", dataset: { articleId: String(first(row, ["id", "article_id"]) || "") } },
        ARTICLE_COLUMNS.map(function (c) {
          var content;
          try { content = c.cell(row); } catch (e) { content = DASH; }
          return el("td", { className: c.num ? "num" : null }, content);
        }));
    }));
    $("articles-empty").hidden = rows.length > 0;
  }

  // The gate's calibration: two cells, each a count, a rate and a few examples.
  var GATE_CELLS = [
    { key: "abstained_then_agent_answered", label: "Abstained, then an agent answered",
      hint: "perhaps too strict", outOf: "abstentions" },
    { key: "answered_then_customer_asked_for_person", label: "Answered, then the customer asked for a person",
      hint: "perhaps too lenient", outOf: "answers" }
  ];

  function gateExample(example) {
    var reply = first(example, ["agent_reply"]);
    var kept = listOf(first(example, ["kept"]), []);
    return el("li", { className: "an-example" },
      el("span", { text: String(first(example, ["question"]) || DASH) }),
      el("span", { className: "an-muted", text: " · score " + fmtScore(first(example, ["top_score"])) +
        (example.abstain_reason ? " · " + humanize(example.abstain_reason) : "") }),
      kept.length ? el("div", { className: "an-muted", text: "Bot: " + kept.map(textOf).join(" ") }) : null,
      reply ? el("div", { className: "an-reply", text: "Agent: " + String(reply) }) : null);
  }

  function renderGate(data) {
    data = data && typeof data === "object" ? data : {};
    fill($("gate-head"), el("tr", {},
      el("th", { scope: "col", text: "What happened" }),
      el("th", { scope: "col", className: "num", text: "Answers" }),
      el("th", { scope: "col", className: "num", text: "Conversations" }),
      el("th", { scope: "col", className: "num", text: "Rate" }),
      el("th", { scope: "col", text: "Examples" })));
    var rows = GATE_CELLS.filter(function (c) { return data[c.key] && typeof data[c.key] === "object"; });
    fill($("gate-rows"), rows.map(function (c) {
      var cell = data[c.key];
      var examples = listOf(cell.examples, []);
      return el("tr", { "data-testid": "gate-row", dataset: { cell: c.key } },
        el("th", { scope: "row" }, c.label, el("div", { className: "an-muted", text: c.hint })),
        el("td", { className: "num", text: fmtCount(cell.count) }),
        el("td", { className: "num", text: fmtCount(cell.conversations) }),
        el("td", { className: "num", title: "of all " + c.outOf + " in the period", text: fmtRate(cell.rate) }),
        el("td", {}, examples.length ? el("details", {},
          el("summary", { text: examples.length + (examples.length === 1 ? " example" : " examples") }),
          el("ul", { className: "an-detail-list" }, examples.map(gateExample))) : DASH));
    }));
    $("gate-totals").textContent = num(data.answered) === null && num(data.abstained) === null ? "" :
      fmtCount(data.answered) + " answered · " + fmtCount(data.abstained) + " abstained";
    $("gate-empty").hidden = rows.length > 0;
  }

  function loadGate(p, current) {
    return load(BASE + "/gate-calibration" + q(p), current, renderGate, function () { renderGate({}); });
  }

  // ------------------------------------------------------------------ export

  function filenameOf(response, p) {
    var header = response.headers.get("Content-Disposition") || "";
    var m = /filename\*?=(?:UTF-8'')?"?([^";]+)"?/i.exec(header);
    if (m) { try { return decodeURIComponent(m[1]); } catch (e) { return m[1]; } }
    return "parley-conversations-" + filterValue("from") + "-to-" + filterValue("to") + ".csv";
  }

  function exportCsv() {
    var p = params();
    if (!p) return;
    var button = $("export-csv");
    button.disabled = true;
    button.setAttribute("aria-busy", "true");
    fetch("/api/v1" + BASE + "/export.csv" + q(p), {
      headers: { "Authorization": "Bearer " + session.token(), "Accept": "text/csv" }, credentials: "same-origin"
    }).then(function (response) {
      if (response.status === 401) { session.expire(); return null; }
      if (!response.ok) {
        return response.json().catch(function () { return null; }).then(function (body) {
          var err = (body && body.error) || {};
          throw new ParleyDom.ApiError(response.status, err.code || "http_" + response.status,
            err.message || "The export failed (" + response.status + ").");
        });
      }
      var name = filenameOf(response, p);
      return response.blob().then(function (blob) {
        var url = URL.createObjectURL(blob);
        var link = el("a", { href: url, download: name, hidden: true });
        document.body.appendChild(link);
        link.click();
        link.remove();
        setTimeout(function () { URL.revokeObjectURL(url); }, 30000);
        toast("Exported " + name + ".", "info");
      });
    }, function () {
      throw new ParleyDom.ApiError(0, "network", "Cannot reach the server. Check your connection.");
    }).catch(report).then(function () {
      button.disabled = false;
      button.removeAttribute("aria-busy");
    });
  }

  // ------------------------------------------------------------------ session

  function deny() {
    $("denied").hidden = false;
    $("dashboard").hidden = true;
    $("filters").hidden = true;
    clearInterval(S.todayTimer);
  }

  function start(agent) {
    S.agent = agent;
    var role = ROLES[agent.role];
    $("agent-name").textContent = agent.name + (role ? " (" + role + ")" : "");
    $("editor-link").hidden = agent.role !== "admin";
    if (!role) { deny(); return; }
    $("denied").hidden = true;
    $("dashboard").hidden = false;
    $("filters").hidden = false;
    loadAgents();
    reload();
    clearInterval(S.todayTimer);
    S.todayTimer = setInterval(refreshToday, TODAY_REFRESH_MS);
  }

  function stop() {
    S.agent = null;
    S.seq++;
    clearInterval(S.todayTimer);
    clearTimeout(S.reloadTimer);
    destroyCharts();
    var select = $("filter-agent");
    while (select.options.length > 1) select.remove(1);
  }

  function wire() {
    initFilters();
    $("filters").addEventListener("submit", function (event) { event.preventDefault(); reload(); });
    FILTERS.forEach(function (name) {
      $("filter-" + name).addEventListener("change", reloadSoon);
    });
    $("export-csv").addEventListener("click", exportCsv);
    $("audit-prev").addEventListener("click", function () { auditGo(-1); });
    $("audit-next").addEventListener("click", function () { auditGo(1); });
    $("audit-abstained").addEventListener("change", function () { S.auditPage = 1; loadAudit(); });
    document.addEventListener("visibilitychange", function () { if (!document.hidden) refreshToday(); });
    if (window.Chart && window.Chart.defaults) {
      window.Chart.defaults.font.family = getComputedStyle(document.body).fontFamily;
      window.Chart.defaults.color = "#475569";
    }
  }

  document.addEventListener("DOMContentLoaded", function () {
    wire();
    session.start();
  });
})();

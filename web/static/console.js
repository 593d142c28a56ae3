/* Parley agent console: plain JavaScript, no build step, nothing loaded from elsewhere.
 *
 * Everything a customer (or the bot, or a colleague) wrote is rendered with textContent,
 * never innerHTML: see el() below, the only way this file builds DOM.
 */
(function () {
  "use strict";

  var $ = ParleyDom.$, el = ParleyDom.el, append = ParleyDom.append, fill = ParleyDom.fill;
  var toast = ParleyDom.toast;
  var parseTime = ParleyDom.parseTime;

  var API = "/api/v1";
  var RECENT_KEY = "parley.console.recent";
  var TYPING_SHOW_MS = 3000;
  var TYPING_SEND_MS = 2000;
  var POLL_MS = 30000;

  var REASONS = {
    customer_request: "Asked for a person",
    negative_sentiment: "Upset customer",
    low_confidence: "Bot didn't understand",
    knowledge_abstained: "Bot had no answer"
  };
  var STATES = {
    bot: "With the bot",
    queued: "Waiting in queue",
    with_agent: "With an agent",
    resolved: "Resolved"
  };
  var LANGUAGES = { en: "English", zh: "Chinese" };
  var HIDDEN_SLOTS = { handoff_requested: true }; // bookkeeping, not something the customer said
  var ROLE_LABEL = { customer: "Customer", bot: "Bot", agent: "Agent" };

  var S = {
    agent: null,
    queue: [],
    mine: [],
    recent: [],
    agents: [],
    skew: 0,            // server clock minus browser clock (ms), from waiting_s
    openId: null,
    detail: null,
    messages: [],       // of the open conversation, merged from detail + stream
    messageIds: {},
    noteIds: {},
    unread: {},
    ws: null,
    wsAttempt: 0,
    wsTimer: null,
    wsHelloSeen: false,
    typingTimer: null,
    lastTypingSent: 0,
    refreshTimer: null,
    tickTimer: null,
    pollTimer: null,
    loadSeq: 0
  };

  // ------------------------------------------------------------------ helpers

  function clock(value) {
    var t = parseTime(value);
    if (isNaN(t)) return "";
    return new Date(t).toLocaleTimeString([], { hour: "2-digit", minute: "2-digit" });
  }

  function duration(ms) {
    var s = Math.max(0, Math.floor(ms / 1000));
    var h = Math.floor(s / 3600), m = Math.floor((s % 3600) / 60), sec = s % 60;
    if (h) return h + "h " + String(m).padStart(2, "0") + "m";
    return m + ":" + String(sec).padStart(2, "0");
  }

  function reasonText(reason) {
    if (!reason) return "";
    return REASONS[reason] || reason.replace(/_/g, " ");
  }

  function shortId(id) { return String(id || "").slice(0, 8); }

  function languageName(code) { return LANGUAGES[code] || String(code || "").toUpperCase(); }

  function agentName(id) {
    if (S.agent && id === S.agent.id) return "You";
    var found = S.agents.filter(function (a) { return a.id === id; })[0];
    return found ? found.name : (id ? "Agent #" + id : "Agent");
  }

  // ------------------------------------------------------------------ session

  var session = ParleySession.create({
    storageKey: "parley.console.token",
    adminOnly: null,
    onStart: start,
    onClear: clearPageState,
    // Going offline first: customers should not wait for someone who has left.
    beforeLogout: function () { return api("PUT", "/agent/presence", { presence: "offline" }); }
  });
  var api = session.api;

  function report(err) {
    if (session.handled(err)) return; // already back on the login form
    toast((err && err.message) || "Something went wrong.");
  }

  function stopLive() {
    if (S.ws) { S.ws.onclose = null; try { S.ws.close(1000); } catch (e) { /* already closed */ } }
    S.ws = null;
    clearTimeout(S.wsTimer); clearInterval(S.tickTimer); clearInterval(S.pollTimer);
    clearTimeout(S.refreshTimer); clearTimeout(S.typingTimer);
  }

  function clearPageState() {
    stopLive();
    S.agent = null; S.openId = null; S.detail = null;
    ["transfer-dialog", "handback-dialog"].forEach(function (id) {
      var d = $(id); if (d.open) d.close();
    });
  }

  function start(agent) {
    S.agent = agent;
    try { S.recent = JSON.parse(sessionStorage.getItem(RECENT_KEY + "." + agent.id) || "[]"); }
    catch (e) { S.recent = []; }
    $("agent-name").textContent = agent.name + (agent.role === "admin" ? " (admin)" : "");
    $("analytics-link").hidden = !(agent.role === "admin" || agent.role === "analyst");
    renderPresence();
    renderRecent();
    closeConversation();
    loadAgents();
    loadLists();
    connect();
    S.tickTimer = setInterval(tick, 1000);
    S.pollTimer = setInterval(function () { loadLists(); }, POLL_MS);
  }

  // ------------------------------------------------------------------ presence

  function renderPresence() {
    var presence = (S.agent && S.agent.presence) || "offline";
    var button = $("presence");
    button.dataset.presence = presence;
    button.setAttribute("aria-checked", presence === "online" ? "true" : "false");
    $("presence-label").textContent = presence === "online" ? "Online" : presence === "away" ? "Away" : "Offline";
    button.title = presence === "online" ? "You receive conversations. Click to go away."
      : "You do not receive conversations. Click to go online.";
  }

  function togglePresence() {
    var next = S.agent.presence === "online" ? "away" : "online";
    var button = $("presence");
    button.disabled = true;
    api("PUT", "/agent/presence", { presence: next }).then(function (agent) {
      S.agent.presence = agent.presence;
      renderPresence();
    }).catch(report).then(function () { button.disabled = false; });
  }

  // ------------------------------------------------------------------ lists

  function loadAgents() {
    return api("GET", "/agents").then(function (agents) {
      S.agents = agents || [];
      if (S.detail) renderNotes();
    }).catch(report);
  }

  function loadLists() {
    if (!session.token()) return Promise.resolve();
    var fetchedAt = Date.now();
    return Promise.all([api("GET", "/agent/queue"), api("GET", "/agent/conversations")])
      .then(function (results) {
        S.queue = results[0] || [];
        S.mine = results[1] || [];
        var sample = S.queue.filter(function (q) { return q.waiting_s !== null && q.queued_at; })[0];
        if (sample) S.skew = sample.waiting_s * 1000 - (fetchedAt - parseTime(sample.queued_at));
        renderQueue();
        renderMine();
      }).catch(report);
  }

  function scheduleRefresh() {
    clearTimeout(S.refreshTimer);
    S.refreshTimer = setTimeout(loadLists, 150);
  }

  function waitedMs(item) {
    var t = parseTime(item.queued_at);
    return isNaN(t) ? 0 : Date.now() + S.skew - t;
  }

  function breached(item) {
    var sla = item.sla || {};
    if (sla.first_response_breached || sla.resolution_breached) return true;
    var now = Date.now() + S.skew;
    var firstDue = parseTime(sla.first_response_due);
    return item.state === "queued" && !isNaN(firstDue) && now > firstDue;
  }

  function badges(item) {
    var out = [el("span", { className: "badge lang", title: languageName(item.locale), text: String(item.locale || "").toUpperCase() })];
    if (item.priority > 0) {
      out.push(el("span", { className: "badge prio prio-" + Math.min(item.priority, 3), "data-testid": "priority",
        title: "Priority " + item.priority, text: item.priority >= 2 ? "Urgent" : "High" }));
    }
    if (item.skill) out.push(el("span", { className: "badge skill", title: "Skill", text: item.skill }));
    if (breached(item)) {
      out.push(el("span", { className: "badge breach", "data-testid": "sla-breach",
        title: "Service-level target missed", text: "SLA breached" }));
    }
    return out;
  }

  function renderQueue() {
    var list = $("queue-list");
    list.replaceChildren();
    S.queue.forEach(function (item) {
      var wait = el("span", { className: "wait", "data-testid": "wait", dataset: { queuedAt: item.queued_at || "" },
        title: "Waiting time", text: duration(waitedMs(item)) });
      var row = el("li", { className: "item" + (item.id === S.openId ? " active" : ""), "data-testid": "queue-item",
        dataset: { conversationId: item.id } },
        el("button", { type: "button", className: "item-open", "aria-label": "Preview conversation " + shortId(item.id),
          onclick: function () { openConversation(item.id); } },
          el("span", { className: "item-top" },
            el("span", { className: "reason", "data-testid": "reason", text: reasonText(item.handoff_reason) || "Waiting" }),
            wait),
          el("span", { className: "item-badges" }, badges(item)),
          item.last_message ? el("span", { className: "last", text: item.last_message }) : null),
        el("button", { type: "button", className: "btn primary small take", "data-testid": "take",
          "aria-label": "Take conversation " + shortId(item.id), text: "Take",
          onclick: function (event) { claim(item.id, event.currentTarget); } }));
      list.appendChild(row);
    });
    $("queue-count").textContent = String(S.queue.length);
    $("queue-empty").hidden = S.queue.length > 0;
    document.title = (S.queue.length ? "(" + S.queue.length + ") " : "") + "Parley — Agent console";
  }

  function renderMine() {
    var list = $("mine-list");
    list.replaceChildren();
    S.mine.forEach(function (item) {
      var unread = !!S.unread[item.id];
      list.appendChild(el("li", { className: "item" + (item.id === S.openId ? " active" : "") + (unread ? " unread" : ""),
        "data-testid": "my-conversation", dataset: { conversationId: item.id } },
        el("button", { type: "button", className: "item-open", "aria-label": "Open conversation " + shortId(item.id),
          onclick: function () { openConversation(item.id); } },
          el("span", { className: "item-top" },
            el("span", { className: "reason", text: reasonText(item.handoff_reason) || "Conversation" }),
            el("span", { className: "short-id", text: "#" + shortId(item.id) }),
            unread ? el("span", { className: "dot", title: "New message", "aria-label": "New message" }) : null),
          el("span", { className: "item-badges" }, badges(item)),
          item.last_message ? el("span", { className: "last", text: item.last_message }) : null)));
    });
    $("mine-count").textContent = String(S.mine.length);
    $("mine-empty").hidden = S.mine.length > 0;
  }

  function rememberClosed(conversation, state) {
    if (!S.agent || !conversation) return;
    var entry = S.recent.filter(function (r) { return r.id === conversation.id; })[0];
    if (!entry) {
      entry = { id: conversation.id };
      S.recent.unshift(entry);
    }
    entry.state = state || conversation.state;
    entry.locale = conversation.locale;
    entry.reason = conversation.handoff_reason;
    entry.last_message = conversation.last_message || entry.last_message || null;
    entry.closed_at = new Date().toISOString();
    S.recent = S.recent.slice(0, 20);
    saveRecent();
    renderRecent();
  }

  function saveRecent() {
    if (S.agent) sessionStorage.setItem(RECENT_KEY + "." + S.agent.id, JSON.stringify(S.recent));
  }

  function renderRecent() {
    var list = $("recent-list");
    list.replaceChildren();
    S.recent.forEach(function (item) {
      list.appendChild(el("li", { className: "item compact" + (item.id === S.openId ? " active" : ""),
        "data-testid": "recent-item", dataset: { conversationId: item.id } },
        el("button", { type: "button", className: "item-open", "aria-label": "Reopen conversation " + shortId(item.id),
          onclick: function () { openConversation(item.id); } },
          el("span", { className: "item-top" },
            el("span", { className: "reason", text: reasonText(item.reason) || "Conversation " + shortId(item.id) }),
            el("span", { className: "wait", text: clock(item.closed_at) })),
          el("span", { className: "item-badges" },
            el("span", { className: "badge state state-" + item.state, text: STATES[item.state] || item.state }),
            item.locale ? el("span", { className: "badge lang", text: String(item.locale).toUpperCase() }) : null),
          item.csat ? el("span", { className: "stars small", text: "★".repeat(item.csat) + "☆".repeat(5 - item.csat),
            "aria-label": "Rated " + item.csat + " of 5" }) : null,
          item.last_message ? el("span", { className: "last", text: item.last_message }) : null)));
    });
    $("recent-empty").hidden = S.recent.length > 0;
  }

  function tick() {
    document.querySelectorAll("#queue-list [data-testid=wait]").forEach(function (node) {
      var t = parseTime(node.dataset.queuedAt);
      if (!isNaN(t)) node.textContent = duration(Date.now() + S.skew - t);
    });
  }

  function claim(id, button) {
    if (button) button.disabled = true;
    return api("POST", "/agent/conversations/" + encodeURIComponent(id) + "/claim").then(function (item) {
      loadLists();
      openConversation(item.id);
    }).catch(function (err) {
      if (err.code === "already_assigned") {
        toast("Another agent took it.", "warning");
        loadLists();
        if (S.openId === id) refreshOpen();
      } else report(err);
    }).then(function () { if (button) button.disabled = false; });
  }

  function takeNext() {
    var button = $("take-next");
    button.disabled = true;
    api("POST", "/agent/queue/next").then(function (item) {
      loadLists();
      if (item) openConversation(item.id);
      else toast("No conversation is waiting for you right now (language and skills are taken into account).", "info");
    }).catch(report).then(function () { button.disabled = false; });
  }

  // ------------------------------------------------------------------ the open conversation

  function holding() {
    var c = S.detail && S.detail.conversation;
    if (!c || c.state !== "with_agent") return false;
    return c.agent_id === S.agent.id || S.agent.role === "admin";
  }

  function closeConversation() {
    S.openId = null; S.detail = null; S.messages = []; S.messageIds = {}; S.noteIds = {};
    $("conversation").hidden = true;
    $("no-conversation").hidden = false;
    $("context").hidden = true;
    $("context-empty").hidden = false;
  }

  function openConversation(id) {
    if (S.openId !== id) {
      S.openId = id;
      S.messages = []; S.messageIds = {}; S.noteIds = {};
      $("reply-input").value = "";
      $("note-input").value = "";
      $("customer-typing").hidden = true;
      $("transcript").replaceChildren();
      document.querySelector(".col-context").scrollTop = 0;
    }
    delete S.unread[id];
    renderQueue(); renderMine(); renderRecent();
    return refreshOpen();
  }

  function refreshOpen() {
    var id = S.openId;
    if (!id) return Promise.resolve();
    var seq = ++S.loadSeq;
    return api("GET", "/agent/conversations/" + encodeURIComponent(id)).then(function (detail) {
      if (seq !== S.loadSeq || S.openId !== id) return;
      S.detail = detail;
      mergeMessages(detail.messages || []);
      renderConversation();
    }).catch(function (err) {
      if (seq !== S.loadSeq) return;
      if (err.status === 404) {
        S.recent = S.recent.filter(function (r) { return r.id !== id; });
        saveRecent(); renderRecent();
        closeConversation();
      }
      report(err);
    });
  }

  function mergeMessages(messages) {
    messages.forEach(function (m) {
      if (S.messageIds[m.id]) return;
      S.messageIds[m.id] = true;
      S.messages.push(m);
    });
    S.messages.sort(function (a, b) { return parseTime(a.created_at) - parseTime(b.created_at); });
  }

  function renderConversation() {
    var d = S.detail, c = d.conversation;
    $("no-conversation").hidden = true;
    $("conversation").hidden = false;
    $("conversation").dataset.conversationId = c.id;
    $("conversation").dataset.state = c.state;
    $("context-empty").hidden = true;
    $("context").hidden = false;

    $("conv-title").textContent = "Conversation " + shortId(c.id);
    var meta = $("conv-meta");
    fill(meta,
      el("span", { className: "badge state state-" + c.state, "data-testid": "conv-state", text: STATES[c.state] || c.state }),
      el("span", { className: "badge lang", text: languageName(c.locale) }),
      c.handoff_reason ? el("span", { className: "meta-text", text: reasonText(c.handoff_reason) }) : null,
      c.state === "with_agent" && c.agent_id ? el("span", { className: "meta-text", text: "Held by " + agentName(c.agent_id) }) : null,
      breached(c) ? el("span", { className: "badge breach", "data-testid": "sla-breach", text: "SLA breached" }) : null);

    var mine = holding();
    $("conv-take").hidden = c.state !== "queued";
    ["transfer", "handback", "resolve"].forEach(function (id) { $(id).hidden = !mine; });
    $("reply-input").disabled = !mine;
    $("reply-send").disabled = !mine;
    var banner = $("conv-banner");
    var notice = "";
    if (c.state === "queued") notice = "This customer is waiting for a person. Take the conversation to reply.";
    else if (c.state === "bot") notice = "The bot is handling this conversation.";
    else if (c.state === "resolved") notice = "This conversation is resolved.";
    else if (!mine) notice = "Another agent holds this conversation.";
    banner.textContent = notice;
    banner.hidden = !notice;

    renderTranscript();
    renderContext();
  }

  function messageNode(m) {
    var role = ROLE_LABEL[m.role] ? m.role : "bot";
    var body = el("div", { className: "bubble" }, el("div", { className: "bubble-text", "data-testid": "message-text", text: m.text }));
    if (m.buttons && m.buttons.length) {
      body.appendChild(el("div", { className: "chips", "aria-label": "Buttons offered" },
        m.buttons.map(function (b) { return el("span", { className: "chip", title: b.payload, text: b.title }); })));
    }
    if (m.citations && m.citations.length) {
      body.appendChild(el("div", { className: "sources" }, "Sources: ",
        m.citations.map(function (cite, i) {
          return [i ? ", " : null, el("span", { className: "cite", title: cite.snippet, text: cite.title || cite.source_id })];
        })));
    }
    return el("li", { className: "msg msg-" + role, "data-testid": "conversation-message",
      dataset: { role: role, messageId: m.id } },
      el("div", { className: "msg-meta" },
        el("span", { className: "who", text: ROLE_LABEL[role] }),
        el("time", { datetime: m.created_at, text: clock(m.created_at) })),
      body);
  }

  function renderTranscript() {
    var list = $("transcript");
    var nearBottom = list.scrollHeight - list.scrollTop - list.clientHeight < 80;
    fill(list, S.messages.map(messageNode));
    if (nearBottom || list.dataset.for !== S.openId) list.scrollTop = list.scrollHeight;
    list.dataset.for = S.openId;
  }

  function appendMessage(m) {
    if (!m || !m.id || S.messageIds[m.id]) return;
    var last = S.messages[S.messages.length - 1];
    mergeMessages([m]);
    var list = $("transcript");
    if (last && parseTime(m.created_at) < parseTime(last.created_at)) { renderTranscript(); return; }
    var nearBottom = list.scrollHeight - list.scrollTop - list.clientHeight < 120;
    list.appendChild(messageNode(m));
    if (nearBottom || m.role === "agent") list.scrollTop = list.scrollHeight;
    if (m.role === "customer") $("customer-typing").hidden = true;
  }

  function renderContext() {
    renderCsat();
    renderSummary();
    renderSuggestions();
    renderNotes();
  }

  function renderCsat() {
    var d = S.detail, box = $("csat");
    if (!d || d.csat_score === null || d.csat_score === undefined) { box.hidden = true; box.replaceChildren(); return; }
    var score = Math.max(0, Math.min(5, d.csat_score));
    box.hidden = false;
    box.dataset.score = String(d.csat_score);
    fill(box,
      el("div", { className: "csat-label", text: "Customer rating" }),
      el("div", { className: "csat-score" },
        el("span", { className: "stars", "aria-hidden": "true", text: "★".repeat(score) + "☆".repeat(5 - score) }),
        el("span", { className: "csat-num", text: d.csat_score + " / 5" })),
      d.csat_comment ? el("blockquote", { className: "csat-comment", text: d.csat_comment }) : null);
  }

  function section(title, content) {
    return el("div", { className: "summary-section" }, el("h3", { text: title }), content);
  }

  function scalar(value) {
    if (value === null || value === undefined) return "";
    return typeof value === "object" ? JSON.stringify(value) : String(value);
  }

  function renderSummary() {
    var s = (S.detail && S.detail.summary) || {};
    var box = $("summary");
    var parts = [];
    parts.push(section("Why they were handed over",
      el("p", { className: "handoff-reason", "data-testid": "summary-reason",
        text: reasonText(s.handoff_reason) || "—" })));

    var intents = [];
    (s.intents || []).forEach(function (name) { if (intents[intents.length - 1] !== name) intents.push(name); });
    parts.push(section("What they asked about", intents.length
      ? el("ul", { className: "tags", "data-testid": "summary-intents" },
          intents.map(function (name) {
            return el("li", { className: "tag", "data-testid": "intent", dataset: { intent: name }, text: name.replace(/_/g, " ") });
          }))
      : el("p", { className: "muted", text: "No intents recognised." })));

    var keys = Object.keys(s.slots || {}).filter(function (k) { return !HIDDEN_SLOTS[k]; });
    parts.push(section("Details collected", keys.length
      ? el("dl", { className: "kv", "data-testid": "summary-slots" },
          keys.map(function (key) {
            return el("div", { className: "kv-row", "data-testid": "slot", dataset: { slot: key } },
              el("dt", { text: key.replace(/_/g, " ") }),
              el("dd", { text: scalar(s.slots[key]) }));
          }))
      : el("p", { className: "muted", text: "Nothing collected yet." })));

    var slotValues = keys.map(function (k) { return scalar(s.slots[k]); });
    var extra = (s.entities || []).filter(function (e) { return slotValues.indexOf(scalar(e.value)) < 0; });
    if (extra.length) {
      parts.push(section("Also mentioned", el("ul", { className: "tags" },
        extra.map(function (e) { return el("li", { className: "tag light", text: (e.entity || "?") + ": " + scalar(e.value) }); }))));
    }

    var answers = s.knowledge_answers || [];
    if (answers.length) {
      var seen = {};
      parts.push(section("What the bot already answered", el("ul", { className: "answers", "data-testid": "summary-answers" },
        answers.filter(function (a) { var k = a.source_id + a.snippet; if (seen[k]) return false; seen[k] = true; return true; })
          .map(function (a) {
            return el("li", { className: "answer" },
              el("div", { className: "answer-title", text: a.title || a.source_id }),
              el("div", { className: "answer-snippet", text: a.snippet }),
              el("div", { className: "answer-source", text: a.source_id }));
          }))));
    }
    fill(box, parts);
  }

  function renderSuggestions() {
    var list = $("suggestions");
    var items = (S.detail && S.detail.suggestions) || [];
    fill(list, items.map(function (s) {
      return el("li", null, el("button", { type: "button", className: "suggestion", "data-testid": "suggestion",
        dataset: { sourceId: s.source_id }, title: "Use this reply",
        onclick: function () { useSuggestion(s.text); } },
        el("span", { className: "suggestion-title", text: s.title }),
        el("span", { className: "suggestion-text", text: s.text }),
        el("span", { className: "suggestion-source", text: s.source_id })));
    }));
    $("suggestions-empty").hidden = items.length > 0;
  }

  function useSuggestion(text) {
    var input = $("reply-input");
    if (input.disabled) { toast("Take the conversation to reply.", "info"); return; }
    input.value = text;
    input.focus();
    input.setSelectionRange(text.length, text.length);
  }

  function renderNotes() {
    var list = $("notes");
    var notes = (S.detail && S.detail.notes) || [];
    S.noteIds = {};
    fill(list, notes.map(function (n) { S.noteIds[n.id] = true; return noteNode(n); }));
  }

  function noteNode(n) {
    return el("li", { className: "note", "data-testid": "note", dataset: { noteId: n.id } },
      el("div", { className: "note-meta" },
        el("span", { text: agentName(n.agent_id) }),
        el("time", { datetime: n.created_at, text: clock(n.created_at) })),
      el("div", { className: "note-text", text: n.text }));
  }

  function appendNote(n) {
    if (!S.detail || !n || S.noteIds[n.id]) return;
    S.noteIds[n.id] = true;
    S.detail.notes = (S.detail.notes || []).concat([n]);
    $("notes").appendChild(noteNode(n));
  }

  // ------------------------------------------------------------------ agent actions

  function sendReply(event) {
    if (event) event.preventDefault();
    var input = $("reply-input"), id = S.openId;
    var text = input.value.trim();
    if (!text || !id || !holding()) return;
    $("reply-send").disabled = true;
    api("POST", "/agent/conversations/" + encodeURIComponent(id) + "/messages", { text: text })
      .then(function (message) {
        if (S.openId === id) {
          if (input.value.trim() === text) input.value = "";
          appendMessage(message);
        }
        S.lastTypingSent = 0;
      }).catch(report).then(function () { $("reply-send").disabled = !holding(); input.focus(); });
  }

  function replyKey(event) {
    if (event.key === "Enter" && !event.shiftKey && !event.isComposing) {
      event.preventDefault();
      sendReply();
    }
  }

  function replyTyping() {
    var now = Date.now();
    if (!S.openId || !holding() || !S.ws || S.ws.readyState !== 1) return;
    if (now - S.lastTypingSent < TYPING_SEND_MS) return;
    S.lastTypingSent = now;
    try { S.ws.send(JSON.stringify({ type: "typing", conversation_id: S.openId })); } catch (e) { /* reconnecting */ }
  }

  function addNote(event) {
    event.preventDefault();
    var input = $("note-input"), id = S.openId, text = input.value.trim();
    if (!text || !id) return;
    $("note-add").disabled = true;
    api("POST", "/agent/conversations/" + encodeURIComponent(id) + "/notes", { text: text })
      .then(function (note) {
        if (S.openId === id) { input.value = ""; appendNote(note); }
      }).catch(report).then(function () { $("note-add").disabled = false; });
  }

  function noteKey(event) {
    if (event.key === "Enter" && (event.ctrlKey || event.metaKey)) addNote(event);
  }

  function afterLeaving(item, what) {
    rememberClosed(Object.assign({}, S.detail.conversation, { state: item.state, agent_id: item.agent_id }), item.state);
    loadLists();
    if (S.openId === item.id) refreshOpen();
    toast(what, "info");
  }

  function resolve() {
    var id = S.openId;
    if (!id) return;
    $("resolve").disabled = true;
    api("POST", "/agent/conversations/" + encodeURIComponent(id) + "/resolve").then(function (item) {
      afterLeaving(item, "Conversation resolved. The customer was asked to rate it.");
    }).catch(report).then(function () { $("resolve").disabled = false; });
  }

  // Transfer ---------------------------------------------------------

  function openTransfer() {
    var select = $("transfer-agent");
    var others = S.agents.filter(function (a) { return a.id !== S.agent.id; });
    fill(select, [el("option", { value: "", text: others.length ? "Choose a colleague…" : "No colleagues" })]
      .concat(others.map(function (a) {
        var label = a.name + " — " + a.presence + (a.languages && a.languages.length ? " · " + a.languages.join("/") : "")
          + (a.skills && a.skills.length ? " · " + a.skills.join(", ") : "");
        return el("option", { value: String(a.id), text: label });
      })));
    var skills = {};
    S.agents.forEach(function (a) { (a.skills || []).forEach(function (s) { skills[s] = true; }); });
    var datalist = $("transfer-skills");
    fill(datalist, Object.keys(skills).sort().map(function (s) { return el("option", { value: s }); }));
    $("transfer-skill").value = "";
    $("transfer-error").hidden = true;
    document.querySelector("input[name=transfer-kind][value=agent]").checked = true;
    $("transfer-dialog").showModal();
    select.focus();
  }

  function submitTransfer(event) {
    event.preventDefault();
    var id = S.openId;
    var kind = document.querySelector("input[name=transfer-kind]:checked").value;
    var body;
    if (kind === "agent") {
      if (!$("transfer-agent").value) { formError("transfer-error", "Choose a colleague, or transfer to a team."); return; }
      body = { agent_id: Number($("transfer-agent").value) };
    } else {
      body = { skill: $("transfer-skill").value.trim() || null };
    }
    $("transfer-submit").disabled = true;
    api("POST", "/agent/conversations/" + encodeURIComponent(id) + "/transfer", body).then(function (item) {
      $("transfer-dialog").close();
      var target = body.agent_id ? agentName(body.agent_id) : body.skill ? "the " + body.skill + " team" : "the queue";
      afterLeaving(item, "Transferred to " + target + ".");
    }).catch(function (err) {
      if (err.status !== 401) formError("transfer-error", err.message);
    }).then(function () { $("transfer-submit").disabled = false; });
  }

  // Hand back --------------------------------------------------------

  function kvRow(key, value, type) {
    var row = el("div", { className: "kv-edit", "data-testid": "handback-row", dataset: { type: type || "string" } });
    var keyInput = el("input", { type: "text", className: "kv-key", "data-testid": "handback-key", "aria-label": "Detail name",
      placeholder: "name, e.g. order_id", maxlength: "64" });
    keyInput.value = key || "";
    var valueInput = el("input", { type: "text", className: "kv-value", "data-testid": "handback-value", "aria-label": "Value",
      placeholder: "value", maxlength: "500" });
    valueInput.value = value === null || value === undefined ? "" : String(value);
    row.appendChild(keyInput);
    row.appendChild(valueInput);
    row.appendChild(el("button", { type: "button", className: "btn ghost small icon", "aria-label": "Remove this detail",
      text: "×", onclick: function () { row.remove(); } }));
    return row;
  }

  function openHandback() {
    var slots = (S.detail && S.detail.summary && S.detail.summary.slots) || {};
    var rows = $("handback-rows");
    rows.replaceChildren();
    Object.keys(slots).forEach(function (key) {
      var value = slots[key];
      if (HIDDEN_SLOTS[key] || (value !== null && typeof value === "object")) return;
      rows.appendChild(kvRow(key, value, typeof value));
    });
    if (!rows.children.length) rows.appendChild(kvRow("", ""));
    $("handback-error").hidden = true;
    $("handback-dialog").showModal();
    var first = rows.querySelector(".kv-value");
    if (first) first.focus();
  }

  function typed(text, type) {
    if (type === "boolean") {
      if (/^(true|yes|1)$/i.test(text)) return true;
      if (/^(false|no|0)$/i.test(text)) return false;
    }
    if (type === "number" && text !== "" && !isNaN(Number(text))) return Number(text);
    return text;
  }

  function submitHandback(event) {
    event.preventDefault();
    var id = S.openId, slots = {}, bad = false;
    $("handback-rows").querySelectorAll(".kv-edit").forEach(function (row) {
      var key = row.querySelector(".kv-key").value.trim();
      var value = row.querySelector(".kv-value").value.trim();
      if (!key && !value) return;
      if (!/^[A-Za-z_][A-Za-z0-9_]*$/.test(key)) { bad = true; return; }
      slots[key] = value === "" ? null : typed(value, row.dataset.type);
    });
    if (bad) { formError("handback-error", "Detail names use letters, digits and underscores (e.g. order_id)."); return; }
    $("handback-submit").disabled = true;
    api("POST", "/agent/conversations/" + encodeURIComponent(id) + "/handback", { slots: slots }).then(function (item) {
      $("handback-dialog").close();
      afterLeaving(item, "Handed back to the bot.");
    }).catch(function (err) {
      if (err.status !== 401) formError("handback-error", err.message);
    }).then(function () { $("handback-submit").disabled = false; });
  }

  function formError(id, message) {
    var box = $(id);
    box.textContent = message;
    box.hidden = false;
  }

  // ------------------------------------------------------------------ live stream

  function setConnection(state, text) {
    var node = $("connection");
    node.dataset.state = state;
    node.textContent = text;
  }

  function connect() {
    if (!session.token()) return;
    var scheme = location.protocol === "https:" ? "wss://" : "ws://";
    var url = scheme + location.host + API + "/agent/stream?token=" +
      encodeURIComponent(session.token());
    var ws;
    try { ws = new WebSocket(url); } catch (e) { reconnectLater(); return; }
    S.ws = ws;
    S.wsHelloSeen = false;
    setConnection("connecting", S.wsAttempt ? "Reconnecting…" : "Connecting…");
    ws.onmessage = function (event) {
      var data;
      try { data = JSON.parse(event.data); } catch (e) { return; }
      onEvent(data);
    };
    ws.onclose = function (event) {
      if (S.ws !== ws) return;
      S.ws = null;
      if (event.code === 4401 || event.code === 4403) { session.expire(); return; }
      reconnectLater();
    };
    ws.onerror = function () { /* onclose follows */ };
  }

  function reconnectLater() {
    if (!session.token()) return;
    var delay = Math.min(30000, 1000 * Math.pow(2, S.wsAttempt)) * (0.8 + Math.random() * 0.4);
    S.wsAttempt += 1;
    setConnection("offline", "Offline — reconnecting…");
    clearTimeout(S.wsTimer);
    S.wsTimer = setTimeout(function () {
      // A session that ended while we were away must not loop forever on 4401 closes.
      api("GET", "/auth/me").then(function () { connect(); }, function (err) {
        if (err.status !== 401) reconnectLater();
      });
    }, delay);
  }

  function onEvent(event) {
    var id = event.conversation_id;
    switch (event.type) {
      case "hello":
        var again = S.wsAttempt > 0;
        S.wsAttempt = 0;
        S.wsHelloSeen = true;
        setConnection("open", "Live");
        if (again) { loadLists(); refreshOpen(); }
        break;
      case "message":
        if (id === S.openId) appendMessage(event.message);
        else if (event.message && event.message.role === "customer" &&
                 S.mine.some(function (c) { return c.id === id; })) {
          S.unread[id] = true;
          renderMine();
        }
        updateLastMessage(id, event.message);
        break;
      case "state":
        scheduleRefresh();
        if (event.transferred_by && S.agent && event.agent_id === S.agent.id && event.transferred_by !== S.agent.id) {
          toast(agentName(event.transferred_by) + " transferred a conversation to you.", "info");
        }
        if (id === S.openId) {
          var wasMine = holding();
          refreshOpen().then(function () {
            if (wasMine && !holding() && S.detail) rememberClosed(S.detail.conversation, S.detail.conversation.state);
          });
        }
        break;
      case "typing":
        if (event.role === "customer" && id === S.openId) showTyping();
        break;
      case "note":
        if (id === S.openId) appendNote(event.note);
        break;
      case "csat":
        S.recent.forEach(function (r) { if (r.id === id) r.csat = event.score; });
        saveRecent(); renderRecent();
        if (id === S.openId && S.detail) { S.detail.csat_score = event.score; refreshOpen(); }
        break;
      case "presence":
        if (S.agent && event.agent_id === S.agent.id && event.presence) {
          S.agent.presence = event.presence;
          renderPresence();
        }
        S.agents.forEach(function (a) { if (a.id === event.agent_id) a.presence = event.presence; });
        break;
      default:
        break;
    }
  }

  function updateLastMessage(id, message) {
    if (!message || message.role !== "customer") return;
    [S.queue, S.mine].forEach(function (list) {
      list.forEach(function (c) { if (c.id === id) c.last_message = message.text; });
    });
    renderQueue(); renderMine();
  }

  function showTyping() {
    var node = $("customer-typing");
    node.hidden = false;
    clearTimeout(S.typingTimer);
    S.typingTimer = setTimeout(function () { node.hidden = true; }, TYPING_SHOW_MS);
  }

  // ------------------------------------------------------------------ wiring

  function wire() {
    $("presence").addEventListener("click", togglePresence);
    $("take-next").addEventListener("click", takeNext);
    $("conv-take").addEventListener("click", function (e) { if (S.openId) claim(S.openId, e.currentTarget); });
    $("reply-form").addEventListener("submit", sendReply);
    $("reply-input").addEventListener("keydown", replyKey);
    $("reply-input").addEventListener("input", replyTyping);
    $("note-form").addEventListener("submit", addNote);
    $("note-input").addEventListener("keydown", noteKey);
    $("resolve").addEventListener("click", resolve);
    $("transfer").addEventListener("click", openTransfer);
    $("transfer-form").addEventListener("submit", submitTransfer);
    $("transfer-agent").addEventListener("change", function () {
      document.querySelector("input[name=transfer-kind][value=agent]").checked = true;
    });
    $("transfer-skill").addEventListener("input", function () {
      document.querySelector("input[name=transfer-kind][value=skill]").checked = true;
    });
    $("handback").addEventListener("click", openHandback);
    $("handback-form").addEventListener("submit", submitHandback);
    $("handback-add-row").addEventListener("click", function () {
      var row = kvRow("", "");
      $("handback-rows").appendChild(row);
      row.querySelector(".kv-key").focus();
    });
    document.querySelectorAll("dialog [data-close]").forEach(function (button) {
      button.addEventListener("click", function () { button.closest("dialog").close(); });
    });
    document.addEventListener("visibilitychange", function () {
      if (document.visibilityState === "visible" && session.token()) loadLists();
    });
  }

  document.addEventListener("DOMContentLoaded", function () {
    wire();
    session.start();
  });
})();

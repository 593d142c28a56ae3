/* Parley knowledge editor: plain JavaScript, no build step, nothing loaded from elsewhere.
 *
 * Everything an author, a customer or the bot wrote is rendered with textContent (see el()).
 * The one exception is the Markdown preview, whose HTML comes from the server's safe renderer
 * (POST /api/v1/kb/preview escapes everything and adds only basic Markdown tags).
 */
(function () {
  "use strict";

  var $ = ParleyDom.$, el = ParleyDom.el, append = ParleyDom.append, fill = ParleyDom.fill;
  var q = ParleyDom.query, toast = ParleyDom.toast;
  var parseTime = ParleyDom.parseTime;

  var PAGE_SIZE = 50;
  var PREVIEW_DELAY_MS = 250;
  var STATUS_TEXT = { draft: "Draft", published: "Published", deleted: "Deleted" };
  var KIND_TEXT = { article: "Article", faq: "FAQ" };
  var LANG_TEXT = { en: "EN", zh: "中文" };

  var S = {
    agent: null,
    agents: {},          // id -> name, for version authors
    view: "articles",
    offset: 0,
    total: 0,
    current: null,       // the open article as last loaded or saved (null: a new one)
    previewTimer: null,
    previewSeq: 0,
    searchTimer: null,
    entity: null,        // the open entity (null: a new one)
    entitySearchTimer: null,
    auditOffset: 0,
    articleIds: {}
  };

  // ------------------------------------------------------------------ helpers

  function option(value, text, selected) {
    return el("option", { value: value, text: text, selected: !!selected });
  }

  function when(value) {
    var t = parseTime(value);
    if (isNaN(t)) return "";
    return new Date(t).toLocaleString([], { year: "numeric", month: "short", day: "numeric",
      hour: "2-digit", minute: "2-digit" });
  }

  function agentName(id) {
    if (id === null || id === undefined) return "Import";
    if (S.agent && id === S.agent.id) return "You";
    return S.agents[id] || "Agent #" + id;
  }

  function setStatus(node, state, message) {
    node.dataset.state = state;
    node.textContent = message;
    node.hidden = !message;
  }

  function splitTags(text) {
    var seen = {};
    return String(text || "").split(/[,，]/).map(function (t) { return t.trim(); })
      .filter(function (t) { if (!t || seen[t]) return false; seen[t] = true; return true; });
  }

  // ------------------------------------------------------------------ API

  var ApiError = ParleyDom.ApiError;

  var session = ParleySession.create({
    storageKey: "parley.editor.token",
    adminOnly: "Admins only: the knowledge editor needs the admin role.",
    onStart: start,
    onClear: function () { S.agent = null; S.current = null; S.entity = null; }
  });
  var api = session.api;

  function report(err) {
    if (session.handled(err)) return; // shown already
    var message = (err && err.message) || "Something went wrong.";
    if (err && err.code === "validation_error" && Array.isArray(err.details) && err.details.length) {
      message = err.details.map(function (d) {
        return (d.loc || []).filter(function (p) { return p !== "body"; }).join(".") + ": " + d.msg;
      }).join("; ");
    }
    toast(message);
  }

  function articlePath(id) { return "/kb/articles/" + encodeURIComponent(id); }

  // ------------------------------------------------------------------ session

  function start(agent) {
    S.agent = agent;
    $("agent-name").textContent = agent.name + " (admin)";
    api("GET", "/agents").then(function (agents) {
      (agents || []).forEach(function (a) { S.agents[a.id] = a.name; });
      if (S.current) renderHistory();
    }).catch(function () { /* names are a nicety */ });
    showView("articles");
    closeArticle();
    loadArticles();
    var draft = draftId();
    if (draft) openDraft(draft);
  }

  // ------------------------------------------------------------------ drafts from analytics

  /** /editor?draft=<id>[&from&to&tz]: the analytics dashboard's "Draft an article" for a
   * knowledge gap, looked up in the dashboard's period. */
  function draftId() {
    var id = new URLSearchParams(window.location.search).get("draft");
    return id && id.trim() ? id.trim() : null;
  }

  function slugify(text) {
    return String(text || "").toLowerCase().normalize("NFKD").replace(/[\u0300-\u036f]/g, "")
      .replace(/[^a-z0-9]+/g, "-").replace(/^-+/, "").slice(0, 60).replace(/-+$/, "");
  }

  function hasOption(select, value) {
    return Array.prototype.some.call(select.options, function (o) { return o.value === value; });
  }

  /** Open a new entry prefilled from the gap's draft (title, body, language); nothing is saved
   * until the author saves it. */
  function openDraft(id) {
    var search = new URLSearchParams(window.location.search);
    var period = { from: search.get("from"), to: search.get("to"), tz: search.get("tz") };
    var path = "/admin/analytics/knowledge-gaps/" + encodeURIComponent(id) + "/draft" + q(period);
    return api("GET", path).then(function (draft) {
      draft = draft || {};
      history.replaceState(null, "", window.location.pathname);  // a reload does not draft again
      var lang = String(draft.lang || draft.language || "");
      var kind = String(draft.kind || "");
      newArticle({
        id: draft.id || slugify(draft.title) || "",
        kind: hasOption($("article-kind"), kind) ? kind : "article",
        lang: hasOption($("article-lang"), lang) ? lang : "en",
        title: draft.title || "", body: draft.body || "",
        tags: Array.isArray(draft.tags) ? draft.tags : []
      });
      $("article-note").value = "Drafted from a knowledge gap in analytics";
      setStatus($("publish-status"), "queued", "A draft from questions the bot could not answer: " +
        "check the id, complete the text, then save and publish.");
      $("article-body").focus();
    }).catch(function (err) {
      if (err && err.status === 404) toast("That knowledge gap no longer exists.", "warning");
      else report(err);
    });
  }

  // ------------------------------------------------------------------ views

  function showView(name) {
    S.view = name;
    document.querySelectorAll(".ed-tab").forEach(function (tab) {
      tab.setAttribute("aria-selected", tab.dataset.view === name ? "true" : "false");
    });
    ["articles", "entities", "ask", "audit"].forEach(function (view) {
      $("view-" + view).hidden = view !== name;
    });
    if (name === "entities") loadEntities();
    if (name === "audit") loadAudit(true);
    if (name === "ask") $("ask-question").focus();
  }

  // ------------------------------------------------------------------ article list

  function loadArticles() {
    var params = { q: $("search-input").value.trim(), lang: $("filter-lang").value,
      kind: $("filter-kind").value, status: $("filter-status").value,
      limit: PAGE_SIZE, offset: S.offset };
    return api("GET", "/kb/articles" + q(params)).then(function (page) {
      S.total = page.total;
      renderArticles(page.items);
    }).catch(report);
  }

  function statusBadge(status) {
    return el("span", { className: "badge status-" + status, text: STATUS_TEXT[status] || status });
  }

  function renderArticles(items) {
    var list = $("article-list");
    list.replaceChildren();
    items.forEach(function (item) {
      S.articleIds[item.id] = true;
      var active = S.current && S.current.id === item.id;
      list.appendChild(el("li", { className: "item ed-item" + (active ? " active" : ""), "data-testid": "article-item",
        dataset: { articleId: item.id, status: item.status } },
        el("button", { type: "button", className: "item-open", onclick: function () { openArticle(item.id); } },
          el("span", { className: "ed-item-title", text: item.title }),
          el("span", { className: "ed-item-meta" },
            statusBadge(item.status),
            item.kind === "faq" ? el("span", { className: "badge kind-faq", text: "FAQ" }) : null,
            el("span", { className: "badge lang", text: LANG_TEXT[item.lang] || item.lang }),
            el("span", { className: "ed-id", text: item.id + " · v" + item.version })))));
    });
    $("article-count").textContent = String(S.total);
    $("article-empty").hidden = items.length > 0;
    var last = Math.min(S.offset + items.length, S.total);
    $("page-info").textContent = S.total ? (S.offset + 1) + "–" + last + " of " + S.total : "";
    $("page-prev").disabled = S.offset === 0;
    $("page-next").disabled = last >= S.total;
  }

  function searchSoon() {
    clearTimeout(S.searchTimer);
    S.searchTimer = setTimeout(function () { S.offset = 0; loadArticles(); }, 250);
  }

  // ------------------------------------------------------------------ the article form

  function formValues() {
    return {
      id: $("article-id").value.trim(), kind: $("article-kind").value, lang: $("article-lang").value,
      title: $("article-title").value.trim(), tags: splitTags($("article-tags").value),
      body: $("article-body").value, note: $("article-note").value.trim()
    };
  }

  function isDirty() {
    var v = formValues();
    if (!S.current) return !!(v.title || v.body.trim());
    return v.title !== S.current.title || v.body.trim() !== S.current.body ||
      v.tags.join("\u0000") !== (S.current.tags || []).join("\u0000");
  }

  function renderDirty() {
    $("article-dirty").hidden = !isDirty();
  }

  function kindLabels() {
    var faq = $("article-kind").value === "faq";
    $("title-label").textContent = faq ? "Question" : "Title";
    $("body-label").textContent = faq ? "Answer (Markdown)" : "Text (Markdown)";
  }

  function closeArticle() {
    S.current = null;
    $("article-form").hidden = true;
    $("history").hidden = true;
    $("article-placeholder").hidden = false;
    markActive();
  }

  function newArticle(prefill) {
    S.current = null;
    var p = prefill || {};
    $("article-id").value = p.id || "";
    $("article-id").readOnly = false;
    $("article-kind").value = p.kind || "article";
    $("article-kind").disabled = false;
    $("article-lang").value = p.lang || "en";
    $("article-lang").disabled = false;
    $("article-title").value = p.title || "";
    $("article-tags").value = (p.tags || []).join(", ");
    $("article-body").value = p.body || "";
    $("article-note").value = "";
    $("article-heading").textContent = "New entry";
    $("article-status").hidden = true;
    $("article-version").textContent = "";
    $("article-publish").disabled = true;
    $("article-delete").disabled = true;
    $("article-translate").disabled = true;
    $("conflict").hidden = true;
    setStatus($("publish-status"), "", "");
    $("article-placeholder").hidden = true;
    $("article-form").hidden = false;
    $("history").hidden = true;
    kindLabels();
    renderDirty();
    previewSoon(0);
    markActive();
    (p.id ? $("article-title") : $("article-id")).focus();
  }

  function showArticle(article, keepText) {
    S.current = article;
    $("article-id").value = article.id;
    $("article-id").readOnly = true;
    $("article-kind").value = article.kind;
    $("article-kind").disabled = true;
    $("article-lang").value = article.lang;
    $("article-lang").disabled = true;
    if (!keepText) {
      $("article-title").value = article.title;
      $("article-tags").value = (article.tags || []).join(", ");
      $("article-body").value = article.body;
      $("article-note").value = "";
    }
    $("article-heading").textContent = article.title;
    var status = $("article-status");
    status.hidden = false;
    status.className = "badge status-" + article.status;
    status.dataset.status = article.status;
    status.textContent = STATUS_TEXT[article.status] || article.status;
    var version = "Version " + article.version;
    if (article.published_version) {
      version += article.published_version === article.version ? " · live" : " · live: v" + article.published_version;
    }
    $("article-version").textContent = version;
    $("article-version").dataset.version = String(article.version);
    $("article-publish").disabled = false;
    $("article-delete").disabled = article.status === "deleted";
    $("article-translate").disabled = false;
    $("article-translate").textContent = article.lang === "en" ? "Add a Chinese version" : "Add an English version";
    $("article-placeholder").hidden = true;
    $("article-form").hidden = false;
    kindLabels();
    renderDirty();
    renderHistory();
    previewSoon(0);
    markActive();
  }

  function markActive() {
    document.querySelectorAll("#article-list .item").forEach(function (item) {
      item.classList.toggle("active", !!S.current && item.dataset.articleId === S.current.id);
    });
  }

  function openArticle(id) {
    if (isDirty() && !window.confirm("Discard your unsaved changes?")) return Promise.resolve();
    showView("articles");
    setStatus($("publish-status"), "", "");
    $("conflict").hidden = true;
    $("diff-view").hidden = true;
    return api("GET", articlePath(id)).then(function (article) { showArticle(article); }).catch(report);
  }

  function save(event) {
    if (event) event.preventDefault();
    var v = formValues();
    if (!v.title || !v.body.trim() || (!S.current && !v.id)) {
      toast("Fill in the id, the " + ($("article-kind").value === "faq" ? "question and the answer." : "title and the text."), "warning");
      return Promise.reject(new ApiError(0, "incomplete", ""));
    }
    var request;
    if (S.current) {
      request = api("PUT", articlePath(S.current.id), { version: S.current.version, title: v.title,
        tags: v.tags, body: v.body, note: v.note });
    } else {
      request = api("POST", "/kb/articles", v);
    }
    $("article-save").disabled = true;
    return request.then(function (article) {
      var changed = !S.current || article.version !== S.current.version;
      showArticle(article);
      setStatus($("publish-status"), "saved", changed
        ? "Saved as version " + article.version + (article.published_version ? ". Publish to make it live." : ".")
        : "Nothing changed since version " + article.version + ".");
      loadArticles();
      return article;
    }).catch(function (err) {
      if (err.code === "version_conflict") {
        $("conflict-text").textContent = "Someone saved a newer version (v" +
          ((err.details && err.details.latest_version) || "?") + ") while you were editing. " +
          "Your text is still here: copy it, load the latest version, and make your change again.";
        $("conflict").hidden = false;
      } else {
        report(err);
      }
      throw err;
    }).finally(function () { $("article-save").disabled = false; });
  }

  var TASK_TEXT = { queued: "waiting for the indexer", running: "indexing", retry: "indexing failed once, retrying" };
  var FINAL = { done: true, skipped: true, dead: true };

  /** Follow a task handed to the workers until it is final; calls update(status) on changes. */
  function followTask(taskId, update) {
    var started = Date.now(), last = "";
    return new Promise(function (resolve) {
      function poll() {
        api("GET", "/kb/tasks/" + encodeURIComponent(taskId)).then(function (status) {
          if (status.state !== last) { last = status.state; update(status); }
          if (FINAL[status.state]) { resolve(status); return; }
          if (Date.now() - started > 120000) { resolve(status); return; }
          setTimeout(poll, 700);
        }).catch(function (err) {
          if (session.handled(err)) { resolve(null); return; }
          setTimeout(poll, 2000);
        });
      }
      poll();
    });
  }

  function publishMessage(version, task) {
    var head = "Published version " + version + ": ";
    if (task.state === "done") return head + "the bot uses it now.";
    if (task.state === "skipped") return head + "a newer version was indexed already.";
    if (task.state === "dead") return "Version " + version + " could not be indexed: " + (task.error || "unknown error");
    return head + (TASK_TEXT[task.state] || task.state) + "… (task " + task.task_id + ")";
  }

  var FINDING_TEXT = { instruction: "Instruction to the bot", email: "E-mail address", phone: "Phone number",
    card: "Card number", name: "Customer's name" };

  /** Ask before publishing text with findings (POST …/check): resolves true to publish. */
  function confirmFindings(article, findings) {
    return new Promise(function (resolve) {
      var answer = false;
      var dialog = el("dialog", { className: "dialog ed-findings", "data-testid": "findings-dialog",
        "aria-labelledby": "findings-title" },
        el("h2", { id: "findings-title", text: "Publish \u201c" + article.title + "\u201d anyway?" }),
        el("p", { className: "muted", text: "Version " + article.version + " contains text the bot should not " +
          "follow or quote. The bot drops instructions and masks personal data in its answers, but it is " +
          "better removed from the article." }),
        el("ul", { className: "ed-findings-list" }, findings.map(function (f) {
          return el("li", { "data-testid": "finding", dataset: { kind: f.kind, what: f.what } },
            el("span", { className: "badge ed-finding-" + f.kind, text: FINDING_TEXT[f.what] || f.what }),
            el("span", { className: "ed-finding-excerpt", text: f.excerpt }));
        })),
        el("div", { className: "dialog-actions" },
          el("button", { type: "button", className: "btn ghost", "data-testid": "findings-cancel", text: "Cancel",
            onclick: function () { dialog.close(); } }),
          el("button", { type: "button", className: "btn success", "data-testid": "findings-publish",
            text: "Publish anyway", onclick: function () { answer = true; dialog.close(); } })));
      dialog.addEventListener("close", function () { dialog.remove(); resolve(answer); });
      document.body.appendChild(dialog);
      dialog.showModal();
      dialog.querySelector("[data-testid=findings-cancel]").focus();
    });
  }

  function publish() {
    var go = isDirty() ? save() : Promise.resolve(S.current);
    go.then(function (article) {
      if (!article) return;
      $("article-publish").disabled = true;
      return api("POST", articlePath(article.id) + "/check", { version: article.version }).then(function (check) {
        var findings = (check && check.findings) || [];
        return findings.length ? confirmFindings(article, findings) : true;
      }).then(function (confirmed) {
        if (!confirmed) {
          setStatus($("publish-status"), "saved", "Not published: version " + article.version + " is saved; what the bot uses has not changed.");
          return null;
        }
        return article;
      });
    }).then(function (article) {
      if (!article) return;
      setStatus($("publish-status"), "queued", "Publishing version " + article.version + "…");
      return api("POST", articlePath(article.id) + "/publish", { version: article.version })
        .then(function (result) {
          showArticle(result.article, true);
          var task = result.task || {}, version = result.article.version, status = $("publish-status");
          status.dataset.taskId = task.task_id || "";
          setStatus(status, task.state, publishMessage(version, task));
          loadArticles();
          if (task.state === "queued" && task.task_id) {
            return followTask(task.task_id, function (now) {
              if (status.dataset.taskId !== task.task_id) return; // another action since
              setStatus(status, now.state === "dead" ? "error" : now.state,
                publishMessage(version, { state: now.state, task_id: task.task_id, error: now.error }));
            });
          }
        });
    }).catch(function (err) {
      if (err && err.code !== "incomplete" && err.code !== "version_conflict") {
        setStatus($("publish-status"), "error", err.message || "Publishing failed.");
        report(err);
      }
    }).finally(function () { if (S.current) $("article-publish").disabled = false; });
  }

  function remove() {
    if (!S.current) return;
    if (!window.confirm("Delete \u201c" + S.current.title + "\u201d? The bot stops using it; its history is kept.")) return;
    api("DELETE", articlePath(S.current.id)).then(function (result) {
      showArticle(result.article);
      var task = result.task, status = $("publish-status");
      status.dataset.taskId = task.task_id || "";
      function show(state, error) {
        setStatus(status, state === "dead" ? "error" : state, state === "dead"
          ? "Deleted, but it could not be removed from the index: " + (error || "unknown error")
          : FINAL[state] ? "Deleted: the bot no longer uses it."
          : "Deleted: removing it from the index… (task " + task.task_id + ")");
      }
      show(task.state);
      loadArticles();
      if (task.state === "queued") {
        followTask(task.task_id, function (now) {
          if (status.dataset.taskId === task.task_id) show(now.state, now.error);
        });
      }
    }).catch(report);
  }

  function translate() {
    if (!S.current) return;
    var other = S.current.lang === "en" ? "zh" : "en";
    var base = S.current.id.replace(/-(en|zh)$/, "");
    newArticle({ id: other === "zh" ? base + "-zh" : base, kind: S.current.kind, lang: other,
      tags: S.current.tags, body: "" });
  }

  // ------------------------------------------------------------------ preview

  function previewSoon(delay) {
    clearTimeout(S.previewTimer);
    S.previewTimer = setTimeout(preview, delay === undefined ? PREVIEW_DELAY_MS : delay);
  }

  function preview() {
    var seq = ++S.previewSeq;
    var body = $("article-body").value;
    if (!body.trim()) { $("article-preview").replaceChildren(); return; }
    api("POST", "/kb/preview", { body: body }).then(function (result) {
      if (seq !== S.previewSeq) return; // a newer keystroke is on its way
      // Safe: the server escaped everything and added only basic Markdown tags.
      $("article-preview").innerHTML = result.html;
    }).catch(function (err) { if (seq === S.previewSeq) report(err); });
  }

  // ------------------------------------------------------------------ history

  function renderHistory() {
    var article = S.current;
    if (!article) return;
    var versions = article.versions || [];
    var list = $("version-list");
    list.replaceChildren();
    versions.forEach(function (v) {
      var isCurrent = v.version === article.version;
      var live = v.version === article.published_version;
      list.appendChild(el("li", { className: "ed-version" + (isCurrent ? " current" : ""), "data-testid": "version-item",
        dataset: { version: String(v.version) } },
        el("span", { className: "ed-version-num", text: "v" + v.version }),
        el("span", { className: "ed-version-meta" },
          el("span", { text: agentName(v.author_id) + " · " + when(v.created_at) }),
          live ? el("span", { className: "badge status-published", text: "live" }) : null,
          v.note ? el("span", { className: "ed-version-note", text: " — " + v.note }) : null),
        el("button", { type: "button", className: "btn ghost small", "data-testid": "version-diff",
          disabled: v.version === 1, text: "Changes",
          onclick: function () { showDiff(v.version - 1, v.version); } }),
        el("button", { type: "button", className: "btn ghost small", "data-testid": "version-restore",
          disabled: isCurrent, text: "Restore",
          onclick: function () { restore(v.version); } })));
    });
    var from = $("diff-from"), to = $("diff-to");
    fill(from, versions.map(function (v) { return option(v.version, "v" + v.version, v.version === Math.max(1, article.version - 1)); }));
    fill(to, versions.map(function (v) { return option(v.version, "v" + v.version, v.version === article.version); }));
    $("history").hidden = false;
  }

  function showDiff(from, to) {
    if (!S.current) return;
    $("diff-from").value = String(from);
    $("diff-to").value = String(to);
    api("GET", articlePath(S.current.id) + "/diff" + q({ from: from, to: to })).then(function (diff) {
      var view = $("diff-view");
      view.replaceChildren();
      if (!diff.lines.length) {
        view.appendChild(el("span", { text: "v" + from + " and v" + to + " are the same." }));
      }
      diff.lines.forEach(function (line) {
        var kind = /^(\+\+\+|---)/.test(line) ? "file" : line[0] === "+" ? "add" : line[0] === "-" ? "del"
          : line.slice(0, 2) === "@@" ? "hunk" : "same";
        view.appendChild(el("span", { className: kind, "data-testid": "diff-line", dataset: { kind: kind }, text: line || " " }));
      });
      view.hidden = false;
    }).catch(report);
  }

  function restore(version) {
    if (!S.current) return;
    if (isDirty() && !window.confirm("Discard your unsaved changes and restore v" + version + "?")) return;
    api("POST", articlePath(S.current.id) + "/restore", { version: version, base_version: S.current.version })
      .then(function (article) {
        showArticle(article);
        setStatus($("publish-status"), "saved", "Restored v" + version + " as version " + article.version +
          ". Publish to make it live.");
        loadArticles();
      }).catch(report);
  }

  // ------------------------------------------------------------------ entities

  function entityLabel() { return $("entity-label").value; }

  function entityPath(label, key) {
    return "/kb/entities/" + encodeURIComponent(label) + (key === undefined ? "" : "/" + encodeURIComponent(key));
  }

  function loadEntities() {
    var label = entityLabel();
    return api("GET", entityPath(label) + q({ q: $("entity-search").value.trim() })).then(function (items) {
      var list = $("entity-list");
      list.replaceChildren();
      items.forEach(function (item) {
        var active = S.entity && S.entity.label === item.label && S.entity.key === item.key;
        list.appendChild(el("li", { className: "item ed-item" + (active ? " active" : ""), "data-testid": "entity-item",
          dataset: { key: item.key, label: item.label } },
          el("button", { type: "button", className: "item-open", onclick: function () { openEntity(item.label, item.key); } },
            el("span", { className: "ed-item-title", text: item.name }),
            el("span", { className: "ed-id", text: item.key }))));
      });
      $("entity-count").textContent = String(items.length);
      $("entity-empty").hidden = items.length > 0;
    }).catch(report);
  }

  function propRow(name, value) {
    var isText = typeof value === "string" || value === undefined;
    var shown = value === undefined ? "" : isText ? value : JSON.stringify(value);
    var type = el("select", { className: "prop-type", "data-testid": "prop-type", "aria-label": "Value type" },
      option("text", "Text", isText), option("json", "JSON", !isText));
    return el("div", { className: "ed-row prop", "data-testid": "prop-row" },
      el("input", { className: "prop-key", "data-testid": "prop-key", "aria-label": "Property name", maxlength: 100,
        placeholder: "name", value: name || "" }),
      el("textarea", { className: "prop-value", "data-testid": "prop-value", "aria-label": "Value",
        rows: Math.min(6, Math.max(1, Math.ceil(shown.length / 70))), value: shown }),
      type,
      el("button", { type: "button", className: "btn ghost icon", "aria-label": "Remove property", text: "×",
        onclick: function (event) { event.currentTarget.parentNode.remove(); } }));
  }

  function relationRow(rel, label, key) {
    return el("div", { className: "ed-row relation", "data-testid": "relation-row" },
      el("input", { className: "rel-type", "data-testid": "relation-rel", "aria-label": "Relation", maxlength: 40,
        placeholder: "COVERED_BY", value: rel || "" }),
      el("input", { className: "rel-label", "data-testid": "relation-label", "aria-label": "To (kind)", maxlength: 40,
        placeholder: "Policy", list: "entity-labels", value: label || "" }),
      el("input", { className: "rel-key", "data-testid": "relation-key", "aria-label": "To (key)", maxlength: 200,
        placeholder: "returns", value: key || "" }),
      el("button", { type: "button", className: "btn ghost icon", "aria-label": "Remove relation", text: "×",
        onclick: function (event) { event.currentTarget.parentNode.remove(); } }));
  }

  function showEntity(entity) {
    S.entity = entity;
    var isNew = !entity;
    $("entity-heading").textContent = isNew ? "New " + entityLabel().toLowerCase() : entity.name;
    $("entity-key").value = isNew ? "" : entity.key;
    $("entity-key").readOnly = !isNew;
    var props = $("prop-rows");
    props.replaceChildren();
    var names = isNew ? [] : Object.keys(entity.props).sort();
    names.forEach(function (name) { props.appendChild(propRow(name, entity.props[name])); });
    if (isNew) props.appendChild(propRow(entityLabel() === "Policy" ? "title" : "name", ""));
    var rels = $("relation-rows");
    rels.replaceChildren();
    var incoming = $("incoming");
    incoming.replaceChildren();
    (isNew ? [] : entity.relations).forEach(function (r) {
      if (r.direction === "out") rels.appendChild(relationRow(r.rel, r.label, r.key));
      else incoming.appendChild(el("li", { "data-testid": "incoming-relation",
        text: r.label + " " + r.key + " (" + r.name + ") —" + r.rel + "→ this" }));
    });
    if (!incoming.children.length) incoming.appendChild(el("li", { className: "muted", text: "None." }));
    $("entity-delete").disabled = isNew;
    setStatus($("entity-status"), "", "");
    $("entity-placeholder").hidden = true;
    $("entity-form").hidden = false;
    if (isNew) $("entity-key").focus();
  }

  function openEntity(label, key) {
    return api("GET", entityPath(label, key)).then(showEntity).then(loadEntities).catch(report);
  }

  function entityBody() {
    var props = {}, problems = [];
    document.querySelectorAll("#prop-rows .ed-row").forEach(function (row) {
      var name = row.querySelector(".prop-key").value.trim();
      var raw = row.querySelector(".prop-value").value;
      if (!name) return;
      if (row.querySelector(".prop-type").value === "json") {
        try { props[name] = JSON.parse(raw); } catch (e) { problems.push(name + " is not valid JSON"); }
      } else {
        props[name] = raw;
      }
    });
    var edges = [];
    document.querySelectorAll("#relation-rows .ed-row").forEach(function (row) {
      var rel = row.querySelector(".rel-type").value.trim().toUpperCase();
      var label = row.querySelector(".rel-label").value.trim();
      var key = row.querySelector(".rel-key").value.trim();
      if (!rel && !label && !key) return;
      if (!rel || !label || !key) { problems.push("a relation needs a type, a kind and a key"); return; }
      edges.push({ rel: rel, dst_label: label, dst_key: key, props: {} });
    });
    return { body: { props: props, edges: edges }, problems: problems };
  }

  function saveEntity(event) {
    event.preventDefault();
    var label = S.entity ? S.entity.label : entityLabel();
    var key = S.entity ? S.entity.key : $("entity-key").value.trim();
    if (!key) { toast("Give the entity a key.", "warning"); return; }
    var built = entityBody();
    if (built.problems.length) { toast(built.problems.join("; "), "warning"); return; }
    $("entity-save").disabled = true;
    var status = $("entity-status");
    api("PUT", entityPath(label, key), built.body).then(function (result) {
      var task = result.task;
      status.dataset.taskId = task.task_id || "";
      if (task.state !== "queued") {
        return openEntity(label, key).then(function () { setStatus(status, "done", "Saved."); });
      }
      setStatus(status, "queued", "Saving… (task " + task.task_id + ")");
      return followTask(task.task_id, function (now) {
        if (status.dataset.taskId !== task.task_id) return;
        if (now.state === "done") {
          openEntity(label, key).then(function () { setStatus(status, "done", "Saved."); });
        } else {
          setStatus(status, now.state === "dead" ? "error" : "queued", now.state === "dead"
            ? "Not saved: " + (now.error || "the change failed") : "Saving… (" + (TASK_TEXT[now.state] || now.state) + ")");
        }
      });
    }).catch(report).finally(function () { $("entity-save").disabled = false; loadEntities(); });
  }

  function deleteEntity() {
    if (!S.entity) return;
    var entity = S.entity;
    if (!window.confirm("Delete " + entity.label.toLowerCase() + " " + entity.key + " and its relations?")) return;
    api("DELETE", entityPath(entity.label, entity.key)).then(function (result) {
      S.entity = null;
      $("entity-form").hidden = true;
      $("entity-placeholder").hidden = false;
      toast(result.task.state === "queued" ? "Deletion queued (task " + result.task.task_id + ")." : "Deleted.", "info");
      if (result.task.state === "queued") followTask(result.task.task_id, function () { loadEntities(); });
      loadEntities();
    }).catch(report);
  }

  // ------------------------------------------------------------------ ask the bot

  function ask(event) {
    event.preventDefault();
    var question = $("ask-question").value.trim();
    if (!question) return;
    $("ask-submit").disabled = true;
    api("POST", "/kb/ask", { question: question, lang: $("ask-lang").value }).then(function (answer) {
      $("ask-result").hidden = false;
      $("ask-answer").textContent = answer.abstained ? "" : answer.text;
      $("ask-answer").hidden = answer.abstained;
      var abstained = $("ask-abstained");
      abstained.hidden = !answer.abstained;
      abstained.textContent = answer.abstained
        ? "The bot would not answer this (" + answer.reason.replace(/_/g, " ") + ") and would offer a person." : "";
      var list = $("ask-citations");
      list.replaceChildren();
      answer.citations.forEach(function (c) {
        list.appendChild(el("li", { className: "answer", "data-testid": "ask-citation", dataset: { sourceId: c.source_id } },
          el("div", { className: "answer-title", text: c.title }),
          el("div", { className: "answer-snippet", text: c.snippet }),
          el("div", { className: "answer-source" },
            el("span", { text: c.source_id + " " }),
            el("button", { type: "button", className: "btn ghost small", text: "Open",
              onclick: function () { openArticle(c.source_id); } }))));
      });
      if (!answer.citations.length) list.appendChild(el("li", { className: "muted", text: "No sources." }));
    }).catch(report).finally(function () { $("ask-submit").disabled = false; });
  }

  // ------------------------------------------------------------------ audit

  function loadAudit(reset) {
    if (reset) S.auditOffset = 0;
    var params = { action: $("audit-action").value, limit: 100, offset: S.auditOffset };
    return api("GET", "/kb/audit" + q(params)).then(function (page) {
      var rows = $("audit-rows");
      if (reset) rows.replaceChildren();
      page.items.forEach(function (entry) {
        rows.appendChild(el("tr", { "data-testid": "audit-row", dataset: { action: entry.action, target: entry.target } },
          el("td", { className: "ed-when", text: when(entry.created_at) }),
          el("td", { text: entry.actor_name || (entry.actor_id === null ? "Import" : "#" + entry.actor_id) }),
          el("td", {}, el("span", { className: "badge", text: entry.action })),
          el("td", { className: "ed-id", text: entry.target }),
          el("td", { className: "ed-detail", text: JSON.stringify(entry.detail) })));
      });
      S.auditOffset += page.items.length;
      $("audit-count").textContent = String(page.total);
      $("audit-more").hidden = S.auditOffset >= page.total;
    }).catch(report);
  }

  // ------------------------------------------------------------------ wiring

  function wire() {
    document.querySelectorAll(".ed-tab").forEach(function (tab) {
      tab.addEventListener("click", function () { showView(tab.dataset.view); });
    });
    $("search-form").addEventListener("submit", function (event) { event.preventDefault(); S.offset = 0; loadArticles(); });
    $("search-input").addEventListener("input", searchSoon);
    ["filter-lang", "filter-kind", "filter-status"].forEach(function (id) {
      $(id).addEventListener("change", function () { S.offset = 0; loadArticles(); });
    });
    $("page-prev").addEventListener("click", function () { S.offset = Math.max(0, S.offset - PAGE_SIZE); loadArticles(); });
    $("page-next").addEventListener("click", function () { S.offset += PAGE_SIZE; loadArticles(); });
    $("new-article").addEventListener("click", function () {
      if (isDirty() && !window.confirm("Discard your unsaved changes?")) return;
      newArticle();
    });
    $("article-form").addEventListener("submit", function (event) { save(event).catch(function () { /* shown */ }); });
    $("article-body").addEventListener("input", function () { renderDirty(); previewSoon(); });
    $("article-title").addEventListener("input", renderDirty);
    $("article-tags").addEventListener("input", renderDirty);
    $("article-kind").addEventListener("change", kindLabels);
    $("article-publish").addEventListener("click", publish);
    $("article-delete").addEventListener("click", remove);
    $("article-translate").addEventListener("click", translate);
    $("conflict-reload").addEventListener("click", function () {
      if (!S.current) return;
      var id = S.current.id;
      S.current = null; // the local text is dropped on purpose: the user asked for the latest
      $("article-body").value = ""; $("article-title").value = "";
      openArticle(id);
    });
    $("diff-show").addEventListener("click", function () {
      showDiff(Number($("diff-from").value), Number($("diff-to").value));
    });
    $("entity-search-form").addEventListener("submit", function (event) { event.preventDefault(); loadEntities(); });
    $("entity-search").addEventListener("input", function () {
      clearTimeout(S.entitySearchTimer);
      S.entitySearchTimer = setTimeout(loadEntities, 250);
    });
    $("entity-label").addEventListener("change", function () {
      S.entity = null; $("entity-form").hidden = true; $("entity-placeholder").hidden = false; loadEntities();
    });
    $("entity-new").addEventListener("click", function () { showEntity(null); });
    $("entity-form").addEventListener("submit", saveEntity);
    $("entity-delete").addEventListener("click", deleteEntity);
    $("prop-add").addEventListener("click", function () {
      var row = propRow("", ""); $("prop-rows").appendChild(row); row.querySelector(".prop-key").focus();
    });
    $("relation-add").addEventListener("click", function () {
      var row = relationRow("", "", ""); $("relation-rows").appendChild(row); row.querySelector(".rel-type").focus();
    });
    $("ask-form").addEventListener("submit", ask);
    $("ask-question").addEventListener("keydown", function (event) {
      if (event.key === "Enter" && !event.shiftKey) { event.preventDefault(); $("ask-form").requestSubmit(); }
    });
    $("audit-action").addEventListener("change", function () { loadAudit(true); });
    $("audit-refresh").addEventListener("click", function () { loadAudit(true); });
    $("audit-more").addEventListener("click", function () { loadAudit(false); });
    window.addEventListener("beforeunload", function (event) {
      if (session.token() && isDirty()) { event.preventDefault(); event.returnValue = ""; }
    });
    var labels = el("datalist", { id: "entity-labels" },
      ["Policy", "Product", "Category"].map(function (l) { return option(l, l); }));
    document.body.appendChild(labels);
  }

  document.addEventListener("DOMContentLoaded", function () {
    wire();
    session.start();
  });
})();

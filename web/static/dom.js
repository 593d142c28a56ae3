/* DOM helpers shared by the staff pages (agent console, knowledge editor, analytics).
 *
 * el() is the only way those pages build DOM: strings and numbers become text nodes, never
 * parsed as HTML, so anything a customer, author or the bot wrote is shown as text.
 */
(function () {
  "use strict";

  function $(id) { return document.getElementById(id); }

  function append(node, child) {
    if (child === null || child === undefined || child === false) return;
    if (Array.isArray(child)) { child.forEach(function (c) { append(node, c); }); return; }
    node.appendChild(typeof child === "object" ? child : document.createTextNode(String(child)));
  }

  /** Build an element; string/number children become text nodes (never parsed as HTML). */
  function el(tag, attrs) {
    var node = document.createElement(tag);
    if (attrs) {
      Object.keys(attrs).forEach(function (key) {
        var value = attrs[key];
        if (value === null || value === undefined || value === false) return;
        if (key === "text") node.textContent = String(value);
        else if (key === "className") node.className = value;
        else if (key === "value") node.value = String(value);
        else if (key === "dataset") Object.keys(value).forEach(function (k) { node.dataset[k] = value[k]; });
        else if (key.slice(0, 2) === "on" && typeof value === "function") node.addEventListener(key.slice(2), value);
        else node.setAttribute(key, value === true ? "" : String(value));
      });
    }
    for (var i = 2; i < arguments.length; i++) append(node, arguments[i]);
    return node;
  }

  /** Replace a node's children (nulls skipped, strings as text). */
  function fill(node) {
    node.replaceChildren();
    for (var i = 1; i < arguments.length; i++) append(node, arguments[i]);
    return node;
  }

  function parseTime(value) {
    if (!value) return NaN;
    var text = String(value);
    if (!/[zZ]|[+-]\d\d:?\d\d$/.test(text)) text += "Z"; // the API speaks UTC
    return Date.parse(text);
  }

  /** "?a=1&b=2" from an object; empty, null and undefined values are left out. */
  function query(params) {
    var parts = [];
    Object.keys(params).forEach(function (key) {
      var value = params[key];
      if (value === "" || value === null || value === undefined) return;
      parts.push(encodeURIComponent(key) + "=" + encodeURIComponent(value));
    });
    return parts.length ? "?" + parts.join("&") : "";
  }

  /** A dismissable message in the page's #toasts for six seconds (kind: error, warning, info). */
  function toast(message, kind) {
    var item = el("div", { className: "toast " + (kind || "error"), "data-testid": "toast",
      role: kind === "info" ? "status" : "alert" },
      el("span", { text: message }),
      el("button", { type: "button", className: "toast-close", "aria-label": "Dismiss", text: "×",
        onclick: function () { item.remove(); } }));
    $("toasts").appendChild(item);
    setTimeout(function () { item.remove(); }, 6000);
  }

  function ApiError(status, code, message, details) {
    this.status = status; this.code = code; this.message = message; this.details = details;
  }

  /**
   * Call Parley's JSON API. Resolves with the body (null for 204); rejects with an ApiError
   * carrying the stable error code. opts: token (sent as a bearer token unless anonymous),
   * anonymous, onError(err) called before the rejection (session expiry, admin-only pages).
   */
  function request(method, path, body, opts) {
    opts = opts || {};
    var headers = { "Accept": "application/json" };
    if (opts.token && !opts.anonymous) headers["Authorization"] = "Bearer " + opts.token;
    if (body !== undefined) headers["Content-Type"] = "application/json";
    return fetch("/api/v1" + path, {
      method: method, headers: headers, credentials: "same-origin",
      body: body === undefined ? undefined : JSON.stringify(body)
    }).then(function (response) {
      if (response.status === 204) return null;
      return response.text().then(function (text) {
        var data = null;
        try { data = text ? JSON.parse(text) : null; } catch (e) { data = null; }
        if (response.ok) return data;
        var error = (data && data.error) || {};
        var err = new ApiError(response.status, error.code || "http_" + response.status,
          error.message || "The request failed (" + response.status + ").", error.details);
        if (opts.onError) opts.onError(err);
        throw err;
      });
    }, function () {
      throw new ApiError(0, "network", "Cannot reach the server. Check your connection.");
    });
  }

  window.ParleyDom = { $: $, el: el, append: append, fill: fill, parseTime: parseTime,
                       query: query, toast: toast, ApiError: ApiError, request: request };
})();

/*!
 * Parley chat widget — embeddable customer chat for the Parley platform.
 *
 * Embed with one tag:
 *   <script src="https://HOST/static/widget.js" data-parley-locale="en" defer></script>
 *
 * Attributes (all optional):
 *   data-parley-locale  "en" | "zh", when the project offers it (default: the first of the
 *                       browser's languages the project offers, else the project's default)
 *   data-parley-url     API base URL (default: the origin this script was loaded from)
 *   data-parley-title   name shown in the panel header (default: the project's widget title)
 *   data-parley-open    "true" to open the panel on load
 *   data-parley-customer  a verified customer: the token the host site signed for the
 *                       logged-in customer (README, "Verified customers"); sent when the
 *                       conversation is created. A stored conversation is resumed only for
 *                       the same customer (anonymous included), so a logout starts afresh.
 *
 * The project's title, colour, logo, greeting and languages come from the API
 * (GET /api/v1/widget/config) before the widget shows; without them it still works, as a
 * generic "Support" chat in English or Chinese.
 *
 * Everything renders inside a Shadow DOM, so the host page's CSS cannot break it and its
 * CSS cannot leak out. Message text is always rendered as text, never as HTML.
 * A small API is exposed as window.Parley: open(), close(), toggle().
 */
(function () {
  "use strict";

  if (window.Parley && window.Parley.__loaded) return; // embedded twice: keep the first one

  // ---------------------------------------------------------------------------------------
  // Configuration
  // ---------------------------------------------------------------------------------------
  var script = document.currentScript || (function () {
    var all = document.querySelectorAll("script[src]");
    for (var i = all.length - 1; i >= 0; i--) {
      if (/\/widget\.js(\?|#|$)/.test(all[i].src)) return all[i];
    }
    return null;
  })();

  function attr(name) {
    return script && script.getAttribute(name) ? script.getAttribute(name).trim() : "";
  }

  function resolveBase() {
    var explicit = attr("data-parley-url");
    var base = explicit;
    if (!base) {
      try { base = new URL(script.src, location.href).origin; } catch (e) { base = location.origin; }
    }
    try { base = new URL(base, location.href).href; } catch (e) { /* keep as is */ }
    return base.replace(/\/+$/, "");
  }

  /** "en" or "zh" for a language tag such as "zh-CN"; null for any other language. */
  function languageOf(tag) {
    tag = String(tag || "").toLowerCase();
    return tag.indexOf("zh") === 0 ? "zh" : tag.indexOf("en") === 0 ? "en" : null;
  }

  /** The page's choice if the project offers it, else the browser's, else the default. */
  function resolveLocale(languages, fallback) {
    var wanted = languageOf(attr("data-parley-locale"));
    if (wanted && languages.indexOf(wanted) >= 0) return wanted;
    var browser = navigator.languages && navigator.languages.length ? navigator.languages
      : [navigator.language];
    for (var i = 0; i < browser.length; i++) {
      var language = languageOf(browser[i]);
      if (language && languages.indexOf(language) >= 0) return language;
    }
    return fallback;
  }

  /** The project's settings, or null when they are missing or malformed. */
  function checkConfig(data) {
    if (!data || typeof data !== "object" || !Array.isArray(data.languages)) return null;
    var languages = data.languages.filter(function (l) { return l === "en" || l === "zh"; });
    if (!languages.length) return null;
    function texts(value) {  // {en: "...", zh: "..."}: only non-empty strings are kept
      var out = {};
      languages.forEach(function (l) {
        if (value && typeof value[l] === "string" && value[l].trim()) out[l] = value[l].trim();
      });
      return out;
    }
    return {
      company: typeof data.company === "string" ? data.company : "",
      title: texts(data.title),
      greeting: texts(data.greeting),
      color: /^#[0-9a-f]{6}$/i.test(data.color || "") ? data.color : null,
      logo: typeof data.logo === "string" ? data.logo : null,
      languages: languages,
      default_language: languages.indexOf(data.default_language) >= 0 ? data.default_language
        : languages[0],
    };
  }

  /** Fetch the project's settings; resolves null (never rejects) on any failure or timeout. */
  function loadConfig() {
    return new Promise(function (resolve) {
      var timer = setTimeout(function () { resolve(null); }, CONFIG_TIMEOUT_MS);
      function done(config) { clearTimeout(timer); resolve(config); }
      try {
        fetch(BASE + "/api/v1/widget/config", {
          headers: { "Accept": "application/json" }, mode: "cors", credentials: "omit",
        }).then(function (response) {
          return response.ok ? response.json() : null;
        }).then(function (data) { done(checkConfig(data)); }, function () { done(null); });
      } catch (e) { done(null); }
    });
  }

  /** The logo as an absolute http(s) URL; a path ("/project/logo") is on the API's server. */
  function logoUrl(logo) {
    if (!logo) return null;
    try {
      var url = new URL(/^\/(?!\/)/.test(logo) ? BASE + logo : logo, location.href);
      return url.protocol === "https:" || url.protocol === "http:" ? url.href : null;
    } catch (e) { return null; }
  }

  var BASE = resolveBase();
  var API = BASE + "/api/v1/conversations";
  var CONFIG_TIMEOUT_MS = 5000;
  var STORAGE_KEY = "parley.conversation";
  var CUSTOMER_TOKEN = attr("data-parley-customer");
  var CUSTOMER = CUSTOMER_TOKEN ? customerOf(CUSTOMER_TOKEN) || "?" : "";

  /** Who a customer token names (the server checks its signature; this only tells whose
   *  stored conversation may be resumed). */
  function customerOf(token) {
    try {
      var part = token.split(".")[1].replace(/-/g, "+").replace(/_/g, "/");
      var claims = JSON.parse(atob(part + "===".slice((part.length + 3) % 4)));
      return String(claims.customer_id || claims.email || "").toLowerCase();
    } catch (e) { return ""; }
  }
  var OUTBOX_KEY = "parley.outbox";
  var MAX_CHARS = 4000;

  var STRINGS = {
    en: {
      launcher: "Chat with us",
      dialog: "Chat with {title}",
      subtitle: "Virtual assistant · replies instantly",
      close: "Close chat",
      inputLabel: "Type your message",
      placeholder: "Type your message…",
      send: "Send",
      title: "Support",
      welcome: "Hi! How can I help you today?",
      suggestions: ["Talk to a person"],
      queued: "Connecting you to a person…",
      withAgent: "You're now chatting with our support team.",
      resolved: "This conversation has been marked as resolved.",
      unavailable: "We'll reply as soon as we can.",
      offline: "Connection lost. Retrying…",
      failed: "Not delivered.",
      retry: "Retry",
      tooLong: "Your message is too long (max. " + MAX_CHARS + " characters).",
      error: "Something went wrong. Please try again.",
      sources: "Sources:",
      you: "You",
      bot: "Assistant",
      agent: "Support team",
      typing: "Assistant is typing",
      powered: "Powered by Parley",
      unread: "new messages",
      withAgentName: "You're chatting with {name}",
      backWithBot: "Back with our assistant",
      queueNext: "You're next in line",
      queuePosition: "You are number {n} in line",
      queueWait: " — about {t}",
      minutes: "{n} min",
      noAgents: "No one from our team is online right now. We'll reply here as soon as someone is.",
      agentTyping: "{name} is typing…",
      notice: "Notice",
      partial: "Assistant is writing an answer",
      csatTitle: "How did we do?",
      csatScore: "{n} out of 5",
      csatComment: "Anything you'd like to add? (optional)",
      csatSubmit: "Send rating",
      csatThanks: "Thanks for your feedback!",
    },
    zh: {
      launcher: "在线客服",
      dialog: "{title} 在线客服",
      subtitle: "智能助手 · 即时回复",
      close: "关闭对话",
      inputLabel: "输入您的消息",
      placeholder: "请输入您的问题…",
      send: "发送",
      title: "在线客服",
      welcome: "您好！请问有什么可以帮您？",
      suggestions: ["转人工"],
      queued: "正在为您转接人工客服…",
      withAgent: "人工客服已接入对话。",
      resolved: "此对话已结束。",
      unavailable: "我们会尽快回复您。",
      offline: "网络连接中断，正在重试…",
      failed: "发送失败。",
      retry: "重试",
      tooLong: "消息过长（最多 " + MAX_CHARS + " 个字符）。",
      error: "出了点问题，请稍后再试。",
      sources: "来源：",
      you: "您",
      bot: "智能助手",
      agent: "人工客服",
      typing: "智能助手正在输入",
      powered: "由 Parley 提供支持",
      unread: "条新消息",
      withAgentName: "您正在与 {name} 对话",
      backWithBot: "已回到智能助手",
      queueNext: "您是下一位",
      queuePosition: "您前面还有 {ahead} 位",
      queueWait: "，预计等待约 {t}",
      minutes: "{n} 分钟",
      noAgents: "目前暂无客服在线，客服上线后会第一时间在这里回复您。",
      agentTyping: "{name} 正在输入…",
      notice: "通知",
      partial: "智能助手正在撰写回答",
      csatTitle: "您对本次服务满意吗？",
      csatScore: "{n} 分（满分 5 分）",
      csatComment: "还有什么想告诉我们的吗？（选填）",
      csatSubmit: "提交评价",
      csatThanks: "感谢您的反馈！",
    },
  };

  /** A text with {name} placeholders filled in (values are plain text, never markup). */
  function fill(text, values) {
    return String(text).replace(/\{(\w+)\}/g, function (m, name) {
      return values && values[name] !== undefined && values[name] !== null ? String(values[name]) : m;
    });
  }

  // ---------------------------------------------------------------------------------------
  // Small helpers
  // ---------------------------------------------------------------------------------------
  function el(tag, props, children) {
    var node = document.createElement(tag);
    if (props) {
      for (var key in props) {
        if (!Object.prototype.hasOwnProperty.call(props, key)) continue;
        var value = props[key];
        if (value === null || value === undefined || value === false) continue;
        if (key === "text") node.textContent = value;
        else if (key === "className") node.className = value;
        else if (key === "on") {
          for (var evt in value) node.addEventListener(evt, value[evt]);
        } else node.setAttribute(key, value === true ? "" : String(value));
      }
    }
    (children || []).forEach(function (child) {
      if (child) node.appendChild(typeof child === "string" ? document.createTextNode(child) : child);
    });
    return node;
  }

  function svg(path, size) {
    var ns = "http://www.w3.org/2000/svg";
    var node = document.createElementNS(ns, "svg");
    node.setAttribute("viewBox", "0 0 24 24");
    node.setAttribute("width", size || 22);
    node.setAttribute("height", size || 22);
    node.setAttribute("aria-hidden", "true");
    node.setAttribute("focusable", "false");
    var p = document.createElementNS(ns, "path");
    p.setAttribute("d", path);
    p.setAttribute("fill", "currentColor");
    node.appendChild(p);
    return node;
  }

  var ICON_CHAT = "M4 4h16a2 2 0 0 1 2 2v10a2 2 0 0 1-2 2H8.4l-4.7 3.6A1 1 0 0 1 2 20.8V6a2 2 0 0 1 2-2Zm3 6.25a1.25 1.25 0 1 0 0 2.5 1.25 1.25 0 0 0 0-2.5Zm5 0a1.25 1.25 0 1 0 0 2.5 1.25 1.25 0 0 0 0-2.5Zm5 0a1.25 1.25 0 1 0 0 2.5 1.25 1.25 0 0 0 0-2.5Z";
  var ICON_CLOSE = "M6.7 5.3 12 10.6l5.3-5.3a1 1 0 1 1 1.4 1.4L13.4 12l5.3 5.3a1 1 0 0 1-1.4 1.4L12 13.4l-5.3 5.3a1 1 0 0 1-1.4-1.4l5.3-5.3-5.3-5.3a1 1 0 0 1 1.4-1.4Z";
  var ICON_SEND = "M3.4 20.4 21.9 12.9a1 1 0 0 0 0-1.8L3.4 3.6a1 1 0 0 0-1.4 1.1L3.9 11 13 12l-9.1 1-1.9 6.3a1 1 0 0 0 1.4 1.1Z";
  var ICON_CHEVRON = "M5.3 8.3a1 1 0 0 1 1.4 0L12 13.6l5.3-5.3a1 1 0 1 1 1.4 1.4l-6 6a1 1 0 0 1-1.4 0l-6-6a1 1 0 0 1 0-1.4Z";

  function randomId() {
    var bytes = new Uint8Array(12);
    (window.crypto || window.msCrypto).getRandomValues(bytes);
    var out = "";
    for (var i = 0; i < bytes.length; i++) out += ("0" + bytes[i].toString(16)).slice(-2);
    return "w-" + Date.now().toString(36) + "-" + out;
  }

  function sleep(ms) { return new Promise(function (resolve) { setTimeout(resolve, ms); }); }

  /** CSS variables for the project's colour: shades of it, and a readable text colour on it. */
  function accentStyles(hex) {
    var n = parseInt(hex.slice(1), 16);
    var rgb = [(n >> 16) & 255, (n >> 8) & 255, n & 255];
    function mix(to, amount) {
      return "rgb(" + rgb.map(function (c, i) {
        return Math.round(c + (to[i] - c) * amount);
      }).join(",") + ")";
    }
    function alpha(a) { return "rgba(" + rgb.join(",") + "," + a + ")"; }
    var luminance = rgb.map(function (c) {
      c /= 255;
      return c <= 0.03928 ? c / 12.92 : Math.pow((c + 0.055) / 1.055, 2.4);
    });
    luminance = 0.2126 * luminance[0] + 0.7152 * luminance[1] + 0.0722 * luminance[2];
    var light = luminance > 0.2; // dark text reads better on it than white
    return {
      "--accent": hex, "--accent-dark": mix([0, 0, 0], 0.18),
      "--accent-ink": mix([0, 0, 0], light ? 0.6 : 0.18), // its shade for text on white
      "--accent-soft": mix([255, 255, 255], 0.92), "--accent-line": mix([255, 255, 255], 0.7),
      "--accent-ring": alpha(0.15), "--accent-glow": alpha(0.45),
      "--on-accent": light ? "#0f172a" : "#fff",
    };
  }

  function backoff(attempt, base, cap) {
    var delay = Math.min(cap, base * Math.pow(2, attempt));
    return delay / 2 + Math.random() * delay / 2; // jitter, so many widgets don't retry in step
  }

  var store = {
    get: function (key) {
      try { var raw = window.localStorage.getItem(key); return raw ? JSON.parse(raw) : null; }
      catch (e) { return null; }
    },
    set: function (key, value) {
      try { window.localStorage.setItem(key, JSON.stringify(value)); } catch (e) { /* private mode */ }
    },
    remove: function (key) {
      try { window.localStorage.removeItem(key); } catch (e) { /* ignore */ }
    },
  };

  /** An HTTP answer that is not 2xx, with the API's error code. */
  function ApiError(status, code, message) {
    this.status = status;
    this.code = code;
    this.message = message;
  }

  /** A failure to reach the server at all (offline, DNS, connection reset…). */
  function NetworkError(cause) { this.cause = cause; }

  function request(method, path, body, token) {
    var headers = { "Accept": "application/json" };
    if (body !== undefined) headers["Content-Type"] = "application/json";
    if (token) headers["Authorization"] = "Bearer " + token;
    return fetch(API + path, {
      method: method, headers: headers, mode: "cors", credentials: "omit", cache: "no-store",
      body: body === undefined ? undefined : JSON.stringify(body),
    }).then(function (response) {
      return response.text().then(function (raw) {
        var data = null;
        try { data = raw ? JSON.parse(raw) : null; } catch (e) { data = null; }
        if (response.ok) return data;
        var error = (data && data.error) || {};
        throw new ApiError(response.status, error.code || "http_" + response.status,
                           error.message || response.statusText);
      });
    }, function (cause) { throw new NetworkError(cause); });
  }

  function isAuthProblem(err) {
    return err instanceof ApiError && (err.status === 401 || err.status === 403 ||
      err.code === "conversation_not_found");
  }

  function isTransient(err) {
    return err instanceof NetworkError ||
      (err instanceof ApiError && (err.status >= 500 || err.status === 429 || err.status === 408));
  }

  // ---------------------------------------------------------------------------------------
  // Styles (scoped to the shadow root)
  // ---------------------------------------------------------------------------------------
  var CSS = [
    ":host{all:initial;}",
    "*,*::before,*::after{box-sizing:border-box;}",
    ".root{--accent:#2563eb;--accent-dark:#1d4ed8;--accent-soft:#eff6ff;--accent-line:#bfdbfe;",
    "  --accent-ring:rgba(37,99,235,.15);--accent-glow:rgba(37,99,235,.45);--on-accent:#fff;",
    "  --accent-ink:#1d4ed8;",
    "  --ink:#0f172a;--muted:#64748b;--line:#e2e8f0;",
    "  --bot:#f1f5f9;--agent:#ecfdf5;--agent-line:#a7f3d0;",
    "  font-family:ui-sans-serif,system-ui,-apple-system,'Segoe UI',Roboto,'Helvetica Neue',Arial,",
    "  'PingFang SC','Hiragino Sans GB','Microsoft YaHei','Noto Sans CJK SC',sans-serif;",
    "  font-size:14px;line-height:1.45;color:var(--ink);-webkit-font-smoothing:antialiased;}",
    "button,input,textarea{font:inherit;color:inherit;}",
    ".sr-only{position:absolute;width:1px;height:1px;padding:0;margin:-1px;overflow:hidden;",
    "  clip:rect(0,0,0,0);white-space:nowrap;border:0;}",
    // Launcher
    ".launcher{position:fixed;right:20px;bottom:20px;z-index:2147483000;display:flex;align-items:center;",
    "  gap:8px;height:52px;padding:0 20px 0 16px;border:0;border-radius:26px;cursor:pointer;",
    "  background:var(--accent);color:var(--on-accent);font-weight:600;font-size:15px;",
    "  box-shadow:0 10px 25px -5px var(--accent-glow),0 4px 10px -4px rgba(15,23,42,.25);",
    "  transition:transform .15s ease,background .15s ease,box-shadow .15s ease;}",
    ".launcher:hover{background:var(--accent-dark);transform:translateY(-1px);}",
    ".launcher:focus-visible{outline:3px solid var(--accent-line);outline-offset:3px;}",
    ".launcher .badge{position:absolute;top:-4px;right:-4px;min-width:20px;height:20px;padding:0 6px;",
    "  border-radius:10px;background:#ef4444;color:#fff;font-size:12px;line-height:20px;text-align:center;",
    "  box-shadow:0 0 0 2px #fff;}",
    ".launcher.open{padding:0;width:52px;justify-content:center;}",
    ".launcher.open .label{display:none;}",
    // Panel
    ".panel{position:fixed;right:20px;bottom:84px;z-index:2147483000;width:380px;height:600px;",
    "  max-height:calc(100vh - 108px);display:flex;flex-direction:column;overflow:hidden;overflow:clip;",
    "  background:#fff;border-radius:16px;border:1px solid rgba(15,23,42,.06);",
    "  box-shadow:0 24px 48px -12px rgba(15,23,42,.28),0 8px 16px -8px rgba(15,23,42,.12);",
    "  transform-origin:bottom right;animation:parley-in .18s ease-out;}",
    ".panel[hidden]{display:none;}",
    "@keyframes parley-in{from{opacity:0;transform:translateY(8px) scale(.98);}to{opacity:1;transform:none;}}",
    "@media (prefers-reduced-motion:reduce){.panel,.dot{animation:none!important;}.launcher{transition:none;}}",
    "@media (max-width:480px){.panel{right:0;bottom:0;width:100vw;height:100%;max-height:none;border-radius:0;}",
    "  .launcher.open{display:none;}}",
    // Header
    ".header{position:relative;flex:none;display:flex;align-items:center;gap:12px;padding:14px 14px 14px 16px;",
    "  color:var(--on-accent);background:linear-gradient(135deg,var(--accent) 0%,var(--accent-dark) 100%);}",
    ".avatar{flex:none;width:38px;height:38px;border-radius:50%;display:flex;align-items:center;",
    "  justify-content:center;background:rgba(255,255,255,.18);font-weight:700;font-size:16px;overflow:hidden;}",
    ".avatar.logo{background:#fff;}",
    ".avatar img{width:100%;height:100%;padding:5px;object-fit:contain;}",
    ".titles{flex:1;min-width:0;}",
    ".title{margin:0;font-size:16px;font-weight:650;line-height:1.25;white-space:nowrap;overflow:hidden;",
    "  text-overflow:ellipsis;}",
    ".subtitle{display:flex;align-items:center;gap:6px;font-size:12.5px;opacity:.88;}",
    ".online{width:8px;height:8px;border-radius:50%;background:#4ade80;box-shadow:0 0 0 2px rgba(255,255,255,.25);}",
    ".close{flex:none;width:36px;height:36px;border:0;border-radius:10px;background:transparent;color:inherit;",
    "  cursor:pointer;display:flex;align-items:center;justify-content:center;}",
    ".close:hover{background:rgba(255,255,255,.16);}",
    ".close:focus-visible{outline:2px solid currentColor;outline-offset:1px;}",
    // Message list
    ".log{position:relative;flex:1;min-height:0;overflow-y:auto;padding:16px 14px 8px;display:flex;flex-direction:column;gap:4px;",
    "  background:#fff;scroll-behavior:smooth;overscroll-behavior:contain;}",
    ".row.greeting{margin:0 0 10px;}",
    ".suggestions{display:flex;flex-wrap:wrap;gap:6px;margin:0 0 10px;}",
    ".suggestions[hidden]{display:none;}",
    ".row{display:flex;flex-direction:column;max-width:82%;margin-top:6px;}",
    ".row.customer{align-self:flex-end;align-items:flex-end;}",
    ".row.bot,.row.agent{align-self:flex-start;align-items:flex-start;}",
    ".row.cont{margin-top:0;}",
    ".who{font-size:11.5px;color:var(--muted);margin:0 4px 3px;}",
    ".bubble{padding:9px 13px;border-radius:16px;white-space:pre-wrap;overflow-wrap:anywhere;",
    "  word-break:break-word;}",
    ".customer .bubble{background:var(--accent);color:var(--on-accent);border-bottom-right-radius:5px;}",
    ".bot .bubble{background:var(--bot);color:var(--ink);border-bottom-left-radius:5px;}",
    ".agent .bubble{background:var(--agent);color:#064e3b;border:1px solid var(--agent-line);",
    "  border-bottom-left-radius:5px;}",
    ".bubble a{color:inherit;text-decoration:underline;text-underline-offset:2px;}",
    ".customer.pending .bubble{opacity:.7;}",
    ".meta{font-size:11.5px;color:var(--muted);margin:3px 4px 0;display:flex;gap:6px;align-items:center;}",
    ".meta.error{color:#b91c1c;}",
    ".link{border:0;background:none;padding:0;color:var(--accent-ink);cursor:pointer;font-weight:600;",
    "  font-size:11.5px;text-decoration:underline;}",
    ".chips{display:flex;flex-wrap:wrap;gap:6px;margin-top:6px;}",
    ".chip{border:1px solid var(--accent-line);background:#fff;color:var(--accent-ink);border-radius:999px;",
    "  padding:6px 12px;font-size:13px;font-weight:550;cursor:pointer;line-height:1.2;",
    "  transition:background .12s ease,border-color .12s ease;}",
    ".chip:hover{background:var(--accent-soft);border-color:var(--accent);}",
    ".chip:focus-visible{outline:2px solid var(--accent);outline-offset:2px;}",
    ".chip:disabled{opacity:.5;cursor:default;}",
    ".sources{margin:5px 4px 0;font-size:11.5px;color:var(--muted);display:flex;flex-wrap:wrap;gap:4px 6px;",
    "  align-items:center;}",
    ".source{display:inline-block;padding:2px 8px;border-radius:6px;background:#f8fafc;",
    "  border:1px solid var(--line);color:#334155;cursor:help;max-width:100%;overflow:hidden;",
    "  text-overflow:ellipsis;white-space:nowrap;}",
    // Typing indicator
    ".typing{align-self:flex-start;display:flex;gap:4px;padding:12px 14px;margin-top:6px;border-radius:16px;",
    "  border-bottom-left-radius:5px;background:var(--bot);}",
    ".typing[hidden]{display:none;}",
    ".dot{width:7px;height:7px;border-radius:50%;background:#94a3b8;animation:parley-blink 1.2s infinite ease-in-out;}",
    ".dot:nth-child(2){animation-delay:.15s;}.dot:nth-child(3){animation-delay:.3s;}",
    "@keyframes parley-blink{0%,80%,100%{opacity:.3;transform:translateY(0);}40%{opacity:1;transform:translateY(-2px);}}",
    // Notices
    ".notice{flex:none;margin:0 14px 8px;padding:8px 12px;border-radius:10px;font-size:13px;display:flex;gap:8px;",
    "  align-items:center;}",
    ".notice[hidden]{display:none;}",
    ".state{background:#fefce8;color:#854d0e;border:1px solid #fde68a;}",
    ".state[data-state='with_agent']{background:#ecfdf5;color:#065f46;border-color:#a7f3d0;}",
    ".state[data-state='resolved']{background:#f1f5f9;color:#334155;border-color:var(--line);}",
    ".status{background:#f8fafc;color:#475569;border:1px solid var(--line);}",
    ".pulse{flex:none;width:8px;height:8px;border-radius:50%;background:currentColor;opacity:.7;",
    "  animation:parley-blink 1.4s infinite ease-in-out;}",
    // Composer
    ".composer{position:relative;flex:none;display:flex;align-items:center;gap:8px;padding:10px 12px;border-top:1px solid var(--line);",
    "  background:#fff;}",
    ".input{flex:1;min-width:0;height:42px;padding:0 14px;border:1px solid #cbd5e1;border-radius:21px;",
    "  background:#f8fafc;outline:none;font-size:14.5px;transition:border-color .12s ease,background .12s ease;}",
    ".input::placeholder{color:#94a3b8;}",
    ".input:focus{border-color:var(--accent);background:#fff;box-shadow:0 0 0 3px var(--accent-ring);}",
    ".send{flex:none;width:42px;height:42px;border:0;border-radius:50%;background:var(--accent);color:var(--on-accent);",
    "  cursor:pointer;display:flex;align-items:center;justify-content:center;transition:background .12s ease;}",
    ".send:hover:not(:disabled){background:var(--accent-dark);}",
    ".send:disabled{background:#cbd5e1;cursor:default;}",
    ".send:focus-visible{outline:3px solid var(--accent-line);outline-offset:2px;}",
    ".footer{flex:none;padding:0 0 8px;text-align:center;font-size:11px;color:#94a3b8;background:#fff;}",
    // System notices (an agent joined, hand-back, rating prompt): a small centred line
    ".row.system{align-self:center;align-items:center;max-width:92%;margin:8px 0 4px;}",
    ".system .bubble{padding:2px 10px;border-radius:0;background:none;color:var(--muted);font-size:12px;",
    "  text-align:center;line-height:1.4;}",
    // Agent name above agent bubbles
    ".agent .who{color:#047857;font-weight:600;}",
    // Queue line inside the state notice
    ".state-body{display:flex;flex-direction:column;gap:2px;min-width:0;}",
    ".queue{font-size:12.5px;opacity:.9;}",
    ".queue[hidden]{display:none;}",
    ".state[data-state='bot']{background:var(--accent-soft);color:var(--accent-ink);border-color:var(--accent-line);}",
    // Provisional answer (partial sentences of a bot answer still being written)
    ".partial{opacity:.85;}",
    ".partial .bubble{background:var(--bot);color:#334155;border-bottom-left-radius:5px;}",
    ".partial .bubble::after{content:'';display:inline-block;width:7px;height:7px;margin-left:6px;",
    "  border-radius:50%;background:#94a3b8;vertical-align:middle;animation:parley-blink 1.2s infinite ease-in-out;}",
    ".partial[hidden],.agent-typing[hidden]{display:none;}",
    ".agent-typing{align-self:flex-start;margin:6px 4px 0;font-size:12px;color:#047857;font-style:italic;}",
    // Rating form
    ".csat{align-self:stretch;margin:10px 0 4px;padding:12px 14px;border:1px solid var(--line);",
    "  border-radius:12px;background:#f8fafc;display:flex;flex-direction:column;gap:8px;}",
    ".csat[hidden]{display:none;}",
    ".csat-title{margin:0;font-size:14px;font-weight:650;}",
    ".stars{display:flex;gap:4px;}",
    ".star{width:36px;height:36px;border:1px solid #cbd5e1;border-radius:8px;background:#fff;cursor:pointer;",
    "  font-size:20px;line-height:1;color:#cbd5e1;display:flex;align-items:center;justify-content:center;",
    "  transition:color .12s ease,border-color .12s ease;}",
    ".star:hover{border-color:#f59e0b;color:#fbbf24;}",
    ".star.on{color:#f59e0b;border-color:#f59e0b;background:#fffbeb;}",
    ".star:focus-visible{outline:2px solid var(--accent);outline-offset:2px;}",
    ".csat-label{font-size:12.5px;color:var(--muted);}",
    ".csat-comment{width:100%;min-height:56px;resize:vertical;padding:8px 10px;border:1px solid #cbd5e1;",
    "  border-radius:8px;background:#fff;font:inherit;font-size:13.5px;color:var(--ink);}",
    ".csat-comment:focus{outline:none;border-color:var(--accent);box-shadow:0 0 0 3px var(--accent-ring);}",
    ".csat-submit{align-self:flex-start;border:0;border-radius:8px;padding:7px 14px;background:var(--accent);",
    "  color:var(--on-accent);font-weight:600;cursor:pointer;}",
    ".csat-submit:disabled{background:#cbd5e1;cursor:default;}",
    ".csat-submit:focus-visible{outline:3px solid var(--accent-line);outline-offset:2px;}",
    ".csat-error{font-size:12px;color:#b91c1c;}",
    ".csat-error[hidden]{display:none;}",
    ".csat-thanks{align-self:stretch;margin:10px 0 4px;padding:10px 14px;border-radius:12px;",
    "  background:#ecfdf5;color:#065f46;border:1px solid #a7f3d0;text-align:center;font-weight:600;}",
    "@media (prefers-reduced-motion:reduce){.partial .bubble::after{animation:none;}}",
  ].join("\n");

  // ---------------------------------------------------------------------------------------
  // Start: read the project's settings, then build the widget for them
  // ---------------------------------------------------------------------------------------
  var wantOpen = false; // open() was called before the widget was built
  var api = window.Parley = {
    __loaded: true, apiBase: BASE, locale: null,
    open: function () { wantOpen = true; },
    close: function () { wantOpen = false; },
    toggle: function () { wantOpen = !wantOpen; },
  };
  loadConfig().then(start);

  /** Build and show the widget; ``config`` is the project's settings, null when unknown. */
  function start(config) {
    var LANGUAGES = config ? config.languages : ["en", "zh"];
    var LOCALE = resolveLocale(LANGUAGES, config ? config.default_language : "en");
    var T = STRINGS[LOCALE];
    var TITLE = attr("data-parley-title") ||
      (config && (config.title[LOCALE] || config.company)) || T.title;
    var GREETING = (config && config.greeting[LOCALE]) || T.welcome;
    var LOGO = logoUrl(config && config.logo);
    var DIALOG = TITLE === T.title ? T.title : fill(T.dialog, { title: TITLE });

    /** T[key] with {name} placeholders filled in. */
    function fmt(key, values) { return fill(T[key], values); }

    // ---------------------------------------------------------------------------------------
    // DOM
    // ---------------------------------------------------------------------------------------
    var host = el("div", { id: "parley-widget", "data-parley-locale": LOCALE });
    var shadow = host.attachShadow ? host.attachShadow({ mode: "open" }) : host;
    var style = el("style", { text: CSS });

    var badge = el("span", { className: "badge", hidden: true, "aria-hidden": "true" });
    var launcherLabel = el("span", { className: "label", text: T.launcher });
    var launcherIcon = el("span", { "aria-hidden": "true", style: "display:flex" }, [svg(ICON_CHAT, 22)]);
    var launcher = el("button", {
      type: "button", className: "launcher", "data-testid": "parley-launcher",
      "aria-haspopup": "dialog", "aria-expanded": "false", "aria-controls": "parley-panel",
      title: T.launcher,
    }, [launcherIcon, launcherLabel, badge]);

    var closeButton = el("button", {
      type: "button", className: "close", "aria-label": T.close, title: T.close,
      "data-testid": "parley-close",
    }, [svg(ICON_CLOSE, 20)]);

    var initial = TITLE.charAt(0).toUpperCase();
    var avatar = el("div", { className: "avatar", "aria-hidden": "true", text: initial });
    if (LOGO) {
      avatar.classList.add("logo");
      avatar.replaceChildren(el("img", { src: LOGO, alt: "", on: { error: function () {
        avatar.classList.remove("logo"); // a broken logo: the initial instead
        avatar.textContent = initial;
      } } }));
    }
    var header = el("div", { className: "header" }, [
      avatar,
      el("div", { className: "titles" }, [
        el("h2", { className: "title", id: "parley-title", text: TITLE }),
        el("div", { className: "subtitle" }, [el("span", { className: "online", "aria-hidden": "true" }),
                                             el("span", { text: T.subtitle })]),
      ]),
      closeButton,
    ]);

    var suggestions = el("div", { className: "suggestions" });
    T.suggestions.forEach(function (text) {
      suggestions.appendChild(el("button", {
        type: "button", className: "chip", "data-testid": "parley-suggestion", text: text,
        on: { click: function () { enqueue(text); } },
      }));
    });
    // The project's greeting, shown like the assistant's first message (it is not stored: a
    // conversation starts only when the customer writes).
    var greeting = el("div", { className: "row bot greeting", "data-testid": "parley-greeting" }, [
      el("span", { className: "sr-only", text: T.bot + ":" }),
      el("div", { className: "bubble", text: GREETING }),
    ]);
    var list = el("div", { className: "messages", role: "list", style: "display:contents" });
    var typing = el("div", { className: "typing", hidden: true, role: "status", "aria-label": T.typing },
                    [el("span", { className: "dot" }), el("span", { className: "dot" }),
                     el("span", { className: "dot" })]);
    // A bot answer still being written: checked sentences arrive one by one over the stream.
    var partialBubble = el("div", { className: "bubble", "data-testid": "parley-partial",
                                    "aria-busy": "true" });
    var partialRow = el("div", { className: "row bot partial", hidden: true }, [
      el("span", { className: "sr-only", text: T.partial + ":" }), partialBubble,
    ]);
    var agentTyping = el("div", { className: "agent-typing", "data-testid": "parley-agent-typing",
                                  role: "status", hidden: true });
    var csatBox = el("div", { style: "display:contents" });
    var log = el("div", {
      className: "log", "data-testid": "parley-log", "aria-live": "polite", "aria-relevant": "additions",
      "aria-atomic": "false", tabindex: "0", "aria-label": DIALOG,
    }, [greeting, suggestions, list, partialRow, typing, agentTyping, csatBox]);

    var stateText = el("span");
    var queueLine = el("span", { className: "queue", "data-testid": "parley-queue", hidden: true });
    var stateNotice = el("div", { className: "notice state", "data-testid": "parley-state",
                                  role: "status", hidden: true, "data-state": "bot" });
    var statusNotice = el("div", { className: "notice status", "data-testid": "parley-status",
                                   role: "status", hidden: true });

    var input = el("input", {
      type: "text", className: "input", id: "parley-input", "data-testid": "parley-input",
      maxlength: String(MAX_CHARS), placeholder: T.placeholder, autocomplete: "off",
      enterkeyhint: "send", "aria-label": T.inputLabel,
    });
    var sendButton = el("button", {
      type: "submit", className: "send", "data-testid": "parley-send", "aria-label": T.send,
      title: T.send, disabled: true,
    }, [svg(ICON_SEND, 20)]);
    var composer = el("form", { className: "composer", novalidate: true }, [
      el("label", { className: "sr-only", "for": "parley-input", text: T.inputLabel }),
      input, sendButton,
    ]);

    var panel = el("div", {
      className: "panel", id: "parley-panel", role: "dialog", "aria-modal": "false",
      "aria-labelledby": "parley-title", "aria-label": DIALOG, "data-testid": "parley-panel",
      lang: LOCALE === "zh" ? "zh-CN" : "en", hidden: true,
    }, [header, log, stateNotice, statusNotice, composer,
        el("div", { className: "footer", text: T.powered })]);

    var root = el("div", { className: "root", lang: LOCALE === "zh" ? "zh-CN" : "en" },
                  [panel, launcher]);
    if (config && config.color) {
      var accent = accentStyles(config.color);
      for (var variable in accent) root.style.setProperty(variable, accent[variable]);
    }
    shadow.appendChild(style);
    shadow.appendChild(root);

    // ---------------------------------------------------------------------------------------
    // State
    // ---------------------------------------------------------------------------------------
    var conversation = null;       // {id, token, locale, base}
    var creating = null;           // in-flight promise creating a conversation
    var byId = {};                 // server message id -> row element
    var byClientId = {};           // client_message_id -> row element
    var buttonTitles = {};         // button payload -> title (to show titles, not payloads)
    var outbox = [];               // [{cid, text, display, payload?}] not yet answered
    var sending = false;
    var isOpen = false;
    var unread = 0;
    var socket = null;
    var socketAttempt = 0;
    var socketTimer = null;
    var generation = 0;            // bumps when the conversation changes; stale work stops
    var currentState = null;       // the conversation's state, as last heard from the server
    var agentName = null;          // the agent holding (or who last held) the conversation
    var agentNameAt = 0;           // created_at (ms) of the message the name came from
    var queueTimer = null;         // polls the queue position while queued
    var queueSeq = 0;              // answers to older queue polls are dropped
    var agentTypingTimer = null;
    var lastTypingSent = 0;
    var CSAT_KEY = "parley.csat.";  // + conversation id: rated already, don't ask again
    var QUEUE_POLL_MS = 10000;
    var TYPING_SEND_MS = 2000;
    var AGENT_TYPING_MS = 3000;

    function saveConversation() {
      if (conversation) store.set(STORAGE_KEY, conversation); else store.remove(STORAGE_KEY);
    }

    function saveOutbox() {
      if (outbox.length) store.set(OUTBOX_KEY, { conversation: conversation && conversation.id,
                                                items: outbox });
      else store.remove(OUTBOX_KEY);
    }

    function loadConversation() {
      var saved = store.get(STORAGE_KEY);
      if (saved && saved.id && saved.token && (!saved.base || saved.base === BASE) &&
          (!saved.locale || saved.locale === LOCALE) && (saved.customer || "") === CUSTOMER) {
        return saved;
      }
      return null;
    }

    // ---------------------------------------------------------------------------------------
    // Rendering
    // ---------------------------------------------------------------------------------------
    var URL_RE = /\bhttps?:\/\/[^\s<>"'）」】]+[^\s<>"'.,;:!?)）」】]/g;

    /** Put `text` into `node` as text nodes, turning http(s) URLs into safe links. */
    function renderText(node, text) {
      node.textContent = "";
      var last = 0;
      text.replace(URL_RE, function (match, offset) {
        if (offset > last) node.appendChild(document.createTextNode(text.slice(last, offset)));
        var a = document.createElement("a");
        a.href = match;
        a.target = "_blank";
        a.rel = "noopener noreferrer nofollow";
        a.textContent = match;
        node.appendChild(a);
        last = offset + match.length;
        return match;
      });
      if (last < text.length) node.appendChild(document.createTextNode(text.slice(last)));
    }

    function roleLabel(role) {
      return role === "customer" ? T.you : role === "agent" ? T.agent :
        role === "system" ? T.notice : T.bot;
    }

    /** How a message is shown: Parley's own notices are "system", whatever their role. */
    function displayRole(message) {
      return message.system ? "system" : message.role;
    }

    function makeRow(role) {
      var bubble = el("div", { className: "bubble", "data-testid": "parley-message", "data-role": role });
      var who = el("span", { className: role === "agent" ? "who" : "sr-only",
                             text: roleLabel(role) + (role === "agent" ? "" : ":") });
      var row = el("div", { className: "row " + role, role: "listitem" }, [who, bubble]);
      row._bubble = bubble;
      row._who = who;
      return row;
    }

    // The agent-joined notice is the only place a name appears before the agent writes.
    var JOINED_RE = [/^(.+?) from our support team has joined the chat\.?$/, /^客服\s*(.+?)\s*已加入对话。?$/];

    function learnAgentName(message) {
      var name = null;
      if (message.role === "agent" && message.author) name = message.author;
      else if (message.system) {
        for (var i = 0; i < JOINED_RE.length && !name; i++) {
          var match = JOINED_RE[i].exec((message.text || "").trim());
          if (match) name = match[1];
        }
      }
      if (!name) return;
      var at = message.created_at ? Date.parse(message.created_at) : NaN;
      if (isNaN(at)) at = Date.now();
      if (at < agentNameAt) return; // an older message, merged from the transcript
      agentNameAt = at;
      if (name !== agentName) {
        agentName = name;
        if (currentState === "with_agent") showState("with_agent");
      }
    }

    function fillRow(row, message) {
      var role = message.role;
      var text = message.text || "";
      if (role === "agent" && row._who) {
        row._who.textContent = message.author || T.agent;
        row.setAttribute("data-author", message.author || "");
        row._bubble.setAttribute("data-author", message.author || "");
      }
      if (role === "customer" && buttonTitles[text]) text = buttonTitles[text];
      if (role === "customer" && row._display) text = row._display;
      renderText(row._bubble, text);
      row._bubble.setAttribute("data-message-id", message.id);
      row.setAttribute("data-message-id", message.id);
      if (message.created_at) {
        var when = new Date(message.created_at);
        if (!isNaN(when)) row._bubble.title = when.toLocaleString(LOCALE === "zh" ? "zh-CN" : "en");
      }
      if (message.citations && message.citations.length && !row._sources) {
        var sources = el("div", { className: "sources", "data-testid": "parley-sources" },
                         [el("span", { text: T.sources })]);
        message.citations.forEach(function (c) {
          sources.appendChild(el("span", { className: "source", "data-testid": "parley-citation",
                                           title: c.snippet || "", text: c.title || c.source_id }));
        });
        row._sources = sources;
        row.appendChild(sources);
      }
      if (message.buttons && message.buttons.length && !row._chips) {
        var chips = el("div", { className: "chips" });
        message.buttons.forEach(function (b) {
          if (b.payload && b.title) buttonTitles[b.payload] = b.title;
          chips.appendChild(el("button", {
            type: "button", className: "chip", "data-testid": "parley-button",
            "data-payload": b.payload, text: b.title || b.payload,
            // A click sends the button's title as text and its payload apart: the server
            // accepts a payload only from the bot's latest buttons; typed text is never one.
            on: { click: function () { enqueue(b.title || b.payload, b.title || b.payload, b.payload); } },
          }));
        });
        row._chips = chips;
        row.appendChild(chips);
      }
    }

    function setMeta(row, kind, text, withRetry) {
      if (row._meta) { row._meta.remove(); row._meta = null; }
      if (!kind) return;
      var meta = el("div", { className: "meta" + (kind === "error" ? " error" : ""),
                             "data-testid": "parley-delivery" }, [el("span", { text: text })]);
      if (withRetry) {
        meta.appendChild(el("button", { type: "button", className: "link", text: T.retry,
                                        on: { click: function () { setMeta(row, null); pump(true); } } }));
      }
      row._meta = meta;
      row.appendChild(meta);
    }

    function groupRows() {
      // A message directly under one of the same role needs no extra spacing.
      var rows = list.children;
      for (var i = 0; i < rows.length; i++) {
        var same = i > 0 && rows[i - 1].className.split(" ")[1] === rows[i].className.split(" ")[1] &&
          rows[i - 1].getAttribute("data-author") === rows[i].getAttribute("data-author");
        rows[i].classList.toggle("cont", same);
        var who = rows[i].querySelector(".who");
        if (who) who.style.display = same ? "none" : "";
      }
    }

    function nearBottom() {
      return log.scrollHeight - log.scrollTop - log.clientHeight < 80;
    }

    function scrollToEnd(force) {
      if (force || nearBottom()) {
        requestAnimationFrame(function () { log.scrollTop = log.scrollHeight; });
      }
    }

    function hideIntroExtras() {
      if (list.children.length) suggestions.hidden = true;
    }

    /** Add or update one server message; returns true when it was new. */
    function upsert(message, afterRow, live) {
      if (!message || !message.id) return false;
      var row = byId[message.id];
      if (!row && message.client_message_id) row = byClientId[message.client_message_id];
      var isNew = !row;
      if (!row) {
        row = makeRow(displayRole(message));
        if (afterRow === null) list.insertBefore(row, list.firstChild);
        else if (afterRow) list.insertBefore(row, afterRow.nextSibling);
        else list.appendChild(row);
      }
      byId[message.id] = row;
      if (message.client_message_id) byClientId[message.client_message_id] = row;
      row.classList.remove("pending");
      fillRow(row, message);
      learnAgentName(message);
      if (isNew && message.role === "bot" && !message.system) clearPartial(); // the real answer
      if (isNew && message.role === "agent") hideAgentTyping();
      if (isNew) {
        groupRows();
        hideIntroExtras();
        if (live && message.role !== "customer" && !isOpen) {
          unread += 1;
          badge.textContent = unread > 9 ? "9+" : String(unread);
          badge.hidden = false;
          launcher.setAttribute("aria-label", T.launcher + " (" + unread + " " + T.unread + ")");
        }
      }
      return isNew;
    }

    function addLocal(item) {
      var row = makeRow("customer");
      row._display = item.display;
      row.classList.add("pending");
      renderText(row._bubble, item.display);
      row._bubble.setAttribute("data-client-message-id", item.cid);
      byClientId[item.cid] = row;
      list.appendChild(row);
      groupRows();
      hideIntroExtras();
      scrollToEnd(true);
      return row;
    }

    function mergeTranscript(messages) {
      var previous = null; // null = insert at the top
      var added = false;
      (messages || []).forEach(function (m) {
        // First learn button titles, so that a payload sent from a chip shows as its title.
        (m.buttons || []).forEach(function (b) { if (b.payload && b.title) buttonTitles[b.payload] = b.title; });
      });
      (messages || []).forEach(function (m) {
        var known = byId[m.id] || (m.client_message_id && byClientId[m.client_message_id]);
        if (known) {
          upsert(m);
          previous = known;
        } else {
          added = upsert(m, previous) || added;
          previous = byId[m.id];
        }
      });
      if (added) scrollToEnd(true);
    }

    function stateLine(state, previous) {
      if (state === "queued") return T.queued;
      if (state === "with_agent") return agentName ? fmt("withAgentName", { name: agentName }) : T.withAgent;
      if (state === "resolved") return T.resolved;
      if (state === "bot" && (previous === "queued" || previous === "with_agent")) return T.backWithBot;
      return null; // with the bot from the start (or again after a turn): nothing to say
    }

    function showState(state) {
      if (!state) return;
      var previous = currentState;
      currentState = state;
      var text = stateLine(state, previous);
      stateNotice.setAttribute("data-state", state);
      if (state !== "queued") stopQueuePolling();
      else if (previous !== "queued" || !queueTimer) {
        queueLine.hidden = true;
        queueLine.textContent = "";
        pollQueue();
      }
      if (state !== "bot") typing.hidden = true;
      if (state === "queued" || state === "resolved") hideAgentTyping();
      renderCsat();
      if (!text) { stateNotice.hidden = true; stateNotice.textContent = ""; return; }
      if (stateText.textContent !== text) stateText.textContent = text;
      var children = [];
      if (state === "queued") children.push(el("span", { className: "pulse", "aria-hidden": "true" }));
      children.push(el("span", { className: "state-body" }, [stateText, state === "queued" ? queueLine : null]));
      stateNotice.replaceChildren.apply(stateNotice, children);
      var stick = nearBottom();
      stateNotice.hidden = false;
      if (stick) scrollToEnd(true); // the notice takes room from the log: keep the end in view
    }

    // ---- Queue position while waiting for a person -----------------------------------------
    function stopQueuePolling() {
      if (queueTimer) { clearTimeout(queueTimer); queueTimer = null; }
      queueSeq += 1; // answers still on their way are stale now
      queueLine.hidden = true;
    }

    function pollQueue() {
      if (queueTimer) clearTimeout(queueTimer);
      queueTimer = setTimeout(pollQueue, QUEUE_POLL_MS);
      if (document.visibilityState === "hidden") return; // caught up when the tab shows again
      fetchQueue();
    }

    function fetchQueue() {
      if (!conversation || currentState !== "queued") return;
      var gen = generation;
      var seq = ++queueSeq;
      request("GET", "/" + encodeURIComponent(conversation.id) + "/queue", undefined,
              conversation.token).then(function (data) {
        if (gen !== generation || seq !== queueSeq || currentState !== "queued" || !data) return;
        if (data.state && data.state !== "queued") {
          // A state event went missing (the stream was reconnecting): read the transcript again.
          fetchTranscript(0).catch(function () {});
          return;
        }
        renderQueue(data);
      }, function () { /* keep the last known position; the next poll tries again */ });
    }

    function waitText(seconds) {
      return fmt("minutes", { n: Math.max(1, Math.round(seconds / 60)) });
    }

    function renderQueue(data) {
      var position = typeof data.position === "number" && data.position > 0 ? data.position : null;
      var place = position === null ? "" : position === 1 ? T.queueNext
        : fmt("queuePosition", { n: position, ahead: position - 1 });
      var text;
      if (data.agents_online === 0) {
        text = (place ? place + (LOCALE === "zh" ? "。" : ". ") : "") + T.noAgents;
      } else if (place && typeof data.estimated_wait_s === "number") {
        text = place + fmt("queueWait", { t: waitText(data.estimated_wait_s) });
      } else {
        text = place;
      }
      queueLine.setAttribute("data-position", position === null ? "" : String(position));
      queueLine.setAttribute("data-agents-online", String(data.agents_online));
      if (queueLine.textContent !== text) queueLine.textContent = text; // no repeated announcements
      var stick = nearBottom();
      queueLine.hidden = !text;
      if (stick) scrollToEnd(true);
    }

    document.addEventListener("visibilitychange", function () {
      if (document.visibilityState === "visible" && currentState === "queued") pollQueue();
    });

    // ---- A bot answer still being written ---------------------------------------------------
    var partialText = "";
    var CJK_END = /[\u2e80-\u9fff\u3000-\u303f\uff00-\uffef]$/;
    var CJK_START = /^[\u2e80-\u9fff\u3000-\u303f\uff00-\uffef]/;

    function showPartial(text) {
      text = String(text || "").trim();
      if (!text) return;
      var joiner = !partialText || CJK_END.test(partialText) || CJK_START.test(text) ? "" : " ";
      partialText += joiner + text;
      var stick = nearBottom();
      renderText(partialBubble, partialText);
      partialRow.hidden = false;
      typing.hidden = true; // the provisional bubble has its own "still writing" look
      scrollToEnd(stick);
    }

    function clearPartial() {
      partialText = "";
      partialBubble.textContent = "";
      partialRow.hidden = true;
    }

    // ---- Typing, both ways ------------------------------------------------------------------
    function showAgentTyping() {
      var text = fmt("agentTyping", { name: agentName || T.agent });
      if (agentTyping.textContent !== text) agentTyping.textContent = text;
      var stick = nearBottom();
      agentTyping.hidden = false;
      scrollToEnd(stick);
      if (agentTypingTimer) clearTimeout(agentTypingTimer);
      agentTypingTimer = setTimeout(hideAgentTyping, AGENT_TYPING_MS);
    }

    function hideAgentTyping() {
      if (agentTypingTimer) { clearTimeout(agentTypingTimer); agentTypingTimer = null; }
      agentTyping.hidden = true;
    }

    /** Tell the agent the customer is typing: at most every 2 s, only when a person is involved. */
    function sendTyping() {
      if (currentState !== "queued" && currentState !== "with_agent") return;
      if (!socket || socket.readyState !== 1 || !input.value.trim()) return;
      var now = Date.now();
      if (now - lastTypingSent < TYPING_SEND_MS) return;
      lastTypingSent = now;
      try { socket.send(JSON.stringify({ type: "typing" })); } catch (e) { /* reconnecting */ }
    }

    // ---- Rating, once a person resolved the conversation ------------------------------------
    var csatForm = null;
    var csatThanks = null;

    function csatDone() {
      return !!(conversation && store.get(CSAT_KEY + conversation.id));
    }

    function renderCsat() {
      var wanted = currentState === "resolved" && !!conversation && !csatDone();
      if (wanted && !csatForm) {
        csatForm = buildCsat();
        csatBox.appendChild(csatForm);
        scrollToEnd(true);
      } else if (!wanted && csatForm) {
        csatForm.remove();
        csatForm = null;
      }
      if (currentState !== "resolved" && csatThanks) { csatThanks.remove(); csatThanks = null; }
    }

    function csatThank() {
      if (conversation) store.set(CSAT_KEY + conversation.id, true);
      if (csatForm) { csatForm.remove(); csatForm = null; }
      if (!csatThanks) {
        csatThanks = el("div", { className: "csat-thanks", "data-testid": "parley-csat-thanks",
                                 role: "status", text: T.csatThanks });
        csatBox.appendChild(csatThanks);
      }
      scrollToEnd(true);
    }

    function buildCsat() {
      var chosen = 0;
      var stars = [];
      var submit = el("button", { type: "submit", className: "csat-submit",
                                  "data-testid": "parley-csat-submit", text: T.csatSubmit,
                                  disabled: true });
      var comment = el("textarea", { className: "csat-comment", id: "parley-csat-comment",
                                     "data-testid": "parley-csat-comment", rows: "2",
                                     maxlength: "2000" });
      var error = el("div", { className: "csat-error", role: "alert", hidden: true });
      var group = el("div", { className: "stars", role: "group",
                              "aria-labelledby": "parley-csat-title" });
      function choose(n) {
        chosen = n;
        stars.forEach(function (b, i) {
          b.classList.toggle("on", i < n);
          b.setAttribute("aria-pressed", i + 1 === n ? "true" : "false");
        });
        submit.disabled = false;
      }
      for (var n = 1; n <= 5; n++) {
        (function (score) {
          var star = el("button", {
            type: "button", className: "star", "data-testid": "parley-csat-score",
            "data-score": String(score), "aria-pressed": "false",
            "aria-label": fmt("csatScore", { n: score }), title: fmt("csatScore", { n: score }),
            text: "★", on: { click: function () { choose(score); } },
          });
          stars.push(star);
          group.appendChild(star);
        })(n);
      }
      var form = el("form", { className: "csat", "data-testid": "parley-csat", novalidate: true,
                              "aria-labelledby": "parley-csat-title" }, [
        el("h3", { className: "csat-title", id: "parley-csat-title", text: T.csatTitle }),
        group,
        el("label", { className: "csat-label", "for": "parley-csat-comment", text: T.csatComment }),
        comment, error, submit,
      ]);
      form.addEventListener("submit", function (e) {
        e.preventDefault();
        if (!chosen || !conversation) return;
        var gen = generation;
        submit.disabled = true;
        error.hidden = true;
        var body = { score: chosen };
        var note = comment.value.trim();
        if (note) body.comment = note;
        request("POST", "/" + encodeURIComponent(conversation.id) + "/csat", body,
                conversation.token).then(function () {
          if (gen === generation) csatThank();
        }, function (err) {
          if (gen !== generation) return;
          if (err instanceof ApiError && err.code === "already_rated") { csatThank(); return; }
          if (err instanceof ApiError && err.code === "not_resolved") {
            fetchTranscript(0).catch(function () {}); // the state moved on: follow it
          }
          error.textContent = T.error;
          error.hidden = false;
          submit.disabled = false;
        });
      });
      return form;
    }

    var statusKind = null;
    function showStatus(kind) {
      statusKind = kind;
      statusNotice.textContent = "";
      if (!kind) { statusNotice.hidden = true; return; }
      statusNotice.appendChild(el("span", { className: "pulse", "aria-hidden": "true" }));
      statusNotice.appendChild(el("span", { text: T[kind] || kind }));
      var stick = nearBottom();
      statusNotice.hidden = false;
      if (stick) scrollToEnd(true);
    }

    function updateSendButton() {
      sendButton.disabled = !input.value.trim();
    }

    // ---------------------------------------------------------------------------------------
    // Conversation lifecycle
    // ---------------------------------------------------------------------------------------
    function resetConversation() {
      generation += 1;
      conversation = null;
      saveConversation();
      closeSocket();
      stopQueuePolling();
      clearPartial();
      hideAgentTyping();
      currentState = null;
      renderCsat();
      if (csatThanks) { csatThanks.remove(); csatThanks = null; }
    }

    function ensureConversation() {
      if (conversation) return Promise.resolve(conversation);
      if (creating) return creating;
      var attempt = 0;
      var withCustomer = !!CUSTOMER_TOKEN;
      function tryCreate() {
        var body = { locale: LOCALE };
        if (withCustomer) body.customer_token = CUSTOMER_TOKEN;
        return request("POST", "", body).then(function (data) {
          conversation = { id: data.id, token: data.token, locale: data.locale || LOCALE,
                           base: BASE, customer: CUSTOMER };
          generation += 1;
          saveConversation();
          saveOutbox();
          showState(data.state);
          openSocket();
          return conversation;
        }, function (err) {
          if (withCustomer && err instanceof ApiError && /^customer_token/.test(err.code)) {
            // The site's token was refused (expired, wrong key…): chat anonymously; the
            // order form then asks for the email on the order.
            if (window.console) console.warn("Parley: customer token refused (" + err.code + ")");
            withCustomer = false;
            return tryCreate();
          }
          if (isTransient(err) && attempt < 6) {
            showStatus("offline");
            return sleep(backoff(attempt++, 800, 15000)).then(tryCreate);
          }
          throw err;
        });
      }
      creating = tryCreate().then(function (c) { creating = null; return c; },
                                  function (e) { creating = null; throw e; });
      return creating;
    }

    function restore() {
      var saved = loadConversation();
      var pending = store.get(OUTBOX_KEY);
      if (!saved) {
        if (pending) store.remove(OUTBOX_KEY);
        return Promise.resolve();
      }
      conversation = saved;
      var gen = generation;
      return fetchTranscript(0).then(function () {
        if (gen !== generation) return;
        if (pending && pending.conversation === saved.id && Array.isArray(pending.items)) {
          pending.items.forEach(function (item) {
            if (!item || !item.cid || !item.text) return;
            // Resend even if the transcript has it: its reply may be missing, and a resend
            // with the same client_message_id never produces a second reply.
            if (!byClientId[item.cid]) addLocal(item);
            outbox.push(item);
          });
          pump();
        }
        openSocket();
      }, function () {
        openSocket(); // the stream re-reads the transcript once it connects
      });
    }

    function fetchTranscript(attempt) {
      if (!conversation) return Promise.resolve();
      var gen = generation;
      return request("GET", "/" + encodeURIComponent(conversation.id) + "/messages", undefined,
                     conversation.token).then(function (data) {
        if (gen !== generation || !data) return;
        mergeTranscript(data.messages);
        showState(data.state);
        if (statusKind === "offline") showStatus(null);
      }, function (err) {
        if (gen !== generation) return;
        if (isAuthProblem(err)) { resetConversation(); return; }
        if (isTransient(err) && attempt < 4) {
          return sleep(backoff(attempt, 1000, 10000)).then(function () {
            return fetchTranscript(attempt + 1);
          });
        }
        throw err;
      });
    }

    // ---------------------------------------------------------------------------------------
    // Sending (one at a time, in order; retries reuse the same client_message_id)
    // ---------------------------------------------------------------------------------------
    function enqueue(text, display, payload) {
      text = (text || "").replace(/\u0000/g, "").trim();
      if (!text) return;
      if (text.length > MAX_CHARS) { showStatus("tooLong"); return; }
      var item = { cid: randomId(), text: text, display: (display || text).trim() };
      if (payload) item.payload = payload;
      addLocal(item);
      outbox.push(item);
      saveOutbox();
      pump();
    }

    function pump(manual) {
      if (sending || !outbox.length) return;
      if (manual) outbox.forEach(function (i) { i.failed = false; });
      if (outbox[0].failed) return;
      sending = true;
      var item = outbox[0];
      deliver(item).then(function () {
        outbox.shift();
        saveOutbox();
        sending = false;
        pump();
      }, function (err) {
        sending = false;
        typing.hidden = true;
        clearPartial();
        var row = byClientId[item.cid];
        // Nothing to deliver: an empty text, or a button the bot no longer offers.
        if (err instanceof ApiError && (err.code === "text_empty" || err.code === "unknown_payload")) {
          outbox.shift(); saveOutbox();
          if (row && row.classList.contains("pending")) row.remove();
          pump();
          return;
        }
        item.failed = true;
        if (row) {
          var msg = err && err.code === "text_too_long" ? T.tooLong : T.failed;
          setMeta(row, "error", msg, !(err && err.code === "text_too_long"));
        }
        if (err && err.code === "text_too_long") { outbox.shift(); saveOutbox(); pump(); }
      });
    }

    function deliver(item) {
      var networkAttempts = 0;
      var unavailableAttempts = 0;
      var recreated = false;
      var row = byClientId[item.cid];
      if (row) setMeta(row, null);

      function attempt() {
        return ensureConversation().then(function (conv) {
          var gen = generation;
          // The assistant answers unless a person has the conversation (or is about to).
          if (currentState !== "queued" && currentState !== "with_agent") typing.hidden = false;
          scrollToEnd(true);
          return request("POST", "/" + encodeURIComponent(conv.id) + "/messages",
                         // no payload: JSON leaves the undefined key out
                         { text: item.text, payload: item.payload, client_message_id: item.cid }, conv.token)
            .then(function (data) {
              typing.hidden = true;
              if (statusKind) showStatus(null);
              if (gen !== generation) return;
              var messages = (data && data.messages) || [];
              messages.forEach(function (m, i) {
                if (i === 0 && m.role === "customer") {
                  var local = byClientId[item.cid];
                  if (local && !byId[m.id]) { byId[m.id] = local; }
                }
                upsert(m);
              });
              clearPartial(); // the turn is over: whatever was provisional is in the reply
              showState(data && data.state);
              scrollToEnd(true);
            });
        }).catch(function (err) {
          typing.hidden = true;
          if (isAuthProblem(err) && !recreated) {
            // The conversation is gone or the token no longer works: start a new one.
            recreated = true;
            resetConversation();
            return attempt();
          }
          if (err instanceof ApiError && err.status === 503) {
            // Stored on our side; the assistant is briefly away. Retry later, same id.
            showStatus("unavailable");
            var wait = backoff(Math.min(unavailableAttempts++, 5), 3000, 30000);
            return sleep(wait).then(attempt);
          }
          if (err instanceof ApiError && err.code === "client_message_id_reused") {
            item.cid = randomId(); // never reuse an id for different text
            saveOutbox();
            return attempt();
          }
          if (isTransient(err) && networkAttempts < 5) {
            showStatus("offline");
            return sleep(backoff(networkAttempts++, 700, 10000)).then(attempt);
          }
          if (isTransient(err)) showStatus(null);
          throw err;
        });
      }
      return attempt();
    }

    // ---------------------------------------------------------------------------------------
    // Live stream (WebSocket) with reconnect + transcript re-fetch
    // ---------------------------------------------------------------------------------------
    function closeSocket() {
      if (socketTimer) { clearTimeout(socketTimer); socketTimer = null; }
      if (socket) {
        var s = socket;
        socket = null;
        s.onclose = s.onerror = s.onmessage = s.onopen = null;
        try { s.close(1000); } catch (e) { /* ignore */ }
      }
    }

    function openSocket() {
      if (!conversation || socket || !window.WebSocket) return;
      if (socketTimer) { clearTimeout(socketTimer); socketTimer = null; }
      var gen = generation;
      var conv = conversation;
      var url = BASE.replace(/^http/, "ws") + "/api/v1/conversations/" +
        encodeURIComponent(conv.id) + "/stream?token=" + encodeURIComponent(conv.token);
      var ws;
      try { ws = new WebSocket(url); } catch (e) { scheduleReconnect(); return; }
      socket = ws;
      var opened = false;
      ws.onopen = function () {
        opened = true;
        socketAttempt = 0;
        if (statusKind === "offline") showStatus(null);
      };
      ws.onmessage = function (event) {
        if (gen !== generation) return;
        var data;
        try { data = JSON.parse(event.data); } catch (e) { return; }
        if (!data) return;
        if (data.type === "hello") {
          // The server is subscribed now: catch up on anything sent while we were not.
          fetchTranscript(0).catch(function () {});
        } else if (data.type === "message" && data.message) {
          var stick = nearBottom();
          if (upsert(data.message, undefined, true)) scrollToEnd(stick || data.message.role !== "customer");
        } else if (data.type === "state") {
          var was = currentState;
          showState(data.state); // entering the queue asks for the position right away …
          if (data.state === "queued" && was === "queued") pollQueue(); // … and so does each event
        } else if (data.type === "typing" && data.role === "agent") {
          showAgentTyping();
        } else if (data.type === "partial" && typeof data.text === "string") {
          showPartial(data.text);
        }
      };
      ws.onclose = function (event) {
        if (socket !== ws) return;
        socket = null;
        if (gen !== generation) return;
        if (event.code === 4401 || event.code === 4403 || event.code === 4404) {
          // Token expired or conversation gone: the next message starts a fresh conversation.
          resetConversation();
          return;
        }
        // A refused handshake (e.g. an expired token) reaches browsers only as code 1006, so
        // ask over HTTP: fetchTranscript drops a conversation the server no longer accepts.
        if (!opened) fetchTranscript(3).catch(function () {});
        scheduleReconnect();
      };
    }

    function scheduleReconnect() {
      if (socketTimer || !conversation) return;
      var delay = backoff(socketAttempt++, 1000, 30000);
      socketTimer = setTimeout(function () { socketTimer = null; openSocket(); }, delay);
    }

    window.addEventListener("online", function () {
      if (conversation && !socket) { socketAttempt = 0; openSocket(); }
      pump(true);
    });

    // ---------------------------------------------------------------------------------------
    // Open / close
    // ---------------------------------------------------------------------------------------
    /** Show or hide the panel; the launcher says what a click on it does next. */
    function setOpen(opened) {
      isOpen = opened;
      panel.hidden = !opened;
      launcher.classList.toggle("open", opened);
      launcher.setAttribute("aria-expanded", String(opened));
      launcher.setAttribute("aria-label", opened ? T.close : T.launcher);
      launcher.title = opened ? T.close : T.launcher;
      launcherIcon.replaceChildren(opened ? svg(ICON_CHEVRON, 24) : svg(ICON_CHAT, 22));
    }

    function open() {
      if (isOpen) return;
      setOpen(true);
      unread = 0;
      badge.hidden = true;
      scrollToEnd(true);
      setTimeout(function () { input.focus(); }, 30);
    }

    function close() {
      if (!isOpen) return;
      setOpen(false);
      launcher.focus();
    }

    launcher.addEventListener("click", function () { if (isOpen) close(); else open(); });
    closeButton.addEventListener("click", close);
    panel.addEventListener("keydown", function (e) {
      if (e.key === "Escape") { e.stopPropagation(); close(); }
    });
    input.addEventListener("input", function () { updateSendButton(); sendTyping(); });
    composer.addEventListener("submit", function (e) {
      e.preventDefault();
      var text = input.value;
      if (!text.trim()) return;
      if (statusKind === "tooLong") showStatus(null);
      input.value = "";
      updateSendButton();
      enqueue(text);
      input.focus();
    });
    input.addEventListener("keydown", function (e) {
      // Enter sends (the form's submit); ignore Enter while an IME is composing (Chinese input).
      if (e.key === "Enter" && (e.isComposing || e.keyCode === 229)) e.preventDefault();
    });

    // ---------------------------------------------------------------------------------------
    // Show
    // ---------------------------------------------------------------------------------------
    function mount() {
      (document.body || document.documentElement).appendChild(host);
      restore();
      if (attr("data-parley-open") === "true" || wantOpen) open();
    }

    api.open = open;
    api.close = close;
    api.toggle = function () { if (isOpen) close(); else open(); };
    api.locale = LOCALE;

    if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", mount);
    else mount();
  }
})();

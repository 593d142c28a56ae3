/* Staff sign-in shared by the staff pages (agent console, knowledge editor): the login form,
 * the session token, sign-out, and the way back to the login form.
 *
 * Guarantees, on every page that uses it:
 * - the token lives in sessionStorage under the page's own key (a tab, not the browser), and
 *   is forgotten, with the page's state, whenever the session ends;
 * - any API call answered 401 ends the session and asks to sign in again ("expired");
 * - on an admin-only page, an account without the admin role is signed out at once (its new
 *   session ended on the server too) and told why.
 *
 * The page holds #login-view (#login-form, #login-email, #login-password, #login-submit,
 * #login-message), #app and a #logout button.
 *
 *   var session = ParleySession.create({
 *     storageKey: "parley.console.token",
 *     adminOnly: null,            // or the message a non-admin account is shown
 *     onStart: function (agent) {},  // signed in: the app view is shown
 *     onClear: function () {},       // signed out: forget the page's state
 *     beforeLogout: function () { return promise; }  // optional, settles before sign-out
 *   });
 *   session.start();  // on DOMContentLoaded: wires the form, resumes a stored session
 *   session.api(method, path, body, opts); session.token(); session.handled(err);
 *   session.expire();  // the session ended elsewhere (a WebSocket closed with 4401)
 */
(function () {
  "use strict";

  var $ = ParleyDom.$;

  function create(options) {
    var token = null;

    function showLogin(message) {
      $("app").hidden = true;
      $("login-view").hidden = false;
      var box = $("login-message");
      box.textContent = message || "";
      box.hidden = !message;
      $("login-password").value = "";
      ($("login-email").value ? $("login-password") : $("login-email")).focus();
    }

    function open(agent) {
      $("login-view").hidden = true;
      $("app").hidden = false;
      options.onStart(agent);
    }

    function clear() {
      token = null;
      sessionStorage.removeItem(options.storageKey);
      options.onClear();
    }

    function expire() {
      if (!token) return;
      clear();
      showLogin("Your session has expired. Please sign in again.");
    }

    function refuseNonAdmin() {
      var ended = token;
      clear();
      if (ended) {  // end the session this page opened: it cannot use it
        ParleyDom.request("POST", "/auth/logout", undefined, { token: ended })
          .catch(function () { /* best effort */ });
      }
      showLogin(options.adminOnly);
    }

    function allowed(agent) { return !options.adminOnly || agent.role === "admin"; }

    /** ParleyDom.request with this session's token; opts.anonymous sends none. */
    function api(method, path, body, opts) {
      var anonymous = !!(opts && opts.anonymous);
      return ParleyDom.request(method, path, body, {
        token: token, anonymous: anonymous,
        onError: function (err) {
          if (err.status === 401 && !anonymous) expire();
          if (options.adminOnly && err.code === "admin_only") refuseNonAdmin();
        }
      });
    }

    /** True for errors this script has already shown (by going back to the login form). */
    function handled(err) {
      return !!err && (err.status === 401 || (!!options.adminOnly && err.code === "admin_only"));
    }

    function login(event) {
      event.preventDefault();
      var email = $("login-email").value.trim(), password = $("login-password").value;
      if (!email || !password) { showLogin("Enter your email and password."); return; }
      $("login-submit").disabled = true;
      api("POST", "/auth/login", { email: email, password: password }, { anonymous: true })
        .then(function (session) {
          token = session.token;
          if (!allowed(session.agent)) { refuseNonAdmin(); return; }
          sessionStorage.setItem(options.storageKey, session.token);
          open(session.agent);
        })
        .catch(function (err) {
          showLogin(err.code === "invalid_credentials" || err.status === 422
            ? "Wrong email or password." : err.message);
        })
        .then(function () { $("login-submit").disabled = false; });
    }

    function logout() {
      if (!token) return;
      var before = options.beforeLogout ? options.beforeLogout() : Promise.resolve();
      before.catch(function () { /* best effort */ })
        .then(function () { return api("POST", "/auth/logout"); })
        .catch(function () { /* the session ends locally anyway */ })
        .then(function () {
          clear();
          showLogin("You have signed out.");
        });
    }

    function resume() {
      var saved = sessionStorage.getItem(options.storageKey);
      if (!saved) { showLogin(""); return; }
      token = saved;
      api("GET", "/auth/me").then(function (agent) {
        if (!allowed(agent)) { refuseNonAdmin(); return; }
        open(agent);
      }).catch(function (err) {
        if (err.status !== 401) { clear(); showLogin(err.message); }
      });
    }

    function start() {
      $("login-form").addEventListener("submit", login);
      $("logout").addEventListener("click", logout);
      resume();
    }

    return {
      start: start,
      api: api,
      handled: handled,
      expire: expire,
      token: function () { return token; }
    };
  }

  window.ParleySession = { create: create };
})();

// Partner sign-in (/h5/{tenant}/partner) and the partner's page (/h5/{tenant}/partner/me).
// Plain JS, no build step. The token lives in localStorage under zt_partner_token:{tenant}.
(function () {
  "use strict";

  var RESEND_SECONDS = 60;
  var messages = { details: {}, codes: {}, roles: {} };
  try {
    messages = JSON.parse(document.getElementById("h5-messages").textContent);
  } catch (ignored) {
    /* keep the English answers */
  }
  var status = document.getElementById("partner-status");
  var form = document.getElementById("partner-form");
  var mePanel = document.getElementById("partner-me");
  var root = form || mePanel;
  if (!root) return;
  var tenant = root.getAttribute("data-tenant");
  var storageKey = "zt_partner_token:" + tenant;
  var api = "/api/v1/channel";

  function show(message, kind) {
    status.textContent = message || "";
    status.className = "h5-status" + (kind ? " " + kind : "");
  }

  function describe(body, fallbackCode) {
    if (body && typeof body.detail === "string") {
      if (messages.details[body.detail]) return messages.details[body.detail];
      if (body.error && messages.codes[body.error]) return messages.codes[body.error];
      return body.detail;
    }
    return messages.codes[fallbackCode] || (form ? text("failed") : "");
  }

  function request(method, path, payload, token) {
    var headers = { accept: "application/json" };
    if (payload) headers["content-type"] = "application/json";
    if (token) headers.authorization = "Bearer " + token;
    return fetch(api + path, {
      method: method,
      headers: headers,
      body: payload ? JSON.stringify(payload) : undefined,
      credentials: "omit"
    }).then(
      function (response) {
        return response
          .json()
          .catch(function () {
            return null;
          })
          .then(function (body) {
            return { ok: response.ok, status: response.status, body: body };
          });
      },
      function () {
        return { ok: false, status: 0, body: null, network: true };
      }
    );
  }

  function savedToken() {
    try {
      return window.localStorage.getItem(storageKey);
    } catch (ignored) {
      return null;
    }
  }

  function text(name, values) {
    var template = form.getAttribute("data-" + name) || "";
    return template.replace(/\{(\w+)\}/g, function (all, key) {
      return values && key in values ? values[key] : all;
    });
  }

  var mePage = "/h5/" + encodeURIComponent(tenant) + "/partner/me";
  var signInPage = "/h5/" + encodeURIComponent(tenant) + "/partner";

  if (form) {
    var useCode = false;
    var phoneInput = form.elements.namedItem("phone");
    var passwordInput = form.elements.namedItem("password");
    var codeInput = form.elements.namedItem("code");
    var sendButton = document.getElementById("send-code");
    var countdown = null;

    function choose(code) {
      useCode = code;
      document.getElementById("password-field").hidden = code;
      document.getElementById("code-field").hidden = !code;
      document.getElementById("tab-password").setAttribute("aria-selected", String(!code));
      document.getElementById("tab-code").setAttribute("aria-selected", String(code));
      document.getElementById("tab-password").className = code ? "" : "primary";
      document.getElementById("tab-code").className = code ? "primary" : "";
      show("");
    }
    document.getElementById("tab-password").addEventListener("click", function () {
      choose(false);
    });
    document.getElementById("tab-code").addEventListener("click", function () {
      choose(true);
    });

    function phone() {
      return (phoneInput.value || "").replace(/[\s-]/g, "");
    }

    function startCountdown(seconds) {
      var left = seconds;
      sendButton.disabled = true;
      sendButton.textContent = text("resend", { seconds: left });
      window.clearInterval(countdown);
      countdown = window.setInterval(function () {
        left -= 1;
        if (left <= 0) {
          window.clearInterval(countdown);
          sendButton.disabled = false;
          sendButton.textContent = text("send");
        } else {
          sendButton.textContent = text("resend", { seconds: left });
        }
      }, 1000);
    }

    sendButton.addEventListener("click", function () {
      if (!phone()) {
        show(text("need-phone"), "error");
        return;
      }
      sendButton.disabled = true;
      show(text("sending"));
      request("POST", "/public/" + encodeURIComponent(tenant) + "/partner/otp", { phone: phone() }).then(function (r) {
        if (r.ok) {
          show(text("sent", { phone: r.body.phone_masked }), "ok");
          startCountdown(RESEND_SECONDS);
          codeInput.focus();
          return;
        }
        show(describe(r.body, r.network ? "network" : ""), "error");
        sendButton.disabled = false;
      });
    });

    form.addEventListener("submit", function (event) {
      event.preventDefault();
      if (!phone()) {
        show(text("need-phone"), "error");
        return;
      }
      var payload = { phone: phone() };
      if (useCode) {
        var code = (codeInput.value || "").trim();
        if (!/^\d{6}$/.test(code)) {
          show(text("need-code"), "error");
          return;
        }
        payload.code = code;
      } else {
        if (!passwordInput.value) {
          show(text("need-password"), "error");
          return;
        }
        payload.password = passwordInput.value;
      }
      show(text("signing-in"));
      request("POST", "/public/" + encodeURIComponent(tenant) + "/partner/sessions", payload).then(function (r) {
        if (r.ok && r.body && r.body.token) {
          try {
            window.localStorage.setItem(storageKey, r.body.token);
          } catch (ignored) {
            /* private mode */
          }
          window.location.assign(mePage);
          return;
        }
        show(describe(r.body, r.network ? "network" : ""), "error");
      });
    });

    if (savedToken()) {
      request("GET", "/partner/me", null, savedToken()).then(function (r) {
        if (r.ok) window.location.replace(mePage);
      });
    }
  }

  if (mePanel) {
    var token = savedToken();
    if (!token) {
      window.location.replace(signInPage);
      return;
    }
    request("GET", "/partner/me", null, token).then(function (r) {
      if (!r.ok) {
        if (r.status === 401) {
          window.localStorage.removeItem(storageKey);
          window.location.replace(signInPage);
        } else {
          show(describe(r.body, r.network ? "network" : ""), "error");
        }
        return;
      }
      var me = r.body;
      document.getElementById("me-name").textContent = me.partner.display_name;
      document.getElementById("me-role").textContent = messages.roles[me.partner.role] || me.partner.role;
      document.getElementById("me-phone").textContent = me.partner.phone_masked;
      document.getElementById("me-dealer").textContent = me.dealer.name + " (" + me.dealer.code + ")";
      if (me.store) {
        document.getElementById("me-store-label").hidden = false;
        var storeLine = document.getElementById("me-store");
        storeLine.hidden = false;
        storeLine.textContent = me.store.name + " (" + me.store.code + ")" + (me.store.address ? " · " + me.store.address : "");
      } else {
        request("GET", "/partner/stores?per_page=50", null, token).then(function (list) {
          if (!list.ok) return;
          document.getElementById("me-stores-title").hidden = false;
          var ul = document.getElementById("me-stores");
          list.body.items.forEach(function (store) {
            var li = document.createElement("li");
            li.textContent = store.name + " (" + store.code + ")";
            ul.appendChild(li);
          });
        });
      }
      mePanel.hidden = false;
    });
    document.getElementById("sign-out").addEventListener("click", function () {
      request("DELETE", "/partner/session", null, token).then(function () {
        window.localStorage.removeItem(storageKey);
        window.location.replace(signInPage);
      });
    });
  }
})();

// Consumer sign-in by phone and one-time code, for /h5/{tenant}/login. Plain JS, no build step.
(function () {
  "use strict";

  var TOKEN_KEY = "zt_consumer_token";
  var RESEND_SECONDS = 60;
  var form = document.getElementById("otp-form");
  if (!form) return;

  var tenant = form.getAttribute("data-tenant");
  var api = "/api/v1/public/" + encodeURIComponent(tenant);
  var storageKey = TOKEN_KEY + ":" + tenant;
  var phoneInput = form.elements.namedItem("phone");
  var codeInput = form.elements.namedItem("code");
  var sendButton = document.getElementById("send-code");
  var signInButton = document.getElementById("sign-in");
  var status = document.getElementById("otp-status");
  var signedIn = document.getElementById("signed-in");
  var messages = { details: {}, codes: {} };
  try {
    messages = JSON.parse(document.getElementById("h5-messages").textContent);
  } catch (ignored) {
    /* keep the English answers */
  }
  var countdown = null;

  function text(name, values) {
    var template = form.getAttribute("data-" + name) || "";
    return template.replace(/\{(\w+)\}/g, function (all, key) {
      return values && key in values ? values[key] : all;
    });
  }

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
    return messages.codes[fallbackCode] || text("failed");
  }

  function post(path, payload) {
    return fetch(api + path, {
      method: "POST",
      headers: { "content-type": "application/json", accept: "application/json" },
      body: JSON.stringify(payload),
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

  function phone() {
    return (phoneInput.value || "").replace(/[\s-]/g, "");
  }

  function showSignedIn(label) {
    form.hidden = true;
    signedIn.hidden = false;
    document.getElementById("signed-in-phone").textContent = label || "";
  }

  sendButton.addEventListener("click", function () {
    if (!phone()) {
      show(text("need-phone"), "error");
      phoneInput.focus();
      return;
    }
    sendButton.disabled = true;
    show(text("sending"));
    post("/otp", { phone: phone() }).then(function (result) {
      if (result.ok) {
        show(text("sent", { phone: result.body.phone_masked }), "ok");
        startCountdown(RESEND_SECONDS);
        codeInput.focus();
        return;
      }
      show(describe(result.body, result.network ? "network" : ""), "error");
      var wait = result.body && result.body.data && result.body.data.retry_after_seconds;
      if (result.status === 429 && wait) {
        startCountdown(Math.min(wait, RESEND_SECONDS * 10));
      } else {
        sendButton.disabled = false;
      }
    });
  });

  form.addEventListener("submit", function (event) {
    event.preventDefault();
    if (!phone()) {
      show(text("need-phone"), "error");
      phoneInput.focus();
      return;
    }
    var code = (codeInput.value || "").trim();
    if (!/^\d{6}$/.test(code)) {
      show(text("need-code"), "error");
      codeInput.focus();
      return;
    }
    signInButton.disabled = true;
    show(text("signing-in"));
    post("/sessions", { phone: phone(), code: code }).then(function (result) {
      signInButton.disabled = false;
      if (result.ok && result.body && result.body.token) {
        try {
          window.localStorage.setItem(storageKey, result.body.token);
        } catch (ignored) {
          /* private mode: the session lasts as long as the page */
        }
        show("");
        showSignedIn(result.body.consumer && result.body.consumer.phone_masked);
        document.dispatchEvent(new CustomEvent("zt:consumer-signed-in", { detail: result.body }));
        return;
      }
      show(describe(result.body, result.network ? "network" : ""), "error");
    });
  });

  document.getElementById("sign-out").addEventListener("click", function () {
    var token = window.localStorage.getItem(storageKey);
    window.localStorage.removeItem(storageKey);
    if (token) {
      fetch("/api/v1/consumer/session", { method: "DELETE", headers: { authorization: "Bearer " + token } });
    }
    signedIn.hidden = true;
    form.hidden = false;
    codeInput.value = "";
  });

  // Already signed in on this device: check the token is still good.
  var saved = null;
  try {
    saved = window.localStorage.getItem(storageKey);
  } catch (ignored) {
    saved = null;
  }
  if (saved) {
    fetch("/api/v1/consumer/me", { headers: { authorization: "Bearer " + saved, accept: "application/json" } })
      .then(function (response) {
        return response.ok ? response.json() : null;
      })
      .then(function (me) {
        if (me) {
          showSignedIn(me.phone_masked);
        } else {
          window.localStorage.removeItem(storageKey);
        }
      }, function () {});
  }
})();

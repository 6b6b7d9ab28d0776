// The partner's wallet page (/h5/{tenant}/partner/wallet). Plain JS, no build step. It reads the token
// the partner sign-in page keeps in localStorage under zt_partner_token:{tenant}.
(function () {
  "use strict";

  var panel = document.getElementById("wallet");
  if (!panel) return;
  var words = {};
  try {
    words = JSON.parse(document.getElementById("wallet-words").textContent);
  } catch (ignored) {
    /* English */
  }
  var tenant = panel.getAttribute("data-tenant");
  var storageKey = "zt_partner_token:" + tenant;
  var signInPage = "/h5/" + encodeURIComponent(tenant) + "/partner";
  var status = document.getElementById("wallet-status");
  var token = null;
  try {
    token = window.localStorage.getItem(storageKey);
  } catch (ignored) {
    token = null;
  }
  if (!token) {
    window.location.replace(signInPage);
    return;
  }

  function yuan(fen) {
    var sign = fen < 0 ? "-" : "";
    var value = Math.abs(fen);
    return sign + "¥" + Math.floor(value / 100) + "." + String(value % 100).padStart(2, "0");
  }

  function word(key) {
    return words[key] || key;
  }

  function show(message, kind) {
    status.textContent = message || "";
    status.className = "h5-status" + (kind ? " " + kind : "");
  }

  function call(method, path, payload, extraHeaders) {
    var headers = { accept: "application/json", authorization: "Bearer " + token };
    if (payload) headers["content-type"] = "application/json";
    Object.keys(extraHeaders || {}).forEach(function (k) { headers[k] = extraHeaders[k]; });
    return fetch("/api/v1/rewards" + path, { method: method, headers: headers, body: payload ? JSON.stringify(payload) : undefined })
      .then(function (response) {
        return response.json().catch(function () { return {}; }).then(function (body) {
          return { ok: response.ok, status: response.status, body: body };
        });
      }, function () {
        return { ok: false, status: 0, body: { detail: word("network") } };
      });
  }

  function fill(listId, items, line) {
    var ul = document.getElementById(listId);
    ul.textContent = "";
    if (!items.length) {
      var empty = document.createElement("li");
      empty.className = "muted";
      empty.textContent = word("nothing");
      ul.appendChild(empty);
    }
    items.forEach(function (item) {
      var li = document.createElement("li");
      li.textContent = line(item);
      ul.appendChild(li);
    });
  }

  function grantLine(g) {
    return g.created_at.slice(0, 16).replace("T", " ") + " · " + word(g.event_kind) + " · " + yuan(g.amount_fen) + " · " + word(g.status);
  }

  function load() {
    return call("GET", "/partner/wallet").then(function (r) {
      if (r.status === 401) {
        window.localStorage.removeItem(storageKey);
        window.location.replace(signInPage);
        return;
      }
      if (!r.ok) {
        show(r.body.detail || word("network"), "error");
        return;
      }
      var w = r.body;
      document.getElementById("wallet-balance").textContent = yuan(w.balance_fen);
      document.getElementById("wallet-held").textContent = yuan(w.held_fen);
      document.getElementById("wallet-withdrawing").textContent = yuan(w.withdrawing_fen);
      document.getElementById("withdraw-min").textContent = "≥ " + yuan(w.min_withdrawal_fen);
      fill("wallet-pending", w.pending, grantLine);
      fill("wallet-recent", w.recent, grantLine);
      fill("wallet-withdrawals", w.withdrawals, function (x) {
        return x.created_at.slice(0, 16).replace("T", " ") + " · " + yuan(x.amount_fen) + " · " + x.payee_account + " · " + word(x.status) + (x.failure_reason ? " · " + x.failure_reason : "");
      });
      panel.hidden = false;
    });
  }

  var form = document.getElementById("withdraw-form");
  var requestKey = null;
  form.addEventListener("submit", function (event) {
    event.preventDefault();
    var raw = form.elements.amount.value.trim().replace(/^¥/, "");
    if (!/^\d+(\.\d{1,2})?$/.test(raw)) {
      show(word("amount"), "error");
      return;
    }
    var parts = raw.split(".");
    var fen = parseInt(parts[0], 10) * 100 + (parts[1] ? parseInt((parts[1] + "0").slice(0, 2), 10) : 0);
    // One key per intended withdrawal: a double tap or a retry after a network error withdraws once.
    requestKey = requestKey || "wd-" + Date.now().toString(36) + "-" + Math.random().toString(36).slice(2, 10);
    var button = document.getElementById("withdraw");
    button.disabled = true;
    call("POST", "/partner/withdrawals", {
      amount_fen: fen,
      payee_name: form.elements.payee_name.value.trim(),
      payee_account: form.elements.payee_account.value.trim()
    }, { "idempotency-key": requestKey }).then(function (r) {
      button.disabled = false;
      if (r.ok) {
        requestKey = null;
        form.reset();
        show(word("withdraw_done").replace("{amount}", yuan(r.body.amount_fen).slice(1)), "ok");
        load();
      } else {
        if (r.status && r.status < 500) requestKey = null;
        show(r.body.detail || word("network"), "error");
      }
    });
  });

  load();
})();

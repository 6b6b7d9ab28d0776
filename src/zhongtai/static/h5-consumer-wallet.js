// The consumer's wallet (/h5/{tenant}/wallet). Plain JS, no build step. It reads the token the consumer
// sign-in page keeps in localStorage under zt_consumer_token:{tenant}; on load it first claims the red
// packets this phone received before signing in (POST /consumer/claim), then shows the wallet.
// Every value from the server is written with textContent.
(function () {
  "use strict";

  var root = document.getElementById("consumer-wallet");
  if (!root) return;
  var words = {};
  try {
    words = JSON.parse(document.getElementById("wallet-words").textContent);
  } catch (ignored) {
    /* English */
  }
  var tenant = root.getAttribute("data-tenant");
  var storageKey = "zt_consumer_token:" + tenant;
  var status = document.getElementById("wallet-status");
  var token = null;
  try {
    token = window.localStorage.getItem(storageKey);
  } catch (ignored) {
    token = null;
  }
  var minimum = 0;
  var balance = 0;

  function needSignIn() {
    root.hidden = true;
    document.getElementById("need-sign-in").hidden = false;
  }

  if (!token) {
    needSignIn();
    return;
  }

  function yuan(fen) {
    var sign = fen < 0 ? "-" : "";
    var value = Math.abs(fen);
    return sign + "¥" + Math.floor(value / 100) + "." + String(value % 100).padStart(2, "0");
  }

  function word(key, values) {
    return (words[key] || key).replace(/\{(\w+)\}/g, function (all, name) {
      return values && name in values ? values[name] : all;
    });
  }

  function show(message, kind) {
    status.textContent = message || "";
    status.className = "h5-status" + (kind ? " " + kind : "");
  }

  function when(iso) {
    return iso ? iso.slice(0, 16).replace("T", " ") : "";
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

  function signedOut(r) {
    if (r.status !== 401) return false;
    try {
      window.localStorage.removeItem(storageKey);
    } catch (ignored) {
      /* nothing kept */
    }
    needSignIn();
    return true;
  }

  function line(ul, main, sub) {
    var li = document.createElement("li");
    var strong = document.createElement("span");
    strong.textContent = main;
    li.appendChild(strong);
    if (sub) {
      var small = document.createElement("span");
      small.className = "muted small";
      small.textContent = " " + sub;
      li.appendChild(small);
    }
    ul.appendChild(li);
    return li;
  }

  function fill(listId, items, emptyKey, each) {
    var ul = document.getElementById(listId);
    ul.textContent = "";
    if (!items.length) line(ul, word(emptyKey)).className = "muted";
    items.forEach(function (item) { each(ul, item); });
  }

  function showWallet(w) {
    minimum = w.min_withdrawal_fen;
    balance = w.balance_fen;
    document.getElementById("wallet-balance").textContent = yuan(w.balance_fen);
    document.getElementById("wallet-held").textContent = yuan(w.held_fen);
    document.getElementById("wallet-withdrawing").textContent = yuan(w.withdrawing_fen);
    var enough = w.balance_fen >= w.min_withdrawal_fen && w.balance_fen > 0;
    document.getElementById("withdraw-min").textContent = enough
      ? "≥ " + yuan(w.min_withdrawal_fen)
      : word("below_min", { amount: yuan(w.min_withdrawal_fen).slice(1) });
    document.getElementById("withdraw-form").hidden = !enough;
    fill("wallet-packets", w.packets, "nothing", function (ul, p) {
      var li = line(ul, yuan(p.amount_fen) + " · " + word(p.status), (p.product || word("unknown_bottle")) + " · " + p.serial + " · " + when(p.created_at));
      li.setAttribute("data-status", p.status);
    });
    fill("wallet-withdrawals", w.withdrawals, "no_withdrawals", function (ul, x) {
      line(ul, yuan(x.amount_fen) + " · " + word(x.status), when(x.created_at) + " · " + x.payee_account + (x.failure_reason ? " · " + x.failure_reason : ""));
    });
    root.hidden = false;
  }

  function load() {
    return call("GET", "/consumer/wallet").then(function (r) {
      if (signedOut(r)) return;
      if (!r.ok) {
        show(r.body.detail || word("network"), "error");
        return;
      }
      showWallet(r.body);
    });
  }

  function claim() {
    // The red packets this phone's scans received before signing in become this consumer's; claiming
    // twice finds nothing the second time, so every visit may ask.
    return call("POST", "/consumer/claim").then(function (r) {
      if (signedOut(r)) return false;
      if (r.ok && r.body.claimed > 0) {
        var line = document.getElementById("claim-status");
        line.textContent = word("claimed", { count: r.body.claimed, amount: yuan(r.body.amount_fen).slice(1) });
        line.hidden = false;
      }
      return true;
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
    if (fen < minimum) {
      show(word("below_min", { amount: yuan(minimum).slice(1) }), "error");
      return;
    }
    if (fen > balance) {
      show(word("over_balance"), "error");
      return;
    }
    // One key per intended withdrawal: a double tap or a retry after a network error withdraws once.
    requestKey = requestKey || "wd-" + Date.now().toString(36) + "-" + Math.random().toString(36).slice(2, 10);
    var button = document.getElementById("withdraw");
    button.disabled = true;
    call("POST", "/consumer/withdrawals", {
      amount_fen: fen,
      payee_name: form.elements.payee_name.value.trim(),
      payee_account: form.elements.payee_account.value.trim()
    }, { "idempotency-key": requestKey }).then(function (r) {
      button.disabled = false;
      if (signedOut(r)) return;
      if (r.ok) {
        requestKey = null;
        form.reset();
        show(word("withdraw_done", { amount: yuan(r.body.amount_fen).slice(1) }), "ok");
        load();
      } else {
        if (r.status && r.status < 500) requestKey = null;
        show(r.body.detail || word("network"), "error");
      }
    });
  });

  claim().then(function (stillSignedIn) {
    if (stillSignedIn) load();
  });
})();

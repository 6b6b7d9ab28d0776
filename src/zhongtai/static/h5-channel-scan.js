// Channel scanning app (/h5/{tenant}/partner/scan): choose a step, scan codes with the camera
// (BarcodeDetector where the browser has it) or type them, see each answer, the rewards and the stock.
// Plain JS, no build step; the partner's token is the one the sign-in page stored.
(function () {
  "use strict";

  var messages = { details: {}, codes: {}, roles: {}, words: {}, reasons: {} };
  try {
    messages = JSON.parse(document.getElementById("h5-messages").textContent);
  } catch (ignored) {
    /* English */
  }
  var panel = document.getElementById("partner-scan");
  if (!panel) return;
  var tenant = panel.getAttribute("data-tenant");
  var token = window.localStorage.getItem("zt_partner_token:" + tenant);
  var signIn = "/h5/" + encodeURIComponent(tenant) + "/partner";
  var api = "/api/v1/channel";
  var status = document.getElementById("partner-status");
  var results = document.getElementById("results");
  var video = document.getElementById("camera");
  var input = document.getElementById("scan-code");
  var shipTo = document.getElementById("ship-to");
  var shipStore = document.getElementById("ship-store");
  var position = null;
  var busy = false;
  var lastCode = "";
  var lastAt = 0;
  var stream = null;

  function word(text, values) {
    var out = messages.words[text] || text;
    Object.keys(values || {}).forEach(function (key) {
      out = out.replace("{" + key + "}", values[key]);
    });
    return out;
  }

  function show(text, kind) {
    status.textContent = text || "";
    status.className = "h5-status" + (kind ? " " + kind : "");
  }

  function deviceId() {
    var key = "zt_device_id";
    var id = window.localStorage.getItem(key);
    if (!id) {
      id = Math.random().toString(36).slice(2) + Date.now().toString(36);
      window.localStorage.setItem(key, id);
    }
    return id;
  }

  function newKey() {
    if (window.crypto && window.crypto.randomUUID) return window.crypto.randomUUID();
    return "k" + Math.random().toString(36).slice(2) + Date.now().toString(36);
  }

  function call(method, path, payload, key) {
    var headers = { accept: "application/json", authorization: "Bearer " + token };
    if (payload) headers["content-type"] = "application/json";
    if (key) headers["idempotency-key"] = key;
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
            if (response.status === 401) {
              window.localStorage.removeItem("zt_partner_token:" + tenant);
              window.location.replace(signIn);
            }
            return { ok: response.ok, status: response.status, body: body };
          });
      },
      function () {
        return { ok: false, status: 0, body: null, network: true };
      }
    );
  }

  function chosenAction() {
    var checked = panel.querySelector("input[name=action]:checked");
    return checked ? checked.value : "";
  }

  function el(tag, className, text) {
    var node = document.createElement(tag);
    if (className) node.className = className;
    if (text !== undefined) node.textContent = text;
    return node;
  }

  // Rewards are opaque: show an amount and a label where an answer has them.
  function rewardLines(rewards) {
    var lines = [];
    (rewards || []).forEach(function (entry) {
      Object.keys(entry.results || {}).forEach(function (name) {
        var value = entry.results[name];
        (Array.isArray(value) ? value : [value]).forEach(function (one) {
          if (!one || typeof one !== "object") return;
          var fen = typeof one.amount_fen === "number" ? one.amount_fen : null;
          var amount = typeof one.amount === "number" ? one.amount : fen !== null ? fen / 100 : null;
          if (amount === null || amount === 0) return;
          var label = one.label || one.role || word("Reward");
          lines.push("¥" + amount.toFixed(2) + " · " + label + (one.status ? " (" + one.status + ")" : ""));
        });
      });
    });
    return lines;
  }

  function addResult(code, body, ok) {
    document.getElementById("scan-results").hidden = false;
    var li = el("li", ok ? "accepted" : "refused");
    var head = el("div");
    head.appendChild(el("strong", "", ok ? (body.replayed ? word("Already recorded") : word("Recorded")) : word("Refused")));
    head.appendChild(document.createTextNode(" "));
    head.appendChild(el("span", "code", code));
    li.appendChild(head);
    if (ok) {
      (body.accepted || []).forEach(function (one) {
        li.appendChild(el("div", "muted", one.code + " · " + word("{count} items", { count: one.items })));
      });
      rewardLines(body.rewards).forEach(function (line) {
        li.appendChild(el("div", "reward", line));
      });
    } else if (body && body.data && body.data.refused) {
      body.data.refused.forEach(function (problem) {
        var text = messages.reasons[problem.reason] || problem.message;
        li.appendChild(el("div", "", (problem.inside ? problem.inside + " › " : "") + problem.code + ": " + text));
      });
    } else {
      var detail = body && body.detail ? messages.details[body.detail] || messages.reasons[body.error] || body.detail : word("The network is not available. Try again.");
      li.appendChild(el("div", "", detail));
    }
    results.insertBefore(li, results.firstChild);
  }

  function loadStock() {
    call("GET", "/partner/inventory").then(function (r) {
      if (!r.ok) return;
      var rows = document.getElementById("stock-rows");
      rows.textContent = "";
      r.body.items.forEach(function (item) {
        var tr = el("tr");
        tr.appendChild(el("td", "", item.name || item.gtin));
        tr.appendChild(el("td", "", String(item.received)));
        tr.appendChild(el("td", "", String(item.shipped + item.sold)));
        tr.appendChild(el("td", "", String(item.on_hand)));
        rows.appendChild(tr);
      });
      document.getElementById("stock").hidden = r.body.items.length === 0;
    });
  }

  function locate() {
    if (!navigator.geolocation || position) return;
    navigator.geolocation.getCurrentPosition(
      function (found) {
        position = found.coords;
      },
      function () {
        /* no location: the scan goes without */
      },
      { enableHighAccuracy: false, timeout: 5000, maximumAge: 300000 }
    );
  }

  function submit(code) {
    var action = chosenAction();
    code = (code || "").trim();
    if (!code) return show(word("Scan or type a code."), "error");
    if (action === "ship" && !shipStore.value) return show(word("Choose the store you ship to."), "error");
    if (busy) return;
    busy = true;
    show(word("Sending…"));
    var payload = { action: action, codes: [code], device_id: deviceId() };
    if (action === "ship") payload.to_store_id = shipStore.value;
    if (position) {
      payload.latitude = position.latitude;
      payload.longitude = position.longitude;
      payload.accuracy_m = position.accuracy;
    }
    var key = newKey();
    var attempt = function (left) {
      return call("POST", "/partner/scans", payload, key).then(function (r) {
        if (r.network && left > 0) return attempt(left - 1); // the same key: a retry never counts twice
        return r;
      });
    };
    attempt(1).then(function (r) {
      busy = false;
      if (r.status === 429) show(word("Too many requests. Wait a moment and try again."), "error");
      else show("");
      addResult(code, r.body, r.ok);
      if (r.ok) {
        input.value = "";
        loadStock();
      }
    });
  }

  document.getElementById("scan-form").addEventListener("submit", function (event) {
    event.preventDefault();
    locate();
    submit(input.value);
  });

  panel.addEventListener("change", function (event) {
    if (event.target.name === "action") shipTo.hidden = chosenAction() !== "ship";
  });

  // Camera.
  var startButton = document.getElementById("camera-start");
  var stopButton = document.getElementById("camera-stop");
  var detector = null;
  if ("BarcodeDetector" in window) {
    try {
      detector = new window.BarcodeDetector({ formats: ["qr_code", "data_matrix", "code_128"] });
    } catch (ignored) {
      detector = null;
    }
  }
  if (!detector || !navigator.mediaDevices) {
    startButton.hidden = true;
  }

  function stopCamera() {
    if (stream) stream.getTracks().forEach(function (track) { track.stop(); });
    stream = null;
    video.hidden = true;
    stopButton.hidden = true;
    startButton.hidden = !detector;
  }

  function tick() {
    if (!stream) return;
    detector
      .detect(video)
      .then(function (codes) {
        var now = Date.now();
        if (codes.length && !(codes[0].rawValue === lastCode && now - lastAt < 10000)) {
          lastCode = codes[0].rawValue;
          lastAt = now;
          if (navigator.vibrate) navigator.vibrate(60);
          submit(lastCode);
        }
      })
      .catch(function () {})
      .then(function () {
        window.setTimeout(tick, 250);
      });
  }

  startButton.addEventListener("click", function () {
    locate();
    navigator.mediaDevices.getUserMedia({ video: { facingMode: "environment" } }).then(
      function (found) {
        stream = found;
        video.srcObject = found;
        video.hidden = false;
        stopButton.hidden = false;
        startButton.hidden = true;
        video.play();
        tick();
      },
      function () {
        show(word("The camera is not available; type the code instead."), "error");
      }
    );
  });
  stopButton.addEventListener("click", stopCamera);

  // Who is scanning: the steps of its role, the dealer's stores to ship to.
  if (!token) {
    window.location.replace(signIn);
    return;
  }
  call("GET", "/partner/me").then(function (r) {
    if (!r.ok) return show(r.network ? word("The network is not available. Try again.") : "", "error");
    var me = r.body;
    var role = me.partner.role;
    document.getElementById("scan-who").textContent =
      me.partner.display_name + " · " + (me.store ? me.store.name : me.dealer.name);
    var first = null;
    Array.prototype.forEach.call(panel.querySelectorAll("[data-roles]"), function (label) {
      var mine = label.getAttribute("data-roles").split(" ").indexOf(role) >= 0;
      label.hidden = !mine;
      if (mine && !first) first = label.querySelector("input");
    });
    if (first) first.checked = true;
    if (role === "dealer") {
      call("GET", "/partner/stores?per_page=200").then(function (list) {
        if (!list.ok) return;
        list.body.items.forEach(function (store) {
          var option = el("option", "", store.name + " (" + store.code + ")");
          option.value = store.id;
          shipStore.appendChild(option);
        });
      });
    }
    panel.hidden = false;
    loadStock();
  });
})();

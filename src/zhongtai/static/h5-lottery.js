// Reservations for members, /h5/{tenant}/lottery: open sessions, nearest stores, entering, receipts.
(function () {
  "use strict";

  var root = document.getElementById("sessions");
  if (!root) return;
  var tenant = root.getAttribute("data-tenant");
  var token = window.localStorage.getItem("zt_consumer_token:" + tenant);
  var messages = JSON.parse(document.getElementById("lottery-messages").textContent);
  var here = null;

  function call(method, path, body) {
    return fetch("/api/v1" + path, {
      method: method,
      headers: { authorization: "Bearer " + token, "content-type": "application/json", accept: "application/json" },
      body: body ? JSON.stringify(body) : undefined,
    }).then(
      function (response) {
        return response.json().then(function (data) {
          return { ok: response.ok, status: response.status, body: data };
        });
      },
      function () {
        return { ok: false, status: 0, body: { error: "network" } };
      }
    );
  }

  function explain(result) {
    var code = (result.body && result.body.error) || "network";
    return messages.errors[code] || (result.body && result.body.detail) || messages.errors.network;
  }

  function showReceipt(entryId) {
    call("GET", "/consumer/lottery/entries/" + entryId).then(function (result) {
      if (!result.ok) return;
      var r = result.body;
      document.getElementById("receipt").hidden = false;
      document.getElementById("receipt-entry").textContent = r.entry_id;
      var label = messages.results[r.result] || r.result;
      if (r.win) label += " (" + new Date(r.win.payment_due_at).toLocaleString() + ")";
      document.getElementById("receipt-result").textContent = label;
      var order = r.win && r.win.order;
      document.getElementById("receipt-pay").hidden = !(order && order.state === "pending_payment");
      document.getElementById("receipt-leaf").textContent = r.leaf;
      document.getElementById("receipt-root").textContent = r.entries_root || "—";
      document.getElementById("receipt-proof").textContent = r.inclusion_proof
        ? r.leaf_index + " / " + r.tree_size + ": " + r.inclusion_proof.join(" ")
        : "—";
    });
  }

  function loadEntries() {
    call("GET", "/consumer/lottery/entries").then(function (result) {
      if (!result.ok) return;
      var list = document.getElementById("entry-list");
      list.textContent = "";
      result.body.forEach(function (entry) {
        var item = document.createElement("li");
        var link = document.createElement("a");
        link.href = "#" + entry.entry_id;
        link.className = "entry-link";
        link.textContent = entry.title + " · " + (messages.results[entry.result] || entry.result);
        link.addEventListener("click", function (event) {
          event.preventDefault();
          showReceipt(entry.entry_id);
        });
        item.appendChild(link);
        list.appendChild(item);
      });
      document.getElementById("my-entries").hidden = result.body.length === 0;
    });
  }

  function renderSession(session) {
    var card = document.getElementById("session-card").content.firstElementChild.cloneNode(true);
    card.querySelector(".title").textContent = session.title;
    card.querySelector(".window").textContent =
      new Date(session.opens_at).toLocaleString() + " – " + new Date(session.closes_at).toLocaleString();
    card.setAttribute("data-session", session.id);
    var select = card.querySelector(".store");
    var status = card.querySelector(".h5-status");
    var query = here ? "?latitude=" + here.latitude + "&longitude=" + here.longitude : "";
    call("GET", "/consumer/lottery/sessions/" + session.id + "/stores" + query).then(function (result) {
      if (!result.ok) return;
      result.body.forEach(function (store) {
        store.product_ids.forEach(function (productId) {
          var option = document.createElement("option");
          option.value = store.id + "|" + productId;
          var distance = store.distance_km === null ? "" : " · " + root.getAttribute("data-nearby").replace("{distance}", store.distance_km);
          option.textContent = store.name + distance;
          select.appendChild(option);
        });
      });
    });
    card.querySelector(".enter").addEventListener("click", function () {
      var parts = select.value.split("|");
      call("POST", "/consumer/lottery/sessions/" + session.id + "/entries", { store_id: parts[0], product_id: parts[1] }).then(
        function (result) {
          if (result.ok) {
            status.textContent = root.getAttribute("data-entered").replace("{entry}", result.body.entry_id.slice(-8));
            status.className = "h5-status ok";
            loadEntries();
            showReceipt(result.body.entry_id);
          } else {
            status.textContent = explain(result);
            status.className = "h5-status error";
          }
        }
      );
    });
    root.appendChild(card);
  }

  function start() {
    if (!token) {
      document.getElementById("need-sign-in").hidden = false;
      return;
    }
    call("GET", "/consumer/lottery/sessions").then(function (result) {
      if (result.status === 401) {
        document.getElementById("need-sign-in").hidden = false;
        return;
      }
      if (!result.ok) return;
      result.body
        .filter(function (s) { return s.status === "committed"; })
        .forEach(renderSession);
    });
    loadEntries();
  }

  if (navigator.geolocation) {
    navigator.geolocation.getCurrentPosition(
      function (position) { here = position.coords; start(); },
      function () { start(); },
      { timeout: 3000, maximumAge: 600000 }
    );
  } else {
    start();
  }
})();

// Sales H5: the member's orders (/h5/{tenant}/orders: pay, pickup QR) and the clerk's pickup page
// (/h5/{tenant}/partner/pickup). Plain JS; tokens from localStorage as on the other H5 pages.
(function () {
  "use strict";

  function call(token, method, path, body) {
    return fetch("/api/v1" + path, {
      method: method,
      headers: { authorization: "Bearer " + token, "content-type": "application/json", accept: "application/json" },
      body: body ? JSON.stringify(body) : undefined,
    }).then(
      function (r) { return r.json().then(function (data) { return { ok: r.ok, status: r.status, body: data }; }); },
      function () { return { ok: false, status: 0, body: { detail: "network" } }; }
    );
  }

  var orders = document.getElementById("orders");
  if (orders) {
    var tenant = orders.getAttribute("data-tenant");
    var token = window.localStorage.getItem("zt_consumer_token:" + tenant);
    if (!token) { document.getElementById("need-sign-in").hidden = false; return; }
    call(token, "GET", "/consumer/sales/orders").then(function (result) {
      if (!result.ok) { document.getElementById("need-sign-in").hidden = false; return; }
      if (!result.body.items.length) { orders.textContent = orders.getAttribute("data-empty"); return; }
      result.body.items.forEach(function (o) {
        var card = document.createElement("article");
        card.className = "h5-card";
        var title = document.createElement("h2");
        title.textContent = o.order_no + " · " + (o.amount_fen / 100).toFixed(2) + " " + o.currency;
        var state = document.createElement("p");
        state.className = "muted";
        state.textContent = o.state;
        card.appendChild(title);
        card.appendChild(state);
        var button = document.createElement("button");
        button.className = "primary wide";
        if (o.state === "pending_payment") {
          button.textContent = orders.getAttribute("data-pay");
          button.onclick = function () {
            call(token, "POST", "/consumer/sales/orders/" + o.id + "/payments").then(function (r) {
              if (r.ok) window.location.href = r.body.pay_url; else state.textContent = r.body.detail;
            });
          };
          card.appendChild(button);
        } else if (o.state === "ready_for_pickup") {
          button.textContent = orders.getAttribute("data-show-code");
          var qr = document.createElement("div");
          button.onclick = function () {
            call(token, "GET", "/consumer/sales/orders/" + o.id + "/pickup-code").then(function (r) {
              if (!r.ok) { state.textContent = r.body.detail; return; }
              qr.innerHTML = r.body.qr_svg;  // an SVG the platform drew (segno), no user text inside
              var hint = document.createElement("p");
              hint.className = "muted small";
              hint.textContent = orders.getAttribute("data-code-hint");
              var text = document.createElement("p");
              text.className = "mono small";
              text.textContent = r.body.token;
              qr.appendChild(hint);
              qr.appendChild(text);
            });
          };
          card.appendChild(button);
          card.appendChild(qr);
        }
        orders.appendChild(card);
      });
    });
  }

  var pickup = document.getElementById("pickup");
  if (pickup) {
    var clerkToken = window.localStorage.getItem("zt_partner_token:" + pickup.getAttribute("data-tenant"));
    var orderLine = document.getElementById("pickup-order");
    var status = document.getElementById("pickup-status");
    var tokenInput = document.getElementById("pickup-token");
    document.getElementById("pickup-check").onclick = function () {
      call(clerkToken, "POST", "/partner/sales/pickup/check", { token: tokenInput.value.trim() }).then(function (r) {
        orderLine.textContent = r.ok ? r.body.order_no + " · " + r.body.product_name + " × " + r.body.quantity : r.body.detail;
      });
    };
    document.getElementById("pickup-hand-over").onclick = function () {
      var items = document.getElementById("pickup-items").value.split(/\s+/).filter(Boolean);
      call(clerkToken, "POST", "/partner/sales/pickup", { token: tokenInput.value.trim(), item_codes: items }).then(function (r) {
        status.textContent = r.ok ? pickup.getAttribute("data-done") : r.body.detail;
      });
    };
  }
})();

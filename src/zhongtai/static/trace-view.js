/*
 * The consumer page's trace section (h5/_trace.html): fetches the code's trace data, lists the steps
 * and checks each step's inclusion proof against the brand's signed checkpoint with trace-verify.js.
 * Each step gets data-state="verified" | "pending" | "failed" and a mark; a step declared in error gets
 * the class "declared-in-error" and a line with the reason, the declaration time and the corrective events.
 */
(function () {
  "use strict";

  function text(tag, className, value) {
    const node = document.createElement(tag);
    if (className) node.className = className;
    node.textContent = value;
    return node;
  }

  function place(where) {
    return where.read_point_name || where.read_point || where.biz_location || "";
  }

  async function verifyStep(step, data, key) {
    if (step.pending || !step.proof || !data.log) return "pending";
    const proof = Object.assign({}, step.proof, { checkpoint: data.log.checkpoint });
    const verdict = await ztVerifyEvent(step.hash_id, proof, key);
    return verdict.ok ? "verified" : "failed";
  }

  async function render(section) {
    const labels = section.dataset;
    const list = section.querySelector('[data-part="steps"]');
    let data;
    try {
      const response = await fetch(section.dataset.url, { headers: { accept: "application/json" } });
      if (!response.ok) throw new Error(String(response.status));
      data = await response.json();
    } catch (error) {
      list.replaceChildren(text("li", "muted", labels.error));
      return;
    }
    const product = section.querySelector('[data-part="product"]');
    product.textContent = data.product.name + (data.lot ? " · " + data.lot.number : "");
    if (data.steps.length === 0) {
      list.replaceChildren(text("li", "muted", labels.empty));
      return;
    }
    let key = null;
    if (data.log) {
      try {
        key = (await (await fetch(data.log.public_key_url)).json()).current.verifier_key;
      } catch (error) {
        key = null;
      }
    }
    const items = data.steps.map((step) => {
      const item = document.createElement("li");
      item.className = "trace-step";
      item.dataset.state = "checking";
      item.append(
        text("span", "trace-time", step.time.slice(0, 16).replace("T", " ")),
        text("strong", "trace-what", step.what.label),
        text("span", "trace-where", place(step.where)),
        text("span", "trace-mark", "…"),
      );
      const declared = step.error_declaration;
      if (declared) {
        item.classList.add("declared-in-error");
        const note = text("span", "trace-declared", labels.declared + " · " + declared.label);
        note.append(text("span", "trace-declared-time", " · " + declared.declared_at.slice(0, 16).replace("T", " ")));
        if (declared.corrective_event_ids.length) {
          note.append(text("span", "trace-corrected", " · " + labels.corrected + " " + declared.corrective_event_ids.join(", ")));
        }
        item.append(note);
      }
      return item;
    });
    list.replaceChildren(...items);
    await Promise.all(
      data.steps.map(async (step, i) => {
        const state = key ? await verifyStep(step, data, key) : step.pending ? "pending" : "failed";
        items[i].dataset.state = state;
        const mark = items[i].querySelector(".trace-mark");
        mark.textContent = state === "verified" ? "✓" : state === "pending" ? "…" : "✗";
        mark.title = state === "verified" ? labels.verified : state === "pending" ? labels.pending : labels.failed;
      }),
    );
  }

  for (const section of document.querySelectorAll("section.trace[data-url]")) render(section);
})();

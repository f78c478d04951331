// The phone page uses the consent API as the logged-in user (session + CSRF).
(function () {
  "use strict";
  const list = document.getElementById("requests");
  const empty = document.getElementById("empty");
  const errorEl = document.getElementById("error");
  const template = document.getElementById("request-card");

  function csrf() {
    const match = document.cookie.match(/(?:^|; )csrftoken=([^;]+)/);
    return match ? decodeURIComponent(match[1]) : "";
  }

  function render(requests) {
    empty.hidden = requests.length > 0;
    const seen = new Set();
    requests.forEach(function (request) {
      seen.add(request.auth_req_id);
      if (list.querySelector('[data-id="' + CSS.escape(request.auth_req_id) + '"]')) return;
      const card = template.content.firstElementChild.cloneNode(true);
      card.dataset.id = request.auth_req_id;
      card.querySelector(".client").textContent = request.client_name;
      card.querySelector(".binding").textContent = request.binding_message || "(no message)";
      const scopes = card.querySelector(".scopes");
      request.scopes.forEach(function (scope) {
        const item = document.createElement("li");
        item.textContent = scope.description;
        scopes.appendChild(item);
      });
      card.querySelector(".expires").textContent = "Expires " + new Date(request.expires_at).toLocaleTimeString();
      card.querySelector(".approve").addEventListener("click", function () { decide(request.auth_req_id, "approve"); });
      card.querySelector(".deny").addEventListener("click", function () { decide(request.auth_req_id, "deny"); });
      list.appendChild(card);
    });
    list.querySelectorAll("li.request").forEach(function (card) {
      if (!seen.has(card.dataset.id)) card.remove();
    });
  }

  async function refresh() {
    const response = await fetch("/o/ciba/requests/", { headers: { Accept: "application/json" } });
    if (response.ok) render(await response.json());
  }

  async function decide(id, action) {
    errorEl.hidden = true;
    const response = await fetch("/o/ciba/requests/" + encodeURIComponent(id) + "/" + action + "/", {
      method: "POST",
      headers: { "X-CSRFToken": csrf(), Accept: "application/json" },
    });
    if (!response.ok) {
      const body = await response.json().catch(function () { return {}; });
      errorEl.textContent = body.error_description || body.detail || "Could not " + action + ".";
      errorEl.hidden = false;
    }
    refresh();
  }

  refresh();
  setInterval(refresh, 1500);
})();

// The kiosk page talks only to the kiosk's own backend, which is a CIBA client of the server.
(function () {
  "use strict";
  const form = document.getElementById("purchase");
  const progress = document.getElementById("progress");
  const statusEl = document.getElementById("status");
  const errorEl = document.getElementById("error");
  const claimsEl = document.getElementById("claims");
  const again = document.getElementById("again");
  let timer = null;

  function csrf() {
    const match = document.cookie.match(/(?:^|; )csrftoken=([^;]+)/);
    return match ? decodeURIComponent(match[1]) : "";
  }

  function show(purchase) {
    statusEl.className = "status " + purchase.status;
    statusEl.textContent = purchase.status === "pending" ? "Waiting for approval on the phone…" : purchase.detail;
    if (purchase.claims) {
      claimsEl.hidden = false;
      claimsEl.textContent = "ID token claims (verified):\n" + JSON.stringify(purchase.claims, null, 2);
    }
    if (purchase.status !== "pending") {
      clearInterval(timer);
      again.hidden = false;
    }
  }

  async function poll(id) {
    const response = await fetch("/demo/kiosk/purchases/" + encodeURIComponent(id) + "/");
    if (response.ok) show(await response.json());
  }

  form.addEventListener("submit", async function (event) {
    event.preventDefault();
    errorEl.hidden = true;
    const data = {
      login_hint: form.login_hint.value,
      amount: form.amount.value,
      mode: form.querySelector("input[name=mode]:checked").value,
    };
    const response = await fetch("/demo/kiosk/purchases/", {
      method: "POST",
      headers: { "Content-Type": "application/json", "X-CSRFToken": csrf() },
      body: JSON.stringify(data),
    });
    const body = await response.json();
    if (!response.ok) {
      errorEl.textContent = body.error;
      errorEl.hidden = false;
      return;
    }
    form.hidden = true;
    progress.hidden = false;
    document.getElementById("binding").textContent = body.binding_message;
    show(body);
    timer = setInterval(function () { poll(body.id); }, 1000);
  });

  again.addEventListener("click", function () {
    progress.hidden = true;
    again.hidden = true;
    claimsEl.hidden = true;
    form.hidden = false;
  });
})();

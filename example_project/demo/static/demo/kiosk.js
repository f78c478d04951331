// The kiosk page talks only to the kiosk's own backend, which is a CIBA client of the server.
// The customer is named by their username or e-mail address, typed, or by the code their phone
// shows, scanned with the camera (scan.js): that code is a login_hint_token the bank issued,
// which the kiosk sends on as it is and never displays.
(function () {
  "use strict";
  const form = document.getElementById("purchase");
  const progress = document.getElementById("progress");
  const statusEl = document.getElementById("status");
  const errorEl = document.getElementById("error");
  const claimsEl = document.getElementById("claims");
  const approvedEl = document.getElementById("approved-details");
  const paymentEl = document.getElementById("payment");
  const authenticationEl = document.getElementById("authentication");
  const again = document.getElementById("again");
  const cancel = document.getElementById("cancel");
  const TIME_CLAIMS = /^(\s*"(?:iat|exp|auth_time|nbf)": )(\d+)(,?)$/;
  let following = null; // the purchase whose status is being long-polled
  let waiting = null; // aborts the long-poll request under way
  let scannedToken = ""; // the customer's scanned code, until a purchase uses it

  // --- the customer's code ---

  const scan = document.getElementById("scan");
  const scanStart = document.getElementById("scan-start");
  const scanStop = document.getElementById("scan-stop");
  const scanClear = document.getElementById("scan-clear");
  const scanner = document.getElementById("scanner");
  const scanStatus = document.getElementById("scan-status");
  const video = document.getElementById("scan-video");
  // What a code from the device page looks like: a compact JWS. Anything else (a URL on a
  // poster, a loyalty card) is not sent to the bank as a login_hint_token.
  const TOKEN = /^[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+$/;

  function scanSay(text, kind) {
    scanStatus.textContent = text;
    scanStatus.className = "scan-status" + (kind ? " " + kind : "");
  }

  // A scanned code replaces the typed customer until it is used or cleared.
  function showScanned(token) {
    scannedToken = token;
    form.login_hint.disabled = Boolean(token);
    document.getElementById("typed").hidden = Boolean(token);
    document.getElementById("scan-or").hidden = Boolean(token);
    scanClear.hidden = !token;
    scanStart.textContent = token ? "Scan again" : "Scan the customer's code";
  }

  function stopScanning() {
    window.DemoScanner.stop();
    video.srcObject = null;
    scanner.hidden = true;
    scanStart.hidden = false;
  }

  async function startScanning() {
    errorEl.hidden = true;
    showScanned("");
    scanner.hidden = false;
    scanStart.hidden = true;
    scanSay("Hold the customer's code in front of the camera…");
    try {
      const token = await window.DemoScanner.start(video, {
        decoderUrl: scan.dataset.decoderUrl,
        accept: function (text) { return TOKEN.test(text) && text.length <= 4096; },
        onRefused: function () { scanSay("That is not a customer's code. Ask them to tap Show my code.", "problem"); },
      });
      stopScanning();
      showScanned(token);
      scanSay("Code scanned", "scanned");
      document.getElementById("pay").focus();
    } catch (error) {
      stopScanning();
      scanSay(error.message, "problem");
    }
  }

  scanStart.addEventListener("click", startScanning);
  scanStop.addEventListener("click", function () {
    stopScanning();
    scanSay("");
  });
  scanClear.addEventListener("click", function () {
    showScanned("");
    scanSay("");
    form.login_hint.focus();
  });

  function csrf() {
    const match = document.cookie.match(/(?:^|; )csrftoken=([^;]+)/);
    return match ? decodeURIComponent(match[1]) : "";
  }

  function show(purchase) {
    statusEl.className = "status " + purchase.status + (purchase.withdrawn ? " withdrawn" : "");
    statusEl.textContent = purchase.status === "pending" ? "Waiting for approval on the phone…" : purchase.detail;
    if (purchase.paid) {
      document.getElementById("paid").hidden = false;
      document.getElementById("paid-payment").textContent = purchase.paid;
    }
    if (purchase.approved_details) {
      approvedEl.hidden = false;
      approvedEl.textContent = "Approved authorization_details:\n" + JSON.stringify(purchase.approved_details, null, 2);
    }
    if (purchase.authentication) showAuthentication(purchase.authentication);
    if (purchase.claims) {
      claimsEl.hidden = false;
      claimsEl.textContent = "ID token claims (verified):\n" + readableTimes(JSON.stringify(purchase.claims, null, 2));
    }
    if (purchase.status !== "pending") {
      stopFollowing();
      cancel.hidden = true;
      again.hidden = false;
    }
  }

  // acr, amr and auth_time of the verified ID token, each with what it means.
  function showAuthentication(auth) {
    authenticationEl.hidden = false;
    const acr = document.getElementById("acr");
    acr.textContent = "";
    if (auth.acr) {
      const code = document.createElement("code");
      code.textContent = auth.acr;
      acr.append(code, auth.acr_meaning ? " " + auth.acr_meaning : "");
    } else {
      acr.textContent = auth.acr_meaning || "none claimed";
    }
    const amr = document.getElementById("amr");
    amr.replaceChildren();
    auth.amr.forEach(function (value, index) {
      const item = document.createElement("li");
      const code = document.createElement("code");
      code.textContent = value;
      const meaning = auth.amr_meanings[index];
      item.append(code, meaning ? ": " + meaning : "");
      amr.append(item);
    });
    if (!auth.amr.length) {
      const item = document.createElement("li");
      item.textContent = "none claimed";
      amr.append(item);
    }
    const authTime = document.getElementById("auth-time");
    authTime.textContent = auth.auth_time === null ? "not given" :
      new Date(auth.auth_time * 1000).toLocaleString() + " (" + auth.auth_time + ")";
  }

  // Which client, delivery mode and client authentication this purchase uses.
  function how(purchase) {
    document.getElementById("how-hint").textContent = purchase.hint === "code"
      ? "their scanned code (login_hint_token)" : "typed (login_hint)";
    document.getElementById("how-client").textContent = purchase.client_id;
    document.getElementById("how-mode").textContent = purchase.mode;
    document.getElementById("how-delivery").textContent = purchase.delivery ? "(" + purchase.delivery + ")" : "";
    document.getElementById("how-auth").textContent = purchase.token_endpoint_auth_method;
    document.getElementById("how-acr").textContent = purchase.acr_values
      ? "acr_values=" + purchase.acr_values + " (a passkey)" : "no acr_values (whatever the bank requires)";
  }

  function stopFollowing() {
    following = null;
    if (waiting) waiting.abort();
    waiting = null;
  }

  // Epoch seconds (iat, exp, auth_time) get the local time beside them, as a comment.
  function readableTimes(json) {
    return json.split("\n").map(function (line) {
      const match = line.match(TIME_CLAIMS);
      if (!match) return line;
      return line + "  // " + new Date(Number(match[2]) * 1000).toLocaleString();
    }).join("\n");
  }

  function sleep(ms) {
    return new Promise(function (resolve) { setTimeout(resolve, ms); });
  }

  // Long-poll: the server answers as soon as the purchase is decided, or after 20 s.
  async function follow(id) {
    following = id;
    const url = "/demo/kiosk/purchases/" + encodeURIComponent(id) + "/?wait=20";
    while (following === id) {
      try {
        waiting = new AbortController();
        const response = await fetch(url, { signal: waiting.signal });
        if (following !== id) return;
        if (response.ok) {
          show(await response.json());
          continue;
        }
      } catch (error) {
        if (following !== id) return; // cancelled
        // The server is restarting or unreachable: try again shortly.
      }
      await sleep(3000);
    }
  }

  form.addEventListener("submit", async function (event) {
    event.preventDefault();
    errorEl.hidden = true;
    stopScanning();
    const data = {
      amount: form.amount.value,
      mode: form.querySelector("input[name=mode]:checked").value,
      require_passkey: form.require_passkey.checked,
    };
    // One hint: the scanned code, else what was typed.
    if (scannedToken) data.login_hint_token = scannedToken;
    else data.login_hint = form.login_hint.value;
    const response = await fetch("/demo/kiosk/purchases/", {
      method: "POST",
      headers: { "Content-Type": "application/json", "X-CSRFToken": csrf() },
      body: JSON.stringify(data),
    });
    const body = await response.json();
    if (data.login_hint_token) {
      // A code works once, whatever the answer: the next purchase needs a fresh scan.
      showScanned("");
      scanSay(response.ok ? "" : "Scan the customer's code again.", response.ok ? "" : "problem");
    }
    if (!response.ok) {
      errorEl.textContent = body.error;
      errorEl.hidden = false;
      return;
    }
    form.hidden = true;
    progress.hidden = false;
    document.getElementById("binding").textContent = body.binding_message;
    // The payment the bank is asked to show (RFC 9396 authorization_details), when it was sent.
    const payment = (body.authorization_details || [])[0];
    paymentEl.hidden = !payment;
    if (payment) {
      document.getElementById("payment-amount").textContent =
        payment.instructedAmount.currency + " " + payment.instructedAmount.amount;
      document.getElementById("payment-payee").textContent = payment.creditorName;
    }
    how(body);
    cancel.hidden = false;
    cancel.disabled = false;
    show(body);
    follow(body.id);
  });

  // Cancel: the kiosk's backend withdraws the request at the bank (django-ciba's cancel
  // endpoint, an extension of CIBA), so the customer's phone drops the prompt, and stops
  // waiting in any case. The outcome says whether the bank withdrew it.
  cancel.addEventListener("click", async function () {
    const id = following;
    if (!id) return;
    cancel.disabled = true;
    stopFollowing();
    try {
      const response = await fetch("/demo/kiosk/purchases/" + encodeURIComponent(id) + "/cancel/", {
        method: "POST",
        headers: { "X-CSRFToken": csrf() },
      });
      if (!response.ok) throw new Error((await response.json()).error || response.statusText);
      show(await response.json());
    } catch (error) {
      show({ status: "cancelled", detail: "Stopped waiting here; the kiosk could not record it: " + error.message });
    }
  });

  again.addEventListener("click", function () {
    stopFollowing();
    progress.hidden = true;
    again.hidden = true;
    claimsEl.hidden = true;
    authenticationEl.hidden = true;
    approvedEl.hidden = true;
    paymentEl.hidden = true;
    document.getElementById("paid").hidden = true;
    showScanned("");
    scanSay("");
    form.hidden = false;
  });
})();

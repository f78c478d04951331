// Reading a QR code with the camera, for the kiosk page (window.DemoScanner).
//
// The camera comes from getUserMedia, which browsers offer only in a secure context (https, or
// http on localhost and 127.0.0.1), as they do passkeys. Each frame is decoded by the browser's
// own BarcodeDetector when it has one that reads QR codes (Chrome on Android, macOS, ChromeOS),
// else by jsQR 1.4.0, vendored under demo/vendor/jsqr/ and loaded only then. Nothing that was
// read is logged: the kiosk reads login_hint_tokens, which are credentials for a minute or two.
(function () {
  "use strict";

  const FRAME_MS = 120; // one decode attempt per this many milliseconds
  const MAX_WIDTH = 640; // frames are scaled down to this before jsQR looks at them

  let stream = null;
  let timer = null;
  let running = 0; // bumped by every start and stop, so a stopped loop never resumes

  function failure(error) {
    const name = error && error.name;
    if (name === "NotAllowedError" || name === "SecurityError") {
      return "The camera was not allowed. Allow it in the browser's site settings, or type the customer instead.";
    }
    if (name === "NotFoundError" || name === "OverconstrainedError") {
      return "No camera was found. Type the customer instead.";
    }
    if (name === "NotReadableError") return "The camera is in use by another program.";
    return "The camera could not be started" + (error && error.message ? ": " + error.message : ".");
  }

  function loadScript(url) {
    return new Promise(function (resolve, reject) {
      const script = document.createElement("script");
      script.src = url;
      script.onload = resolve;
      script.onerror = function () { reject(new Error("The QR decoder could not be loaded.")); };
      document.head.appendChild(script);
    });
  }

  // A function frame -> Promise<string[]>: the texts of the QR codes in the video's frame.
  async function decoder(video, fallbackUrl) {
    if ("BarcodeDetector" in window) {
      try {
        const formats = await window.BarcodeDetector.getSupportedFormats();
        if (formats.indexOf("qr_code") !== -1) {
          const detector = new window.BarcodeDetector({ formats: ["qr_code"] });
          return async function () {
            const codes = await detector.detect(video);
            return codes.map(function (code) { return code.rawValue; });
          };
        }
      } catch (error) {
        // A detector that cannot say what it reads: use jsQR.
      }
    }
    if (!window.jsQR) await loadScript(fallbackUrl);
    const canvas = document.createElement("canvas");
    const context = canvas.getContext("2d", { willReadFrequently: true });
    return async function () {
      const width = video.videoWidth;
      const height = video.videoHeight;
      if (!width || !height) return [];
      const scale = Math.min(1, MAX_WIDTH / width);
      canvas.width = Math.round(width * scale);
      canvas.height = Math.round(height * scale);
      context.drawImage(video, 0, 0, canvas.width, canvas.height);
      const frame = context.getImageData(0, 0, canvas.width, canvas.height);
      // Codes shown by the device page are dark on light: no need to try the inverse.
      const found = window.jsQR(frame.data, frame.width, frame.height, { inversionAttempts: "dontInvert" });
      return found && found.data ? [found.data] : [];
    };
  }

  function stop() {
    running++;
    clearTimeout(timer);
    timer = null;
    if (stream) stream.getTracks().forEach(function (track) { track.stop(); });
    stream = null;
  }

  // Start the camera into ``video`` and resolve with the first text ``accept`` takes; texts it
  // refuses go to ``onRefused`` (once each) and scanning goes on. Rejects with a sentence for
  // the cashier. ``stop()`` ends it (the promise then never settles).
  async function start(video, options) {
    stop();
    const run = running;
    if (!navigator.mediaDevices || !navigator.mediaDevices.getUserMedia) {
      throw new Error(
        "This page cannot use the camera here: browsers allow it only on https or on localhost. Type the customer instead."
      );
    }
    let media;
    try {
      media = await navigator.mediaDevices.getUserMedia({
        video: { facingMode: { ideal: "environment" }, width: { ideal: 1280 }, height: { ideal: 720 } },
        audio: false,
      });
    } catch (error) {
      throw new Error(failure(error));
    }
    if (run !== running) {
      media.getTracks().forEach(function (track) { track.stop(); });
      return new Promise(function () {});
    }
    stream = media;
    video.srcObject = media;
    await video.play().catch(function () {});
    const read = await decoder(video, options.decoderUrl);
    const refused = new Set();
    return new Promise(function (resolve) {
      async function look() {
        if (run !== running) return;
        let texts = [];
        try {
          texts = await read();
        } catch (error) {
          texts = []; // a frame that could not be read (the camera still warming up)
        }
        if (run !== running) return;
        const good = texts.find(function (text) { return options.accept(text); });
        if (good !== undefined) {
          stop();
          video.srcObject = null;
          resolve(good);
          return;
        }
        texts.forEach(function (text) {
          if (refused.has(text)) return;
          refused.add(text);
          if (options.onRefused) options.onRefused();
        });
        timer = setTimeout(look, FRAME_MS);
      }
      look();
    });
  }

  window.DemoScanner = { start: start, stop: stop };
})();

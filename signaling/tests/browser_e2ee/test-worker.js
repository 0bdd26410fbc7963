// The product's E2EE worker as the test runs it: e2ee-worker.js unchanged, plus two test-only
// additions that stay out of the product file.
// - Anything that escapes the worker (an uncaught exception, an unhandled rejection, a
//   Content-Security-Policy violation) is posted to the page as {type: "uncaught"}, so the test
//   can assert there was none.
// - A decrypt transform created with the option `tamper: true` gets frames through
//   `tamperStage` before the product code sees them: replays, flipped bytes and malformed
//   headers, as a hostile bridge could send.
// - {type: "flood", count} runs `flood`: frames with fresh random KIDs, answered with
//   {type: "flood", stats, ms}.
"use strict";

self.addEventListener("error", (e) => self.postMessage({ type: "uncaught", reason: String(e.message) }));
self.addEventListener("unhandledrejection", (e) =>
  self.postMessage({ type: "uncaught", reason: `unhandled rejection: ${e.reason}` }),
);

self.addEventListener("securitypolicyviolation", (e) =>
  self.postMessage({ type: "uncaught", reason: `CSP violation: ${e.violatedDirective} ${e.blockedURI}` }),
);

importScripts("/e2ee-worker.js");

// Every 4th frame passes untouched (so it authenticates and the replay window has something to
// catch); the others are, in turn, a replay of the last untouched frame, the frame with one
// ciphertext byte flipped, and a malformed frame (truncations and impossible headers).
function tamperStage() {
  let index = 0;
  let lastAuthentic = null;
  const malformed = [
    (d) => d.slice(0, 0), // empty
    (d) => d.slice(0, Math.max(0, d.length - 17)), // tag cut off, and then some
    (d) => d.slice(0, Math.min(d.length, 12)), // clear prefix and a header at most
    (d) => Uint8Array.of(...d.slice(0, 10), 0xff, 0x01), // KID and CTR of 8 bytes each, 1 there
    (d) => Uint8Array.of(...d.slice(0, 10), 0x88, 0x05, 0x01), // non-minimal KID and CTR
  ];
  return new TransformStream({
    transform(frame, controller) {
      const data = new Uint8Array(frame.data);
      const turn = index % 4;
      const variant = Math.floor(index / 4);
      index += 1;
      if (turn === 0) {
        lastAuthentic = data.slice();
      } else if (turn === 1 && lastAuthentic) {
        frame.data = lastAuthentic.slice().buffer;
      } else if (turn === 2 && data.length > 0) {
        const flipped = data.slice();
        flipped[Math.floor(flipped.length / 2) + (variant % 7)] ^= 0x40;
        frame.data = flipped.buffer;
      } else {
        frame.data = malformed[variant % malformed.length](data).buffer;
      }
      controller.enqueue(frame);
    },
  });
}

// `count` frames, each with a fresh random KID, through a decrypt transform fed from here (a
// ReadableStream of frame-shaped objects instead of RTCRtpScriptTransform's): the worker's
// derivation budget must cap how many of those KIDs get keys derived.
async function flood(count) {
  const S = self.SFrame;
  const frames = [];
  for (let i = 0; i < count; i += 1) {
    const kid = BigInt("0x" + S.toHex(crypto.getRandomValues(new Uint8Array(8))));
    const data = S.concat(S.encodeHeader(kid, 0n), crypto.getRandomValues(new Uint8Array(40)));
    frames.push({ data: data.buffer, getMetadata: () => ({ rtpTimestamp: i }) });
  }
  const readable = new ReadableStream({
    start(controller) {
      frames.forEach((f) => controller.enqueue(f));
      controller.close();
    },
  });
  let forwarded = 0;
  const writable = new WritableStream({
    write() {
      forwarded += 1;
    },
  });
  const started = performance.now();
  const options = { role: "decrypt", kind: "audio", id: `flood-${count}` };
  const run = self.E2EEWorker.attach({ options }, readable, writable);
  await run.done;
  self.postMessage({ type: "flood", stats: run.stats(), forwarded, ms: performance.now() - started });
}

const productOnMessage = self.onmessage;
self.onmessage = (event) => {
  if (event.data && event.data.type === "flood") flood(event.data.count);
  else productOnMessage(event);
};

self.onrtctransform = (event) => {
  const transformer = event.transformer;
  if (transformer.options && transformer.options.tamper) {
    self.E2EEWorker.attach(transformer, transformer.readable.pipeThrough(tamperStage()));
  } else {
    self.E2EEWorker.attach(transformer);
  }
};

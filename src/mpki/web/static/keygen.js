// The "New key" page: make an ECDSA P-256 key with WebCrypto, build a PKCS#10 CSR for it here (a small DER
// encoder below), send only the CSR, and offer the private key (PKCS#8 PEM) and the certificate as downloads.
// The private key never leaves this page.
"use strict";

(() => {
  const form = document.getElementById("keygen-form");
  if (!form) return;
  const statusEl = document.getElementById("keygen-status");
  const detailEl = document.getElementById("keygen-detail");
  const keyLink = document.getElementById("key-download");
  const certLink = document.getElementById("cert-download");
  const requestLink = document.getElementById("request-link");
  const warning = document.getElementById("key-warning");
  const button = document.getElementById("keygen-button");

  // ----- DER, just what a CSR needs -------------------------------------------------------------

  function concat(parts) {
    const size = parts.reduce((sum, part) => sum + part.length, 0);
    const out = new Uint8Array(size);
    let at = 0;
    for (const part of parts) {
      out.set(part, at);
      at += part.length;
    }
    return out;
  }

  function derLength(n) {
    if (n < 0x80) return Uint8Array.of(n);
    const bytes = [];
    for (let rest = n; rest > 0; rest = Math.floor(rest / 256)) bytes.unshift(rest % 256);
    return Uint8Array.of(0x80 | bytes.length, ...bytes);
  }

  function tlv(tag, content) {
    return concat([Uint8Array.of(tag), derLength(content.length), content]);
  }

  const sequence = (...parts) => tlv(0x30, concat(parts));
  const set = (...parts) => tlv(0x31, concat(parts));
  const utf8String = (text) => tlv(0x0c, new TextEncoder().encode(text));
  const bitString = (bytes) => tlv(0x03, concat([Uint8Array.of(0x00), bytes])); // no unused bits

  // A non-negative INTEGER from big-endian bytes: minimal, with a leading 0x00 when the top bit is set.
  function unsignedInteger(bytes) {
    let start = 0;
    while (start < bytes.length - 1 && bytes[start] === 0) start += 1;
    const body = bytes.slice(start);
    return tlv(0x02, body[0] & 0x80 ? concat([Uint8Array.of(0x00), body]) : body);
  }

  const OID_COMMON_NAME = Uint8Array.of(0x06, 0x03, 0x55, 0x04, 0x03); // 2.5.4.3
  const OID_ECDSA_WITH_SHA256 = Uint8Array.of(0x06, 0x08, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x04, 0x03, 0x02); // 1.2.840.10045.4.3.2

  // Name ::= SEQUENCE OF RelativeDistinguishedName; one RDN holding CN=<cn> as a UTF8String.
  const subjectName = (cn) => sequence(set(sequence(OID_COMMON_NAME, utf8String(cn))));

  // WebCrypto signs ECDSA as raw r || s (IEEE P1363); X.509 wants Ecdsa-Sig-Value ::= SEQUENCE { r, s }.
  function ecdsaSigValue(raw) {
    const half = raw.length / 2;
    return sequence(unsignedInteger(raw.slice(0, half)), unsignedInteger(raw.slice(half)));
  }

  function toPem(label, der) {
    let binary = "";
    for (const byte of der) binary += String.fromCharCode(byte);
    const lines = btoa(binary).match(/.{1,64}/g) || [];
    return `-----BEGIN ${label}-----\n${lines.join("\n")}\n-----END ${label}-----\n`;
  }

  // ----- key and CSR ----------------------------------------------------------------------------

  async function makeKeyAndCsr(cn) {
    const subtle = window.crypto.subtle;
    const keys = await subtle.generateKey({ name: "ECDSA", namedCurve: "P-256" }, true, ["sign", "verify"]);
    const spki = new Uint8Array(await subtle.exportKey("spki", keys.publicKey));
    const version = unsignedInteger(Uint8Array.of(0));
    const noAttributes = Uint8Array.of(0xa0, 0x00); // attributes [0] IMPLICIT SET OF Attribute, empty
    const info = sequence(version, subjectName(cn), spki, noAttributes);
    const raw = new Uint8Array(await subtle.sign({ name: "ECDSA", hash: "SHA-256" }, keys.privateKey, info));
    const csr = sequence(info, sequence(OID_ECDSA_WITH_SHA256), bitString(ecdsaSigValue(raw)));
    const pkcs8 = new Uint8Array(await subtle.exportKey("pkcs8", keys.privateKey));
    return { csr: toPem("CERTIFICATE REQUEST", csr), key: toPem("PRIVATE KEY", pkcs8) };
  }

  // ----- the page -------------------------------------------------------------------------------

  function show(status, detail) {
    statusEl.textContent = status;
    statusEl.className = `status status-${status.split(":")[0].replace(/[^a-z]/g, "")}`;
    detailEl.textContent = detail || "";
    detailEl.hidden = !detail;
  }

  function offer(link, text) {
    if (link.href.startsWith("blob:")) URL.revokeObjectURL(link.href);
    link.href = URL.createObjectURL(new Blob([text], { type: "application/x-pem-file" }));
    link.hidden = false;
  }

  function reset() {
    for (const link of [certLink, requestLink]) link.hidden = true;
  }

  async function readAnswer(response) {
    const type = response.headers.get("content-type") || "";
    if (type.startsWith("application/json")) return response.json();
    return { status: "refused", reason: `the server answered HTTP ${response.status}; reload the page and try again` };
  }

  if (!(window.isSecureContext && window.crypto && window.crypto.subtle)) {
    show("unavailable", "This browser cannot make keys on this page: it needs a secure (https) connection.");
    button.disabled = true;
    return;
  }

  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const cnInput = form.querySelector("#cn");
    const cn = cnInput.value.trim();
    if (cn.length < 1 || cn.length > 64) {
      show("refused", "Enter your name: 1 to 64 characters.");
      cnInput.focus();
      return;
    }
    const organisation = form.querySelector("#organisation");
    const token = form.querySelector('input[name="csrf_token"]').value;
    button.disabled = true;
    reset();
    try {
      show("generating", "Making your key and request…");
      const made = await makeKeyAndCsr(cn);
      offer(keyLink, made.key);
      warning.hidden = false;
      show("sending", "Sending the request (the key stays here)…");
      const body = { csr: made.csr };
      if (organisation) body.organisation = organisation.value;
      const response = await fetch(form.action, {
        method: "POST",
        credentials: "same-origin",
        headers: { "Content-Type": "application/json", Accept: "application/json", "X-CSRF-Token": token },
        body: JSON.stringify(body),
      });
      const answer = await readAnswer(response);
      if (answer.request_url) {
        requestLink.href = answer.request_url;
        requestLink.hidden = false;
      }
      if (answer.status === "issued" && answer.certificate) {
        offer(certLink, answer.certificate);
        show("issued", `Certificate ${answer.serial} is issued. Download it and your private key.`);
      } else if (answer.status === "pending") {
        show(`pending: ${answer.reason || "held for review"}`,
          "Your request is held for review. Keep the private key: open the request later to download the certificate.");
      } else {
        show(`${answer.status === "refused" ? "refused" : "rejected"}: ${answer.reason || "no reason given"}`, "");
      }
    } catch (error) {
      show("error", `Something went wrong: ${error && error.message ? error.message : error}`);
    } finally {
      button.disabled = false;
    }
  });
})();

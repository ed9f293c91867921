// How every page talks to the API, and the sign-in that needs once the service has API keys.
// The key lives in this tab's sessionStorage and goes out as the Authorization header, never as a
// cookie: a page on another site cannot make the browser send it. Loaded before app.js.
"use strict";

const QTQAuth = (() => {
  const STORAGE_KEY = "qtq-api-key";

  function storedKey() {
    return sessionStorage.getItem(STORAGE_KEY);
  }

  function describeError(body, status) {
    if (body && Array.isArray(body.detail)) return body.detail.map((d) => d.msg).join("\n");
    if (body && typeof body.detail === "string") return body.detail;
    return `HTTP ${status}`;
  }

  // The one place that calls fetch: JSON in and out, with `key` as a bearer token when there is one.
  // A request that gets no answer at all (the service restarting, the network gone) answers status
  // 0 with a message, like any refusal: the pages say so and go on polling, rather than throw.
  async function request(path, options, key) {
    const headers = { "Content-Type": "application/json", ...options.headers };
    if (key) headers.Authorization = `Bearer ${key}`;
    let response;
    try {
      response = await fetch(path, { ...options, headers });
    } catch (e) {
      return { status: 0, body: { detail: `Could not reach the service: ${e.message}`, reason: e.message } };
    }
    let body = null;
    try { body = await response.json(); } catch (_) { /* not JSON */ }
    return { status: response.status, body };
  }

  // A 401 means the service has keys and this tab has none it accepts (none, or one since
  // revoked): the key is forgotten and the page asks for one instead of showing data.
  async function api(path, options = {}) {
    const key = storedKey();
    const answer = await request(path, options, key);
    if (answer.status === 401) {
      if (key) sessionStorage.removeItem(STORAGE_KEY);
      showSignIn(describeError(answer.body, answer.status), Boolean(key));
    }
    return answer;
  }

  function node(tag, properties = {}, ...children) {
    const made = Object.assign(document.createElement(tag), properties);
    made.append(...children);
    return made;
  }

  function signingIn() {
    return document.body.classList.contains("signing-in");
  }

  // The first refusal's words stay: the page's other requests fail the same way at the same time.
  function showSignIn(detail, refused) {
    if (signingIn()) return;
    const message = node("p", { id: "sign-in-message", className: refused ? "error" : "", textContent: detail });
    message.setAttribute("role", "alert");
    const input = node("input", { id: "api-key", name: "api_key", type: "password", size: 48, spellcheck: false });
    const button = node("button", { id: "sign-in-button", type: "submit", textContent: "Sign in" });
    const form = node("form", { id: "sign-in-form", className: "row" },
      node("label", { htmlFor: "api-key", textContent: "API key" }), input, button);
    form.addEventListener("submit", (event) => {
      event.preventDefault();
      signIn(input.value.trim(), message, button);
    });
    const note = "The key stays in this tab until you sign out or close it; it is never stored as a cookie.";
    const section = node("section", { id: "sign-in" }, node("h2", { textContent: "Sign in" }), message, form,
      node("p", { className: "muted", textContent: note }));
    document.querySelector("main").prepend(section);
    document.body.classList.add("signing-in"); // style.css hides the page's other sections
    document.getElementById("sign-out")?.remove();
    hideMetricsLink();
    input.focus();
  }

  // The key is tried on GET /limits (no data, just the check) before it is kept: a refused one
  // never is. Then the page loads again, every part of it with the key.
  async function signIn(key, message, button) {
    const say = (text) => { message.textContent = text; message.className = "error"; };
    if (!key) return say("Enter your API key.");
    button.disabled = true;
    try {
      const { status, body } = await request("/limits", {}, key);
      // No answer: the service is away, or the browser would not send the key (a pasted character
      // no header can carry).
      if (status === 0) return say(`Could not check the key: ${body.reason}`);
      if (status !== 200) return say(describeError(body, status));
      sessionStorage.setItem(STORAGE_KEY, key);
      window.location.reload();
    } finally {
      button.disabled = false;
    }
  }

  // With keys, /metrics is for Prometheus (an admin key or METRICS_TOKEN): a plain link cannot
  // carry the key, so it would only open a 401.
  function hideMetricsLink() {
    document.querySelector('header nav a[href="/metrics"]')?.remove();
  }

  function signOut() {
    sessionStorage.removeItem(STORAGE_KEY);
    window.location.reload();
  }

  if (storedKey()) {
    const button = node("button", { id: "sign-out", type: "button", className: "sign-out", textContent: "Sign out" });
    button.addEventListener("click", signOut);
    document.querySelector("header nav").append(button);
    hideMetricsLink();
  }

  return { api, describeError, storedKey, signingIn };
})();

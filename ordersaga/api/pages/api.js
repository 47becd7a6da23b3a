// What both pages share: the API token, and calling the API with it.
"use strict";

// The token: from the page's #token=... (a part of the URL the browser never sends to a
// server), kept for the tab's session.
const token = new URLSearchParams(location.hash.slice(1)).get("token") || sessionStorage.getItem("token");
if (token) sessionStorage.setItem("token", token);

const $ = (id) => document.getElementById(id);

// Calls the Order API; returns its answer, or null for a 503 (the saga did not answer yet).
// Any other refusal throws an Error with the API's own words: its detail and each problem.
async function api(method, path, body) {
  const response = await fetch(path, {
    method,
    headers: { "Authorization": "Bearer " + token, "Content-Type": "application/json" },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const answer = await response.json();
  if (response.status === 503) return null;
  if (!response.ok) throw new Error([answer.detail, ...(answer.problems || [])].join("; "));
  return answer;
}

// addmul explore: what every page shares. No libraries, nothing from the
// network: the pages talk only to the explorer's JSON API.
"use strict";

// Problems are shown on the page (and counted for the browser tests): an
// error in a script, a file that failed to load, a request the API refused.
const problems = [];
function problem(text) {
  problems.push(text);
  const box = document.getElementById("problems");
  if (box) {
    box.classList.add("shown");
    box.textContent = problems.join("\n");
  }
}
window.addEventListener("error", (e) => {
  if (e.target && e.target !== window && (e.target.src || e.target.href)) {
    problem("could not load " + (e.target.src || e.target.href));
  } else {
    problem("script error: " + e.message);
  }
}, true);
window.addEventListener("unhandledrejection", (e) => problem(String(e.reason && e.reason.message || e.reason)));

// The API's refusals of what the reader typed are shown where they typed it,
// not as problems: `api` throws an ApiRefusal for a 4xx.
class ApiRefusal extends Error {}

async function api(path, body) {
  const init = body === undefined ? {} : {
    method: "POST", headers: {"content-type": "application/json"}, body: JSON.stringify(body),
  };
  const response = await fetch(path, init);
  const data = await response.json().catch(() => ({error: "the explorer answered " + response.status}));
  if (response.status >= 400 && response.status < 500) throw new ApiRefusal(data.error);
  if (!response.ok) { problem(path + ": " + data.error); throw new Error(data.error); }
  return data;
}

const PAGES = [
  ["/neuron", "A neuron's sums", "ch01-simple-neural-network.html", "Chapters 1-2"],
  ["/tokens", "Tokens", "ch06-subword-tokenizers.html", "Chapters 3, 6"],
  ["/embeddings", "Embeddings", "ch05-embeddings.html", "Chapter 5"],
  ["/attention", "Attention", "ch07-self-attention.html", "Chapters 7, 12, 13"],
  ["/next", "The next token", "ch14-gpt.html", "Chapters 3, 8, 14"],
  ["/train", "Train it yourself", "ch14-gpt.html", "Chapters 2, 14"],
  ["/translate", "Translation", "ch15-transformer.html", "Chapter 15"],
];

// The header: the pages, this one marked.
function header() {
  const nav = PAGES.map(([href, name]) =>
    `<a href="${href}"${location.pathname === href ? ' class="here"' : ""}>${name}</a>`).join("");
  document.body.insertAdjacentHTML("afterbegin",
    `<header><a class="brand" href="/">addmul explore</a><nav>${nav}</nav></header>`);
  const main = document.querySelector("main");
  main.insertAdjacentHTML("afterbegin", '<div id="problems" class="problems" role="alert"></div>');
  const page = PAGES.find(([href]) => href === location.pathname);
  const chapter = document.querySelector(".chapter");
  if (page && chapter) {
    chapter.insertAdjacentHTML("beforeend",
      ` <a href="/book/${page[2]}">${page[3]} of the book</a> explain${page[3].startsWith("Chapters") ? "" : "s"} it.`);
  }
  if (problems.length) problem(problems.pop());
}

function escapeHtml(text) {
  return String(text).replace(/[&<>"]/g, (c) => ({"&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;"}[c]));
}

// A token's text made visible: spaces as ·, new lines as ↵.
function visible(text) {
  return text.replace(/ /g, "·").replace(/\n/g, "↵").replace(/\t/g, "→");
}

function fmt(x, digits = 3) {
  return Number.isFinite(x) ? x.toFixed(digits) : String(x);
}

// A colour for the i-th piece: light, distinct neighbours.
function pieceColour(i) {
  const hues = [205, 35, 120, 280, 0, 170, 60, 320];
  return `hsl(${hues[i % hues.length]} 75% ${i % 2 ? 82 : 88}%)`;
}

// A white-to-blue shade for a weight in [0, 1].
function shade(w) {
  const l = 97 - 62 * Math.max(0, Math.min(1, w));
  return `hsl(210 80% ${l}%)`;
}

// A line chart: series = [{name, colour, points: [[x, y], ...]}].
function lineChart(svg, series, {xLabel = "", yLabel = "", width = 640, height = 280} = {}) {
  const pad = {l: 48, r: 12, t: 26, b: 34};
  const all = series.flatMap((s) => s.points).filter(([, y]) => Number.isFinite(y));
  svg.setAttribute("viewBox", `0 0 ${width} ${height}`);
  svg.setAttribute("width", width);
  svg.setAttribute("height", height);
  if (!all.length) { svg.innerHTML = ""; return; }
  const xs = all.map((p) => p[0]), ys = all.map((p) => p[1]);
  const [x0, x1] = [Math.min(...xs), Math.max(...xs, Math.min(...xs) + 1)];
  const [y0, y1] = [Math.min(...ys, 0), Math.max(...ys) * 1.05 || 1];
  const X = (x) => pad.l + (x - x0) / (x1 - x0) * (width - pad.l - pad.r);
  const Y = (y) => height - pad.b - (y - y0) / (y1 - y0) * (height - pad.t - pad.b);
  let out = `<line x1="${pad.l}" y1="${Y(y0)}" x2="${width - pad.r}" y2="${Y(y0)}" stroke="currentColor" stroke-opacity=".4"/>`;
  out += `<line x1="${pad.l}" y1="${pad.t}" x2="${pad.l}" y2="${Y(y0)}" stroke="currentColor" stroke-opacity=".4"/>`;
  for (let k = 0; k <= 4; k++) {
    const y = y0 + (y1 - y0) * k / 4;
    out += `<text x="${pad.l - 6}" y="${Y(y) + 4}" text-anchor="end">${fmt(y, 2)}</text>`;
  }
  out += `<text x="${pad.l}" y="${height - 8}">${fmt(x0, 0)}</text><text x="${width - pad.r}" y="${height - 8}" text-anchor="end">${fmt(x1, 0)}</text>`;
  out += `<text x="${(width + pad.l) / 2}" y="${height - 8}" text-anchor="middle">${escapeHtml(xLabel)}</text>`;
  out += `<text x="4" y="14">${escapeHtml(yLabel)}</text>`;
  series.forEach((s, i) => {
    const pts = s.points.filter(([, y]) => Number.isFinite(y));
    if (pts.length) {
      out += `<polyline fill="none" stroke="${s.colour}" stroke-width="2" points="${pts.map(([x, y]) => `${X(x).toFixed(1)},${Y(y).toFixed(1)}`).join(" ")}"/>`;
    }
    out += `<rect x="${width - pad.r - 150}" y="${pad.t + 4 + i * 16}" width="10" height="10" fill="${s.colour}"/>`;
    out += `<text x="${width - pad.r - 135}" y="${pad.t + 13 + i * 16}">${escapeHtml(s.name)}</text>`;
  });
  svg.innerHTML = out;
}

// Runs `work` at most once per animation frame, with the latest arguments.
function debounce(work, ms = 60) {
  let timer = null;
  return (...args) => { clearTimeout(timer); timer = setTimeout(() => work(...args), ms); };
}

// The model the page uses, or a notice that says how to get one.
async function needModel(box) {
  const status = await api("/api/status");
  if (status.model) {
    box.innerHTML = `Model: <span class="num">${escapeHtml(status.model.path)}</span>, ` +
      `${status.model.parameters.toLocaleString("en")} parameters, ${status.model.n_layer} blocks × ${status.model.n_head} heads, ` +
      `context ${status.model.block_size} ${status.model.tokenizer === "char" ? "characters" : "tokens"}.`;
    return status.model;
  }
  box.classList.add("notice");
  box.innerHTML = 'No model yet. <a href="/train">Train one</a> (the tiny preset takes seconds), or start the explorer with <span class="num">--model DIR</span>.';
  return null;
}

document.addEventListener("DOMContentLoaded", header);

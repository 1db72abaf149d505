// faceledger review UI: a small front end over the REST API (/api/v1).
// The API key is held in sessionStorage (gone when the tab closes) and sent as X-API-Key;
// no cookie carries it, so no other site can make the browser act with it. Every text from
// the server is set with textContent, never parsed as HTML; images are fetched with the key
// and shown from blob: URLs.
"use strict";

const API = "/api/v1";
const KEY = "faceledger.key";
let me = null;
let routeSeq = 0; // each navigation gets a number; a slower, older one may not render over it

function nextSeq() { routeSeq += 1; return routeSeq; }

// ---------------------------------------------------------------- helpers

class ApiError extends Error {
  constructor(problem) {
    super(problem.detail || problem.title || "request failed");
    this.problem = problem;
    this.status = problem.status;
    this.code = problem.code;
  }
}

async function api(path, { method = "GET", json, form, raw = false } = {}) {
  const headers = {};
  const key = sessionStorage.getItem(KEY);
  if (key) headers["X-API-Key"] = key;
  let body;
  if (json !== undefined) {
    headers["Content-Type"] = "application/json";
    body = JSON.stringify(json);
  } else if (form !== undefined) {
    body = form;
  }
  const res = await fetch(API + path, { method, headers, body, cache: "no-store" });
  if (!res.ok) {
    let problem = { status: res.status, title: res.statusText, detail: res.statusText };
    try { problem = await res.json(); } catch (e) { /* not JSON */ }
    throw new ApiError(problem);
  }
  if (raw) return res;
  if (res.status === 204) return null;
  return res.json();
}

function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === undefined || v === null || v === false) continue;
    if (k === "text") el.textContent = v;
    else if (k.startsWith("on")) el.addEventListener(k.slice(2), v);
    else if (k === "dataset") Object.assign(el.dataset, v);
    else if (v === true) el.setAttribute(k, "");
    else el.setAttribute(k, String(v));
  }
  for (const c of children.flat()) {
    if (c === undefined || c === null || c === false) continue;
    el.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return el;
}

function view(seq, ...children) {
  if (seq !== routeSeq) return; // the user has moved on meanwhile
  const main = document.getElementById("view");
  main.replaceChildren(...children.flat().filter((c) => c !== null && c !== undefined && c !== false));
}

function showError(err) {
  const box = document.getElementById("error");
  if (!err) { box.hidden = true; box.textContent = ""; return; }
  const code = err.code ? ` [${err.code}]` : "";
  box.textContent = `${err.message}${code}`;
  box.hidden = false;
}

function when(iso) { return iso ? new Date(iso).toLocaleString() : ""; }

function hasRole(role) { return me && me.roles.includes(role); }

// FMR as people read it: "≈ 1 in 207,000" (or "< 1 in N" when only a bound is known)
function fmrText(value, upperBound) {
  if (value === null || value === undefined) return "unknown";
  if (value <= 0) return "0";
  const one = Math.round(1 / value).toLocaleString("en-US");
  const sci = value.toExponential(1);
  return upperBound ? `< ${sci} (under 1 in ${one})` : `${sci} (≈ 1 in ${one})`;
}

async function imageInto(holder, path, caption) {
  try {
    const res = await api(path, { raw: true });
    const url = URL.createObjectURL(await res.blob());
    const img = h("img", { src: url, alt: caption });
    holder.replaceChildren(img);
  } catch (err) {
    const why = err.status === 403 ? "image hidden: needs a view_images grant"
      : err.status === 404 ? "no image kept" : `image unavailable (${err.message})`;
    holder.replaceChildren(h("div", { class: "noimage", text: why }));
  }
}

function statusBadge(status, lead) {
  let label = status.replaceAll("_", " ");
  if (status === "awaiting_second_confirmation") {
    label += ` (${lead.confirmed_by.length} of ${lead.confirmed_by.length + lead.confirmations_needed})`;
  }
  return h("span", { class: "status", dataset: { status }, text: label });
}

function formValue(form, name) {
  const el = form.elements.namedItem(name);
  return el ? el.value.trim() : "";
}

async function guarded(fn) {
  showError(null);
  try { await fn(); } catch (err) { showError(err); }
}

// ---------------------------------------------------------------- sign in

function signinView(seq = nextSeq()) {
  document.getElementById("nav").hidden = true;
  document.getElementById("signout").hidden = true;
  document.getElementById("who").textContent = "";
  const form = h("form", { id: "signin", class: "card" },
    h("h1", { text: "Sign in" }),
    h("label", {}, "API key ", h("input", { id: "key", name: "key", type: "password",
      autocomplete: "off", required: true, placeholder: "flk_..." })),
    h("button", { type: "submit", id: "signin-submit" }, "Sign in"),
    h("p", { class: "muted", text: "Keys are issued by an administrator " +
      "(faceledger users issue-key). The key stays in this tab only." }));
  form.addEventListener("submit", (ev) => {
    ev.preventDefault();
    guarded(async () => {
      sessionStorage.setItem(KEY, formValue(form, "key"));
      try { await loadMe(); } catch (err) { sessionStorage.removeItem(KEY); throw err; }
      location.hash = hasRole("operator") ? "#/orgs" : "#/galleries";
      await route();
    });
  });
  view(seq, form);
}

async function loadMe() {
  me = await api("/me");
  const org = me.org ? ` · ${me.org}` : "";
  document.getElementById("who").textContent = `${me.id}${org} · ${me.roles.join(", ")}`;
  // pages of a role show in the menu only to those who hold it (the API refuses the rest)
  for (const link of document.querySelectorAll("#nav a[data-roles]")) {
    link.hidden = !link.dataset.roles.split(" ").some(hasRole);
  }
  document.getElementById("nav").hidden = false;
  document.getElementById("signout").hidden = false;
}

function signOut() {
  sessionStorage.removeItem(KEY);
  me = null;
  location.hash = "#/";
  signinView();
}

// ---------------------------------------------------------------- galleries

// A gallery's retention period ("12 h" / "30 d", or "12 hours" / "30 days"); "" when none.
function retentionText(g, short) {
  if (g.retention_hours) return short ? `${g.retention_hours} h` : `${g.retention_hours} hours`;
  if (g.retention_days) return short ? `${g.retention_days} d` : `${g.retention_days} days`;
  return "";
}

async function galleriesView(seq) {
  const list = await api("/galleries");
  const rows = list.items.map((g) => h("tr", { dataset: { gallery: g.name } },
    h("td", {}, h("a", { href: `#/gallery/${encodeURIComponent(g.name)}`, text: g.name })),
    h("td", { class: "metric", text: g.subjects }), h("td", { class: "metric", text: g.templates }),
    h("td", { text: g.legal_basis }), h("td", { text: retentionText(g, true) || "—" }),
    h("td", { text: g.model_id }), h("td", { text: me.grants[g.name] || (hasRole("admin") ? "admin" : "") })));
  const parts = [h("h1", { text: "Galleries" }),
    rows.length ? h("table", { id: "galleries" },
      h("tr", {}, ["name", "subjects", "templates", "legal basis", "retention", "model", "your access"]
        .map((t) => h("th", { text: t }))), rows)
      : h("p", { class: "muted", text: "No gallery you hold a grant on." })];
  if (hasRole("admin")) parts.push(createGalleryForm());
  view(seq, parts);
}

function createGalleryForm() {
  const form = h("form", { id: "gallery-create", class: "card" },
    h("h2", { text: "Create a gallery" }),
    h("label", {}, "Name ", h("input", { type: "text", name: "name", id: "gallery-name", required: true })),
    h("label", {}, "Legal basis for holding its data ", h("select", { name: "legal_basis", id: "gallery-basis" },
      ["consent", "statute", "warrant", "other"].map((b) => h("option", { value: b, text: b })))),
    h("label", {}, "Retention (empty: indefinite) ",
      h("input", { type: "number", name: "retention", id: "gallery-retention", min: 1 }), " ",
      h("select", { name: "retention_unit", id: "gallery-retention-unit" },
        ["days", "hours"].map((u) => h("option", { value: u, text: u })))),
    h("label", {}, "Description ", h("input", { type: "text", name: "description", id: "gallery-description" })),
    h("button", { type: "submit", id: "gallery-submit" }, "Create gallery"));
  form.addEventListener("submit", (ev) => {
    ev.preventDefault();
    guarded(async () => {
      const retention = formValue(form, "retention");
      const unit = formValue(form, "retention_unit") === "hours" ? "retention_hours" : "retention_days";
      const g = await api("/galleries", { method: "POST", json: {
        name: formValue(form, "name"), legal_basis: formValue(form, "legal_basis"),
        description: formValue(form, "description"),
        [unit]: retention ? Number(retention) : null } });
      location.hash = `#/gallery/${encodeURIComponent(g.name)}`;
    });
  });
  return form;
}

async function galleryView(seq, name) {
  const g = await api(`/galleries/${encodeURIComponent(name)}`);
  const parts = [h("h1", { text: `Gallery ${g.name}` }),
    h("p", {}, `${g.subjects} subjects, ${g.templates} templates · legal basis ${g.legal_basis} · `,
      `retention ${retentionText(g, false) || "indefinite"} · model ${g.model_id} · `,
      `created by ${g.created_by} ${when(g.created_at)}`),
    g.description ? h("p", { class: "muted", text: g.description }) : null];
  const level = me.grants[g.name];
  if (hasRole("enroller") && level === "enrol") parts.push(enrolForm(g.name));
  if (hasRole("admin")) parts.push(await grantsCard(g.name));
  const subjects = h("section", { class: "card", id: "subjects" }, h("h2", { text: "Subjects" }));
  parts.push(subjects);
  view(seq, parts);
  await loadSubjects(g.name, subjects, null);
}

async function loadSubjects(gallery, holder, cursor) {
  try {
    const q = cursor ? `?limit=50&cursor=${encodeURIComponent(cursor)}` : "?limit=50";
    const page = await api(`/galleries/${encodeURIComponent(gallery)}/subjects${q}`);
    let table = holder.querySelector("table");
    if (!table) {
      table = h("table", {}, h("tr", {}, ["subject", "name", "legal basis", "enrolled", "by"]
        .map((t) => h("th", { text: t }))));
      holder.append(table);
    }
    for (const s of page.items) {
      table.append(h("tr", { dataset: { subject: s.external_id } }, h("td", { text: s.external_id }),
        h("td", { text: s.display_name || "" }), h("td", { text: s.legal_basis }),
        h("td", { text: when(s.enrolled_at) }), h("td", { text: s.enrolled_by })));
    }
    holder.querySelector("button.more")?.remove();
    if (page.next_cursor) {
      holder.append(h("button", { class: "secondary more", type: "button",
        onclick: () => loadSubjects(gallery, holder, page.next_cursor) }, "More"));
    }
  } catch (err) {
    holder.append(h("p", { class: "muted", text: err.status === 403
      ? "Listing subjects needs a view_images grant on this gallery." : err.message }));
  }
}

function enrolForm(gallery) {
  const result = h("div", { id: "enrol-result" });
  const form = h("form", { id: "enrol", class: "card" },
    h("h2", { text: "Enrol images" }),
    h("label", {}, "Subject id ", h("input", { type: "text", name: "subject", id: "enrol-subject" })),
    h("label", {}, h("input", { type: "checkbox", name: "from_name", id: "enrol-from-name" }),
      " Subject id from each file name (the part before the first “_” or “.”)"),
    h("label", {}, "Images (one face each) ", h("input", { type: "file", name: "images",
      id: "enrol-files", multiple: true, accept: "image/*", required: true })),
    h("button", { type: "submit", id: "enrol-submit" }, "Enrol"), result);
  form.addEventListener("submit", (ev) => {
    ev.preventDefault();
    guarded(async () => {
      const files = [...form.elements.namedItem("images").files];
      const fromName = form.elements.namedItem("from_name").checked;
      const subject = formValue(form, "subject");
      if (!fromName && !subject) throw new Error("give a subject id, or take it from the file names");
      const data = new FormData();
      for (const f of files) {
        data.append("images", f, f.name);
        data.append("subjects", fromName ? f.name.split(/[_.]/)[0] : subject);
      }
      const button = form.querySelector("button[type=submit]");
      button.disabled = true;
      result.replaceChildren(h("p", { class: "muted", text: `Enrolling ${files.length} image(s)…` }));
      try {
        const out = await api(`/galleries/${encodeURIComponent(gallery)}/enrolments`, { method: "POST", form: data });
        result.replaceChildren(
          h("p", { id: "enrol-summary", text: `${out.enrolled} enrolled, ${out.duplicates} duplicate, ${out.rejected} rejected` }),
          h("table", {}, h("tr", {}, ["file", "subject", "outcome", "detail"].map((t) => h("th", { text: t }))),
            out.items.map((i) => h("tr", { dataset: { status: i.status } }, h("td", { text: i.file }),
              h("td", { text: i.subject }), h("td", { text: i.status }), h("td", { text: i.detail || "" })))));
      } finally { button.disabled = false; }
    });
  });
  return form;
}

async function grantsCard(gallery) {
  const card = h("section", { class: "card", id: "grants" }, h("h2", { text: "Grants" }));
  const grants = await api(`/galleries/${encodeURIComponent(gallery)}/grants`);
  card.append(grants.length ? h("table", {}, h("tr", {}, h("th", { text: "user" }), h("th", { text: "level" })),
    grants.map((x) => h("tr", {}, h("td", { text: x.user_id }), h("td", { text: x.level }))))
    : h("p", { class: "muted", text: "Nobody holds a grant yet." }));
  const form = h("form", { id: "grant-form" },
    h("label", { class: "inline" }, "User ", h("input", { type: "text", name: "user", id: "grant-user", required: true })),
    h("label", { class: "inline" }, "Level ", h("select", { name: "level", id: "grant-level" },
      ["search", "view_images", "enrol"].map((l) => h("option", { value: l, text: l })))),
    h("button", { type: "submit", id: "grant-submit" }, "Grant"));
  form.addEventListener("submit", (ev) => {
    ev.preventDefault();
    guarded(async () => {
      await api(`/galleries/${encodeURIComponent(gallery)}/grants/${encodeURIComponent(formValue(form, "user"))}`,
        { method: "PUT", json: { level: formValue(form, "level") } });
      await galleryView(nextSeq(), gallery);
    });
  });
  card.append(form);
  return card;
}

// ---------------------------------------------------------------- search

// the galleries a 1:N search may name: those the user holds a grant on, all ticked
function galleryChecks(searchable) {
  return h("fieldset", {}, h("legend", { text: "Galleries" }),
    searchable.length ? searchable.map((g) => h("label", { class: "inline" },
      h("input", { type: "checkbox", name: "galleries", value: g.name, checked: true }),
      ` ${g.name}${g.owner_org && g.owner_org !== me.org ? ` (shared by ${g.owner_org})` : ""}`))
      : h("span", { class: "muted", text: "You hold no grant on any gallery." }));
}

async function searchableGalleries() {
  const list = await api("/galleries");
  return list.items.filter((g) => me.grants[g.name]);
}

// one 1:N search (the search page, and the field check's "search this face"); then the
// search's page, with its leads or its "no candidate"
async function submitSearch(button, { image, galleries, purpose, caseRef, k, fpir, onlyWithLeads, faces }) {
  const data = new FormData();
  data.append("image", image);
  for (const g of galleries) data.append("galleries", g);
  data.append("purpose", purpose);
  data.append("case_ref", caseRef);
  if (k) data.append("k", k);
  if (fpir) data.append("fpir", fpir);
  if (onlyWithLeads) data.append("keep_probe_only_with_leads", "true");
  for (const i of faces || []) data.append("faces", String(i));
  button.disabled = true;
  try {
    const out = await api("/search", { method: "POST", form: data });
    location.hash = `#/searches/${out.search_id}`;
  } finally { button.disabled = false; }
}

function checkedGalleries(form) {
  return [...form.querySelectorAll("input[name=galleries]:checked")].map((box) => box.value);
}

// "Face 1" is the face with face_index 0, everywhere: on the search page, the probe and each lead
function faceNumber(f, i) { return (f.face_index ?? i) + 1; }

// every face's box, numbered, over an image of width × height pixels (an <svg> laid over it,
// scaled as the image is with object-fit: contain)
function faceBoxesSvg(width, height, faces, { only = null } = {}) {
  const size = Math.max(width, height);
  const stroke = Math.max(2, Math.round(size / 250));
  const font = Math.max(14, Math.round(size / 22));
  return svgEl("svg", { class: "overlay boxes", viewBox: `0 0 ${width} ${height}`,
    preserveAspectRatio: "xMidYMid meet", "aria-hidden": "true" },
  ...faces.filter((f, i) => only === null || (f.face_index ?? i) === only).map((f, i) => {
    const b = f.box;
    const kids = [svgEl("rect", { x: b.left, y: b.top, width: Math.max(1, b.right - b.left),
      height: Math.max(1, b.bottom - b.top), "stroke-width": stroke })];
    if (only === null) {
      kids.push(svgEl("text", { x: b.left + stroke, y: Math.max(font, b.top - stroke * 2),
        "font-size": font, "stroke-width": Math.max(1, stroke / 2) }, String(faceNumber(f, i))));
    }
    return svgEl("g", { class: "face-box", "data-face": f.face_index ?? i }, ...kids);
  }));
}

// the picked probe image with every face the detector found boxed and numbered, and a
// checkbox per face. The only face is ticked; when there are several NONE is: the searcher
// says which face(s) to search, so that nobody else in the photo is searched by default.
function facePicker(file, out) {
  const url = URL.createObjectURL(file);
  const n = out.faces.length;
  const fig = h("figure", { class: "boxed", id: "search-preview" },
    h("div", { class: "boxed-image" }, h("img", { src: url, alt: `the probe image, ${n} face(s) boxed and numbered` }),
      faceBoxesSvg(out.width, out.height, out.faces)),
    h("figcaption", { text: n ? `${n} face(s) found, numbered on the image` : "no face found" }));
  if (!n) return [fig, h("p", { class: "notice", id: "search-no-face", text: "No face found in this image: there is nothing to search." })];
  const only = n === 1;
  return [fig,
    h("fieldset", { id: "search-face-choice" },
      h("legend", { text: only ? "Face to search" : `Faces to search: ${n} found, tick each one to search` }),
      out.faces.map((f, i) => h("label", { class: "inline" },
        h("input", { type: "checkbox", name: "faces", value: f.face_index ?? i, id: `search-face-${f.face_index ?? i}`, checked: only }),
        ` Face ${faceNumber(f, i)}`,
        h("span", { class: "muted", text: ` (quality ${f.quality.score.toFixed(0)}/100${f.quality.flags.length ? `, flags: ${f.quality.flags.join(", ")}` : ""})` })))),
    only ? null : h("p", { class: "notice", id: "search-face-hint", text: "Several faces: none is ticked. Tick only the face(s) "
      + "of the person you are looking for; each face searched gets its own candidates." })];
}

async function searchView(seq) {
  const searchable = await searchableGalleries();
  const imageInput = h("input", { type: "file", name: "image", id: "search-image", accept: "image/*", required: true });
  const facesBox = h("div", { id: "search-faces", "aria-live": "polite" });
  const submit = h("button", { type: "submit", id: "search-submit" }, "Search");
  let detected = null; // null: the faces are not known (the service then picks its default face)
  let detectSeq = 0;
  imageInput.addEventListener("change", () => guarded(async () => {
    detectSeq += 1;
    const mine = detectSeq;
    detected = null;
    const file = imageInput.files[0];
    if (!file) { facesBox.replaceChildren(); return; }
    submit.disabled = true;
    facesBox.replaceChildren(h("p", { class: "muted", text: "Finding the faces in the image…" }));
    try {
      const data = new FormData();
      data.append("image", file);
      const out = await api("/detect", { method: "POST", form: data });
      if (mine !== detectSeq) return;
      detected = out;
      facesBox.replaceChildren(...facePicker(file, out).filter(Boolean));
    } catch (err) {
      if (mine !== detectSeq) return;
      facesBox.replaceChildren(h("p", { class: "muted",
        text: `The faces could not be shown (${err.message}): the search uses the service's choice of face.` }));
    } finally {
      if (mine === detectSeq) submit.disabled = false;
    }
  }));
  const form = h("form", { id: "search", class: "card" },
    h("h1", { text: "Search" }),
    h("p", { class: "notice", text: "Every search states why it is made and for which case; " +
      "it is recorded with its results. Candidates are leads for review, not identifications." }),
    h("label", {}, "Probe image ", imageInput),
    facesBox,
    galleryChecks(searchable),
    h("label", {}, "Purpose ", h("input", { type: "text", name: "purpose", id: "search-purpose", required: true })),
    h("label", {}, "Case reference ", h("input", { type: "text", name: "case_ref", id: "search-case", required: true })),
    h("label", { class: "inline" }, "Candidates per face ", h("input", { type: "number", name: "k", min: 1, max: 1000, value: 20 })),
    h("label", { class: "inline" }, "Target FPIR ", h("input", { type: "number", name: "fpir", step: "any", min: 0, max: 1, placeholder: "default" })),
    h("p", {}, submit));
  form.addEventListener("submit", (ev) => {
    ev.preventDefault();
    guarded(async () => {
      let faces = null;
      if (detected) {
        if (!detected.faces.length) throw new Error("no face found in this image: nothing to search");
        faces = [...form.querySelectorAll("input[name=faces]:checked")].map((b) => Number(b.value));
        if (!faces.length) throw new Error("tick the face(s) to search: each is numbered on the image");
      }
      await submitSearch(submit, {
        image: imageInput.files[0], galleries: checkedGalleries(form),
        purpose: formValue(form, "purpose"), caseRef: formValue(form, "case_ref"),
        k: formValue(form, "k"), fpir: formValue(form, "fpir"), faces });
    });
  });
  view(seq, form);
}

// ---------------------------------------------------------------- field check (documents)

const CHECK_REASONS = {
  match: "the live face matches the document's portrait at the target false-match rate",
  no_match: "the live face does not match the document's portrait",
  mrz_invalid: "the machine-readable zone is missing, unreadable, or a check digit fails",
  expired: "the document has expired",
  no_portrait: "no portrait was found on the document",
  low_quality: "the portrait is small or the live photo fails the quality gates: "
    + "a comparison is weaker evidence (more false non-matches)",
};
const MRZ_FIELDS = [["document_type", "Document type"], ["issuing_state", "Issuing state"],
  ["document_number", "Document number"], ["surname", "Surname"], ["given_names", "Given names"],
  ["nationality", "Nationality"], ["birth_date", "Date of birth"], ["sex", "Sex"],
  ["expiry_date", "Expiry date"], ["personal_number", "Personal number / optional data"],
  ["optional_data_2", "Optional data (2)"]];

// a thumbnail of the photo picked (or taken) in a file input, so the officer sees what goes
function previewOf(input, caption) {
  const fig = h("figure", { class: "preview" });
  let url = null;
  input.addEventListener("change", () => {
    if (url) URL.revokeObjectURL(url);
    const file = input.files[0];
    url = file ? URL.createObjectURL(file) : null;
    fig.replaceChildren(...(file ? [h("img", { src: url, alt: caption }), h("figcaption", { text: caption })] : []));
  });
  return fig;
}

async function checkView(seq) {
  const searchable = hasRole("searcher") ? await searchableGalleries() : [];
  const docInput = h("input", { type: "file", name: "document", id: "check-document",
    accept: "image/*", capture: "environment", required: true });
  const liveInput = h("input", { type: "file", name: "live", id: "check-live",
    accept: "image/*", capture: "user", required: true });
  const result = h("div", { id: "check-result" });
  const form = h("form", { id: "field-check", class: "card" },
    h("h1", { text: "Field check" }),
    h("p", { class: "notice", text: "Checks a person against their identity document: the "
      + "machine-readable zone (check digits, expiry) and their face against the document's "
      + "portrait (1:1). The check states a purpose and a case and is recorded in the audit "
      + "log; no image, template or name is kept. The answer is pass, or refer to an officer "
      + "— never an identification." }),
    hasRole("searcher") ? null : h("p", { class: "muted", text: "A field check needs the searcher role "
      + "(the same right as a 1:1 verification): yours will be refused." }),
    h("label", {}, "Document photo (the side with the MRZ and portrait) ", docInput),
    h("label", {}, "Face photo (the person, now) ", liveInput),
    h("div", { class: "compare" }, previewOf(docInput, "document"), previewOf(liveInput, "face")),
    h("label", {}, "Purpose ", h("input", { type: "text", name: "purpose", id: "check-purpose", required: true })),
    h("label", {}, "Case reference ", h("input", { type: "text", name: "case_ref", id: "check-case", required: true })),
    h("label", {}, "Target FMR ", h("input", { type: "number", name: "fmr", id: "check-fmr", step: "any",
      min: 0, max: 1, placeholder: "default" })),
    h("p", {}, h("button", { type: "submit", id: "check-submit" }, "Check")));
  form.addEventListener("submit", (ev) => {
    ev.preventDefault();
    guarded(async () => {
      const asked = { document: docInput.files[0], live: liveInput.files[0],
        purpose: formValue(form, "purpose"), caseRef: formValue(form, "case_ref") };
      const data = new FormData();
      data.append("document", asked.document);
      data.append("live", asked.live);
      data.append("purpose", asked.purpose);
      data.append("case_ref", asked.caseRef);
      if (formValue(form, "fmr")) data.append("fmr", formValue(form, "fmr"));
      const button = form.querySelector("button[type=submit]");
      button.disabled = true;
      result.replaceChildren(h("p", { class: "muted", text: "Checking…" }));
      try {
        const out = await api("/documents/check", { method: "POST", form: data });
        result.replaceChildren(...checkOutcome(out), comparisonCard(out), mrzCard(out),
          portraitCard(out), hasRole("searcher") ? searchThisFace(asked, searchable) : null);
        result.scrollIntoView({ block: "start" });
      } catch (err) {
        result.replaceChildren();
        throw err;
      } finally { button.disabled = false; }
    });
  });
  view(seq, form, result);
}

function checkOutcome(out) {
  const pass = out.decision === "pass";
  return [h("section", { class: "card", id: "check-outcome" },
    h("p", { id: "check-decision", class: "decision", dataset: { decision: out.decision },
      text: pass ? "PASS" : "REFER to an officer" }),
    h("p", { class: "muted", text: pass
      ? "The document reads valid, has not expired, and the face matches its portrait."
      : "Examine the person and the document: every reason is listed." }),
    h("ul", { id: "check-reasons" }, out.reasons.map((r) => h("li", { dataset: { reason: r } },
      h("b", { text: r }), ` — ${CHECK_REASONS[r] || ""}`))),
    h("p", { class: "muted", text: `Recorded as audit entry #${out.audit_seq} (the document `
      + "number only as a keyed hash). No image, template or name is kept." }))];
}

function qualityFlags(q) {
  return q.flags.length ? h("span", { class: "flags", text: ` · flags: ${q.flags.join(", ")}` })
    : h("span", { class: "muted", text: " · no quality flags" });
}

function comparisonCard(out) {
  const c = out.comparison;
  const card = h("section", { class: "card", id: "check-comparison" },
    h("h2", { text: "Face against the document's portrait (1:1)" }));
  if (!c) {
    card.append(h("p", { class: "notice", text: "No comparison: no portrait on the document." }));
  } else {
    card.append(
      h("p", { class: "metric", id: "check-match", dataset: { outcome: c.outcome } },
        h("b", { text: c.outcome === "match" ? "Match" : "No match" }),
        ` · cosine similarity ${c.score.toFixed(4)} (threshold ${c.threshold.toFixed(4)}`,
        ` at target FMR ${c.target_fmr})`),
      h("p", { class: "metric" }, "Estimated false-match rate of this score: ",
        h("b", { class: "fmr", id: "check-fmr-value", text: fmrText(c.fmr, c.fmr_upper_bound) })));
  }
  card.append(h("p", { id: "check-live-quality" },
    `Live photo quality ${out.live.quality.score.toFixed(0)}/100`, qualityFlags(out.live.quality)));
  return card;
}

// how a field of the MRZ is protected: its own check digit (ok or fail), only the composite
// check, or nothing at all (as read, unverified)
function protection(m, name) {
  const own = m.checks.find((c) => c.name === name);
  if (own) return h("span", { class: own.ok ? "ok" : "fail", text: own.ok ? "check digit ok" : "check digit FAILS" });
  if (m.unchecked_fields.includes(name)) return h("span", { class: "flags", text: "no check digit: as read" });
  return h("span", { class: "muted", text: "composite check only" });
}

function mrzFieldValue(f, name) {
  if (name === "birth_date" && f.birth_date_iso) return `${f.birth_date_iso} (${f.birth_date})`;
  if (name === "expiry_date" && f.expiry_date_iso) return `${f.expiry_date_iso} (${f.expiry_date})`;
  return f[name];
}

function expiryLine(m) {
  const iso = m.fields.expiry_date_iso;
  const text = m.expired === true ? `EXPIRED on ${iso}` : m.expired === false ? `Valid until ${iso}`
    : "Expiry date not readable as a date";
  return h("p", { id: "check-expiry", dataset: { expired: String(m.expired) } },
    h("b", { class: m.expired === false ? "ok" : "fail", text }));
}

// the fields no check digit covers, named as the table names them, in its order
function uncheckedLabels(names) {
  const known = MRZ_FIELDS.filter(([name]) => names.includes(name)).map(([, label]) => label);
  const other = names.filter((n) => !MRZ_FIELDS.some(([name]) => name === n));
  return [...known, ...other.map((n) => n.replaceAll("_", " "))];
}

function mrzCard(out) {
  const card = h("section", { class: "card", id: "check-mrz" }, h("h2", { text: "Machine-readable zone" }));
  const m = out.mrz;
  if (!m) {
    card.append(h("p", { id: "check-mrz-error", class: "notice",
      text: `No MRZ read (${out.mrz_error}): nothing of the document could be checked.` }));
    return card;
  }
  const rows = MRZ_FIELDS.filter(([name]) => m.fields[name] || m.checks.some((c) => c.name === name))
    .map(([name, label]) => h("tr", { dataset: { field: name } }, h("th", { text: label }),
      h("td", { text: mrzFieldValue(m.fields, name) || "—" }), h("td", {}, protection(m, name))));
  const digits = m.checks.map((c) => h("tr", { dataset: { check: c.name, ok: String(c.ok) } },
    h("td", { text: c.name.replaceAll("_", " ") }), h("td", { class: "metric", text: c.read }),
    h("td", { class: "metric", text: c.expected }),
    h("td", {}, h("span", { class: c.ok ? "ok" : "fail", text: c.ok ? "ok" : "fail" }))));
  card.append(
    h("p", { id: "check-mrz-valid", dataset: { valid: String(m.valid) } }, `${m.format} · `,
      h("b", { class: m.valid ? "ok" : "fail", text: m.valid ? "every check digit passes" : "INVALID" }),
      m.corrections.length ? h("span", { class: "muted", text: ` · corrected: ${m.corrections.join("; ")}` }) : null),
    h("pre", { class: "mrz-lines", text: m.lines.join("\n") }),
    expiryLine(m),
    h("table", { id: "check-fields" }, h("tr", {}, ["field", "as read", "protected by"].map((t) => h("th", { text: t }))), rows),
    h("h2", { text: "Check digits" }),
    h("table", { id: "check-digits" }, h("tr", {}, ["check", "read", "expected", ""].map((t) => h("th", { text: t }))), digits),
    h("p", { id: "check-unchecked", class: "notice" }, "No check digit protects ",
      h("b", { text: uncheckedLabels(m.unchecked_fields).join(", ") }),
      ": they are shown as read, not verified."));
  return card;
}

function portraitCard(out) {
  const p = out.portrait;
  const card = h("section", { class: "card", id: "check-portrait" }, h("h2", { text: "Document portrait" }));
  if (!p) {
    card.append(h("p", { class: "notice", text: "No face was found on the document." }));
    return card;
  }
  card.append(h("p", { class: "metric" }, `Quality ${p.quality.score.toFixed(0)}/100 · `,
    `${p.quality.inter_eye_px.toFixed(0)} px between the eyes · ${p.faces_on_document} face(s) on the document`,
  qualityFlags(p.quality)),
  ...(p.notes.length ? p.notes.map((n) => h("p", { class: "notice portrait-note", text: n }))
    : [h("p", { class: "muted portrait-note", text: "Large enough to compare (60 px or more between the eyes)." })]));
  return card;
}

// 1:N with the check's live photo, purpose and case: a search of its own, as on the search page
function searchThisFace(asked, searchable) {
  const form = h("form", { class: "card", id: "check-search" },
    h("h2", { text: "Search this face (1:N)" }),
    h("p", { class: "notice", text: "Searches the live photo in galleries you may search, with the "
      + "same purpose and case. The search is audited with its leads; the photo is kept for "
      + "reviewers only if it gives candidates: nothing is kept of someone who matches no one. "
      + "Candidates are leads for review, never identifications." }),
    galleryChecks(searchable),
    h("p", {}, h("button", { type: "submit", id: "check-search-submit", disabled: !searchable.length },
      "Search this face")));
  form.addEventListener("submit", (ev) => {
    ev.preventDefault();
    guarded(() => submitSearch(form.querySelector("button[type=submit]"), {
      image: asked.live, galleries: checkedGalleries(form), purpose: asked.purpose, caseRef: asked.caseRef,
      onlyWithLeads: true }));
  });
  return form;
}

function facesSummary(faces, video) {
  if (!faces || !faces.length) return h("p", { class: "muted", text: "No face record kept with the probe." });
  const seen = (i) => {
    const t = video && video.faces[i];
    return t && t.time_s !== null ? ` at ${seconds(t.time_s)}` : "";
  };
  return h("ul", { id: "probe-quality" }, faces.map((f, i) => h("li", { dataset: { face: f.face_index ?? i } },
    `face ${video ? i + 1 : faceNumber(f, i)}${seen(i)}: quality ${f.quality.score.toFixed(0)}/100`,
    f.quality.flags.length ? h("span", { class: "flags", text: ` · flags: ${f.quality.flags.join(", ")}` })
      : h("span", { class: "muted", text: " · no quality flags" }))));
}

// ---------------------------------------------------------------- video lead tracks

const SVG_NS = "http://www.w3.org/2000/svg";

function svgEl(tag, attrs = {}, ...children) {
  const el = document.createElementNS(SVG_NS, tag);
  for (const [k, v] of Object.entries(attrs)) el.setAttribute(k, String(v));
  for (const c of children) el.append(c instanceof Node ? c : document.createTextNode(String(c)));
  return el;
}

function seconds(s) { return `${Number(s).toFixed(1)} s`; }

function spanText(t) { return `${seconds(t.start_s)} – ${seconds(t.end_s)}`; }

// the whole video as a bar, this track's span highlighted, the other lead tracks lighter
function videoTimeline(v) {
  const spans = [v.track, ...v.other_tracks];
  const end = v.duration_s || Math.max(...spans.map((t) => t.end_s), 1);
  const W = 1000, X0 = 10, BAR = W - 2 * X0;
  const x = (s) => X0 + (BAR * Math.min(Math.max(s, 0), end)) / end;
  const rect = (t, cls, y, height) => svgEl("rect", { class: cls, x: x(t.start_s).toFixed(1), y,
    width: Math.max(4, x(t.end_s) - x(t.start_s)).toFixed(1), height },
  svgEl("title", {}, `${cls === "this" ? "this track" : "lead track"} ${t.track_id}: ${spanText(t)}`));
  return svgEl("svg", { id: "video-timeline", class: "timeline", viewBox: `0 0 ${W} 46`,
    role: "img", "aria-label": `this track, ${spanText(v.track)}, on a video of ${seconds(end)}` },
  svgEl("rect", { class: "video", x: X0, y: 8, width: BAR, height: 20 }),
  ...v.other_tracks.map((t) => rect(t, "other", 10, 16)),
  rect(v.track, "this", 4, 28),
  svgEl("text", { x: X0, y: 44 }, "0 s"),
  svgEl("text", { x: W - X0, y: 44, "text-anchor": "end" }, seconds(end)));
}

function videoTitle(v) { return v.kind === "video_alert" ? "Live video alert" : "Video search"; }

function videoCard(v) {
  const t = v.track;
  const faces = t.faces_seen === null ? "" : ` · ${t.faces_seen} faces seen, ${t.faces_used} used for the search`;
  return h("section", { class: "card", id: "video-info" },
    h("h2", { text: "This track in the video" }),
    h("p", { id: "video-duration" }, v.duration_s === null ? "Live source (duration unknown)"
      : `Video of ${seconds(v.duration_s)}`,
    v.video_sha256 ? h("span", { class: "muted", text: ` · sha256 ${v.video_sha256.slice(0, 12)}…` }) : null),
    videoTimeline(v),
    h("p", { id: "video-track" }, `Track ${t.track_id}: ${spanText(t)}${faces}`,
      v.other_tracks.length ? h("span", { class: "muted",
        text: ` · ${v.other_tracks.length} other lead track(s) of this video, each reviewed on its own` }) : null),
    v.tracks_searched === null ? null : h("p", { id: "video-counts", class: "notice" },
      `${v.tracks_searched} tracks searched, expected false alerts `
        + (v.expected_false_alerts === null ? "unknown" : v.expected_false_alerts.toFixed(2)),
      h("span", { class: "muted", text: " (tracks searched × target FPIR: the lead tracks chance alone "
        + "should give if nobody in the video were enrolled)" })));
}

// one fetch per image and page: the same probe is shown in the header and beside every lead
function imageCache() {
  const cache = new Map();
  return (path) => {
    if (!cache.has(path)) {
      cache.set(path, (async () => {
        const res = await api(path, { raw: true });
        return { url: URL.createObjectURL(await res.blob()), landmarks: res.headers.get("X-Landmarks") };
      })());
    }
    return cache.get(path);
  };
}

function noImageText(err) {
  return err.status === 403 ? "image hidden: needs a view_images grant"
    : err.status === 404 ? "no image kept" : `image unavailable (${err.message})`;
}

// "Candidate A", "B", … "Z", "AA", …
function letterOf(i) {
  const c = String.fromCharCode(65 + (i % 26));
  return i < 26 ? c : letterOf(Math.floor(i / 26) - 1) + c;
}

function fnv1a(text) {
  let x = 0x811c9dc5;
  for (const ch of text) { x ^= ch.codePointAt(0); x = Math.imul(x, 0x01000193) >>> 0; }
  return x;
}

function reviewsHere(rec) { return hasRole("reviewer") && me.id !== rec.actor; }

// the order leads are shown in, each with its letter. A reviewer of the search sees them in an
// order drawn from the search id (the same every time), not by rank: the first card is not
// the best score. Anyone else sees them by rank.
function leadOrder(rec) {
  const leads = rec.leads.slice();
  if (reviewsHere(rec) || leads.some((l) => l.blind)) {
    leads.sort((a, b) => fnv1a(`${rec.search_id}:${a.rank}`) - fnv1a(`${rec.search_id}:${b.rank}`) || a.rank - b.rank);
  }
  return leads.map((lead, i) => ({ lead, letter: letterOf(i) }));
}

async function searchDetailView(seq, id, { focus = null } = {}) {
  const rec = await api(`/searches/${encodeURIComponent(id)}`);
  const image = imageCache();
  const probe = h("div", { class: "boxed-image" }, h("div", { class: "noimage", text: "loading…" }));
  const manyFaces = !rec.video && rec.probe_faces && rec.probe_faces.length > 1;
  const parts = [h("h1", { text: rec.video ? videoTitle(rec.video) : "Search" }),
    h("section", { class: "card", id: "search-info" },
      h("p", {}, h("b", { text: "Purpose: " }), rec.purpose, " · ", h("b", { text: "Case: " }), rec.case_ref),
      h("p", {}, `By ${rec.actor}${rec.requester_org ? ` of ${rec.requester_org}` : ""}, ${when(rec.created_at)} · `,
        `galleries ${galleriesText(rec)} · `,
        `model ${rec.model_id || "?"} · audit entry #${rec.audit_seq}`),
      h("p", { id: "two-person", class: "notice", text: rec.two_person_rule
        ? "Two-person rule: a lead is confirmed only when two different reviewers confirm it. The searcher may not review."
        : "One reviewer's confirmation confirms a lead. The searcher may not review." }),
      h("div", { class: "compare" }, h("figure", { id: "probe", class: rec.video ? "strip" : "boxed" }, probe,
        h("figcaption", { text: rec.video ? "Best faces of the track"
          : manyFaces ? "Probe image: each face searched is boxed and numbered" : "Probe image" }))),
      facesSummary(rec.probe_faces, rec.video))];
  if (rec.video) parts.push(videoCard(rec.video));
  if (!rec.leads.length) {
    parts.push(h("p", { id: "no-candidate", class: "notice",
      text: rec.leads_hidden ? "No lead you may see." : "No candidate passed the threshold: no lead." }));
  } else {
    parts.push(h("p", { class: "muted", id: "lead-keys" }, "Keyboard: ", h("kbd", { text: "j" }), " or ",
      h("kbd", { text: "n" }), " next lead, ", h("kbd", { text: "k" }), " or ", h("kbd", { text: "p" }),
      " previous lead; in a face, arrow keys pan and + / − zoom (both faces together)."));
  }
  if (rec.leads.some((l) => l.blind)) {
    parts.push(h("p", { class: "notice", id: "blind-notice", text: "Blind review: look at each candidate's two faces "
      + "and record your first judgement. The score, its false-match rate, the lead's status and other reviewers' "
      + "verdicts are shown only after it." }));
  }
  const leads = leadOrder(rec).map(({ lead, letter }) => leadCard(rec, lead, letter, image));
  view(seq, parts, h("div", { id: "leads" }, leads.map((l) => l.card)));
  if (seq !== routeSeq) return;
  (async () => {
    try {
      const got = await image(`/searches/${encodeURIComponent(id)}/probe`);
      const img = h("img", { src: got.url, alt: "probe" });
      probe.replaceChildren(img);
      if (!rec.video && rec.probe_faces && rec.probe_faces.length) {
        await img.decode().catch(() => null);
        if (img.naturalWidth) probe.append(faceBoxesSvg(img.naturalWidth, img.naturalHeight, rec.probe_faces));
      }
    } catch (err) {
      probe.replaceChildren(h("div", { class: "noimage", text: noImageText(err) }));
    }
  })();
  for (const l of leads) l.load();
  if (focus !== null) document.getElementById(`lead-${focus}`)?.focus();
}

// ---------------------------------------------------------------- a lead's two faces

// the probe face and the candidate's face side by side, as aligned crops of one size when
// the service gives them (else the whole images, the probe's face boxed); zoom and pan are
// applied to both together, so that the same part of each face is in view
function compareView(rec, lead, letter, image) {
  const r = lead.rank;
  const st = { z: 1, x: 0, y: 0, whole: false };
  const faceIndex = lead.face_index;
  const kept = rec.probe_faces || [];
  const probeFace = (faceIndex === null || faceIndex === undefined ? kept[0]
    : kept.find((f, i) => (f.face_index ?? i) === faceIndex)) || null;
  const probeName = faceIndex === null || faceIndex === undefined ? "Probe face" : `Probe face ${faceIndex + 1}`;
  const candName = lead.blind ? `Candidate ${letter}` : `Candidate ${letter}: subject ${lead.subject}`;
  const pane = (name, cls, dataset) => {
    const layer = h("div", { class: "zoom-layer" }, h("div", { class: "loading", text: "loading…" }));
    const port = h("div", { class: "viewport", tabindex: 0, role: "group",
      "aria-label": `${name}: drag or use the arrow keys to pan, + and − to zoom` }, layer);
    const fig = h("figure", { class: `pane ${cls}`, dataset }, port, h("figcaption", { text: name }));
    return { fig, layer, port, paths: {}, data: { aligned: null, whole: null, error: null } };
  };
  const left = pane(probeName, "probe-face", { face: faceIndex ?? "" });
  // a withheld lead's pane shows no enrolled image, and is not one
  const right = pane(candName, lead.redacted ? "candidate withheld" : "candidate enrolled", { template: lead.template_id });
  const zoom = h("input", { type: "range", id: `zoom-${r}`, min: 1, max: 6, step: 0.25, value: 1 });
  const zoomOut = h("output", { for: `zoom-${r}`, class: "zoom-value", text: "1.00×" });
  const wholeBox = h("input", { type: "checkbox", id: `whole-${r}` });
  const marksBox = h("input", { type: "checkbox", id: `marks-${r}`, disabled: true });
  const box = h("div", { class: "compare-view", id: `compare-${r}` },
    h("div", { class: "panes" }, left.fig, right.fig),
    h("div", { class: "view-controls" },
      h("label", { class: "inline", for: `zoom-${r}` }, "Zoom both ", zoom, " ", zoomOut),
      h("button", { type: "button", class: "secondary", id: `reset-${r}`, onclick: () => { Object.assign(st, { z: 1, x: 0, y: 0 }); apply(); } }, "Reset view"),
      h("label", { class: "inline", for: `whole-${r}` }, wholeBox, " Whole images (face boxed)"),
      h("label", { class: "inline", for: `marks-${r}` }, marksBox, " Landmarks")));
  const apply = () => {
    for (const p of [left, right]) p.layer.style.transform = `translate(${st.x}px, ${st.y}px) scale(${st.z})`;
    zoom.value = String(st.z);
    zoomOut.textContent = `${st.z.toFixed(2)}×`;
  };
  zoom.addEventListener("input", () => { st.z = Number(zoom.value); apply(); });
  marksBox.addEventListener("change", () => box.classList.toggle("show-marks", marksBox.checked));
  for (const p of [left, right]) {
    let drag = null;
    p.port.addEventListener("pointerdown", (ev) => {
      drag = { x: ev.clientX - st.x, y: ev.clientY - st.y };
      p.port.setPointerCapture(ev.pointerId);
    });
    p.port.addEventListener("pointermove", (ev) => {
      if (!drag) return;
      st.x = ev.clientX - drag.x; st.y = ev.clientY - drag.y; apply();
    });
    const stop = () => { drag = null; };
    p.port.addEventListener("pointerup", stop);
    p.port.addEventListener("pointercancel", stop);
    p.port.addEventListener("keydown", (ev) => {
      const step = 20;
      const moves = { ArrowLeft: [step, 0], ArrowRight: [-step, 0], ArrowUp: [0, step], ArrowDown: [0, -step] };
      if (moves[ev.key]) { st.x += moves[ev.key][0]; st.y += moves[ev.key][1]; }
      else if (ev.key === "+" || ev.key === "=") st.z = Math.min(6, st.z + 0.25);
      else if (ev.key === "-" || ev.key === "−") st.z = Math.max(1, st.z - 0.25);
      else if (ev.key === "0") Object.assign(st, { z: 1, x: 0, y: 0 });
      else return;
      ev.preventDefault();
      apply();
    });
  }
  const show = (p, alt) => {
    const d = p.data;
    const src = st.whole || !d.aligned ? d.whole : d.aligned;
    if (!src) {
      if (d.error) p.layer.replaceChildren(h("div", { class: "noimage", text: d.error }));
      return;
    }
    const img = h("img", { src: src.url, alt, draggable: "false" });
    p.layer.replaceChildren(img);
    p.layer.style.transformOrigin = "50% 50%";
    img.decode().then(() => {
      const w = img.naturalWidth, hh = img.naturalHeight;
      if (src.box) {
        // a whole image zooms about its face, not about its middle (object-fit: contain)
        const W = p.port.clientWidth || 1, H = p.port.clientHeight || 1;
        const k = Math.min(W / w, H / hh);
        const b = src.box.box;
        const cx = (W - w * k) / 2 + ((b.left + b.right) / 2) * k;
        const cy = (H - hh * k) / 2 + ((b.top + b.bottom) / 2) * k;
        p.layer.style.transformOrigin = `${(100 * cx / W).toFixed(1)}% ${(100 * cy / H).toFixed(1)}%`;
      }
      const overlay = src.box ? faceBoxesSvg(w, hh, [src.box], { only: src.box.face_index ?? 0 })
        : svgEl("svg", { class: "overlay", viewBox: `0 0 ${w} ${hh}`, preserveAspectRatio: "xMidYMid meet", "aria-hidden": "true" });
      const pts = src.landmarks ? landmarkPoints(src.landmarks, w, hh) : null;
      if (pts) {
        const rad = Math.max(1.5, w / 90);
        overlay.append(svgEl("g", { class: "landmarks" }, ...pts.map(([x, y]) => svgEl("circle", { cx: x, cy: y, r: rad }))));
      }
      p.layer.append(overlay);
    }).catch(() => null);
  };
  const render = () => {
    show(left, `${probeName}${st.whole ? " (whole probe image)" : ""}`);
    show(right, `${candName}${st.whole ? " (whole enrolled image)" : ""}`);
    const aligned = left.data.aligned || right.data.aligned;
    const marks = [left, right].some((p) => !st.whole && p.data.aligned && p.data.aligned.landmarks);
    marksBox.disabled = !marks;
    if (!aligned) { wholeBox.checked = true; wholeBox.disabled = true; }
  };
  // the aligned crop first; the whole image only when there is no crop or it is asked for
  // (each image fetched is an image view in the audit log)
  const fillWhole = async (p) => {
    if (p.data.whole || p.data.error || !p.paths.whole) return;
    try { p.data.whole = { ...(await image(p.paths.whole)), landmarks: null, box: p.paths.box }; }
    catch (err) { p.data.error = noImageText(err); }
  };
  const fill = async (p) => {
    if (p.paths.aligned) {
      try {
        const got = await image(p.paths.aligned);
        let landmarks = got.landmarks;
        if (!landmarks) landmarks = await api(`${p.paths.aligned}.json`).catch(() => null);
        p.data.aligned = { url: got.url, landmarks };
      } catch (err) {
        if (err.status === 403) { p.data.error = noImageText(err); return; }
      }
    }
    if (!p.data.aligned) await fillWhole(p);
  };
  wholeBox.addEventListener("change", async () => {
    st.whole = wholeBox.checked;
    if (st.whole) await Promise.all([fillWhole(left), fillWhole(right)]);
    render();
  });
  const load = async () => {
    const sid = encodeURIComponent(rec.search_id);
    const g = encodeURIComponent(lead.gallery);
    const fi = faceIndex ?? (probeFace ? probeFace.face_index ?? 0 : 0);
    left.paths = { aligned: rec.video ? null : `/searches/${sid}/probe/faces/${fi}/aligned`,
      whole: `/searches/${sid}/probe`, box: rec.video ? null : probeFace };
    if (lead.redacted || !lead.template_id) {
      right.paths = {};
      right.data.error = lead.redacted ? `enrolled images withheld by ${ownerOf(rec, lead)} until released` : "no enrolled image";
    } else {
      right.paths = { aligned: `/galleries/${g}/templates/${lead.template_id}/aligned`,
        whole: `/galleries/${g}/templates/${lead.template_id}/image`, box: null };
    }
    await Promise.all([fill(left), fill(right)]);
    render();
  };
  return { box, load };
}

// landmarks as the service gives them ("x,y;x,y;…" in X-Landmarks, or JSON: [[x, y], …],
// [{x, y}, …], {landmarks|points: …});
// coordinates in [0, 1] are taken as fractions of the image
function landmarkPoints(raw, w, hh) {
  let v = raw;
  if (typeof v === "string" && /^[\s\d.,;-]+$/.test(v)) {
    // the X-Landmarks header: "x,y;x,y;…" in crop pixels
    v = v.split(";").filter((p) => p.trim()).map((p) => p.split(",").map(Number));
  } else if (typeof v === "string") { try { v = JSON.parse(v); } catch (e) { return null; } }
  if (v && !Array.isArray(v) && typeof v === "object") v = v.landmarks || v.points || null;
  if (!Array.isArray(v)) return null;
  let pts = v.map((p) => (Array.isArray(p) ? [Number(p[0]), Number(p[1])]
    : p && typeof p === "object" ? [Number(p.x), Number(p.y)] : null))
    .filter((p) => p && Number.isFinite(p[0]) && Number.isFinite(p[1]));
  if (pts.length && pts.every(([x, y]) => x >= 0 && x <= 1 && y >= 0 && y <= 1)) pts = pts.map(([x, y]) => [x * w, y * hh]);
  return pts.length ? pts : null;
}

// ---------------------------------------------------------------- organisations on a lead

// "watchlist (metro, redacted)": whose each gallery is, when the search says
function galleriesText(rec) {
  const owners = rec.gallery_owners || {};
  const redacted = rec.redacted_galleries || [];
  return rec.galleries.map((g) => {
    const notes = [owners[g], redacted.includes(g) ? "redacted" : null].filter(Boolean);
    return notes.length ? `${g} (${notes.join(", ")})` : g;
  }).join(", ");
}

function ownerOf(rec, lead) {
  return lead.owner_org || (rec.gallery_owners || {})[lead.gallery] || "its owner";
}

// whether the lead's subject is still withheld from the searching organisation: the reader
// is then either of that organisation (``redacted``: the subject reads "[redacted]") or of the
// gallery's owner, who sees the subject and may release it
function withheld(rec, lead) {
  if (lead.released_by) return false;
  if (lead.redacted) return true;
  if (typeof lead.withheld === "boolean") return lead.withheld;
  return (rec.redacted_galleries || []).includes(lead.gallery);
}

function requesterOf(rec) { return rec.requester_org || `${rec.actor}'s organisation`; }

// whose the lead is and whether its subject is shown to the searching organisation
function ownershipLine(rec, lead) {
  const owner = ownerOf(rec, lead);
  const parts = [h("span", { class: "owner", text: `owned by ${owner}` })];
  if (lead.redacted) {
    parts.push(" · ", h("span", { class: "redaction", dataset: { state: "withheld" },
      text: `${lead.subject} — withheld by ${owner} until released` }));
  } else if (lead.released_by) {
    parts.push(" · ", h("span", { class: "redaction", dataset: { state: "released" },
      text: `released by ${lead.released_by} at ${when(lead.released_at)}` }));
  } else if (withheld(rec, lead)) {
    parts.push(" · ", h("span", { class: "redaction", dataset: { state: "withheld-from-requester" },
      text: `withheld from ${requesterOf(rec)} until a reviewer of ${owner} releases it` }));
  }
  return h("p", { class: "ownership", id: `ownership-${lead.rank}` }, parts);
}

// a reviewer of the gallery's owner may release a withheld lead to the searching organisation
function mayRelease(rec, lead) {
  return hasRole("reviewer") && !lead.redacted && withheld(rec, lead) && me.org
    && ownerOf(rec, lead) === me.org;
}

function releaseForm(rec, lead) {
  const noteId = `release-note-${lead.rank}`;
  const form = h("form", { class: "release", dataset: { rank: lead.rank } },
    h("label", { for: noteId }, `Why ${requesterOf(rec)} may see this subject (required) `),
    h("textarea", { name: "note", id: noteId, required: true }),
    h("p", { class: "muted", text: "Releasing shows the subject to the searching organisation; it is recorded in the audit log and cannot be undone." }),
    h("button", { type: "submit", id: `release-${lead.rank}` }, `Release to ${requesterOf(rec)}`));
  form.addEventListener("submit", (ev) => {
    ev.preventDefault();
    guarded(async () => {
      const button = form.querySelector("button[type=submit]");
      button.disabled = true;
      try {
        await api(`/searches/${encodeURIComponent(rec.search_id)}/leads/${lead.rank}/release`, {
          method: "POST", json: { note: formValue(form, "note") } });
      } finally { button.disabled = false; }
      await searchDetailView(nextSeq(), rec.search_id);
    });
  });
  return form;
}

// what a lead's score is: an AS-normalised score must not pass for a cosine similarity
function scoreName(normalisation) {
  if (normalisation === "asnorm") return "AS-normalised score (not a cosine)";
  if (normalisation === "none") return "Cosine similarity";
  return "Score";
}

// who a lead still needs under the two-person rule ("" when it needs nobody)
function stillNeeded(rec, lead) {
  if (lead.blind || lead.status === null || !lead.open) return "";
  const n = lead.confirmations_needed;
  if (!n) return "";
  const others = lead.confirmed_by.length ? ` other than ${lead.confirmed_by.join(" and ")}` : "";
  const notSearcher = lead.confirmed_by.length ? "" : ` (not the searcher, ${rec.actor})`;
  return `needs ${n} more confirmation${n > 1 ? "s" : ""} from ${n > 1 ? "different reviewers" : "a reviewer"}${others}${notSearcher}`;
}

const JUDGEMENTS = [["same", "Same person"], ["different", "Different people"], ["unsure", "Cannot tell"]];
const VERDICTS = [["confirmed", "Confirmed: the same person"], ["rejected", "Rejected: not the same person"],
  ["inconclusive", "Inconclusive"]];

function leadCard(rec, lead, letter, image) {
  const r = lead.rank;
  const titleId = `lead-title-${r}`;
  const compare = compareView(rec, lead, letter, image);
  const title = lead.blind ? h("h2", { id: titleId, text: `Candidate ${letter}` })
    : h("h2", { id: titleId }, `Candidate ${letter} · lead ${r}: subject ${lead.subject} `,
      h("span", { class: "muted", text: `(gallery ${lead.gallery})` }));
  const faceOf = lead.face_index === null || lead.face_index === undefined ? null
    : h("p", { class: "face-of", dataset: { face: lead.face_index } }, "Candidate for ",
      h("b", { text: `probe face ${lead.face_index + 1}` }),
      (rec.probe_faces || []).length > 1 ? ` of ${rec.probe_faces.length} (numbered on the probe image)` : "");
  const side = h("div", { class: "lead-side" });
  const card = h("section", { class: "lead", id: `lead-${r}`, tabindex: -1, "aria-labelledby": titleId,
    dataset: { rank: r, letter, blind: String(Boolean(lead.blind)) } },
  title, faceOf, h("div", { class: "lead-body" }, compare.box, side));
  const mayJudge = reviewsHere(rec) && !lead.redacted && me.grants[lead.gallery] && me.grants[lead.gallery] !== "search";
  side.append(ownershipLine(rec, lead));
  if (lead.blind) {
    side.append(mayJudge ? firstLookForm(rec, lead, letter)
      : h("p", { class: "muted", text: "The score is shown after a first look at the two faces." }));
  } else {
    side.append(
      h("p", { class: "metric" }, `${scoreName(rec.normalisation)} `, h("b", { text: lead.score === null ? "—" : lead.score.toFixed(4) }),
        rec.threshold == null ? null : ` (threshold ${rec.threshold.toFixed(4)})`,
        " · estimated false-match rate ", h("b", { class: "fmr", text: fmrText(lead.fmr, lead.fmr_upper_bound) }),
        " · status ", lead.status ? statusBadge(lead.status, lead) : "—"),
      stillNeeded(rec, lead) ? h("p", { class: "needs", id: `needs-${r}`, text: stillNeeded(rec, lead) }) : null,
      lead.first_looks.length ? h("table", { class: "first-looks readable" },
        h("caption", { text: "First looks (before the score)" }),
        h("tr", {}, ["reviewer", "judgement", "when"].map((t) => h("th", { scope: "col", text: t }))),
        lead.first_looks.map((f) => h("tr", {}, h("td", { text: f.reviewer }), h("td", { text: f.judgement }),
          h("td", { text: when(f.looked_at) })))) : null,
      lead.decisions.length ? h("table", { class: "decisions readable" },
        h("caption", { text: "Verdicts" }),
        h("tr", {}, ["reviewer", "verdict", "note", "when"].map((t) => h("th", { scope: "col", text: t }))),
        lead.decisions.map((d) => h("tr", {}, h("td", { text: d.reviewer }), h("td", { text: d.verdict }),
          h("td", { class: "wrap", text: d.note }), h("td", { text: when(d.decided_at) }))))
        : h("p", { class: "muted", text: "No review decision yet." }));
    if (!lead.redacted && lead.template_id) side.append(alsoEnrolled(lead));
    if (mayJudge) side.append(decisionForm(rec, lead, letter));
  }
  if (mayRelease(rec, lead)) side.append(releaseForm(rec, lead));
  if (lead.redacted && hasRole("reviewer") && me.id !== rec.actor) {
    side.append(h("p", { class: "muted", text: `Only reviewers of ${ownerOf(rec, lead)} review this lead until it is released.` }));
  } else if (me.id === rec.actor) {
    side.append(h("p", { class: "muted", text: "You made this search: someone else reviews it." }));
  }
  return { card, load: compare.load };
}

// the subject's other enrolled images, fetched only when opened
function alsoEnrolled(lead) {
  const holder = h("div", { class: "compare" });
  const details = h("details", { class: "also" }, h("summary", { text: "Other enrolled images of this subject" }), holder);
  let loaded = false;
  details.addEventListener("toggle", () => {
    if (!details.open || loaded) return;
    loaded = true;
    fillLeadImages(lead, holder);
  });
  return details;
}

async function fillLeadImages(lead, holder) {
  let templates = [];
  holder.replaceChildren(h("p", { class: "muted", text: "loading…" }));
  try {
    const subject = await api(`/galleries/${encodeURIComponent(lead.gallery)}/subjects/${encodeURIComponent(lead.subject)}`);
    // GET .../subjects/x/export is the export of "x": never show another subject's faces
    if (subject.external_id !== lead.subject) throw new Error("subject not addressable by its id");
    templates = subject.templates;
  } catch (err) {
    holder.replaceChildren(h("div", { class: "noimage", text: err.status === 403
      ? "other images hidden: listing a subject needs a view_images grant" : err.status === 404
        ? "subject no longer enrolled" : err.message }));
    return;
  }
  const shown = templates.filter((t) => t.id !== lead.template_id).slice(0, 4);
  if (!shown.length) { holder.replaceChildren(h("p", { class: "muted", text: "No other image of this subject." })); return; }
  holder.replaceChildren(...shown.map((t) => {
    const box = h("div", {}, h("div", { class: "noimage", text: "loading…" }));
    const flags = t.quality_flags.length ? `flags: ${t.quality_flags.join(", ")}` : "no quality flags";
    const q = t.quality_score === null ? "" : `quality ${t.quality_score.toFixed(0)}/100, `;
    const fig = h("figure", { class: "also-enrolled", dataset: { template: t.id } }, box,
      h("figcaption", { text: `also enrolled · ${q}${flags}` }));
    if (t.image_kept) imageInto(box, `/galleries/${encodeURIComponent(lead.gallery)}/templates/${t.id}/image`, `enrolled ${t.id}`);
    else box.replaceChildren(h("div", { class: "noimage", text: "no image kept" }));
    return fig;
  }));
}

// a radio group with nothing chosen: the reviewer picks, nothing is picked for them
function radioGroup(legend, name, idPrefix, options) {
  return h("fieldset", { class: "choices" }, h("legend", { text: legend }),
    options.map(([value, text]) => h("label", { class: "inline", for: `${idPrefix}-${value}` },
      h("input", { type: "radio", name, value, id: `${idPrefix}-${value}`, required: true }), ` ${text}`)));
}

function reloadAt(rec, lead) { return searchDetailView(nextSeq(), rec.search_id, { focus: lead.rank }); }

function firstLookForm(rec, lead, letter) {
  const r = lead.rank;
  const form = h("form", { class: "first-look", dataset: { rank: r } },
    radioGroup(`First look: do the two faces of candidate ${letter} show the same person?`, "judgement", `look-${r}`, JUDGEMENTS),
    h("p", { class: "muted", text: "Judge the faces alone. The score, its false-match rate and other reviewers' "
      + "verdicts are shown after your first look, which is recorded in the audit log." }),
    h("button", { type: "submit", id: `first-look-${r}` }, "Record first look"));
  form.addEventListener("submit", (ev) => {
    ev.preventDefault();
    guarded(async () => {
      const chosen = form.querySelector("input[name=judgement]:checked");
      if (!chosen) throw new Error("choose same, different or cannot tell");
      await api(`/searches/${encodeURIComponent(rec.search_id)}/leads/${r}/first-look`, {
        method: "POST", json: { judgement: chosen.value } });
      await reloadAt(rec, lead);
    });
  });
  return form;
}

function decisionForm(rec, lead, letter) {
  const r = lead.rank;
  const form = h("form", { class: "decide", dataset: { rank: r } },
    radioGroup(`Verdict on candidate ${letter}`, "verdict", `verdict-${r}`, VERDICTS),
    h("label", { for: `note-${r}` }, "Note: what in the two faces supports your verdict (required) "),
    h("textarea", { name: "note", id: `note-${r}`, required: true }),
    h("button", { type: "submit", id: `decide-${r}` }, "Record verdict"));
  form.addEventListener("submit", (ev) => {
    ev.preventDefault();
    guarded(async () => {
      const chosen = form.querySelector("input[name=verdict]:checked");
      if (!chosen) throw new Error("choose a verdict");
      const note = formValue(form, "note");
      if (!note) throw new Error("a verdict needs a note");
      await api(`/searches/${encodeURIComponent(rec.search_id)}/leads/${r}/decisions`, {
        method: "POST", json: { verdict: chosen.value, note } });
      await reloadAt(rec, lead);
    });
  });
  return form;
}

// per lead of a listed search: its state, or that it awaits the reader's first look
function leadsText(r) {
  const blind = r.leads.filter((l) => l.blind).length;
  const seen = r.leads.filter((l) => !l.blind).map((l) => {
    const owner = l.owner_org ? ` (${l.owner_org}${l.redacted ? ", redacted" : ""})` : "";
    const needs = stillNeeded(r, l);
    return `lead ${l.rank}: ${(l.status || "unknown").replaceAll("_", " ")}${owner}${needs ? ` — ${needs}` : ""}`;
  });
  if (blind) seen.push(`${blind} lead(s) awaiting your first look`);
  return seen.join("; ") || "none";
}

function searchesTable(items, id) {
  if (!items.length) return h("p", { class: "muted", id, text: "Nothing here." });
  return h("table", { id, class: "readable" }, h("tr", {}, ["when", "by", "purpose", "case", "galleries", "leads"].map((t) => h("th", { scope: "col", text: t }))),
    items.map((r) => h("tr", { dataset: { search: r.search_id } },
      h("td", {}, h("a", { href: `#/searches/${r.search_id}`, text: when(r.created_at) })),
      h("td", { text: r.actor }), h("td", { text: r.purpose }), h("td", { class: "code", text: r.case_ref }),
      h("td", { text: r.galleries.join(", ") }),
      h("td", { class: "leads-state", text: leadsText(r) }))));
}

// a "next page" button, and "first page" once past it
function pager(idPrefix, page, cursor, go) {
  return h("p", { class: "pager" },
    cursor ? h("button", { type: "button", class: "secondary", id: `${idPrefix}-first`, onclick: () => guarded(() => go(null)) }, "First page") : null,
    cursor ? " " : null,
    page.next_cursor ? h("button", { type: "button", class: "secondary", id: `${idPrefix}-next`,
      onclick: () => guarded(() => go(page.next_cursor)) }, "Next page") : null);
}

const QUEUE_PAGE = 20;

async function queueView(seq, only = {}) {
  const { gallery = "", since = "", until = "", cursor = null } = only;
  const q = new URLSearchParams({ limit: String(QUEUE_PAGE) });
  if (gallery) q.set("gallery", gallery);
  if (since) q.set("since", dayStart(since));
  if (until) q.set("until", dayStart(until));
  if (cursor) q.set("cursor", cursor);
  const [page, galleries] = await Promise.all([api(`/reviews/queue?${q}`), api("/galleries").catch(() => ({ items: [] }))]);
  const form = h("form", { id: "queue-filters", class: "card" },
    h("h2", { text: "Filter" }),
    h("label", { class: "inline", for: "queue-gallery" }, "Gallery ", h("select", { id: "queue-gallery", name: "gallery" },
      h("option", { value: "", text: "any gallery" }),
      galleries.items.map((g) => h("option", { value: g.name, text: g.name, selected: g.name === gallery })))),
    h("label", { class: "inline", for: "queue-since" }, "Made since ", h("input", { type: "date", id: "queue-since", name: "since", value: since })),
    h("label", { class: "inline", for: "queue-until" }, "Older than ", h("input", { type: "date", id: "queue-until", name: "until", value: until })),
    h("button", { type: "submit", id: "queue-filter" }, "Apply"));
  form.addEventListener("submit", (ev) => {
    ev.preventDefault();
    guarded(() => queueView(nextSeq(), { gallery: formValue(form, "gallery"), since: formValue(form, "since"), until: formValue(form, "until") }));
  });
  view(seq, h("h1", { text: "Awaiting your review" }), form,
    h("p", { class: "muted", text: "Oldest first." }), searchesTable(page.items, "queue"),
    pager("queue", page, cursor, (c) => queueView(nextSeq(), { gallery, since, until, cursor: c })));
}

async function searchesView(seq, cursor = null) {
  const page = await api(`/searches?limit=${QUEUE_PAGE}${cursor ? `&cursor=${encodeURIComponent(cursor)}` : ""}`);
  view(seq, h("h1", { text: hasRole("auditor") ? "All searches" : "Your searches" }), searchesTable(page.items, "searches"),
    pager("searches", page, cursor, (c) => searchesView(nextSeq(), c)));
}

// j / n: the next lead, k / p: the previous one (not while typing in a field)
document.addEventListener("keydown", (ev) => {
  if (ev.defaultPrevented || ev.ctrlKey || ev.metaKey || ev.altKey) return;
  const forward = ev.key === "j" || ev.key === "n";
  if (!forward && ev.key !== "k" && ev.key !== "p") return;
  const t = ev.target;
  if (t && t.matches && t.matches("textarea, select, [contenteditable], input:not([type=radio]):not([type=checkbox]):not([type=range]):not([type=button]):not([type=submit])")) return;
  const cards = [...document.querySelectorAll("#leads > .lead")];
  if (!cards.length) return;
  const at = cards.findIndex((c) => c.contains(document.activeElement));
  const next = at < 0 ? (forward ? 0 : cards.length - 1) : Math.min(cards.length - 1, Math.max(0, at + (forward ? 1 : -1)));
  ev.preventDefault();
  cards[next].focus();
  cards[next].scrollIntoView({ block: "start" });
});

// ---------------------------------------------------------------- audit

async function auditView(seq, after) {
  const head = await api("/audit/head");
  const start = after === undefined ? Math.max(0, head.seq - 50) : after;
  const page = await api(`/audit/entries?limit=50&cursor=${start}`);
  const verifyOut = h("p", { id: "audit-verify-result" });
  const verify = h("button", { type: "button", id: "audit-verify", onclick: () => guarded(async () => {
    const rep = await api("/audit/verify");
    verifyOut.textContent = rep.ok ? `Chain OK: ${rep.entries} entries, ${rep.signed_entries} signed.`
      : `Chain BROKEN at entry ${rep.first_bad_position}: ${rep.reason}`;
    verifyOut.dataset.ok = String(rep.ok);
  }) }, "Verify the chain");
  const exportButton = h("button", { type: "button", class: "secondary", id: "audit-export",
    onclick: () => guarded(async () => {
      const res = await api("/audit/export", { raw: true });
      const url = URL.createObjectURL(await res.blob());
      const a = h("a", { href: url, download: "audit.jsonl", text: "download" });
      document.body.append(a); a.click(); a.remove();
    }) }, "Export JSONL");
  const rows = page.items.slice().reverse().map((e) => h("tr", { dataset: { seq: e.seq, op: e.operation } },
    h("td", { class: "metric", text: e.seq }), h("td", { text: when(e.timestamp) }), h("td", { text: e.actor }),
    h("td", { text: e.operation }), h("td", { text: e.purpose || "" }), h("td", { class: "code", text: e.case_ref || "" }),
    h("td", { text: e.galleries.join(", ") }), h("td", { class: "wrap", text: summary(e) })));
  const report = reportForm();
  view(seq, h("h1", { text: "Audit log" }), h("p", {}, verify, " ", exportButton), verifyOut,
    h("table", { id: "audit-entries", class: "readable" }, h("tr", {}, ["#", "when", "actor", "operation", "purpose", "case", "galleries", "details"]
      .map((t) => h("th", { scope: "col", text: t }))), rows),
    start > 0 ? h("button", { class: "secondary", type: "button",
      onclick: () => guarded(() => auditView(nextSeq(), Math.max(0, start - 50))) }, "Older entries") : null,
    report);
}

function summary(e) {
  const d = e.details || {};
  if (e.operation === "review") return `lead ${d.rank} of ${String(d.search_id).slice(0, 8)}: ${d.verdict} → ${d.status}`;
  if (e.operation === "search") return `${e.candidates.length} lead(s), ${d.templates_searched} templates`;
  if (e.operation === "video_search") {
    return `${d.tracks_searched} track(s) searched, ${(d.track_search_ids || []).length} with leads, `
      + `expected false alerts ${d.expected_false_alerts}`;
  }
  if (e.operation === "enrol") return d.subject ? `subject ${d.subject}` : `${d.enrolled} enrolled`;
  if (e.operation === "erasure_receipt") return `subject ${d.subject}: ${(d.template_ids || []).length} template(s)`;
  const keys = Object.keys(d);
  const short = (v) => (typeof v === "string" && /^[0-9a-f]{32,64}$/.test(v) ? `${v.slice(0, 12)}…` : v);
  return keys.slice(0, 4).map((k) => `${k}=${JSON.stringify(short(d[k]))}`).join(" ");
}

function reportForm() {
  const out = h("div", { id: "audit-report" });
  const form = h("form", { class: "card" }, h("h2", { text: "Report of use" }),
    h("label", { class: "inline" }, "From ", h("input", { type: "date", name: "from" })),
    h("label", { class: "inline" }, "To ", h("input", { type: "date", name: "to" })),
    h("button", { type: "submit", id: "audit-report-submit" }, "Report"), out);
  form.addEventListener("submit", (ev) => {
    ev.preventDefault();
    guarded(async () => {
      const q = new URLSearchParams();
      if (formValue(form, "from")) q.set("from", formValue(form, "from"));
      if (formValue(form, "to")) q.set("to", formValue(form, "to"));
      const rep = await api(`/audit/report?${q}`);
      out.replaceChildren(h("pre", { text: JSON.stringify(rep, null, 2) }));
    });
  });
  return form;
}

// ---------------------------------------------------------------- reports, users

async function reportsView(seq) {
  const list = await api("/reports");
  const frame = h("iframe", { class: "report", sandbox: "", title: "evaluation report", hidden: true });
  const items = list.items.map((r) => h("li", {}, h("a", { href: "#", onclick: (ev) => {
    ev.preventDefault();
    guarded(async () => {
      const res = await api(`/reports/${encodeURIComponent(r.name)}`, { raw: true });
      frame.srcdoc = await res.text();
      frame.hidden = false;
    });
  }, text: r.name }), h("span", { class: "muted", text: ` · ${when(r.modified_at)} · ${Math.round(r.size_bytes / 1024)} KiB` })));
  view(seq, h("h1", { text: "Evaluation reports" }),
    items.length ? h("ul", { id: "reports" }, items)
      : h("p", { class: "muted", text: "No report yet: write one with faceledger eval … --report <data-dir>/reports/NAME.html" }),
    frame);
}

async function usersView(seq) {
  const users = await api("/users");
  const out = h("div", { id: "user-key" });
  const form = h("form", { class: "card", id: "user-create" }, h("h2", { text: "Add a user" }),
    h("label", {}, "User id ", h("input", { type: "text", name: "id", required: true })),
    h("fieldset", {}, h("legend", { text: "Roles" }), ["admin", "enroller", "searcher", "reviewer", "auditor"]
      .map((r) => h("label", { class: "inline" }, h("input", { type: "checkbox", name: "roles", value: r }), ` ${r}`))),
    h("button", { type: "submit" }, "Add user and issue a key"), out);
  form.addEventListener("submit", (ev) => {
    ev.preventDefault();
    guarded(async () => {
      const roles = [...form.querySelectorAll("input[name=roles]:checked")].map((b) => b.value);
      const u = await api("/users", { method: "POST", json: { id: formValue(form, "id"), roles } });
      const key = await api(`/users/${encodeURIComponent(u.id)}/keys`, { method: "POST", json: { label: "issued in the UI" } });
      out.replaceChildren(h("p", {}, `Key for ${u.id} (shown once): `, h("span", { class: "token", text: key.token })));
    });
  });
  view(seq, h("h1", { text: "Users" }), h("table", { id: "users" },
    h("tr", {}, ["id", "roles", "grants", "active"].map((t) => h("th", { text: t }))),
    users.map((u) => h("tr", {}, h("td", { text: u.id }), h("td", { text: u.roles.join(", ") }),
      h("td", { text: Object.entries(u.grants).map(([g, l]) => `${g}=${l}`).join(", ") }),
      h("td", { text: u.active ? "yes" : "no" })))), form);
}

// ---------------------------------------------------------------- organisations, purposes, agreements

// a labelled field: the label names the control by its id (screen readers, clicking the text)
function field(labelText, control, hint) {
  return h("p", { class: "field" }, h("label", { for: control.id, text: labelText }), control,
    hint ? h("span", { class: "hint muted", id: `${control.id}-hint`, text: hint }) : null);
}

function myOrg() { return me.org || "default"; }

async function orgsView(seq) {
  const orgs = await api("/orgs");
  const form = h("form", { id: "org-create", class: "card" }, h("h2", { text: "Create an organisation" }),
    field("Organisation id ", h("input", { type: "text", name: "org_id", id: "org-id", required: true,
      autocomplete: "off", pattern: "[A-Za-z0-9][A-Za-z0-9._@\\-]{0,63}", "aria-describedby": "org-id-hint" }),
    " a-z, 0-9 and . _ @ - ; it cannot change later"),
    field("Display name ", h("input", { type: "text", name: "display_name", id: "org-name", required: true })),
    h("p", { class: "muted", text: "Its first administrator is added on the Users page." }),
    h("button", { type: "submit", id: "org-submit" }, "Create organisation"));
  form.addEventListener("submit", (ev) => {
    ev.preventDefault();
    guarded(async () => {
      await api("/orgs", { method: "POST", json: {
        org_id: formValue(form, "org_id"), display_name: formValue(form, "display_name") } });
      await orgsView(nextSeq());
    });
  });
  view(seq, h("h1", { text: "Organisations" }),
    h("table", { id: "orgs" }, h("tr", {}, ["id", "name", "created"].map((t) => h("th", { text: t }))),
      orgs.map((o) => h("tr", { dataset: { org: o.org_id } }, h("td", { text: o.org_id }),
        h("td", { text: o.display_name }), h("td", { text: o.created_at ? when(o.created_at) : "—" })))),
    hasRole("operator") ? form : null);
}

async function purposesView(seq) {
  const org = myOrg();
  const purposes = await api(`/orgs/${encodeURIComponent(org)}/purposes`);
  const form = h("form", { id: "purpose-create", class: "card" }, h("h2", { text: "Add a purpose category" }),
    field("Name ", h("input", { type: "text", name: "name", id: "purpose-name", required: true, maxlength: 256 })),
    field("Description ", h("textarea", { name: "description", id: "purpose-description" })),
    h("button", { type: "submit", id: "purpose-submit" }, "Add purpose"));
  form.addEventListener("submit", (ev) => {
    ev.preventDefault();
    guarded(async () => {
      await api(`/orgs/${encodeURIComponent(org)}/purposes`, { method: "POST", json: {
        name: formValue(form, "name"), description: formValue(form, "description") } });
      await purposesView(nextSeq());
    });
  });
  view(seq, h("h1", { text: `Purposes of ${org}` }),
    h("p", { class: "notice", text: "An agreement names the purposes a partner's search of your gallery may state; "
      + "a search stating any other purpose is refused." }),
    purposes.length ? h("table", { id: "purposes" }, h("tr", {}, ["name", "description"].map((t) => h("th", { text: t }))),
      purposes.map((p) => h("tr", { dataset: { purpose: p.name } }, h("td", { text: p.name }), h("td", { text: p.description }))))
      : h("p", { class: "muted", id: "purposes", text: "No purpose category yet." }),
    hasRole("admin") ? form : null);
}

// "2025-03-01" (a date input, local time) as an instant with its zone, ISO 8601
function dayStart(day) { return new Date(`${day}T00:00`).toISOString(); }

function isoDay(d) {
  const pad = (n) => String(n).padStart(2, "0");
  return `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())}`;
}

function stateBadge(state) { return h("span", { class: "state", dataset: { state }, text: state }); }

async function agreementsView(seq) {
  const org = myOrg();
  const admin = hasRole("admin");
  const [agreements, galleries, orgs, purposes] = await Promise.all([
    api("/agreements"),
    admin ? api("/galleries") : { items: [] },
    api("/orgs").catch(() => []),
    admin ? api(`/orgs/${encodeURIComponent(org)}/purposes`) : [],
  ]);
  // own galleries: those the organisation owns, not those shared with it
  const sharedWithUs = new Set(agreements.filter((a) => a.grantee_org === org && a.owner_org !== org).map((a) => a.gallery));
  const own = galleries.items.filter((g) => (g.owner_org ? g.owner_org === org : !sharedWithUs.has(g.name)));
  const partners = orgs.map((o) => o.org_id).filter((o) => o !== org);
  const rows = agreements.map((a) => h("tr", { dataset: { agreement: a.agreement_id, gallery: a.gallery, grantee: a.grantee_org } },
    h("td", { text: a.agreement_id }), h("td", { text: a.gallery }), h("td", { text: `${a.owner_org} → ${a.grantee_org}` }),
    h("td", { text: a.level }), h("td", { text: a.purposes.join(", ") }), h("td", { text: a.legal_basis }),
    h("td", { text: `${when(a.starts_at)} – ${when(a.expires_at)}` }),
    h("td", { text: a.max_candidates == null ? "no cap" : a.max_candidates }),
    h("td", { text: a.redacted ? "redacted until released" : "subjects shown" }),
    h("td", {}, stateBadge(a.state), a.revoked_at ? h("div", { class: "muted", text: `revoked by ${a.revoked_by} at ${when(a.revoked_at)}` }) : null),
    h("td", {}, admin && a.owner_org === org && (a.state === "active" || a.state === "pending") ? agreementActions(a) : null)));
  view(seq, h("h1", { text: `Sharing agreements of ${org}` }),
    rows.length ? h("table", { id: "agreements" }, h("tr", {}, ["id", "gallery", "owner → grantee", "level", "purposes",
      "legal basis", "in force", "max candidates", "leads", "state", ""].map((t) => h("th", { text: t }))), rows)
      : h("p", { class: "muted", id: "agreements", text: "No agreement yet." }),
    admin ? agreementForm(org, own, partners, purposes) : null);
}

function agreementActions(a) {
  const id = a.agreement_id;
  const change = h("form", { class: "agreement-expiry" },
    field("New expiry (00:00 local time on) ", h("input", { type: "date", name: "expires", id: `expires-${id}`, required: true })),
    h("button", { type: "submit", class: "secondary", id: `change-${id}` }, "Change expiry"));
  change.addEventListener("submit", (ev) => {
    ev.preventDefault();
    guarded(async () => {
      await api(`/agreements/${encodeURIComponent(id)}`, { method: "PATCH", json: { expires_at: dayStart(formValue(change, "expires")) } });
      await agreementsView(nextSeq());
    });
  });
  const revoke = h("form", { class: "agreement-revoke" },
    field("Reason for revoking (required) ", h("input", { type: "text", name: "reason", id: `reason-${id}`, required: true })),
    h("button", { type: "submit", class: "danger", id: `revoke-${id}` }, "Revoke now"));
  revoke.addEventListener("submit", (ev) => {
    ev.preventDefault();
    guarded(async () => {
      await api(`/agreements/${encodeURIComponent(id)}/revoke`, { method: "POST", json: { reason: formValue(revoke, "reason") } });
      await agreementsView(nextSeq());
    });
  });
  return h("details", { class: "agreement-actions" }, h("summary", { text: "Change or revoke" }), change, revoke);
}

function agreementForm(org, own, partners, purposes) {
  const list = h("datalist", { id: "agreement-orgs" }, partners.map((o) => h("option", { value: o })));
  const form = h("form", { id: "agreement-create", class: "card" }, h("h2", { text: "Share a gallery with another organisation" }),
    field("Gallery ", h("select", { name: "gallery", id: "agreement-gallery", required: true },
      h("option", { value: "", text: own.length ? "— choose one of your galleries —" : "— no gallery of yours —" }),
      own.map((g) => h("option", { value: g.name, text: g.name })))),
    field("Organisation it is shared with ", h("input", { type: "text", name: "grantee_org", id: "agreement-grantee",
      required: true, list: "agreement-orgs", autocomplete: "off" })),
    list,
    h("fieldset", { id: "agreement-purposes" }, h("legend", { text: "Purposes a search may state (at least one)" }),
      purposes.length ? purposes.map((p) => h("label", { class: "inline" },
        h("input", { type: "checkbox", name: "purposes", value: p.name }), ` ${p.name}`))
        : h("p", { class: "muted" }, "No purpose category yet: add one on the ", h("a", { href: "#/purposes", text: "Purposes" }), " page.")),
    field("Legal basis ", h("input", { type: "text", name: "legal_basis", id: "agreement-basis", required: true })),
    field("Starts (00:00 local time on) ", h("input", { type: "date", name: "starts", id: "agreement-starts", required: true, value: isoDay(new Date()) })),
    field("Expires (00:00 local time on) ", h("input", { type: "date", name: "expires", id: "agreement-expires", required: true })),
    h("fieldset", { id: "agreement-level" }, h("legend", { text: "What the partner may do" }),
      h("label", {}, h("input", { type: "radio", name: "level", value: "search", id: "agreement-level-search", checked: true }),
        " search: scores and subject ids, no images"),
      h("label", {}, h("input", { type: "radio", name: "level", value: "view_images", id: "agreement-level-view" }),
        " view_images: also the enrolled images")),
    field("Most candidates per face (empty: no cap) ", h("input", { type: "number", name: "max_candidates", id: "agreement-max", min: 1, max: 1000 })),
    h("p", { class: "field" }, h("label", {}, h("input", { type: "checkbox", name: "redacted", id: "agreement-redacted", checked: true }),
      ` Redact leads: the partner sees no subject until a reviewer of ${org} releases it`)),
    h("button", { type: "submit", id: "agreement-submit" }, "Create agreement"));
  form.addEventListener("submit", (ev) => {
    ev.preventDefault();
    guarded(async () => {
      const purposesChosen = [...form.querySelectorAll("input[name=purposes]:checked")].map((b) => b.value);
      if (!purposesChosen.length) throw new Error("choose at least one purpose");
      const max = formValue(form, "max_candidates");
      await api("/agreements", { method: "POST", json: {
        gallery: formValue(form, "gallery"), grantee_org: formValue(form, "grantee_org"),
        purposes: purposesChosen, legal_basis: formValue(form, "legal_basis"),
        starts_at: dayStart(formValue(form, "starts")), expires_at: dayStart(formValue(form, "expires")),
        level: form.querySelector("input[name=level]:checked").value,
        max_candidates: max ? Number(max) : null, redacted: form.elements.namedItem("redacted").checked } });
      await agreementsView(nextSeq());
    });
  });
  return form;
}

// ---------------------------------------------------------------- cluster sets

// one fetch (one audited view) per kept face crop and tab: re-drawing after an action reuses it
const clusterCrops = new Map();

function clusterCrop(setId, face) {
  const path = `/cluster-sets/${encodeURIComponent(setId)}/faces/${face}/crop`;
  if (!clusterCrops.has(path)) {
    clusterCrops.set(path, api(path, { raw: true }).then(async (res) => URL.createObjectURL(await res.blob())));
  }
  return clusterCrops.get(path);
}

async function cropInto(holder, setId, face) {
  try {
    holder.replaceChildren(h("img", { src: await clusterCrop(setId, face), alt: `face ${face}` }));
  } catch (err) {
    holder.replaceChildren(h("div", { class: "noimage", text: noImageText(err) }));
  }
}

function clusterName(c) { return c.label ? `Cluster ${c.cluster} · “${c.label}”` : `Cluster ${c.cluster}`; }

// the cluster's state in words (never by colour alone)
function clusterState(c) {
  if (c.dismissed) return h("span", { class: "state", dataset: { state: "dismissed" }, text: `dismissed: ${c.dismiss_reason || "not a person"}` });
  return h("span", { class: "state", dataset: { state: c.label ? "named" : "open" }, text: c.label ? "named" : "not reviewed" });
}

// where a kept face was seen: its number in its image, or a video track's span
function faceWhere(f) {
  const file = `${f.track ? "video" : "image"} ${f.image_sha256.slice(0, 8)}`;
  return f.track ? `${file} track ${f.face_index + 1}, ${spanText(f.track)}` : `${file} face ${f.face_index + 1}`;
}

function faceTile(set, f, selectable) {
  const holder = h("div", { class: "crop" }, h("div", { class: "noimage", text: "loading…" }));
  cropInto(holder, set.set_id, f.face);
  const notes = [f.ambiguous ? h("span", { class: "tag ambiguous", text: "ambiguous: close call" }) : null,
    f.seedable ? null : h("span", { class: "tag low", text: "low quality" })];
  const pick = selectable ? h("label", { class: "pick" }, h("input", { type: "checkbox", name: "faces",
    value: f.face, id: `face-${f.face}` }), ` Face ${f.face}`) : h("span", { text: `Face ${f.face}` });
  return h("li", { class: "face", dataset: { face: f.face, ambiguous: f.ambiguous ? "true" : "false" } },
    holder, h("div", { class: "face-caption" }, pick, h("span", { class: "muted", text: ` ${faceWhere(f)}` }), ...notes));
}

// an action on the set: POST it, draw the set it answers with and say what was done
function clusterAction(setId, path, json, said) {
  return guarded(async () => {
    const set = await api(`/cluster-sets/${encodeURIComponent(setId)}/${path}`, { method: "POST", json });
    renderClusterSet(nextSeq(), set, said);
  });
}

function clusterCard(set, c) {
  const k = c.cluster;
  const byNo = new Map(set.faces.map((f) => [f.face, f]));
  const titleId = `cluster-${k}-title`;
  const sheet = h("ul", { class: "sheet", "aria-label": `faces of cluster ${k}` }, c.faces.map((n) => faceTile(set, byNo.get(n), true)));
  const split = h("button", { type: "button", class: "secondary", id: `split-${k}` }, "Split selected faces off");
  split.addEventListener("click", () => {
    const faces = [...sheet.querySelectorAll("input[name=faces]:checked")].map((b) => Number(b.value));
    if (!faces.length) { showError(new Error(`select at least one face of cluster ${k} to split off`)); return; }
    clusterAction(set.set_id, "split", { cluster: k, faces }, `Faces ${faces.join(", ")} split off cluster ${k}.`);
  });
  const name = h("form", { class: "inline-form", id: `name-form-${k}` },
    field(`Name for cluster ${k} `, h("input", { type: "text", name: "label", id: `name-${k}`, required: true,
      maxlength: 200, value: c.label || "" })),
    h("button", { type: "submit", class: "secondary", id: `name-submit-${k}` }, "Name"));
  name.addEventListener("submit", (ev) => {
    ev.preventDefault();
    const label = formValue(name, "label");
    clusterAction(set.set_id, "name", { cluster: k, label }, `Cluster ${k} named “${label}”.`);
  });
  const dismiss = c.dismissed ? null : h("form", { class: "inline-form", id: `dismiss-form-${k}` },
    field(`Why cluster ${k} is not a person `, h("input", { type: "text", name: "reason", id: `dismiss-reason-${k}`, required: true, maxlength: 4000 })),
    h("button", { type: "submit", class: "danger", id: `dismiss-${k}` }, "Dismiss"));
  if (dismiss) {
    dismiss.addEventListener("submit", (ev) => {
      ev.preventDefault();
      clusterAction(set.set_id, "dismiss", { cluster: k, reason: formValue(dismiss, "reason") }, `Cluster ${k} dismissed.`);
    });
  }
  return h("section", { class: "card cluster", id: `cluster-${k}`, "aria-labelledby": titleId,
    dataset: { cluster: k, dismissed: c.dismissed ? "true" : "false" } },
  h("h2", { id: titleId }, `${clusterName(c)} `, clusterState(c), h("span", { class: "muted", text: ` · ${c.faces.length} face${c.faces.length === 1 ? "" : "s"}` })),
  sheet, h("div", { class: "cluster-controls" }, c.faces.length > 1 ? split : null, name, dismiss));
}

function mergeForm(set) {
  const options = (id) => h("select", { name: id, id: `merge-${id}`, required: true },
    h("option", { value: "", text: "— choose a cluster —" }),
    set.clusters.filter((c) => !c.dismissed).map((c) => h("option", { value: c.cluster, text: clusterName(c) })));
  const refused = h("p", { id: "merge-error", class: "refused", role: "alert", hidden: true });
  const form = h("form", { id: "merge-form", class: "card" }, h("h2", { text: "Merge two clusters" }),
    field("Move every face of ", options("other")), field("into ", options("into")),
    h("button", { type: "submit", id: "merge-submit" }, "Merge"), refused);
  form.addEventListener("submit", async (ev) => {
    ev.preventDefault();
    refused.hidden = true;
    const other = Number(formValue(form, "other"));
    const into = Number(formValue(form, "into"));
    try {
      if (other === into) throw new Error("choose two different clusters");
      const done = await api(`/cluster-sets/${encodeURIComponent(set.set_id)}/merge`, { method: "POST", json: { into, other } });
      renderClusterSet(nextSeq(), done, `Cluster ${other} merged into cluster ${into}.`);
    } catch (err) {
      const why = err.code === "cannot_link" ? "Merge refused: two faces of one image are two people. " : "Merge refused: ";
      refused.textContent = `${why}${err.message}${err.code ? ` [${err.code}]` : ""}`;
      refused.hidden = false;
    }
  });
  return form;
}

function lastUndoable(set) {
  const live = set.actions.filter((a) => a.action !== "undo" && !a.undone); // as the server picks
  const last = live[live.length - 1];
  return last && last.action !== "enrol" ? last : null;
}

function undoButton(set) {
  const last = lastUndoable(set);
  const b = h("button", { type: "button", class: "secondary", id: "cluster-undo", disabled: !last },
    last ? `Undo the last action (${last.action} by ${last.actor})` : "Nothing to undo");
  b.addEventListener("click", () => clusterAction(set.set_id, "undo", undefined, `Undone: ${last.action}.`));
  return b;
}

function actionsTable(set) {
  if (!set.actions.length) return h("p", { class: "muted", id: "cluster-actions", text: "No review action yet." });
  return h("table", { id: "cluster-actions", class: "readable" },
    h("caption", { text: "Review actions, oldest first" }),
    h("tr", {}, ["action", "by", "when", "audit entry", "undone"].map((t) => h("th", { scope: "col", text: t }))),
    set.actions.map((a) => h("tr", {}, h("td", { text: a.action }), h("td", { text: a.actor }), h("td", { text: when(a.at) }),
      h("td", { class: "metric", text: a.audit_seq }), h("td", { text: a.undone ? "undone" : "" }))));
}

function openSetForm(setId = "") {
  const form = h("form", { id: "cluster-open", class: "card" },
    field("Cluster set id ", h("input", { type: "text", name: "set_id", id: "cluster-set-id", required: true,
      autocomplete: "off", value: setId, "aria-describedby": "cluster-set-id-hint" }),
    " as printed by faceledger cluster --keep or answered by POST /clusterings"),
    h("button", { type: "submit", id: "cluster-open-submit" }, "Open"));
  form.addEventListener("submit", (ev) => {
    ev.preventDefault();
    location.hash = `#/clusters/${encodeURIComponent(formValue(form, "set_id"))}`;
  });
  return form;
}

function renderClusterSet(seq, set, said = "") {
  const unassigned = set.faces.filter((f) => f.cluster < 0);
  const ambiguous = set.faces.filter((f) => f.ambiguous).length;
  view(seq, h("p", {}, h("a", { href: "#/clusters", id: "cluster-sets-link", text: "← All cluster sets" })),
    h("h1", { text: `Cluster set ${set.set_id}` }), openSetForm(set.set_id),
    h("p", { class: "muted", id: "cluster-meta", text: `${set.purpose} · case ${set.case_ref} · kept by ${set.created_by} (${set.org}) `
      + `on ${when(set.created_at)} until ${when(set.expires_at)} · ${set.faces.length} faces, ${ambiguous} ambiguous · model ${set.model_id}` }),
    h("p", { class: "notice", text: "Clusters are leads for a person to check, never identifications. "
      + "Faces marked “ambiguous” were close calls between two clusters." }),
    h("p", { id: "cluster-status", role: "status", tabindex: -1, text: said }),
    h("div", { class: "cluster-tools" }, undoButton(set)),
    set.clusters.length > 1 ? mergeForm(set) : null,
    set.clusters.map((c) => clusterCard(set, c)),
    unassigned.length ? h("section", { class: "card cluster", id: "unassigned", "aria-labelledby": "unassigned-title" },
      h("h2", { id: "unassigned-title", text: "In no cluster" }),
      h("ul", { class: "sheet", "aria-label": "faces in no cluster" }, unassigned.map((f) => faceTile(set, f, false)))) : null,
    actionsTable(set));
  if (said && seq === routeSeq) document.getElementById("cluster-status").focus();
}

function clusterSetsTable(sets) {
  if (!sets.length) return h("p", { class: "muted", id: "cluster-sets", text: "No kept cluster set you may read." });
  return h("table", { id: "cluster-sets", class: "readable" },
    h("caption", { text: "Sets you may review, newest first" }),
    h("tr", {}, ["kept", "by", "purpose", "case", "faces", "clusters", "expires"].map((t) => h("th", { scope: "col", text: t }))),
    sets.map((x) => h("tr", { dataset: { set: x.set_id } },
      h("td", {}, h("a", { href: `#/clusters/${encodeURIComponent(x.set_id)}`, text: when(x.created_at) })),
      h("td", { text: x.created_by }), h("td", { class: "wrap", text: x.purpose }), h("td", { class: "code", text: x.case_ref }),
      h("td", { class: "metric", text: x.faces }), h("td", { class: "metric", text: x.clusters }),
      h("td", { text: when(x.expires_at) }))));
}

async function clustersView(seq, setId) {
  if (!setId) {
    const sets = await api("/cluster-sets");
    view(seq, h("h1", { text: "Cluster sets" }),
      h("p", { class: "muted", text: "A set is kept by faceledger cluster --keep or POST /clusterings with keep; "
        + "its creator and the reviewers of their organisation review it here." }),
      clusterSetsTable(sets), openSetForm());
    return;
  }
  renderClusterSet(seq, await api(`/cluster-sets/${encodeURIComponent(setId)}`));
}

// ---------------------------------------------------------------- routing

async function route() {
  const seq = nextSeq();
  showError(null);
  if (!sessionStorage.getItem(KEY)) { signinView(seq); return; }
  if (!me) {
    try { await loadMe(); } catch (err) {
      sessionStorage.removeItem(KEY); signinView(nextSeq()); showError(err); return;
    }
  }
  const parts = location.hash.replace(/^#\/?/, "").split("/").map(decodeURIComponent);
  const [page, arg] = parts;
  try {
    if (page === "gallery" && arg) await galleryView(seq, arg);
    else if (page === "search") await searchView(seq);
    else if (page === "check") await checkView(seq);
    else if (page === "searches" && arg) await searchDetailView(seq, arg);
    else if (page === "searches") await searchesView(seq);
    else if (page === "queue") await queueView(seq);
    else if (page === "audit") await auditView(seq);
    else if (page === "reports") await reportsView(seq);
    else if (page === "users") await usersView(seq);
    else if (page === "orgs") await orgsView(seq);
    else if (page === "agreements") await agreementsView(seq);
    else if (page === "purposes") await purposesView(seq);
    else if (page === "clusters") await clustersView(seq, arg);
    else if (hasRole("operator")) await orgsView(seq);
    else await galleriesView(seq);
  } catch (err) {
    if (seq !== routeSeq) return;
    view(seq, h("h1", { text: "Not available" }), h("p", { class: "muted", text: err.message }));
    showError(err);
    if (err.status === 401) signOut();
  }
}

window.addEventListener("hashchange", route);
document.addEventListener("DOMContentLoaded", () => {
  document.getElementById("signout").addEventListener("click", signOut);
  route();
});

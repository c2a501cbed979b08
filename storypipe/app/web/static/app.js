// storypipe review app: a little plain JavaScript. No framework, no build step, nothing from the network.
(function () {
  "use strict";
  const csrf = document.querySelector('meta[name="csrf"]').content;
  const dataEl = document.getElementById("story-data");
  if (!dataEl) return; // list and intake pages need no script
  const data = JSON.parse(dataEl.textContent);
  const sid = data.story.story_id;
  const player = document.getElementById("player");
  const message = document.getElementById("message");
  const words = Array.from(document.querySelectorAll(".w"));
  const starts = words.map((w) => parseFloat(w.dataset.s));
  const quotes = Array.from(document.querySelectorAll(".quote"));
  let current = -1; // index of the current quote
  let whoPanel = null; // the open "Who said this?" box of a segment, if any

  function say(text, isError) {
    message.textContent = text;
    message.className = isError ? "error" : "ok";
  }

  async function post(path, body) {
    const res = await fetch(`/api/stories/${sid}${path}`, {
      method: "POST",
      headers: { "Content-Type": "application/json", "X-CSRF-Token": csrf },
      body: JSON.stringify(body || {}),
    });
    const json = await res.json().catch(() => ({}));
    if (!res.ok) {
      say(json.error || `The change failed (${res.status}).`, true);
      throw new Error(json.error || res.status);
    }
    return json;
  }

  function reloadAt(hash, text) {
    sessionStorage.setItem("storypipe-message", text || "Saved.");
    if (hash) location.hash = hash;
    location.reload();
  }

  const saved = sessionStorage.getItem("storypipe-message");
  if (saved) {
    say(saved);
    sessionStorage.removeItem("storypipe-message");
    // After a change to a segment the page opens at that segment: say it there too, where the eyes are.
    const seg = location.hash.startsWith("#seg-") ? document.getElementById(location.hash.slice(1)) : null;
    if (seg) {
      const note = document.createElement("p");
      note.className = "seg-said";
      note.setAttribute("role", "status");
      note.textContent = saved;
      seg.append(note);
    }
  }

  function playFrom(t, until) {
    player.currentTime = t;
    player.play();
    if (until) {
      const stop = () => { if (player.currentTime >= until) { player.pause(); player.removeEventListener("timeupdate", stop); } };
      player.addEventListener("timeupdate", stop);
    }
  }

  // Click a word or a time to play from there (in a segment whose "Who said this?" box is open, a
  // click on one of its words chooses that word instead).
  document.querySelectorAll(".w").forEach((w) => w.addEventListener("click", () => {
    if (window.getSelection().toString()) return; // a selection, not a click
    if (whoPanel && whoPanel.seg.contains(w)) return whoPanel.choose(w);
    playFrom(parseFloat(w.dataset.s));
  }));
  document.querySelectorAll("button.time").forEach((b) => b.addEventListener("click", () => playFrom(parseFloat(b.dataset.t))));

  // Highlight the word being spoken.
  let lit = null;
  player.addEventListener("timeupdate", () => {
    const t = player.currentTime;
    let lo = 0, hi = starts.length - 1, found = -1;
    while (lo <= hi) { const mid = (lo + hi) >> 1; if (starts[mid] <= t) { found = mid; lo = mid + 1; } else hi = mid - 1; }
    const w = found >= 0 ? words[found] : null;
    if (w === lit) return;
    if (lit) lit.classList.remove("now");
    if (w && t <= parseFloat(w.dataset.e) + 0.3) { w.classList.add("now"); lit = w; } else lit = null;
  });

  // Correct a segment inline.
  document.querySelectorAll(".seg .edit").forEach((btn) => btn.addEventListener("click", () => {
    const seg = btn.closest(".seg");
    const p = seg.querySelector(".text");
    if (seg.querySelector("textarea")) return;
    const form = document.createElement("form");
    form.className = "seg-edit";
    const label = document.createElement("label");
    label.textContent = "Corrected text";
    const area = document.createElement("textarea");
    area.value = p.textContent.trim();
    area.rows = 3;
    area.id = `edit-${seg.dataset.id}`;
    label.htmlFor = area.id;
    const save = document.createElement("button"); save.type = "submit"; save.textContent = "Save";
    const cancel = document.createElement("button"); cancel.type = "button"; cancel.textContent = "Cancel";
    form.append(label, area, save, cancel);
    p.hidden = true;
    seg.append(form);
    area.focus();
    cancel.addEventListener("click", () => { form.remove(); p.hidden = false; });
    form.addEventListener("submit", async (e) => {
      e.preventDefault();
      await post(`/segments/${seg.dataset.id}`, { text: area.value, version: data.versions.transcript });
      reloadAt(`seg-${seg.dataset.id}`);
    });
  }));

  // Who said this part: give it (or only the words from a chosen word on) to another speaker, or
  // split it in two at a word. One box at a time, under its segment; the page reloads at that segment.
  const segData = new Map(((data.transcript || {}).segments || []).map((s) => [String(s.id), s]));

  function el(tag, attrs, ...children) {
    const node = document.createElement(tag);
    Object.entries(attrs || {}).forEach(([k, v]) => node.setAttribute(k, v));
    node.append(...children);
    return node;
  }

  function closeWho(focusBack) {
    if (!whoPanel) return;
    const { seg, form, opener } = whoPanel;
    form.remove();
    seg.classList.remove("choosing");
    seg.querySelectorAll(".w.chosen, .w.moving").forEach((w) => w.classList.remove("chosen", "moving"));
    opener.setAttribute("aria-expanded", "false");
    whoPanel = null;
    if (focusBack) opener.focus();
  }

  function afterSpeakerChange(fresh) {
    const c = fresh.change;
    let text = c.said;
    if (c.changed && c.quotes_derived) text += " The quotes were found again from the corrected speakers; every decision you made is kept.";
    const n = Object.keys(c.notes || {}).length;
    if (n) text += ` ${n === 1 ? "One quote you decided on needs" : `${n} quotes you decided on need`} a look: see “Check this quote”.`;
    if (c.problem) text += ` ${c.problem}`;
    if (!c.changed) return say(text);
    reloadAt(`seg-${c.segments[0]}`, text);
  }

  function openWho(seg, opener) {
    const same = whoPanel && whoPanel.seg === seg;
    closeWho(same);
    if (same) return; // the button closes its own box
    const id = seg.dataset.id;
    const segment = segData.get(id) || { words: [], speaker: null };
    const segWords = segment.words || [];
    const spans = Array.from(seg.querySelectorAll(".w"));
    const choices = data.speaker_choices || [];
    const label = (c) => (c.name ? `${c.name} (${c.label})` : c.label);

    const to = el("select", { id: `who-to-${id}` });
    choices.forEach((c, i) => to.append(el("option", { value: c.label }, i === choices.length - 1 ? `someone else (${c.label})` : label(c))));
    const others = choices.slice(0, -1).filter((c) => c.label !== segment.speaker);
    to.value = others.length === 1 ? others[0].label : (segment.speaker || (choices[0] || {}).label || "");

    const all = el("input", { type: "radio", name: `who-scope-${id}`, id: `who-all-${id}`, value: "all" });
    const from = el("input", { type: "radio", name: `who-scope-${id}`, id: `who-from-${id}`, value: "from" });
    all.checked = true;
    const scope = el("fieldset", { class: "who-scope" }, el("legend", {}, "Which words?"),
      el("label", { for: all.id }, all, " All of this part"),
      el("label", { for: from.id }, from, " Only from the chosen word to the end of this part (someone else starts speaking there)"));

    const word = el("select", { id: `who-word-${id}` }, el("option", { value: "" }, "(choose a word)"));
    segWords.forEach((w, i) => {
      const context = segWords.slice(i, i + 3).map((x) => x.word.trim()).join(" ");
      word.append(el("option", { value: String(i) }, `${context}${i + 3 < segWords.length ? "…" : ""} (${duration(w.start)})`));
    });
    const listen = el("button", { type: "button", class: "who-listen" }, "Listen from the chosen word");
    const summary = el("p", { class: "who-summary", "aria-live": "polite" });
    const save = el("button", { type: "submit" }, "Save who said it");
    const split = el("button", { type: "button", class: "who-split" }, "Split this part in two at the chosen word");
    const close = el("button", { type: "button", class: "who-close" }, "Close");

    const form = el("form", { class: "who-panel", id: `who-panel-${id}`, "aria-label": "Who said this part" },
      el("p", { class: "who-row" }, el("label", { for: to.id }, "This part was said by:"), " ", to));
    if (segWords.length) {
      form.append(scope,
        el("p", { class: "who-row" }, el("label", { for: word.id }, "Chosen word:"), " ", word, " ", listen),
        el("p", { class: "hint" }, "While this box is open, clicking a word of this part chooses it (it does not play)."));
    } else {
      form.append(el("p", { class: "hint" }, "This part has no timed words: it can only be given whole."));
    }
    form.append(summary, el("p", { class: "who-actions" }, save, " ", ...(segWords.length > 1 ? [split, " "] : []), close));

    const chosen = () => (word.value === "" ? null : parseInt(word.value, 10));
    const words = (a, b) => segWords.slice(a, b).map((w) => w.word.trim()).join(" ");
    function update() {
      const k = chosen();
      spans.forEach((sp, i) => {
        sp.classList.toggle("chosen", i === k);
        sp.classList.toggle("moving", from.checked && k !== null && i >= k);
      });
      split.disabled = !(k >= 1);
      listen.disabled = k === null;
      const whom = to.options[to.selectedIndex] ? to.options[to.selectedIndex].textContent : "";
      let text;
      if (from.checked && k === null) text = "Choose the first word the other person said: click it in the text, or pick it above.";
      else if (from.checked && k > 0) text = `Save: “${words(k, k + 8)}${segWords.length > k + 8 ? "…" : ""}” (from the chosen word to the end of this part) was said by ${whom}; it becomes a part of its own.`;
      else text = `Save: all of this part was said by ${whom}.`;
      if (k >= 1) text += ` Split: two parts, the first ending with “${words(k - 1, k)}”, the second starting with “${words(k, k + 3)}”.`;
      summary.textContent = text;
    }

    [to, all, from].forEach((c) => c.addEventListener("change", update));
    word.addEventListener("change", () => { if (chosen() !== null && chosen() > 0) from.checked = true; update(); });
    listen.addEventListener("click", () => { const k = chosen(); if (k !== null) playFrom(segWords[k].start); });
    close.addEventListener("click", () => closeWho(true));
    async function send(path, body, button) {
      button.disabled = true;
      say(path.endsWith("/speaker") ? "Saving, then finding the quotes again from the corrected speakers (a few seconds on a long story)…" : "Saving…");
      try { afterSpeakerChange(await post(path, body)); } catch (err) { /* post() has said why */ } finally { button.disabled = false; update(); }
    }
    form.addEventListener("submit", (e) => {
      e.preventDefault();
      const k = chosen();
      if (from.checked && k === null) { say("Choose the word where the other person starts speaking.", true); return word.focus(); }
      const body = { to: to.value, version: data.versions.transcript };
      if (from.checked && k > 0) body.from_word = k;
      send(`/segments/${id}/speaker`, body, save);
    });
    split.addEventListener("click", () => send(`/segments/${id}/split`, { at_word: chosen(), version: data.versions.transcript }, split));

    seg.append(form);
    seg.classList.add("choosing");
    opener.setAttribute("aria-expanded", "true");
    whoPanel = {
      seg, form, opener,
      choose(w) {
        word.value = String(spans.indexOf(w));
        if (chosen() > 0) from.checked = true;
        update();
      },
    };
    update();
    to.focus();
  }
  document.querySelectorAll(".seg .who-open").forEach((b) => b.addEventListener("click", () => openWho(b.closest(".seg"), b)));

  // Rename speakers.
  document.querySelectorAll(".speaker-form").forEach((f) => f.addEventListener("submit", async (e) => {
    e.preventDefault();
    await post("/speakers", { label: f.dataset.label, name: f.querySelector("input").value, version: data.versions.transcript });
    reloadAt();
  }));

  document.getElementById("mark-reviewed").addEventListener("click", async () => { await post("/reviewed"); reloadAt(); });

  // Quotes: decisions, edges, titles.
  async function quoteAction(q, act) {
    const id = q.dataset.id;
    if (act === "play") return playFrom(parseFloat(q.dataset.start), parseFloat(q.dataset.end));
    const body = { version: data.versions.quotes };
    if (act === "approved" || act === "rejected") body.status = act;
    else {
      const m = act.match(/^(start|end)([+-]1)$/);
      body[m[1] === "start" ? "widen_start" : "widen_end"] = parseInt(m[2], 10);
    }
    const fresh = await post(`/quotes/${id}`, body);
    if (body.widen_start || body.widen_end) {
      // Update the card in place and play the new extent at once, so the change can be heard.
      const nq = fresh.quotes.find((x) => x.id === id);
      q.dataset.start = nq.start;
      q.dataset.end = nq.end;
      q.querySelector("blockquote").textContent = nq.text;
      q.querySelector(".quote-meta .span").textContent = `${duration(nq.start)}–${duration(nq.end)}`;
      data.versions = fresh.versions;
      say("Edges moved: playing the quote as it is now.");
      return playFrom(nq.start, nq.end);
    }
    reloadAt(`q-${id}`);
  }

  function duration(t) {
    // As storypipe.core.timefmt.duration writes it on the server: 2:14, or 1:02:03 from an hour on.
    const all = Math.max(0, Math.floor(t)), h = Math.floor(all / 3600), m = Math.floor((all % 3600) / 60), s = all % 60;
    const mm = h ? String(m).padStart(2, "0") : String(m);
    return `${h ? `${h}:` : ""}${mm}:${String(s).padStart(2, "0")}`;
  }
  quotes.forEach((q, i) => {
    q.querySelectorAll("[data-act]").forEach((b) => b.addEventListener("click", () => { current = i; quoteAction(q, b.dataset.act); }));
    q.querySelector(".clip-form").addEventListener("submit", async (e) => {
      e.preventDefault();
      const f = e.target;
      await post(`/quotes/${q.dataset.id}`, { title: f.title.value, description: f.description.value, version: data.versions.quotes });
      reloadAt(`q-${q.dataset.id}`);
    });
    q.addEventListener("focusin", () => { current = i; });
    // Themes: confirm a suggestion, add one from the codebook, or take one away.
    const box = q.querySelector(".themes");
    const chosen = () => box.dataset.themes.split(" ").filter(Boolean);
    async function setThemes(themes) {
      await post(`/quotes/${q.dataset.id}`, { themes, version: data.versions.quotes });
      reloadAt(`q-${q.dataset.id}`);
    }
    box.querySelectorAll("[data-theme-add]").forEach((b) => b.addEventListener("click", () => setThemes([...chosen(), b.dataset.themeAdd])));
    box.querySelectorAll("[data-theme-remove]").forEach((b) => b.addEventListener("click", () => setThemes(chosen().filter((t) => t !== b.dataset.themeRemove))));
    box.querySelector(".add-theme").addEventListener("change", (e) => { if (e.target.value) setThemes([...chosen(), e.target.value]); });
  });

  if (location.hash.startsWith("#q-")) {
    const el = document.getElementById(location.hash.slice(1));
    if (el) { current = quotes.indexOf(el); el.focus(); }
  }

  // Make a quote from selected transcript words.
  const makeQuote = document.getElementById("make-quote");
  function selectedWords() {
    const sel = window.getSelection();
    if (!sel || sel.isCollapsed) return null;
    const inSel = words.filter((w) => sel.containsNode(w, true));
    return inSel.length ? [parseFloat(inSel[0].dataset.s), parseFloat(inSel[inSel.length - 1].dataset.e)] : null;
  }
  if (makeQuote) {
    document.addEventListener("selectionchange", () => { makeQuote.disabled = !selectedWords(); });
    makeQuote.addEventListener("click", async () => {
      const span = selectedWords();
      if (!span) return;
      await post("/quotes", { start: span[0], end: span[1], version: data.versions.quotes });
      reloadAt();
    });
  }

  // Consent.
  document.getElementById("consent-form").addEventListener("submit", async (e) => {
    e.preventDefault();
    const body = { version: data.versions.story };
    e.target.querySelectorAll("input[type=checkbox]").forEach((c) => { body[c.name] = c.checked; });
    await post("/consent", body);
    reloadAt();
  });

  // Keyboard shortcuts and their help.
  const help = document.getElementById("help");
  const openHelp = () => { help.hidden = false; document.getElementById("help-close").focus(); };
  const closeHelp = () => { help.hidden = true; };
  document.getElementById("help-button").addEventListener("click", openHelp);
  document.getElementById("help-close").addEventListener("click", closeHelp);
  function focusQuote(i) {
    if (!quotes.length) return;
    current = (i + quotes.length) % quotes.length;
    quotes[current].focus();
    quotes[current].scrollIntoView({ block: "nearest" });
  }
  document.addEventListener("keydown", (e) => {
    if (e.key === "Escape") return help.hidden && whoPanel ? closeWho(true) : closeHelp();
    const tag = (e.target.tagName || "").toLowerCase();
    if (["input", "textarea", "select"].includes(tag) || e.ctrlKey || e.metaKey || e.altKey) return;
    if (e.key === " " && tag !== "button") { e.preventDefault(); player.paused ? player.play() : player.pause(); }
    else if (e.key === "b") player.currentTime = Math.max(0, player.currentTime - 5);
    else if (e.key === "n") focusQuote(current + 1);
    else if (e.key === "p") focusQuote(current - 1);
    else if ((e.key === "a" || e.key === "r") && current >= 0) quoteAction(quotes[current], e.key === "a" ? "approved" : "rejected");
    else if (e.key === "?") openHelp();
  });
})();

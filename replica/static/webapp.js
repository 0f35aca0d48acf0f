/* Replica of TikTok's web bundle: the in-page signer (window.byted_acrawler) and the
   client-rendered tag page. Plain ES2017, no modules, no external resources. */
(function () {
  "use strict";

  function fnv1a32(text) {
    var bytes = new TextEncoder().encode(text);
    var h = 0x811c9dc5;
    for (var i = 0; i < bytes.length; i++) {
      h ^= bytes[i];
      h = Math.imul(h, 0x01000193) >>> 0;
    }
    return ("00000000" + (h >>> 0).toString(16)).slice(-8);
  }

  // Written in when the bundle is served (replica/signing.py): the script version, which picks
  // the signing key, and whether byted_acrawler is exposed on window.
  var SCRIPT_VERSION = Number("__SCRIPT_VERSION__") || 1;
  var EXPOSED = "__SIGNER_EXPOSED__" !== "false";

  // The key is assembled at runtime so it never appears as a single literal in the bundle.
  function signKey() {
    var pieces = ["detyb", "rc_a", "relwa"];
    var head = pieces.map(function (p) { return p.split("").reverse().join(""); }).join("");
    var salt = (0x1f2e * 3).toString(36);
    var key = head + ":" + salt + ":" + String.fromCharCode(0x76, 0x31);
    return SCRIPT_VERSION > 1 ? key + ":v" + SCRIPT_VERSION : key;
  }

  // Decoded "k=v" pairs in order, without X-Bogus: immune to how the URL gets re-escaped.
  function canonicalQuery(url) {
    var u = new URL(String(url), location.href);
    var parts = [];
    u.searchParams.forEach(function (value, key) {
      if (key !== "X-Bogus") parts.push(key + "=" + value);
    });
    return parts.join("&");
  }

  function frontierSign(url) {
    return { "X-Bogus": "DFSz" + fnv1a32(signKey() + "|" + canonicalQuery(url)) };
  }
  if (EXPOSED) window.byted_acrawler = { frontierSign: frontierSign };

  function msToken() {
    var m = document.cookie.match(/(?:^|;\s*)msToken=([^;]*)/);
    if (m && m[1]) return decodeURIComponent(m[1]);
    var abc = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    var rnd = new Uint8Array(107);
    crypto.getRandomValues(rnd);
    var token = "";
    for (var i = 0; i < rnd.length; i++) token += abc[rnd[i] & 63];
    document.cookie = "msToken=" + token + "; path=/; SameSite=Lax";
    return token;
  }
  // the site's script sets msToken as it loads (TikTok-Api reads it from the page's cookies)
  msToken();

  var path = location.pathname;
  var tagAt = path.indexOf("/tag/");
  // Mount prefix ("/tiktok" in the replica, "" on a bare host) taken from where we were served.
  var prefix = tagAt >= 0 ? path.slice(0, tagAt) : path.replace(/\/[^/]*$/, "");

  async function signedGet(apiPath, params) {
    var pairs = params.concat([["msToken", msToken()]]);
    var qs = pairs.map(function (kv) {
      return encodeURIComponent(kv[0]) + "=" + encodeURIComponent(kv[1]);
    }).join("&");
    var url = prefix + apiPath + "?" + qs;
    var bogus = frontierSign(url)["X-Bogus"];
    var resp = await fetch(url + "&X-Bogus=" + encodeURIComponent(bogus),
                           { credentials: "same-origin" });
    var text = await resp.text();
    if (!resp.ok) throw new Error("HTTP " + resp.status);
    if (!text) throw new Error("empty response");  // how TikTok answers suspected bots
    return JSON.parse(text);
  }

  // "1.1M": one decimal, truncated, trailing ".0" dropped (same rule as the SSR markup).
  function shortCount(n) {
    var units = [[1e9, "B"], [1e6, "M"], [1e3, "K"]];
    for (var i = 0; i < units.length; i++) {
      if (n >= units[i][0]) {
        var tenths = Math.floor(n * 10 / units[i][0]);
        var whole = Math.floor(tenths / 10), frac = tenths % 10;
        return (frac ? whole + "." + frac : String(whole)) + units[i][1];
      }
    }
    return String(n);
  }

  function el(tag, attrs, text) {
    var node = document.createElement(tag);
    Object.keys(attrs || {}).forEach(function (k) { node.setAttribute(k, attrs[k]); });
    if (text !== undefined) node.textContent = text;
    return node;
  }

  function mark(state) {
    document.documentElement.setAttribute("data-replica-state", state);
  }

  function appendItems(list, items) {
    items.forEach(function (item) {
      var box = el("div", { "data-e2e": "challenge-item" });
      var link = el("a", { href: prefix + "/@" + encodeURIComponent(item.author.uniqueId) +
                                 "/video/" + item.id });
      link.appendChild(el("p", { "data-e2e": "challenge-item-desc" }, item.desc));
      box.appendChild(link);
      box.appendChild(el("strong", { "data-e2e": "video-views" },
                         shortCount(item.stats.playCount)));
      list.appendChild(box);
    });
  }

  function render(main, info, items) {
    var title = info.challenge.title;
    main.appendChild(el("h1", { "data-e2e": "challenge-title" }, "#" + title));
    main.appendChild(el("h2", { "data-e2e": "challenge-vvcount", title: "posts" },
                        shortCount(info.stats.videoCount) + " posts"));
    var list = el("div", { "data-e2e": "challenge-item-list" });
    appendItems(list, items);
    main.appendChild(list);
    document.title = "#" + title + " | TikTok";
    return list;
  }

  // More videos are fetched (signed, like every API call) only when the reader scrolls near
  // the bottom; the list says data-feed-end once item_list has no more (or failed).
  function infiniteItems(list, challengeId, cursor, hasMore) {
    var feed = { cursor: String(cursor), more: !!hasMore, loading: false };
    function ended(why) { list.setAttribute("data-feed-end", why); }
    if (!list || !feed.more) { if (list) ended("end"); return; }
    async function more() {
      if (feed.loading || !feed.more) return;
      if (window.innerHeight + window.scrollY < document.body.scrollHeight - 300) return;
      feed.loading = true;
      try {
        var page = await signedGet("/api/challenge/item_list/",
                                   [["challengeID", challengeId], ["count", "30"],
                                    ["cursor", feed.cursor]]);
        appendItems(list, page.itemList || []);
        feed.cursor = String(page.cursor);
        feed.more = !!page.hasMore;
        if (!feed.more) ended("end");
      } catch (err) {
        feed.more = false;
        ended("error");
      } finally {
        feed.loading = false;
      }
    }
    window.addEventListener("scroll", more);
  }

  function renderNotFound(main) {
    var box = el("div", { "data-e2e": "challenge-not-found" });
    box.appendChild(el("p", {}, "Couldn't find this hashtag"));
    main.appendChild(box);
  }

  async function hydrate() {
    if (tagAt < 0) return;
    var script = document.getElementById("__UNIVERSAL_DATA_FOR_REHYDRATION__");
    if (!script) return;
    var scope;
    try { scope = JSON.parse(script.textContent).__DEFAULT_SCOPE__ || {}; } catch (e) { return; }
    var ssr = scope["webapp.challenge-detail"];
    if (ssr) {  // server-rendered: the first page of videos is in the markup already
      var info0 = ssr.challengeInfo || {};
      if (info0.challenge && info0.challenge.id) {
        infiniteItems(document.querySelector('[data-e2e="challenge-item-list"]'),
                      info0.challenge.id, ssr.cursor || (ssr.itemList || []).length,
                      ssr.hasMore);
      }
      mark("ready");
      return;
    }
    var main = document.querySelector('[data-e2e="challenge-page"]');
    var name = decodeURIComponent(path.slice(tagAt + 5).split("/")[0]);
    try {
      var detail = await signedGet("/api/challenge/detail/", [["challengeName", name]]);
      var info = detail.challengeInfo;
      if (detail.statusCode !== 0 || !info || !info.challenge || !info.challenge.id) {
        renderNotFound(main);
        mark("not_found");
        return;
      }
      var list = await signedGet("/api/challenge/item_list/",
                                 [["challengeID", info.challenge.id], ["count", "30"],
                                  ["cursor", "0"]]);
      var shown = render(main, info, list.itemList || []);
      infiniteItems(shown, info.challenge.id, list.cursor, list.hasMore);
      mark("ready");
    } catch (err) {
      main.appendChild(el("div", { "class": "error", "data-e2e": "load-error" },
                          String(err && err.message || err)));
      mark("error");
    }
  }

  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", hydrate);
  } else {
    hydrate();
  }
})();

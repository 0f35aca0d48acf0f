/* Replica of Xiaohongshu's web bundle: the request signer (window._webmsxyw) and the topic /
   search pages that call the signed edith-style APIs. Plain ES2017, no modules. */
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
  // the signing key, and whether the signer is exposed on window.
  var SCRIPT_VERSION = Number("__SCRIPT_VERSION__") || 1;
  var EXPOSED = "__SIGNER_EXPOSED__" !== "false";

  // Assembled at runtime so the key never appears as one literal in the bundle.
  function signKey() {
    var site = String.fromCharCode(120, 104, 115);
    var parts = ["bew", "cp"].map(function (p) { return p.split("").reverse().join(""); });
    var key = site + "_" + parts.join("-") + "_" + (20250113).toString(16);
    return SCRIPT_VERSION > 1 ? key + ":v" + SCRIPT_VERSION : key;
  }

  function cookie(name) {
    var m = document.cookie.match(new RegExp("(?:^|;\\s*)" + name + "=([^;]*)"));
    return m ? decodeURIComponent(m[1]) : "";
  }

  function randomHex(n) {
    var rnd = new Uint8Array(n);
    crypto.getRandomValues(rnd);
    return Array.prototype.map.call(rnd, function (b) {
      return ("0" + b.toString(16)).slice(-2);
    }).join("");
  }

  function a1() {
    var value = cookie("a1");
    if (value) return value;
    value = randomHex(26);
    document.cookie = "a1=" + value + "; path=/; SameSite=Lax";
    return value;
  }

  // The real site keeps a "b1" in localStorage that x-S-Common carries (MediaCrawler reads it
  // there); what it is made of is not known [INF], the replica stores random bytes.
  function b1() {
    var value = localStorage.getItem("b1");
    if (!value) {
      value = btoa(randomHex(24));
      localStorage.setItem("b1", value);
    }
    return value;
  }
  a1();
  b1();

  function bodyText(data) {
    if (data === undefined || data === null) return "";
    return typeof data === "string" ? data : JSON.stringify(data);
  }

  // Same return shape as the real site's signer: {"X-s": ..., "X-t": ...}.
  function sign(uri, data) {
    var xt = String(Date.now());
    var payload = fnv1a32(signKey() + uri + bodyText(data) + xt);
    var xs = "XYW_" + btoa(JSON.stringify({
      signSvn: "56", signType: "x2", appId: "xhs-pc-web", signVersion: "1", payload: payload
    }));
    return { "X-s": xs, "X-t": xt };
  }
  if (EXPOSED) window._webmsxyw = sign;

  // CRC-32 of the first 57 characters, XOR 0xEDB88320, signed (x-S-Common's x9).
  var CRC_TABLE = (function () {
    var table = [];
    for (var n = 0; n < 256; n++) {
      var c = n;
      for (var k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
      table.push(c >>> 0);
    }
    return table;
  })();
  function mrc(text) {
    var crc = 0xffffffff;
    for (var i = 0; i < Math.min(57, text.length); i++) {
      crc = CRC_TABLE[(crc ^ text.charCodeAt(i)) & 0xff] ^ (crc >>> 8);
    }
    return ((crc ^ 0xffffffff) ^ 0xedb88320) | 0;
  }

  // x-S-Common's encoding: base64 of the UTF-8 JSON, in the site's own alphabet.
  var STD = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  var XSC = "ZmserbBoHQtNP+wOcza/LpngG8yJq42KWYj0DSfdikx3VT16IlUAFM97hECvuRX5";
  function xscEncode(obj) {
    var bytes = new TextEncoder().encode(JSON.stringify(obj));
    var bin = "";
    for (var i = 0; i < bytes.length; i++) bin += String.fromCharCode(bytes[i]);
    return btoa(bin).replace(/[A-Za-z0-9+/]/g, function (ch) { return XSC[STD.indexOf(ch)]; });
  }

  // All three headers the edith API checks, for a uri relative to the site root.
  function signHeaders(uri, data) {
    var s = sign(uri, data);
    var b = b1();
    var common = {
      s0: 3, s1: "", x0: "1", x1: "4.0.0", x2: "Linux", x3: "xhs-pc-web", x4: "4.62.3",
      x5: a1(), x6: s["X-t"], x7: s["X-s"], x8: b, x9: mrc(s["X-t"] + s["X-s"] + b),
      x10: 1, x11: "normal"
    };
    return { "X-S": s["X-s"], "X-T": s["X-t"], "x-S-Common": xscEncode(common) };
  }

  var path = location.pathname;
  function mountPrefix() {
    var marks = ["/page/topics/", "/search_result"];
    for (var i = 0; i < marks.length; i++) {
      var at = path.indexOf(marks[i]);
      if (at >= 0) return path.slice(0, at);
    }
    return path.replace(/\/[^/]*$/, "");
  }
  var prefix = mountPrefix();

  function ApiError(kind, message, code) {
    this.kind = kind;
    this.message = message;
    this.code = code;
  }

  async function call(method, uri, data) {
    var body = method === "POST" ? JSON.stringify(data) : undefined;
    var headers = signHeaders(uri, body);
    if (body !== undefined) headers["Content-Type"] = "application/json;charset=UTF-8";
    var resp = await fetch(prefix + uri, {
      method: method, headers: headers, body: body, credentials: "same-origin"
    });
    var text = await resp.text();
    if (resp.status === 461 || resp.status === 471) {
      throw new ApiError("captcha", "verify " + (resp.headers.get("Verifytype") || ""), 461);
    }
    if (!resp.ok) throw new ApiError("http", "HTTP " + resp.status, resp.status);
    var json;
    try { json = JSON.parse(text); } catch (e) { throw new ApiError("http", "bad JSON", 0); }
    if (json.success === false) throw new ApiError("api", json.msg || "error", json.code);
    return json;
  }

  async function searchTopics(keyword) {
    var json = await call("POST", "/web_api/sns/v1/search/topic", {
      keyword: keyword,
      suggest_topic_request: { title: "", desc: "#" + keyword },
      page: { page_size: 20, page: 1 }
    });
    var data = json.data || {};
    if (data.topic_list) return { list: data.topic_list, redesigned: true };
    return { list: data.topic_info_dtos || [], redesigned: false };
  }

  // [number, unit] with one truncated decimal: 122480000 -> ["1.2", "亿"].
  function zhParts(n) {
    var units = [[1e8, "亿"], [1e4, "万"]];
    for (var i = 0; i < units.length; i++) {
      if (n >= units[i][0]) {
        var tenths = Math.floor(n * 10 / units[i][0]);
        var whole = Math.floor(tenths / 10), frac = tenths % 10;
        return [frac ? whole + "." + frac : String(whole), units[i][1]];
      }
    }
    return [String(n), ""];
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

  function localLink(link) {
    try {
      var u = new URL(link);
      return prefix + u.pathname + u.search;
    } catch (e) {
      return link;
    }
  }

  function showFailure(root, err) {
    root.textContent = "";
    if (err instanceof ApiError && err.kind === "captcha") {
      var box = el("div", { "class": "captcha", "data-verify-type": "102" });
      box.appendChild(el("p", {}, "安全验证"));
      box.appendChild(el("p", {}, "请完成下方验证后继续访问"));
      root.appendChild(box);
      mark("captcha");
      return;
    }
    var code = err instanceof ApiError ? String(err.code) : "";
    root.appendChild(el("div", { "class": "error", "data-code": code },
                        String(err && err.message || err)));
    mark("error");
  }

  function statHtml(n, label) {
    var parts = zhParts(n);
    return [el("span", {}, parts[0]), document.createTextNode(parts[1] + label)];
  }

  function renderHeader(root, name, views, discussions, redesigned) {
    root.appendChild(el("h1", { "class": "topic-title" }, "#" + name));
    if (redesigned) {
      var head = el("div", { "class": "topic-header-v2" });
      [[views, "次浏览"], [discussions, "篇笔记"]].forEach(function (pair) {
        var p = zhParts(pair[0]);
        var stat = el("div", { "class": "stat" });
        stat.appendChild(el("strong", {}, p[0] + p[1]));
        stat.appendChild(el("em", {}, pair[1]));
        head.appendChild(stat);
      });
      root.appendChild(head);
      return;
    }
    var summary = el("div", { "class": "summary" });
    var meta = el("div", { "class": "meta" });
    statHtml(views, "浏览").forEach(function (n) { meta.appendChild(n); });
    // a feed without totals (the list form) leaves the discussions out
    if (discussions !== null && discussions !== undefined) {
      meta.appendChild(document.createTextNode(" · "));
      statHtml(discussions, "讨论").forEach(function (n) { meta.appendChild(n); });
    }
    summary.appendChild(meta);
    root.appendChild(summary);
  }

  function appendNotes(list, notes) {
    notes.forEach(function (note) {
      var card = el("section", { "class": "note-item", "data-note-id": note.id });
      // The real card shows the note's cover and the author's avatar, from the CDN; the
      // replica serves generated stand-ins under /assets/ (see xiaohongshu.py).
      card.appendChild(el("img", {
        "class": "cover", alt: "", src: prefix + "/assets/cover/" +
          encodeURIComponent(note.id) + ".png"
      }));
      card.appendChild(el("a", { "class": "title", href: prefix + "/explore/" + note.id },
                          note.title));
      card.appendChild(el("img", {
        "class": "avatar", alt: "", src: prefix + "/assets/avatar/" +
          encodeURIComponent(note.user.userid) + ".png"
      }));
      card.appendChild(el("span", { "class": "author" }, note.user.nickname));
      card.appendChild(el("span", { "class": "like-count" }, String(note.likes)));
      list.appendChild(card);
    });
  }

  function renderNotes(root, notes) {
    var list = el("div", { "class": "note-list" });
    appendNotes(list, notes);
    root.appendChild(list);
    return list;
  }

  // Where the notes feed is fetched from, per form (replica/xiaohongshu.py FEED_VARIANTS):
  // "notes" (default) and "list" share the path, "recommend" and "uncaptured" take page_id as a
  // query parameter. The list form pages by number and answers `data` as a bare list.
  function feedUri(form, pageId, cursor, page) {
    if (form === "list") {
      return "/web_api/sns/v1/page/" + pageId + "/notes?page=" + page + "&page_size=20";
    }
    var query = "page_size=20&sort=hot_desc&cursor=" + encodeURIComponent(cursor);
    if (form === "recommend") {
      return "/api/sns/web/v1/search/recommend?page_id=" + pageId + "&" + query;
    }
    if (form === "uncaptured") {
      return "/api/sns/web/v1/topic_feed/page?page_id=" + pageId + "&" + query;
    }
    return "/web_api/sns/v1/page/" + pageId + "/notes?" + query;
  }

  // One feed answer as {notes, total, cursor, more}, whichever form it came in.
  function readFeed(form, json, page) {
    if (form === "list") {
      var notes = Array.isArray(json.data) ? json.data : [];
      return { notes: notes, total: null, cursor: String(page + 1), more: notes.length >= 20 };
    }
    var data = json.data || {};
    return { notes: data.notes || [], total: data.total_note_count, cursor: data.cursor || "",
             more: !!data.has_more && !!data.cursor };
  }

  // The next page of the notes feed is fetched only when the reader scrolls near the bottom;
  // the list says data-feed-end once the feed has no more (or failed).
  function infiniteNotes(list, pageId, first, form) {
    var feed = { cursor: first.cursor, more: first.more, loading: false, page: 1 };
    function ended(why) { list.setAttribute("data-feed-end", why); }
    if (!feed.more) { ended("end"); return; }
    async function more() {
      if (feed.loading || !feed.more) return;
      if (window.innerHeight + window.scrollY < document.body.scrollHeight - 300) return;
      feed.loading = true;
      try {
        feed.page += 1;
        var next = readFeed(form, await call("GET", feedUri(form, pageId, feed.cursor,
                                                            feed.page)), feed.page);
        appendNotes(list, next.notes);
        feed.cursor = next.cursor;
        feed.more = next.more;
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

  async function topicPage(root, topic) {
    var views = null, redesigned = false;
    if (topic.name) {
      var found = await searchTopics(topic.name);
      redesigned = found.redesigned;
      var marker = "/page/topics/" + topic.pageId;
      var match = found.list.filter(function (t) {
        return String(t.link || "").indexOf(marker) >= 0;
      })[0] || found.list.filter(function (t) { return t.name === topic.name; })[0];
      if (match) views = match.view_num;
    }
    var form = topic.feed || "notes";
    if (form === "recommend" && topic.name) {
      // the search box's keyword suggestions share the feed's path (a different answer)
      await call("GET", "/api/sns/web/v1/search/recommend?keyword=" +
                        encodeURIComponent(topic.name));
    }
    var first = readFeed(form, await call("GET", feedUri(form, topic.pageId, "", 1)), 1);
    if (views === null) throw new ApiError("api", "话题不存在", -510000);
    root.textContent = "";
    renderHeader(root, topic.name, views, first.total, redesigned);
    infiniteNotes(renderNotes(root, first.notes), topic.pageId, first, form);
    mark("ready");
  }

  async function searchPage(root, search) {
    if (search.type && search.type !== "topic") {
      throw new ApiError("api", "replica only implements the topic tab", -1);
    }
    var found = await searchTopics(search.keyword || "");
    root.textContent = "";
    var list = el("ul", { "class": found.redesigned ? "topic-cards" : "topic-list" });
    found.list.forEach(function (t) {
      var item = el("li", {});
      item.appendChild(el("a", { href: localLink(t.link) }, t.name));
      item.appendChild(document.createTextNode(" "));
      var parts = zhParts(t.view_num);
      item.appendChild(el("span", { "class": "views" }, parts[0] + parts[1] + "浏览"));
      list.appendChild(item);
    });
    root.appendChild(list);
    mark(found.list.length ? "ready" : "empty");
  }

  async function main() {
    var state = window.__INITIAL_STATE__ || {};
    var root;
    try {
      if (state.topic && (root = document.querySelector(".topic-page"))) {
        await topicPage(root, state.topic);
      } else if (state.search && (root = document.querySelector(".search-page"))) {
        await searchPage(root, state.search);
      }
    } catch (err) {
      showFailure(root, err);
    }
  }

  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", main);
  } else {
    main();
  }
})();

/* Replica of Douyin's web bundle: msToken in localStorage "xmst", the a_bogus signer, and the
   hashtag and search pages that call the signed /aweme/v1/web/challenge/* APIs.
   Plain ES2017, no modules, no external resources. */
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

  // Written in when the bundle is served (replica/signing.py): the SDK's version, which picks
  // the signing key, and whether it hooks the page's fetch.
  var SCRIPT_VERSION = Number("__SCRIPT_VERSION__") || 1;
  var EXPOSED = "__SIGNER_EXPOSED__" !== "false";

  // Assembled at runtime so the key never appears as one literal in the bundle.
  function signKey() {
    var head = ["niyuod", "bew_"].map(function (p) { return p.split("").reverse().join(""); });
    var key = head.join("") + ":" + String.fromCharCode(97) + "_bogus:v" + (0x10 >> 4);
    return SCRIPT_VERSION > 1 ? key + ":v" + SCRIPT_VERSION : key;
  }

  function randomText(n, alphabet) {
    var rnd = new Uint8Array(n);
    crypto.getRandomValues(rnd);
    var out = "";
    for (var i = 0; i < n; i++) out += alphabet[rnd[i] % alphabet.length];
    return out;
  }

  // The real site keeps msToken in localStorage under "xmst" (MediaCrawler reads it there).
  function msToken() {
    var token = localStorage.getItem("xmst");
    if (!token) {
      token = randomText(107, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_");
      localStorage.setItem("xmst", token);
    }
    return token;
  }

  function webid() {
    var id = localStorage.getItem("webid");
    if (!id) {
      id = "7" + randomText(18, "0123456789");
      localStorage.setItem("webid", id);
    }
    return id;
  }

  // Decoded "k=v" pairs in order, without a_bogus: immune to how the URL gets re-escaped.
  function canonicalQuery(url) {
    var u = new URL(String(url), location.href);
    var parts = [];
    u.searchParams.forEach(function (value, key) {
      if (key !== "a_bogus") parts.push(key + "=" + value);
    });
    return parts.join("&");
  }

  function aBogus(url) {
    return "DY" + fnv1a32(signKey() + "|" + canonicalQuery(url));
  }

  // The security SDK: every fetch the page makes to the web API leaves with its a_bogus
  // [INF: that Douyin's SDK signs any fetch of its page; MediaCrawler computes a_bogus in the
  // page for every call but general/search].
  var nativeFetch = window.fetch.bind(window);
  function sdkFetch(input, init) {
    var url = typeof input === "string" ? input : input.url;
    if (url.indexOf("/aweme/v1/web/") >= 0 && !/[?&]a_bogus=/.test(url)) {
      url += (url.indexOf("?") >= 0 ? "&" : "?") + "a_bogus=" + encodeURIComponent(aBogus(url));
    }
    return nativeFetch(url, init);
  }
  if (EXPOSED) window.fetch = sdkFetch;
  msToken();
  webid();

  var path = location.pathname;
  function mountPrefix() {
    var marks = ["/hashtag/", "/search/"];
    for (var i = 0; i < marks.length; i++) {
      var at = path.indexOf(marks[i]);
      if (at >= 0) return path.slice(0, at);
    }
    return path.replace(/\/[^/]*$/, "");
  }
  var prefix = mountPrefix();

  function ApiError(kind, message) {
    this.kind = kind;
    this.message = message;
  }

  async function signedGet(apiPath, params) {
    var common = [["device_platform", "webapp"], ["aid", "6383"], ["channel", "channel_pc_web"],
                  ["version_code", "190600"], ["version_name", "19.6.0"],
                  ["pc_client_type", "1"], ["cookie_enabled", "true"], ["platform", "PC"]];
    var pairs = common.concat(params, [["webid", webid()], ["msToken", msToken()]]);
    var qs = pairs.map(function (kv) {
      return encodeURIComponent(kv[0]) + "=" + encodeURIComponent(kv[1]);
    }).join("&");
    var resp = await sdkFetch(prefix + apiPath + "?" + qs, { credentials: "same-origin" });
    var text = await resp.text();
    if (!resp.ok) throw new ApiError("http", "HTTP " + resp.status);
    // an empty body (or the word "blocked") is how Douyin refuses a request
    if (!text || text === "blocked") throw new ApiError("blocked", "request refused");
    var json;
    try { json = JSON.parse(text); } catch (e) { throw new ApiError("http", "bad JSON"); }
    if (json.status_code === 8) throw new ApiError("login", json.status_msg || "用户未登录");
    return json;
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

  function showFailure(root, err) {
    root.textContent = "";
    if (err instanceof ApiError && err.kind === "login") {
      var panel = el("div", { "class": "login-panel" });
      panel.appendChild(el("p", {}, "扫码登录"));
      panel.appendChild(el("p", {}, "登录后即可点赞喜欢评论"));
      root.appendChild(panel);
      mark("login");
      return;
    }
    root.appendChild(el("div", { "class": "challenge-error" }, String(err && err.message || err)));
    mark("error");
  }

  function stat(n, label) {
    var parts = zhParts(n);
    return [el("span", {}, parts[0]), document.createTextNode(parts[1] + label)];
  }

  function renderChallenge(root, info, awemes) {
    var header = el("div", { "class": "challenge-header" });
    header.appendChild(el("h1", {}, "#" + info.cha_name));
    var stats = el("div", { "class": "challenge-stats" });
    stat(info.view_count, "次播放").forEach(function (n) { stats.appendChild(n); });
    stats.appendChild(document.createTextNode(" · "));
    stat(info.user_count, "人参与").forEach(function (n) { stats.appendChild(n); });
    header.appendChild(stats);
    root.appendChild(header);
    var list = el("ul", { "class": "video-list" });
    awemes.forEach(function (a) {
      var item = el("li", { "data-aweme-id": a.aweme_id });
      item.appendChild(el("a", { href: prefix + "/video/" + a.aweme_id }, a.desc));
      item.appendChild(el("span", { "class": "digg" }, zhParts(a.statistics.digg_count).join("")));
      list.appendChild(item);
    });
    root.appendChild(list);
    document.title = "#" + info.cha_name + " - 抖音";
  }

  async function hashtagPage(root, cid) {
    var results = await Promise.allSettled([
      signedGet("/aweme/v1/web/challenge/detail/", [["ch_id", cid], ["query_type", "0"]]),
      signedGet("/aweme/v1/web/challenge/aweme/",
                [["ch_id", cid], ["query_type", "0"], ["sort_type", "0"], ["cursor", "0"],
                 ["count", "20"]])
    ]);
    if (results[0].status === "rejected") throw results[0].reason;
    var detail = results[0].value;
    var feed = results[1].status === "fulfilled" ? results[1].value : {};
    root.textContent = "";
    if (!("ch_info" in detail)) {
      // a redesigned answer: show what little can be shown, without the old stats line
      var next = el("section", { "class": "topic-v2" });
      next.appendChild(el("h2", {}, "#" + ((detail.challenge_detail || {}).title || "")));
      root.appendChild(next);
      mark("ready");
      return;
    }
    if (!detail.ch_info) {
      root.appendChild(el("div", { "class": "challenge-error" }, "话题不存在"));
      mark("not_found");
      return;
    }
    renderChallenge(root, detail.ch_info, feed.aweme_list || []);
    mark("ready");
  }

  async function searchPage(root, keyword) {
    var json = await signedGet("/aweme/v1/web/challenge/search/",
                               [["keyword", keyword], ["cursor", "0"], ["count", "20"]]);
    var found = json.challenge_list || [];
    root.textContent = "";
    if (!found.length) {
      root.appendChild(el("div", { "class": "search-empty" }, "暂时没有找到相关话题"));
      mark("empty");
      return;
    }
    var list = el("ul", { "class": "challenge-list" });
    found.forEach(function (entry) {
      var info = entry.challenge_info;
      var item = el("li", {});
      item.appendChild(el("a", { href: prefix + "/hashtag/" + info.cid }, "#" + info.cha_name));
      item.appendChild(el("span", { "class": "views" }, zhParts(info.view_count).join("") +
                                                        "次播放"));
      list.appendChild(item);
    });
    root.appendChild(list);
    mark("ready");
  }

  async function main() {
    var root = document.getElementById("root");
    if (!root) return;
    try {
      var at = path.indexOf("/hashtag/");
      if (at >= 0) {
        await hashtagPage(root, decodeURIComponent(path.slice(at + 9).split("/")[0]));
        return;
      }
      at = path.indexOf("/search/");
      if (at >= 0) {
        await searchPage(root, decodeURIComponent(path.slice(at + 8).split("/")[0]));
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

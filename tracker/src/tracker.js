// The page tag, served by ingestion at GET /tracker.js:
//
//   <script defer src="https://HOST/tracker.js" data-site="SITE"></script>
//
// Options, as attributes of the same tag (present = on):
//   data-hash       a page view on each `hashchange` too, the fragment part of the page
//   data-outbound   an "outbound_click" event for links to other hosts
//   data-downloads  a "file_download" event for links to files; a value lists the
//                   extensions ("pdf,zip"), else a common list is used
//   data-404        put on a "not found" page: a "404" event besides its page view
//
// Custom events: window.analytics.track(name, props). A page may queue calls before the
// tag has run: window.analytics = window.analytics || {q: [], track(n, p) { this.q.push([n, p]) }}.
//
// Nothing is sent from localhost, 127.0.0.1 or file: pages, from a browser that says it
// is automated (navigator.webdriver), or when localStorage.analytics_ignore is "true".
// The tag sets no cookie and stores nothing: ingestion tells visitors apart without it.
(() => {
  // Globals used often, bound once so that the minifier can shorten their names.
  const here = location;
  const on = addEventListener;
  const script = document.currentScript;
  const options = script.dataset;
  // Events go to the host that served this script.
  const endpoint = new URL(script.src).origin + "/event";
  const downloads = (
    options.downloads ||
    "pdf,zip,gz,7z,rar,dmg,exe,pkg,csv,txt,xlsx,docx,pptx,mp3,mp4,mov"
  ).split(",");
  // Bodies of events the server has not answered yet, by event id: sent again by beacon
  // when the page goes away. The id makes a second copy harmless: it is stored once.
  let pending = {};
  let lastPage;

  const ignored = () => {
    try {
      if (localStorage.analytics_ignore === "true") return true;
    } catch (error) {
      // Storage blocked by the browser: nothing opted out.
    }
    return (
      navigator.webdriver ||
      here.protocol === "file:" ||
      /^(localhost|127\.0\.0\.1|\[::1\])$/.test(here.hostname)
    );
  };

  // A random (version 4) UUID. crypto.randomUUID exists only on https pages; elsewhere a
  // blob URL's last part is one the browser drew (an empty blob, kept until the page goes).
  const eventId = () =>
    crypto.randomUUID ? crypto.randomUUID() : URL.createObjectURL(new Blob()).slice(-36);

  const send = (type, props) => {
    if (ignored()) return;
    const id = eventId();
    const now = new Date().toISOString();
    // Absent values (undefined) are left out of the JSON.
    const body = JSON.stringify({
      site_id: options.site,
      event_type: type,
      url: here.href.slice(0, 2048),
      // The page as the tag tells pages apart: with data-hash, its fragment too.
      path: lastPage,
      referrer: document.referrer.slice(0, 2048) || undefined,
      // At most 512 characters as the server counts them, code points: a UTF-16 slice could
      // leave half of an emoji, which the server refuses.
      title: document.title.match(/.{0,512}/u)[0] || undefined,
      screen: screen.width + "x" + screen.height,
      language: navigator.language,
      props,
      event_id: id,
      // The event happens as it is sent: with the browser's clock as `sent_at` too, the
      // server dates it on its own clock, however wrong the browser's is.
      timestamp: now,
      sent_at: now,
    });
    pending[id] = body;
    // A string body goes as text/plain: no CORS preflight. keepalive lets the request
    // outlive the page (a click that leaves it).
    fetch(endpoint, { method: "POST", body, keepalive: true }).then(
      (response) => {
        // A 5xx means "not taken, retry": keep it for the beacon.
        if (response.status < 500) delete pending[id];
      },
      () => {},
    );
  };

  on("pagehide", () => {
    for (const id in pending) navigator.sendBeacon(endpoint, pending[id]);
    pending = {};
  });

  // A page view when the page (its path, and its fragment with data-hash) changes.
  const page = () => {
    const current = here.pathname + ("hash" in options ? here.hash : "");
    if (current !== lastPage) {
      lastPage = current;
      send("page_view");
    }
  };
  for (const name of ["pushState", "replaceState"]) {
    const original = history[name];
    history[name] = function () {
      original.apply(this, arguments);
      page();
    };
  }
  on("popstate", page);
  if ("hash" in options) on("hashchange", page);

  const click = (event) => {
    const link = event.target.closest && event.target.closest("a[href]");
    // A middle click opens the link too; other buttons do not.
    if (!link || (event.type === "auxclick" && event.button !== 1)) return;
    if ("outbound" in options && link.host && link.host !== here.host) {
      send("outbound_click", { url: link.href });
    } else if ("downloads" in options && downloads.includes(link.pathname.split(".").pop().toLowerCase())) {
      send("file_download", { url: link.href.split("?")[0] });
    }
  };
  on("click", click);
  on("auxclick", click);

  const queued = (window.analytics || {}).q || [];
  window.analytics = { track: send };
  page();
  if ("404" in options) send("404", { path: here.pathname });
  for (const [name, props] of queued) send(name, props);
})();

// callmanager's web phone: a user logs in with their API token; the page asks the control plane (JSON-RPC, same
// origin) for this browser's SIP credentials (webrtc.credentials: a fresh password each login, never in the page's
// source) and registers over the node's WebSocket with JsSIP. Calls, hold, mute, tones, blind transfer; DND,
// forwarding and recent calls through the API with the user's own token.
import JsSIP from "jssip";

const $ = (id) => document.getElementById(id);
const TOKEN_KEY = "callmanager.token";
const REGISTER_RETRIES = 8; // a brand-new password reaches Kamailio with its next snapshot check (under a second; more on a loaded node)

let token = sessionStorage.getItem(TOKEN_KEY) || "";
let me = null; // token.whoami's answer
let ua = null;
let session = null; // the one call this phone carries
let registerAttempts = 0;
let callTimer = null;
let forwardRule = null; // the user's unconditional forwarding rule, if any
let lastCallId = null; // the SIP Call-ID of the latest call (the browser tests find its media session by it)

// ------------------------------------------------------------------ the API

class ApiError extends Error {
  constructor(error) {
    super((error.data && error.data.error_id ? `${error.message} [${error.data.error_id}]` : error.message) || "error");
    this.error = error;
  }
}

let rpcId = 0;
async function rpc(method, params = {}) {
  const response = await fetch("/rpc", {
    method: "POST",
    headers: { "Content-Type": "application/json", Authorization: `Bearer ${token}` },
    body: JSON.stringify({ jsonrpc: "2.0", method, params, id: ++rpcId }),
  });
  if (!response.ok) throw new Error(`the control plane answered HTTP ${response.status}`);
  const body = await response.json();
  if (body.error) throw new ApiError(body.error);
  return body.result;
}

// ------------------------------------------------------------------ what the page shows

function say(id, text) {
  $(id).textContent = text;
}

function describeFailure(e) {
  // JsSIP's cause in words, with the SIP answer when there was one ("Busy Here (486)")
  const reply = e && e.message && e.message.status_code ? e.message : null;
  if (reply) return `${reply.reason_phrase || e.cause} (${reply.status_code})`;
  const cause = (e && e.cause) || "unknown reason";
  const words = {
    [JsSIP.C.causes.USER_DENIED_MEDIA_ACCESS]: "the browser may not use the microphone",
    [JsSIP.C.causes.CONNECTION_ERROR]: "no connection to the phone server",
    [JsSIP.C.causes.REQUEST_TIMEOUT]: "no answer from the phone server",
    [JsSIP.C.causes.RTP_TIMEOUT]: "the media stopped",
  };
  return words[cause] || cause;
}

function setCallState(text) {
  say("call-state", text);
}

function showCallControls() {
  const active = session !== null;
  const established = active && session.isEstablished();
  const incoming = active && session.direction === "incoming" && !session.isEstablished() && !session.isEnded();
  $("answer-button").hidden = !incoming;
  $("decline-button").hidden = !incoming;
  $("hangup-button").disabled = !active || incoming;
  $("hold-button").disabled = !established;
  $("mute-button").disabled = !established;
  $("keypad").disabled = !established;
  $("transfer").disabled = !established;
  $("call-button").disabled = active || !(ua && ua.isRegistered());
  const held = established && session.isOnHold().local;
  $("hold-button").textContent = held ? "Resume" : "Hold";
  $("hold-button").setAttribute("aria-pressed", String(held));
  const muted = established && session.isMuted().audio;
  $("mute-button").textContent = muted ? "Unmute" : "Mute";
  $("mute-button").setAttribute("aria-pressed", String(muted));
  document.body.dataset.call = !active ? "idle" : incoming ? "incoming" : established ? "established" : "trying";
}

function peerName(s) {
  const id = s.remote_identity;
  return (id && (id.display_name || (id.uri && id.uri.user))) || "unknown";
}

function elapsed(since) {
  const s = Math.floor((Date.now() - since) / 1000);
  return `${Math.floor(s / 60)}:${String(s % 60).padStart(2, "0")}`;
}

function establishedText() {
  const hold = session.isOnHold();
  const what = hold.local ? "On hold" : hold.remote ? "Held by the other party" : "In call";
  return `${what} with ${peerName(session)}`;
}

function showTimer(s) {
  // the call's duration, in its own element: the state above is a live region, read out when it changes, not each second
  $("call-timer").textContent = s && s.start_time ? elapsed(s.start_time.getTime()) : "";
}

// ------------------------------------------------------------------ login and registration

async function login(event) {
  if (event) event.preventDefault();
  say("login-error", "");
  token = token || $("token").value.trim();
  if (!token) return;
  $("login-button").disabled = true;
  try {
    me = await rpc("token.whoami");
    if (me.user_id === null || me.user_id === undefined) {
      throw new Error("this token belongs to no user: log in with a user's own token");
    }
    sessionStorage.setItem(TOKEN_KEY, token);
    $("who").textContent = `Logged in as ${me.user ? me.user.name : "user " + me.user_id}`;
    $("who").hidden = false;
    $("login").hidden = true;
    $("phone").hidden = false;
    await startPhone();
    refreshSettings();
    refreshRecent();
    $("number").focus();
  } catch (err) {
    token = "";
    sessionStorage.removeItem(TOKEN_KEY);
    if (ua) ua.stop();
    ua = null;
    $("phone").hidden = true; // back to the form, where the error is shown
    $("login").hidden = false;
    $("who").hidden = true;
    say("registration", "Not logged in");
    say("login-error", `Could not log in: ${err.message}`);
    $("token").focus();
  } finally {
    $("login-button").disabled = false;
  }
}

function pickServer(servers) {
  // an https page may only open wss:; a plain http page (loopback, tests) prefers the node's plain ws: where it has one
  const want = location.protocol === "https:" ? "wss:" : "ws:";
  return servers.find((u) => u.startsWith(want)) || servers[0];
}

async function startPhone() {
  const creds = await rpc("webrtc.credentials");
  say("registration", "Registering…");
  registerAttempts = 0;
  ua = new JsSIP.UA({
    sockets: [new JsSIP.WebSocketInterface(pickServer(creds.ws_servers))],
    uri: creds.uri,
    authorization_user: creds.username,
    password: creds.password,
    display_name: me.user ? me.user.name : undefined,
    register: true,
    session_timers: false,
    user_agent: "callmanager-webphone",
  });
  ua.on("registered", () => {
    registerAttempts = 0;
    say("registration", "Registered: ready for calls");
    showCallControls();
  });
  ua.on("unregistered", () => {
    say("registration", "Not registered");
    showCallControls();
  });
  ua.on("registrationFailed", (e) => {
    registerAttempts += 1;
    if (registerAttempts < REGISTER_RETRIES) {
      say("registration", `Registering… (${describeFailure(e)}, trying again)`);
      setTimeout(() => ua && ua.register(), 1000);
    } else {
      say("registration", `Registration failed: ${describeFailure(e)}`);
    }
    showCallControls();
  });
  ua.on("disconnected", () => say("registration", "Connection to the phone server lost: reconnecting…"));
  ua.on("newRTCSession", (e) => {
    lastCallId = e.request ? e.request.call_id : null;
    onSession(e.session, e.originator);
  });
  ua.start();
}

function logout() {
  if (session) session.terminate();
  if (ua) ua.stop();
  ua = null;
  session = null;
  token = "";
  me = null;
  sessionStorage.removeItem(TOKEN_KEY);
  $("phone").hidden = true;
  $("login").hidden = false;
  $("who").hidden = true;
  $("token").value = "";
  say("registration", "Not logged in");
  $("token").focus();
}

// ------------------------------------------------------------------ calls

function attachAudio(pc) {
  pc.addEventListener("track", (ev) => {
    $("remote-audio").srcObject = ev.streams[0] || new MediaStream([ev.track]);
  });
}

function onSession(s, originator) {
  if (session !== null) {
    if (originator === "remote") s.terminate({ status_code: 486, reason_phrase: "Busy Here" });
    return;
  }
  session = s;
  say("call-error", "");
  say("tones-sent", "");
  if (originator === "remote") {
    setCallState(`Incoming call from ${peerName(s)}`);
    s.on("peerconnection", (e) => attachAudio(e.peerconnection));
  } else {
    setCallState(`Calling ${peerName(s)}…`);
  }
  if (s.connection) attachAudio(s.connection);
  s.on("progress", () => {
    if (s.direction === "outgoing") setCallState(`Ringing ${peerName(s)}…`);
  });
  s.on("confirmed", () => {
    setCallState(establishedText());
    clearInterval(callTimer);
    showTimer(s);
    callTimer = setInterval(() => session === s && showTimer(s), 1000);
    showCallControls();
  });
  for (const ev of ["hold", "unhold", "muted", "unmuted"]) {
    s.on(ev, () => {
      setCallState(establishedText());
      showCallControls();
    });
  }
  s.on("ended", (e) => finish(s, `Call ended (${e.originator === "local" ? "you hung up" : "the other party hung up"})`));
  s.on("failed", (e) => {
    const C = JsSIP.C.causes;
    let text = `Call failed: ${describeFailure(e)}`;
    if (e.originator === "local" && e.cause === C.CANCELED) text = "Call cancelled";
    else if (e.originator === "local" && e.cause === C.REJECTED) text = "Call declined";
    else if (s.direction === "incoming" && e.originator === "remote" && e.cause === C.CANCELED) {
      text = `Missed call from ${peerName(s)}`; // the caller gave up, or another of your phones answered
    }
    if (text.startsWith("Call failed")) say("call-error", text);
    finish(s, text);
  });
  showCallControls();
  if (originator === "remote") $("answer-button").focus();
}

function finish(s, text) {
  if (session !== s) return;
  clearInterval(callTimer);
  session = null;
  showTimer(null);
  setCallState(text);
  showCallControls();
  $("number").focus();
  setTimeout(refreshRecent, 1500); // the call's record arrives from the node's CDR spool
}

function mediaOptions() {
  return {
    mediaConstraints: { audio: true, video: false },
    pcConfig: { iceServers: [] },
    rtcOfferConstraints: { offerToReceiveAudio: true, offerToReceiveVideo: false },
  };
}

function dial(event) {
  event.preventDefault();
  const target = $("number").value.trim();
  if (!target || !ua || session) return;
  say("call-error", "");
  try {
    ua.call(target, mediaOptions());
  } catch (err) {
    say("call-error", `Call failed: ${err.message}`);
  }
}

function act(fn) {
  return () => {
    if (!session) return;
    try {
      fn(session);
    } catch (err) {
      say("call-error", err.message);
    }
    showCallControls();
  };
}

// ------------------------------------------------------------------ settings through the API

async function refreshSettings() {
  try {
    const who = await rpc("token.whoami");
    $("dnd").checked = Boolean(who.user && who.user.status === "dnd");
    const rules = await rpc("forwarding.list", { limit: 100 });
    forwardRule = (rules.items || []).find((r) => r.kind === "unconditional" && r.target_number) || null;
    $("forward-to").value = forwardRule ? forwardRule.target_number : "";
    $("forward-on").checked = Boolean(forwardRule && forwardRule.enabled);
  } catch (err) {
    say("settings-error", `Could not read your settings: ${err.message}`);
  }
}

async function setDnd() {
  say("settings-error", "");
  const status = $("dnd").checked ? "dnd" : "online";
  try {
    await rpc("user.set_status", { id: me.user_id, status });
    say("settings-state", status === "dnd" ? "Do not disturb is on: calls to you are refused" : "Do not disturb is off");
  } catch (err) {
    $("dnd").checked = !$("dnd").checked;
    say("settings-error", `Could not change do not disturb: ${err.message}`);
  }
}

async function saveForwarding(event) {
  if (event) event.preventDefault();
  say("settings-error", "");
  const target = $("forward-to").value.trim();
  const enabled = $("forward-on").checked;
  try {
    if (!target && forwardRule) {
      await rpc("forwarding.delete", { id: forwardRule.id });
      forwardRule = null;
      $("forward-on").checked = false;
      say("settings-state", "Forwarding removed");
      return;
    }
    if (!target) {
      $("forward-on").checked = false;
      if (enabled) say("settings-error", "Give a number to forward to");
      return;
    }
    if (forwardRule) {
      forwardRule = await rpc("forwarding.update", { id: forwardRule.id, target_number: target, enabled });
    } else {
      forwardRule = await rpc("forwarding.create", {
        user_id: me.user_id, kind: "unconditional", target_number: target, enabled,
      });
    }
    const to = forwardRule.target_number; // as the node understood the number (E.164)
    $("forward-to").value = to;
    say("settings-state", enabled ? `All calls are forwarded to ${to}` : `Forwarding to ${to} is off`);
  } catch (err) {
    say("settings-error", `Could not save forwarding: ${err.message}`);
  }
}

async function refreshRecent() {
  if (!token) return;
  try {
    const page = await rpc("cdr.list", { limit: 20 });
    const list = $("recent-list");
    list.replaceChildren();
    for (const c of page.items || []) {
      const outgoing = c.caller_user_id === me.user_id;
      const missed = !outgoing && c.disposition !== "answered";
      const li = document.createElement("li");
      li.className = missed ? "missed" : c.disposition;
      const when = new Date(c.start_time.endsWith("Z") || c.start_time.includes("+") ? c.start_time : c.start_time + "Z");
      const other = outgoing ? c.callee : c.caller;
      const what = outgoing
        ? `Outgoing to ${other}`
        : missed ? `Missed call from ${other}` : `Incoming from ${other}`;
      const how = c.disposition === "answered" ? `${Math.round(c.duration_s)} s` : c.disposition.replace("_", " ");
      li.textContent = `${what} · ${when.toLocaleString()} · ${how}`;
      const again = document.createElement("button");
      again.type = "button";
      again.textContent = "Call back";
      again.setAttribute("aria-label", `Call ${other}`);
      again.addEventListener("click", () => {
        $("number").value = other;
        $("number").focus();
      });
      li.append(" ", again);
      list.append(li);
    }
    if (!list.children.length) {
      const li = document.createElement("li");
      li.textContent = "No calls yet";
      list.append(li);
    }
  } catch (err) {
    say("settings-error", `Could not read recent calls: ${err.message}`);
  }
}

// ------------------------------------------------------------------ wiring

function wire() {
  $("login-form").addEventListener("submit", login);
  $("logout-button").addEventListener("click", logout);
  $("dial-form").addEventListener("submit", dial);
  $("answer-button").addEventListener("click", act((s) => s.answer(mediaOptions())));
  $("decline-button").addEventListener("click", act((s) => s.terminate({ status_code: 603, reason_phrase: "Decline" })));
  $("hangup-button").addEventListener("click", act((s) => s.terminate()));
  $("hold-button").addEventListener("click", act((s) => (s.isOnHold().local ? s.unhold() : s.hold())));
  $("mute-button").addEventListener("click", act((s) => (s.isMuted().audio ? s.unmute({ audio: true }) : s.mute({ audio: true }))));
  for (const key of document.querySelectorAll("#keypad [data-tone]")) {
    key.addEventListener("click", act((s) => {
      s.sendDTMF(key.dataset.tone, { transportType: "RFC2833", duration: 160 });
      $("tones-sent").textContent = `Sent: ${($("tones-sent").textContent.replace("Sent: ", "") + key.dataset.tone)}`;
    }));
  }
  // the keyboard's digits reach the keypad while a call is up and no text field has the focus
  document.addEventListener("keydown", (ev) => {
    if (!session || !session.isEstablished() || ev.target.matches("input, textarea")) return;
    const key = document.querySelector(`#keypad [data-tone="${CSS.escape(ev.key)}"]`);
    if (key) key.click();
  });
  $("transfer-form").addEventListener("submit", (ev) => {
    ev.preventDefault();
    const target = $("transfer-to").value.trim();
    if (!target) return;
    act((s) => {
      // blind: once the other party accepts the transfer (202), this phone leaves the call
      s.refer(target, {
        eventHandlers: {
          requestSucceeded: () => {
            finish(s, `Transferred ${peerName(s)} to ${target}`);
            s.terminate();
          },
          requestFailed: (e) => say("call-error", `Transfer failed: ${describeFailure(e)}`),
        },
      });
      setCallState(`Transferring ${peerName(s)} to ${target}…`);
    })();
  });
  $("dnd").addEventListener("change", setDnd);
  $("forward-form").addEventListener("submit", saveForwarding);
  $("forward-on").addEventListener("change", saveForwarding);
  $("recent-refresh").addEventListener("click", refreshRecent);
  window.addEventListener("beforeunload", () => ua && ua.stop());
  showCallControls();
  if (token) login();
  else $("token").focus();
}

// what the browser tests read (tests/browser): the call's peer connection and the UA's state
window.callmanagerPhone = {
  get session() {
    return session;
  },
  get registered() {
    return Boolean(ua && ua.isRegistered());
  },
  get callId() {
    return lastCallId;
  },
};

wire();

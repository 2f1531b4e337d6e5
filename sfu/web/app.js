// sfu-config demo page: plain JavaScript, no build step (Chromium and Firefox).
// Signalling protocol: sfu/README.md. The SFU sends every offer; this page only answers.
// Deep link: /?room=NAME&name=NAME&autojoin=1 joins at once with camera and microphone.
// &relay=1 forces iceTransportPolicy "relay": media only through the TURN servers the SFU hands out.

(() => {
  const $ = (id) => document.getElementById(id);
  const params = new URLSearchParams(location.search);
  const state = {
    ws: null,
    pc: null,
    id: null,
    local: null,
    config: null,
    /** mid -> {id, participantId, kind} of remote tracks */
    trackInfo: new Map(),
    publishMids: new Set(),
    /** participantId -> {name, figure, video, stream} */
    participants: new Map(),
    chain: Promise.resolve(),
  };
  // Exposed for automated tests and debugging.
  window.sfuDemo = state;

  $("room").value = params.get("room") || $("room").value;
  $("name").value = params.get("name") || `guest-${Math.floor(Math.random() * 1000)}`;

  const setStatus = (text) => {
    $("status").textContent = text;
  };
  const showConfig = (config) => {
    state.config = config;
    const el = $("config");
    el.dataset.version = config ? String(config.version) : "";
    el.dataset.hash = config ? config.hash : "";
    el.textContent = config ? `version ${config.version} · ${config.hash.slice(0, 19)}…` : "none yet";
    el.title = config ? config.hash : "";
  };
  const send = (msg) => {
    if (state.ws && state.ws.readyState === WebSocket.OPEN) state.ws.send(JSON.stringify(msg));
  };

  function participantView(id, name) {
    let p = state.participants.get(id);
    if (p) return p;
    const figure = document.createElement("figure");
    figure.dataset.participant = id;
    const video = document.createElement("video");
    video.autoplay = true;
    video.playsInline = true;
    video.className = "remote";
    const caption = document.createElement("figcaption");
    caption.textContent = name || id.slice(0, 8);
    figure.append(video, caption);
    $("grid").append(figure);
    const stream = new MediaStream();
    video.srcObject = stream;
    p = { name, figure, video, stream };
    state.participants.set(id, p);
    return p;
  }

  function removeParticipant(id) {
    const p = state.participants.get(id);
    if (!p) return;
    p.figure.remove();
    state.participants.delete(id);
  }

  async function getLocalMedia() {
    for (const constraints of [{ audio: true, video: true }, { video: true }, { audio: true }]) {
      try {
        return await navigator.mediaDevices.getUserMedia(constraints);
      } catch {
        // try the next, smaller set
      }
    }
    return null;
  }

  async function join() {
    $("join").disabled = true;
    setStatus("getting camera…");
    state.local = await getLocalMedia();
    if (state.local) $("local-video").srcObject = state.local;
    const hasAudio = !!state.local && state.local.getAudioTracks().length > 0;
    const hasVideo = !!state.local && state.local.getVideoTracks().length > 0;
    setStatus("connecting…");
    const ws = new WebSocket(`${location.protocol === "https:" ? "wss" : "ws"}://${location.host}/ws`);
    state.ws = ws;
    ws.onopen = () =>
      send({
        type: "join",
        room: $("room").value,
        name: $("name").value,
        publish: { audio: hasAudio, video: hasVideo },
      });
    ws.onmessage = (event) => {
      const msg = JSON.parse(event.data);
      state.chain = state.chain
        .then(() => handle(msg))
        .catch((err) => {
          console.error(err);
          setStatus(`error: ${err.message || err}`);
        });
    };
    ws.onclose = () => {
      setStatus("disconnected");
      cleanup();
    };
  }

  async function handle(msg) {
    switch (msg.type) {
      case "config":
        showConfig(msg.config);
        break;
      case "joined": {
        state.id = msg.id;
        showConfig(msg.config);
        setStatus(`joined ${msg.room} as ${$("name").value}`);
        $("leave").disabled = false;
        for (const p of msg.participants) participantView(p.id, p.name);
        const pc = new RTCPeerConnection({
          iceServers: msg.iceServers,
          bundlePolicy: "max-bundle",
          iceTransportPolicy: params.get("relay") === "1" ? "relay" : "all",
        });
        state.pc = pc;
        pc.onicecandidate = (e) => send({ type: "candidate", candidate: e.candidate ? e.candidate.toJSON() : null });
        pc.ontrack = (e) => {
          const mid = e.transceiver.mid;
          if (state.publishMids.has(mid)) return;
          const info = state.trackInfo.get(mid);
          if (!info) return;
          const p = participantView(info.participantId, null);
          p.stream.addTrack(e.track);
          p.video.play().catch(() => {});
          e.track.onended = () => p.stream.removeTrack(e.track);
        };
        pc.onconnectionstatechange = () => {
          if (pc.connectionState === "failed") setStatus("media connection failed");
        };
        break;
      }
      case "offer": {
        const pc = state.pc;
        for (const [mid, info] of Object.entries(msg.tracks)) state.trackInfo.set(mid, info);
        for (const { mid } of msg.publish) state.publishMids.add(mid);
        await pc.setRemoteDescription({ type: "offer", sdp: msg.sdp });
        for (const { mid, kind } of msg.publish) {
          const t = pc.getTransceivers().find((x) => x.mid === mid);
          const track = state.local?.getTracks().find((x) => x.kind === kind);
          if (!t || !track) continue;
          if (t.sender.track !== track) await t.sender.replaceTrack(track);
          t.direction = "sendonly";
        }
        const answer = await pc.createAnswer();
        await pc.setLocalDescription(answer);
        send({ type: "answer", sdp: pc.localDescription.sdp });
        break;
      }
      case "candidate":
        if (state.pc) await state.pc.addIceCandidate(msg.candidate || undefined).catch(() => {});
        break;
      case "participant-joined":
        participantView(msg.participant.id, msg.participant.name);
        break;
      case "participant-left":
        removeParticipant(msg.id);
        break;
      case "track-published":
        // The SFU follows up with an offer carrying the track.
        break;
      case "error":
        setStatus(`${msg.code}: ${msg.message}`);
        break;
      case "left":
        state.ws.close();
        break;
    }
  }

  function cleanup() {
    if (state.pc) state.pc.close();
    state.pc = null;
    for (const id of [...state.participants.keys()]) removeParticipant(id);
    state.trackInfo.clear();
    state.publishMids.clear();
    if (state.local) for (const t of state.local.getTracks()) t.stop();
    state.local = null;
    $("local-video").srcObject = null;
    $("join").disabled = false;
    $("leave").disabled = true;
  }

  $("join-form").addEventListener("submit", (e) => {
    e.preventDefault();
    join().catch((err) => setStatus(`error: ${err.message || err}`));
  });
  $("leave").addEventListener("click", () => send({ type: "leave" }));

  // The page shows the applied config before joining too.
  fetch("/status")
    .then((r) => r.json())
    .then((s) => {
      if (!state.config) showConfig(s.applied);
    })
    .catch(() => {});

  if (params.get("autojoin") === "1") join().catch((err) => setStatus(`error: ${err.message || err}`));
})();

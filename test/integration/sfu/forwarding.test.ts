/**
 * Real werift peers over loopback through the SFU: fan-out, duplicate
 * suppression, keyframe requests, departures and socket release.
 */
import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import { joinVideoRoom, WeriftTestClient } from "../../helpers/werift-client.ts";
import { type SfuUnderTest, sleep, startWithAgent, testConfig } from "./harness.ts";

const udpSockets = () => process.getActiveResourcesInfo().filter((r) => r === "UDPWRAP").length;

describe("SFU forwarding (werift peers on loopback)", { timeout: 60_000 }, () => {
  let baselineUdp: number;
  let sfu: SfuUnderTest;
  let pub: WeriftTestClient;
  let subs: WeriftTestClient[] = [];

  before(async () => {
    baselineUdp = udpSockets();
    sfu = await startWithAgent(testConfig());
    ({ pub, subs } = await joinVideoRoom(sfu.wsUrl, "fanout", 3));
  });

  after(async () => {
    for (const c of [pub, ...subs]) await c?.close();
    await sfu?.stop();
  });

  it("forwards > 95% of the publisher's packets to each of 3 subscribers, never a duplicate", async () => {
    // Every 10th packet is written twice: what NACK retransmissions look like to the SFU.
    const publishing = pub.startPublishing({ packetsPerSecond: 150, duplicateEvery: 10 });
    try {
      const tracks = await Promise.all(subs.map(async (s) => (await s.waitForTracks(1, "video"))[0]!));
      await Promise.all(subs.map((s, i) => s.waitFor(() => tracks[i]!.packets > 0, "first packet")));
      const sent0 = publishing.sent;
      const got0 = tracks.map((t) => t.seqs.size);
      await sleep(3000);
      const sent = publishing.sent - sent0;
      publishing.stop();
      await sleep(300);
      assert.ok(sent > 300, `publisher sent ${sent} packets`);
      for (const [i, t] of tracks.entries()) {
        const got = t.seqs.size - got0[i]!;
        assert.ok(got / sent > 0.95, `subscriber ${i} got ${got}/${sent}`);
        assert.equal(t.duplicates, 0, `subscriber ${i} received duplicates`);
        assert.equal(t.codec, "video/VP8");
        assert.equal(t.participantId, pub.joined.id);
      }
      assert.ok(sfu.server.rooms.forwardingStats().duplicates > 0, "the SFU saw the duplicates and dropped them");
    } finally {
      publishing.stop();
    }
  });

  it("relays a subscriber's PLI to the publisher (rate-limited)", async () => {
    const publishing = pub.startPublishing({ packetsPerSecond: 100 });
    try {
      const track = [...subs[0]!.tracks.values()][0]!;
      const before = pub.plisReceived;
      await subs[0]!.sendPli(track.trackId);
      await pub.waitFor(() => pub.plisReceived > before, "PLI at the publisher", 5000);
      // A burst of requests inside the 500 ms interval collapses into at most one more.
      const burstStart = pub.plisReceived;
      for (let i = 0; i < 5; i++) await subs[i % 3]!.sendPli([...subs[i % 3]!.tracks.values()][0]!.trackId);
      await sleep(1200);
      assert.ok(pub.plisReceived - burstStart <= 2, `burst produced ${pub.plisReceived - burstStart} PLIs`);
      assert.ok(pub.plisReceived - burstStart >= 1);
    } finally {
      publishing.stop();
    }
  });

  it("a departure is announced at once, renegotiated away and releases every socket", async () => {
    const leaving = subs.pop()!;
    const leavingId = leaving.joined.id;
    await leaving.leave();
    await leaving.close();
    await subs[0]!.waitFor(
      () => subs[0]!.messages.some((m) => m.type === "participant-left" && m.id === leavingId),
      "participant-left",
      2000,
    );
    assert.equal(sfu.server.rooms.participantCount, 3);
    // The publisher leaving: subscribers get participant-left and a renegotiation removing its m-line.
    const offersBefore = subs[0]!.offers;
    await pub.close();
    await subs[0]!.waitFor(() => subs[0]!.offers > offersBefore, "renegotiation after the publisher left", 5000);
    await subs[0]!.waitFor(() => sfu.server.rooms.participantCount === 2, "publisher removed", 2000);
    const status = (await (await fetch(`${sfu.httpUrl}/status`)).json()) as { participants: number; rooms: number };
    assert.equal(status.participants, 2);
    for (const s of subs) await s.close();
    subs = [];
    await sleep(200);
    assert.equal(sfu.server.rooms.participantCount, 0);
    assert.equal(sfu.server.rooms.rooms.size, 0);
    await sfu.stop();
    await sleep(200);
    assert.equal(udpSockets(), baselineUdp, `UDP sockets left: ${process.getActiveResourcesInfo().join(",")}`);
  });
});

describe("SFU admission limits", { timeout: 30_000 }, () => {
  it("refuses a participant over maxParticipantsPerRoom and a room over maxRooms with a clear error", async () => {
    const sfu = await startWithAgent(testConfig({ limits: { maxRooms: 1, maxParticipantsPerRoom: 1 } }));
    const clients: WeriftTestClient[] = [];
    try {
      const opts = { url: sfu.wsUrl, publish: { audio: false, video: false } };
      clients.push(await WeriftTestClient.join({ ...opts, room: "a", name: "one" }));
      await assert.rejects(
        WeriftTestClient.join({ ...opts, room: "a", name: "two" }),
        /PARTICIPANT_LIMIT: room "a" is full.*maxParticipantsPerRoom = 1/,
      );
      await assert.rejects(WeriftTestClient.join({ ...opts, room: "b", name: "three" }), /ROOM_LIMIT: .*maxRooms = 1/);
    } finally {
      for (const c of clients) await c.close();
      await sfu.stop();
    }
  });
});
